"""``sb3_ext.PPO`` with ``"MlpPolicy"`` trains and logs exactly as ``stable_baselines3.PPO``.

Each configuration trains both algorithms from the same seed on a Gymnasium classic-control env (discrete CartPole,
continuous Pendulum) and compares the final policy parameters bit for bit and every logged value key by key, for
every ``train()`` call (the records of one call are dumped at the start of the next iteration; the last call's stay
in ``logger.name_to_value``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import stable_baselines3 as sb3
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import KVWriter, Logger

from sb3_ext import PPO

N_STEPS = 64
TOTAL_TIMESTEPS = 192  # three rollouts of one env, three train() calls
WALL_CLOCK_KEYS = {"time/fps", "time/time_elapsed"}  # the only logged values that are not a function of the seed
EXTRA_KEYS = {"train/grad_norm"}  # what sb3_ext.PPO logs beyond SB3 for a policy without auxiliary heads (CPU)


class RecordingFormat(KVWriter):
    """An output format that keeps every dump's key-value pairs in memory."""

    def __init__(self) -> None:
        self.dumps: list[dict[str, Any]] = []

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        """Keep a copy of one dump."""
        self.dumps.append(dict(key_values))

    def close(self) -> None:
        """Nothing to release."""


def _train(
    algorithm: type[sb3.PPO], env_id: str, n_envs: int, device: str, **kwargs: Any
) -> tuple[sb3.PPO, list[dict[str, Any]]]:
    """Train ``algorithm`` with MlpPolicy; return the model and the logs of each iteration, then of the last train()."""
    env = make_vec_env(env_id, n_envs=n_envs)
    model = algorithm("MlpPolicy", env, n_steps=N_STEPS, batch_size=32, seed=11, device=device, **kwargs)
    recorder = RecordingFormat()
    model.set_logger(Logger(folder=None, output_formats=[recorder]))
    model.learn(TOTAL_TIMESTEPS)
    logs = [*recorder.dumps, dict(model.logger.name_to_value)]
    return model, [{k: v for k, v in log.items() if k not in WALL_CLOCK_KEYS} for log in logs]


def _linear(start: float, end: float) -> Callable[[float], float]:
    """A schedule from ``start`` (progress remaining 1) to ``end`` (progress remaining 0)."""

    def schedule(progress_remaining: float) -> float:
        return end + (start - end) * progress_remaining

    return schedule


CONFIGURATIONS = {
    "discrete-defaults": ("CartPole-v1", 1, {}),
    "discrete-early-stop": ("CartPole-v1", 1, {"target_kl": 2e-4}),
    "discrete-clip-vf-schedules-2envs": (
        "CartPole-v1",
        2,
        {
            "clip_range_vf": 0.05,
            "learning_rate": _linear(1e-3, 1e-4),
            "clip_range": _linear(0.3, 0.1),
            "ent_coef": 0.01,
            "n_epochs": 3,
        },
    ),
    "continuous-defaults": ("Pendulum-v1", 1, {}),
    "continuous-early-stop": ("Pendulum-v1", 1, {"target_kl": 2e-4}),
    "continuous-sde-clip-vf": (
        "Pendulum-v1",
        1,
        {"use_sde": True, "sde_sample_freq": 4, "clip_range_vf": 0.2, "n_epochs": 4},
    ),
}


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_mlp_policy_trains_and_logs_exactly_as_sb3(name: str) -> None:
    env_id, n_envs, kwargs = CONFIGURATIONS[name]
    theirs, their_logs = _train(sb3.PPO, env_id, n_envs, "cpu", **kwargs)
    ours, our_logs = _train(PPO, env_id, n_envs, "cpu", **kwargs)

    their_state, our_state = theirs.policy.state_dict(), ours.policy.state_dict()
    assert list(our_state) == list(their_state)
    for key, value in their_state.items():
        assert th.equal(our_state[key], value), key
    assert ours._n_updates == theirs._n_updates

    n_trains = math.ceil(TOTAL_TIMESTEPS / (N_STEPS * n_envs))
    assert len(our_logs) == len(their_logs) == n_trains + 1
    train_logs = 0
    for iteration, (our_log, their_log) in enumerate(zip(our_logs, their_logs, strict=True)):
        if "train/loss" in their_log:
            train_logs += 1
            assert set(our_log) - set(their_log) == EXTRA_KEYS, iteration
        assert set(their_log) <= set(our_log), (iteration, set(their_log) - set(our_log))
        for key, value in their_log.items():
            assert our_log[key] == value, (iteration, key, our_log[key], value)
    assert train_logs == n_trains

    last = their_logs[-1]
    assert ("train/std" in last) == (env_id == "Pendulum-v1")
    assert ("train/clip_range_vf" in last) == ("clip_range_vf" in kwargs)
    if "target_kl" in kwargs:  # early stopping cut at least one train() short, at the same minibatch in both
        n_epochs = kwargs.get("n_epochs", 10)
        assert theirs._n_updates < n_epochs * n_trains


class RecordingPPO(PPO):
    """``sb3_ext.PPO`` that keeps the statistics of every minibatch ``compute_loss`` sees."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.minibatch_stats: list[dict[str, float]] = []
        super().__init__(*args, **kwargs)

    def compute_loss(
        self, rollout_data: Any, clip_range: float, clip_range_vf: float | None
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """The parent's loss; a copy of its statistics is kept."""
        loss, stats = super().compute_loss(rollout_data, clip_range, clip_range_vf)
        self.minibatch_stats.append({name: value.item() for name, value in stats.items()})
        return loss, stats


def test_approx_kl_is_the_last_epochs_mean_and_the_losses_every_epochs() -> None:
    """As SB3: the approx_kl list is reset every epoch, the loss and clip-fraction lists are not."""
    n_epochs, batch_size = 4, 16
    model = RecordingPPO(
        "MlpPolicy", "CartPole-v1", n_steps=N_STEPS, batch_size=batch_size, n_epochs=n_epochs, seed=2, device="cpu"
    )
    model.learn(N_STEPS)  # one rollout, one train()
    stats = model.minibatch_stats
    per_epoch = N_STEPS // batch_size
    assert len(stats) == n_epochs * per_epoch

    logged = model.logger.name_to_value
    last_epoch_kl = np.asarray([s["approx_kl"] for s in stats[-per_epoch:]], dtype=np.float32)
    every_epoch_kl = np.asarray([s["approx_kl"] for s in stats])
    assert logged["train/approx_kl"] == float(np.mean(last_epoch_kl))
    assert logged["train/approx_kl"] != pytest.approx(float(np.mean(every_epoch_kl)), rel=1e-2)
    for key in ("policy_gradient_loss", "value_loss", "entropy_loss", "clip_fraction"):
        assert logged[f"train/{key}"] == float(np.mean([s[key] for s in stats])), key
    assert model.train_metrics["approx_kl"] == logged["train/approx_kl"]
    assert logged["train/n_updates"] == n_epochs


@pytest.mark.gpu
@pytest.mark.skipif(not th.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_mlp_policy_trains_as_sb3_on_cuda_with_the_default_arguments(env_id: str) -> None:
    """The default ``use_amp="auto"`` leaves a policy without auxiliary heads in float32, as SB3 trains it."""
    theirs, their_logs = _train(sb3.PPO, env_id, 1, "cuda")
    ours, our_logs = _train(PPO, env_id, 1, "cuda")
    assert ours._amp_dtype() is None
    for our_parameter, their_parameter in zip(ours.policy.parameters(), theirs.policy.parameters(), strict=True):
        th.testing.assert_close(our_parameter, their_parameter, rtol=1e-5, atol=1e-6)
    for our_log, their_log in zip(our_logs, their_logs, strict=True):
        for key, value in their_log.items():
            assert our_log[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key


@pytest.mark.parametrize("n_envs", [1, 3])
def test_truncated_episodes_bootstrap_as_sb3(n_envs: int) -> None:
    """The batched timeout bootstrap gives SB3's rewards: bit for bit one env at a time, to rounding three at once."""

    def train(algorithm: type[sb3.PPO]) -> sb3.PPO:
        env = make_vec_env("Pendulum-v1", n_envs=n_envs, env_kwargs={"max_episode_steps": 16})
        model = algorithm("MlpPolicy", env, n_steps=N_STEPS, batch_size=32, n_epochs=2, seed=5, device="cpu")
        return model.learn(2 * N_STEPS * n_envs)

    ours, theirs = train(PPO), train(sb3.PPO)
    assert ours.rollout_buffer.episode_starts.sum() >= 3 * n_envs  # truncations happened, so bootstraps did
    if n_envs == 1:
        assert np.array_equal(ours.rollout_buffer.rewards, theirs.rollout_buffer.rewards)
        for key, value in theirs.policy.state_dict().items():
            assert th.equal(ours.policy.state_dict()[key], value), key
    else:
        np.testing.assert_allclose(ours.rollout_buffer.rewards, theirs.rollout_buffer.rewards, rtol=1e-6, atol=1e-6)
        for key, value in theirs.policy.state_dict().items():
            th.testing.assert_close(ours.policy.state_dict()[key], value, rtol=1e-4, atol=1e-5)
