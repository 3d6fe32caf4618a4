"""Population-based training (PBT; Jaderberg et al. 2017): the weak members copy the strong, then perturb.

A population trains at once and, every interval, the weakest members copy the strongest and perturb their
hyperparameters.

The engine (:func:`population_based_training`) works on any :class:`Member`: something that trains for an
interval, scores itself, copies another member's weights and optimizer state, and takes new hyperparameters.
:class:`PPOMember` is an :class:`sb3_ext.PPO` built from a :class:`~sb3_ext.config.TrainConfig`: it trains with
``learn(..., reset_num_timesteps=False)``, scores the normalized score on validation trainees
(:class:`sb3_ext.evaluate.ScoreCallback`), copies with ``get_parameters`` / ``set_parameters`` (the policy and its
optimizer's state), and takes its hyperparameters through :class:`~sb3_ext.live_params.LiveParams`, the path a
live change from the dashboard takes: they are applied at the next rollout boundary.

Every interval (Jaderberg et al.'s truncation selection, and their explore step):

1. every member trains ``interval`` units (rollouts, for a :class:`PPOMember`), then every member is scored
   (members in worker processes, :mod:`sb3_ext.pbt_processes`, train their intervals at once);
2. the bottom ``quantile`` of the members, by score, each copy a member of the top ``quantile`` drawn at random;
3. each copier perturbs each hyperparameter: with probability ``resample_probability`` a fresh draw from its
   distribution, else the copied value times 0.8 or 1.2, clipped to the distribution's bounds.

Each member's history (its hyperparameters, score and whom it copied, at every interval) is kept in the result.
"""

from __future__ import annotations

import copy
import math
import queue
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from fitness_weights_env.errors import FieldError, check_int
from sb3_ext.config import TrainConfig
from sb3_ext.evaluate import ScoreCallback
from sb3_ext.live_params import LiveParams, ParamChange
from sb3_ext.tuning import VALIDATION_SEED

__all__ = ["PBT_SPACE", "Member", "PBTResult", "PPOMember", "perturb", "population_based_training", "sample"]

PBT_SPACE: dict[str, tuple[float, float]] = {
    "learning_rate": (1e-4, 1e-2),
    "ent_coef": (1e-6, 0.05),
    "clip_range": (0.05, 0.5),
}
"""The hyperparameters PPO members perturb, each log-uniform between its bounds: live-changeable ones only."""


class Member(Protocol):
    """What the engine needs of a population member."""

    hyperparams: dict[str, float]

    def train(self, units: int) -> None:
        """Train for ``units`` more units (rollouts, steps)."""

    def score(self) -> float:
        """The member's score now (higher is better)."""

    def copy_from(self, other: Any) -> None:
        """Take ``other``'s weights and optimizer state."""

    def set_hyperparams(self, hyperparams: Mapping[str, float]) -> None:
        """Take these hyperparameters from now on."""


@dataclass
class PBTResult:
    """What a run of :func:`population_based_training` did.

    Attributes:
        history: For each member, one record per interval: ``interval``, ``score``, the hyperparameters it trained
            the interval with, and ``copied_from`` (the member it copied after that interval, or ``None``).
        final_scores: Each member's score at the end.
    """

    history: list[list[dict[str, Any]]] = field(default_factory=list)
    final_scores: list[float] = field(default_factory=list)

    @property
    def best(self) -> int:
        """The member with the best final score."""
        return int(np.argmax(self.final_scores))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"history": self.history, "final_scores": self.final_scores, "best": self.best}


def sample(space: Mapping[str, tuple[float, float]], rng: np.random.Generator) -> dict[str, float]:
    """A draw of every hyperparameter, log-uniform between its bounds."""
    return {name: float(math.exp(rng.uniform(math.log(low), math.log(high)))) for name, (low, high) in space.items()}


def perturb(
    hyperparams: Mapping[str, float],
    space: Mapping[str, tuple[float, float]],
    rng: np.random.Generator,
    resample_probability: float = 0.25,
) -> dict[str, float]:
    """PBT's explore step: each value resampled with ``resample_probability``, else times 0.8 or 1.2, in bounds."""
    fresh = sample(space, rng)
    out = {}
    for name, value in hyperparams.items():
        low, high = space[name]
        if rng.random() < resample_probability:
            out[name] = fresh[name]
        else:
            out[name] = float(min(max(value * (0.8 if rng.random() < 0.5 else 1.2), low), high))
    return out


def population_based_training(
    members: Sequence[Member],
    intervals: int,
    interval: int,
    space: Mapping[str, tuple[float, float]],
    *,
    quantile: float = 0.25,
    resample_probability: float = 0.25,
    seed: int = 0,
    exploit: bool = True,
    on_interval: Callable[[int, PBTResult], None] | None = None,
) -> PBTResult:
    """Train ``members`` for ``intervals`` intervals of ``interval`` units each, with PBT between intervals.

    Args:
        members: The population (at least 2), each with its initial hyperparameters.
        intervals: Intervals to train.
        interval: Units (rollouts, for :class:`PPOMember`) per interval.
        space: Each perturbed hyperparameter's bounds (:data:`PBT_SPACE` for PPO).
        quantile: The share of the population that copies (the bottom) and is copied (the top), in (0, 0.5].
        resample_probability: The explore step's chance of a fresh draw, per hyperparameter.
        seed: Seed of the selection and of the perturbations.
        exploit: ``False`` trains the same population without any copy or perturbation: the members with fixed
            hyperparameters that PBT is measured against.
        on_interval: Called after each interval with its index and the result so far (a progress bar).

    Raises:
        FieldError: A bad argument (named).
    """
    if len(members) < 2:
        raise FieldError("population", "must be at least 2 members", len(members))
    check_int("intervals", intervals, 1)
    check_int("interval", interval, 1)
    if not 0.0 < quantile <= 0.5:
        raise FieldError("quantile", "must be above 0 and at most 0.5", quantile)
    if not 0.0 <= resample_probability <= 1.0:
        raise FieldError("resample_probability", "must be from 0 to 1", resample_probability)
    rng = np.random.default_rng(seed)
    result = PBTResult(history=[[] for _ in members])
    n_swap = max(1, int(len(members) * quantile))
    for index in range(intervals):
        trained_with = [dict(member.hyperparams) for member in members]
        for member in members:  # every member's interval starts before any score is asked: process members
            member.train(interval)  # (sb3_ext.pbt_processes) train at once
        scores = [member.score() for member in members]
        for history, score, values in zip(result.history, scores, trained_with, strict=True):
            history.append({"interval": index, "score": score, **values, "copied_from": None})
        if exploit and index < intervals - 1:
            order = np.argsort(np.where(np.isfinite(scores), scores, -np.inf))  # worst first
            bottom, top = order[:n_swap], order[-n_swap:]
            for loser in bottom:
                winner = int(rng.choice(top))
                members[loser].copy_from(members[winner])
                members[loser].set_hyperparams(perturb(members[winner].hyperparams, space, rng, resample_probability))
                result.history[loser][-1]["copied_from"] = winner
        if on_interval is not None:
            on_interval(index, result)
    result.final_scores = [float(record[-1]["score"]) for record in result.history]
    return result


class PPOMember:
    """A population member: an :class:`sb3_ext.PPO` of ``config``, with ``hyperparams`` from :data:`PBT_SPACE`.

    Args:
        config: The run (its learning rate schedule should be ``"constant"``: PBT sets the rate).
        hyperparams: Its initial hyperparameters (names of :data:`PBT_SPACE`), applied before its first update.
        n_trainees: Validation trainees of its score.
        seed: Seed of the validation trainees.
    """

    def __init__(
        self,
        config: TrainConfig,
        hyperparams: Mapping[str, float],
        n_trainees: int = 20,
        seed: int = VALIDATION_SEED,
    ) -> None:
        from sb3_ext.recipe import make_model

        self.config = config
        self.model = make_model(config)  # seeds the global generators with config.seed
        self._generators = _global_generators()  # this member's own: its run does not depend on the others'
        self.hyperparams: dict[str, float] = {}
        self._changes: queue.Queue[ParamChange] = queue.Queue()
        self._live = LiveParams(self._changes)
        self._score = ScoreCallback(1, n_trainees, seed, config.env_id)
        self._score.init_callback(self.model)
        self.set_hyperparams(hyperparams)

    def train(self, units: int) -> None:
        """Train ``units`` more rollouts."""
        steps = units * self.config.rollout_size()
        others = _global_generators()
        _set_global_generators(self._generators)
        try:
            self.model.learn(steps, callback=self._live, reset_num_timesteps=self.model.num_timesteps == 0)
        finally:
            self._generators = _global_generators()
            _set_global_generators(others)

    def score(self) -> float:
        """The normalized score on the validation trainees."""
        return self._score.evaluate()

    def copy_from(self, other: PPOMember) -> None:
        """Take ``other``'s policy weights and optimizer state."""
        self.load_parameters(other.model.get_parameters())

    def load_parameters(self, parameters: Mapping[str, Any]) -> None:
        """Take these ``get_parameters()`` (``{"policy": ..., "policy.optimizer": ...}``, state dicts) as its own.

        They are copied first: the optimizer's ``load_state_dict`` keeps tensors that need no cast, so the Adam
        moments would otherwise stay the other member's, updated by both (or, sent from another process, memory
        that process shares).
        """
        self.model.set_parameters(copy.deepcopy(dict(parameters)), exact_match=True)

    def set_hyperparams(self, hyperparams: Mapping[str, float]) -> None:
        """Request the hyperparameters: :class:`LiveParams` applies them at the next rollout boundary."""
        for name, value in hyperparams.items():
            self._changes.put(ParamChange(name, float(value)))
        self.hyperparams = dict(hyperparams)


def _global_generators() -> tuple[Any, ...]:
    """The states of the generators SB3 draws from: torch's (actions), numpy's (minibatches) and Python's."""
    import random

    import torch as th

    return th.random.get_rng_state(), np.random.get_state(), random.getstate()


def _set_global_generators(states: tuple[Any, ...]) -> None:
    import random

    import torch as th

    th.random.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])
