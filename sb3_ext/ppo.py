"""``PPO`` with auxiliary CQ/QX prediction losses, Huber value loss, mixed precision and gradient accumulation."""

from __future__ import annotations

import math
from contextlib import nullcontext
from typing import Any, ClassVar, Literal, Protocol, cast

import numpy as np
import torch as th
import torch.nn.functional as F  # noqa: N812
from gymnasium import spaces
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, PyTorchObs, Schedule
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from fitness_weights_env.errors import FieldError
from sb3_ext.aux_losses import aux_losses
from sb3_ext.buffers import AuxRolloutBuffer, AuxRolloutBufferSamples, DeviceRolloutBuffer
from sb3_ext.callbacks import AuxTargetCallback
from sb3_ext.compiled import CompiledLoss
from sb3_ext.device_vec_env import DeviceVecEnv
from sb3_ext.policies import AttnCQQXPolicy, AuxPrediction

__all__ = ["PPO"]

ValueLoss = Literal["auto", "huber", "mse"]
AmpMode = Literal["auto", "bf16", "fp16", "off"]


class _AuxHeadsPolicy(Protocol):
    """A policy with ``aux_heads = True`` (:class:`~sb3_ext.policies.AttnCQQXPolicy`)."""

    def evaluate_actions_with_aux(
        self, obs: PyTorchObs, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, AuxPrediction]: ...


class PPO(SB3PPO):
    """Proximal Policy Optimization with auxiliary CQ/QX prediction losses.

    A drop-in subclass of Stable-Baselines3's ``PPO``: every SB3 argument, ``learn``, ``save`` and
    ``load``, ``predict``, callbacks and ``tensorboard_log`` work as there, and ``policy_aliases`` adds
    ``"AttnCQQXPolicy"`` to SB3's (SB3's own ``PPO.policy_aliases`` is not changed). With a policy
    without auxiliary heads (``"MlpPolicy"``) and the default arguments, training is exactly SB3's.

    With :class:`~sb3_ext.policies.AttnCQQXPolicy`, the rollout buffer also stores, for every step,
    the CQ and QX matrices its episode ended with (read from the env's ``info`` by an internal
    callback; episodes still running at the end of a rollout use the rollout's last matrices), and
    the loss adds::

        cq_coef * MSE(predicted CQ, target CQ) + qx_coef * MSE(predicted QX, target QX)
            + error_coef * MSE(predicted log error, log of the predictions' actual squared error)

    Args:
        policy: ``"AttnCQQXPolicy"``, an SB3 alias (``"MlpPolicy"``...) or a policy class.
        env: The environment (or its Gymnasium id).
        cq_coef: Weight of the CQ prediction loss (50, as the original design).
        qx_coef: Weight of the QX prediction loss (100, as the original design).
        error_coef: Weight of the error head's loss, which makes the confidence rank errors.
        value_loss: ``"huber"`` (smooth L1, the original design), ``"mse"`` (SB3's), or ``"auto"``:
            Huber for policies with auxiliary heads, MSE otherwise.
        use_amp: Mixed precision on CUDA: ``"auto"`` (bf16 autocast on CUDA for policies with auxiliary
            heads; off for the others, so that they train as SB3's PPO on every device), ``"bf16"``,
            ``"fp16"`` (autocast with a gradient scaler; gradients are unscaled before clipping) or
            ``"off"``. Always off on CPU.
        grad_accum_steps: Minibatches whose gradients are summed before each optimizer step
            (effective batch ``batch_size * grad_accum_steps``).
        compile: Compile the minibatch loss, forward and backward, with ``torch.compile``
            (:mod:`sb3_ext.compiled`): ``True``; ``"auto"``, only for policies with auxiliary heads (``MlpPolicy``
            stays SB3's, bit for bit); or ``False``. Where it cannot compile, it trains eagerly and warns why.
            The first update compiles (``train/compile_s`` in the log): tens of seconds cold, a few seconds with
            TorchInductor's cache warm, so it pays on long runs.
        **sb3_arguments: Every other argument of ``stable_baselines3.PPO``, with the same defaults
            (``learning_rate``, ``n_steps``, ``batch_size``, ``n_epochs``, ``gamma``, ``gae_lambda``,
            ``clip_range``, ``clip_range_vf``, ``normalize_advantage``, ``ent_coef``, ``vf_coef``,
            ``max_grad_norm``, ``use_sde``, ``sde_sample_freq``, ``rollout_buffer_class``,
            ``rollout_buffer_kwargs``, ``target_kl``, ``stats_window_size``, ``tensorboard_log``,
            ``policy_kwargs``, ``verbose``, ``seed``, ``device``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **SB3PPO.policy_aliases,
        "AttnCQQXPolicy": AttnCQQXPolicy,
    }

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
        cq_coef: float = 50.0,
        qx_coef: float = 100.0,
        error_coef: float = 1.0,
        value_loss: ValueLoss = "auto",
        use_amp: AmpMode = "auto",
        grad_accum_steps: int = 1,
        compile: bool | Literal["auto"] = False,
    ) -> None:
        if value_loss not in ("auto", "huber", "mse"):
            raise FieldError("value_loss", "must be 'auto', 'huber' or 'mse'", value_loss)
        if use_amp not in ("auto", "bf16", "fp16", "off"):
            raise FieldError("use_amp", "must be 'auto', 'bf16', 'fp16' or 'off'", use_amp)
        if not (isinstance(compile, bool) or compile == "auto"):
            raise FieldError("compile", "must be True, False or 'auto'", compile)
        if not isinstance(grad_accum_steps, int) or grad_accum_steps < 1:
            raise FieldError("grad_accum_steps", "must be a positive integer", grad_accum_steps)
        for name, coef in (("cq_coef", cq_coef), ("qx_coef", qx_coef), ("error_coef", error_coef)):
            if not (math.isfinite(coef) and coef >= 0):
                raise FieldError(name, "must be a non-negative number", coef)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range=clip_range,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        self.cq_coef = cq_coef
        self.qx_coef = qx_coef
        self.error_coef = error_coef
        self.value_loss = value_loss
        self.use_amp = use_amp
        self.grad_accum_steps = grad_accum_steps
        self.compile = compile
        self.train_metrics: dict[str, float] = {}
        if _init_setup_model:
            self._setup_model()

    @property
    def has_aux_heads(self) -> bool:
        """Whether the policy predicts CQ/QX (and so trains with the auxiliary losses)."""
        return bool(getattr(self.policy_class, "aux_heads", False))

    @property
    def rollout_on_device(self) -> bool:
        """Whether rollouts stay on the device: the env is a :class:`~sb3_ext.device_vec_env.DeviceVecEnv`."""
        return isinstance(self.env, DeviceVecEnv)

    def _setup_model(self) -> None:
        if self.rollout_on_device:
            env = cast(DeviceVecEnv, self.env)
            if env.device != self.device:
                raise FieldError("device", f"the model runs on {self.device}, its DeviceVecEnv on {env.device}")
            if self.rollout_buffer_class not in (None, DeviceRolloutBuffer):
                raise ValueError("a DeviceVecEnv's rollout is written to a DeviceRolloutBuffer")
            self.rollout_buffer_class = DeviceRolloutBuffer
            self.rollout_buffer_kwargs = {**self.rollout_buffer_kwargs, "targets": self.has_aux_heads}
        if self.has_aux_heads:
            if self.rollout_buffer_class is None:
                self.rollout_buffer_class = AuxRolloutBuffer
            elif not issubclass(self.rollout_buffer_class, AuxRolloutBuffer):
                raise ValueError("a policy with auxiliary heads needs an AuxRolloutBuffer (or subclass)")
            if not isinstance(self.action_space, spaces.Discrete):
                raise ValueError("AttnCQQXPolicy needs the Discrete(685) FitnessWeights action space")
        super()._setup_model()
        self._grad_scaler = th.amp.GradScaler("cuda", enabled=self._amp_dtype() == th.float16)
        compiling = self.compile is True or (self.compile == "auto" and self.has_aux_heads)
        self.compiled_loss: CompiledLoss | None = CompiledLoss(self.compute_loss, self.device) if compiling else None
        """The compiled loss (``compile``), ``None`` when the loss runs eagerly by choice."""

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_grad_scaler", "compiled_loss"]

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        if self.has_aux_heads and not self.rollout_on_device:  # the target filler runs first, before the user's
            given = callback if isinstance(callback, list) else [] if callback is None else [callback]
            callback = [AuxTargetCallback(), *(c if isinstance(c, BaseCallback) else ConvertCallback(c) for c in given)]
        return super()._init_callback(callback, progress_bar)

    def _amp_dtype(self) -> th.dtype | None:
        if self.device.type != "cuda" or self.use_amp == "off" or (self.use_amp == "auto" and not self.has_aux_heads):
            return None
        return th.float16 if self.use_amp == "fp16" else th.bfloat16

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        """Set every parameter group's rate to the schedule's value times its ``lr_multiplier`` (default 1)."""
        learning_rate = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", learning_rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate * group.get("lr_multiplier", 1.0)

    def _value_loss_fn(self) -> Any:
        name = self.value_loss
        if name == "auto":
            name = "huber" if self.has_aux_heads else "mse"
        return F.smooth_l1_loss if name == "huber" else F.mse_loss

    def compute_loss(
        self, rollout_data: Any, clip_range: float, clip_range_vf: float | None
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """The PPO loss of one minibatch (clipped surrogate, value, entropy, and the auxiliary losses).

        Returns:
            The loss to minimize, and the minibatch's statistics (``approx_kl`` among them) as detached 0-d tensors:
            :meth:`train` reads them from the device once per epoch (with ``target_kl``, ``approx_kl`` every
            minibatch), not once per value.
        """
        actions = rollout_data.actions
        if isinstance(self.action_space, spaces.Discrete):
            actions = rollout_data.actions.long().flatten()
        aux = None
        entropy: th.Tensor | None
        if isinstance(rollout_data, AuxRolloutBufferSamples):  # only with aux heads: else no targets, get() refuses
            policy = cast(_AuxHeadsPolicy, self.policy)
            values, log_prob, entropy, aux = policy.evaluate_actions_with_aux(rollout_data.observations, actions)
        else:
            values, log_prob, entropy = self.policy.evaluate_actions(rollout_data.observations, actions)
        values = values.flatten()
        advantages = rollout_data.advantages
        if self.normalize_advantage and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        ratio = th.exp(log_prob - rollout_data.old_log_prob)
        policy_loss_1 = advantages * ratio
        policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
        policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()
        if clip_range_vf is None:
            values_pred = values
        else:
            values_pred = rollout_data.old_values + th.clamp(
                values - rollout_data.old_values, -clip_range_vf, clip_range_vf
            )
        value_loss = self._value_loss_fn()(rollout_data.returns, values_pred)
        entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
        loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
        with th.no_grad():
            log_ratio = log_prob - rollout_data.old_log_prob
            stats = {
                "policy_gradient_loss": policy_loss.detach(),
                "value_loss": value_loss.detach(),
                "entropy_loss": entropy_loss.detach(),
                "clip_fraction": th.mean((th.abs(ratio - 1) > clip_range).float()),
                "approx_kl": th.mean((th.exp(log_ratio) - 1) - log_ratio),
            }
        if aux is not None:
            aux_loss, aux_stats = self.compute_aux_loss(aux, rollout_data)
            loss = loss + aux_loss
            stats.update(aux_stats)
        return loss, stats

    def compute_aux_loss(
        self, aux: Any, rollout_data: AuxRolloutBufferSamples
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """The auxiliary losses: CQ and QX prediction MSE and the error head's log-error regression."""
        coefs = (self.cq_coef, self.qx_coef, self.error_coef)
        return aux_losses(aux, rollout_data.cq_targets, rollout_data.qx_targets, *coefs)

    # Adapted from stable_baselines3's OnPolicyAlgorithm.collect_rollouts, which has no hook for the timeout
    # bootstrap: SB3 runs one B = 1 value forward per env whose episode was truncated at the step, this runs one
    # forward for all of them (every env of the batched VecEnv ends its 64-step episode at the same step). The
    # rest is SB3's, line for line, and the callbacks see the same locals.
    def collect_rollouts(
        self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """Collect ``n_rollout_steps`` steps per env into ``rollout_buffer`` (SB3's, with a batched bootstrap).

        With a :class:`~sb3_ext.device_vec_env.DeviceVecEnv` the rollout stays on the device
        (:meth:`collect_rollouts_on_device`).
        """
        if isinstance(env, DeviceVecEnv) and isinstance(rollout_buffer, DeviceRolloutBuffer):
            return self.collect_rollouts_on_device(env, callback, rollout_buffer, n_rollout_steps)
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                actions, values, log_probs = self.policy(obs_tensor)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                if self.policy.squash_output:
                    clipped_actions = self.policy.unscale_action(clipped_actions)
                else:
                    clipped_actions = np.clip(actions, self.action_space.low, self.action_space.high)
            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            self._bootstrap_timeouts(rewards, dones, infos)
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
        with th.no_grad():
            values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))  # type: ignore[arg-type]
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def collect_rollouts_on_device(
        self, env: DeviceVecEnv, callback: BaseCallback, rollout_buffer: DeviceRolloutBuffer, n_rollout_steps: int
    ) -> bool:
        """:meth:`collect_rollouts` with every array on the device: no numpy in the loop.

        The same steps as SB3's loop: the policy's forward (its sampling on the device), the env's step, the
        timeout bootstrap (one value forward for the truncated trainees, at the steps where episodes end), the
        buffer's write, and the callbacks, whose locals hold tensors (``new_obs``, ``rewards``, ``dones``) and the
        vector env's batched ``infos``. The auxiliary targets are written here, on the device: each finished
        episode's final matrices over its steps, and the current matrices over the episodes still running.
        """
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        callback.on_rollout_start()
        device, n = self.device, env.num_envs
        obs = env.observation
        episode_starts = th.as_tensor(self._last_episode_starts, device=device).float()
        episode_start = th.zeros(n, dtype=th.int64, device=device)  # each episode's first step in this rollout
        dones = th.zeros(n, dtype=th.bool, device=device)
        new_obs = obs
        while n_steps < n_rollout_steps:
            with th.no_grad():
                actions, values, log_probs = self.policy(obs)
            step = env.step_device(actions)
            new_obs, rewards, dones, infos = step.observation, step.reward, step.done, step.info
            self.num_timesteps += n
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self.ep_info_buffer.extend(step.episodes)  # type: ignore[union-attr]  # made by _setup_learn
            n_steps += 1
            if step.final_observation is not None:  # episodes ended: bootstrap the truncated, fill the targets
                truncated = th.nonzero(step.truncated & ~step.terminated).flatten()
                if truncated.numel():
                    with th.no_grad():
                        final_values = self.policy.predict_values(step.final_observation[truncated]).flatten()
                    rewards = rewards.index_add(0, truncated, self.gamma * final_values.float())
                if rollout_buffer.targets and step.final_cq is not None and step.final_qx is not None:
                    stop = rollout_buffer.pos + 1
                    rollout_buffer.fill_episode_targets(dones, episode_start, stop, step.final_cq, step.final_qx)
                    episode_start = th.where(dones, stop, episode_start)
            rollout_buffer.add(obs, actions, rewards, episode_starts, values, log_probs)
            obs, episode_starts = new_obs, dones.float()
        if rollout_buffer.targets:  # the episodes still running: the rollout's last matrices
            running = episode_start < rollout_buffer.buffer_size
            rollout_buffer.fill_episode_targets(
                running, episode_start, rollout_buffer.buffer_size, *env.current_matrices()
            )
        with th.no_grad():
            values = self.policy.predict_values(new_obs)
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        self._last_obs = new_obs.cpu().numpy()  # SB3's attributes stay numpy (one copy per rollout)
        self._last_episode_starts = dones.cpu().numpy()
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _bootstrap_timeouts(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Add ``gamma`` times the value of the terminal observation to the reward of every truncated episode.

        SB3's rule (its issue #633): an episode that ended on ``TimeLimit.truncated`` with a terminal observation.
        One value forward for all of them; a lone one is a batch of one, as in SB3.
        """
        envs = [
            index
            for index, done in enumerate(dones)
            if done
            and infos[index].get("terminal_observation") is not None
            and infos[index].get("TimeLimit.truncated", False)
        ]
        if not envs:
            return
        terminal = [infos[index]["terminal_observation"] for index in envs]
        if isinstance(terminal[0], dict):
            batch: Any = {key: np.stack([obs[key] for obs in terminal]) for key in terminal[0]}
        else:
            batch = np.stack(terminal)
        with th.no_grad():
            terminal_values = self.policy.predict_values(self.policy.obs_to_tensor(batch)[0])
        for index, value in zip(envs, terminal_values, strict=True):
            rewards[index] += self.gamma * value

    # Adapted from stable_baselines3.PPO.train (SB3 has no hook for the loss): the loss moved to compute_loss, and mixed
    # precision, gradient accumulation and the extra logs were added. Without them the update is SB3's, operation for
    # operation, and so are SB3's logs: the losses and clip_fraction are means over every epoch's minibatches, approx_kl
    # the mean over the last epoch's (the one early stopping may cut short), std is logged for policies with a log_std
    # (continuous actions), and loss is the last minibatch's.
    def train(self) -> None:
        """Update the policy on the rollout buffer (``n_epochs`` passes of minibatches)."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        # the ignores: SB3 types clip_range(_vf) "float | Schedule"; _setup_model made them FloatSchedules (as SB3's)
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = None
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        amp_dtype = self._amp_dtype()
        autocast = th.autocast(self.device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
        scaler = self._grad_scaler
        optimizer = self.policy.optimizer
        n_batches = math.ceil(self.rollout_buffer.buffer_size * self.rollout_buffer.n_envs / self.batch_size)
        history: dict[str, list[float]] = {}
        grad_norms: list[float] = []
        compiled = self.compiled_loss
        compute_loss = self.compute_loss if compiled is None else compiled
        timing = compiled is not None and compiled.compiled and compiled.compile_seconds is None

        def optimizer_step() -> None:
            scaler.unscale_(optimizer)
            grad_norms.append(float(th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)))
            scaler.step(optimizer)
            scaler.update()

        continue_training = True
        for epoch in range(self.n_epochs):
            epoch_stats: list[dict[str, th.Tensor]] = []  # read from the device at the epoch's end
            pending = 0  # minibatches whose gradients wait for an optimizer step
            for index, rollout_data in enumerate(self.rollout_buffer.get(self.batch_size)):
                with autocast:
                    loss, stats = compute_loss(rollout_data, clip_range, clip_range_vf)
                epoch_stats.append(stats)
                if self.target_kl is not None:
                    # float32, as SB3 keeps it: its early-stopping comparison and mean are float32 arithmetic
                    approx_kl_div = np.float32(stats["approx_kl"].item())
                    if approx_kl_div > 1.5 * self.target_kl:
                        continue_training = False
                        if self.verbose >= 1:
                            print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                        break
                if pending == 0:
                    optimizer.zero_grad()
                scaler.scale(loss / self.grad_accum_steps if self.grad_accum_steps > 1 else loss).backward()
                pending += 1
                if pending == self.grad_accum_steps or index == n_batches - 1:
                    optimizer_step()
                    pending = 0
            if pending:
                optimizer_step()
            names = list(epoch_stats[0])
            rows = th.stack([th.stack([stats[name].float() for name in names]) for stats in epoch_stats]).tolist()
            columns = dict(zip(names, zip(*rows, strict=True), strict=True))
            # reset every epoch, so the log is the last epoch's mean (as SB3), in float32 (as SB3)
            approx_kl_divs = [np.float32(value) for value in columns.pop("approx_kl")]
            for name, values in columns.items():
                history.setdefault(name, []).extend(values)
            self._n_updates += 1
            if not continue_training:
                break

        buffer = self.rollout_buffer
        explained_var = explained_variance(_host(buffer.values).flatten(), _host(buffer.returns).flatten())
        means = {name: float(np.mean(values)) for name, values in history.items()}  # over all epochs
        means["approx_kl"] = float(np.mean(approx_kl_divs))  # over the last epoch only
        for name, value in means.items():
            self.logger.record(f"train/{name}", value)
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        if hasattr(self.policy, "log_std"):  # continuous actions: the policy's mean standard deviation
            self.logger.record("train/std", th.exp(self.policy.log_std).mean().item())
        if grad_norms:
            self.logger.record("train/grad_norm", float(np.mean(grad_norms)))
        if timing and compiled is not None and compiled.compile_seconds is not None:  # the first compiled update
            self.logger.record("train/compile_s", compiled.compile_seconds)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        if self.device.type == "cuda":
            megabyte = 2**20
            self.logger.record("train/gpu_memory_allocated_mb", th.cuda.memory_allocated(self.device) / megabyte)
            self.logger.record("train/gpu_memory_reserved_mb", th.cuda.memory_reserved(self.device) / megabyte)
            self.logger.record(
                "train/gpu_memory_max_allocated_mb", th.cuda.max_memory_allocated(self.device) / megabyte
            )
        self.train_metrics = {**means, "loss": loss.item()}


def _host(array: np.ndarray | th.Tensor) -> np.ndarray:
    """A numpy array of the buffer's (a device buffer's tensors are copied to the host)."""
    return array.cpu().numpy() if isinstance(array, th.Tensor) else array
