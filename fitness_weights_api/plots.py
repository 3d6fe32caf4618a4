"""Pictures of a run: its learning curve and a held-out trainee's weight matrices, as PNG files (matplotlib, Agg).

* ``learning_curve.png``: the mean episode return (SB3's ``rollout/ep_rew_mean``) against the timesteps, from a
  run folder's ``learning_curve.csv`` (``examples/train_ppo.py`` writes it) or a job's logged metrics.
* ``weights.png``: for the first of the evaluation's held-out trainees, the CQ and QX matrices that the model's
  optimization ends with (``optimize_weights``, seed 0) and, when it has the heads, those it predicts in one forward
  pass (``predict_weights``); the target subjects' columns are marked.

``fitness-weights plot RUN_OR_JOB`` writes both for a run folder or a job id (into the run folder, or the job's).

* ``pbt_schedules.png``: a population-based training run's members, interval by interval: their scores and
  each perturbed hyperparameter (log scale), a marker where a member copied another (``fitness-weights tune --pbt``).
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.errors import FieldError

__all__ = [
    "CURVE_FILE",
    "CURVE_KEY",
    "plot_learning_curve",
    "plot_pbt",
    "plot_weights",
    "read_curve",
    "write_curve",
]

CURVE_FILE = "learning_curve.csv"
"""A run folder's learning curve: ``timesteps,ep_rew_mean`` rows."""
CURVE_KEY = "rollout/ep_rew_mean"


def write_curve(path: Path, points: Sequence[tuple[int, float]]) -> None:
    """Write ``(timesteps, mean episode return)`` points as :data:`CURVE_FILE`'s CSV."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["timesteps", "ep_rew_mean"])
        writer.writerows((int(step), float(value)) for step, value in points)


def read_curve(path: Path) -> list[tuple[int, float]]:
    """The points of a :data:`CURVE_FILE`.

    Raises:
        FieldError: The file is missing or not such a CSV (``field`` ``run``).
    """
    try:
        with open(path, newline="") as file:
            rows = list(csv.DictReader(file))
        return [(int(row["timesteps"]), float(row["ep_rew_mean"])) for row in rows]
    except FileNotFoundError:
        raise FieldError("run", f"has no {CURVE_FILE} (train it with examples/train_ppo.py)") from None
    except (KeyError, ValueError, TypeError, csv.Error):
        raise FieldError("run", f"its {CURVE_FILE} is not a timesteps,ep_rew_mean CSV") from None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curve(points: Sequence[tuple[int, float]], path: Path, title: str) -> Path:
    """Draw the mean episode return against the timesteps into ``path`` (PNG).

    Raises:
        FieldError: No points (``field`` ``run``).
    """
    if not points:
        raise FieldError("run", "has no logged episodes yet: nothing to plot")
    plt = _pyplot()
    steps, values = zip(*points, strict=True)
    figure, axes = plt.subplots(figsize=(7, 4), dpi=110)
    axes.plot(steps, values, color="#1f77b4", linewidth=1.8)
    axes.set_xlabel("timesteps")
    axes.set_ylabel("mean episode return")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_weights(model: Any, path: Path, env_id: str | None = None) -> Path:
    """Draw a held-out trainee's optimized (and predicted) CQ and QX matrices into ``path`` (PNG)."""
    from fitness_weights_api.weights import NoPredictionHeadsError, optimize_weights, predict_weights
    from sb3_ext.evaluate import held_out_profiles

    profile = held_out_profiles(1)[0]
    results = [("optimized", optimize_weights(model, profile, seed=0, env_id=env_id))]
    with contextlib.suppress(NoPredictionHeadsError):  # an MlpPolicy has no prediction heads
        results.append(("predicted", predict_weights(model, profile, seed=0, env_id=env_id)))
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    figure, grid = plt.subplots(
        len(results), 2, figsize=(16, 3.8 * len(results)), dpi=100, squeeze=False, layout="constrained",
        gridspec_kw={"width_ratios": [93, 44]},
    )  # fmt: skip
    qualities = [quality.name_en for quality in CATALOG.qualities]
    targets = list(profile.targets)
    for row, (name, result) in enumerate(results):
        cq_axes, qx_axes = grid[row]
        cq, qx = np.asarray(result.cq).T, np.asarray(result.qx)
        # each matrix on its own scale: a QX row spreads over 44 exercises, a CQ row over 5 qualities
        shown = cq_axes.imshow(cq, aspect="auto", cmap="viridis", vmin=0.0, vmax=float(cq.max()))
        figure.colorbar(shown, ax=cq_axes, pad=0.01)
        cq_axes.set_title(f"CQ, {name}: qualities x subjects (target subjects outlined)")
        cq_axes.set_yticks(range(len(qualities)), qualities)
        cq_axes.set_xticks(targets, [CATALOG.subjects[t].name_en for t in targets], rotation=30, ha="right")
        for target in targets:
            cq_axes.add_patch(Rectangle((target - 0.5, -0.5), 1, len(qualities), fill=False, ec="red", lw=1.5))
        shown = qx_axes.imshow(qx, aspect="auto", cmap="viridis", vmin=0.0, vmax=float(qx.max()))
        figure.colorbar(shown, ax=qx_axes, pad=0.01)
        qx_axes.set_title(f"QX, {name}: qualities x exercises")
        qx_axes.set_yticks(range(len(qualities)), qualities)
        qx_axes.set_xlabel("exercise (catalog order)")
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_pbt(history: Sequence[Sequence[dict[str, Any]]], names: Sequence[str], path: Path) -> Path:
    """Draw each member's score and hyperparameters ``names`` against the intervals into ``path`` (PNG).

    ``history`` is :attr:`sb3_ext.pbt.PBTResult.history`: per member, one record per interval.
    """
    plt = _pyplot()
    figure, grid = plt.subplots(1, 1 + len(names), figsize=(4.2 * (1 + len(names)), 3.6), dpi=100, squeeze=False)
    for member, records in enumerate(history):
        intervals = [record["interval"] for record in records]
        for axes, key in zip(grid[0], ("score", *names), strict=True):
            line = axes.plot(intervals, [record[key] for record in records], label=f"member {member}", linewidth=1.5)
            copies = [record["interval"] for record in records if record["copied_from"] is not None]
            axes.plot(copies, [records[i][key] for i in copies], "o", color=line[0].get_color(), markersize=4)
    for axes, key in zip(grid[0], ("normalized score", *names), strict=True):
        axes.set_title(key)
        axes.set_xlabel("interval (o: copied a stronger member after it)")
        axes.grid(alpha=0.3)
        if key != "normalized score":
            axes.set_yscale("log")
    grid[0][0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
