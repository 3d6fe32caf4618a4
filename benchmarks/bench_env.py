"""Environment throughput: single env (wrapped and unwrapped), vector env, greedy oracle.

Prints a Markdown table of steps/s (median of ``--repeats`` timed runs after a warm-up), the
vector/single ratio measured in the same run, and the mean episode return of the random and greedy
policies on 200 seeded trainees::

    python benchmarks/bench_env.py            # about a minute on a 2-core CPU
    python benchmarks/bench_env.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from fitness_weights_env import FitnessWeightsVectorEnv, sample_profiles
from fitness_weights_env.baselines import GreedyPolicy, RandomPolicy, run_episodes


def median_rate(run: Callable[[], int], repeats: int) -> float:
    """Median of ``items / seconds`` over ``repeats`` calls of ``run`` (which returns its item count)."""
    run()  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates)


def single_env_rate(env: gym.Env, steps: int, repeats: int) -> float:
    env.reset(seed=0)
    actions = [int(a) for a in np.random.default_rng(0).integers(0, 685, steps)]

    def run() -> int:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        return steps

    return median_rate(run, repeats)


def vector_env_rate(num_envs: int, steps: int, repeats: int) -> float:
    env = gym.make_vec("FitnessWeights-v0", num_envs=num_envs)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 685, (steps, num_envs))

    def run() -> int:
        for batch in actions:
            env.step(batch)
        return steps * num_envs

    return median_rate(run, repeats)


def oracle_rate(n_trainees: int, repeats: int) -> float:
    env = FitnessWeightsVectorEnv(n_trainees)
    observation, _ = env.reset(seed=0)
    policy = GreedyPolicy()

    def run() -> int:  # one full 64-step greedy episode per trainee
        env.reset(seed=0)
        for _ in range(64):
            env.step(policy(observation, env))
        return n_trainees

    return median_rate(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row (the median is reported)")
    parser.add_argument("--trainees", type=int, default=200, help="trainees for the return comparison")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    rows: list[tuple[str, float, str]] = []
    wrapped = single_env_rate(gym.make("FitnessWeights-v0"), 20_000, args.repeats)
    rows.append(("single env, gym.make (wrappers)", wrapped, "steps/s"))
    unwrapped = single_env_rate(gym.make("FitnessWeights-v0").unwrapped, 20_000, args.repeats)
    rows.append(("single env, unwrapped", unwrapped, "steps/s"))
    vector = {}
    for n in (8, 64, 256, 1024):
        vector[n] = vector_env_rate(n, max(128, 256_000 // n), args.repeats)
        rows.append((f"vector env, N={n}", vector[n], "steps/s"))
    oracle = oracle_rate(args.trainees, max(1, args.repeats // 2))
    rows.append((f"greedy oracle, {args.trainees} trainees x 64 steps", oracle, "trainees/s"))

    profiles = sample_profiles(args.trainees, seed=2026)
    greedy = run_episodes(GreedyPolicy(), profiles, seed=0).returns
    random = run_episodes(RandomPolicy(seed=0), profiles, seed=0).returns

    machine = platform.processor() or platform.machine()
    print(f"Machine: {machine}, Python {platform.python_version()}, numpy {np.__version__}")
    print("\n| workload | rate | unit |\n|---|---:|---|")
    for name, rate, unit in rows:
        print(f"| {name} | {rate:,.0f} | {unit} |")
    ratio = vector[1024] / unwrapped
    print(f"\nvector N=1024 / unwrapped single env: {ratio:.1f}x")
    print(f"\n| policy ({args.trainees} trainees, 64 steps) | mean return | 95% CI |\n|---|---:|---:|")
    for name, returns in (("random", random), ("greedy", greedy)):
        half = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns))
        print(f"| {name} | {returns.mean():.3f} | ± {half:.3f} |")
    if args.json:
        figures = {name: rate for name, rate, _ in rows}
        figures.update(vector_over_unwrapped=ratio, random_return=random.mean(), greedy_return=greedy.mean())
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
