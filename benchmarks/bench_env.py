"""Environment throughput: single env (wrapped and unwrapped), vector env, greedy oracle; v0 and v1.

Prints a Markdown table of steps/s: the median and the best of ``--rounds`` short timed windows per
workload, taken round-robin so that the shared machine's speed swings hit every row alike (the best
window shows the code's own cost, the median what a user sees); the vector/single ratio measured in
the same run; the v1/v0 ratio of the vector envs at N = 256, interleaved in the same rounds; and the mean
episode return of the random and greedy policies on 200 seeded trainees::

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


def interleaved_rates(workloads: dict[str, Callable[[], int]], rounds: int) -> dict[str, Rate]:
    """Time each workload once per round, round-robin, and return its median and best rate.

    Each call returns how many items it processed. Interleaving spreads the machine's speed swings
    over all workloads alike, so the ratios between rows are fair even when the absolute rates drift.
    """
    for run in workloads.values():
        run()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(rounds):
        for name, run in workloads.items():
            start = time.perf_counter()
            items = run()
            rates[name].append(items / (time.perf_counter() - start))
    return {name: (statistics.median(r), max(r)) for name, r in rates.items()}


def single_env_workload(env: gym.Env, steps: int) -> Callable[[], int]:
    """``steps`` random actions in one env (about 0.1 s)."""
    env.reset(seed=0)
    actions = [int(a) for a in np.random.default_rng(0).integers(0, 685, steps)]

    def run() -> int:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        return steps

    return run


def vector_env_workload(num_envs: int, env_id: str = "FitnessWeights-v0") -> Callable[[], int]:
    """Whole 64-step episodes of N trainees, one autoreset each (at least 4096 steps)."""
    env = gym.make_vec(env_id, num_envs=num_envs)
    env.reset(seed=0)
    steps = 64 * max(1, 4096 // (64 * num_envs))
    actions = np.random.default_rng(0).integers(0, 685, (steps, num_envs))

    def run() -> int:
        for batch in actions:
            env.step(batch)
        return steps * num_envs

    return run


def oracle_workload(n_trainees: int) -> Callable[[], int]:
    """One full 64-step greedy episode for each of ``n_trainees`` trainees."""
    env = FitnessWeightsVectorEnv(n_trainees)
    policy = GreedyPolicy()

    def run() -> int:
        observation, _ = env.reset(seed=0)
        for _ in range(64):
            observation, *_ = env.step(policy(observation, env))
        return n_trainees

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed windows per row, interleaved")
    parser.add_argument("--trainees", type=int, default=200, help="trainees for the oracle and the return comparison")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    workloads = {
        "single env, gym.make (wrappers)": single_env_workload(gym.make("FitnessWeights-v0"), 2000),
        "single env, unwrapped": single_env_workload(gym.make("FitnessWeights-v0").unwrapped, 2000),
    }
    for n in (8, 64, 256, 1024):
        workloads[f"vector env, N={n}"] = vector_env_workload(n)
    workloads["v1 single env, unwrapped"] = single_env_workload(gym.make("FitnessWeights-v1").unwrapped, 1000)
    for n in (8, 64, 256, 1024):
        workloads[f"v1 vector env, N={n}"] = vector_env_workload(n, "FitnessWeights-v1")
    rates = interleaved_rates(workloads, args.rounds)
    oracle_name = f"greedy oracle, {args.trainees} trainees x 64 steps"
    rates.update(interleaved_rates({oracle_name: oracle_workload(args.trainees)}, max(1, args.rounds // 5)))
    units = {name: "trainees/s" if name == oracle_name else "steps/s" for name in rates}

    profiles = sample_profiles(args.trainees, seed=2026)
    greedy = run_episodes(GreedyPolicy(), profiles, seed=0).returns
    random = run_episodes(RandomPolicy(seed=0), profiles, seed=0).returns

    machine = platform.processor() or platform.machine()
    print(f"Machine: {machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}")
    print("\n| workload | median | best | unit |\n|---|---:|---:|---|")
    for name, (median, best) in rates.items():
        print(f"| {name} | {median:,.0f} | {best:,.0f} | {units[name]} |")
    vector, unwrapped = rates["vector env, N=1024"], rates["single env, unwrapped"]
    ratio = vector[0] / unwrapped[0], vector[1] / unwrapped[1]
    print(f"\nvector N=1024 / unwrapped single env: {ratio[0]:.1f}x (medians), {ratio[1]:.1f}x (bests)")
    v1, v0 = rates["v1 vector env, N=256"], rates["vector env, N=256"]
    v1_ratio = v1[0] / v0[0], v1[1] / v0[1]
    print(f"v1 / v0 vector env at N=256: {v1_ratio[0]:.3f} (medians), {v1_ratio[1]:.3f} (bests)")
    print(f"\n| policy ({args.trainees} trainees, 64 steps) | mean return | 95% CI |\n|---|---:|---:|")
    for name, returns in (("random", random), ("greedy", greedy)):
        half = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns))
        print(f"| {name} | {returns.mean():.3f} | ± {half:.3f} |")
    if args.json:
        figures = {name: {"median": median, "best": best} for name, (median, best) in rates.items()}
        figures.update(vector_over_unwrapped=ratio, v1_over_v0_n256=v1_ratio)
        figures.update(random_return=random.mean(), greedy_return=greedy.mean())
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)


if __name__ == "__main__":
    main()
