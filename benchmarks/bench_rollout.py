"""Rollout engines compared: env-only steps/s and PPO end-to-end FPS, one run.

Rows: SB3's ``DummyVecEnv`` x1 and x8, ``SubprocVecEnv`` x8, and the batched VecEnv x8, x64 and x256
(or the sizes given). SB3 rows train with SB3's PPO defaults (rollout 2048 steps, minibatch 64,
10 epochs; x8 takes 256 steps per env so that the rollout stays 2048); batched rows train with the
preset's ``n_steps``, ``batch_size`` and ``n_epochs``. Each PPO figure is a fresh model learning a
few whole rollouts, collection and update, as ``learn`` does::

    python benchmarks/bench_rollout.py                        # CPU preset, both policies
    python benchmarks/bench_rollout.py --device cuda --preset gpu --batched 256 1024 --amp --ppo-sb3 reference
    python benchmarks/bench_rollout.py --learning 200000      # normalized score at equal env steps

Env-only windows alternate across rows (median and best of ``--rounds`` windows), so the shared
machine's speed swings hit every row alike. ``--learning STEPS`` trains the attention policy for the
same number of env steps with SB3's defaults and with the preset, both at the README run's learning rate
(``examples/train_ppo.py``), and evaluates both on 200 held-out trainees.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from dataclasses import dataclass, replace

import numpy as np
import torch as th

from sb3_ext.config import TrainConfig
from sb3_ext.evaluate import evaluate_model
from sb3_ext.presets import get_preset
from sb3_ext.recipe import make_env, make_model

SB3_N_STEPS = get_preset("sb3").n_steps


@dataclass(frozen=True)
class Row:
    """One rollout engine: the training config whose envs and PPO sizes it runs (the project's recipe)."""

    config: TrainConfig

    @property
    def label(self) -> str:
        names = {"dummy": "DummyVecEnv", "subproc": "SubprocVecEnv", "batched": "batched"}
        return f"{names[self.config.vectorization]} x{self.config.envs()}"

    @property
    def ppo_kwargs(self) -> dict:
        return self.config.ppo_arguments()

    def make_env(self):
        return make_env(self.config)


def rows(preset_name: str, batched: list[int], timesteps: int = 1) -> list[Row]:
    """SB3's defaults (one env, and 8 envs sharing its rollout), then the preset's sizes on batched envs."""
    per_env_8 = {"n_steps": SB3_N_STEPS // 8}
    return [
        Row(TrainConfig(timesteps, preset="sb3", vectorization="dummy")),
        Row(TrainConfig(timesteps, preset="sb3", n_envs=8, vectorization="dummy", ppo_kwargs=per_env_8)),
        Row(TrainConfig(timesteps, preset="sb3", n_envs=8, vectorization="subproc", ppo_kwargs=per_env_8)),
        *(Row(TrainConfig(timesteps, preset=preset_name, n_envs=n)) for n in batched),
    ]


def env_steps_per_second(env, seconds: float, rng: np.random.Generator) -> float:
    """Random-action steps of a VecEnv for about ``seconds`` (the env already reset)."""
    actions = rng.integers(0, env.action_space.n, size=(64, env.num_envs))
    steps = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for action in actions:
            env.step(action)
        steps += len(actions) * env.num_envs
    return steps / elapsed


def ppo_fps(row: Row, policy: str, device: str, use_amp: str, min_steps: int) -> float:
    """Env steps per second of ``learn`` over whole rollouts, at least ``min_steps`` and two rollouts."""
    ppo_kwargs = {**(row.config.ppo_kwargs or {}), "use_amp": use_amp}
    config = replace(row.config, policy=policy, device=device, ppo_kwargs=ppo_kwargs)
    model = make_model(config)
    rollout = config.rollout_size()
    steps = rollout * max(2, math.ceil(min_steps / rollout))
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    model.get_env().close()
    return steps / seconds


def throughput(args: argparse.Namespace) -> None:
    table = rows(args.preset, args.batched)
    print("\n### Env-only steps/s (random actions)\n")
    envs = [row.make_env() for row in table]
    for env in envs:
        env.reset()
    rng = np.random.default_rng(0)
    rates: list[list[float]] = [[] for _ in table]
    for _ in range(args.rounds):
        for env, rate in zip(envs, rates, strict=True):
            rate.append(env_steps_per_second(env, args.window, rng))
    for env in envs:
        env.close()
    base = statistics.median(rates[0])
    print("| engine | median steps/s | best steps/s | vs DummyVecEnv x1 (median) |\n|---|---:|---:|---:|")
    for row, rate in zip(table, rates, strict=True):
        median = statistics.median(rate)
        print(f"| {row.label} | {median:,.0f} | {max(rate):,.0f} | {median / base:.1f}x |")

    print("\n### PPO end-to-end FPS (collection + update)\n")
    amps = ["off", "bf16", "fp16"] if args.amp else ["off"]
    print("| engine | n_steps / batch / epochs | policy | AMP | FPS | vs SB3 defaults (x1, MLP) |")
    print("|---|---|---|---|---:|---:|")
    reference = None
    for index, row in enumerate(table):
        sb3_row = row.config.preset == "sb3"
        if sb3_row and args.ppo_sb3 == "reference" and index > 0:
            continue
        for policy in args.policies:
            if sb3_row and args.ppo_sb3 == "reference" and policy != "MlpPolicy":
                continue
            for amp in amps if policy == "AttnCQQXPolicy" else ["off"]:
                fps = ppo_fps(row, policy, args.device, amp, args.min_steps)
                reference = reference or fps  # the first row: DummyVecEnv x1, SB3 defaults, MlpPolicy
                sizes = "{n_steps} / {batch_size} / {n_epochs}".format(**row.ppo_kwargs)
                print(f"| {row.label} | {sizes} | {policy} | {amp} | {fps:,.0f} | {fps / reference:.1f}x |", flush=True)


def learning(args: argparse.Namespace) -> None:
    preset = get_preset(args.preset)
    runs = {  # the learning rate of examples/train_ppo.py (the config's default schedule)
        "SB3 defaults, DummyVecEnv x1": TrainConfig(args.learning, preset="sb3", vectorization="dummy"),
        f"preset {args.preset!r}, batched x{preset.n_envs}": TrainConfig(args.learning, preset=args.preset),
    }
    print(f"\n### Normalized score after {args.learning:,} env steps (AttnCQQXPolicy, 200 held-out trainees)\n")
    print("| settings | train seconds | normalized score | 95% CI | deterministic |\n|---|---:|---:|---|---:|")
    for name, config in runs.items():
        model = make_model(replace(config, device=args.device))
        start = time.perf_counter()
        model.learn(args.learning)
        seconds = time.perf_counter() - start
        report = evaluate_model(model, n_trainees=200, seed=0)
        low, high = report.normalized_score_ci
        print(
            f"| {name} | {seconds:.0f} | {report.normalized_score:.3f} | {low:.3f} to {high:.3f} "
            f"| {report.deterministic_score:.3f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device of the learner")
    parser.add_argument("--preset", default="cpu", help="throughput preset of the batched rows (cpu or gpu)")
    parser.add_argument("--batched", type=int, nargs="+", default=[8, 64, 256], help="batched env sizes")
    parser.add_argument("--policies", nargs="+", default=["MlpPolicy", "AttnCQQXPolicy"], help="policies to train")
    parser.add_argument("--amp", action="store_true", help="also AttnCQQXPolicy with bf16 and fp16 autocast (CUDA)")
    parser.add_argument("--rounds", type=int, default=5, help="env-only windows per row")
    parser.add_argument("--window", type=float, default=0.5, help="seconds per env-only window")
    parser.add_argument("--min-steps", type=int, default=8192, help="least env steps per PPO figure")
    parser.add_argument(
        "--ppo-sb3",
        choices=("all", "reference"),
        default="all",
        help="PPO rows of SB3's engines: all, or only the reference (DummyVecEnv x1, MlpPolicy); SB3's defaults "
        "crawl on a GPU",
    )
    parser.add_argument("--learning", type=int, default=0, help="env steps of the learning comparison (0: skip)")
    args = parser.parse_args()
    print(f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch {th.__version__}, ", end="")
    print(f"{th.get_num_threads()} threads, device {args.device}")
    if args.learning:
        learning(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
