import csv
import pickle

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3 as sb3
import torch as th
import torch.nn.functional as F  # noqa: N812
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor

import fitness_weights_env  # noqa: F401
from fitness_weights_env import LAYOUT, TRAINING_LAYOUT
from sb3_ext import PPO, AttnCQQXPolicy, AuxRolloutBuffer, CosineSchedule, MultiMetricEarlyStopping
from sb3_ext.attention import CQQXNetwork
from sb3_ext.callbacks import StopTrainingOnNoMetricImprovement

SMALL = {"embed_dim": 32, "n_heads": 2, "n_latents": 4}


def _model(policy="AttnCQQXPolicy", seed=0, max_episode_steps=None, **kwargs):
    env = gym.make("FitnessWeights-v0", **({"max_episode_steps": max_episode_steps} if max_episode_steps else {}))
    if policy == "AttnCQQXPolicy":
        kwargs.setdefault("policy_kwargs", SMALL)
    kwargs.setdefault("n_steps", 64)
    kwargs.setdefault("batch_size", 32)
    return PPO(policy, env, seed=seed, device="cpu", **kwargs)


def test_learns_and_logs_finite_aux_losses(tmp_path):
    model = _model(n_epochs=2)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(256)
    with open(tmp_path / "progress.csv") as handle:
        rows = list(csv.DictReader(handle))
    for key in ("cq_loss", "qx_loss", "cq_accuracy", "qx_accuracy", "grad_norm", "value_loss", "error_loss"):
        values = [float(row[f"train/{key}"]) for row in rows if row.get(f"train/{key}")]
        assert values and np.all(np.isfinite(values)), key
    assert 0.0 <= model.train_metrics["cq_accuracy"] <= 1.0
    assert isinstance(model.rollout_buffer, AuxRolloutBuffer)


def test_buffer_targets_are_the_matrices_each_episode_ended_with():
    steps, episode = 40, 16  # two whole episodes and one cut by the end of the rollout
    model = _model(seed=7, max_episode_steps=episode, n_steps=steps, batch_size=steps, n_epochs=1)
    model.learn(steps)
    buffer = model.rollout_buffer
    actions = buffer.actions.reshape(-1).astype(int)
    cq_targets, qx_targets = buffer.cq_targets.reshape(steps, 93, 5), buffer.qx_targets.reshape(steps, 5, 44)

    env = gym.make("FitnessWeights-v0", max_episode_steps=episode)  # replay the rollout by hand
    env.reset(seed=7)
    start = 0
    for t, action in enumerate(actions):
        _, _, _, truncated, info = env.step(action)
        if truncated or t == steps - 1:
            np.testing.assert_array_equal(
                cq_targets[start : t + 1], np.broadcast_to(info["cq_matrix"], (t + 1 - start, 93, 5))
            )
            np.testing.assert_array_equal(
                qx_targets[start : t + 1], np.broadcast_to(info["qx_matrix"], (t + 1 - start, 5, 44))
            )
            start = t + 1
            if truncated:
                env.reset()
    assert start == steps
    assert not np.array_equal(cq_targets[0], cq_targets[episode])  # different episodes, different targets


def test_save_load_round_trip(tmp_path):
    model = _model(policy_kwargs={"embed_dim": 16, "n_heads": 2, "n_latents": 2, "n_layers": 2}, cq_coef=7.0)
    model.learn(128)
    observations = np.stack([gym.make("FitnessWeights-v0").reset(seed=s)[0] for s in range(5)])
    before = model.policy.predict_weights(observations)
    actions = model.predict(observations, deterministic=True)[0]
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip", device="cpu")
    after = loaded.policy.predict_weights(observations)
    for x, y in zip(before, after, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(actions, loaded.predict(observations, deterministic=True)[0])
    assert loaded.policy.network_kwargs["n_layers"] == 2 and loaded.cq_coef == 7.0
    assert isinstance(loaded.policy, AttnCQQXPolicy)


def test_on_v1_the_network_reads_the_progress_and_save_load_round_trips(tmp_path):
    """v1's observation has 199 values: the metrics token gets the progress as a 5th feature."""
    model = PPO("AttnCQQXPolicy", gym.make("FitnessWeights-v1"), n_steps=64, batch_size=32, seed=0, device="cpu")
    model.learn(64)
    network = model.policy.network
    assert model.policy.layout is TRAINING_LAYOUT and network.feature_index.shape == (100, 11)
    assert TRAINING_LAYOUT.progress.start in network.feature_index[network.feature_mask > 0].tolist()
    observation = gym.make("FitnessWeights-v1").reset(seed=3)[0]
    later = observation.copy()
    later[TRAINING_LAYOUT.progress] = 0.75
    with th.no_grad():
        logits = [
            model.policy.get_distribution(th.as_tensor(o[None])).distribution.logits for o in (observation, later)
        ]
    assert not th.equal(*logits)  # the time left changes the policy
    model.save(tmp_path / "v1.zip")
    loaded = PPO.load(tmp_path / "v1.zip", device="cpu")
    assert loaded.policy.layout is TRAINING_LAYOUT
    for x, y in zip(model.policy.predict_weights(later), loaded.policy.predict_weights(later), strict=True):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=r"shape \(199,\)"):
        loaded.policy.predict_weights(observation[: LAYOUT.size])


def test_predict_weights_shapes_rows_and_confidence():
    model = _model()
    observations = np.stack([gym.make("FitnessWeights-v0").reset(seed=s)[0] for s in range(6)])
    cq, qx, confidence = model.policy.predict_weights(observations)
    assert cq.shape == (6, 93, 5) and qx.shape == (6, 5, 44) and confidence.shape == (6,)
    np.testing.assert_allclose(cq.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(qx.sum(-1), 1.0, atol=1e-5)
    assert np.all((confidence >= 0) & (confidence <= 1))
    one = model.policy.predict_weights(th.as_tensor(observations[2]))
    assert one[0].shape == (93, 5) and isinstance(one[2], float)
    np.testing.assert_allclose(one[0], cq[2], atol=1e-6)


@pytest.mark.parametrize(
    ("observation", "message"),
    [
        (np.zeros(197), "shape"),
        (np.zeros((2, 3, 198)), "shape"),
        (np.full(198, np.nan), "NaN"),
        (np.full(198, 2.0), "\\[0, 1\\]"),
        (np.full((2, 198), -1.0), "\\[0, 1\\]"),
    ],
)
def test_predict_weights_rejects_bad_input(observation, message):
    with pytest.raises(ValueError, match=message):
        _model().policy.predict_weights(observation)


def test_mlp_policy_trains_exactly_as_sb3():
    def parameters(algorithm):
        model = algorithm("MlpPolicy", gym.make("FitnessWeights-v0"), n_steps=64, batch_size=32, n_epochs=2, seed=3)
        model.learn(192)
        return th.cat([p.detach().flatten() for p in model.policy.parameters()])

    assert th.equal(parameters(sb3.PPO), parameters(PPO))
    assert "AttnCQQXPolicy" not in sb3.PPO.policy_aliases and "AttnCQQXPolicy" in PPO.policy_aliases


@pytest.mark.parametrize(
    "kwargs", [{"grad_accum_steps": 2}, {"value_loss": "mse"}, {"learning_rate": CosineSchedule(1e-3, 1e-5)}]
)
def test_training_options(kwargs):
    model = _model(n_epochs=1, **kwargs)
    model.learn(128)
    assert np.isfinite(model.train_metrics["loss"])


@pytest.mark.parametrize("policy", ["AttnCQQXPolicy", "MlpPolicy"])
def test_gradient_accumulation_equals_one_step_of_the_larger_batch(policy):
    """Two minibatches of 64 summed into one optimizer step train as one minibatch of 128.

    Advantages are normalized per minibatch (as SB3 does), which differs between 64 and 128, so it is off here.
    """

    def trained(batch_size: int, grad_accum_steps: int) -> th.Tensor:
        model = _model(
            policy,
            seed=5,
            n_steps=128,
            batch_size=batch_size,
            n_epochs=1,
            grad_accum_steps=grad_accum_steps,
            normalize_advantage=False,
        )
        model.learn(128)
        return th.cat([p.detach().flatten() for p in model.policy.parameters()])

    accumulated, large = trained(64, 2), trained(128, 1)
    th.testing.assert_close(accumulated, large, rtol=1e-4, atol=1e-6)
    assert not th.allclose(trained(64, 1), large, rtol=1e-4, atol=1e-6)  # two steps of 64 are another update


def test_aux_learning_rate_multiplier():
    model = _model(policy_kwargs={**SMALL, "aux_lr_multiplier": 0.1}, learning_rate=1e-3)
    model.learn(64)
    rates = sorted(group["lr"] for group in model.policy.optimizer.param_groups)
    assert rates == pytest.approx([1e-4, 1e-3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value_loss": "l1"}, "value_loss"),
        ({"use_amp": "yes"}, "use_amp"),
        ({"grad_accum_steps": 0}, "grad_accum_steps"),
        ({"cq_coef": -1.0}, "cq_coef"),
        ({"policy_kwargs": {"embed_dim": 30, "n_heads": 4}}, "multiple"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _model(**kwargs)


def test_attention_policy_needs_the_fitness_weights_spaces():
    with pytest.raises(ValueError, match="Box\\(198,\\) or Box\\(199"):
        PPO("AttnCQQXPolicy", gym.make("CartPole-v1"))


@pytest.mark.parametrize("n_heads", [1, 2, 4])
def test_latent_read_is_scaled_dot_product_attention_over_the_entity_tokens(n_heads):
    """The factorized read equals SDPA on the formed keys and values, in value and in gradient."""
    th.manual_seed(0)
    network = CQQXNetwork(embed_dim=32, n_heads=n_heads, n_latents=3)
    features = th.rand(7, *network.feature_index.shape) * network.feature_mask

    def formed_tokens_read() -> th.Tensor:
        key, value = network.entities.project(features, network.read_key_value).chunk(2, dim=-1)
        split = lambda t: t.unflatten(-1, (n_heads, -1)).transpose(1, 2)  # noqa: E731
        query = split(network.read_query(network.latents).expand(len(features), -1, -1))
        return F.scaled_dot_product_attention(query, split(key), split(value)).transpose(1, 2).flatten(2)

    parameters = [
        network.latents,
        *network.entities.parameters(),
        *network.read_query.parameters(),
        *network.read_key_value.parameters(),
    ]
    results = []
    for read in (network.read(features), formed_tokens_read()):
        network.zero_grad()
        read.pow(2).sum().backward()
        results.append((read.detach(), [p.grad.clone() for p in parameters]))
    (factorized, factorized_grads), (reference, reference_grads) = results
    assert factorized.shape == (7, 3, 32)
    th.testing.assert_close(factorized, reference, rtol=1e-5, atol=1e-6)
    for got, expected in zip(factorized_grads, reference_grads, strict=True):
        th.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_cosine_schedule():
    schedule = CosineSchedule(1e-3, 1e-5)
    assert schedule(1.0) == pytest.approx(1e-3) and schedule(0.0) == pytest.approx(1e-5)
    assert schedule(0.5) == pytest.approx((1e-3 + 1e-5) / 2)
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    with pytest.raises(ValueError):
        CosineSchedule(-1.0)


def test_stop_on_no_metric_improvement_counts_evaluations():
    model = _model("MlpPolicy")
    stopper = StopTrainingOnNoMetricImprovement(patience=2)
    evaluation = EvalCallback(gym.make("FitnessWeights-v0"), callback_after_eval=stopper)
    evaluation.init_callback(model)

    def evaluate(reward, cq_accuracy, loss):
        evaluation.last_mean_reward = reward
        model.train_metrics = {"cq_accuracy": cq_accuracy, "qx_accuracy": 0.5, "loss": loss}
        return stopper.on_step()

    assert evaluate(1.0, 0.5, 1.0)  # first: everything is new
    assert evaluate(2.0, 0.5, 1.0)  # reward improved
    assert evaluate(2.0, 0.6, 1.0)  # CQ accuracy improved
    assert evaluate(2.0, 0.6, 0.5)  # loss improved (lower)
    assert evaluate(1.0, 0.6, 0.9)  # nothing improved: 1
    assert not evaluate(2.0, 0.6, 0.5)  # nothing improved: 2 = patience


def test_multi_metric_early_stopping_runs_and_saves_the_best_model(tmp_path):
    model = _model(n_epochs=1)
    callback = MultiMetricEarlyStopping(
        Monitor(gym.make("FitnessWeights-v0")),
        patience=1,
        min_delta=1e9,  # after the first evaluation nothing counts as an improvement
        eval_freq=64,
        n_eval_episodes=1,
        best_model_save_path=str(tmp_path),
        verbose=0,
    )
    model.learn(10_000, callback=callback)
    assert (tmp_path / "best_model.zip").exists()
    assert set(callback.stopper.best) >= {"mean_reward", "loss"}  # metrics were tracked
    # step 64: the reward's first value (no update yet); step 128: the first training metrics, new; step 192:
    # nothing improves, and training stops there, far inside its budget
    assert callback.stopper.evals_without_improvement == 1 and model.num_timesteps == 192


@pytest.mark.gpu
@pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("use_amp", ["bf16", "fp16"])
def test_learns_on_cuda_with_mixed_precision(use_amp):
    model = PPO(
        "AttnCQQXPolicy", gym.make("FitnessWeights-v0"), n_steps=64, batch_size=32, device="cuda", use_amp=use_amp
    )
    model.learn(256)
    assert np.isfinite(model.train_metrics["loss"]) and np.isfinite(model.train_metrics["cq_loss"])
    cq, _, confidence = model.policy.predict_weights(gym.make("FitnessWeights-v0").reset(seed=0)[0])
    assert 0.0 <= confidence <= 1.0
    np.testing.assert_allclose(cq.sum(-1), 1.0, atol=1e-3)


def test_user_callbacks_run_once_each_alongside_the_target_filler():
    calls = []

    def count(locals_, globals_):
        calls.append(locals_["self"].num_timesteps)
        return True

    model = _model(n_epochs=1)
    model.learn(128, callback=count)
    assert len(calls) == 128  # called every step, once
    model.learn(64, callback=[count], reset_num_timesteps=False)
    assert len(calls) == 192
