"""The domain catalog: physical qualities, training subjects and exercises, with prior loadings.

The catalog is read once, at import, from ``data/catalog.json`` (built from the sourced reference
tables by ``tools/build_catalog.py``). Everything else in the package takes its sizes from here:
``CATALOG.n_subjects`` (93), ``CATALOG.n_qualities`` (5) and ``CATALOG.n_exercises`` (44).

Names resolve to indices case-insensitively, in English or Chinese::

    >>> CATALOG.subject_index("pull-ups") == CATALOG.subject_index("单杠引体向上")
    True
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from fitness_weights_env.errors import FieldError

__all__ = ["CATALOG", "Catalog", "Exercise", "Quality", "Subject", "UnknownNameError", "load_catalog"]


class UnknownNameError(FieldError):
    """A subject, quality or exercise name (or index) that is not in the catalog; ``field`` is the kind."""


@dataclass(frozen=True)
class Quality:
    """A physical quality (endurance, flexibility, agility, power or strength)."""

    index: int
    name_en: str
    name_zh: str


@dataclass(frozen=True)
class Subject:
    """A training or test subject, such as the 3000 m run.

    Attributes:
        index: Position in the catalog (0-based), the row of CQ.
        id: The reference table's 1-based id.
        name_en: English name.
        name_zh: Chinese name.
        category: basic, apparatus, combat, civilian, foreign or sport.
        unit: Unit of the raw result (s, reps, cm, ...).
        higher_is_better: Whether a larger raw result is better.
        loadings: Prior contribution of each quality, summing to 1 (a row of the CQ prior).
        source: Where the subject's definition comes from.
    """

    index: int
    id: int
    name_en: str
    name_zh: str
    category: str
    unit: str
    higher_is_better: bool
    loadings: tuple[float, ...]
    source: str


@dataclass(frozen=True)
class Exercise:
    """A training exercise, such as the back squat.

    Attributes:
        index: Position in the catalog (0-based), the column of QX.
        id: The reference table's 1-based id.
        name_en: English name.
        name_zh: Chinese name.
        group: endurance, strength, core, power, agility or flexibility.
        loadings: How much the exercise develops each quality, summing to 1.
    """

    index: int
    id: int
    name_en: str
    name_zh: str
    group: str
    loadings: tuple[float, ...]


def _name_index(items: tuple[Quality, ...] | tuple[Subject, ...] | tuple[Exercise, ...]) -> dict[str, int]:
    index: dict[str, int] = {}
    for item in items:
        index[item.name_en.casefold()] = item.index
        index[item.name_zh.casefold()] = item.index
    return index


@dataclass(frozen=True)
class Catalog:
    """Qualities, subjects and exercises, and the prior CQ and QX matrices built from their loadings.

    Attributes:
        qualities: The 5 qualities, in the order of every quality axis.
        subjects: The 93 subjects, in the order of every subject axis.
        exercises: The 44 exercises, in the order of every exercise axis.
        cq_prior: (n_subjects, n_qualities) subject loadings; rows sum to 1. Read-only.
        qx_prior: (n_qualities, n_exercises) exercise loadings transposed and row-normalized. Read-only.
    """

    qualities: tuple[Quality, ...]
    subjects: tuple[Subject, ...]
    exercises: tuple[Exercise, ...]
    cq_prior: np.ndarray = field(repr=False)
    qx_prior: np.ndarray = field(repr=False)
    _index: dict[str, dict[str, int]] = field(repr=False, compare=False)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Catalog:
        """Build a catalog from the parsed ``catalog.json`` document."""
        scale = float(document["loading_scale"])
        qualities = tuple(Quality(i, q["name_en"], q["name_zh"]) for i, q in enumerate(document["qualities"]))
        subjects = tuple(
            Subject(
                index=i,
                id=s["id"],
                name_en=s["name_en"],
                name_zh=s["name_zh"],
                category=s["category"],
                unit=s["unit"],
                higher_is_better=s["higher_is_better"],
                loadings=tuple(v / scale for v in s["loadings"]),
                source=s["source"],
            )
            for i, s in enumerate(document["subjects"])
        )
        exercises = tuple(
            Exercise(
                index=i,
                id=e["id"],
                name_en=e["name_en"],
                name_zh=e["name_zh"],
                group=e["group"],
                loadings=tuple(v / scale for v in e["loadings"]),
            )
            for i, e in enumerate(document["exercises"])
        )
        cq_prior = np.array([s.loadings for s in subjects], dtype=np.float64)
        exercise_loadings = np.array([e.loadings for e in exercises], dtype=np.float64)
        qx_prior = exercise_loadings.T / exercise_loadings.T.sum(axis=1, keepdims=True)
        cq_prior.setflags(write=False)
        qx_prior.setflags(write=False)
        index = {
            "quality": _name_index(qualities),
            "subject": _name_index(subjects),
            "exercise": _name_index(exercises),
        }
        return cls(qualities, subjects, exercises, cq_prior, qx_prior, index)

    @property
    def n_qualities(self) -> int:
        """Number of physical qualities (5)."""
        return len(self.qualities)

    @property
    def n_subjects(self) -> int:
        """Number of training subjects (93)."""
        return len(self.subjects)

    @property
    def n_exercises(self) -> int:
        """Number of training exercises (44)."""
        return len(self.exercises)

    def _resolve(self, kind: str, name: str | int) -> int:
        size = len(self._index[kind]) // 2
        if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
            if 0 <= name < size:
                return int(name)
            raise UnknownNameError(kind, f"index is out of range [0, {size})", value=name)
        if not isinstance(name, str):
            raise UnknownNameError(kind, f"must be a name or an index, got {type(name).__name__}")
        key = " ".join(name.split()).casefold()
        if key in self._index[kind]:
            return self._index[kind][key]
        names = self._display_names(kind)
        close = difflib.get_close_matches(key, list(names), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(names[c]) for c in close)}?" if close else ""
        raise UnknownNameError(kind, f"unknown {kind}{hint}", value=name)

    def _display_names(self, kind: str) -> dict[str, str]:
        items: tuple[Quality | Subject | Exercise, ...]
        items = self.qualities if kind == "quality" else self.subjects if kind == "subject" else self.exercises
        return {n.casefold(): n for item in items for n in (item.name_en, item.name_zh)}

    def subject_index(self, name: str | int) -> int:
        """Index of a subject given its English or Chinese name (any case) or its index.

        Raises:
            UnknownNameError: The name is unknown; the message lists close matches.
        """
        return self._resolve("subject", name)

    def quality_index(self, name: str | int) -> int:
        """Index of a quality given its English or Chinese name (any case) or its index."""
        return self._resolve("quality", name)

    def exercise_index(self, name: str | int) -> int:
        """Index of an exercise given its English or Chinese name (any case) or its index."""
        return self._resolve("exercise", name)


def load_catalog() -> Catalog:
    """Read the catalog shipped in the package's ``data/catalog.json``."""
    text = resources.files("fitness_weights_env").joinpath("data/catalog.json").read_text(encoding="utf-8")
    return Catalog.from_document(json.loads(text))


CATALOG: Catalog = load_catalog()
"""The package's catalog, loaded once at import."""
