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

Each trainee's random numbers come from its own generator, in two calls, and a batched transform
turns them into vectors. So a trainee is the same whether drawn alone or in a batch, which keeps the
single env and the vector env identical on the same seeds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.layout import AGE_MAX, AGE_MIN, LAYOUT
from fitness_weights_env.profile import TraineeProfile

__all__ = ["sample_profile", "sample_profiles", "sample_vectors", "typical_metrics", "typical_subject_scores"]

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


def sample_vectors(rngs: Sequence[np.random.Generator]) -> np.ndarray:
    """Draw one trainee per generator and return their vectors, shape ``(len(rngs), 198)`` float32.

    Each generator is advanced by exactly two calls, whatever the batch size.
    """
    uniforms = np.stack([rng.random(_N_UNIFORMS) for rng in rngs])
    normals = np.stack([rng.standard_normal(_N_NORMALS) for rng in rngs])
    return _vectors_from_draws(uniforms, normals)


def _vectors_from_draws(uniforms: np.ndarray, normals: np.ndarray) -> np.ndarray:
    n = uniforms.shape[0]
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
    order = np.argsort(uniforms[:, _U_TARGET_KEYS], axis=1)[:, : len(TARGET_COUNT_PROBS)]
    targets = np.zeros((n, CATALOG.n_subjects), dtype=bool)
    chosen = np.arange(order.shape[1]) < n_targets[:, None]  # the first n_targets of the random order
    targets[np.nonzero(chosen)[0], order[chosen]] = True

    metrics = np.clip(_metric_means(fitness) + METRIC_SD * normals[:, _Z_METRICS], 0.0, 1.0)

    vectors = np.empty((n, LAYOUT.size), dtype=np.float32)
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


def sample_profile(rng: np.random.Generator) -> TraineeProfile:
    """Draw one trainee with ``rng``."""
    return TraineeProfile.from_vector(sample_vectors([rng])[0])


def sample_profiles(n: int, seed: int) -> list[TraineeProfile]:
    """Draw ``n`` trainees, the i-th with ``np.random.default_rng([seed, i])``: a reproducible held-out set."""
    return [sample_profile(np.random.default_rng([seed, i])) for i in range(n)]
