"""The hidden per-trainee parameters of the training-response model (fitness_weights_env.hidden)."""

from __future__ import annotations

import numpy as np

from fitness_weights_env.hidden import EXERCISE_LOADINGS, RESPONSIVENESS_SIGMA, sample_hidden


def _rngs(n: int, seed: int = 0) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, i]) for i in range(n)]


def test_a_trainee_is_the_same_alone_or_in_a_batch_and_reproducible():
    batch = sample_hidden(_rngs(8))
    again = sample_hidden(_rngs(8))
    alone = sample_hidden(_rngs(8)[5:6])
    for name, value in vars(batch).items():
        np.testing.assert_array_equal(value, vars(again)[name])
        np.testing.assert_array_equal(value[5:6], vars(alone)[name])
    assert not np.array_equal(batch.responsiveness[0], batch.responsiveness[1])


def test_the_draws_have_the_documented_shape_ranges_and_spread():
    hidden = sample_hidden(_rngs(10_000, seed=1))
    assert hidden.responsiveness.shape == (10_000, 5) and hidden.transfer.shape == (10_000, 44, 5)
    assert np.all(hidden.tau2 < hidden.tau1) and np.all(hidden.gain_ratio > 1)
    assert hidden.tau1.min() >= 25 and hidden.tau1.max() <= 70 and abs(np.median(hidden.tau1) - 42) < 0.5
    np.testing.assert_allclose(hidden.transfer.sum(axis=2), 1.0)
    log_r = np.log(hidden.responsiveness)
    assert abs(log_r.std() - RESPONSIVENESS_SIGMA) < 0.01  # lognormal with the documented sigma
    correlations = np.corrcoef(log_r.T)[np.triu_indices(5, 1)]
    assert np.all(np.abs(correlations - 0.3) < 0.03)  # trait-specific, correlated about 0.3
    mean_transfer = hidden.transfer.mean(axis=0)
    assert np.abs(mean_transfer - EXERCISE_LOADINGS).max() < 0.02  # the catalog is right on average
    assert hidden.transfer.std(axis=0).max() > 0.05  # and not for each trainee
    assert set(hidden.to_dict()) == {"responsiveness", "tau1", "tau2", "gain_ratio", "transfer"}
