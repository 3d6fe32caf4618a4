"""Environment throughput: single env (wrapped and unwrapped), vector env, greedy oracle.

Prints a Markdown table of steps/s, the median and the best of ``--repeats`` timed runs after a
warm-up (the machine is shared: the best run shows the code's own cost, the median what a user
sees), the vector/single ratios measured in the same run, and the mean episode return of the random
and greedy policies on 200 seeded trainees::

    python benchmarks/bench_env.py            # about a minute on a 2-core CPU
    python benchmarks/bench_env.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from fitness_weights_env import FitnessWeightsVectorEnv, sample_profiles
from fitness_weights_env.baselines import GreedyPolicy, RandomPolicy, run_episodes

Rate = tuple[float, float]  # (median, best) items per second


def measure(run: Callable[[], int], repeats: int) -> Rate:
    """Median and best ``items / seconds`` over ``repeats`` calls of ``run`` (which returns its item count)."""
    run()  # warm-up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        items = run()
        rates.append(items / (time.perf_counter() - start))
    return statistics.median(rates), max(rates)


def single_env_rate(env: gym.Env, steps: int, repeats: int) -> Rate:
    env.reset(seed=0)
    actions = [int(a) for a in np.random.default_rng(0).integers(0, 685, steps)]

    def run() -> int:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        return steps

    return measure(run, repeats)


def vector_env_rate(num_envs: int, steps: int, repeats: int) -> Rate:
    env = gym.make_vec("FitnessWeights-v0", num_envs=num_envs)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 685, (steps, num_envs))

    def run() -> int:
        for batch in actions:
            env.step(batch)
        return steps * num_envs

    return measure(run, repeats)


def oracle_rate(n_trainees: int, repeats: int) -> Rate:
    env = FitnessWeightsVectorEnv(n_trainees)
    policy = GreedyPolicy()

    def run() -> int:  # one full 64-step greedy episode per trainee
        observation, _ = env.reset(seed=0)
        for _ in range(64):
            observation, *_ = env.step(policy(observation, env))
        return n_trainees

    return measure(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per row")
    parser.add_argument("--trainees", type=int, default=200, help="trainees for the oracle and the return comparison")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    rows: list[tuple[str, Rate, str]] = []
    wrapped = single_env_rate(gym.make("FitnessWeights-v0"), 10_000, args.repeats)
    rows.append(("single env, gym.make (wrappers)", wrapped, "steps/s"))
    unwrapped = single_env_rate(gym.make("FitnessWeights-v0").unwrapped, 10_000, args.repeats)
    rows.append(("single env, unwrapped", unwrapped, "steps/s"))
    vector = {}
    for n in (8, 64, 256, 1024):
        vector[n] = vector_env_rate(n, max(128, 128_000 // n), args.repeats)
        rows.append((f"vector env, N={n}", vector[n], "steps/s"))
    oracle = oracle_rate(args.trainees, max(1, args.repeats // 2))
    rows.append((f"greedy oracle, {args.trainees} trainees x 64 steps", oracle, "trainees/s"))

    profiles = sample_profiles(args.trainees, seed=2026)
    greedy = run_episodes(GreedyPolicy(), profiles, seed=0).returns
    random = run_episodes(RandomPolicy(seed=0), profiles, seed=0).returns

    machine = platform.processor() or platform.machine()
    print(f"Machine: {machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}")
    print("\n| workload | median | best | unit |\n|---|---:|---:|---|")
    for name, (median, best), unit in rows:
        print(f"| {name} | {median:,.0f} | {best:,.0f} | {unit} |")
    ratio = vector[1024][0] / unwrapped[0], vector[1024][1] / unwrapped[1]
    print(f"\nvector N=1024 / unwrapped single env: {ratio[0]:.1f}x (medians), {ratio[1]:.1f}x (bests)")
    print(f"\n| policy ({args.trainees} trainees, 64 steps) | mean return | 95% CI |\n|---|---:|---:|")
    for name, returns in (("random", random), ("greedy", greedy)):
        half = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns))
        print(f"| {name} | {returns.mean():.3f} | ± {half:.3f} |")
    if args.json:
        figures = {name: {"median": median, "best": best} for name, (median, best), _ in rows}
        figures.update(vector_over_unwrapped=ratio, random_return=random.mean(), greedy_return=greedy.mean())
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
