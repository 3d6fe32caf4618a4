"""The ``FitnessWeights-v1`` kernel: N trainees whose matrices are a training plan they follow week by week.

Every function works on a batch (leading axis N), as the v0 kernel (:mod:`fitness_weights_env.dynamics`) does,
and reuses it for the matrices: an action adjusts one cell and renormalizes its row exactly as in v0
(:func:`~fitness_weights_env.dynamics.move_rows`). What v1 adds:

* **The plan.** After every action the matrices imply a plan (:func:`~fitness_weights_env.response.training_plan`):
  the target subjects' CQ rows, weighted by their remaining gaps, give the quality emphasis; QX turns it into an
  allocation over the 44 exercises; the trainee's weekly budget into loads.
* **The week.** Every ``steps_per_week`` steps of a trainee, that trainee trains one week under the current plan
  (:func:`~fitness_weights_env.body.train_week`): its true qualities, subject scores, load history and injury
  risk move.
* **The reward** of the step that closes a week is that week's change of the mean (true) target score, minus the
  injury cost (its expected value ``INJURY_COST p``, or with ``injuries=True`` ``INJURY_COST`` when an injury is
  drawn), minus ``drift_coef * drift`` (v0's penalty, 0 by default). The other steps' reward is 0. An episode's
  return is the gain of its mean target score less what its injuries and drift cost.
* **The observation** is v0's trainee vector and ``progress``
  (:data:`~fitness_weights_env.layout.TRAINING_LAYOUT`): the steps taken in the block over the block's steps, at
  most 1. ``qualities``: the levels measured at the last week's end (true plus noise); ``subject_scores``: the
  true current scores; ``metrics``, each in [0, 1]:

  ======================  =================================================================================
  metric                  meaning
  ======================  =================================================================================
  ``recent_improvement``  ``clip(0.5 + dT / (2 IMPROVEMENT_SCALE), 0, 1)``, ``dT`` the last week's change of
                          the mean target score (0.5: no change)
  ``injury_risk``         the chance of an injury over ``RISK_WEEKS`` (16) weeks at the current plan's weekly
                          injury probability, ``1 - (1 - p)^16``
  ``training_efficiency`` the share of the possible stimulus that the current plan brings to the target
                          qualities: ``sum_q c_q d_q / sum_q c_q``, ``c`` the targets' mean CQ_prior row and ``d``
                          the diminished stimulus through the trainee's own transfer
  ``consistency``         ``1 - |x - x_last| / 2``: how much of the current allocation ``x`` the last week
                          already trained (1: the same plan)
  ======================  =================================================================================

  The last three follow every action that moves the plan (an action that leaves it leaves them), so the policy
  sees what each action does to the plan; ``progress`` moves every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fitness_weights_env import body as trainees
from fitness_weights_env import dynamics
from fitness_weights_env.body import Body, WeekResult
from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.hidden import HiddenParameters
from fitness_weights_env.layout import LAYOUT, METRIC_NAMES, TRAINING_LAYOUT
from fitness_weights_env.planner import plan_return
from fitness_weights_env.response import HALF_SATURATION, gap_weights, weighted_plan

__all__ = [
    "IMPROVEMENT_SCALE",
    "RISK_WEEKS",
    "TrainingState",
    "WeekDraws",
    "planned_loads",
    "reset",
    "step",
    "step_info",
]

IMPROVEMENT_SCALE = 0.02
"""A week's change of the mean target score that moves ``recent_improvement`` from 0.5 to 1 (a good week's)."""
RISK_WEEKS = 16
"""The horizon of the ``injury_risk`` metric, weeks (the default episode)."""

N_QUALITIES, N_EXERCISES = CATALOG.n_qualities, CATALOG.n_exercises
_RECENT_IMPROVEMENT, _INJURY_RISK, _TRAINING_EFFICIENCY, _CONSISTENCY = (
    METRIC_NAMES.index(name) for name in ("recent_improvement", "injury_risk", "training_efficiency", "consistency")
)
_IMPROVEMENT_COLUMN = LAYOUT.metrics.start + _RECENT_IMPROVEMENT
_PROGRESS_COLUMN = TRAINING_LAYOUT.fields["progress"].start
_PLAN_METRICS = slice(LAYOUT.metrics.start + _INJURY_RISK, LAYOUT.metrics.stop)  # the plan's 3, written as one block
if tuple(range(len(METRIC_NAMES))) != (_RECENT_IMPROVEMENT, _INJURY_RISK, _TRAINING_EFFICIENCY, _CONSISTENCY):
    raise RuntimeError("the kernel writes recent_improvement, then the plan's 3 metrics in METRIC_NAMES order")


@dataclass
class TrainingState:
    """The state of N v1 trainees: their matrices (``weights``, v0's state) and their bodies.

    Attributes:
        weights: The matrices, their drift and the observation (v0's :class:`~fitness_weights_env.dynamics.WeightState`,
            kept by :func:`~fitness_weights_env.dynamics.move_rows`; v0's scores and metrics in it are not used).
        body: The simulated trainees.
        loads: (N, 44) the loads of each trainee's last week (the habit's at the start).
        ratios: (N, 44) the acute:chronic load ratios of that week.
        injury_probability: (N,) that week's injury probability.
        score_change: (N,) that week's change of the mean target score.
        gap_weight: (N, 99) each target subject's share of the emphasis (its gap over the targets' total), 0 on
            the other rows of ``weights``, and a spare last column; set when a week closes, as the gaps move with
            the scores.
        target_cq: (N, 93, 5) the CQ rows of each trainee's targets, in ``body.target_rows`` order (the rest 0): the
            plan's copy, kept with the matrices.
        target_slot: (N, 99) each target row's slot in ``target_cq`` (0 on the other rows), columns as ``gap_weight``.
        plan_qx: (N, 5, 44) the QX matrices: the plan's contiguous copy, kept with the matrices.
        emphasis: (N, 5) the current plan's quality emphasis.
        allocation: (N, 44) the current plan's allocation over the exercises.
        potential: (N,) the shaping potential: what the current plan, held to the block's end, would still gain
            (0 without shaping).
        target_scores: (N, 93) float32, the true score of each target subject, 0 elsewhere (the info's), set
            with the scores.
        steps: (N,) steps taken in the episode.
        block_steps: Steps of the training block, the denominator of ``progress``.
    """

    weights: dynamics.WeightState
    body: Body
    loads: np.ndarray
    ratios: np.ndarray
    injury_probability: np.ndarray
    score_change: np.ndarray
    gap_weight: np.ndarray
    target_cq: np.ndarray
    target_slot: np.ndarray
    plan_qx: np.ndarray
    emphasis: np.ndarray
    allocation: np.ndarray
    potential: np.ndarray
    target_scores: np.ndarray
    steps: np.ndarray
    block_steps: int

    @classmethod
    def zeros(cls, n: int, step_size: float, block_steps: int) -> TrainingState:
        """An empty state for ``n`` trainees in blocks of ``block_steps`` steps; fill it with :func:`reset`."""
        return cls(
            weights=dynamics.WeightState.zeros(n, step_size, TRAINING_LAYOUT.size),
            body=Body.zeros(n),
            loads=np.zeros((n, N_EXERCISES)),
            ratios=np.ones((n, N_EXERCISES)),
            injury_probability=np.zeros(n),
            score_change=np.zeros(n),
            gap_weight=np.zeros((n, dynamics.N_ROWS + 1)),
            target_cq=np.zeros((n, dynamics.N_SUBJECTS, N_QUALITIES)),
            target_slot=np.zeros((n, dynamics.N_ROWS + 1), dtype=np.int64),
            plan_qx=np.zeros((n, N_QUALITIES, N_EXERCISES)),
            emphasis=np.zeros((n, N_QUALITIES)),
            allocation=np.zeros((n, N_EXERCISES)),
            potential=np.zeros(n),
            target_scores=np.zeros((n, dynamics.N_SUBJECTS), dtype=np.float32),
            steps=np.zeros(n, dtype=np.int64),
            block_steps=block_steps,
        )

    # The names the renderer and the envs read, as on v0's state.
    @property
    def observation(self) -> np.ndarray:
        """(N, 199) float32 observations (:data:`~fitness_weights_env.layout.TRAINING_LAYOUT`)."""
        return self.weights.observation

    @property
    def cq(self) -> np.ndarray:
        """(N, 93, 5) view of the current CQ matrices."""
        return self.weights.cq

    @property
    def qx(self) -> np.ndarray:
        """(N, 5, 44) view of the current QX matrices."""
        return self.weights.qx

    @property
    def target_score(self) -> np.ndarray:
        """(N,) the true mean target score."""
        return self.body.target_score

    @property
    def drift(self) -> np.ndarray:
        """(N,) ``||CQ - CQ0||_F + ||QX - QX0||_F``."""
        return self.weights.drift


@dataclass
class WeekDraws:
    """The random numbers of one week of the trainees that close a week (leading axis: those trainees).

    Attributes:
        noise: (k, 5) standard normals of the qualities' measurement.
        injury: (k,) uniforms in [0, 1) to draw injuries with, or ``None`` (``injuries=False``).
    """

    noise: np.ndarray
    injury: np.ndarray | None


def planned_loads(state: TrainingState) -> np.ndarray:
    """The weekly loads (N, 44) that every trainee's current matrices imply."""
    return state.body.budget[:, None] * np.clip(state.allocation, 0.0, np.inf)  # max(x, 0): clip is the faster ufunc


def _replan(state: TrainingState, index: Any) -> None:
    """Compute the plan of the trainees at ``index`` (an index array or a slice) from their matrices and scores."""
    body = state.body
    trainee = np.arange(body.budget.shape[0])[index]
    rows, valid = _target_slots(body, index)
    share = gap_weights(body.scores.reshape(-1).take(trainee[:, None] * dynamics.N_SUBJECTS + rows), valid)
    emphasis, allocation = weighted_plan(state.target_cq[index, : rows.shape[1]], state.plan_qx[index], None, share)
    # each target's share on its row; the padding (share 0) on the spare last column
    columns = state.gap_weight.shape[1]
    state.gap_weight.put(trainee[:, None] * columns + np.where(valid, rows, columns - 1), share)
    state.emphasis[index] = emphasis
    state.allocation[index] = allocation


def _target_slots(body: Body, index: Any) -> tuple[np.ndarray, np.ndarray]:
    """The target rows ``(k, K)`` of the trainees at ``index`` (``K`` their most targets) and which slots hold one."""
    count = body.target_count[index]
    k = max(int(count.max(initial=1)), 1)
    return body.target_rows[index, :k], np.arange(k) < count[:, None]


def _follow(state: TrainingState, rows: np.ndarray, old_rows: np.ndarray, new_rows: np.ndarray) -> np.ndarray:
    """Update every trainee's plan after one action changed row ``rows`` of its ``weights`` from old to new.

    The plan is linear in each row: a target's CQ row moves the emphasis by its gap weight times the change, which
    QX carries to the allocation; a QX row moves the allocation by its quality's emphasis times the change. Other
    CQ rows change nothing. Between weeks this is exact up to rounding; each week's replan starts it afresh.
    Returns (N,) bool: the trainees whose plan changed.
    """
    trainee = np.arange(rows.shape[0])
    flat = trainee * state.gap_weight.shape[1] + rows  # each trainee's adjusted row, by its flat index
    gap_weight = state.gap_weight.reshape(-1).take(flat)
    targeted = gap_weight != 0.0  # target CQ rows: the gap weight is 0 on the other rows, QX's too
    adjusted_qx = rows >= dynamics.N_SUBJECTS
    on_target = targeted.nonzero()[0]
    if on_target.size:
        new_cq = new_rows.take(on_target, axis=0)[:, :N_QUALITIES]
        emphasis_change = new_cq - old_rows.take(on_target, axis=0)[:, :N_QUALITIES]
        emphasis_change *= gap_weight.take(on_target)[:, None]
        moved_qx = state.plan_qx.take(on_target, axis=0)
        state.allocation[on_target] += np.matmul(emphasis_change[:, None, :], moved_qx)[:, 0, :]
        state.emphasis[on_target] += emphasis_change
        slot = state.target_slot.reshape(-1).take(flat[on_target])
        state.target_cq.reshape(-1, N_QUALITIES, copy=False)[on_target * dynamics.N_SUBJECTS + slot] = new_cq
    on_qx = adjusted_qx.nonzero()[0]
    if on_qx.size:
        quality = rows.take(on_qx) - dynamics.N_SUBJECTS
        new_qx = new_rows.take(on_qx, axis=0)[:, :N_EXERCISES]
        emphasis = state.emphasis.reshape(-1).take(on_qx * N_QUALITIES + quality)
        change = new_qx - old_rows.take(on_qx, axis=0)[:, :N_EXERCISES]
        change *= emphasis[:, None]
        state.allocation[on_qx] += change
        state.plan_qx.reshape(-1, N_EXERCISES, copy=False)[on_qx * N_QUALITIES + quality] = new_qx
    return targeted | adjusted_qx


def reset(
    state: TrainingState,
    index: Any,
    vectors: np.ndarray,
    cq: np.ndarray,
    qx: np.ndarray,
    hidden: HiddenParameters,
    habitual_volume: float,
    shaping_weeks: int | None = None,
) -> None:
    """Start new episodes for the trainees at ``index`` (an index array or a slice).

    Args:
        state: The trainees.
        index: Which trainees.
        vectors: (k, 198) their trainee vectors: the true baseline.
        cq: (k, 93, 5) their initial CQ.
        qx: (k, 5, 44) their initial QX.
        hidden: Their hidden parameters (k trainees).
        habitual_volume: The habit's volume, a share of the weekly budget (:mod:`fitness_weights_env.body`).
        shaping_weeks: The block's length when the reward is shaped (:func:`step`), else ``None``.
    """
    dynamics.reset_matrices(state.weights, index, vectors, cq, qx)
    trainees.start(state.body, index, vectors, hidden, LAYOUT, habitual_volume)
    state.loads[index] = state.body.history[index, -1]
    state.ratios[index] = 1.0
    state.injury_probability[index] = 0.0
    state.target_scores[index] = state.body.scores[index] * state.body.target_mask[index]
    state.score_change[index] = 0.0
    state.steps[index] = 0
    state.gap_weight[index] = 0.0  # new targets: the replan sets theirs
    rows, valid = _target_slots(state.body, index)
    state.target_cq[index] = 0.0
    targeted = state.body.target_mask[index] > 0.0
    state.target_slot[index] = 0
    state.target_slot[index, : dynamics.N_SUBJECTS] = np.where(targeted, np.cumsum(targeted, axis=1) - 1, 0)
    targets = cq[np.arange(rows.shape[0])[:, None], rows]
    state.target_cq[index, : rows.shape[1]] = np.where(valid[:, :, None], targets, 0.0)
    state.plan_qx[index] = qx
    _replan(state, index)
    if shaping_weeks is not None:
        state.potential[index] = _potential(state, index, shaping_weeks)
    _write_improvement(state, index)
    _write_metrics(state, index)


def step(
    state: TrainingState,
    actions: np.ndarray,
    deltas: Any,
    closing: np.ndarray,
    draws: WeekDraws,
    drift_coef: float,
    shaping_weeks: int | None = None,
) -> np.ndarray:
    """Apply one action per trainee; the trainees in ``closing`` then train their week. Returns the rewards (N,).

    Args:
        state: The trainees.
        actions: (N,) valid action indices.
        deltas: The change of each adjusted cell, as in v0.
        closing: (N,) bool, the trainees whose step closes a week.
        draws: The week's random numbers of the closing trainees, in their order.
        drift_coef: Coefficient of the drift penalty, paid at the steps that close a week.
        shaping_weeks: With a block length, add the change of the potential ``Phi`` (what the current plan, held
            to the block's end, would still gain) to every step's reward, with ``Phi = 0`` once the block is over:
            potential-based shaping (Ng, Harada and Russell 1999), which changes no policy's ranking (undiscounted,
            an episode's shaped return is its return minus ``Phi`` at the start) and credits each action at once.
    """
    moved = dynamics.move_rows(state.weights, actions, deltas)
    changed = _follow(state, moved.rows, moved.old_rows, moved.new_rows)
    rewards = np.zeros(actions.shape[0])
    if closing.any():
        everyone = bool(closing.all())
        index: Any = slice(None) if everyone else closing.nonzero()[0]
        loads = planned_loads(state)[index]
        body = state.body if everyone else state.body.take(index)
        week = trainees.train_week(body, loads, draws.injury)
        if not everyone:
            state.body.put(index, body)
        rewards[index] = _week_reward(week, draws.injury is not None) - drift_coef * state.weights.drift[index]
        _record_week(state, index, week, draws.noise)
        _replan(state, index)
        changed |= closing
    if shaping_weeks is not None:
        potential = _potential(state, slice(None), shaping_weeks)
        rewards += potential - state.potential
        state.potential = potential
    state.steps += 1
    _write_metrics(state, slice(None) if changed.all() else changed.nonzero()[0])
    return rewards


def _potential(state: TrainingState, index: Any, weeks: int) -> np.ndarray:
    """What the trainees' current plans, held to the end of a ``weeks``-week block, would still gain."""
    body = state.body.take(index)
    left = np.maximum(weeks - body.week, 0)
    return plan_return(body, np.maximum(state.allocation[index], 0.0), left)


def _week_reward(week: WeekResult, injuries: bool) -> np.ndarray:
    cost = (
        np.where(week.injured, trainees.INJURY_COST, 0.0)
        if injuries
        else trainees.INJURY_COST * week.injury_probability
    )
    return week.score_change - cost


def _record_week(state: TrainingState, index: Any, week: WeekResult, noise: np.ndarray) -> None:
    """Keep the week's figures for the info, and measure the trainees: their observed qualities and scores."""
    body, observation = state.body, state.weights.observation
    state.loads[index] = week.loads
    state.ratios[index] = week.ratios
    state.injury_probability[index] = week.injury_probability
    state.target_scores[index] = body.scores[index] * body.target_mask[index]
    state.score_change[index] = week.score_change
    _write_improvement(state, index)
    measured = np.clip(body.qualities[index] + trainees.MEASUREMENT_NOISE * noise, 0.0, 1.0)
    if isinstance(index, slice):
        observation[index, LAYOUT.qualities] = measured
        observation[index, LAYOUT.subject_scores] = body.scores[index]
    else:
        observation[index[:, None], np.arange(LAYOUT.qualities.start, LAYOUT.qualities.stop)] = measured
        columns = np.arange(LAYOUT.subject_scores.start, LAYOUT.subject_scores.stop)
        observation[index[:, None], columns] = body.scores[index]


def _write_metrics(state: TrainingState, index: Any = slice(None)) -> None:
    """Write every trainee's progress, and recompute the plan's 3 metrics of the trainees at ``index``.

    ``injury_risk``, ``training_efficiency`` and ``consistency`` (the module docstring) are a function of the plan
    and of the body, so a trainee whose plan did not change and who did not train a week keeps them: the kernel
    passes only the others. ``recent_improvement`` changes with the week (:func:`_write_improvement`).
    """
    observation = state.weights.observation
    observation[:, _PROGRESS_COLUMN] = np.minimum(state.steps / state.block_steps, 1.0)
    if not isinstance(index, slice) and index.size == 0:
        return
    body, allocation = state.body, _rows(state.allocation, index)  # on the simplex up to rounding
    hazard = trainees.plan_hazard(_rows(body.ratio_slope, index), allocation)
    u = np.matmul(allocation[:, None, :], _rows(body.hidden.transfer, index))[:, 0, :]
    u *= _rows(body.budget, index)[:, None]
    d = u / (u + HALF_SATURATION)
    difference = allocation - _rows(body.allocation, index)
    np.abs(difference, out=difference)
    # the plan's metrics in layout order: straight into the observation, or through one block for an index array
    everyone = isinstance(index, slice)
    metrics = observation[index, _PLAN_METRICS] if everyone else np.empty((allocation.shape[0], 3), observation.dtype)
    metrics[:, _INJURY_RISK - 1] = -np.expm1(-RISK_WEEKS * hazard)  # 1 - (1 - p)^16 with p = 1 - exp(-hazard)
    efficiency = np.vecdot(_rows(body.target_qualities, index), d)  # the targets' CQ_prior rows sum to 1
    metrics[:, _TRAINING_EFFICIENCY - 1] = efficiency
    consistency = difference.sum(axis=1)
    consistency *= -0.5
    consistency += 1.0  # 1 - |x - x_last| / 2
    metrics[:, _CONSISTENCY - 1] = np.maximum(consistency, 0.0, out=consistency)
    if not everyone:
        observation[index, _PLAN_METRICS] = metrics


def _rows(array: np.ndarray, index: Any) -> np.ndarray:
    """``array[index]`` (a view for a slice); an index array takes the rows, cheaper than fancy indexing."""
    return array[index] if isinstance(index, slice) else array.take(index, axis=0)


def _write_improvement(state: TrainingState, index: Any) -> None:
    """Write ``recent_improvement`` of the trainees at ``index``: from their last week's score change."""
    change = state.score_change[index] * (0.5 / IMPROVEMENT_SCALE)
    state.weights.observation[index, _IMPROVEMENT_COLUMN] = np.clip(change + 0.5, 0.0, 1.0)


def step_info(state: TrainingState, index: Any = slice(None), matrices: bool = True) -> dict[str, Any]:
    """The info of the trainees at ``index``: batched for a slice or an index array, unbatched for an int.

    v0's keys (``cq_matrix``, ``qx_matrix`` with ``matrices=True``; ``target_scores``: the true current score of
    each target subject, 0 elsewhere; ``mean_target_score``; ``drift``), and ``week`` (weeks trained),
    ``weekly_load`` (44,) and ``load_ratios`` (44,) of the last week, ``injury_probability`` (that week's),
    ``true_qualities`` (5,), and with ``matrices=True`` ``hidden`` (a dict of the hidden parameters,
    :class:`HiddenParameters`' fields), which a trainee keeps for the episode.
    """
    weights, body = state.weights, state.body
    f32 = weights.observation.dtype
    info: dict[str, Any] = {}
    if matrices:
        info["cq_matrix"] = weights.cq[index].astype(f32)
        info["qx_matrix"] = weights.qx[index].astype(f32)
    info["target_scores"] = state.target_scores[index].copy()
    info["mean_target_score"] = _copy(body.target_score[index])
    info["drift"] = _copy(weights.drift[index])
    info["week"] = _copy(body.week[index])
    info["weekly_load"] = state.loads[index].copy()
    info["load_ratios"] = state.ratios[index].copy()
    info["injury_probability"] = _copy(state.injury_probability[index])
    info["true_qualities"] = body.qualities[index].copy()
    if matrices:
        info["hidden"] = {name: _copy(value[index]) for name, value in vars(body.hidden).items()}
    return info


def _copy(value: Any) -> Any:
    """A copy of an array, or the scalar itself (an int index gives numpy scalars)."""
    return value.copy() if isinstance(value, np.ndarray) else value
