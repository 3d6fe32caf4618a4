"""``FitnessWeightsEnv``: one trainee, two weight matrices adjusted cell by cell."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from fitness_weights_env import dynamics
from fitness_weights_env.episode import (
    Adjustment,
    EpisodeConfig,
    ProfileLike,
    check_max_episode_steps,
)
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import LAYOUT
from fitness_weights_env.profile import TraineeProfile
from fitness_weights_env.render import RENDER_MODES, check_render_mode, render_trainee

__all__ = ["FitnessWeightsEnv", "check_options"]


def check_options(options: dict[str, Any] | None, allowed: set[str]) -> dict[str, Any]:
    """Reject reset options other than ``allowed``."""
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise FieldError("options", f"must be a dict, got {type(options).__name__}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise FieldError("options", f"unknown reset option(s); expected {sorted(allowed)}", unknown)
    return options


class FitnessWeightsEnv(gym.Env[np.ndarray, np.int64]):
    """Optimize one trainee's CQ and QX weight matrices, one cell per step.

    ## Description

    CQ (93 subjects x 5 qualities) says how much each physical quality contributes to each training
    subject; QX (5 qualities x 44 exercises) says how much each exercise develops each quality. Rows
    of both sum to 1. Each step the agent raises one cell, the row is renormalized, and the reward
    favours the trainee's target subjects while penalizing drift from the initial matrices.

    ## Action Space

    ``Discrete(685)``, one action per matrix cell:

    | Action          | Cell                                   |
    |-----------------|----------------------------------------|
    | ``0 .. 464``    | CQ ``(a // 5, a % 5)``: subject, quality  |
    | ``465 .. 684``  | QX ``((a - 465) // 44, (a - 465) % 44)``: quality, exercise |

    The cell changes by ``+step_size`` (``adjustment="increase"``) or by a uniform draw in
    ``[-step_size, step_size]`` (``adjustment="random"``, the original design), is clipped to [0, 1],
    and its row is divided by its sum. Anything but an integer in [0, 685) raises
    :class:`~fitness_weights_env.dynamics.InvalidActionError`.

    ## Observation Space

    ``Box(0, 1, (198,), float32)``, laid out by :data:`~fitness_weights_env.layout.LAYOUT`:

    | Slice             | Size | Meaning                                                 |
    |-------------------|------|---------------------------------------------------------|
    | ``age``           | 1    | ``(age - 16) / 49``                                      |
    | ``gender``        | 1    | 0 male, 1 female                                        |
    | ``fitness_level`` | 1    | overall fitness                                         |
    | ``qualities``     | 5    | endurance, flexibility, agility, power, strength        |
    | ``subject_scores``| 93   | measured subject scores (fixed during the episode)      |
    | ``targets``       | 93   | multi-hot target subjects                               |
    | ``metrics``       | 4    | recent_improvement, injury_risk, training_efficiency, consistency |

    The metrics are recomputed from the matrices at reset and after every step (formulas in
    :mod:`fitness_weights_env.dynamics`), so the policy sees the effect of its actions; the metrics
    recorded in the trainee's profile are replaced.

    ## Rewards

    ``mean over target subjects s of CQ[s] . qualities - drift_coef * (||CQ - CQ0||_F + ||QX - QX0||_F)``,
    where CQ0 and QX0 are the episode's initial matrices and ``drift_coef`` defaults to 0.01.

    ## Starting State

    The trainee is ``options["profile"]`` (a :class:`~fitness_weights_env.profile.TraineeProfile` or
    a dict of its fields) or a draw from the synthetic population. With ``init="uniform"`` CQ rows are
    1/5 except each target row, which is ``u / sum(u)`` for ``u ~ U[0, 1)^5``, and QX rows are 1/44;
    ``init="prior"`` starts from the catalog loadings.

    ## Episode End

    Nothing terminates. ``gym.make("FitnessWeights-v0")`` truncates after 64 steps (the registered
    ``max_episode_steps``); the constructor's ``max_episode_steps`` truncates without the wrapper.

    ## Info

    | Key                  | Value                                                            |
    |----------------------|------------------------------------------------------------------|
    | ``cq_matrix``        | (93, 5) float32 current CQ                                       |
    | ``qx_matrix``        | (5, 44) float32 current QX                                       |
    | ``target_scores``    | (93,) float32: ``CQ[s] . qualities`` for target subjects, 0 elsewhere |
    | ``mean_target_score``| float, mean of the target scores                                 |
    | ``drift``            | float, ``||CQ - CQ0||_F + ||QX - QX0||_F``                         |

    ## Arguments

    ```python
    gym.make("FitnessWeights-v0", step_size=0.05, adjustment="increase", init="uniform", drift_coef=0.01)
    ```

    | Argument            | Default        | Meaning                                           |
    |---------------------|----------------|---------------------------------------------------|
    | ``render_mode``     | ``None``       | ``"ansi"``: text summary; ``"rgb_array"``: heatmap |
    | ``max_episode_steps``| ``None``      | truncate after this many steps (``gym.make``: 64) |
    | ``step_size``       | ``0.05``       | size of one adjustment                            |
    | ``adjustment``      | ``"increase"`` | ``"increase"`` or ``"random"``                    |
    | ``init``            | ``"uniform"``  | ``"uniform"`` or ``"prior"``                      |
    | ``drift_coef``      | ``0.01``       | drift penalty coefficient                         |
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        max_episode_steps: int | None = None,
        step_size: float = 0.05,
        adjustment: Adjustment = "increase",
        init: dynamics.Init = "uniform",
        drift_coef: float = 0.01,
    ) -> None:
        self.render_mode = check_render_mode(render_mode)
        self.max_episode_steps = check_max_episode_steps(max_episode_steps)
        self.config = EpisodeConfig(step_size=step_size, adjustment=adjustment, init=init, drift_coef=drift_coef)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(LAYOUT.size,), dtype=np.float32)
        self.action_space = spaces.Discrete(dynamics.N_ACTIONS)
        self.state = dynamics.WeightState.zeros(1, self.config.step_size)
        self._elapsed_steps: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode with ``options["profile"]`` or a trainee drawn from the population.

        Raises:
            FieldError: The given profile is invalid (the error names the field).
        """
        super().reset(seed=seed)
        profile: ProfileLike | None = check_options(options, {"profile"}).get("profile")
        self._reset_kernel(profile)
        self._elapsed_steps = 0
        return self.state.observation[0].copy(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Adjust one cell; see the class docstring for the action, reward and info."""
        if self._elapsed_steps is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = dynamics.check_actions(action, ())
        reward = self._step_kernel(actions)
        self._elapsed_steps += 1
        truncated = self.max_episode_steps is not None and self._elapsed_steps >= self.max_episode_steps
        return self.state.observation[0].copy(), float(reward[0]), self._terminated(), truncated, self._info()

    # --- the kernel at N=1: v0's here, v1's in FitnessWeightsV1Env ----------------------------------------------------

    def _reset_kernel(self, profile: ProfileLike | None) -> None:
        dynamics.reset(self.state, slice(None), *self.config.draw_starts([self.np_random], [profile]))

    def _step_kernel(self, actions: np.ndarray) -> np.ndarray:
        return dynamics.step(self.state, actions, self.config.draw_deltas([self.np_random]), self.config.drift_coef)

    def _info(self) -> dict[str, Any]:
        return dynamics.step_info(self.state, 0)

    def _terminated(self) -> bool:
        return False  # v0 has no terminal state

    @property
    def profile(self) -> TraineeProfile:
        """The current trainee, with the live metrics as its performance metrics."""
        if self._elapsed_steps is None:
            raise gym.error.ResetNeeded("call reset() first")
        return TraineeProfile.from_vector(self.state.observation[0, : LAYOUT.size])

    def render(self) -> str | np.ndarray | None:
        """The text summary (``render_mode="ansi"``) or the heatmap image (``"rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self._elapsed_steps is None:
            raise gym.error.ResetNeeded("call reset() before render()")
        return render_trainee(self.render_mode, self.state, 0, self._elapsed_steps)
