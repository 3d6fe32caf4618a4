"""One trainee: who they are, what they can do, and which subjects they train for."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitness_weights_env.catalog import CATALOG, UnknownNameError
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import AGE_MAX, AGE_MIN, GENDERS, LAYOUT, METRIC_NAMES

__all__ = ["TraineeProfile"]


def _unit_array(field: str, values: Any, size: int, names: Sequence[str] | None = None) -> np.ndarray:
    """Validate ``size`` finite values in [0, 1] (a sequence, or a mapping by ``names``) as read-only float32."""
    if isinstance(values, Mapping):
        if names is None:
            raise FieldError(field, f"expected a list of {size} values, got a mapping")
        unknown = sorted(set(values) - set(names))
        missing = [n for n in names if n not in values]
        if unknown or missing:
            reason = f"expected keys {list(names)}" + ("; unknown keys" if unknown else "") + f"; missing {missing}"
            raise FieldError(field, reason, value=unknown) if unknown else FieldError(field, reason)
        values = [values[n] for n in names]
    if isinstance(values, (str, bytes)):
        raise FieldError(field, f"expected {size} numbers, got a string")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise FieldError(field, f"expected {size} numbers") from None
    if array.shape != (size,):
        raise FieldError(field, f"expected {size} values, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array) | (array < 0.0) | (array > 1.0))
    if bad.size:
        i = int(bad[0])
        label = names[i] if names is not None else f"[{i}]"
        raise FieldError(field, f"{label} must be a finite number in [0, 1]", value=float(array[i]))
    array = array.astype(np.float32)
    array.setflags(write=False)
    return array


def _unit_scalar(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FieldError(field, "expected a number in [0, 1]", value=value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise FieldError(field, "must be a finite number in [0, 1]", value=value)
    return float(np.float32(value))


def _targets(value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, int, np.integer)):
        value = [value]
    if not isinstance(value, (Sequence, np.ndarray)) or len(value) == 0:
        raise FieldError("targets", "at least one target subject is required")
    indices: list[int] = []
    for name in value:
        try:
            index = CATALOG.subject_index(name.item() if isinstance(name, np.generic) else name)
        except UnknownNameError as error:
            raise FieldError("targets", error.reason, value=name) from None
        if index in indices:
            raise FieldError("targets", f"subject {CATALOG.subjects[index].name_en!r} is listed twice")
        indices.append(index)
    return tuple(sorted(indices))


@dataclass(frozen=True, eq=False)
class TraineeProfile:
    """A validated trainee profile.

    Construction validates every field and raises :class:`~fitness_weights_env.errors.FieldError` (a
    ``ValueError``) naming the field. Values are stored as float32 so that :meth:`to_vector` and :meth:`from_vector` are
    exact inverses: ``TraineeProfile.from_vector(p.to_vector()) == p``.

    Args:
        age: Age in whole years, in [16, 65].
        gender: ``"male"`` or ``"female"`` (any case).
        fitness_level: Overall fitness in [0, 1].
        qualities: Level of each quality in [0, 1]: 5 values in catalog order, or a mapping by
            quality name.
        subject_scores: Measured score of each of the 93 subjects in [0, 1], in catalog order.
        targets: One or more distinct target subjects, by English or Chinese name or by index.
            Stored as sorted indices.
        performance_metrics: The 4 metrics in [0, 1] (recent_improvement, injury_risk,
            training_efficiency, consistency), as a sequence or a mapping by name.
    """

    age: int
    gender: str
    fitness_level: float
    qualities: np.ndarray
    subject_scores: np.ndarray
    targets: tuple[int, ...]
    performance_metrics: np.ndarray

    def __post_init__(self) -> None:
        age = self.age
        if isinstance(age, (float, np.floating)) and float(age).is_integer():
            age = int(age)
        if isinstance(age, bool) or not isinstance(age, (int, np.integer)):
            raise FieldError("age", "expected whole years", value=self.age)
        if not AGE_MIN <= age <= AGE_MAX:
            raise FieldError("age", f"is outside [{AGE_MIN}, {AGE_MAX}]", value=age)
        gender = self.gender.lower() if isinstance(self.gender, str) else self.gender
        if gender not in GENDERS:
            raise FieldError("gender", f"expected one of {list(GENDERS)}", value=self.gender)
        quality_names = [q.name_en for q in CATALOG.qualities]
        fields = {
            "age": int(age),
            "gender": gender,
            "fitness_level": _unit_scalar("fitness_level", self.fitness_level),
            "qualities": _unit_array("qualities", self.qualities, CATALOG.n_qualities, quality_names),
            "subject_scores": _unit_array("subject_scores", self.subject_scores, CATALOG.n_subjects),
            "targets": _targets(self.targets),
            "performance_metrics": _unit_array(
                "performance_metrics", self.performance_metrics, len(METRIC_NAMES), METRIC_NAMES
            ),
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TraineeProfile):
            return NotImplemented
        return np.array_equal(self.to_vector(), other.to_vector())

    def __hash__(self) -> int:
        return hash(self.to_vector().tobytes())

    @property
    def target_names(self) -> list[str]:
        """English names of the target subjects."""
        return [CATALOG.subjects[i].name_en for i in self.targets]

    def to_vector(self) -> np.ndarray:
        """Encode the profile as the 198-dim float32 vector described in :mod:`~fitness_weights_env.layout`."""
        vector = np.zeros(LAYOUT.size, dtype=np.float32)
        vector[LAYOUT.age] = (self.age - AGE_MIN) / (AGE_MAX - AGE_MIN)
        vector[LAYOUT.gender] = GENDERS.index(self.gender)
        vector[LAYOUT.fitness_level] = self.fitness_level
        vector[LAYOUT.qualities] = self.qualities
        vector[LAYOUT.subject_scores] = self.subject_scores
        vector[LAYOUT.targets][list(self.targets)] = 1.0
        vector[LAYOUT.metrics] = self.performance_metrics
        return vector

    @classmethod
    def from_vector(cls, vector: np.ndarray) -> TraineeProfile:
        """Decode a 198-dim vector; the age is rounded to whole years.

        Raises:
            FieldError: The vector has the wrong shape, or a slice holds an invalid value
                (the error names the slice).
        """
        vector = np.asarray(vector)
        if vector.shape != (LAYOUT.size,):
            raise FieldError("vector", f"expected shape ({LAYOUT.size},), got {vector.shape}")
        if not np.all(np.isfinite(vector)):
            name = next(n for n, s in LAYOUT.fields.items() if not np.all(np.isfinite(vector[s])))
            raise FieldError(name, "contains NaN or infinity")
        age_code = float(vector[LAYOUT.age][0])
        if not 0.0 <= age_code <= 1.0:
            raise FieldError("age", "code is outside [0, 1]", value=age_code)
        gender_code = float(vector[LAYOUT.gender][0])
        if gender_code not in (0.0, 1.0):
            raise FieldError("gender", "code must be 0 (male) or 1 (female)", value=gender_code)
        mask = vector[LAYOUT.targets]
        if not np.all((mask == 0.0) | (mask == 1.0)):
            raise FieldError("targets", "the target mask must hold only 0 and 1")
        return cls(
            age=AGE_MIN + round(age_code * (AGE_MAX - AGE_MIN)),
            gender=GENDERS[int(gender_code)],
            fitness_level=float(vector[LAYOUT.fitness_level][0]),
            qualities=vector[LAYOUT.qualities],
            subject_scores=vector[LAYOUT.subject_scores],
            targets=tuple(int(i) for i in np.flatnonzero(mask)),
            performance_metrics=vector[LAYOUT.metrics],
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_dict` reads back to an equal profile."""
        return {
            "age": self.age,
            "gender": self.gender,
            "fitness_level": self.fitness_level,
            "qualities": {q.name_en: float(v) for q, v in zip(CATALOG.qualities, self.qualities, strict=True)},
            "subject_scores": [float(v) for v in self.subject_scores],
            "targets": self.target_names,
            "performance_metrics": {n: float(v) for n, v in zip(METRIC_NAMES, self.performance_metrics, strict=True)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraineeProfile:
        """Build a profile from a mapping with the constructor's field names.

        Raises:
            FieldError: A field is missing, unknown or invalid.
        """
        if not isinstance(data, Mapping):
            raise FieldError("profile", f"expected a mapping of fields, got {type(data).__name__}")
        names = list(cls.__dataclass_fields__)
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise FieldError(str(unknown[0]), f"unknown field; expected {names}")
        missing = [n for n in names if n not in data]
        if missing:
            raise FieldError(missing[0], "is required")
        return cls(**data)

    @classmethod
    def coerce(cls, profile: TraineeProfile | Mapping[str, Any]) -> TraineeProfile:
        """Return ``profile`` as a :class:`TraineeProfile`, converting a mapping with :meth:`from_dict`."""
        return profile if isinstance(profile, TraineeProfile) else cls.from_dict(profile)
