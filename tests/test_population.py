import numpy as np
import pytest

from fitness_weights_env import CATALOG, LAYOUT, TraineeProfile, sample_profile, sample_profiles
from fitness_weights_env.layout import AGE_MAX, AGE_MIN
from fitness_weights_env.population import (
    EDGE_FRACTION,
    QUALITY_KIND_PROBS,
    QUALITY_KIND_PROBS_WITH_EQUAL,
    sample_vectors,
)


@pytest.fixture(scope="module")
def population() -> np.ndarray:
    """The population alone, without the wide trainees."""
    return sample_vectors([np.random.default_rng([7, i]) for i in range(4000)], edge_fraction=0.0)


def ages(vectors: np.ndarray) -> np.ndarray:
    return np.rint(AGE_MIN + (AGE_MAX - AGE_MIN) * vectors[:, LAYOUT.age][:, 0])


@pytest.mark.parametrize("edge_fraction", [EDGE_FRACTION, 0.0, 1.0])
def test_same_generator_same_trainee_alone_or_in_a_batch(edge_fraction):
    batch = sample_vectors([np.random.default_rng(i) for i in range(40)], edge_fraction)
    alone = np.stack([sample_vectors([np.random.default_rng(i)], edge_fraction)[0] for i in range(40)])
    np.testing.assert_array_equal(batch, alone)
    assert sample_profile(np.random.default_rng(3), edge_fraction) == TraineeProfile.from_vector(batch[3])
    assert sample_profiles(4, seed=1, edge_fraction=edge_fraction) == sample_profiles(4, 1, edge_fraction)
    assert sample_profiles(4, seed=1, edge_fraction=edge_fraction) != sample_profiles(4, 2, edge_fraction)


def test_the_population_alone_leaves_the_generator_where_it_always_did():
    assert EDGE_FRACTION == 0.15 and QUALITY_KIND_PROBS[1:3] == (0.0, 0.0)  # no equal qualities in training
    rngs, twins = [np.random.default_rng(5)], [np.random.default_rng(5)]
    sample_vectors(rngs, edge_fraction=0.0)
    twins[0].random(4 + CATALOG.n_subjects)  # the population's two calls: uniforms, then normals
    twins[0].standard_normal(2 + CATALOG.n_qualities + CATALOG.n_subjects + 4)
    assert rngs[0].random() == twins[0].random()  # so the episode draws that follow are the same as before
    mixed = sample_vectors([np.random.default_rng(i) for i in range(40)])
    population = sample_vectors([np.random.default_rng(i) for i in range(40)], edge_fraction=0.0)
    assert 0 < np.any(mixed != population, axis=1).sum() < 40, "wide and population trainees in one batch"


def test_the_documented_share_of_draws_is_wide_and_the_rest_is_the_population():
    def rngs() -> list[np.random.Generator]:
        return [np.random.default_rng([9, i]) for i in range(4000)]

    mixed, population, wide = (sample_vectors(rngs(), edge_fraction=f) for f in (EDGE_FRACTION, 0.0, 1.0))
    is_wide = np.any(mixed != population, axis=1)
    assert abs(is_wide.mean() - EDGE_FRACTION) < 0.02  # 3.5 standard errors at 4000 draws
    np.testing.assert_array_equal(mixed[is_wide], wide[is_wide])  # a wide trainee is the generator's wide draw
    quarter = sample_vectors(rngs(), edge_fraction=0.25)
    assert abs(np.any(quarter != population, axis=1).mean() - 0.25) < 0.025
    with pytest.raises(ValueError, match="edge_fraction"):
        sample_vectors(rngs()[:2], edge_fraction=1.5)
    with pytest.raises(ValueError, match="quality_kind_probs"):
        sample_vectors(rngs()[:2], quality_kind_probs=(0.5, 0.5, 0.5, 0.0))


@pytest.mark.parametrize(
    ("kind_probs", "many_targets"), [(QUALITY_KIND_PROBS, False), (QUALITY_KIND_PROBS_WITH_EQUAL, True)]
)
def test_wide_trainees_cover_every_field_and_its_corners(kind_probs, many_targets):
    wide = sample_vectors([np.random.default_rng([8, i]) for i in range(4000)], 1.0, kind_probs, many_targets)
    for vector in wide[:500]:
        TraineeProfile.from_vector(vector)  # raises on any invalid field
    age = ages(wide)
    assert age.min() == AGE_MIN and age.max() == AGE_MAX
    corner_share = 0.1 + 0.8 / (AGE_MAX - AGE_MIN + 1)  # 10% at the corner, plus its share of the uniform draws
    for corner in (AGE_MIN, AGE_MAX):
        assert abs(np.mean(age == corner) - corner_share) < 0.02
    assert abs(wide[:, LAYOUT.gender].mean() - 0.5) < 0.03
    fitness = wide[:, LAYOUT.fitness_level][:, 0]
    assert abs(np.mean(fitness == 0.0) - 0.1) < 0.02 and abs(np.mean(fitness == 1.0) - 0.1) < 0.02
    q = wide[:, LAYOUT.qualities]
    independent, equal_level, equal_corner, hot = kind_probs
    equal = np.ptp(q, axis=1) == 0
    assert abs(equal.mean() - (equal_level + equal_corner)) < 0.03
    for level in (0.0, 0.5, 1.0):
        assert abs(np.mean(equal & (q[:, 0] == level)) - equal_corner / 3) < 0.015
    one_hot = (np.sum(q == 1.0, axis=1) == 1) & (np.sum(q == 0.0, axis=1) == CATALOG.n_qualities - 1)
    assert abs(one_hot.mean() - hot) < 0.03
    assert all(np.any(q[one_hot, j] == 1.0) for j in range(CATALOG.n_qualities))
    spread = ~equal & ~one_hot
    assert abs(spread.mean() - independent) < 0.03
    assert q[spread].min() < 0.01 and q[spread].max() > 0.99  # independent U[0, 1] levels
    counts = wide[:, LAYOUT.targets].sum(axis=1)
    if not many_targets:  # as the population: 1, 2 or 3
        assert set(np.unique(counts)) == {1, 2, 3} and abs(np.mean(counts == 1) - 0.5) < 0.03
        return
    assert counts.min() == 1 and counts.max() >= 80 and counts.max() <= CATALOG.n_subjects
    assert abs(np.mean(counts == 1) - np.log(2) / np.log(CATALOG.n_subjects + 1)) < 0.02
    assert abs(np.mean(counts >= 10) - (1 - np.log(10) / np.log(CATALOG.n_subjects + 1))) < 0.03


def test_every_draw_is_a_valid_profile(population):
    for vector in population[:500]:
        TraineeProfile.from_vector(vector)  # raises on any invalid field
    assert population.min() >= 0.0 and population.max() <= 1.0


def test_age_and_sex_mix(population):
    age = ages(population)
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
    age = ages(population)
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
