"""The named layout of the 198-dim trainee vector (the observation).

Every slice of the vector is built and parsed through :data:`LAYOUT`; nothing else in the package
indexes the vector with literal numbers.

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
=========================  =====  ===============================================================

Every entry lies in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

from fitness_weights_env.catalog import CATALOG

__all__ = ["AGE_MAX", "AGE_MIN", "GENDERS", "LAYOUT", "METRIC_NAMES", "ObservationLayout"]

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
        size: Total length of the vector (198).
    """

    age: slice
    gender: slice
    fitness_level: slice
    qualities: slice
    subject_scores: slice
    targets: slice
    metrics: slice
    size: int

    @classmethod
    def build(cls, n_qualities: int, n_subjects: int, n_metrics: int) -> ObservationLayout:
        """Lay the slices out in order from the sizes of their parts."""
        sizes = {
            "age": 1,
            "gender": 1,
            "fitness_level": 1,
            "qualities": n_qualities,
            "subject_scores": n_subjects,
            "targets": n_subjects,
            "metrics": n_metrics,
        }
        slices, start = {}, 0
        for name, size in sizes.items():
            slices[name] = slice(start, start + size)
            start += size
        return cls(**slices, size=start)

    @property
    def fields(self) -> dict[str, slice]:
        """The slices by name, in vector order."""
        names = ("age", "gender", "fitness_level", "qualities", "subject_scores", "targets", "metrics")
        return {name: getattr(self, name) for name in names}


LAYOUT = ObservationLayout.build(CATALOG.n_qualities, CATALOG.n_subjects, len(METRIC_NAMES))
"""The layout of the package's observation vector."""
