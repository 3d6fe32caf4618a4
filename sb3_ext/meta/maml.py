"""MAML for policies over trainees: an initialization from which a few policy-gradient steps fit a new trainee.

Every iteration (Finn et al. 2017, Algorithm 3; the outer loss optionally ProMP's, Rothfuss et al. 2019):

1. draw ``meta_batch_size`` tasks (:class:`~sb3_ext.meta.tasks.TaskSampler`: trainees with hidden parameters);
2. run ``episodes_per_task`` episodes of each with the initialization ``theta`` (the pre-update episodes), actions
   drawn with the episodes' own generators, outside any ``vmap``;
3. adapt ``theta`` to every task at once: ``inner_steps`` steps of the policy-gradient loss, ``inner_lr``,
   ``vmap``-ped over the tasks (:func:`sb3_ext.meta.inner.adapt`);
4. run ``episodes_per_task`` episodes of each task with its adapted policy (the post-update episodes);
5. update ``theta`` with Adam (``outer_lr``) on the outer loss of the post-update episodes, through the adaptation
   (second order, or first order with ``first_order=True``): ``"pg"``, the policy gradient of the adapted policies,
   one step; or ``"ppo-clip"``, ProMP's clipped surrogate, ``outer_epochs`` steps that re-adapt ``theta`` each time
   and weigh each action by its adapted policy's probability over the one that drew it.

The advantages are each episode's return-to-go (``gamma``) less a per-task baseline: the mean return-to-go at that
step over the task's episodes. Only the actor adapts: the parameters the logits depend on (for
``AttnCQQXPolicy`` its trunk and actor head; the critic and the CQ/QX heads are left as they are).
"""

from __future__ import annotations

import copy
import json
import time
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch as th
from gymnasium import spaces
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.policies import ActorCriticPolicy
from torch.func import functional_call, vmap
from tqdm import tqdm

from fitness_weights_env import N_ACTIONS
from fitness_weights_env.errors import FieldError, check_int
from fitness_weights_env.layout import LAYOUT, TRAINING_LAYOUT
from fitness_weights_env.profile import TraineeProfile
from sb3_ext.meta.inner import Params, TaskBatch, adapt, adapt_one, module_logits
from sb3_ext.meta.tasks import Task, TaskEpisodes, TaskSampler, sample_actions, task_generators
from sb3_ext.policies import AttnCQQXPolicy

__all__ = ["MAML", "OUTER_OBJECTIVES", "ActorLogits"]

OUTER_OBJECTIVES = ("ppo-clip", "pg")
POLICIES: dict[str, type[ActorCriticPolicy]] = {"AttnCQQXPolicy": AttnCQQXPolicy, "MlpPolicy": ActorCriticPolicy}
ADAPT_PHASE = 1 << 20
"""First action-generator phase of :meth:`MAML.adapt`'s episodes (training's phases are 0, 1, 2, ...)."""
FORMAT = "fitness-weights-maml/1"
"""The ``format`` of a saved model's ``meta.json``: JSON settings and safetensors weights, nothing pickled."""


@dataclass(frozen=True)
class MAMLSettings:
    """The arguments of a :class:`MAML` (saved with it)."""

    policy: str
    env_id: str
    meta_batch_size: int
    episodes_per_task: int
    inner_steps: int
    inner_lr: float
    outer_lr: float
    first_order: bool
    outer: str
    outer_epochs: int
    clip_range: float
    gamma: float
    policy_kwargs: dict[str, Any]
    seed: int


class ActorLogits(th.nn.Module):
    """A policy's actor as a module: observations -> the 685 logits (for ``functional_call``)."""

    def __init__(self, policy: ActorCriticPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observations: th.Tensor) -> th.Tensor:
        """The actor's logits (B, 685)."""
        policy = self.policy
        if isinstance(policy, AttnCQQXPolicy):
            return policy._run(observations).logits
        # one extractor given: a tensor (a pair only when SB3 is asked for both)
        features = cast(th.Tensor, policy.extract_features(observations, policy.pi_features_extractor))
        return policy.action_net(policy.mlp_extractor.forward_actor(features))


class MAML:
    """Model-agnostic meta-learning of a FitnessWeights policy over trainees (module docstring).

    Args:
        policy: ``"AttnCQQXPolicy"`` or ``"MlpPolicy"`` (SB3's actor-critic MLP).
        tasks: The task distribution, or an env id for a :class:`TaskSampler` of ``seed``.
        meta_batch_size: Tasks per iteration.
        episodes_per_task: Episodes of each task before and after its adaptation.
        inner_steps: Inner gradient steps.
        inner_lr: Inner step size.
        outer_lr: Adam's learning rate on the initialization.
        first_order: First-order MAML (the inner gradients as constants).
        outer: ``"ppo-clip"`` (ProMP's surrogate) or ``"pg"`` (vanilla policy gradient).
        outer_epochs: Outer steps per iteration with ``"ppo-clip"``.
        clip_range: The surrogate's clip.
        gamma: Discount of the returns-to-go (v1's recipe is undiscounted).
        policy_kwargs: Arguments of the policy.
        seed: Seed of the tasks, the network's initialization and the action draws.
        device: Torch device.
        tensorboard_log: A folder for TensorBoard (SB3's logger), or ``None``.
        verbose: 1 prints the logger's table every ``log_interval`` iterations.

    Raises:
        FieldError: A bad argument (named).
    """

    def __init__(
        self,
        policy: str,
        tasks: TaskSampler | str = "FitnessWeights-v1",
        *,
        meta_batch_size: int = 16,
        episodes_per_task: int = 8,
        inner_steps: int = 1,
        inner_lr: float = 0.1,
        outer_lr: float = 1e-3,
        first_order: bool = False,
        outer: str = "ppo-clip",
        outer_epochs: int = 5,
        clip_range: float = 0.2,
        gamma: float = 1.0,
        policy_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        device: str = "cpu",
        tensorboard_log: str | None = None,
        verbose: int = 0,
    ) -> None:
        if policy not in POLICIES:
            raise FieldError("policy", f"must be one of {list(POLICIES)}", policy)
        if outer not in OUTER_OBJECTIVES:
            raise FieldError("outer", f"must be one of {list(OUTER_OBJECTIVES)}", outer)
        for name, count in (("meta_batch_size", meta_batch_size), ("episodes_per_task", episodes_per_task)):
            check_int(name, count, 1)
        check_int("inner_steps", inner_steps, 0)
        check_int("outer_epochs", outer_epochs, 1)
        for name, rate in (("inner_lr", inner_lr), ("outer_lr", outer_lr), ("clip_range", clip_range)):
            if not (isinstance(rate, (int, float)) and np.isfinite(rate) and rate > 0):
                raise FieldError(name, "must be a number above 0", rate)
        if not 0.0 <= gamma <= 1.0:
            raise FieldError("gamma", "must lie in [0, 1]", gamma)
        self.sampler = tasks if isinstance(tasks, TaskSampler) else TaskSampler(tasks, seed=seed)
        self.settings = MAMLSettings(
            policy, self.sampler.env_id, meta_batch_size, episodes_per_task, inner_steps, float(inner_lr),
            float(outer_lr), bool(first_order), outer, outer_epochs, float(clip_range), float(gamma),
            dict(policy_kwargs or {}), seed,
        )  # fmt: skip
        self.device = th.device(device)
        th.manual_seed(seed)
        layout = TRAINING_LAYOUT if self.sampler.env_id == "FitnessWeights-v1" else LAYOUT
        self.observation_space = spaces.Box(0.0, 1.0, (layout.size,), np.float32)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.policy = POLICIES[policy](
            self.observation_space, self.action_space, lambda _: outer_lr, **(policy_kwargs or {})
        ).to(self.device)
        self._actor = ActorLogits(self.policy)
        self._logits = module_logits(self._actor)
        self.actor_names = self._actor_parameter_names()
        self.optimizer = th.optim.Adam([self._named()[n] for n in self.actor_names], lr=outer_lr)
        self.iterations = 0
        self.num_timesteps = 0
        self.tensorboard_log, self.verbose = tensorboard_log, verbose
        self.logger: Logger = configure(None, ["stdout"] if verbose else [""])
        self._custom_logger = False

    # -- the parameters ----------------------------------------------------------------------------------------

    def _named(self) -> dict[str, th.nn.Parameter]:
        return dict(self._actor.named_parameters())

    def _actor_parameter_names(self) -> list[str]:
        """The parameters the logits depend on (a probe's gradient reaches them)."""
        probe = th.rand(2, self.observation_space.shape[0], device=self.device)
        named = self._named()
        grads = th.autograd.grad(self._actor(probe).sum(), list(named.values()), allow_unused=True)
        return [name for name, g in zip(named, grads, strict=True) if g is not None]

    def parameters(self) -> Params:
        """The initialization ``theta``: the actor's parameters by name (the live tensors)."""
        named = self._named()
        return {name: named[name] for name in self.actor_names}

    def _full(self, actor: Mapping[str, th.Tensor]) -> dict[str, th.Tensor]:
        """Every parameter of the module, the actor's from ``actor`` (for ``functional_call``)."""
        return {**{n: p.detach() for n, p in self._named().items()}, **actor}

    def logits(self, params: Mapping[str, th.Tensor], observations: th.Tensor) -> th.Tensor:
        """The logits of the policy with the actor parameters ``params``."""
        return self._logits(self._full(params), observations)

    # -- episodes ----------------------------------------------------------------------------------------------

    def _rollout(self, tasks: list[Task], params: Params | None, phase: int, episodes: int) -> TaskEpisodes:
        """``episodes`` episodes of each task with ``theta`` (``params=None``) or each task's own ``params``."""
        generators = task_generators(tasks, episodes, phase)

        def act(observations: np.ndarray, step: int) -> np.ndarray:
            obs = th.as_tensor(observations, device=self.device)  # (K, M, n)
            with th.no_grad():
                if params is None:
                    logits = self.logits(self.parameters(), obs.reshape(-1, obs.shape[-1])).reshape(*obs.shape[:2], -1)
                else:
                    logits = vmap(lambda p, o: functional_call(self._actor, self._full(p), (o,)))(params, obs)
                probabilities = th.softmax(logits.double(), dim=-1).cpu().numpy()
            return sample_actions(probabilities, generators)

        return self.sampler.rollout(tasks, episodes, act)

    def _batch(self, episodes: TaskEpisodes) -> TaskBatch:
        """Each task's transitions with their advantages: return-to-go less the task's mean at that step."""
        rewards = episodes.rewards  # (K, M, T)
        discounts = self.settings.gamma ** np.arange(rewards.shape[-1])
        to_go = np.flip(np.cumsum(np.flip(rewards * discounts, -1), -1), -1) / discounts
        advantages = to_go - to_go.mean(axis=1, keepdims=True)  # the per-task, per-step baseline
        k = rewards.shape[0]
        return TaskBatch(
            th.as_tensor(
                episodes.observations[:, :, :-1].reshape(k, -1, episodes.observations.shape[-1]), device=self.device
            ),
            th.as_tensor(episodes.actions.reshape(k, -1), device=self.device),
            th.as_tensor(advantages.reshape(k, -1), dtype=th.float32, device=self.device),
        )

    # -- training ----------------------------------------------------------------------------------------------

    def _outer_loss(self, adapted: Params, batch: TaskBatch, old_log_probs: th.Tensor | None) -> th.Tensor:
        """The mean over tasks of the outer loss of the adapted policies on the post-update episodes."""

        def one(params: Params, observations: th.Tensor, actions: th.Tensor, adv: th.Tensor, old: th.Tensor) -> Any:
            log_probs = th.log_softmax(functional_call(self._actor, self._full(params), (observations,)), dim=-1)
            taken = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
            if old_log_probs is None:
                return -(taken * adv).mean()
            ratio = th.exp(taken - old)
            clip = self.settings.clip_range
            return -th.min(ratio * adv, th.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv).mean()

        old = old_log_probs if old_log_probs is not None else th.zeros_like(batch.advantages)
        return vmap(one)(adapted, batch.observations, batch.actions, batch.advantages, old).mean()

    def _adapt_all(self, batch: TaskBatch, first_order: bool | None = None) -> Params:
        """``theta`` adapted to every task of ``batch`` (differentiable in ``theta``)."""
        s = self.settings
        order = s.first_order if first_order is None else first_order
        return adapt(self.logits, self.parameters(), batch, s.inner_lr, s.inner_steps, order)

    def train_iteration(self) -> dict[str, float]:
        """One meta-iteration (module docstring); its statistics."""
        s = self.settings
        tasks = self.sampler.sample(s.meta_batch_size)
        timer = time.perf_counter()
        pre = self._rollout(tasks, None, 2 * self.iterations, s.episodes_per_task)
        rollout_s = time.perf_counter() - timer
        timer = time.perf_counter()
        inner = self._batch(pre)
        with th.no_grad():
            adapted = {n: p.detach() for n, p in self._adapt_all(inner, first_order=True).items()}
        gradient_s = time.perf_counter() - timer
        timer = time.perf_counter()
        post = self._rollout(tasks, adapted, 2 * self.iterations + 1, s.episodes_per_task)
        rollout_s += time.perf_counter() - timer
        timer = time.perf_counter()
        outer = self._batch(post)
        old = None
        if s.outer == "ppo-clip":
            with th.no_grad():
                old = self._taken_log_probs(adapted, outer)
        for _ in range(s.outer_epochs if s.outer == "ppo-clip" else 1):
            loss = self._outer_loss(self._adapt_all(inner), outer, old)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        gradient_s += time.perf_counter() - timer
        self.iterations += 1
        self.num_timesteps += pre.actions.size + post.actions.size
        return {
            "pre_update_return": float(pre.returns.mean()),
            "post_update_return": float(post.returns.mean()),
            "outer_loss": float(loss.item()),
            "rollout_s": rollout_s,
            "gradient_s": gradient_s,
        }

    def _taken_log_probs(self, adapted: Params, batch: TaskBatch) -> th.Tensor:
        def one(params: Params, observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
            log_probs = th.log_softmax(functional_call(self._actor, self._full(params), (observations,)), dim=-1)
            return log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

        return vmap(one)(adapted, batch.observations, batch.actions)

    def learn(
        self,
        n_iterations: int,
        callback: BaseCallback | None = None,
        log_interval: int = 1,
        tb_log_name: str = "MAML",
        progress_bar: bool = False,
    ) -> MAML:
        """Run ``n_iterations`` meta-iterations, logging each (SB3's logger: stdout, TensorBoard).

        ``callback`` is an SB3 callback: its ``on_step`` runs after every iteration (``False`` stops).
        """
        check_int("n_iterations", n_iterations, 1)
        if self.tensorboard_log is not None and not self._custom_logger:
            folder = str(Path(self.tensorboard_log) / f"{tb_log_name}_{self.iterations}")
            self.logger = configure(folder, ["stdout", "tensorboard"] if self.verbose else ["tensorboard"])
        if callback is not None:
            callback.init_callback(self)  # type: ignore[arg-type]  # the callback reads num_timesteps, logger, save
            callback.on_training_start(locals(), globals())
        with tqdm(total=n_iterations, unit="iteration", desc="MAML", disable=not progress_bar) as bar:
            for _ in range(n_iterations):
                stats = self.train_iteration()
                for name, value in stats.items():
                    self.logger.record(f"meta/{name}", value)
                self.logger.record("time/iterations", self.iterations)
                if log_interval and self.iterations % log_interval == 0:
                    self.logger.dump(self.num_timesteps)
                bar.update(1)
                bar.set_postfix(post_update_return=f"{stats['post_update_return']:.4f}")
                if callback is not None and not callback.on_step():
                    break
        if callback is not None:
            callback.on_training_end()
        return self

    def set_logger(self, logger: Logger) -> None:
        """Log to ``logger`` (``stable_baselines3.common.logger.configure(folder, ["csv", ...])``), as SB3."""
        self.logger, self._custom_logger = logger, True

    def get_env(self) -> None:
        """No environment: SB3's callbacks ask for one."""
        return None

    # -- adaptation --------------------------------------------------------------------------------------------

    def adapt(
        self, trainee: TraineeProfile, steps: int | None = None, episodes: int | None = None, seed: int = 0
    ) -> ActorCriticPolicy:
        """The policy adapted to ``trainee``.

        ``steps`` inner steps (default: the training's), each on ``episodes`` fresh episodes of the trainee (episode
        seed ``seed``) with the policy as adapted so far.

        Returns:
            A copy of the policy with the adapted actor (usable with :class:`sb3_ext.actions.PolicyActions`).
        """
        steps = self.settings.inner_steps if steps is None else check_int("steps", steps, 0)
        episodes = self.settings.episodes_per_task if episodes is None else check_int("episodes", episodes, 1)
        task = [Task(trainee, seed)]
        params = {n: p.detach() for n, p in self.parameters().items()}
        for step in range(steps):
            episodes_run = self._rollout(task, {n: p[None] for n, p in params.items()}, ADAPT_PHASE + step, episodes)
            batch = TaskBatch(*(tensor[0] for tensor in self._batch(episodes_run)))
            adapted_step = adapt_one(self.logits, params, batch, self.settings.inner_lr, 1, first_order=True)
            params = {n: p.detach() for n, p in adapted_step.items()}
        adapted = copy.deepcopy(self.policy)
        named = dict(ActorLogits(adapted).named_parameters())
        with th.no_grad():
            for name, value in params.items():
                named[name].copy_(value)
        return adapted

    # -- files -------------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """A zip of ``meta.json`` (settings, iterations) and ``policy.safetensors`` (the policy's weights)."""
        meta = {"format": FORMAT, "settings": asdict(self.settings), "iterations": self.iterations,
                "num_timesteps": self.num_timesteps}  # fmt: skip
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.policy.state_dict().items()}
        with zipfile.ZipFile(Path(path), "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("meta.json", json.dumps(meta, indent=2))
            archive.writestr("policy.safetensors", save_tensors(state))

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> MAML:
        """A model saved by :meth:`save` (nothing unpickled).

        Raises:
            FieldError: ``path``: not such a file, or a damaged one.
        """
        try:
            with zipfile.ZipFile(Path(path)) as archive:
                meta = json.loads(archive.read("meta.json"))
                state = load_tensors(archive.read("policy.safetensors"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
            raise FieldError("path", f"not a saved MAML model: {type(err).__name__}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise FieldError("path", f"not a saved MAML model (format {FORMAT!r} expected)")
        settings = dict(meta["settings"])
        env_id = settings.pop("env_id")
        model = cls(settings.pop("policy"), env_id, device=device, **settings)
        try:
            model.policy.load_state_dict(state)
        except RuntimeError:
            raise FieldError("path", "its weights do not fit its policy") from None
        model.iterations, model.num_timesteps = int(meta["iterations"]), int(meta["num_timesteps"])
        return model
