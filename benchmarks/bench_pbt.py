"""Population-based training against its own members with fixed hyperparameters and the README's configuration.

For each seed: 4 PPO members (``sb3_ext.pbt.PPOMember``, the member seeded ``seed * 10 + i``, initial values drawn
from ``PBT_SPACE`` with the seed; in ``--hosts`` member processes) train ``--timesteps`` steps each,

* with PBT (an exploit and explore step every ``--interval`` rollouts), and
* the same members without any copy or perturbation (``exploit=False``): the fixed members;

the member with the best validation score of each population, and the README's configuration trained for the
population's total steps (``4 x --timesteps``, equal total steps) and for one member's, are evaluated on 200
held-out trainees of the seed (``evaluate_model``; the same trainees for every row). The table gives the sampled
policy's normalized score per seed, the mean and IQM with 95% stratified-bootstrap intervals (``benchmarks/seeds.py``),
and PBT's schedules (``pbt_schedules_seed<N>.png`` and ``pbt_seed<N>.json`` in ``--out``). Resumable by run.

``--speed-rounds R`` instead times ``fitness-weights tune --pbt`` (4 members, ``--speed-timesteps`` each, an
exploit step every 2 rollouts) with its members in this process and in 2 worker processes, the two alternating for
R rounds, each a fresh command (its imports and process starts included): the median seconds and their ratio::

    python benchmarks/bench_pbt.py --seeds 0,1,2 --timesteps 200000 --hosts 2
    python benchmarks/bench_pbt.py --speed-rounds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from seeds import iqm, load_run, mean, stratified_bootstrap


def population(
    seed: int, timesteps: int, env_id: str, interval: int, exploit: bool, out: Path, trainees: int, n_hosts: int
) -> None:
    """Train a population (in ``n_hosts`` member processes when above 1), write its record and its best member's
    evaluation (skipped when there)."""
    from fitness_weights_api.plots import plot_pbt
    from sb3_ext.config import TrainConfig
    from sb3_ext.evaluate import evaluate_model
    from sb3_ext.pbt import PBT_SPACE, PPOMember, population_based_training, sample
    from sb3_ext.pbt_processes import MemberHost, ProcessMember

    name = "pbt" if exploit else "fixed"
    folder = out / name / f"seed{seed}"
    if (folder / "evaluation.json").is_file():
        return
    base = TrainConfig(timesteps=timesteps, env_id=env_id, device="cpu", learning_rate_schedule="constant")
    rng = np.random.default_rng(seed)
    initial = [sample(PBT_SPACE, rng) for _ in range(4)]
    configs = [dataclasses.replace(base, seed=seed * 10 + i) for i in range(4)]
    hosts = [MemberHost(threads=1) for _ in range(n_hosts)] if n_hosts > 1 else []
    try:
        members: list[Any] = [
            ProcessMember(hosts[i % n_hosts], config, values) if hosts else PPOMember(config, values)
            for i, (config, values) in enumerate(zip(configs, initial, strict=True))
        ]
        intervals = max(1, round(timesteps / (interval * base.rollout_size())))
        start = time.perf_counter()
        result = population_based_training(members, intervals, interval, PBT_SPACE, seed=seed, exploit=exploit)
        seconds = time.perf_counter() - start
        best = result.best
        if hosts:  # the best member's policy, brought here to be evaluated
            model = PPOMember(configs[best], members[best].hyperparams).model
            model.set_parameters(members[best].host.call("get", members[best].index), exact_match=True)
        else:
            model = members[best].model
    finally:
        for host in hosts:
            host.close()
    report = evaluate_model(model, trainees, seed=seed, env_id=env_id)
    report.extra.update(train_seconds=seconds, best_member=best, final_hyperparams=members[best].hyperparams)
    report.write(folder)
    (out / f"{name}_seed{seed}.json").write_text(json.dumps(result.to_dict(), indent=1))
    if exploit:
        plot_pbt(result.history, list(PBT_SPACE), out / f"pbt_schedules_seed{seed}.png")
    print(f"{folder}: {report.normalized_score:.3f} in {seconds:.0f} s; scores {result.final_scores}", flush=True)


def readme_run(seed: int, timesteps: int, env_id: str, folder: Path, trainees: int) -> None:
    """The README's configuration for ``timesteps`` steps (skipped when evaluated)."""
    from sb3_ext.config import TrainConfig
    from sb3_ext.evaluate import evaluate_model
    from sb3_ext.recipe import make_model

    if (folder / "evaluation.json").is_file():
        return
    config = TrainConfig(timesteps=timesteps, env_id=env_id, device="cpu", seed=seed)
    model = make_model(config)
    start = time.perf_counter()
    model.learn(timesteps)
    seconds = time.perf_counter() - start
    report = evaluate_model(model, trainees, seed=seed, env_id=env_id)
    report.extra.update(train_seconds=seconds)
    report.write(folder)
    print(f"{folder}: {report.normalized_score:.3f} in {seconds:.0f} s", flush=True)


def cell(scores: np.ndarray, statistic: Any, reps: int) -> str:
    low, high = stratified_bootstrap(scores, statistic, reps, 0)
    seeds_low, seeds_high = stratified_bootstrap(scores, statistic, reps, 0, resample_strata=True)
    value = float(statistic(scores[None])[0])
    return f"{value:.3f} [{low:.3f}, {high:.3f}; {seeds_low:.3f}, {seeds_high:.3f}]"


def speed(rounds: int, timesteps: int) -> None:
    """Time ``tune --pbt`` with 1 and 2 member processes, alternating, and print the table."""
    seconds: dict[int, list[float]] = {1: [], 2: []}
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}  # torch decides
    for _ in range(rounds):
        for workers in seconds:
            with tempfile.TemporaryDirectory() as home:
                command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", home, "tune", "--pbt", "--quiet"]
                command += ["--population", "4", "--interval", "2", "--timesteps", str(timesteps)]
                command += ["--workers", str(workers), "--study", "speed"]
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True, env=env)
                seconds[workers].append(time.perf_counter() - start)
    one, two = (float(np.median(seconds[w])) for w in (1, 2))
    print(f"Machine: {os.cpu_count()} CPUs; 4 members of {timesteps} steps; {rounds} rounds, alternating")
    print("\n| member processes | seconds (median) | each round | 1 over this |\n|---:|---:|---|---:|")
    for workers, median in ((1, one), (2, two)):
        print(f"| {workers} | {median:.1f} | {', '.join(f'{x:.1f}' for x in seconds[workers])} | {one / median:.2f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env-id", default="FitnessWeights-v0")
    parser.add_argument("--timesteps", type=int, default=200_000, help="steps of each member")
    parser.add_argument("--hosts", type=int, default=2, help="member processes (one torch thread each)")
    parser.add_argument("--interval", type=int, default=4, help="rollouts between two exploit steps")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trainees", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_pbt"))
    parser.add_argument("--reps", type=int, default=20_000)
    parser.add_argument("--speed-rounds", type=int, default=0, help="time 1 against 2 member processes instead")
    parser.add_argument("--speed-timesteps", type=int, default=49_152, help="steps of each member, timed")
    args = parser.parse_args(argv)
    if args.speed_rounds:
        speed(args.speed_rounds, args.speed_timesteps)
        return
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {
        "PBT, best member": "pbt",
        "fixed hyperparameters, best member": "fixed",
        f"README config, {4 * args.timesteps} steps (equal total)": "readme-total",
        f"README config, {args.timesteps} steps (one member's)": "readme-member",
    }
    for seed in seeds:
        for exploit in (True, False):
            population(seed, args.timesteps, args.env_id, args.interval, exploit, args.out, args.trainees, args.hosts)
        readme_run(seed, 4 * args.timesteps, args.env_id, args.out / "readme-total" / f"seed{seed}", args.trainees)
        readme_run(seed, args.timesteps, args.env_id, args.out / "readme-member" / f"seed{seed}", args.trainees)
    lines = [
        f"{args.env_id}; 4 members of {args.timesteps} steps, exploit every {args.interval} rollouts; seeds {seeds}; "
        f"{args.trainees} held-out trainees per seed; sampled policy; [95% CI; seeds too]",
        "",
        "| run | per seed | mean | IQM |",
        "|---|---|---|---|",
    ]
    for label, name in rows.items():
        runs = [load_run(args.out / name / f"seed{seed}") for seed in seeds]
        scores = np.stack([run.normalized("sampled") for run in runs], axis=1)
        per_seed = ", ".join(f"{s:.3f}" for s in scores.mean(axis=0))
        lines.append(f"| {label} | {per_seed} | {cell(scores, mean, args.reps)} | {cell(scores, iqm, args.reps)} |")
    print("\n".join(lines))
    (args.out / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
