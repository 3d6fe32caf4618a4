"""Hyperparameter search with Optuna: RL Zoo's PPO space and ours, scored on held-out trainees, with pruning.

A trial samples a :class:`~sb3_ext.config.TrainConfig` from a base config and a search space
(:func:`sample_config`), trains it with :func:`sb3_ext.recipe.make_model`, and reports the policy's normalized
score on ``n_trainees`` validation trainees every ``eval_rollouts`` rollouts, so that the pruner can stop a bad
trial early (:func:`objective`). Its value is the score at the end of training. The validation trainees are
held-out trainees of :data:`VALIDATION_SEED`, not the evaluation's (seed 0): the final evaluation stays unseen by
the search.

The space (:data:`SEARCH_SPACE`) follows RL Zoo's PPO space (``sample_ppo_params``): ``learning_rate``,
``ent_coef``, ``clip_range``, ``n_epochs``, ``batch_size``, ``gamma``, ``gae_lambda``; and adds the auxiliary
losses' weights ``cq_coef`` and ``qx_coef`` and the attention policy's ``embed_dim`` and ``n_latents`` (which an
``MlpPolicy`` trial does not sample). A YAML or JSON file replaces it (:func:`load_search_space`)::

    learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
    n_epochs: {type: categorical, choices: [1, 5, 10]}

Each trial stores the config it trained as its ``config`` user attribute; :func:`best_config` reads the best one
back. Optuna is imported only by the functions that need it (``pip install 'fitness-weights[tune]'``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fitness_weights_env.errors import FieldError, check_int
from sb3_ext.config import TrainConfig
from sb3_ext.evaluate import ScoreCallback

if TYPE_CHECKING:
    import optuna

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "SEARCH_SPACE",
    "VALIDATION_SEED",
    "best_config",
    "load_search_space",
    "make_pruner",
    "make_sampler",
    "objective",
    "sample_config",
]

VALIDATION_SEED = 1
"""Seed of the trainees a trial is scored on (``held_out_profiles(K, VALIDATION_SEED)``): not the evaluation's 0."""

SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")

# Where each parameter goes in the TrainConfig: the learning rate itself, PPO's arguments, or the policy's.
_TARGETS = {
    "learning_rate": "config",
    "ent_coef": "ppo_kwargs",
    "clip_range": "ppo_kwargs",
    "n_epochs": "ppo_kwargs",
    "batch_size": "ppo_kwargs",
    "gamma": "ppo_kwargs",
    "gae_lambda": "ppo_kwargs",
    "cq_coef": "ppo_kwargs",
    "qx_coef": "ppo_kwargs",
    "embed_dim": "policy_kwargs",
    "n_latents": "policy_kwargs",
}
_ATTENTION_ONLY = ("cq_coef", "qx_coef", "embed_dim", "n_latents")

SEARCH_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "ent_coef": {"type": "float", "low": 1e-8, "high": 0.1, "log": True},
    "clip_range": {"type": "categorical", "choices": [0.1, 0.2, 0.3, 0.4]},
    "n_epochs": {"type": "categorical", "choices": [1, 2, 5, 10]},
    "batch_size": {"type": "categorical", "choices": [64, 128, 256, 512]},
    "gamma": {"type": "categorical", "choices": [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0]},  # 1.0: v1's recipe
    "gae_lambda": {"type": "categorical", "choices": [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0]},
    "cq_coef": {"type": "float", "low": 1.0, "high": 200.0, "log": True},
    "qx_coef": {"type": "float", "low": 1.0, "high": 400.0, "log": True},
    "embed_dim": {"type": "categorical", "choices": [16, 32, 64]},
    "n_latents": {"type": "categorical", "choices": [2, 4, 8]},
}
"""The default space: a parameter name (see the module docstring) -> its distribution."""

_KINDS = {"float": ("low", "high", "log"), "int": ("low", "high", "log"), "categorical": ("choices",)}
MAX_SPACE_BYTES = 1 << 16


def check_space(space: Any) -> dict[str, dict[str, Any]]:
    """``space`` as a search space, checked: known parameters, known kinds, bounds that make sense.

    Raises:
        FieldError: The field named is wrong (``space`` itself, a parameter, or ``<parameter>.<key>``).
    """
    if not isinstance(space, Mapping) or not space:
        raise FieldError("space", "must be a non-empty mapping of parameter names to distributions")
    checked: dict[str, dict[str, Any]] = {}
    for name, spec in space.items():
        if name not in _TARGETS:
            raise FieldError(str(name), f"is not a parameter of the search; known ones: {', '.join(_TARGETS)}")
        if not isinstance(spec, Mapping) or spec.get("type") not in _KINDS:
            raise FieldError(f"{name}.type", f"must be one of {list(_KINDS)}")
        kind = spec["type"]
        unknown = sorted(set(spec) - {"type", *_KINDS[kind]})
        if unknown:
            raise FieldError(f"{name}.{unknown[0]}", f"is not a key of a {kind} distribution")
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices or len(choices) > 100:
                raise FieldError(f"{name}.choices", "must be a list of 1 to 100 values")
            if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and math.isfinite(c) for c in choices):
                raise FieldError(f"{name}.choices", "must be finite numbers")
            checked[name] = {"type": kind, "choices": list(choices)}
            continue
        low, high, log = spec.get("low"), spec.get("high"), spec.get("log", False)
        number = int if kind == "int" else (int, float)
        for key, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
                raise FieldError(f"{name}.{key}", f"must be a finite {'integer' if kind == 'int' else 'number'}")
        assert low is not None and high is not None
        if not low < high:
            raise FieldError(f"{name}.high", "must be above low")
        if not isinstance(log, bool) or (log and low <= 0):
            raise FieldError(f"{name}.log", "must be true or false, and true only with low above 0")
        checked[name] = {"type": kind, "low": low, "high": high, "log": log}
    return checked


def load_search_space(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a search space from a YAML or JSON file (see the module docstring), checked by :func:`check_space`.

    Raises:
        FieldError: ``space`` (the file cannot be read or parsed), or a parameter or key of the space.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_SPACE_BYTES + 1)
    except OSError as err:
        raise FieldError("space", f"cannot read {path.name}: {err.strerror}") from None
    if len(data) > MAX_SPACE_BYTES:
        raise FieldError("space", f"a search-space file holds at most {MAX_SPACE_BYTES} bytes")
    try:
        if path.suffix == ".json":
            space = json.loads(data)
        else:
            import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

            space = yaml.safe_load(data)  # plain data only: safe_load builds no objects
    except Exception as err:  # json's ValueError, yaml.YAMLError
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise FieldError("space", f"{path.name} is not valid {kind}: {err}") from None
    return check_space(space)


def sample_config(trial: optuna.Trial, base: TrainConfig, space: Mapping[str, Mapping[str, Any]]) -> TrainConfig:
    """The config of one trial: ``base`` with every parameter of ``space`` sampled by ``trial``.

    An ``MlpPolicy`` base samples none of the attention policy's parameters (``cq_coef``, ``qx_coef``,
    ``embed_dim``, ``n_latents``).

    Raises:
        FieldError: The sampled values make an invalid config (e.g. a ``batch_size`` above the rollout size).
    """
    ppo_kwargs, policy_kwargs = dict(base.ppo_kwargs or {}), dict(base.policy_kwargs or {})
    learning_rate = base.learning_rate
    for name, spec in space.items():
        if base.policy != "AttnCQQXPolicy" and name in _ATTENTION_ONLY:
            continue
        if spec["type"] == "categorical":
            value = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            value = trial.suggest_int(name, spec["low"], spec["high"], log=spec["log"])
        else:
            value = trial.suggest_float(name, spec["low"], spec["high"], log=spec["log"])
        target = _TARGETS[name]
        if target == "config":
            learning_rate = float(value)
        elif target == "ppo_kwargs":
            ppo_kwargs[name] = value
        else:
            policy_kwargs[name] = value
    return replace(
        base,
        learning_rate=learning_rate,
        ppo_kwargs=ppo_kwargs or None,
        policy_kwargs=policy_kwargs or None,
    )


def make_sampler(name: str, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """``"tpe"``: TPE, multivariate, as RL Zoo uses it; ``"random"``: random search.

    Raises:
        FieldError: ``sampler`` is not one of :data:`SAMPLERS`.
    """
    import optuna

    if name == "tpe":
        with warnings.catch_warnings():  # multivariate TPE is "experimental" in Optuna; RL Zoo's choice all the same
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(n_startup_trials=5, multivariate=True, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise FieldError("sampler", f"must be one of {list(SAMPLERS)}", name)


def make_pruner(name: str, n_startup_trials: int = 2, warmup_steps: int = 0) -> optuna.pruners.BasePruner:
    """The pruner ``name``: ``"median"``, ``"halving"`` (successive halving) or ``"none"``.

    The median pruner stops a trial whose report is below the median of earlier trials' at the same step, once
    ``n_startup_trials`` trials have finished and from ``warmup_steps`` timesteps on (RL Zoo warms up for a third
    of a trial: a curve that stays flat before it climbs is not judged on its flat part). Successive halving's first
    rung is at ``warmup_steps`` (at least Optuna's ``"auto"`` when 0).

    Raises:
        FieldError: ``pruner`` is not one of :data:`PRUNERS`, or ``warmup_steps`` is negative.
    """
    import optuna

    check_int("pruner_warmup", warmup_steps, 0)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=warmup_steps)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup_steps or "auto")
    if name == "none":
        return optuna.pruners.NopPruner()
    raise FieldError("pruner", f"must be one of {list(PRUNERS)}", name)


def objective(
    base: TrainConfig,
    space: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    n_trainees: int = 20,
    eval_rollouts: int = 2,
    progress: Callable[[optuna.Trial, Any], None] | None = None,
) -> Callable[[optuna.Trial], float]:
    """The objective of a study: train a sampled config, report its score every ``eval_rollouts`` rollouts.

    Args:
        base: The config trials start from (its ``timesteps`` is each trial's budget).
        space: The search space (:data:`SEARCH_SPACE` when ``None``), checked by :func:`check_space`.
        n_trainees: Validation trainees the score is measured on (K).
        eval_rollouts: Rollouts between two reports to the pruner (E).
        progress: Called with the trial and its model before training (a caller's hook: a logger, a callback).

    The returned function raises ``optuna.TrialPruned`` when the pruner stops the trial.
    """
    checked = check_space(SEARCH_SPACE if space is None else space)
    check_int("n_trainees", n_trainees, 2)
    check_int("eval_rollouts", eval_rollouts, 1)

    def run(trial: optuna.Trial) -> float:
        import optuna

        from sb3_ext.recipe import make_model

        config = sample_config(trial, base, checked)
        trial.set_user_attr("config", config.to_dict())
        model = make_model(config)
        if progress is not None:
            progress(trial, model)
        reporter = _TrialReports(trial, eval_rollouts, n_trainees, config.env_id)
        model.learn(config.timesteps, callback=reporter)
        if reporter.pruned:
            raise optuna.TrialPruned(f"pruned at {reporter.num_timesteps} timesteps")
        return reporter.final_score()

    return run


class _TrialReports(ScoreCallback):
    """:class:`~sb3_ext.evaluate.ScoreCallback` that reports each score to the trial and stops when pruned."""

    def __init__(self, trial: optuna.Trial, eval_rollouts: int, n_trainees: int, env_id: str) -> None:
        super().__init__(eval_rollouts, n_trainees, VALIDATION_SEED, env_id)
        self.trial = trial
        self.pruned = False
        self.reported_at: int | None = None

    def evaluate(self) -> float:
        score = super().evaluate()
        if math.isfinite(score):
            self.trial.report(score, self.num_timesteps)
            self.reported_at = self.num_timesteps
            self.pruned = self.trial.should_prune()
        return score

    def final_score(self) -> float:
        """The score at the end of training: the last report if it was made there, else a new evaluation."""
        if self.reported_at == self.num_timesteps and self.last_score is not None:
            return self.last_score
        return self.evaluate()

    def _on_step(self) -> bool:
        return not self.pruned  # False stops the rollout, and learn with it


def best_config(study: optuna.Study) -> TrainConfig:
    """The config of the study's best trial (its ``config`` user attribute).

    Raises:
        FieldError: ``study`` has no completed trial.
    """
    complete = [t for t in study.trials if t.state.name == "COMPLETE" and "config" in t.user_attrs]
    if not complete:
        raise FieldError("study", "has no completed trial yet")
    return TrainConfig.from_dict(study.best_trial.user_attrs["config"])
