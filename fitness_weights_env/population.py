"""A seeded synthetic population of plausible trainees.

The figures follow the reference notes (``shared/reference/README.md``); where the notes give a
range, the middle is used. They are estimates meant to make plausible trainees, not norms.

* **Age**: 60% aged 18 to 24, 25% aged 25 to 32, 15% aged 33 to 45 (whole years, uniform within a band).
* **Sex**: 85% male, 15% female.
* **Qualities**: one general fitness factor ``g`` and a specific factor per quality,
  ``z_j = l_j g + sqrt(1 - l_j^2) e_j``, so that ``corr(z_i, z_j) = l_i l_j``. The loadings ``l``
  give power-agility 0.50, strength-power 0.40, endurance-strength 0.20 and flexibility-anything
  below 0.12, inside the suggested ranges. A level is ``clip(0.55 + 0.15 z, 0, 1)``, then scaled
  by age and sex effects (below).
* **Age effects**: per year past an onset age, endurance -0.6% from 26 (APFT 2-mile pass times),
  flexibility -0.4% from 25, agility -0.6% from 28, power -1.0% from 30 and strength -1.3% from 38
  (12 to 15% per decade from the 40s).
* **Sex effects** (women relative to men): endurance 0.85 (run times 12 to 18% slower),
  flexibility 1.05, agility 0.90, power 0.75, strength 0.68 (upper body 55 to 65%, lower body
  70 to 80%).
* **Fitness level**: the mean quality level plus N(0, 0.05) noise, clipped to [0, 1].
* **Subject scores**: ``CQ_prior @ qualities`` plus N(0, 0.05) noise, clipped to [0, 1].
* **Targets**: 1, 2 or 3 distinct subjects (probabilities 0.5, 0.3, 0.2), uniform over subjects.
* **Recorded performance metrics**: recent_improvement ~ 0.5 + N(0, 0.1), injury_risk ~
  0.2 + N(0, 0.1), training_efficiency ~ fitness_level + N(0, 0.1), consistency ~ 0.7 + N(0, 0.15),
  each clipped to [0, 1].

**Wide trainees** (``edge_fraction``). A request can carry any valid profile, and some natural ones lie
far outside the population above (every quality 0.5, a default; one quality only; age 16 or 65). With
``edge_fraction=f``, a share ``f`` of the draws ignores the population's figures and covers every field's
valid range, with the degenerate corners given weight of their own:

=====================  ===================================================================================
field                  wide draw
=====================  ===================================================================================
age                    16 or 65 (10% each), else uniform over the whole years ``AGE_MIN`` to ``AGE_MAX``
sex                    female 50%
qualities              independent ``U[0, 1]`` (65%); one-hot, one quality at 1 and the rest 0 (35%)
                       (``QUALITY_KIND_PROBS``). ``QUALITY_KIND_PROBS_WITH_EQUAL`` adds equal qualities:
                       independent 40%, all equal at a ``U[0, 1]`` level 20%, all equal at 0, 0.5 or 1
                       15% (a third each), one-hot 25% (``quality_kind_probs``)
fitness level          0 or 1 (10% each), else ``U[0, 1]``
subject scores         the population's scores for those qualities (50%, as above), else ``U[0, 1]`` each
targets                as the population: 1, 2 or 3 (0.5, 0.3, 0.2). ``many_targets=True``: ``floor(94^u)``
                       for ``u ~ U[0, 1)`` (log-uniform over 1 to 93: 1 target 15%, up to 3 30%, 10 or
                       more 49%). Uniform over subjects
performance metrics    ``U[0, 1]`` each
=====================  ===================================================================================

The env draws with the defaults, so training sees 15% wide trainees (``EDGE_FRACTION``); the held-out
trainees of ``sb3_ext.evaluate`` are the population alone (``edge_fraction=0``), and its table of named
edge profiles measures the corners on their own. Equal qualities and many targets are left out of
training: with either, some training seeds fell far below the population alone, their policies spreading
their mass over non-target subjects, while with these defaults every seed beat it (the runs are in
``benchmarks/RESULTS.md``, "Which wide trainees training sees"). With every quality equal no action
changes the target score and every action adds drift (the 685 actions have no "leave it"), so training on
such trainees has little to teach.

Each trainee's random numbers come from its own generator, in two calls (the population's uniforms and
normals), plus a third for the wide draw when ``edge_fraction`` is above 0, and a batched transform turns
them into vectors. So a trainee is the same whether drawn alone or in a batch, which keeps the single
env and the vector env identical on the same seeds. With ``edge_fraction=0`` the generators give the
trainees, and then the episodes, that they gave before the wide draws existed; above 0, a trainee that
is not drawn wide is the same trainee as at 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import AGE_MAX, AGE_MIN, LAYOUT
from fitness_weights_env.profile import TraineeProfile

__all__ = [
    "EDGE_FRACTION",
    "QUALITY_KIND_PROBS",
    "QUALITY_KIND_PROBS_WITH_EQUAL",
    "WIDE_QUALITY_KINDS",
    "sample_profile",
    "sample_profiles",
    "sample_vectors",
    "typical_metrics",
    "typical_subject_scores",
]

AGE_BANDS = np.array([[18, 24], [25, 32], [33, 45]])
AGE_BAND_PROBS = np.array([0.60, 0.25, 0.15])
FEMALE_PROB = 0.15
TARGET_COUNT_PROBS = np.array([0.5, 0.3, 0.2])  # 1, 2 or 3 targets

# Per quality, in catalog order: endurance, flexibility, agility, power, strength.
FACTOR_LOADINGS = np.array([0.38, 0.15, 0.67, 0.75, 0.53])
QUALITY_MEAN, QUALITY_SD = 0.55, 0.15
AGE_ONSET = np.array([26.0, 25.0, 28.0, 30.0, 38.0])
AGE_DECLINE_PER_YEAR = np.array([0.006, 0.004, 0.006, 0.010, 0.013])
FEMALE_FACTOR = np.array([0.85, 1.05, 0.90, 0.75, 0.68])

FITNESS_NOISE, SCORE_NOISE = 0.05, 0.05
METRIC_MEAN = np.array([0.5, 0.2, 0.0, 0.7])  # training_efficiency is centred on the fitness level
METRIC_SD = np.array([0.1, 0.1, 0.1, 0.15])

# Layout of each trainee's raw draws.
_U_AGE_BAND, _U_AGE, _U_SEX, _U_N_TARGETS = 0, 1, 2, 3
_U_TARGET_KEYS = slice(4, 4 + CATALOG.n_subjects)
_N_UNIFORMS = _U_TARGET_KEYS.stop
_Z_GENERAL = 0
_Z_SPECIFIC = slice(1, 1 + CATALOG.n_qualities)
_Z_FITNESS = _Z_SPECIFIC.stop
_Z_SCORES = slice(_Z_FITNESS + 1, _Z_FITNESS + 1 + CATALOG.n_subjects)
_Z_METRICS = slice(_Z_SCORES.stop, _Z_SCORES.stop + len(METRIC_MEAN))
_N_NORMALS = _Z_METRICS.stop

EDGE_FRACTION = 0.15
"""Default share of wide trainees (every field over its valid range, with corners of their own)."""
WIDE_AGE_CORNER_PROB = 0.2  # age 16 or 65, half each
WIDE_FEMALE_PROB = 0.5
WIDE_FITNESS_CORNER_PROB = 0.2  # fitness level 0 or 1, half each
WIDE_QUALITY_KINDS = ("independent", "equal", "equal at 0, 0.5 or 1", "one-hot")
QUALITY_KIND_PROBS = (0.65, 0.0, 0.0, 0.35)
"""Default probabilities of the wide trainees' ``WIDE_QUALITY_KINDS``: no equal qualities (module docstring)."""
QUALITY_KIND_PROBS_WITH_EQUAL = (0.40, 0.20, 0.15, 0.25)
"""The wide trainees with equal qualities, as measured (module docstring)."""
WIDE_EQUAL_CORNERS = np.array([0.0, 0.5, 1.0])
WIDE_TYPICAL_SCORES_PROB = 0.5

# Layout of each trainee's wide draws (the third call).
_W_KIND, _W_AGE_CORNER, _W_AGE, _W_SEX, _W_FITNESS_CORNER, _W_FITNESS = range(6)
_W_QUALITY_KIND, _W_QUALITY_PICK, _W_SCORES_KIND, _W_N_TARGETS = range(6, 10)
_W_QUALITIES = slice(10, 10 + CATALOG.n_qualities)
_W_SCORES = slice(_W_QUALITIES.stop, _W_QUALITIES.stop + CATALOG.n_subjects)
_W_METRICS = slice(_W_SCORES.stop, _W_SCORES.stop + len(METRIC_MEAN))
_N_WIDE = _W_METRICS.stop


def sample_vectors(
    rngs: Sequence[np.random.Generator],
    edge_fraction: float = EDGE_FRACTION,
    quality_kind_probs: Sequence[float] = QUALITY_KIND_PROBS,
    many_targets: bool = False,
) -> np.ndarray:
    """Draw one trainee per generator and return their vectors, shape ``(len(rngs), 198)`` float32.

    Each generator is advanced by exactly two calls when ``edge_fraction`` is 0, three otherwise, whatever
    the batch size.

    Args:
        rngs: One generator per trainee.
        edge_fraction: Share of wide trainees, in [0, 1] (module docstring); 0 draws the population alone.
        quality_kind_probs: Probabilities of the wide trainees' quality kinds, in ``WIDE_QUALITY_KINDS`` order.
        many_targets: Wide trainees draw their number of targets log-uniformly over 1 to 93, not as the population.
    """
    if not 0.0 <= edge_fraction <= 1.0:
        raise FieldError("edge_fraction", "must be in [0, 1]", edge_fraction)
    kind_probs = np.asarray(quality_kind_probs, dtype=np.float64)
    if kind_probs.shape != (len(WIDE_QUALITY_KINDS),) or np.any(kind_probs < 0) or abs(kind_probs.sum() - 1) > 1e-9:
        raise FieldError("quality_kind_probs", f"must be {len(WIDE_QUALITY_KINDS)} probabilities summing to 1")
    uniforms = np.stack([rng.random(_N_UNIFORMS) for rng in rngs])
    normals = np.stack([rng.standard_normal(_N_NORMALS) for rng in rngs])
    vectors = _vectors_from_draws(uniforms, normals)
    if edge_fraction == 0.0:
        return vectors  # the population alone, with the generators where the population leaves them
    wide = np.stack([rng.random(_N_WIDE) for rng in rngs])
    is_wide = wide[:, _W_KIND] < edge_fraction
    if np.any(is_wide):
        vectors[is_wide] = _wide_vectors_from_draws(
            uniforms[is_wide], normals[is_wide], wide[is_wide], kind_probs, many_targets
        )
    return vectors


def _vectors_from_draws(uniforms: np.ndarray, normals: np.ndarray) -> np.ndarray:
    band = np.searchsorted(np.cumsum(AGE_BAND_PROBS), uniforms[:, _U_AGE_BAND], side="right")
    low, high = AGE_BANDS[band, 0], AGE_BANDS[band, 1]
    age = low + np.floor(uniforms[:, _U_AGE] * (high - low + 1)).astype(np.int64)
    female = uniforms[:, _U_SEX] < FEMALE_PROB

    specific = np.sqrt(1.0 - FACTOR_LOADINGS**2)
    latent = FACTOR_LOADINGS * normals[:, [_Z_GENERAL]] + specific * normals[:, _Z_SPECIFIC]
    age_factor = 1.0 - AGE_DECLINE_PER_YEAR * np.maximum(0.0, age[:, None] - AGE_ONSET)
    sex_factor = np.where(female[:, None], FEMALE_FACTOR, 1.0)
    qualities = np.clip((QUALITY_MEAN + QUALITY_SD * latent) * age_factor * sex_factor, 0.0, 1.0)

    fitness = np.clip(qualities.mean(axis=1) + FITNESS_NOISE * normals[:, _Z_FITNESS], 0.0, 1.0)
    scores = np.clip(_subject_score_means(qualities) + SCORE_NOISE * normals[:, _Z_SCORES], 0.0, 1.0)
    n_targets = 1 + np.searchsorted(np.cumsum(TARGET_COUNT_PROBS), uniforms[:, _U_N_TARGETS], side="right")
    metrics = np.clip(_metric_means(fitness) + METRIC_SD * normals[:, _Z_METRICS], 0.0, 1.0)
    return _assemble(age, female, fitness, qualities, scores, _target_mask(uniforms, n_targets), metrics)


def _wide_vectors_from_draws(
    uniforms: np.ndarray, normals: np.ndarray, wide: np.ndarray, kind_probs: np.ndarray, many_targets: bool
) -> np.ndarray:
    """Wide trainees: every field over its valid range, with the corners of the module docstring."""
    corner_age = np.where(wide[:, _W_AGE] < 0.5, AGE_MIN, AGE_MAX)
    uniform_age = AGE_MIN + np.floor(wide[:, _W_AGE] * (AGE_MAX - AGE_MIN + 1)).astype(np.int64)
    age = np.where(wide[:, _W_AGE_CORNER] < WIDE_AGE_CORNER_PROB, corner_age, np.minimum(uniform_age, AGE_MAX))
    female = wide[:, _W_SEX] < WIDE_FEMALE_PROB
    corner_fitness = (wide[:, _W_FITNESS] >= 0.5).astype(np.float64)
    fitness = np.where(wide[:, _W_FITNESS_CORNER] < WIDE_FITNESS_CORNER_PROB, corner_fitness, wide[:, _W_FITNESS])

    kind = np.searchsorted(np.cumsum(kind_probs), wide[:, _W_QUALITY_KIND], side="right")
    kind = np.minimum(kind, len(kind_probs) - 1)
    pick = wide[:, _W_QUALITY_PICK]
    corner_level = WIDE_EQUAL_CORNERS[np.minimum((pick * len(WIDE_EQUAL_CORNERS)).astype(np.int64), 2)]
    hot = np.minimum((pick * CATALOG.n_qualities).astype(np.int64), CATALOG.n_qualities - 1)
    qualities = wide[:, _W_QUALITIES].copy()
    qualities[kind == 1] = pick[kind == 1, None]
    qualities[kind == 2] = corner_level[kind == 2, None]
    one_hot = np.arange(CATALOG.n_qualities) == hot[:, None]
    qualities[kind == 3] = one_hot[kind == 3]

    typical = np.clip(_subject_score_means(qualities) + SCORE_NOISE * normals[:, _Z_SCORES], 0.0, 1.0)
    scores = np.where(wide[:, [_W_SCORES_KIND]] < WIDE_TYPICAL_SCORES_PROB, typical, wide[:, _W_SCORES])
    count_draw = wide[:, _W_N_TARGETS]
    if many_targets:
        n_targets = np.clip(np.floor((CATALOG.n_subjects + 1) ** count_draw), 1, CATALOG.n_subjects).astype(np.int64)
    else:
        n_targets = 1 + np.searchsorted(np.cumsum(TARGET_COUNT_PROBS), count_draw, side="right")
    targets = _target_mask(uniforms, n_targets)
    return _assemble(age, female, fitness, qualities, scores, targets, wide[:, _W_METRICS])


def _target_mask(uniforms: np.ndarray, n_targets: np.ndarray) -> np.ndarray:
    """The first ``n_targets`` subjects of each trainee's random order (its target keys), as a mask."""
    order = np.argsort(uniforms[:, _U_TARGET_KEYS], axis=1)[:, : int(n_targets.max(initial=1))]
    targets = np.zeros((uniforms.shape[0], CATALOG.n_subjects), dtype=bool)
    chosen = np.arange(order.shape[1]) < n_targets[:, None]
    targets[np.nonzero(chosen)[0], order[chosen]] = True
    return targets


def _assemble(
    age: np.ndarray,
    female: np.ndarray,
    fitness: np.ndarray,
    qualities: np.ndarray,
    scores: np.ndarray,
    targets: np.ndarray,
    metrics: np.ndarray,
) -> np.ndarray:
    """Lay the fields of a batch of trainees out as float32 vectors (``LAYOUT``)."""
    vectors = np.empty((age.shape[0], LAYOUT.size), dtype=np.float32)
    vectors[:, LAYOUT.age] = ((age - AGE_MIN) / (AGE_MAX - AGE_MIN))[:, None]
    vectors[:, LAYOUT.gender] = female[:, None]
    vectors[:, LAYOUT.fitness_level] = fitness[:, None]
    vectors[:, LAYOUT.qualities] = qualities
    vectors[:, LAYOUT.subject_scores] = scores
    vectors[:, LAYOUT.targets] = targets
    vectors[:, LAYOUT.metrics] = metrics
    return vectors


def _subject_score_means(qualities: np.ndarray) -> np.ndarray:
    """Mean subject scores of trainees with these quality levels, ``(..., 5) -> (..., 93)``, before clipping."""
    return qualities @ CATALOG.cq_prior.T


def _metric_means(fitness_level: np.ndarray) -> np.ndarray:
    """Mean recorded metrics, ``(...,) -> (..., 4)``: training_efficiency is centred on the fitness level."""
    means = np.broadcast_to(METRIC_MEAN, (*np.shape(fitness_level), len(METRIC_MEAN))).copy()
    means[..., 2] = fitness_level
    return means


def typical_subject_scores(qualities: np.ndarray) -> np.ndarray:
    """The population's mean score of each subject for these quality levels: ``clip(CQ_prior @ qualities, 0, 1)``.

    What the service assumes for a trainee whose subject scores were not measured.
    """
    return np.clip(_subject_score_means(np.asarray(qualities, dtype=np.float64)), 0.0, 1.0)


def typical_metrics(fitness_level: float) -> np.ndarray:
    """The population's mean performance metrics for this fitness level, in ``METRIC_NAMES`` order.

    What the service assumes for a trainee whose metrics were not recorded.
    """
    return np.clip(_metric_means(np.float64(fitness_level)), 0.0, 1.0)


def sample_profile(
    rng: np.random.Generator,
    edge_fraction: float = EDGE_FRACTION,
    quality_kind_probs: Sequence[float] = QUALITY_KIND_PROBS,
    many_targets: bool = False,
) -> TraineeProfile:
    """Draw one trainee with ``rng``; the other arguments as in :func:`sample_vectors`."""
    return TraineeProfile.from_vector(sample_vectors([rng], edge_fraction, quality_kind_probs, many_targets)[0])


def sample_profiles(
    n: int,
    seed: int,
    edge_fraction: float = EDGE_FRACTION,
    quality_kind_probs: Sequence[float] = QUALITY_KIND_PROBS,
    many_targets: bool = False,
) -> list[TraineeProfile]:
    """Draw ``n`` trainees, the i-th with ``np.random.default_rng([seed, i])``: a reproducible held-out set.

    Args:
        n: Number of trainees.
        seed: Seed of the set.
        edge_fraction: Share of wide trainees, as in :func:`sample_vectors`; 0 draws the population alone.
        quality_kind_probs: The wide trainees' quality kinds, as in :func:`sample_vectors`.
        many_targets: The wide trainees' numbers of targets, as in :func:`sample_vectors`.
    """
    return [
        sample_profile(np.random.default_rng([seed, i]), edge_fraction, quality_kind_probs, many_targets)
        for i in range(n)
    ]
