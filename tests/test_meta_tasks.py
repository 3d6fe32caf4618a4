"""Meta-RL tasks (:mod:`sb3_ext.meta.tasks`): trainees with hidden parameters, repeated through one vector env."""

import numpy as np
import pytest

from fitness_weights_env import FieldError
from fitness_weights_env.baselines import RandomPolicy, run_episodes
from sb3_ext.evaluate import held_out_profiles
from sb3_ext.meta.tasks import TaskSampler, sample_actions, task_generators


def uniform(tasks, episodes, phase):
    generators = task_generators(tasks, episodes, phase)
    return lambda observations, step: sample_actions(np.full((*observations.shape[:2], 685), 1 / 685), generators)


def test_the_episodes_of_one_task_share_the_trainee_and_differ_only_by_the_draws():
    sampler = TaskSampler(seed=3)
    tasks = sampler.sample(4)
    assert len({task.seed for task in tasks + sampler.sample(4)}) == 8  # every draw new
    fixed = sampler.rollout(tasks, 3, lambda observations, step: np.full(observations.shape[:2], step * 11 % 685))
    assert fixed.observations.shape == (4, 3, 65, 199) and fixed.actions.shape == fixed.rewards.shape == (4, 3, 64)
    assert np.array_equal(fixed.returns, np.repeat(fixed.returns[:, :1], 3, axis=1))  # same actions: same episode
    assert len(np.unique(fixed.returns[:, 0])) == 4  # the tasks differ
    drawn = sampler.rollout(tasks, 3, uniform(tasks, 3, phase=0))
    assert len(np.unique(drawn.returns)) == 12 and len(np.unique(drawn.actions[:, :, 0])) > 1
    again = sampler.rollout(tasks, 3, uniform(tasks, 3, phase=0))
    assert np.array_equal(again.actions, drawn.actions) and np.array_equal(again.returns, drawn.returns)
    other = sampler.rollout(tasks, 3, uniform(tasks, 3, phase=1))
    assert not np.array_equal(other.actions, drawn.actions)  # another phase, other draws


def test_the_held_out_tasks_are_the_evaluations_trainees():
    sampler = TaskSampler(seed=2, n_held_out=6)
    tasks = sampler.held_out()
    assert [t.profile for t in tasks] == held_out_profiles(6, 2) and [t.seed for t in tasks] == list(range(2, 8))
    policy = RandomPolicy(0)
    drawn = sampler.rollout(tasks, 1, lambda observations, step: policy(observations[:, 0], None)[:, None])
    expected = run_episodes(RandomPolicy(0), held_out_profiles(6, 2), seed=2, env_id="FitnessWeights-v1").returns
    assert np.allclose(drawn.returns[:, 0], expected, rtol=0, atol=1e-12)  # summed in another order


def test_bad_arguments_are_named():
    for kwargs, field in (({"env_id": "FitnessWeights-v9"}, "env_id"), ({"n_held_out": 0}, "n_held_out")):
        with pytest.raises(FieldError) as raised:
            TaskSampler(**kwargs)
        assert raised.value.field == field
    with pytest.raises(FieldError) as raised:
        TaskSampler().sample(0)
    assert raised.value.field == "n"
