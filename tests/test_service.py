import gymnasium as gym
import numpy as np
import pytest

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from fitness_weights_api import ModelRegistry
from fitness_weights_api.service import NoActiveModelError, WeightService
from fitness_weights_env import sample_profile
from sb3_ext import PPO


def _train(path, seed):
    env = gym.make("FitnessWeights-v0")
    model = PPO("AttnCQQXPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=seed, device="cpu")
    model.learn(64).save(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    return [_train(folder / f"model{seed}.zip", seed) for seed in (0, 1)]


def test_service_serves_the_active_version_and_follows_activation(models, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    service = WeightService(registry)
    trainee = sample_profile(np.random.default_rng(3))
    with pytest.raises(NoActiveModelError, match="no model version is active"):
        service.predict(trainee)
    first = registry.register(models[0], training_config={"seed": 0}, activate=True)
    second = registry.register(models[1], training_config={"seed": 1})
    served = service.predict(trainee)
    assert served.model_version == first.version
    expected = PPO.load(models[0], device="cpu").policy.predict_weights(trainee.to_vector())[0]
    np.testing.assert_array_equal(served.result.cq, expected)

    # another process (here another registry object on the same files) activates the second version
    ModelRegistry(tmp_path / "registry").activate(second.version)
    served = service.predict(trainee)
    assert served.model_version == second.version
    expected = PPO.load(models[1], device="cpu").policy.predict_weights(trainee.to_vector())[0]
    np.testing.assert_array_equal(served.result.cq, expected)
    optimized = service.optimize(trainee, steps=8)
    assert optimized.model_version == second.version and optimized.result.steps == 8
