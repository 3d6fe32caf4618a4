"""Renderings of one trainee's matrices: a text summary (``"ansi"``) and a heatmap (``"rgb_array"``)."""

from __future__ import annotations

import numpy as np

from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.dynamics import WeightState
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import LAYOUT
from fitness_weights_env.profile import TraineeProfile

__all__ = ["RENDER_MODES", "check_render_mode", "heatmap", "render_trainee", "summary"]

RENDER_MODES = ("ansi", "rgb_array")
"""The render modes of both envs."""


def summary(
    profile: TraineeProfile,
    cq: np.ndarray,
    qx: np.ndarray,
    *,
    step: int,
    mean_target_score: float,
    drift: float,
    top_exercises: int = 3,
    subject_scores: np.ndarray | None = None,
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
        subject_scores: (93,) each subject's score to show (v1's true scores); ``None``: ``CQ[s] . qualities`` (v0).
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
            + f"  {float(row @ profile.qualities if subject_scores is None else subject_scores[s]):6.3f}"
        )
    lines.append("Top exercises per quality (QX)")
    for q, name in enumerate(qualities):
        best = np.argsort(-qx[q], kind="stable")[:top_exercises]
        picks = ", ".join(f"{CATALOG.exercises[e].name_en} {qx[q, e]:.3f}" for e in best)
        lines.append(f"  {name:<12} {picks}")
    return "\n".join(lines) + "\n"


# Heatmap colours from 0 (dark blue) through teal to 1 (yellow), linearly interpolated.
_COLOUR_STOPS = np.array([[25, 30, 90], [30, 150, 140], [250, 225, 40]], dtype=np.float64)
_TARGET_MARK = np.array([220, 40, 40], dtype=np.uint8)


def _colour(values: np.ndarray) -> np.ndarray:
    position = np.clip(values, 0.0, 1.0) * (len(_COLOUR_STOPS) - 1)
    low = np.minimum(position.astype(int), len(_COLOUR_STOPS) - 2)
    fraction = (position - low)[..., None]
    return ((1 - fraction) * _COLOUR_STOPS[low] + fraction * _COLOUR_STOPS[low + 1]).astype(np.uint8)


def heatmap(cq: np.ndarray, qx: np.ndarray, targets: tuple[int, ...], cell: int = 4) -> np.ndarray:
    """An RGB image (``render_mode="rgb_array"``) of CQ (left) and QX (right), target rows marked in red.

    CQ cells are ``cell`` pixels high and ``3 * cell`` wide; QX cells ``3 * cell`` high and
    ``2 * cell`` wide. Values are scaled by each matrix's maximum so that structure stays visible.

    Returns:
        A (height, width, 3) uint8 array.
    """
    cq_image = np.repeat(np.repeat(_colour(cq / max(float(cq.max()), 1e-9)), cell, axis=0), 3 * cell, axis=1)
    qx_image = np.repeat(np.repeat(_colour(qx / max(float(qx.max()), 1e-9)), 3 * cell, axis=0), 2 * cell, axis=1)
    mark, gap = cell, 2 * cell
    height = max(cq_image.shape[0], qx_image.shape[0])
    image = np.full((height, mark + cq_image.shape[1] + gap + qx_image.shape[1], 3), 255, dtype=np.uint8)
    for s in targets:
        image[s * cell : (s + 1) * cell, :mark] = _TARGET_MARK
    image[: cq_image.shape[0], mark : mark + cq_image.shape[1]] = cq_image
    image[: qx_image.shape[0], mark + cq_image.shape[1] + gap :] = qx_image
    return image


def check_render_mode(render_mode: str | None) -> str | None:
    """Validate a render mode (``None`` or one of :data:`RENDER_MODES`)."""
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise FieldError("render_mode", f"must be None or one of {list(RENDER_MODES)}", render_mode)
    return render_mode


def render_trainee(render_mode: str, state: WeightState, index: int, step: int) -> str | np.ndarray:
    """Trainee ``index`` of ``state`` as the text summary (``"ansi"``) or the heatmap (``"rgb_array"``)."""
    profile = TraineeProfile.from_vector(state.observation[index, : LAYOUT.size])
    if render_mode == "rgb_array":
        return heatmap(state.cq[index], state.qx[index], profile.targets)
    return summary(
        profile,
        state.cq[index],
        state.qx[index],
        step=step,
        mean_target_score=float(state.target_score[index]),
        drift=float(state.drift[index]),
        subject_scores=state.body.scores[index] if hasattr(state, "body") else None,  # v1: the trainee's own
    )
