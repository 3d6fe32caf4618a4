"""Aggregate the README's training run over several training seeds: per-seed scores, mean, IQM, bootstrap intervals.

Each folder is the ``--out`` of one ``examples/train_ppo.py`` run (one training seed); its
``evaluation.json`` (written by ``sb3_ext.evaluate``) holds every held-out trainee's return under the
sampled policy (the optimize outcome), the most likely actions, greedy and random, and the edge table::

    for seed in 0 1 2; do python examples/train_ppo.py --device cpu --seed $seed --out runs/seed$seed; done
    python benchmarks/seeds.py runs/seed0 runs/seed1 runs/seed2 --out runs/seeds.md

**Scores.** Per seed, the normalized score is the report's, ``(mean R - mean R_random) / (mean R_greedy -
mean R_random)`` over its 200 held-out trainees. For the aggregates each trainee is a task with its own
normalization, ``(R_i - R_random,i) / (R_greedy,i - R_random,i)``, as Agarwal et al. (2021, "Deep
reinforcement learning at the edge of the statistical precipice", the ``rliable`` library) normalize each
game by its own reference scores. The scores form a matrix of ``trainees x seeds``.

**Aggregates** (rliable's definitions): the mean, and the interquartile mean (IQM), the mean of the
middle 50% of all the matrix's scores (``scipy.stats.trim_mean(scores, 0.25, axis=None)``), which is
robust to the few trainees whose greedy-random gap is small and whose normalized score is noise.

**Intervals**: 95% percentile intervals of the stratified bootstrap (rliable's ``StratifiedBootstrap``).
Each seed has its own held-out trainees (seeded ``10000 + seed``), so the seeds are the strata and the
trainees the runs within them: a replicate draws, for each seed, as many of its trainees with
replacement as it has. That interval treats the trained models as given. The second interval adds the
seeds' own variation (rliable's ``task_bootstrap=True``): a replicate first draws the seeds with
replacement, then the trainees within each drawn seed; with 3 seeds it can only be coarse. This script
implements both with numpy (the same resampling as rliable 1.2.0, which it does not need; with
``rliable`` installed, ``--check-rliable`` compares the point estimates and the intervals).

On ``FitnessWeights-v1`` (the report's ``env_id``) the references are the coach (0) and the oracle (1), and a
trainee's score is its margin over the coach in units of its seed's mean oracle margin (:meth:`SeedRun.normalized`).

The edge table (``sb3_ext.evaluate.EDGE_PROFILES``) is given per seed and as the mean and the minimum
over seeds, with the acceptance of each profile: both policies at least random (score >= 0) and at least
0.8 where greedy and random differ by more than 0.05 in mean return.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import trim_mean

SAMPLED, DETERMINISTIC = "policy (optimize: sampled, seeded)", "policy (deterministic)"
POLICIES = {"sampled": SAMPLED, "deterministic": DETERMINISTIC}
EDGE_GAP, EDGE_TARGET = 0.05, 0.8
V1_EDGE_GAP = 0.005
"""v1's gap threshold: its oracle-coach margins are about 0.02 in mean return."""
"""An edge profile passes when both policies score >= 0, and >= EDGE_TARGET where greedy - random > EDGE_GAP."""
ANCHORS = {"FitnessWeights-v0": ("random", "greedy"), "FitnessWeights-v1": ("coach", "oracle")}
"""The runs that score 0 and 1 on each env (``sb3_ext.evaluate.SCORE_ANCHORS``)."""
CHUNK = 2_000
"""Bootstrap replicates computed at once (bounds the index arrays' memory)."""


@dataclass(frozen=True)
class SeedRun:
    """One training seed's evaluation.

    Attributes:
        folder: The run's folder.
        data: Its ``evaluation.json``.
        returns: Per-trainee returns, keyed by ``sampled``, ``deterministic``, ``greedy`` and ``random``.
        n_targets: Per-trainee number of target subjects.
    """

    folder: Path
    data: dict[str, Any]
    returns: dict[str, np.ndarray]
    n_targets: np.ndarray

    @property
    def seed(self) -> int:
        """The seed of the training run (and of its held-out set)."""
        return int(self.data["seed"])

    @property
    def anchors(self) -> tuple[str, str]:
        """The runs that score 0 and 1 (random and greedy on v0, the coach and the oracle on v1)."""
        return ANCHORS[self.data.get("env_id", "FitnessWeights-v0")]

    def normalized(self, policy: str) -> np.ndarray:
        """Per-trainee normalized scores of ``policy`` (``sampled`` or ``deterministic``).

        v0: each trainee by its own references. v1: each trainee's margin over the coach in units of the set's mean
        oracle margin (a trainee's own margin, about 0.02, can be 0).
        """
        low, high = self.returns["low"], self.returns["high"]
        if self.anchors == ANCHORS["FitnessWeights-v1"]:
            return (self.returns[policy] - low) / (high.mean() - low.mean())
        return (self.returns[policy] - low) / (high - low)


def load_run(folder: Path) -> SeedRun:
    """Read ``folder/evaluation.json`` and check that it holds the per-trainee returns."""
    path = folder / "evaluation.json"
    if not path.exists():
        raise SystemExit(f"{path} does not exist: run examples/train_ppo.py --out {folder} first")
    data = json.loads(path.read_text())
    per_trainee = data.get("per_trainee") or {}
    zero, one = ANCHORS[data.get("env_id", "FitnessWeights-v0")]
    missing = [name for name in (SAMPLED, DETERMINISTIC, zero, one, "n_targets") if name not in per_trainee]
    if missing:
        raise SystemExit(f"{path} has no per-trainee {missing}: evaluate it again with python -m sb3_ext.evaluate")
    returns = {key: np.asarray(per_trainee[name], dtype=np.float64) for key, name in POLICIES.items()}
    returns |= {"low": np.asarray(per_trainee[zero], dtype=np.float64)}
    returns |= {"high": np.asarray(per_trainee[one], dtype=np.float64)}
    if data.get("env_id", "FitnessWeights-v0") == "FitnessWeights-v0" and np.any(returns["high"] <= returns["low"]):
        raise SystemExit(f"{path}: a trainee whose greedy return is not above random has no normalized score")
    return SeedRun(folder, data, returns, np.asarray(per_trainee["n_targets"], dtype=np.int64))


def iqm(scores: np.ndarray) -> np.ndarray:
    """Interquartile mean of each replicate: the 25% trimmed mean over all but the first axis."""
    flat = scores.reshape(scores.shape[0], -1)
    return np.asarray(trim_mean(flat, proportiontocut=0.25, axis=1))


def mean(scores: np.ndarray) -> np.ndarray:
    """Mean of each replicate over all but the first axis."""
    return scores.reshape(scores.shape[0], -1).mean(axis=1)


def stratified_bootstrap(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    reps: int,
    seed: int,
    resample_strata: bool = False,
) -> tuple[float, float]:
    """95% percentile interval of ``statistic`` under the stratified bootstrap.

    Args:
        scores: ``(n_runs, n_strata)``: here trainees x seeds.
        statistic: Maps replicates ``(k, n_runs, n_strata)`` to ``(k,)`` values.
        reps: Number of bootstrap replicates.
        seed: Seed of the resampling generator.
        resample_strata: Also draw the strata with replacement, before the runs within each
            (rliable's ``task_bootstrap=True``).
    """
    rng = np.random.default_rng(seed)
    n_runs, n_strata = scores.shape
    values = []
    for start in range(0, reps, CHUNK):
        k = min(CHUNK, reps - start)
        runs = rng.integers(0, n_runs, size=(k, n_runs, n_strata))
        strata = rng.integers(0, n_strata, size=(k, 1, n_strata)) if resample_strata else np.arange(n_strata)
        values.append(statistic(scores[runs, strata]))
    low, high = np.percentile(np.concatenate(values), [2.5, 97.5])
    return float(low), float(high)


def check_with_rliable(matrices: dict[str, np.ndarray], reps: int, seed: int) -> list[str]:
    """The same point estimates and intervals from ``rliable`` (if it is installed), as Markdown lines."""
    try:
        from rliable import library, metrics
    except Exception as error:  # not installed, or a dependency that does not import (arch 7.2 under pandas 3)
        return [f"`--check-rliable`: rliable could not be imported ({type(error).__name__}: {error})."]
    lines = [
        "",
        "Check with rliable (its `get_interval_estimates`, percentile method, runs = trainees, tasks = seeds):",
        "",
    ]
    lines += ["| policy | statistic | task_bootstrap | rliable | rliable 95% CI |", "|---|---|---|---:|---|"]
    for name, matrix in matrices.items():
        for label, function in (("IQM", metrics.aggregate_iqm), ("mean", metrics.aggregate_mean)):
            for task_bootstrap in (False, True):
                points, intervals = library.get_interval_estimates(
                    {name: matrix},
                    lambda x, f=function: np.array([f(x)]),
                    reps=reps,
                    task_bootstrap=task_bootstrap,
                    random_state=np.random.RandomState(seed),
                )
                low, high = intervals[name][:, 0]
                lines.append(
                    f"| {name} | {label} | {task_bootstrap} | {points[name][0]:.4f} | {low:.4f} to {high:.4f} |"
                )
    return lines


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _edge_lines(runs: Sequence[SeedRun]) -> list[str]:
    """The edge table over seeds: per seed, mean and minimum of each policy's score, and the acceptance."""
    tables = [{row["name"]: row for row in run.data.get("edge_profiles") or []} for run in runs]
    if not all(tables):
        return [
            "",
            "No edge table in every run's evaluation.json: evaluate them again with python -m sb3_ext.evaluate.",
        ]
    names = list(tables[0])
    seeds = " / ".join(str(run.seed) for run in runs)
    zero, one = runs[0].anchors
    edge_gap = V1_EDGE_GAP if (zero, one) == ANCHORS["FitnessWeights-v1"] else EDGE_GAP
    lines = [
        "",
        f"Edge profiles ({tables[0][names[0]]['n_trainees']} trainees each per seed): normalized score of the sampled "
        f"policy and of the most likely actions, seeds {seeds}, their mean and minimum; {one} - {zero} is the mean "
        f"gap in return over seeds; pass: both minima >= 0, and >= {EDGE_TARGET} where the gap > {edge_gap}.",
        "",
        f"| profile | {one} - {zero} | sampled per seed | sampled mean | sampled min | deterministic per seed "
        "| deterministic mean | deterministic min | pass |",
        "|---|---:|---|---:|---:|---|---:|---:|---|",
    ]
    failures = 0
    for name in names:
        rows = [table[name] for table in tables]
        gap = float(np.mean([row["mean_return"][one] - row["mean_return"][zero] for row in rows]))
        sampled = np.array([row["normalized_score"] for row in rows], dtype=np.float64)
        deterministic = np.array([row["deterministic_score"] for row in rows], dtype=np.float64)
        floor = EDGE_TARGET if gap > edge_gap else 0.0
        passed = bool(min(sampled.min(), deterministic.min()) >= floor)
        failures += not passed
        lines.append(
            f"| {name} | {gap:.3f} | {' / '.join(_fmt(v) for v in sampled)} | {_fmt(sampled.mean())} "
            f"| {_fmt(sampled.min())} | {' / '.join(_fmt(v) for v in deterministic)} | {_fmt(deterministic.mean())} "
            f"| {_fmt(deterministic.min())} | {'yes' if passed else '**no**'} |"
        )
    lines += ["", f"Edge profiles passing: {len(names) - failures} of {len(names)}."]
    return lines


def _target_count_lines(runs: Sequence[SeedRun]) -> list[str]:
    """Normalized score (the report's ratio of means) by number of target subjects, mean over seeds."""
    counts = sorted(set(np.concatenate([run.n_targets for run in runs]).tolist()))
    lines = ["", "By number of target subjects (ratio of mean returns per seed, mean over seeds):", ""]
    lines += ["| targets | trainees (all seeds) | sampled | deterministic |", "|---:|---:|---:|---:|"]
    for count in counts:
        scores: dict[str, list[float]] = {key: [] for key in POLICIES}
        for run in runs:
            mask = run.n_targets == count
            if not mask.any():
                continue
            low, high = run.returns["low"][mask].mean(), run.returns["high"][mask].mean()
            for key in POLICIES:
                scores[key].append((run.returns[key][mask].mean() - low) / (high - low))
        total = sum(int((run.n_targets == count).sum()) for run in runs)
        lines.append(
            f"| {count} | {total} | {np.mean(scores['sampled']):.3f} | {np.mean(scores['deterministic']):.3f} |"
        )
    return lines


def _prediction_lines(runs: Sequence[SeedRun]) -> list[str]:
    """The prediction metrics of each seed (against the optimize outcome), and their mean."""
    metrics = [("cq", "mse", "CQ MSE", 3), ("cq", "mean_cosine", "CQ mean cosine", 4)]
    metrics += [
        ("cq", "mean_pearson", "CQ mean Pearson", 4),
        ("cq", "confidence_error_spearman", "CQ conf.-error Spearman", 4),
    ]
    metrics += [("qx", "mse", "QX MSE", 3), ("cq", "mean_confidence", "mean confidence", 4)]
    if any(run.data.get("cq") is None for run in runs):
        return ["", "No prediction metrics (the policy has no predict_weights)."]
    header = " | ".join(f"seed {run.seed}" for run in runs)
    lines = ["", "`predict_weights` on the initial state against the optimize outcome:", ""]
    lines += [f"| metric | {header} | mean |", "|---|" + "---:|" * (len(runs) + 1)]
    for matrix, key, label, digits in metrics:
        values = [run.data[matrix][key] for run in runs]
        finite = [v for v in values if v is not None]
        cells = " | ".join(_fmt(v, digits) if key != "mse" else f"{v:.3g}" for v in values)
        average = np.mean(finite) if finite else None
        shown = _fmt(average, digits) if key != "mse" else f"{average:.3g}"
        lines.append(f"| {label} | {cells} | {shown} |")
    return lines


def report(runs: Sequence[SeedRun], reps: int, seed: int) -> tuple[list[str], dict[str, np.ndarray]]:
    """The Markdown report and the score matrices (trainees x seeds) of both policies."""
    sizes = {run.returns["high"].size for run in runs}
    if len(sizes) != 1:
        raise SystemExit(f"the runs have different numbers of held-out trainees: {sorted(sizes)}")
    lines = [
        f"Training seeds {', '.join(str(run.seed) for run in runs)}; {sizes.pop()} held-out trainees per seed "
        f"(their own per seed); {reps} bootstrap replicates; aggregated on {platform.machine()}, "
        f"Python {platform.python_version()}.",
        "",
        "| seed | sampled (optimize) | 95% CI | most likely actions | 95% CI | training time | FPS |",
        "|---:|---:|---|---:|---|---:|---:|",
    ]
    for run in runs:
        extra = run.data.get("extra", {})
        train, steps = extra.get("train_seconds"), extra.get("timesteps")
        fps = f"{steps / train:,.0f}" if train and steps else "n/a"
        ci, det_ci = run.data["normalized_score_ci"], run.data["deterministic_score_ci"]
        lines.append(
            f"| {run.seed} | {run.data['normalized_score']:.3f} | {ci[0]:.3f} to {ci[1]:.3f} "
            f"| {run.data['deterministic_score']:.3f} | {det_ci[0]:.3f} to {det_ci[1]:.3f} "
            f"| {'n/a' if not train else f'{train:.0f} s'} | {fps} |"
        )
    matrices = {key: np.stack([run.normalized(key) for run in runs], axis=1) for key in POLICIES}
    lines += [
        "",
        "Aggregates of the per-trainee normalized scores (trainees x seeds); intervals: 95% stratified bootstrap, "
        "trainees resampled within each seed, and with the seeds resampled too:",
        "",
        "| policy | mean of the seeds' scores | min - max over seeds | mean (per trainee) | 95% CI | 95% CI, seeds too "
        "| IQM | 95% CI | 95% CI, seeds too |",
        "|---|---:|---|---:|---|---|---:|---|---|",
    ]
    for key, matrix in matrices.items():
        per_seed = [run.data["normalized_score" if key == "sampled" else "deterministic_score"] for run in runs]
        cells = []
        for statistic in (mean, iqm):
            point = float(statistic(matrix[None])[0])
            within = stratified_bootstrap(matrix, statistic, reps, seed)
            across = stratified_bootstrap(matrix, statistic, reps, seed + 1, resample_strata=True)
            cells += [f"{point:.3f}", f"{within[0]:.3f} to {within[1]:.3f}", f"{across[0]:.3f} to {across[1]:.3f}"]
        lines.append(
            f"| {key} | {np.mean(per_seed):.3f} | {min(per_seed):.3f} - {max(per_seed):.3f} | {' | '.join(cells)} |"
        )
    lines += _target_count_lines(runs) + _edge_lines(runs) + _prediction_lines(runs)
    return lines, matrices


def main(argv: list[str] | None = None) -> None:
    """Command line: aggregate the runs in the given folders and print (and optionally write) the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run folders, each with evaluation.json (one per seed)")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap replicates (default 50000, as rliable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap's generator")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown to this file")
    parser.add_argument("--check-rliable", action="store_true", help="compare with rliable, if it is installed")
    args = parser.parse_args(argv)
    if len(args.folders) < 2:
        parser.error("give at least two run folders (one per training seed)")
    runs = [load_run(folder) for folder in args.folders]
    lines, matrices = report(runs, args.reps, args.seed)
    if args.check_rliable:
        lines += check_with_rliable(matrices, args.reps, args.seed)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
