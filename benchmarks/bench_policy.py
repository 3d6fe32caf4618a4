"""PPO training throughput of AttnCQQXPolicy against SB3's MlpPolicy, same settings and env, one run.

Each round trains a fresh model of each policy for ``--rollouts`` rollouts (collection and update,
as ``learn`` does) and records env steps per second. Rounds alternate between the policies, so the
shared machine's speed swings hit both alike; the table gives the median and the best round, and
the attention/MLP ratio of each::

    python benchmarks/bench_policy.py                 # CPU, both settings below
    python benchmarks/bench_policy.py --device cuda   # also AMP on and off for the attention policy
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch as th
from stable_baselines3.common.env_util import make_vec_env

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from sb3_ext import PPO

SETTINGS = {
    "SB3 defaults, 1 env": {"n_envs": 1, "n_steps": 2048, "batch_size": 64, "n_epochs": 10},
    "training run, 8 envs": {"n_envs": 8, "n_steps": 256, "batch_size": 256, "n_epochs": 10},
}


def fps(policy: str, setting: dict, rollouts: int, device: str, use_amp: str) -> float:
    setting = dict(setting)
    n_envs = setting.pop("n_envs")
    env = make_vec_env("FitnessWeights-v0", n_envs=n_envs, seed=0)
    model = PPO(policy, env, seed=0, device=device, use_amp=use_amp, **setting)
    steps = rollouts * n_envs * setting["n_steps"]
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per policy and setting")
    parser.add_argument("--rollouts", type=int, default=2, help="rollouts (collect + update) per round")
    parser.add_argument("--device", default="cpu", help="torch device")
    args = parser.parse_args()

    runs = [("MlpPolicy", "off"), ("AttnCQQXPolicy", "off")]
    if args.device.startswith("cuda"):
        runs += [("AttnCQQXPolicy", "bf16"), ("AttnCQQXPolicy", "fp16")]
    threads = th.get_num_threads()
    print(f"Machine: {platform.machine()}, torch {th.__version__}, {threads} threads, device {args.device}")
    print("\n| setting | policy | AMP | median FPS | best FPS | vs MLP (median) |\n|---|---|---|---:|---:|---:|")
    for name, setting in SETTINGS.items():
        rates: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
        for _ in range(args.rounds):
            for policy, amp in runs:
                rates[(policy, amp)].append(fps(policy, setting, args.rollouts, args.device, amp))
        mlp = statistics.median(rates[("MlpPolicy", "off")])
        for (policy, amp), values in rates.items():
            median = statistics.median(values)
            print(f"| {name} | {policy} | {amp} | {median:,.0f} | {max(values):,.0f} | {median / mlp:.2f} |")


if __name__ == "__main__":
    main()
