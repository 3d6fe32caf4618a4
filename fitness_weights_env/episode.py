"""Episode settings and the random draws that start an episode, shared by the single and the vector env.

Every draw of trainee ``i`` is made with generator ``i`` in a fixed order: the trainee (when no
profile is given), then the initial CQ target rows (``init="uniform"``), then one adjustment per
step (``adjustment="random"``). So N single envs and one vector env of N trainees, seeded alike,
produce the same episodes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fitness_weights_env import dynamics
from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import LAYOUT
from fitness_weights_env.population import sample_vectors
from fitness_weights_env.profile import TraineeProfile

__all__ = ["DEFAULT_MAX_EPISODE_STEPS", "Adjustment", "EpisodeConfig", "ProfileLike", "check_max_episode_steps"]

Adjustment = Literal["increase", "random"]
ProfileLike = TraineeProfile | Mapping[str, Any]

DEFAULT_MAX_EPISODE_STEPS = 64
"""Default episode length. 64 steps of +0.05 move one target row from uniform (0.2) to 0.96 on its best
quality (``1 - 0.8 / 1.05**64``), or three target rows to about 0.7 each, so the horizon is long enough
to matter and short enough for a fast ``optimize`` request; it also divides PPO's usual rollout sizes."""


@dataclass(frozen=True)
class EpisodeConfig:
    """How episodes run; validated on construction.

    Args:
        step_size: Size of one adjustment (> 0).
        adjustment: ``"increase"`` adds ``step_size`` to the chosen cell (the default: the agent
            chooses the cell and the direction is up, renormalization lowers the rest of the row);
            ``"random"`` adds a uniform draw in ``[-step_size, step_size]``, as in the original design.
        init: Initial matrices, ``"uniform"`` (the original design) or ``"prior"`` (catalog loadings).
        drift_coef: Coefficient of the drift penalty in the reward (>= 0).
    """

    step_size: float = 0.05
    adjustment: Adjustment = "increase"
    init: dynamics.Init = "uniform"
    drift_coef: float = 0.01

    def __post_init__(self) -> None:
        if not (isinstance(self.step_size, (int, float)) and math.isfinite(self.step_size) and self.step_size > 0):
            raise FieldError("step_size", "must be a positive number", self.step_size)
        if not (isinstance(self.drift_coef, (int, float)) and math.isfinite(self.drift_coef) and self.drift_coef >= 0):
            raise FieldError("drift_coef", "must be a non-negative number", self.drift_coef)
        if self.adjustment not in ("increase", "random"):
            raise FieldError("adjustment", "must be 'increase' or 'random'", self.adjustment)
        if self.init not in ("uniform", "prior"):
            raise FieldError("init", "must be 'uniform' or 'prior'", self.init)

    def draw_starts(
        self, rngs: Sequence[np.random.Generator], profiles: Sequence[ProfileLike | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Trainee vectors (k, 198), initial CQ (k, 93, 5) and QX (k, 5, 44) for new episodes.

        Trainee ``i`` is drawn with ``rngs[i]``; a ``None`` profile draws a trainee from the population.
        """
        vectors = np.empty((len(rngs), LAYOUT.size), dtype=np.float32)
        missing = [i for i, p in enumerate(profiles) if p is None]
        if missing:
            vectors[missing] = sample_vectors([rngs[i] for i in missing])
        for i, profile in enumerate(profiles):
            if profile is not None:
                vectors[i] = TraineeProfile.coerce(profile).to_vector()
        target_mask = vectors[:, LAYOUT.targets] > 0
        target_rows = None
        if self.init == "uniform":
            counts = target_mask.sum(axis=1)
            draws = [rng.random((k, CATALOG.n_qualities)) for rng, k in zip(rngs, counts, strict=True)]
            target_rows = np.concatenate(draws)
        cq, qx = dynamics.initial_matrices(target_mask, self.init, target_rows)
        return vectors, cq, qx

    def draw_deltas(self, rngs: Sequence[np.random.Generator]) -> np.ndarray | float:
        """The change of the adjusted cell in one step.

        One draw per generator for ``adjustment="random"``, else the constant ``step_size``.
        """
        if self.adjustment == "increase":
            return float(self.step_size)
        return np.array([rng.uniform(-self.step_size, self.step_size) for rng in rngs])


def check_max_episode_steps(value: int | None) -> int | None:
    """Validate an episode length (a positive integer, or ``None`` for no limit)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
        raise FieldError("max_episode_steps", "must be a positive integer or None", value)
    return None if value is None else int(value)
