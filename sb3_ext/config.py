"""What a training run trains: one validated config, the input of :func:`sb3_ext.recipe.make_model`.

This module imports neither torch nor SB3, so a config is built and checked in microseconds (the service checks
a job's config before it starts the job's process)::

    from sb3_ext.config import TrainConfig

    config = TrainConfig(timesteps=300_000, seed=1, ppo_kwargs={"ent_coef": 0.01})
    config.ppo_arguments()   # {"n_steps": 64, "batch_size": 256, "n_epochs": 4, "ent_coef": 0.01}

and then, where torch is wanted::

    from sb3_ext.recipe import make_model

    model = make_model(config)
    model.learn(config.timesteps, progress_bar=True)

A bad value raises :class:`~fitness_weights_env.errors.FieldError` naming the field (for ``ppo_kwargs`` and
``policy_kwargs``, the key: ``"ppo_kwargs.ent_coef"``).
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from fitness_weights_env.errors import FieldError, check_int
from sb3_ext.presets import PRESETS, get_preset

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DEFAULT_LEARNING_RATE",
    "ENV_PPO_DEFAULTS",
    "ENV_TRAINING_KWARGS",
    "FINAL_LEARNING_RATE_FRACTION",
    "LEARNING_RATE_SCHEDULES",
    "POLICIES",
    "PPO_OVERRIDES",
    "VECTORIZATIONS",
    "TrainConfig",
]

DEFAULT_LEARNING_RATE = 2e-3
"""The initial learning rate of the README's run and of training jobs (README, "Training and evaluation")."""
FINAL_LEARNING_RATE_FRACTION = 0.1
"""The cosine schedule anneals the learning rate to this fraction of the initial one."""
LEARNING_RATE_SCHEDULES = ("cosine", "constant")
"""``"cosine"``: from ``learning_rate`` to a tenth of it (:class:`~sb3_ext.schedules.CosineSchedule`)."""
POLICIES = ("AttnCQQXPolicy", "MlpPolicy")
"""The policies a config may name (``sb3_ext.PPO.policy_aliases``)."""
Vectorization = Literal["batched", "device", "dummy", "subproc"]
VECTORIZATIONS: tuple[Vectorization, ...] = ("batched", "device", "dummy", "subproc")
"""How the envs are stepped (:func:`sb3_ext.vec_env.make_vec_env`)."""

MAX_TIMESTEPS = 10**10
MAX_N_ENVS = 16_384
MAX_SEED = 2**31 - 1
MAX_EVAL_TRAINEES = 10_000
MAX_KWARGS_CHARS = 10_000
"""The longest JSON text of ``policy_kwargs`` or ``ppo_kwargs``."""

# PPO constructor arguments a config may set, by kind of value: the rest (policy, env, learning_rate, seed,
# device, policy_kwargs) come from the config's own fields.
_POSITIVE_INT, _NUMBER, _UNIT, _BOOL, _INT, _OPTIONAL_NUMBER = "int>=1", "number>=0", "(0,1]", "bool", "int", "None"
ENV_PPO_DEFAULTS: dict[str, dict[str, Any]] = {"FitnessWeights-v1": {"gamma": 1.0, "gae_lambda": 0.98}}
"""PPO arguments an env sets over the preset's (``ppo_kwargs`` overrides them). v1's reward is each week's change
of the target score, and a plan's fatigue comes weeks before its fitness: with SB3's ``gamma=0.99`` and
``gae_lambda=0.95`` (an advantage horizon of about 4 weeks) PPO learned to cut the load that tires, led the coach
for 8 weeks and ended below it; undiscounted, the return is the block's gain (``benchmarks/RESULTS.md``,
"FitnessWeights-v1: learning")."""

ENV_TRAINING_KWARGS: dict[str, dict[str, Any]] = {"FitnessWeights-v1": {"reward_shaping": True}}
"""Keyword arguments of an env's training envs (:func:`sb3_ext.recipe.make_env`). v1 trains with potential-based
shaping (``fitness_weights_env.training_dynamics.step``): every action is credited at once with the change of what
the plan would still gain, which leaves every policy's ranking as it is; the evaluation scores the reward without
it (``benchmarks/RESULTS.md``, "FitnessWeights-v1: learning")."""

PPO_OVERRIDES: dict[str, str] = {
    "n_steps": _POSITIVE_INT,
    "batch_size": _POSITIVE_INT,
    "n_epochs": _POSITIVE_INT,
    "grad_accum_steps": _POSITIVE_INT,
    "stats_window_size": _POSITIVE_INT,
    "gamma": _UNIT,
    "gae_lambda": _UNIT,
    "clip_range": _NUMBER,
    "clip_range_vf": _OPTIONAL_NUMBER,
    "target_kl": _OPTIONAL_NUMBER,
    "ent_coef": _NUMBER,
    "vf_coef": _NUMBER,
    "max_grad_norm": _NUMBER,
    "cq_coef": _NUMBER,
    "qx_coef": _NUMBER,
    "error_coef": _NUMBER,
    "normalize_advantage": _BOOL,
    "use_sde": _BOOL,
    "sde_sample_freq": _INT,
    "value_loss": "auto|huber|mse",
    "use_amp": "auto|bf16|fp16|off",
}
"""The PPO arguments ``ppo_kwargs`` may set, with the kind of value each takes."""

_DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")
_ENV_ID_RE = re.compile(r"(?:[\w.-]+/)?[\w.:-]+-v\d+")


@dataclass(frozen=True)
class TrainConfig:
    """A PPO training run, validated on construction.

    :func:`sb3_ext.recipe.make_model` builds ``make_vec_env(env_id, n_envs, vectorization, seed)`` and
    ``PPO(policy, env, learning_rate=<schedule>, seed=seed, device=device, policy_kwargs=policy_kwargs,
    **ppo_arguments())``; the caller trains it for ``timesteps`` and evaluates it on ``eval_trainees`` held-out
    trainees.

    Args:
        timesteps: Environment steps to train for (SB3 finishes the rollout in progress, so a few more may run).
        env_id: The Gymnasium id of the env.
        policy: ``"AttnCQQXPolicy"`` or ``"MlpPolicy"``.
        preset: Throughput preset, a name in :data:`sb3_ext.presets.PRESETS`: it gives ``n_envs``, ``n_steps``,
            ``batch_size`` and ``n_epochs``. Its ``batch_size`` is capped at the rollout size.
        n_envs: Parallel environments, overriding the preset's; ``None`` keeps the preset's.
        vectorization: ``"batched"`` (one kernel over every env), ``"device"`` (the same kernel on the model's
            torch device, and PPO's rollout kept there: :class:`~sb3_ext.device_vec_env.DeviceVecEnv`; v0 only),
            ``"dummy"`` or ``"subproc"``.
        seed: Seed of the environments, the policy and the evaluation, from 0 to 2**31 - 1.
        learning_rate: Initial learning rate, finite and positive.
        learning_rate_schedule: ``"cosine"`` (anneals to ``learning_rate / 10``) or ``"constant"``.
        policy_kwargs: Keyword arguments of the policy (``{"embed_dim": 16}``), a JSON object with string keys;
            stored as JSON, so tuples come back as lists.
        ppo_kwargs: Other PPO arguments (:data:`PPO_OVERRIDES`), overriding the preset's sizes.
        device: Torch device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:<n>"`` or ``"mps"``.
        eval_trainees: Held-out trainees of the evaluation after training, at least 2.
    """

    timesteps: int
    env_id: str = "FitnessWeights-v0"
    policy: str = "AttnCQQXPolicy"
    preset: str = "cpu"
    n_envs: int | None = None
    vectorization: Vectorization = "batched"
    seed: int = 0
    learning_rate: float = DEFAULT_LEARNING_RATE
    learning_rate_schedule: str = "cosine"
    policy_kwargs: dict[str, Any] | None = None
    ppo_kwargs: dict[str, Any] | None = None
    device: str = "auto"
    eval_trainees: int = 200

    required: ClassVar[tuple[str, ...]] = ("timesteps",)
    """The fields :meth:`from_dict` needs."""

    def __post_init__(self) -> None:
        check_int("timesteps", self.timesteps, 1, MAX_TIMESTEPS)
        if not isinstance(self.env_id, str) or not _ENV_ID_RE.fullmatch(self.env_id):
            raise FieldError("env_id", "must be a Gymnasium env id such as 'FitnessWeights-v0'", self.env_id)
        _check_choice("policy", self.policy, POLICIES)
        _check_choice("preset", self.preset, sorted(PRESETS))
        if self.n_envs is not None:
            check_int("n_envs", self.n_envs, 1, MAX_N_ENVS)
        _check_choice("vectorization", self.vectorization, VECTORIZATIONS)
        check_int("seed", self.seed, 0, MAX_SEED)
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not (math.isfinite(rate) and rate > 0):
            raise FieldError("learning_rate", "must be a finite number above 0", rate)
        object.__setattr__(self, "learning_rate", float(rate))
        _check_choice("learning_rate_schedule", self.learning_rate_schedule, LEARNING_RATE_SCHEDULES)
        if self.policy_kwargs is not None:
            object.__setattr__(self, "policy_kwargs", _json_object("policy_kwargs", self.policy_kwargs))
        if self.ppo_kwargs is not None:
            ppo_kwargs = _json_object("ppo_kwargs", self.ppo_kwargs)
            for key, value in ppo_kwargs.items():
                _check_override(key, value)
            object.__setattr__(self, "ppo_kwargs", ppo_kwargs)
        if not isinstance(self.device, str) or not _DEVICE_RE.fullmatch(self.device):
            raise FieldError("device", "must be 'auto', 'cpu', 'cuda', 'cuda:<n>' or 'mps'", self.device)
        check_int("eval_trainees", self.eval_trainees, 2, MAX_EVAL_TRAINEES)
        arguments = self.ppo_arguments()
        if arguments["batch_size"] > self.envs() * arguments["n_steps"]:  # only an explicit ppo_kwargs batch_size
            raise FieldError("ppo_kwargs.batch_size", "must not exceed the rollout size n_envs * n_steps")

    def envs(self) -> int:
        """Parallel environments: ``n_envs``, or the preset's when it is ``None``."""
        return get_preset(self.preset).n_envs if self.n_envs is None else self.n_envs

    def n_steps(self) -> int:
        """Steps per env per rollout: the preset's ``n_steps``, unless ``ppo_kwargs`` sets it."""
        return int((self.ppo_kwargs or {}).get("n_steps", get_preset(self.preset).n_steps))

    def rollout_size(self) -> int:
        """Env steps per rollout, ``envs() * n_steps()``."""
        return self.envs() * self.n_steps()

    def ppo_arguments(self) -> dict[str, Any]:
        """PPO's size arguments from the preset, the env's (:data:`ENV_PPO_DEFAULTS`), then ``ppo_kwargs`` (a new dict).

        The preset's ``batch_size`` is capped at the rollout size, so a small ``n_envs`` still has whole
        minibatches.
        """
        preset = get_preset(self.preset)
        arguments = preset.ppo_kwargs()
        arguments["batch_size"] = min(arguments["batch_size"], self.rollout_size())
        arguments.update(ENV_PPO_DEFAULTS.get(self.env_id, {}))
        arguments.update(self.ppo_kwargs or {})
        return arguments

    @property
    def final_learning_rate(self) -> float:
        """The learning rate at the end of training."""
        if self.learning_rate_schedule == "constant":
            return self.learning_rate
        return self.learning_rate * FINAL_LEARNING_RATE_FRACTION

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (a new dict each time)."""
        return json.loads(json.dumps({field.name: getattr(self, field.name) for field in fields(self)}))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The config with the fields of ``data``; the other fields keep their defaults.

        Raises:
            FieldError: ``data`` is not a mapping (field ``config``), has an unknown key or lacks a required one
                (the field is the key), or a field is invalid.
        """
        if not isinstance(data, Mapping):
            raise FieldError("config", f"a training config must be a JSON object, got {type(data).__name__}")
        names = [field.name for field in fields(cls)]
        for key in data:
            if key not in names:
                raise FieldError(str(key), f"unknown key in the training config; known keys: {', '.join(names)}")
        for key in cls.required:
            if key not in data:
                raise FieldError(key, "is required")
        return cls(**data)


def _check_choice(name: str, value: Any, choices: Any) -> None:
    if not isinstance(value, str) or value not in choices:
        raise FieldError(name, f"must be one of {list(choices)}", value)


def _check_override(key: str, value: Any) -> None:
    name = f"ppo_kwargs.{key}"
    kind = PPO_OVERRIDES.get(key)
    if kind is None:
        raise FieldError(name, f"is not a PPO argument a config may set; those are {', '.join(PPO_OVERRIDES)}")
    if kind in (_POSITIVE_INT, _INT):
        check_int(name, value, 1 if kind == _POSITIVE_INT else -(2**31), 2**31 - 1)
    elif kind == _BOOL:
        if not isinstance(value, bool):
            raise FieldError(name, "must be true or false", value)
    elif "|" in kind:
        _check_choice(name, value, kind.split("|"))
    elif value is None and kind == _OPTIONAL_NUMBER:
        return
    else:
        number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not number or value < 0 or (kind == _UNIT and not 0 < value <= 1):
            reason = "must be a number in (0, 1]" if kind == _UNIT else "must be a finite number of at least 0"
            raise FieldError(name, reason + (" or null" if kind == _OPTIONAL_NUMBER else ""), value)


def _json_object(name: str, value: Any) -> dict[str, Any]:
    """``value`` as a JSON object (string keys, JSON values, at most :data:`MAX_KWARGS_CHARS` of JSON)."""
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise FieldError(name, "must be a JSON object with string keys, or null")
    try:
        text = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        raise FieldError(name, "must hold only JSON values (finite numbers, strings, lists, objects)") from None
    if len(text) > MAX_KWARGS_CHARS:
        raise FieldError(name, f"must be at most {MAX_KWARGS_CHARS} characters of JSON")
    return json.loads(text)
