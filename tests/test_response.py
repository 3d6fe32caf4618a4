"""The fitness-fatigue core of the training-response model (fitness_weights_env.response)."""

from __future__ import annotations

import numpy as np
import pytest

from fitness_weights_env import CATALOG
from fitness_weights_env.errors import FieldError
from fitness_weights_env.response import (
    GAP_FLOOR,
    HALF_SATURATION,
    FitnessFatigue,
    constant_impulse_terms,
    impulse_peak,
    impulse_response,
    impulse_zero_crossing,
    performance,
    step,
    step_terms,
    stimulus,
    training_plan,
)

BANISTER = {"k1": 1.0, "k2": 2.0, "tau1": 42.0, "tau2": 7.0}


def test_one_impulse_crosses_zero_at_5_8_days_and_peaks_at_20_9():
    crossing, peak = impulse_zero_crossing(**BANISTER), impulse_peak(**BANISTER)
    assert crossing == pytest.approx(42 * 7 / 35 * np.log(2)) and round(crossing, 1) == 5.8
    assert peak == pytest.approx(42 * 7 / 35 * np.log(12)) and round(peak, 1) == 20.9
    assert impulse_response(crossing, **BANISTER) == pytest.approx(0.0, abs=1e-12)
    slope = impulse_response(peak + 1e-4, **BANISTER) - impulse_response(peak - 1e-4, **BANISTER)
    assert abs(slope) < 1e-9

    # The recursion, one step a day (days_per_step=1): one unit impulse on day 0, then rest.
    state = FitnessFatigue.zeros((1,))
    responses = []
    for day in range(60):
        step(state, 1.0 if day == 0 else 0.0, tau1=42.0, tau2=7.0, k2=2.0)
        responses.append(float(performance(state, 1.0)[0]))
    np.testing.assert_allclose(responses, impulse_response(np.arange(60.0), **BANISTER), rtol=1e-12, atol=1e-12)
    assert responses[5] < 0 < responses[6]  # the crossing at 5.8 days
    assert int(np.argmax(responses)) == 21  # the peak at 20.9 days, sampled daily


def test_the_batch_is_the_elements_one_by_one_and_days_compose():
    rng = np.random.default_rng(0)
    shape = (4, 5)
    tau1, tau2 = rng.uniform(30, 50, shape), rng.uniform(5, 12, shape)
    impulses = rng.uniform(0, 1, (10, *shape))
    batch = FitnessFatigue.zeros(shape)
    for impulse in impulses:
        step(batch, impulse, tau1=tau1, tau2=tau2, k2=1.5, k3=0.2, tau3=5.0)
    for i, j in np.ndindex(shape):
        alone = FitnessFatigue.zeros(())
        for impulse in impulses[:, i, j]:
            step(alone, impulse, tau1=tau1[i, j], tau2=tau2[i, j], k2=1.5, k3=0.2, tau3=5.0)
        assert performance(alone, 1.0) == performance(batch, 1.0)[i, j]
    weekly, daily = FitnessFatigue.zeros((3,)), FitnessFatigue.zeros((3,))
    step(weekly, np.array([0.1, 0.5, 1.0]), tau1=42.0, tau2=7.0, k2=2.0, days=7)
    for _ in range(7):
        step(daily, np.array([0.1, 0.5, 1.0]), tau1=42.0, tau2=7.0, k2=2.0)
    np.testing.assert_array_equal(performance(weekly, 1.0), performance(daily, 1.0))


def test_busso_gain_is_the_direct_double_sum():
    rng = np.random.default_rng(1)
    w = rng.uniform(0, 1, 30)
    k1, k3, tau1, tau2, tau3 = 1.0, 0.3, 42.0, 7.0, 4.0
    state = FitnessFatigue.zeros(())
    for impulse in w:
        step(state, impulse, tau1=tau1, tau2=tau2, k3=k3, tau3=tau3)
    n = len(w) - 1
    gain = [k3 * sum(w[j] * np.exp(-(i - j) / tau3) for j in range(i + 1)) for i in range(n + 1)]
    direct = sum(k1 * w[i] * np.exp(-(n - i) / tau1) - gain[i] * w[i] * np.exp(-(n - i) / tau2) for i in range(n + 1))
    assert float(performance(state, k1)) == pytest.approx(direct, rel=1e-12)


def test_a_growing_fatigue_gain_makes_the_best_load_an_interior_one():
    """Busso's gain: performance after a block of training is an inverted U of its daily load."""
    loads = np.linspace(0.0, 4.0, 81)
    state = FitnessFatigue.zeros(loads.shape)
    step(state, loads, tau1=42.0, tau2=7.0, k2=0.5, k3=2.0, tau3=5.0, days=28)  # four weeks of training
    step(state, 0.0, tau1=42.0, tau2=7.0, k2=0.5, k3=2.0, tau3=5.0, days=14)  # two weeks of taper
    outcome = performance(state, 1.0)
    best = int(np.argmax(outcome))
    assert 0 < best < len(loads) - 1 and outcome[best] > outcome[0] and outcome[best] > outcome[-1]
    fixed = FitnessFatigue.zeros(loads.shape)  # Banister's fixed gain: more load, more gain after the taper
    step(fixed, loads, tau1=42.0, tau2=7.0, k2=0.5, days=28)
    step(fixed, 0.0, tau1=42.0, tau2=7.0, k2=0.5, days=14)
    assert np.all(np.diff(performance(fixed, 1.0)) > 0)


@pytest.mark.parametrize("days", [1, 2, 7, 30])
def test_the_summed_days_equal_the_recursion(days):
    """``step_terms`` (the env's week) is ``step`` over the same days, to rounding, for any trainee and state."""
    rng = np.random.default_rng(days)
    shape = (300, 5)
    tau1, tau2 = rng.uniform(25, 70, (300, 1)), rng.uniform(4, 15, (300, 1))
    k2 = rng.uniform(1.2, 4.0, (300, 1))
    gains = {"tau1": tau1, "tau2": tau2, "k2": k2, "k3": 0.2 * k2, "tau3": 4.0}
    start = [rng.uniform(0, 3, shape) for _ in range(3)]
    recursion, summed = FitnessFatigue(*(x.copy() for x in start)), FitnessFatigue(*(x.copy() for x in start))
    impulse = rng.uniform(0, 1, shape)
    step(recursion, impulse, **gains, days=days)
    terms = constant_impulse_terms(**gains, days=days)
    assert terms.shape == (300, 1, 8)
    step_terms(summed, impulse, terms)
    for name in ("fitness", "fatigue", "load"):
        np.testing.assert_allclose(getattr(summed, name), getattr(recursion, name), rtol=1e-13)
    with pytest.raises(FieldError) as raised:
        constant_impulse_terms(**gains, days=0)
    assert raised.value.field == "days"


def test_bad_arguments_name_the_field():
    with pytest.raises(FieldError) as raised:
        step(FitnessFatigue.zeros((1,)), 1.0, tau1=42.0, tau2=7.0, days=0)
    assert raised.value.field == "days"
    with pytest.raises(FieldError) as raised:
        impulse_zero_crossing(k1=2.0, k2=1.0, tau1=42.0, tau2=7.0)
    assert raised.value.field == "k2"
    with pytest.raises(FieldError) as raised:
        impulse_peak(k1=1.0, k2=2.0, tau1=7.0, tau2=42.0)
    assert raised.value.field == "tau1"


def test_the_plan_weights_targets_by_their_gap_and_stays_on_the_simplex():
    rng = np.random.default_rng(2)
    n = 6
    cq = rng.dirichlet(np.ones(CATALOG.n_qualities), (n, CATALOG.n_subjects))
    qx = rng.dirichlet(np.ones(CATALOG.n_exercises), (n, CATALOG.n_qualities))
    mask = np.zeros((n, CATALOG.n_subjects), dtype=bool)
    mask[:, [3, 40]] = True
    scores = rng.uniform(0, 1, (n, CATALOG.n_subjects))
    scores[0, 3], scores[0, 40] = 1.0, 0.2  # a target at its best pulls with the floor's weight only
    fitness = np.linspace(0, 1, n)
    emphasis, allocation, loads = training_plan(cq, qx, mask, scores, fitness)
    np.testing.assert_allclose(emphasis.sum(axis=1), 1.0)
    np.testing.assert_allclose(allocation.sum(axis=1), 1.0)
    assert np.all(emphasis >= 0) and np.all(allocation >= 0)
    gaps = np.array([GAP_FLOOR, 0.8])
    np.testing.assert_allclose(emphasis[0], (gaps[0] * cq[0, 3] + gaps[1] * cq[0, 40]) / gaps.sum())
    np.testing.assert_allclose(allocation[0], emphasis[0] @ qx[0])
    np.testing.assert_allclose(loads.sum(axis=1), 1.0 + fitness)  # the budget doubles from fitness 0 to 1
    one = training_plan(cq[2:3], qx[2:3], mask[2:3], scores[2:3], fitness[2:3])
    for batch, alone in zip((emphasis, allocation, loads), one, strict=True):
        np.testing.assert_array_equal(batch[2:3], alone)


def test_the_stimulus_goes_through_the_transfer_with_diminishing_returns():
    rng = np.random.default_rng(3)
    transfer = rng.dirichlet(np.ones(CATALOG.n_qualities), (2, CATALOG.n_exercises))
    loads = rng.uniform(0, 0.1, (2, CATALOG.n_exercises))
    d = stimulus(loads, transfer)
    u = np.einsum("ne,neq->nq", loads, transfer)
    np.testing.assert_allclose(d, u / (u + HALF_SATURATION))
    assert np.all((d >= 0) & (d < 1))
    doubled = stimulus(2 * loads, transfer)
    assert np.all(doubled > d) and np.all(doubled < 2 * d)  # more load, more stimulus, less per unit
    strength = CATALOG.quality_index("strength")
    assert HALF_SATURATION.argmin() == strength  # returns diminish most for strength
