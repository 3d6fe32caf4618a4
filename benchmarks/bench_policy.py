"""PPO training throughput of AttnCQQXPolicy against SB3's MlpPolicy, same settings and env, one run.

Each round trains a fresh model of each policy for ``--rollouts`` rollouts (collection and update,
as ``learn`` does) and records env steps per second. Rounds alternate between the policies, so the
shared machine's speed swings hit both alike; the table gives the median and the best round, and
the attention/MLP ratio of each. The attention policy runs with both action distributions
(``categorical``: the project's ``lean`` one and SB3's ``torch.distributions`` one), and the table gives their
ratio::

    python benchmarks/bench_policy.py                 # CPU, both settings below
    python benchmarks/bench_policy.py --device cuda   # also AMP on and off for the attention policy
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace

import torch as th
from stable_baselines3.common.distributions import CategoricalDistribution

from fitness_weights_env import N_ACTIONS
from sb3_ext.config import TrainConfig
from sb3_ext.distributions import LeanCategorical
from sb3_ext.recipe import make_model

SETTINGS = {  # the project's training configs (examples/train_ppo.py builds the second one)
    "SB3 defaults, DummyVecEnv x1": TrainConfig(1, preset="sb3", vectorization="dummy"),
    "cpu preset, batched x64 (README run)": TrainConfig(1, preset="cpu"),
}


def fps(policy: str, setting: TrainConfig, rollouts: int, device: str, use_amp: str, categorical: str) -> float:
    policy_kwargs = {"categorical": categorical} if policy == "AttnCQQXPolicy" else None
    config = replace(
        setting, policy=policy, device=device, ppo_kwargs={"use_amp": use_amp}, policy_kwargs=policy_kwargs
    )
    model = make_model(config)
    steps = rollouts * config.rollout_size()
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def distribution_cost(rounds: int = 7, calls: int = 200) -> None:
    """Microseconds of one rollout step's distribution work (a draw and its log-probability, B = 64 x 685)."""
    logits = th.randn(64, N_ACTIONS) * 3
    distributions = {"sb3": CategoricalDistribution(N_ACTIONS), "lean": LeanCategorical(N_ACTIONS)}
    times: dict[str, list[float]] = {name: [] for name in distributions}
    with th.no_grad():
        for _ in range(rounds):  # interleaved windows
            for name, distribution in distributions.items():
                start = time.perf_counter()
                for _ in range(calls):
                    dist = distribution.proba_distribution(logits)
                    dist.log_prob(dist.get_actions())
                times[name].append((time.perf_counter() - start) / calls * 1e6)
    sb3, lean = (statistics.median(times[name]) for name in ("sb3", "lean"))
    print("\n| distribution, B = 64 | draw + log_prob, median us |\n|---|---:|")
    print(f"| SB3's (torch.distributions, multinomial) | {sb3:,.0f} |\n| lean (inverse CDF) | {lean:,.0f} |")
    print(f"| ratio | {sb3 / lean:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per policy and setting")
    parser.add_argument("--rollouts", type=int, default=2, help="rollouts (collect + update) per round")
    parser.add_argument("--device", default="cpu", help="torch device")
    args = parser.parse_args()

    runs = [("MlpPolicy", "off", "sb3"), ("AttnCQQXPolicy", "off", "lean"), ("AttnCQQXPolicy", "off", "sb3")]
    if args.device.startswith("cuda"):
        runs += [("AttnCQQXPolicy", "bf16", "lean"), ("AttnCQQXPolicy", "fp16", "lean")]
    threads = th.get_num_threads()
    print(f"Machine: {platform.machine()}, torch {th.__version__}, {threads} threads, device {args.device}")
    distribution_cost()
    print(
        "\n| setting | policy | categorical | AMP | median FPS | best FPS | vs MLP (median) |"
        "\n|---|---|---|---|---:|---:|---:|"
    )
    for name, setting in SETTINGS.items():
        rates: dict[tuple[str, str, str], list[float]] = {run: [] for run in runs}
        for _ in range(args.rounds):
            for run in runs:
                rates[run].append(fps(run[0], setting, args.rollouts, args.device, run[1], run[2]))
        mlp = statistics.median(rates[runs[0]])
        for (policy, amp, categorical), values in rates.items():
            median = statistics.median(values)
            print(
                f"| {name} | {policy} | {categorical} | {amp} | {median:,.0f} | {max(values):,.0f} | "
                f"{median / mlp:.2f} |",
                flush=True,
            )
        lean, sb3 = (statistics.median(rates[("AttnCQQXPolicy", "off", c)]) for c in ("lean", "sb3"))
        print(f"| {name} | AttnCQQXPolicy | lean over sb3 | off | {lean / sb3:.2f}x | | |", flush=True)


if __name__ == "__main__":
    main()
