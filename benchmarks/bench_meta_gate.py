"""The gate of meta-RL: can knowing a trainee's hidden parameters pay on v1, and by how much?

Trains the README's PPO recipe on ``FitnessWeights-v1`` twice per seed, with the same network, budget and seed:
``ppo``, on the observation alone (no adaptation), and ``oracle``, with the trainee's hidden parameters appended
(:mod:`sb3_ext.meta.oracle`: all 228 features), and ``oracle-summary``, with only the 8 that summarize the
trainee (responsiveness and the time constants). All are evaluated on the 200 held-out trainees of their seed (the
evaluation's, sampled actions, as ``optimize``), each trainee's margin over the coach in units of the set's mean
oracle-plan margin (``benchmarks/seeds.py``'s v1 score). Adaptation cannot gain more than the oracle's lead; the
issue's gate asks for a lead of at least 0.10::

    OMP_NUM_THREADS=1 python benchmarks/bench_meta_gate.py --arms ppo --seeds 0,1,2 &
    OMP_NUM_THREADS=1 python benchmarks/bench_meta_gate.py --arms oracle --seeds 0,1,2
    python benchmarks/bench_meta_gate.py --table

Every run is a JSON record in ``--records`` (per-trainee returns, training time), so a study resumes where it
stopped and the table is rebuilt from the records.

``--hidden wide`` runs the same study on trainees drawn from the wide distribution of hidden parameters
(``gym.make("FitnessWeights-v1", hidden="wide")``: the training envs, the held-out trainees and the coach and
oracle anchors alike). Its records are kept apart, in ``benchmarks/records/meta-gate-wide`` (in the repository,
as the offline study's), and carry ``"hidden": "wide"``; the default distribution's stay in
``runs/bench_meta_gate``::

    OMP_NUM_THREADS=1 python benchmarks/bench_meta_gate.py --hidden wide --arms ppo --seeds 0,1,2
    python benchmarks/bench_meta_gate.py --hidden wide --table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fitness_weights_env.baselines import run_episodes
from fitness_weights_env.hidden import HIDDEN_DISTRIBUTIONS
from sb3_ext.actions import PolicyActions
from sb3_ext.config import TrainConfig
from sb3_ext.evaluate import anchor_runs, held_out_profiles
from sb3_ext.meta.oracle import HiddenParametersVecEnv, WithHidden
from sb3_ext.recipe import make_env, make_model

sys.path.insert(0, str(Path(__file__).parent))
from seeds import iqm, mean, stratified_bootstrap

ENV_ID = "FitnessWeights-v1"
ARMS = ("ppo", "oracle", "oracle-summary")
FEATURES = {"oracle": "all", "oracle-summary": "summary"}  # the oracle arms' hidden feature sets
RECORDS = {"default": Path("runs/bench_meta_gate"), "wide": Path(__file__).parent / "records" / "meta-gate-wide"}
"""Where each distribution's records go by default."""


def _tag(hidden: str) -> str:
    """The distribution's part of a record's file name: none for the default (its records' names as before)."""
    return "" if hidden == "default" else f"-{hidden}"


def run(arm: str, seed: int, timesteps: int, policy: str, trainees: int, hidden: str = "default") -> dict[str, Any]:
    """Train one arm with one seed and evaluate it on the seed's held-out trainees, of the distribution ``hidden``."""
    config = TrainConfig(timesteps=timesteps, env_id=ENV_ID, policy=policy, seed=seed, device="cpu")
    env_kwargs = {} if hidden == "default" else {"hidden": hidden}  # the default's calls exactly as before
    env = make_env(config, env_kwargs)
    features = FEATURES.get(arm)
    model = make_model(config, env if features is None else HiddenParametersVecEnv(env, features))
    start = time.perf_counter()
    model.learn(timesteps, progress_bar=True)
    seconds = time.perf_counter() - start
    profiles = held_out_profiles(trainees, seed)
    actions = PolicyActions(model.policy, [seed + i for i in range(trainees)])
    policy_of_arm = actions if features is None else WithHidden(actions, features)
    returns = run_episodes(policy_of_arm, profiles, seed=seed, env_id=ENV_ID, **env_kwargs)
    low, high = anchor_runs(ENV_ID, trainees, seed, **env_kwargs)
    return {
        "arm": arm,
        "seed": seed,
        "policy": policy,
        "timesteps": timesteps,
        "hidden": hidden,
        "train_seconds": seconds,
        "returns": returns.returns.tolist(),
        "low": low.tolist(),
        "high": high.tolist(),
    }


def scores(record: dict[str, Any]) -> np.ndarray:
    """Per-trainee v1 scores: the margin over the coach in units of the set's mean oracle-plan margin."""
    low, high = np.asarray(record["low"]), np.asarray(record["high"])
    return (np.asarray(record["returns"]) - low) / (high.mean() - low.mean())


def table(records: Path, policy: str, timesteps: int, reps: int, hidden: str = "default") -> list[str]:
    """The Markdown table of every arm's recorded seeds at this policy, budget and distribution, and the leads.

    A record without ``"hidden"`` is of the default distribution (the records written before the option).
    """
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(records.glob(f"*-{policy}-{timesteps}{_tag(hidden)}-seed*.json")):
        record = json.loads(path.read_text())
        if record.get("hidden", "default") == hidden:
            found.setdefault(record["arm"], {})[record["seed"]] = record
    lines = [
        "| arm | per seed | mean [95% CI over trainees; seeds resampled too] | IQM [95% CI] | training s |",
        "|---|---|---|---|---:|",
    ]
    matrices = {}
    for arm in ARMS:
        runs = [found.get(arm, {})[s] for s in sorted(found.get(arm, {}))]
        if not runs:
            continue
        matrix = np.stack([scores(r) for r in runs], axis=1)  # trainees x seeds
        matrices[arm] = (matrix, [r["seed"] for r in runs])
        within = stratified_bootstrap(matrix, mean, reps, 0)
        across = stratified_bootstrap(matrix, mean, reps, 1, resample_strata=True)
        interval = stratified_bootstrap(matrix, iqm, reps, 0)
        lines.append(
            f"| {arm} | {', '.join(f'{s:.3f}' for s in matrix.mean(axis=0))} | {matrix.mean():.3f} "
            f"[{within[0]:.3f}, {within[1]:.3f}; {across[0]:.3f}, {across[1]:.3f}] | "
            f"{float(iqm(matrix[None])[0]):.3f} [{interval[0]:.3f}, {interval[1]:.3f}] | "
            f"{np.mean([r['train_seconds'] for r in runs]):.0f} |"
        )
    for arm in FEATURES:
        if "ppo" not in matrices or arm not in matrices or matrices["ppo"][1] != matrices[arm][1]:
            continue
        lead = matrices[arm][0] - matrices["ppo"][0]  # paired: the same trainees of the same seeds
        within = stratified_bootstrap(lead, mean, reps, 2)
        across = stratified_bootstrap(lead, mean, reps, 3, resample_strata=True)
        verdict = "met" if within[0] >= 0.10 else ("not met" if within[1] < 0.10 else "undecided")
        lines += [
            "",
            f"{arm} minus no adaptation, paired: {lead.mean():+.3f} [{within[0]:+.3f}, {within[1]:+.3f}; seeds "
            f"resampled too {across[0]:+.3f}, {across[1]:+.3f}]; the gate (a lead of at least 0.10): **{verdict}**.",
        ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--timesteps", type=int, default=800_000, help="the README's v1 budget")
    parser.add_argument("--policy", default="MlpPolicy", help="MlpPolicy (the attention one reads v1's 199 values)")
    parser.add_argument("--trainees", type=int, default=200)
    parser.add_argument(
        "--hidden", default="default", choices=sorted(HIDDEN_DISTRIBUTIONS), help="the trainees' hidden distribution"
    )
    parser.add_argument("--records", type=Path, default=None, help="default: RECORDS of the distribution")
    parser.add_argument("--reps", type=int, default=20_000, help="bootstrap replicates")
    parser.add_argument("--table", action="store_true", help="only print the table of the records")
    args = parser.parse_args(argv)
    if args.records is None:
        args.records = RECORDS[args.hidden]
    args.records.mkdir(parents=True, exist_ok=True)
    if not args.table:
        for seed in (int(s) for s in args.seeds.split(",")):
            for arm in args.arms.split(","):
                if arm not in ARMS:
                    raise SystemExit(f"--arms: {arm!r} is not one of {ARMS}")
                path = args.records / f"{arm}-{args.policy}-{args.timesteps}{_tag(args.hidden)}-seed{seed}.json"
                if not path.exists():
                    print(f"{arm} seed {seed} ...", flush=True)
                    record = run(arm, seed, args.timesteps, args.policy, args.trainees, args.hidden)
                    path.write_text(json.dumps(record))
    print("\n".join(table(args.records, args.policy, args.timesteps, args.reps, args.hidden)))


if __name__ == "__main__":
    main()
