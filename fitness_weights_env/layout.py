"""The named layouts of the observation: the 198-dim trainee vector, and v1's 199 values.

Every slice of the vector is built and parsed through :data:`LAYOUT` (``FitnessWeights-v0``, profiles, the
service's vectors) or :data:`TRAINING_LAYOUT` (``FitnessWeights-v1``: the same slices and ``progress``);
nothing else in the package indexes the vector with literal numbers.

=========================  =====  ===============================================================
slice                      size   encoding
=========================  =====  ===============================================================
``age``                    1      ``(age - AGE_MIN) / (AGE_MAX - AGE_MIN)``: 16 years -> 0, 65 -> 1
``gender``                 1      0 = male, 1 = female
``fitness_level``          1      overall fitness in [0, 1], as given
``qualities``              5      endurance, flexibility, agility, power, strength in [0, 1]
``subject_scores``         93     measured score of each subject in [0, 1] (catalog order)
``targets``                93     multi-hot: 1 for each target subject
``metrics``                4      recent_improvement, injury_risk, training_efficiency,
                                  consistency, each in [0, 1]
``progress`` (v1 only)     1      steps taken in the training block / the block's steps, at most 1
=========================  =====  ===============================================================

Every entry lies in [0, 1]. ``progress`` is the time feature of a finite-horizon task (Pardo et al. 2018, "Time
Limits in Reinforcement Learning"): v1's block has a fixed length and the best action depends on the weeks left,
which nothing else in the vector shows. It follows the trainee vector, so ``observation[:198]`` is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from fitness_weights_env.catalog import CATALOG

__all__ = [
    "AGE_MAX",
    "AGE_MIN",
    "GENDERS",
    "LAYOUT",
    "METRIC_NAMES",
    "TRAINING_LAYOUT",
    "ObservationLayout",
    "observation_layout",
]

AGE_MIN = 16
"""Youngest trainee age in years; encoded as 0."""
AGE_MAX = 65
"""Oldest trainee age in years; encoded as 1."""
GENDERS = ("male", "female")
"""Gender names, in the order of their codes (0, 1)."""
METRIC_NAMES = ("recent_improvement", "injury_risk", "training_efficiency", "consistency")
"""The performance metrics, in vector order."""


@dataclass(frozen=True)
class ObservationLayout:
    """Named slices of the trainee vector.

    Attributes:
        age: Slice of the normalized age (1).
        gender: Slice of the gender code (1).
        fitness_level: Slice of the fitness level (1).
        qualities: Slice of the 5 quality levels.
        subject_scores: Slice of the measured subject scores (one per subject).
        targets: Slice of the multi-hot target mask (one per subject).
        metrics: Slice of the 4 performance metrics.
        size: Total length of the vector (198; 199 with ``progress``).
        progress: Slice of the block's progress (1), or ``None`` (the trainee vector has none).
    """

    age: slice
    gender: slice
    fitness_level: slice
    qualities: slice
    subject_scores: slice
    targets: slice
    metrics: slice
    size: int
    progress: slice | None = None

    @classmethod
    def build(cls, n_qualities: int, n_subjects: int, n_metrics: int, progress: bool = False) -> ObservationLayout:
        """Lay the slices out in order from the sizes of their parts (``progress`` last, when asked for)."""
        sizes = {
            "age": 1,
            "gender": 1,
            "fitness_level": 1,
            "qualities": n_qualities,
            "subject_scores": n_subjects,
            "targets": n_subjects,
            "metrics": n_metrics,
            **({"progress": 1} if progress else {}),
        }
        slices, start = {}, 0
        for name, size in sizes.items():
            slices[name] = slice(start, start + size)
            start += size
        return cls(**slices, size=start)

    @property
    def fields(self) -> dict[str, slice]:
        """The slices by name, in vector order."""
        names = ("age", "gender", "fitness_level", "qualities", "subject_scores", "targets", "metrics", "progress")
        return {name: part for name in names if (part := getattr(self, name)) is not None}


LAYOUT = ObservationLayout.build(CATALOG.n_qualities, CATALOG.n_subjects, len(METRIC_NAMES))
"""The layout of the trainee vector: ``FitnessWeights-v0``'s observation, a profile's vector."""
TRAINING_LAYOUT = ObservationLayout.build(CATALOG.n_qualities, CATALOG.n_subjects, len(METRIC_NAMES), progress=True)
"""The layout of ``FitnessWeights-v1``'s observation: the trainee vector, then ``progress``."""


def observation_layout(size: int) -> ObservationLayout:
    """The layout of an observation of ``size`` values: :data:`LAYOUT` (198) or :data:`TRAINING_LAYOUT` (199).

    Raises:
        ValueError: No layout has this size.
    """
    for layout in (LAYOUT, TRAINING_LAYOUT):
        if layout.size == size:
            return layout
    raise ValueError(f"no FitnessWeights observation has {size} values (v0: {LAYOUT.size}, v1: {TRAINING_LAYOUT.size})")
