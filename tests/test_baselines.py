import copy

import numpy as np
import pytest

from fitness_weights_env import FitnessWeightsVectorEnv, sample_profiles
from fitness_weights_env import dynamics as kernel
from fitness_weights_env.baselines import GreedyPolicy, RandomPolicy, normalized_score, run_episodes
from fitness_weights_env.population import QUALITY_KIND_PROBS_WITH_EQUAL


@pytest.fixture(scope="module")
def trainees():
    """Trainees of the population alone: a wide draw may have all qualities equal, where no policy can do better
    (every CQ row scores the same), so "greedy beats random on every trainee" holds for the population only."""
    return sample_profiles(12, seed=99, edge_fraction=0)


def test_greedy_takes_the_best_one_step_action():
    env = FitnessWeightsVectorEnv(3)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(np.array([3, 470, 100]))
    chosen = GreedyPolicy(chunk_size=2)(obs, env)
    brute = np.empty((3, kernel.N_ACTIONS))
    for action in range(kernel.N_ACTIONS):
        state = copy.deepcopy(env.state)
        brute[:, action] = kernel.step(state, np.full(3, action), np.full(3, 0.05), 0.01)
    np.testing.assert_allclose(brute[np.arange(3), chosen], brute.max(axis=1), rtol=1e-12)


def test_greedy_beats_random_and_runs_are_reproducible(trainees):
    greedy = run_episodes(GreedyPolicy(), trainees, seed=1)
    random = run_episodes(RandomPolicy(seed=0), trainees, seed=1)
    assert greedy.returns.shape == (12,) and greedy.cq.shape == (12, 93, 5) and greedy.qx.shape == (12, 5, 44)
    assert greedy.returns.mean() > random.returns.mean()
    assert np.all(greedy.final_target_score > random.final_target_score)
    again = run_episodes(RandomPolicy(seed=0), trainees, seed=1)
    np.testing.assert_array_equal(random.returns, again.returns)
    np.testing.assert_array_equal(random.cq, again.cq)


def test_on_wide_trainees_greedy_ties_random_only_where_no_policy_can_help():
    """Equal qualities make every CQ row score the same: the target score cannot move, whatever the actions."""
    wide = sample_profiles(24, seed=99, quality_kind_probs=QUALITY_KIND_PROBS_WITH_EQUAL, many_targets=True)
    greedy = run_episodes(GreedyPolicy(), wide, seed=1)
    random = run_episodes(RandomPolicy(seed=0), wide, seed=1)
    flat = np.array([np.ptp(trainee.qualities) == 0 for trainee in wide])
    assert 0 < flat.sum() < len(wide)
    assert np.all(greedy.final_target_score[~flat] > random.final_target_score[~flat])
    np.testing.assert_allclose(greedy.final_target_score[flat], random.final_target_score[flat], rtol=0, atol=1e-12)


def test_greedy_with_random_adjustments_still_helps(trainees):
    greedy = run_episodes(GreedyPolicy(quadrature=3), trainees, seed=1, adjustment="random")
    random = run_episodes(RandomPolicy(seed=0), trainees, seed=1, adjustment="random")
    assert greedy.returns.mean() > random.returns.mean()


def test_normalized_score():
    assert normalized_score([1.0, 3.0], [1.0, 1.0], [3.0, 3.0]) == 0.5
    assert normalized_score(1.0, 1.0, 3.0) == 0.0 and normalized_score(3.0, 1.0, 3.0) == 1.0
    with pytest.raises(ValueError, match="undefined"):
        normalized_score(1.0, 2.0, 2.0)


def test_invalid_greedy_settings():
    with pytest.raises(ValueError):
        GreedyPolicy(chunk_size=0)
