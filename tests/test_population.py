import numpy as np
import pytest

from fitness_weights_env import CATALOG, LAYOUT, TraineeProfile, sample_profile, sample_profiles
from fitness_weights_env.population import sample_vectors


@pytest.fixture(scope="module")
def population() -> np.ndarray:
    return sample_vectors([np.random.default_rng([7, i]) for i in range(4000)])


def test_same_generator_same_trainee_alone_or_in_a_batch():
    batch = sample_vectors([np.random.default_rng(i) for i in range(5)])
    alone = np.stack([sample_vectors([np.random.default_rng(i)])[0] for i in range(5)])
    np.testing.assert_array_equal(batch, alone)
    assert sample_profile(np.random.default_rng(3)) == TraineeProfile.from_vector(batch[3])
    assert sample_profiles(4, seed=1) == sample_profiles(4, seed=1)
    assert sample_profiles(4, seed=1) != sample_profiles(4, seed=2)


def test_every_draw_is_a_valid_profile(population):
    for vector in population[:500]:
        TraineeProfile.from_vector(vector)  # raises on any invalid field
    assert population.min() >= 0.0 and population.max() <= 1.0


def test_age_and_sex_mix(population):
    age = np.rint(16 + 49 * population[:, LAYOUT.age][:, 0])
    female = population[:, LAYOUT.gender][:, 0] == 1
    assert age.min() >= 18 and age.max() <= 45
    assert abs(np.mean(age <= 24) - 0.60) < 0.03
    assert abs(np.mean(age >= 33) - 0.15) < 0.03
    assert abs(female.mean() - 0.15) < 0.02


def test_qualities_share_a_general_factor(population):
    q = population[:, LAYOUT.qualities]
    r = np.corrcoef(q.T)
    endurance, flexibility, agility, power, strength = range(5)
    assert 0.35 <= r[power, agility] <= 0.65
    assert 0.25 <= r[strength, power] <= 0.55
    assert 0.05 <= r[endurance, strength] <= 0.35
    assert np.all(np.abs(np.delete(r[flexibility], flexibility)) <= 0.2)
    fitness = population[:, LAYOUT.fitness_level][:, 0]
    assert np.corrcoef(fitness, q.mean(axis=1))[0, 1] > 0.8


def test_age_and_sex_effects(population):
    q = population[:, LAYOUT.qualities]
    age = np.rint(16 + 49 * population[:, LAYOUT.age][:, 0])
    female = population[:, LAYOUT.gender][:, 0] == 1
    strength = CATALOG.quality_index("strength")
    endurance = CATALOG.quality_index("endurance")
    flexibility = CATALOG.quality_index("flexibility")
    assert q[female, strength].mean() < 0.8 * q[~female, strength].mean()
    assert q[female, endurance].mean() < q[~female, endurance].mean()
    assert q[female, flexibility].mean() >= 0.98 * q[~female, flexibility].mean()
    assert q[(age >= 40) & ~female, strength].mean() < q[(age <= 24) & ~female, strength].mean()


def test_subject_scores_follow_the_prior_and_targets_are_one_to_three(population):
    q = population[:, LAYOUT.qualities].astype(np.float64)
    scores = population[:, LAYOUT.subject_scores]
    residual = scores - np.clip(q @ CATALOG.cq_prior.T, 0, 1)
    assert np.abs(residual).mean() < 0.06
    counts = population[:, LAYOUT.targets].sum(axis=1)
    assert set(np.unique(counts)) == {1, 2, 3}
    assert abs(np.mean(counts == 1) - 0.5) < 0.03
