"""The hidden per-trainee parameters of the training-response model (fitness_weights_env.hidden)."""

from __future__ import annotations

import numpy as np
import pytest

from fitness_weights_env.errors import FieldError
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


def _draw_as_before(rngs: list[np.random.Generator]) -> dict[str, np.ndarray]:
    """v1's draw as ``sample_hidden`` made it before distributions were a choice, from the module's constants."""
    from fitness_weights_env.hidden import (
        _ALPHA,
        _GAIN_RATIO,
        _TAU1,
        _TAU2,
        RESPONSIVENESS_CORRELATION,
    )

    normals = np.empty((len(rngs), 9))
    gammas = np.empty((len(rngs), *_ALPHA.shape))
    for i, rng in enumerate(rngs):
        rng.standard_normal(out=normals[i])
        rng.standard_gamma(_ALPHA, out=gammas[i])
    rho = RESPONSIVENESS_CORRELATION
    z = np.sqrt(rho) * normals[:, :1] + np.sqrt(1.0 - rho) * normals[:, 1:6]

    def lognormal(normal, spec):
        return np.clip(spec[0] * np.exp(spec[1] * normal), spec[2], spec[3])

    return {
        "responsiveness": np.exp(RESPONSIVENESS_SIGMA * z),
        "tau1": lognormal(normals[:, 6], _TAU1),
        "tau2": lognormal(normals[:, 7], _TAU2),
        "gain_ratio": lognormal(normals[:, 8], _GAIN_RATIO),
        "transfer": gammas / gammas.sum(axis=2, keepdims=True),
    }


def test_the_default_distribution_is_v1_s_draw_bit_for_bit():
    from fitness_weights_env.hidden import (
        _ALPHA,
        _GAIN_RATIO,
        _TAU1,
        _TAU2,
        DEFAULT_HIDDEN,
        HIDDEN_DISTRIBUTIONS,
        TRANSFER_CONCENTRATION,
        TRANSFER_FLOOR,
    )

    assert HIDDEN_DISTRIBUTIONS["default"] is DEFAULT_HIDDEN
    assert (DEFAULT_HIDDEN.tau1, DEFAULT_HIDDEN.tau2, DEFAULT_HIDDEN.gain_ratio) == (_TAU1, _TAU2, _GAIN_RATIO)
    assert DEFAULT_HIDDEN.responsiveness_sigma == RESPONSIVENESS_SIGMA
    assert DEFAULT_HIDDEN.transfer_concentration == TRANSFER_CONCENTRATION
    assert DEFAULT_HIDDEN.transfer_floor == TRANSFER_FLOOR
    assert np.array_equal(DEFAULT_HIDDEN.alpha, _ALPHA)
    rngs, before = _rngs(6, seed=4), _rngs(6, seed=4)
    drawn, expected = sample_hidden(rngs), _draw_as_before(before)
    for name, value in vars(drawn).items():
        np.testing.assert_array_equal(value, expected[name])
    assert [rng.random() for rng in rngs] == [rng.random() for rng in before]  # the same calls: the same state after
    again = sample_hidden(_rngs(6, seed=4), DEFAULT_HIDDEN)
    assert all(np.array_equal(value, vars(again)[name]) for name, value in vars(drawn).items())


def test_the_wide_distribution_spreads_every_parameter_wider():
    from fitness_weights_env.hidden import DEFAULT_HIDDEN, WIDE_HIDDEN

    default, wide = sample_hidden(_rngs(2000, seed=2)), sample_hidden(_rngs(2000, seed=2), WIDE_HIDDEN)

    def off_catalog(hidden):  # the mean L1 distance of a trainee's transfer row from the catalog's
        return np.abs(hidden.transfer - EXERCISE_LOADINGS).sum(axis=2).mean()

    assert off_catalog(wide) > 1.8 * off_catalog(default)  # each trainee's transfer about twice as far (0.42, 0.22)
    np.testing.assert_allclose(wide.transfer.mean(axis=0), WIDE_HIDDEN.mean_transfer, atol=0.02)
    for name in ("tau1", "tau2", "gain_ratio"):
        assert np.log(vars(wide)[name]).std() > 1.5 * np.log(vars(default)[name]).std()
        median = getattr(DEFAULT_HIDDEN, name)[0]
        assert abs(np.median(vars(wide)[name]) - median) < 0.05 * median  # wider around the same median
    assert np.all(wide.tau2 < wide.tau1) and np.all(wide.gain_ratio > 1)
    correlations = np.corrcoef(np.log(wide.responsiveness).T)[np.triu_indices(5, 1)]
    assert np.all(np.abs(correlations - WIDE_HIDDEN.responsiveness_correlation) < 0.06)
    np.testing.assert_array_equal(wide.tau1 > 42, default.tau1 > 42)  # the same standard normals, spread wider


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"transfer_concentration": 0.0}, "transfer_concentration"),
        ({"transfer_floor": -0.1}, "transfer_floor"),
        ({"responsiveness_sigma": float("nan")}, "responsiveness_sigma"),
        ({"responsiveness_correlation": 1.5}, "responsiveness_correlation"),
        ({"tau1_sigma": "wide"}, "tau1_sigma"),
        ({"gain_ratio_sigma": True}, "gain_ratio_sigma"),
    ],
)
def test_a_bad_spread_names_its_field(kwargs, field):
    from fitness_weights_env.hidden import HiddenDistribution

    with pytest.raises(FieldError) as raised:
        HiddenDistribution(**kwargs)
    assert raised.value.field == field


def test_a_distribution_is_named_or_given_and_nothing_else():
    from fitness_weights_env.hidden import WIDE_HIDDEN, HiddenDistribution, hidden_distribution

    assert hidden_distribution("wide") is WIDE_HIDDEN
    custom = HiddenDistribution(transfer_concentration=5)
    assert hidden_distribution(custom) is custom and custom.transfer_concentration == 5.0
    for bad in ("narrow", None, 3):
        with pytest.raises(FieldError) as raised:
            hidden_distribution(bad)
        assert raised.value.field == "hidden" and "'default', 'wide'" in raised.value.reason
