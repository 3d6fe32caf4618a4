"""``FitnessWeights-v1``: the matrices become a training plan that a simulated trainee follows week by week."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from fitness_weights_env import body as trainees
from fitness_weights_env import dynamics, training_dynamics
from fitness_weights_env.env import FitnessWeightsEnv
from fitness_weights_env.episode import Adjustment, EpisodeConfig, ProfileLike
from fitness_weights_env.errors import FieldError, check_int
from fitness_weights_env.hidden import HiddenDistribution, HiddenParameters, hidden_distribution, sample_hidden
from fitness_weights_env.layout import TRAINING_LAYOUT
from fitness_weights_env.training_dynamics import TrainingState, WeekDraws
from fitness_weights_env.vector_env import FitnessWeightsVectorEnv, InfoMatrices

__all__ = [
    "V1_MAX_EPISODE_STEPS",
    "V1_STEPS_PER_WEEK",
    "V1_WEEKS",
    "FitnessWeightsV1Env",
    "FitnessWeightsV1VectorEnv",
    "TrainingConfig",
]

V1_STEPS_PER_WEEK = 4
"""Actions per simulated week: a coach adjusts a plan a few times a week, and 4 fits v0's 64-step budget."""
V1_WEEKS = 16
"""Weeks of the default episode: the length of a training block, and of the studies the model is calibrated on."""
V1_MAX_EPISODE_STEPS = V1_STEPS_PER_WEEK * V1_WEEKS
"""64 steps, as v0's episodes: the service's optimize and PPO's rollouts keep their sizes."""
DRAW_WEEKS = V1_WEEKS
"""Weeks of random numbers a trainee draws at once (at reset, then every ``DRAW_WEEKS`` weeks)."""


@dataclass(frozen=True)
class TrainingConfig(EpisodeConfig):
    """How v1 episodes run: v0's settings with v1's defaults, and the training simulation's; validated on construction.

    Args:
        step_size: Size of one adjustment (> 0).
        adjustment: ``"increase"`` or ``"random"``, as in v0.
        init: Initial matrices; ``"prior"`` (the catalog's: the coach's plan) by default.
        drift_coef: Coefficient of v0's drift penalty, paid at the steps that close a week (default 0).
        steps_per_week: Actions per simulated week (at least 1).
        weeks: The block's length: the episode terminates when the trainee has trained this many weeks (``None``:
            never; then only ``max_episode_steps`` ends it).
        injuries: Draw injuries (training stops for ``INJURY_WEEKS`` weeks) instead of paying their expected cost.
        habitual_volume: The habit's weekly volume before the programme, a share of the budget, in [0, 1]; 1 makes
            the coach's plan keep the trainee where they are (see :mod:`fitness_weights_env.body`).
        reward_shaping: Add potential-based shaping to every step's reward (for training; the evaluation and the
            score use the reward without it): see :func:`fitness_weights_env.training_dynamics.step`.
        hidden: The distribution of the trainees' hidden parameters: a name in
            :data:`~fitness_weights_env.hidden.HIDDEN_DISTRIBUTIONS` (``"default"``, v1's; ``"wide"``, trainees who
            want different plans) or a :class:`~fitness_weights_env.hidden.HiddenDistribution`.
    """

    @property
    def block_steps(self) -> int:
        """Steps of the training block, ``progress``'s denominator: ``steps_per_week * weeks`` (16 weeks for None)."""
        return self.steps_per_week * (V1_WEEKS if self.weeks is None else self.weeks)

    @property
    def shaping_weeks(self) -> int | None:
        """The block length the kernel shapes with, or ``None`` without shaping."""
        return self.weeks if self.reward_shaping else None

    init: dynamics.Init = "prior"
    drift_coef: float = 0.0
    steps_per_week: int = V1_STEPS_PER_WEEK
    weeks: int | None = V1_WEEKS
    injuries: bool = False
    habitual_volume: float = trainees.HABITUAL_VOLUME
    reward_shaping: bool = False
    hidden: str | HiddenDistribution = "default"

    @property
    def hidden_distribution(self) -> HiddenDistribution:
        """The distribution that ``hidden`` names (the trainees' draw, and what a planner without them assumes)."""
        return hidden_distribution(self.hidden)

    def __post_init__(self) -> None:
        super().__post_init__()
        hidden_distribution(self.hidden)  # a FieldError naming "hidden" for anything else
        check_int("steps_per_week", self.steps_per_week, 1, 10_000)
        if self.weeks is not None:
            check_int("weeks", self.weeks, 1, 10_000)
        if not isinstance(self.injuries, bool):
            raise FieldError("injuries", "must be True or False", self.injuries)
        if not isinstance(self.reward_shaping, bool):
            raise FieldError("reward_shaping", "must be True or False", self.reward_shaping)
        if self.reward_shaping and self.weeks is None:
            raise FieldError("reward_shaping", "needs a block length: weeks must not be None")
        volume = self.habitual_volume
        if isinstance(volume, bool) or not isinstance(volume, (int, float)) or not 0.0 <= volume <= 1.0:
            raise FieldError("habitual_volume", "must be a number in [0, 1]", volume)

    def draw_hidden(self, rngs: Sequence[np.random.Generator]) -> HiddenParameters:
        """The hidden parameters of new trainees, after their starts (two calls per generator)."""
        return sample_hidden(rngs, self.hidden_distribution)

    def draw_weeks(self, rngs: Sequence[np.random.Generator]) -> WeekDraws:
        """The random numbers of the next ``DRAW_WEEKS`` weeks of each generator's trainee, one call each.

        Measurement noise ``(k, DRAW_WEEKS, 5)``, then (``injuries=True``) the injury uniforms ``(k, DRAW_WEEKS)``.
        Drawn at reset and again every ``DRAW_WEEKS`` weeks, in blocks, so that a week's step makes no call.
        """
        noise = np.empty((len(rngs), DRAW_WEEKS, trainees.N_QUALITIES))
        injury = np.empty((len(rngs), DRAW_WEEKS)) if self.injuries else None
        for i, rng in enumerate(rngs):  # each generator writes its trainee's rows
            rng.standard_normal(out=noise[i])
            if injury is not None:
                rng.random(out=injury[i])
        return WeekDraws(noise, injury)


class _WeekDrawBlocks:
    """Each trainee's block of week draws (``TrainingConfig.draw_weeks``), refilled every ``DRAW_WEEKS`` weeks."""

    def __init__(self, n: int, injuries: bool) -> None:
        self.noise = np.zeros((n, DRAW_WEEKS, trainees.N_QUALITIES))
        self.injury = np.zeros((n, DRAW_WEEKS)) if injuries else None

    def fill(self, index: np.ndarray | slice, draws: WeekDraws) -> None:
        self.noise[index] = draws.noise
        if self.injury is not None and draws.injury is not None:
            self.injury[index] = draws.injury

    def week(
        self, config: TrainingConfig, rngs: Sequence[np.random.Generator], index: np.ndarray, weeks: np.ndarray
    ) -> WeekDraws:
        """The draws of week ``weeks[j]`` of trainee ``index[j]``; blocks run out are drawn anew first."""
        if not index.size:
            return WeekDraws(self.noise[:0, 0], None if self.injury is None else self.injury[:0, 0])
        column = weeks % DRAW_WEEKS
        spent = np.flatnonzero((column == 0) & (weeks > 0))
        if spent.size:
            self.fill(index[spent], config.draw_weeks([rngs[i] for i in index[spent]]))
        injury = None if self.injury is None else self.injury[index, column]
        return WeekDraws(self.noise[index, column], injury)


_SPEC = """
    ## Description

    The same 685 actions as ``FitnessWeights-v0``, v0's 198-dim trainee vector and the block's ``progress`` as the
    observation, and a different meaning. The matrices are
    the trainee's training plan (:mod:`fitness_weights_env.training_dynamics`): the target subjects' CQ rows,
    weighted by the room each has left, give the quality emphasis, QX turns it into an allocation over the 44
    exercises, and the trainee's weekly budget into loads. Every ``steps_per_week`` actions the trainee trains one
    week by the current plan and responds through a fitness-fatigue model (Banister 1975, with Busso 2003's
    load-dependent fatigue) with hidden parameters of their own: responsiveness per quality, time constants, the
    fatigue/fitness gain ratio and their true exercise-to-quality transfer (:mod:`fitness_weights_env.hidden`).
    Subject scores follow the true qualities through the catalog's loadings, never through the agent's CQ.

    ## Action Space

    ``Discrete(685)``, as v0: ``a < 465`` raises CQ cell ``(a // 5, a % 5)``, otherwise QX cell
    ``((a - 465) // 44, (a - 465) % 44)``; the row is renormalized.

    ## Observation Space

    ``Box(0, 1, (199,), float32)``, laid out by :data:`~fitness_weights_env.layout.TRAINING_LAYOUT`: v0's 198
    values (``observation[:198]`` is the trainee vector), with these slices changed, and ``progress``:

    | Slice             | Meaning in v1                                                                   |
    |-------------------|---------------------------------------------------------------------------------|
    | ``qualities``     | measured at the last week's end: the true levels plus N(0, 0.02), clipped         |
    | ``subject_scores``| the current scores, which move as the trainee trains                            |
    | ``metrics``       | recent_improvement (last week's score change), injury_risk (of the current plan), |
    |                   | training_efficiency (share of the possible stimulus on the target qualities),    |
    |                   | consistency (overlap of the current allocation with last week's)                 |
    | ``progress``      | steps taken / ``steps_per_week * weeks`` (16 weeks for ``weeks=None``), at most 1 |

    ``progress`` is the time left in the block, which the best action depends on and nothing else shows (a time
    feature, Pardo et al. 2018).

    ## Rewards

    At the step that closes a week: that week's change of the mean target score, minus the injury cost (expected,
    ``INJURY_COST * p``; with ``injuries=True``, ``INJURY_COST`` when an injury is drawn), minus
    ``drift_coef * drift``. Every other step: 0. An episode's return is the gain of its mean target score less
    its costs, so the matrices' effect on the trainee, not the matrices themselves, is rewarded.

    ## Starting State

    The trainee is ``options["profile"]`` or a draw from the population, with hidden parameters drawn from the
    env's generator; they start at the steady state of their habit (the catalog's plan at ``habitual_volume``
    of the budget). ``init="prior"`` (the default) starts the matrices at the catalog's loadings, the coach's plan.

    ## Episode End

    The episode terminates when the block ends: the trainee has trained ``weeks`` weeks (16: 64 steps of 4 a
    week). The block is part of the task (the reward is its gain, and nothing is left to gain after it), so it is
    a terminal state, not a time limit: a learner does not bootstrap past it. ``weeks=None`` never terminates;
    ``max_episode_steps`` truncates (``gym.make``: 64).

    ## Info

    v0's keys (``cq_matrix``, ``qx_matrix``, ``target_scores`` and ``mean_target_score``, true and current,
    ``drift``), and:

    | Key                   | Value                                                               |
    |-----------------------|---------------------------------------------------------------------|
    | ``week``              | int, weeks trained                                                  |
    | ``weekly_load``       | (44,) float64, the last week's load per exercise                    |
    | ``load_ratios``       | (44,) float64, its acute:chronic ratio per exercise                  |
    | ``injury_probability``| float, that week's injury probability                               |
    | ``true_qualities``    | (5,) float64, the true quality levels now                           |
    | ``hidden``            | dict: ``responsiveness`` (5,), ``tau1``, ``tau2``, ``gain_ratio``, ``transfer`` (44, 5) |

    ``hidden`` is for analysis and oracles: it never enters the observation.

    ## Arguments

    ```python
    gym.make("FitnessWeights-v1", steps_per_week=4, init="prior", drift_coef=0.0, injuries=False)
    ```

    | Argument            | Default        | Meaning                                                    |
    |---------------------|----------------|------------------------------------------------------------|
    | ``steps_per_week``  | ``4``          | actions per simulated week                                 |
    | ``weeks``           | ``16``         | the block's length: the episode terminates after it (``None``: never) |
    | ``init``            | ``"prior"``    | ``"prior"`` (the coach's plan) or ``"uniform"``             |
    | ``drift_coef``      | ``0.0``        | v0's drift penalty, paid weekly                            |
    | ``injuries``        | ``False``      | draw injuries instead of paying their expected cost        |
    | ``habitual_volume`` | ``0.5``        | the habit's volume, a share of the budget                  |
    | ``reward_shaping``  | ``False``      | add potential-based shaping to every step (for training)    |
    | ``hidden``          | ``"default"``  | the hidden parameters' draw, ``"default"`` or ``"wide"``     |
    | ``step_size``, ``adjustment``, ``render_mode``, ``max_episode_steps`` | as v0 |            |
"""


class FitnessWeightsV1Env(FitnessWeightsEnv):
    """A trainee who trains week by week by the plan that their CQ and QX matrices imply (the spec follows)."""

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        max_episode_steps: int | None = None,
        step_size: float = 0.05,
        adjustment: Adjustment = "increase",
        init: dynamics.Init = "prior",
        drift_coef: float = 0.0,
        steps_per_week: int = V1_STEPS_PER_WEEK,
        weeks: int | None = V1_WEEKS,
        injuries: bool = False,
        habitual_volume: float = trainees.HABITUAL_VOLUME,
        reward_shaping: bool = False,
        hidden: str | HiddenDistribution = "default",
    ) -> None:
        super().__init__(render_mode, max_episode_steps=max_episode_steps, step_size=step_size, adjustment=adjustment)
        self.config: TrainingConfig = TrainingConfig(
            step_size=step_size,
            adjustment=adjustment,
            init=init,
            drift_coef=drift_coef,
            steps_per_week=steps_per_week,
            weeks=weeks,
            injuries=injuries,
            habitual_volume=habitual_volume,
            reward_shaping=reward_shaping,
            hidden=hidden,
        )
        self.observation_space = spaces.Box(0.0, 1.0, shape=(TRAINING_LAYOUT.size,), dtype=np.float32)
        self.state: TrainingState = TrainingState.zeros(  # type: ignore[assignment]
            1, self.config.step_size, self.config.block_steps
        )
        self._draws = _WeekDrawBlocks(1, injuries)

    def _reset_kernel(self, profile: ProfileLike | None) -> None:
        rngs = [self.np_random]
        starts = self.config.draw_starts(rngs, [profile])
        hidden = self.config.draw_hidden(rngs)
        self._draws.fill(slice(None), self.config.draw_weeks(rngs))
        training_dynamics.reset(
            self.state, slice(None), *starts, hidden, self.config.habitual_volume, self.config.shaping_weeks
        )

    def _step_kernel(self, actions: np.ndarray) -> np.ndarray:
        rngs = [self.np_random]
        deltas = self.config.draw_deltas(rngs)
        closing = np.array([(cast("int", self._elapsed_steps) + 1) % self.config.steps_per_week == 0])
        index = np.flatnonzero(closing)
        draws = self._draws.week(self.config, rngs, index, self.state.body.week[index])
        return training_dynamics.step(
            self.state, actions, deltas, closing, draws, self.config.drift_coef, self.config.shaping_weeks
        )

    def _info(self) -> dict[str, Any]:
        return training_dynamics.step_info(self.state, 0)

    def _terminated(self) -> bool:
        return self.config.weeks is not None and bool(self.state.body.week[0] >= self.config.weeks)


class FitnessWeightsV1VectorEnv(FitnessWeightsVectorEnv):
    """N ``FitnessWeights-v1`` trainees stepped together by the batched kernel.

    Everything :class:`~fitness_weights_env.vector_env.FitnessWeightsVectorEnv` says (autoreset modes, matrices in
    info, reset options, attributes) holds; the trainees are :class:`FitnessWeightsV1Env`'s. Each trainee closes its
    own weeks, so trainees restarted at different steps stay correct. ``hidden`` comes with the matrices
    (``info_matrices``: at reset and at an episode's end by default), since a trainee keeps it for the episode. Step
    for step it equals ``SyncVectorEnv`` over N ``gym.make("FitnessWeights-v1")`` seeded alike (the spec follows).
    """

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        max_episode_steps: int | None = V1_MAX_EPISODE_STEPS,
        step_size: float = 0.05,
        adjustment: Adjustment = "increase",
        init: dynamics.Init = "prior",
        drift_coef: float = 0.0,
        info_matrices: InfoMatrices = "final",
        steps_per_week: int = V1_STEPS_PER_WEEK,
        weeks: int | None = V1_WEEKS,
        injuries: bool = False,
        habitual_volume: float = trainees.HABITUAL_VOLUME,
        reward_shaping: bool = False,
        hidden: str | HiddenDistribution = "default",
    ) -> None:
        super().__init__(
            num_envs,
            render_mode,
            autoreset_mode=autoreset_mode,
            max_episode_steps=max_episode_steps,
            step_size=step_size,
            adjustment=adjustment,
            info_matrices=info_matrices,
        )
        self.config: TrainingConfig = TrainingConfig(
            step_size=step_size,
            adjustment=adjustment,
            init=init,
            drift_coef=drift_coef,
            steps_per_week=steps_per_week,
            weeks=weeks,
            injuries=injuries,
            habitual_volume=habitual_volume,
            reward_shaping=reward_shaping,
            hidden=hidden,
        )
        self.single_observation_space = spaces.Box(0.0, 1.0, shape=(TRAINING_LAYOUT.size,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.state: TrainingState = TrainingState.zeros(  # type: ignore[assignment]
            self.num_envs, self.config.step_size, self.config.block_steps
        )
        self._draws = _WeekDrawBlocks(self.num_envs, injuries)

    def _reset_kernel(
        self, index: np.ndarray | slice, rngs: list[np.random.Generator], profiles: Sequence[ProfileLike | None]
    ) -> None:
        starts = self.config.draw_starts(rngs, profiles)
        hidden = self.config.draw_hidden(rngs)
        self._draws.fill(index, self.config.draw_weeks(rngs))
        training_dynamics.reset(
            self.state, index, *starts, hidden, self.config.habitual_volume, self.config.shaping_weeks
        )

    def _step_kernel(self, actions: np.ndarray, stepping: np.ndarray | None) -> np.ndarray:
        deltas = self._draw_deltas(stepping)
        closing = (self._elapsed_steps + 1) % self.config.steps_per_week == 0
        if stepping is not None:
            closing &= stepping
        rngs = cast("list[np.random.Generator]", self._rngs)
        index = np.flatnonzero(closing)
        draws = self._draws.week(self.config, rngs, index, self.state.body.week[index])
        return training_dynamics.step(
            self.state, actions, deltas, closing, draws, self.config.drift_coef, self.config.shaping_weeks
        )

    def _kernel_info(self, index: np.ndarray | slice, matrices: bool) -> dict[str, Any]:
        return training_dynamics.step_info(self.state, index, matrices=matrices)

    def _terminated(self) -> np.ndarray:
        if self.config.weeks is None:
            return np.zeros(self.num_envs, dtype=bool)
        return self.state.body.week >= self.config.weeks


# The classes' docstrings end with the spec they share (Gymnasium's tables: actions, observations, rewards, ...).
FitnessWeightsV1Env.__doc__ = (FitnessWeightsV1Env.__doc__ or "") + _SPEC
FitnessWeightsV1VectorEnv.__doc__ = (FitnessWeightsV1VectorEnv.__doc__ or "") + _SPEC.replace(
    'gym.make("FitnessWeights-v1", ', 'gym.make_vec("FitnessWeights-v1", num_envs=256, '
)
