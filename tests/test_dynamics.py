import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fitness_weights_env import LAYOUT, N_ACTIONS, InvalidActionError, decode_action
from fitness_weights_env import dynamics as kernel
from fitness_weights_env.episode import EpisodeConfig


def _state(n: int, seed: int = 0, **config) -> tuple[kernel.WeightState, EpisodeConfig, list[np.random.Generator]]:
    config = EpisodeConfig(**config)
    rngs = [np.random.default_rng([seed, i]) for i in range(n)]
    state = kernel.WeightState.zeros(n, config.step_size)
    kernel.reset(state, slice(None), *config.draw_starts(rngs, [None] * n))
    return state, config, rngs


@pytest.mark.parametrize(
    ("action", "decoded"), [(0, ("cq", 0, 0)), (464, ("cq", 92, 4)), (465, ("qx", 0, 0)), (684, ("qx", 4, 43))]
)
def test_decode_action(action, decoded):
    assert decode_action(action) == decoded
    assert N_ACTIONS == 685


@pytest.mark.parametrize("action", [0, 464, 465, 684])
def test_step_adjusts_exactly_the_decoded_cell(action):
    state, _, _ = _state(1)
    cq, qx = state.cq[0].copy(), state.qx[0].copy()
    kernel.step(state, np.array([action]), np.array([0.05]), 0.01)
    matrix, row, col = decode_action(action)
    before, after = (cq, state.cq[0]) if matrix == "cq" else (qx, state.qx[0])
    expected = before[row].copy()
    expected[col] = min(expected[col] + 0.05, 1.0)
    np.testing.assert_allclose(after[row], expected / expected.sum(), rtol=1e-12)
    unchanged = np.ones(len(before), dtype=bool)
    unchanged[row] = False
    np.testing.assert_array_equal(after[unchanged], before[unchanged])
    other_before, other_after = (qx, state.qx[0]) if matrix == "cq" else (cq, state.cq[0])
    np.testing.assert_array_equal(other_after, other_before)


@pytest.mark.parametrize("adjustment", ["increase", "random"])
@pytest.mark.parametrize("init", ["uniform", "prior"])
def test_reward_matches_the_formula_on_random_trajectories(reference_episode, adjustment, init):
    n, steps = 6, 150
    state, config, rngs = _state(n, seed=3, adjustment=adjustment, init=init, drift_coef=0.03)
    references = [
        reference_episode(
            state.cq[i], state.qx[i], state.qualities[i], list(np.flatnonzero(state.target_mask[i])), 0.03
        )
        for i in range(n)
    ]
    action_rng = np.random.default_rng(9)
    for _ in range(steps):
        actions = action_rng.integers(0, N_ACTIONS, n)
        deltas = np.broadcast_to(config.draw_deltas(rngs), n)
        rewards = kernel.step(state, actions, deltas, config.drift_coef)
        expected = [ref.step(int(a), float(d)) for ref, a, d in zip(references, actions, deltas, strict=True)]
        np.testing.assert_allclose(rewards, expected, rtol=1e-10, atol=1e-12)
    for i, ref in enumerate(references):
        np.testing.assert_allclose(state.cq[i], ref.cq, atol=1e-12)
        np.testing.assert_allclose(state.qx[i], ref.qx, atol=1e-12)


def test_reward_rises_when_a_target_row_moves_to_the_best_quality(reference_episode):
    state, _, _ = _state(1, seed=5)
    target = int(np.flatnonzero(state.target_mask[0])[0])
    best = int(np.argmax(state.qualities[0]))
    first = kernel.step(state, np.array([target * 5 + best]), np.array([0.05]), 0.0)
    second = kernel.step(state, np.array([target * 5 + best]), np.array([0.05]), 0.0)
    assert second[0] > first[0]


@settings(max_examples=60, deadline=None)
@given(
    actions=st.lists(st.integers(0, N_ACTIONS - 1), min_size=1, max_size=80),
    deltas=st.lists(st.floats(-1.0, 1.0), min_size=80, max_size=80),
    init=st.sampled_from(["uniform", "prior"]),
)
def test_rows_stay_normalized_and_in_unit_interval(actions, deltas, init):
    state, _, _ = _state(1, init=init)
    for action, delta in zip(actions, deltas[: len(actions)], strict=True):
        kernel.step(state, np.array([action]), np.array([delta]), 0.01)
    np.testing.assert_allclose(state.cq[0].sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(state.qx[0].sum(axis=1), 1.0, atol=1e-12)
    assert state.weights.min() >= 0.0 and state.weights.max() <= 1.0
    padding = state.weights[0, :93, 5:]
    assert not padding.any()
    metrics = state.observation[0, LAYOUT.metrics]
    assert metrics.min() >= 0.0 and metrics.max() <= 1.0


def test_evaluate_matches_stepping_a_copy_for_every_candidate():
    state, _, _ = _state(3, seed=11)
    for _ in range(5):  # leave the start so that drift terms are non-zero
        kernel.step(state, np.array([7, 500, 300]), np.full(3, 0.05), 0.01)
    candidates = np.broadcast_to(np.arange(N_ACTIONS), (3, N_ACTIONS))
    outcome = kernel.evaluate(state, candidates, 0.05, 0.01)
    assert outcome.reward.shape == (3, N_ACTIONS)
    for action in [0, 4, 36, 464, 465, 600, 684]:
        stepped = copy.deepcopy(state)
        rewards = kernel.step(stepped, np.full(3, action), np.full(3, 0.05), 0.01)
        np.testing.assert_allclose(outcome.reward[:, action], rewards, rtol=1e-12)


def test_metrics_at_reset_and_after_a_step():
    state, _, _ = _state(4, seed=2)
    metrics = state.observation[:, LAYOUT.metrics]
    np.testing.assert_array_equal(metrics[:, 0], 0.5)  # recent_improvement: neutral
    np.testing.assert_allclose(metrics[:, 1], 0.0, atol=1e-6)  # injury_risk: uniform QX
    np.testing.assert_array_equal(metrics[:, 3], 1.0)  # consistency: no drift
    efficiency = state.target_score / state.qualities.max(axis=1)
    np.testing.assert_allclose(metrics[:, 2], efficiency, rtol=1e-6)
    previous = state.target_score.copy()
    kernel.step(state, np.array([465, 466, 500, 684]), np.full(4, 0.05), 0.01)
    metrics = state.observation[:, LAYOUT.metrics]
    assert np.all(metrics[:, 1] > 0) and np.all(metrics[:, 3] < 1)
    np.testing.assert_allclose(metrics[:, 3], np.exp(-state.drift), rtol=1e-6)
    np.testing.assert_allclose(metrics[:, 0], 0.5 + (state.target_score - previous) / 0.1, atol=1e-6)


def test_reset_of_some_trainees_leaves_the_others_alone():
    state, config, rngs = _state(3, seed=4)
    kernel.step(state, np.array([0, 1, 2]), np.full(3, 0.05), 0.01)
    before = copy.deepcopy(state)
    kernel.reset(state, np.array([1]), *config.draw_starts([rngs[1]], [None]))
    for i in (0, 2):
        np.testing.assert_array_equal(state.observation[i], before.observation[i])
        np.testing.assert_array_equal(state.weights[i], before.weights[i])
    assert state.drift[1] == 0.0 and not np.array_equal(state.observation[1], before.observation[1])


@pytest.mark.parametrize(
    ("actions", "shape", "message"),
    [
        (-1, (), "in \\[0, 685\\)"),
        (685, (), "in \\[0, 685\\)"),
        (3.0, (), "must be integers"),
        ("3", (), "must be integers"),
        (True, (), "must be integers"),
        (np.array([1, 2]), (), "shape"),
        (np.array([1, 2, 3]), (2,), "shape"),
        (np.array([1, 700]), (2,), "\\[700\\]"),
        (np.array([0.0, 1.0]), (2,), "must be integers"),
    ],
)
def test_invalid_actions_raise(actions, shape, message):
    with pytest.raises(InvalidActionError, match=message):
        kernel.check_actions(actions, shape)
