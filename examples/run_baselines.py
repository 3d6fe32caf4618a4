"""Run the random and greedy baselines on held-out trainees and print the result table.

python examples/run_baselines.py --trainees 200 --seed 0
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fitness_weights_env import FitnessWeightsVectorEnv, sample_profiles
from fitness_weights_env.baselines import GreedyPolicy, RandomPolicy, normalized_score, run_episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainees", type=int, default=200, help="number of held-out trainees")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out set and the episodes")
    args = parser.parse_args()

    profiles = sample_profiles(args.trainees, seed=args.seed)
    results, seconds = {}, {}
    for name, policy in (("random", RandomPolicy(seed=args.seed)), ("greedy", GreedyPolicy())):
        start = time.perf_counter()
        results[name] = run_episodes(policy, profiles, seed=args.seed)
        seconds[name] = time.perf_counter() - start

    print(f"FitnessWeights-v0: {args.trainees} held-out trainees, 64-step episodes\n")
    print("| policy | mean return | 95% CI | normalized score | final target score | final drift | time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, result in results.items():
        returns = result.returns
        half = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns))
        score = normalized_score(returns, results["random"].returns, results["greedy"].returns)
        print(
            f"| {name} | {returns.mean():.3f} | ± {half:.3f} | {score:.2f} | "
            f"{result.final_target_score.mean():.3f} | {result.final_drift.mean():.3f} | {seconds[name]:.2f} |"
        )

    env = FitnessWeightsVectorEnv(1, render_mode="ansi", max_episode_steps=None)
    observation, _ = env.reset(seed=args.seed, options={"profiles": [profiles[0]]})
    greedy = GreedyPolicy()
    for _ in range(64):
        observation, *_ = env.step(greedy(observation, env))
    print("\nThe first trainee after 64 greedy steps:\n")
    print(env.render()[0])


if __name__ == "__main__":
    main()
