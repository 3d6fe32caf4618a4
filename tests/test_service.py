import gymnasium as gym
import numpy as np
import pytest

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from fitness_weights_api import ModelRegistry
from fitness_weights_api.service import NoActiveModelError, WeightService
from fitness_weights_env import sample_profile
from sb3_ext import PPO
from sb3_ext.onnx_policy import ATOL  # the service's answers come from the exported graphs


def _start(profile, seed=0):
    """The observation the policy sees at reset for ``profile`` and ``seed`` (what the service feeds it)."""
    return gym.make("FitnessWeights-v0").reset(seed=seed, options={"profile": profile})[0]


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
    expected = PPO.load(models[0], device="cpu").policy.predict_weights(_start(trainee))[0]
    np.testing.assert_allclose(served.result.cq, expected, rtol=0, atol=ATOL)

    # another process (here another registry object on the same files) activates the second version
    ModelRegistry(tmp_path / "registry").activate(second.version)
    served = service.predict(trainee)
    assert served.model_version == second.version
    policy = PPO.load(models[1], device="cpu").policy
    np.testing.assert_allclose(served.result.cq, policy.predict_weights(_start(trainee))[0], rtol=0, atol=ATOL)
    reseeded = service.predict(trainee, seed=11)  # the seed reaches the starting state
    assert reseeded.model_version == second.version
    np.testing.assert_allclose(reseeded.result.cq, policy.predict_weights(_start(trainee, 11))[0], rtol=0, atol=ATOL)
    assert not np.array_equal(reseeded.result.cq, served.result.cq)  # so a seed left out would be seen
    optimized = service.optimize(trainee, steps=8)
    assert optimized.model_version == second.version and optimized.result.steps == 8
