"""LeanCategorical against torch.distributions.Categorical, and AttnCQQXPolicy's choice of distribution."""

import pytest
import torch as th
from stable_baselines3.common.distributions import CategoricalDistribution
from torch.distributions import Categorical

from fitness_weights_env.errors import FieldError
from sb3_ext import PPO, make_vec_env
from sb3_ext.distributions import LeanCategorical


def make_vec(n_envs: int):
    return make_vec_env("FitnessWeights-v0", n_envs=n_envs, seed=0)


def _logits(seed: int = 0) -> th.Tensor:
    generator = th.Generator().manual_seed(seed)
    logits = th.randn(32, 685, generator=generator) * 4
    logits[0, :100] = -float("inf")  # impossible actions, as a masked head would give
    logits[1] = 0.0  # uniform
    logits[2, 7] = 60.0  # nearly one-hot
    return logits


def test_values_and_gradients_equal_torch_categorical() -> None:
    logits = _logits().requires_grad_()
    actions = th.randint(100, 685, (32,), generator=th.Generator().manual_seed(1))
    lean = LeanCategorical(685).proba_distribution(logits)
    torch_dist = Categorical(logits=logits)
    th.testing.assert_close(lean.log_prob(actions), torch_dist.log_prob(actions), rtol=0, atol=1e-5)
    th.testing.assert_close(lean.entropy(), torch_dist.entropy(), rtol=0, atol=1e-5)
    th.testing.assert_close(lean.probs, torch_dist.probs, rtol=0, atol=1e-7)
    assert th.equal(lean.mode(), torch_dist.probs.argmax(1))
    assert th.isfinite(lean.entropy()).all()

    ours = th.autograd.grad((lean.log_prob(actions) + lean.entropy()).sum(), logits)[0]
    theirs = th.autograd.grad((torch_dist.log_prob(actions) + torch_dist.entropy()).sum(), logits)[0]
    th.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_samples_follow_the_probabilities_and_never_an_impossible_action() -> None:
    logits = th.tensor([[0.0, 1.0, -float("inf"), 2.0, 0.5, -float("inf")]]).repeat(100_000, 1)
    lean = LeanCategorical(6).proba_distribution(logits)
    th.manual_seed(0)
    counts = th.bincount(lean.sample(), minlength=6).double()
    expected = lean.probs[0].double() * len(logits)
    assert counts[2] == 0 and counts[5] == 0
    possible = expected > 0
    chi2 = float((((counts - expected) ** 2)[possible] / expected[possible]).sum())
    assert chi2 < 16.3  # chi-square, 3 degrees of freedom, p = 0.001


def test_sampling_uses_torch_global_generator() -> None:
    lean = LeanCategorical(685).proba_distribution(_logits())
    th.manual_seed(3)
    first = lean.sample()
    th.manual_seed(3)
    assert th.equal(first, lean.sample())
    assert first.shape == (32,) and first.dtype == th.int64


def test_the_distribution_attribute_is_the_same_law() -> None:
    lean = LeanCategorical(685).proba_distribution(_logits())
    th.testing.assert_close(lean.distribution.probs, lean.probs, rtol=0, atol=1e-7)


def test_attention_policy_takes_lean_by_default_and_sb3_on_request(tmp_path) -> None:
    lean = PPO("AttnCQQXPolicy", make_vec(2), n_steps=16, batch_size=16, n_epochs=1, seed=0)
    assert type(lean.policy.action_dist) is LeanCategorical
    sb3 = PPO(
        "AttnCQQXPolicy",
        make_vec(2),
        n_steps=16,
        batch_size=16,
        n_epochs=1,
        seed=0,
        policy_kwargs={"categorical": "sb3"},
    )
    assert type(sb3.policy.action_dist) is CategoricalDistribution
    mlp = PPO("MlpPolicy", make_vec(2), n_steps=16, batch_size=16, n_epochs=1, seed=0)
    assert type(mlp.policy.action_dist) is CategoricalDistribution  # SB3's own: bit-identical to SB3's PPO

    sb3.learn(32)
    sb3.save(tmp_path / "sb3")
    loaded = PPO.load(tmp_path / "sb3")
    assert loaded.policy.categorical == "sb3"
    assert type(loaded.policy.action_dist) is CategoricalDistribution

    # the same parameters give the same values under both distributions
    lean.policy.load_state_dict(sb3.policy.state_dict())
    obs = th.as_tensor(make_vec(4).reset())
    actions = th.arange(len(obs))
    for got, want in zip(
        lean.policy.evaluate_actions(obs, actions), sb3.policy.evaluate_actions(obs, actions), strict=True
    ):
        th.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_an_unknown_categorical_is_refused_naming_the_field() -> None:
    with pytest.raises(FieldError, match="categorical"):
        PPO("AttnCQQXPolicy", make_vec(2), policy_kwargs={"categorical": "gumbel"})
