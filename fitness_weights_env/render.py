"""A readable text summary of one trainee's matrices (``render_mode="ansi"``)."""

from __future__ import annotations

import numpy as np

from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.profile import TraineeProfile

__all__ = ["summary"]


def summary(
    profile: TraineeProfile,
    cq: np.ndarray,
    qx: np.ndarray,
    *,
    step: int,
    mean_target_score: float,
    drift: float,
    top_exercises: int = 3,
) -> str:
    """The target subjects with their CQ rows, and the top exercises per quality.

    Args:
        profile: The trainee.
        cq: (93, 5) current CQ matrix.
        qx: (5, 44) current QX matrix.
        step: Steps taken in the episode.
        mean_target_score: The mean target score.
        drift: Distance of the matrices from their initial values.
        top_exercises: How many exercises to list per quality.
    """
    qualities = [q.name_en for q in CATALOG.qualities]
    width = max(len(CATALOG.subjects[s].name_en) for s in profile.targets) + 2
    lines = [
        f"Trainee: age {profile.age}, {profile.gender}, fitness {profile.fitness_level:.2f}; "
        + ", ".join(f"{name} {level:.2f}" for name, level in zip(qualities, profile.qualities, strict=True)),
        f"Step {step}: mean target score {mean_target_score:.3f}, drift {drift:.3f}",
        "Target subjects (CQ row)".ljust(width) + " ".join(f"{name[:5]:>6}" for name in qualities) + "   score",
    ]
    for s in profile.targets:
        row = cq[s]
        lines.append(
            CATALOG.subjects[s].name_en.ljust(width)
            + " ".join(f"{v:6.3f}" for v in row)
            + f"  {float(row @ profile.qualities):6.3f}"
        )
    lines.append("Top exercises per quality (QX)")
    for q, name in enumerate(qualities):
        best = np.argsort(-qx[q], kind="stable")[:top_exercises]
        picks = ", ".join(f"{CATALOG.exercises[e].name_en} {qx[q, e]:.3f}" for e in best)
        lines.append(f"  {name:<12} {picks}")
    return "\n".join(lines) + "\n"
