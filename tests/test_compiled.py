"""PPO's compiled loss: equal to eager, saved and loaded, and its eager fallback where it cannot compile.

The tests that compile are marked ``compile`` (a cold TorchInductor compile takes tens of seconds): ``make
test-compile`` runs them, and CI does.
"""

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import fitness_weights_env  # noqa: F401  (registers the envs)
from fitness_weights_env.errors import FieldError
from sb3_ext import PPO
from sb3_ext.compiled import compile_unsupported

TINY = dict(n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
SMALL = {"embed_dim": 8, "n_latents": 2}


def _ppo(policy: str = "AttnCQQXPolicy", **kwargs) -> PPO:
    policy_kwargs = SMALL if policy == "AttnCQQXPolicy" else None
    return PPO(policy, gym.make("FitnessWeights-v0"), policy_kwargs=policy_kwargs, **TINY, **kwargs)


def test_compile_is_true_false_or_auto_and_auto_leaves_sb3_s_mlp_eager():
    for bad in ("yes", 1, None):
        with pytest.raises(FieldError, match="compile"):
            _ppo(compile=bad)
    assert _ppo("MlpPolicy", compile="auto").compiled_loss is None
    assert _ppo(compile=False).compiled_loss is None


def test_without_a_cxx_compiler_it_trains_eagerly_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no compiler on it
    monkeypatch.delenv("CXX", raising=False)
    assert "needs a C++ compiler" in compile_unsupported(th.device("cpu"))
    with pytest.warns(UserWarning, match="trains eagerly: TorchInductor's CPU backend needs a C\\+\\+ compiler"):
        model = _ppo(compile=True)
    assert model.compiled_loss is not None and not model.compiled_loss.compiled
    model.learn(64)
    assert model.num_timesteps == 64 and model.compiled_loss.compile_seconds is None


@pytest.mark.compile
def test_the_compiled_loss_and_update_equal_the_eager_ones_and_survive_save_and_load(tmp_path):
    eager = _ppo().learn(64)  # one rollout, two epochs of two minibatches; each model seeds torch when made
    compiled = _ppo(compile=True).learn(64)
    assert np.array_equal(compiled.rollout_buffer.actions, eager.rollout_buffer.actions)  # the same rollout
    assert compiled.compiled_loss is not None and compiled.compiled_loss.compiled
    assert compiled.compiled_loss.compile_seconds > 0
    assert compiled.logger.name_to_value["train/compile_s"] == compiled.compiled_loss.compile_seconds  # logged

    # the same parameters and minibatch: the loss, its statistics and its gradients
    parameters = list(compiled.policy.parameters())
    batch = next(compiled.rollout_buffer.get(32))
    results = []
    for loss_fn in (compiled.compute_loss, compiled.compiled_loss):
        loss, stats = loss_fn(batch, 0.2, None)
        results.append((loss, stats, th.autograd.grad(loss, parameters, allow_unused=True)))
    (loss_e, stats_e, grads_e), (loss_c, stats_c, grads_c) = results
    assert th.allclose(loss_c, loss_e, rtol=1e-5, atol=1e-6)
    assert all(th.allclose(stats_c[name], value, rtol=1e-4, atol=1e-6) for name, value in stats_e.items())
    for p, a, b in zip(parameters, grads_e, grads_c, strict=True):
        if a is not None:
            assert th.allclose(b, a, atol=1e-6 + 1e-4 * float(a.abs().max())), p.shape

    # after the update (four optimizer steps), every parameter
    for (name, a), b in zip(eager.policy.state_dict().items(), compiled.policy.state_dict().values(), strict=True):
        assert th.allclose(b, a, atol=1e-6, rtol=1e-5), name
    assert not all(
        th.equal(a, b)
        for a, b in zip(_ppo().policy.state_dict().values(), eager.policy.state_dict().values(), strict=True)
    )

    compiled.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", env=gym.make("FitnessWeights-v0"), device="cpu")
    assert loaded.compile is True and loaded.compiled_loss is not None and loaded.compiled_loss.compiled
    observation = gym.make("FitnessWeights-v0").reset(seed=1)[0]
    assert np.array_equal(
        loaded.predict(observation, deterministic=True)[0], compiled.predict(observation, deterministic=True)[0]
    )
    loaded.learn(64, reset_num_timesteps=False)
    assert loaded.num_timesteps == 128
