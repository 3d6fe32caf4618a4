"""Reference policies of ``FitnessWeights-v1``: the coach, the oracle and the plan for the average trainee.

They set the scale of v1's normalized score::

    score = (R - R_coach) / (R_oracle - R_coach)    # 0 = the coach's plan, 1 = the oracle's

* :class:`CoachPolicy` keeps the catalog's plan and never personalizes: what a coach does without the tool.
* :class:`OraclePolicy` knows the trainee's hidden parameters: at the start of each episode it finds the best
  allocation for the trainee (:func:`~fitness_weights_env.planner.best_plan`), then steers the matrices to it
  through the env's own actions, the same 685 a learned policy has.
* :class:`PlanPolicy` with ``hidden="average"`` plans for the population's average trainee
  (:func:`~fitness_weights_env.planner.average_trainee`, of the env's own distribution of hidden parameters,
  ``env.config.hidden``): everything the observation shows, nothing hidden. The
  oracle's margin over it is the value of knowing the trainee. ``actions="qx"`` steers with QX cells only, CQ
  held at the prior.

All of them read the env's state, as v0's greedy oracle does; a learned policy sees the observation only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from fitness_weights_env import dynamics
from fitness_weights_env.errors import FieldError, check_int
from fitness_weights_env.planner import SUMMARY_NAMES, average_trainee, best_plan
from fitness_weights_env.training_env import FitnessWeightsV1VectorEnv

__all__ = ["CoachPolicy", "OraclePolicy", "PlanPolicy"]

N_SUBJECTS, N_QUALITIES = dynamics.N_SUBJECTS, dynamics.N_QUALITIES
_ALL_ACTIONS = np.arange(dynamics.N_ACTIONS)


def _neutral_actions(env: FitnessWeightsV1VectorEnv) -> np.ndarray:
    """For each trainee, an action that changes no plan: a CQ cell of its first subject that is not a target."""
    targets = env.state.body.target_mask > 0
    subject = np.argmax(~targets, axis=1)  # every trainee has a non-target subject unless all 93 are targets
    return np.where(targets.all(axis=1), 0, subject * N_QUALITIES)


class CoachPolicy:
    """Keep the catalog's plan: every step raises a CQ cell of a subject that is not a target, which no plan reads.

    (The 685 actions have no "leave it"; with ``drift_coef=0``, v1's default, that cell costs nothing.)
    """

    def __call__(self, observation: np.ndarray, env: FitnessWeightsV1VectorEnv) -> np.ndarray:
        """One neutral action per trainee."""
        return _neutral_actions(env)


class PlanPolicy:
    """Plan an allocation for each trainee at the start of its episode, then steer the matrices toward it.

    Each step takes the action whose resulting allocation is nearest the planned one (L1 distance), or a
    neutral action when none comes nearer.

    Args:
        hidden: ``"true"`` plans with the trainee's hidden parameters (the oracle), ``"average"`` with the
            population's (:func:`~fitness_weights_env.planner.average_trainee`, of the env's distribution),
            ``"summary"`` with the trainee's own responsiveness, time constants and gain ratio and the population's
            transfer (what the 8 summary values tell).
        actions: ``"all"`` or ``"qx"`` (QX cells only: CQ stays at its start).
        iterations: Ascent steps of the planner.
        chunk_size: Trainees whose candidate actions are evaluated at once.
    """

    def __init__(
        self,
        hidden: Literal["true", "average", "summary"] = "true",
        actions: Literal["all", "qx"] = "all",
        *,
        iterations: int = 30,
        chunk_size: int = 16,
    ) -> None:
        if hidden not in ("true", "average", "summary"):
            raise FieldError("hidden", "must be 'true', 'average' or 'summary'", hidden)
        if actions not in ("all", "qx"):
            raise FieldError("actions", "must be 'all' or 'qx'", actions)
        self.hidden, self.actions = hidden, actions
        self.iterations = check_int("iterations", iterations, 1, 10_000)
        self.chunk_size = check_int("chunk_size", chunk_size, 1, 100_000)
        self.plans: np.ndarray | None = None

    def __call__(self, observation: np.ndarray, env: FitnessWeightsV1VectorEnv) -> np.ndarray:
        """One action per trainee: toward its plan."""
        state = env.state
        starting = env.elapsed_steps == 0
        if self.plans is None or self.plans.shape[0] != env.num_envs:
            self.plans, starting = np.zeros_like(state.allocation), np.ones(env.num_envs, dtype=bool)
        if starting.any():
            index = np.flatnonzero(starting)
            body = state.body.take(index)
            if self.hidden != "true":
                known = SUMMARY_NAMES if self.hidden == "summary" else ()
                body = average_trainee(body, env.config.hidden_distribution, known=known)
            weeks = env.config.weeks or -(-int(env.max_episode_steps or 64) // env.config.steps_per_week)
            self.plans[index], _ = best_plan(body, state.allocation[index], weeks, iterations=self.iterations)
        return self._steer(env)

    def _steer(self, env: FitnessWeightsV1VectorEnv) -> np.ndarray:
        state, config = env.state, env.config
        assert self.plans is not None
        chosen = _neutral_actions(env)
        candidates = _ALL_ACTIONS if self.actions == "all" else _ALL_ACTIONS[dynamics.N_CQ_ACTIONS :]
        for first in range(0, env.num_envs, self.chunk_size):
            chunk = slice(first, min(first + self.chunk_size, env.num_envs))
            weights = state.weights.subset(chunk)
            n = weights.weights.shape[0]
            tried = np.broadcast_to(candidates, (n, candidates.shape[0]))
            outcome = dynamics.evaluate(weights, tried, config.step_size, config.drift_coef)
            trainee = np.arange(n)[:, None]
            change = outcome.new_rows - weights.weights[trainee, outcome.rows]
            gap_weight = state.gap_weight[chunk][trainee, outcome.rows]
            emphasis_change = gap_weight[:, :, None] * change[:, :, :N_QUALITIES]
            on_qx = outcome.rows >= N_SUBJECTS
            quality = np.where(on_qx, outcome.rows - N_SUBJECTS, 0)
            emphasis = np.where(on_qx, state.emphasis[chunk][trainee, quality], 0.0)
            allocation = (
                state.allocation[chunk][:, None, :]
                + np.matmul(emphasis_change, weights.qx)
                + emphasis[:, :, None] * change[:, :, : dynamics.N_EXERCISES]
            )
            plan = self.plans[chunk][:, None, :]
            distance = np.abs(allocation - plan).sum(axis=2)
            now = np.abs(state.allocation[chunk] - self.plans[chunk]).sum(axis=1)
            best = np.argmin(distance, axis=1)
            nearer = distance[np.arange(n), best] < now - 1e-12
            chosen[chunk] = np.where(nearer, candidates[best], chosen[chunk])
        return chosen


class OraclePolicy(PlanPolicy):
    """The score's 1: :class:`PlanPolicy` with the trainee's true hidden parameters and every action."""

    def __init__(self, *, iterations: int = 30, chunk_size: int = 16) -> None:
        super().__init__("true", "all", iterations=iterations, chunk_size=chunk_size)
