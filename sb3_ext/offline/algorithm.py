"""What the offline algorithms share: the dataset in tensors, SB3's learn loop by gradient steps, save and load.

:class:`OfflineAlgorithm` is an SB3 ``BaseAlgorithm`` whose data is a fixed dataset instead of rollouts. A
"timestep" is one gradient step: ``learn(total_timesteps)`` makes that many, ``num_timesteps`` counts them, and
SB3's callbacks (``EvalCallback`` on an env, ``CheckpointCallback``), its logger (``tensorboard_log``, CSV) and
``progress_bar=True`` work as with any SB3 algorithm. ``save``/``load``/``predict``/``set_parameters`` are SB3's.

The dataset is a Minari dataset made by :func:`sb3_ext.offline.make_dataset` (or its id). Its transitions are
held on the device as the episodes' arrays (each observation once: step ``t``'s next observation is step
``t + 1``'s), with each episode's final CQ/QX matrices, the auxiliary heads' targets. An episode's end is
terminal for the Q targets: every FitnessWeights episode is a fixed budget of 64 steps (v0's optimization, v1's
block), and an episode that is cut there is not continued by the service either (``bootstrap_timeouts=True``
bootstraps v0's time limit instead, as SB3's online algorithms do).

Rewards are scaled as CORL does for IQL (``reward_scale="returns"``): by ``T / (max return - min return)`` over
the dataset's episodes, ``T`` the episode length. FitnessWeights returns span only a few units (34 to 39 on v0)
and advantages about 1e-2 without it, at which the advantage weights ``exp(beta A)`` are all about 1.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback, ProgressBarCallback
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback
from stable_baselines3.common.utils import check_for_correct_spaces, configure_logger

from fitness_weights_env.errors import FieldError
from sb3_ext.offline.attention_policy import OfflineAttnPolicy
from sb3_ext.offline.episodes import Episodes
from sb3_ext.offline.mlp_policy import OfflineMlpPolicy
from sb3_ext.offline.policy import OfflinePolicy
from sb3_ext.schedules import CosineSchedule

__all__ = ["OfflineAlgorithm", "OfflineBatch", "TransitionData"]

SelfOfflineAlgorithm = TypeVar("SelfOfflineAlgorithm", bound="OfflineAlgorithm")


@dataclass
class OfflineBatch:
    """A minibatch of transitions (B rows), on the algorithm's device."""

    observations: th.Tensor
    actions: th.Tensor
    rewards: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    cq_targets: th.Tensor
    qx_targets: th.Tensor


class TransitionData:
    """A dataset's transitions on a device, sampled uniformly.

    Args:
        episodes: The episodes.
        reward_scale: The factor of every reward.
        bootstrap_timeouts: Whether a truncated episode's last step bootstraps (else every end is terminal).
        device: Where the tensors live.
    """

    def __init__(self, episodes: Episodes, reward_scale: float, bootstrap_timeouts: bool, device: th.device) -> None:
        ends = episodes.terminations if bootstrap_timeouts else episodes.terminations | episodes.truncations
        self.n_episodes, self.steps = episodes.actions.shape
        self.observations = th.as_tensor(episodes.observations, dtype=th.float32, device=device)
        self.actions = th.as_tensor(episodes.actions, dtype=th.long, device=device)
        self.rewards = th.as_tensor(episodes.rewards * reward_scale, dtype=th.float32, device=device)
        self.dones = th.as_tensor(ends, dtype=th.float32, device=device)
        self.cq = th.as_tensor(episodes.cq, dtype=th.float32, device=device)
        self.qx = th.as_tensor(episodes.qx, dtype=th.float32, device=device)
        self.device = device

    def __len__(self) -> int:
        return self.n_episodes * self.steps

    def sample(self, batch_size: int, generator: th.Generator) -> OfflineBatch:
        """``batch_size`` transitions drawn uniformly with replacement."""
        index = th.randint(len(self), (batch_size,), generator=generator, device=self.device)
        episode, step = index // self.steps, index % self.steps
        return OfflineBatch(
            observations=self.observations[episode, step],
            actions=self.actions[episode, step],
            rewards=self.rewards[episode, step],
            next_observations=self.observations[episode, step + 1],
            dones=self.dones[episode, step],
            cq_targets=self.cq[episode],
            qx_targets=self.qx[episode],
        )


def observation_statistics(episodes: Episodes, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation (plus ``eps``, as CORL) of the dataset's observations, per value."""
    flat = episodes.observations[:, :-1].reshape(-1, episodes.observations.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), flat.std(axis=0) + eps


def returns_reward_scale(episodes: Episodes) -> float:
    """CORL's return normalization: ``T / (max return - min return)``, or 1 when every return is the same."""
    returns = episodes.returns
    spread = float(returns.max() - returns.min())
    return float(episodes.actions.shape[1]) / spread if spread > 0 else 1.0


class _GradientStepBar(ProgressBarCallback):
    """SB3's progress bar, one tick per gradient step (SB3's counts env steps of its training env)."""

    def _on_step(self) -> bool:
        self.pbar.update(1)
        return True


class OfflineAlgorithm(BaseAlgorithm):
    """Base of the offline algorithms (module docstring).

    Args:
        policy: ``"MlpPolicy"``, ``"AttnCQQXPolicy"`` (:class:`~sb3_ext.offline.attention_policy.OfflineAttnPolicy`)
            or an :class:`~sb3_ext.offline.policy.OfflinePolicy` subclass.
        dataset: A Minari dataset of a FitnessWeights env, or its id (:func:`sb3_ext.offline.load_dataset`).
        learning_rate: The learning rate: the actor's at the start, and the other networks' throughout.
        final_learning_rate: The actor's learning rate at the end: a cosine decay over the run, as the IQL paper
            and CORL (:class:`~sb3_ext.schedules.CosineSchedule`).
        batch_size: Transitions per gradient step.
        gamma: Discount factor.
        normalize_observations: Normalize observations by the dataset's mean and standard deviation.
        reward_scale: ``"returns"`` (module docstring) or a factor.
        bootstrap_timeouts: Bootstrap a time-limit truncation instead of treating it as terminal.
        cq_coef: Weight of the CQ prediction loss (policies with the CQ/QX heads), as :class:`sb3_ext.PPO`.
        qx_coef: Weight of the QX prediction loss.
        error_coef: Weight of the error head's loss.
        env: An env of the dataset's env id, for ``EvalCallback`` and ``get_env`` (optional; its spaces must be the
            dataset's).
        policy_kwargs: Arguments of the policy.
        tensorboard_log: TensorBoard log folder.
        verbose: SB3's verbosity.
        seed: Seed of the networks and of the minibatch draws.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": OfflineMlpPolicy,
        "AttnCQQXPolicy": OfflineAttnPolicy,
    }
    policy: OfflinePolicy
    critics: ClassVar[bool] = True
    """Whether the algorithm trains Q and value networks (its policy is built with them)."""

    def __init__(
        self,
        policy: str | type[OfflinePolicy],
        dataset: Any = None,
        learning_rate: float = 3e-4,
        final_learning_rate: float = 0.0,
        batch_size: int = 256,
        gamma: float = 0.99,
        normalize_observations: bool = True,
        reward_scale: float | str = "returns",
        bootstrap_timeouts: bool = False,
        cq_coef: float = 50.0,
        qx_coef: float = 100.0,
        error_coef: float = 1.0,
        env: GymEnv | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            support_multi_env=True,
            supported_action_spaces=(spaces.Discrete,),
        )
        self.actor_schedule = CosineSchedule(learning_rate, final_learning_rate)
        if not _init_setup_model:  # SB3's load: the saved attributes follow
            return
        if dataset is None:
            raise FieldError("dataset", "a Minari dataset or its id is needed to train")
        for name, value in (("batch_size", batch_size),):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 16:
                raise FieldError(name, "must be an integer from 1 to 65536", value)
        if not 0.0 <= gamma <= 1.0:
            raise FieldError("gamma", "must lie in [0, 1]", gamma)
        for name, coef in (("cq_coef", cq_coef), ("qx_coef", qx_coef), ("error_coef", error_coef)):
            if not coef >= 0:
                raise FieldError(name, "must be at least 0", coef)
        if not (reward_scale == "returns" or (isinstance(reward_scale, (int, float)) and reward_scale > 0)):
            raise FieldError("reward_scale", "must be 'returns' or a number above 0", reward_scale)
        self.batch_size = batch_size
        self.gamma = gamma
        self.normalize_observations = normalize_observations
        self.bootstrap_timeouts = bootstrap_timeouts
        self.cq_coef, self.qx_coef, self.error_coef = cq_coef, qx_coef, error_coef
        self.set_dataset(dataset, reward_scale)
        self._setup_model()

    # -- the dataset ---------------------------------------------------------------------------------------------

    def set_dataset(self, dataset: Any, reward_scale: float | str | None = None) -> None:
        """Train on ``dataset`` (a Minari dataset or its id) from now on, e.g. after :meth:`load`.

        Raises:
            DatasetError: The dataset cannot be read, or its env or spaces are not the model's or the env's.
        """
        from sb3_ext.offline.datasets import DatasetError, check_dataset, dataset_episodes, load_dataset

        if isinstance(dataset, str):
            dataset = load_dataset(dataset)
        env_id = check_dataset(dataset)
        episodes = dataset_episodes(dataset)
        observation_space, action_space = dataset.observation_space, dataset.action_space
        if self.env is not None:
            try:
                check_for_correct_spaces(self.env, observation_space, action_space)
            except ValueError as err:
                raise DatasetError("observation_space", f"the dataset's spaces are not the env's: {err}") from None
        if getattr(self, "observation_space", None) is not None and (
            self.observation_space != observation_space or self.action_space != action_space
        ):
            raise DatasetError("observation_space", f"the dataset ({env_id}) is not of the model's env")
        self.observation_space, self.action_space = observation_space, action_space
        self.dataset_env_id = env_id
        self.dataset_id = dataset.spec.dataset_id
        if reward_scale is None:
            reward_scale = getattr(self, "reward_scale", "returns")
        self.reward_scale = reward_scale
        self.reward_scale_value = returns_reward_scale(episodes) if reward_scale == "returns" else float(reward_scale)
        self._episodes = episodes

    def _data(self) -> TransitionData:
        episodes = getattr(self, "_episodes", None)
        if episodes is None:
            raise FieldError("dataset", "the model has no dataset to train on (set_dataset)")
        data = getattr(self, "_transitions", None)
        if data is None:
            data = self._transitions = TransitionData(
                episodes, self.reward_scale_value, self.bootstrap_timeouts, self.device
            )
        return data

    # -- SB3's model interface -----------------------------------------------------------------------------------

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        kwargs = dict(self.policy_kwargs)
        kwargs["critics"] = self.critics
        self.policy_kwargs = kwargs
        self.policy = self.policy_class(self.observation_space, self.action_space, self.lr_schedule, **kwargs)  # type: ignore[assignment]
        self.policy = self.policy.to(self.device)
        episodes = getattr(self, "_episodes", None)
        if self.normalize_observations and episodes is not None:
            mean, std = observation_statistics(episodes)
            self.policy.set_normalization(th.as_tensor(mean), th.as_tensor(std))
        self._generator = th.Generator(device=self.device)
        self._generator.manual_seed(0 if self.seed is None else int(self.seed))

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_episodes", "_transitions", "_generator"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        names = ["policy", "policy.optimizer"]
        if self.critics:
            names += ["policy.critic_optimizer", "policy.value_optimizer"]
        return names, []

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        # SB3's, without the env's reset: the data is the dataset
        self.start_time = time.time_ns()
        if self.ep_info_buffer is None or reset_num_timesteps:
            self.ep_info_buffer, self.ep_success_buffer = deque(maxlen=100), deque(maxlen=100)
        if reset_num_timesteps:
            self.num_timesteps = 0
        else:
            total_timesteps += self.num_timesteps
        self._total_timesteps = total_timesteps
        self._num_timesteps_at_start = self.num_timesteps
        if not self._custom_logger:
            self._logger = configure_logger(self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps)
        return total_timesteps, self._init_callback(callback, progress_bar)

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        if isinstance(callback, list):
            callback = CallbackList(callback)
        if not isinstance(callback, BaseCallback):
            callback = ConvertCallback(callback)
        if progress_bar:
            callback = CallbackList([callback, _GradientStepBar()])
        callback.init_callback(self)
        return callback

    def learn(
        self: SelfOfflineAlgorithm,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1000,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfOfflineAlgorithm:
        """Make ``total_timesteps`` gradient steps on the dataset.

        Args:
            total_timesteps: Gradient steps.
            callback: SB3 callback(s), called after every gradient step.
            log_interval: Gradient steps between two dumps of the logger (the last step's statistics).
            tb_log_name: The TensorBoard run's name.
            reset_num_timesteps: Start the step count (and the learning-rate schedule) from 0.
            progress_bar: Show a progress bar of the gradient steps.
        """
        if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, int) or total_timesteps < 1:
            raise FieldError("total_timesteps", "must be a positive integer (gradient steps)", total_timesteps)
        data = self._data()
        total_timesteps, callback = self._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        self.policy.set_training_mode(True)
        while self.num_timesteps < total_timesteps:
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            stats = self.train_step(data.sample(self.batch_size, self._generator))
            self.num_timesteps += 1
            self._n_updates += 1
            callback.update_locals(locals())
            if not callback.on_step():
                break
            if log_interval > 0 and (self.num_timesteps % log_interval == 0 or self.num_timesteps == total_timesteps):
                self._dump_logs(stats)
        self.policy.set_training_mode(False)
        callback.on_training_end()
        return self

    def _dump_logs(self, stats: dict[str, float]) -> None:
        for key, value in stats.items():
            self.logger.record(f"train/{key}", value)
        elapsed = max((time.time_ns() - self.start_time) / 1e9, 1e-9)
        self.logger.record("time/gradient_steps", self.num_timesteps, exclude="tensorboard")
        self.logger.record("time/updates_per_second", (self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        self.logger.record("time/time_elapsed", int(elapsed), exclude="tensorboard")
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)

    def train_step(self, batch: OfflineBatch) -> dict[str, float]:
        """One gradient step on ``batch``; the statistics to log."""
        raise NotImplementedError

    def _aux_loss(self, aux: Any, batch: OfflineBatch) -> tuple[th.Tensor, dict[str, float]]:
        from sb3_ext.aux_losses import aux_losses

        loss, stats = aux_losses(aux, batch.cq_targets, batch.qx_targets, self.cq_coef, self.qx_coef, self.error_coef)
        return loss, {name: value.item() for name, value in stats.items()}

    @staticmethod
    def _step(optimizer: th.optim.Optimizer, loss: th.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def _actor_learning_rate(self) -> float:
        """Set the actor's learning rate for this step (the cosine decay) and return it."""
        lr = self.actor_schedule(self._current_progress_remaining)
        for group in self.policy.optimizer.param_groups:
            group["lr"] = lr
        return lr
