"""The simulated trainees of ``FitnessWeights-v1``: how N bodies answer a week of training.

This is the trainee's half of v1's kernel (:mod:`fitness_weights_env.training_dynamics` adds the matrices). A
:class:`Body` holds the batch's state; :func:`start` puts each trainee at the steady state of their habitual plan;
:func:`train_week` trains one week under given loads, the same function for the env, the oracle's planner and the
calibration. The equations of the plan and the fitness-fatigue core are in :mod:`fitness_weights_env.response`;
this module adds the rest:

**The habit.** Each trainee arrives at the steady state of their habit: the catalog's plan for their targets at
``HABITUAL_VOLUME`` (0.5) of the programme's weekly budget. The programme then trains the full budget, so the
coach's plan (the catalog's, unchanged) gains what a standard programme gains an untrained adult, and a better plan
gains more. With ``habitual_volume=1`` the habit is the coach's plan itself and an unchanged plan keeps the trainee
where they are (``docs/design-decisions.md`` says why 0.5 is the default; ``benchmarks/RESULTS.md``, "FitnessWeights-v1:
the training model", has the figures).

**From performance to quality.** Each quality's performance ``p_q = k1 F_q - G_q`` (``k1`` = 1: the other gains
are relative to it) is read against the habit's steady state ``p*_q``. The change, scaled by the trainee's
responsiveness, moves the quality linearly at first and saturates at the room left:

    c_q = ADAPTATION_RATE r_q (p_q - p*_q),
    q_q = clip(q0_q + R_q tanh(c_q / R_q), 0, 1),   R_q = 1 - q0_q when c_q >= 0, else q0_q (at least QUALITY_FLOOR).

A small change is ``c_q`` whatever the baseline, as HERITAGE found (a correlation of 0.08 between baseline VO2max
and its response); a large one approaches the room left ``1 - q0`` and never passes it. ``ADAPTATION_RATE`` is
calibrated so that the oracle's plan gives the median trainee the gains published for a 16-week programme of
untrained adults (+20 to 40%: Busso 2003's subjects gained 30 +/- 7% in 15 weeks).

**Fatigue.** The fatigue gain of a day is ``k2 + k3 H`` with ``k2 = gain_ratio`` (the trainee's hidden ``k2 / k1``)
and ``k3 = gain_ratio FATIGUE_GROWTH``, ``H`` decaying with ``FATIGUE_MEMORY`` days (Busso 2003; his fits put
``tau3`` at a few days; both values are estimates). The daily impulse is the week's diminished stimulus ``d_q``.

**Subject scores** follow the true qualities through the catalog's loadings, never through the agent's CQ:
``S_s = clip(S0_s + CQ_prior[s] . (q - q0), 0, 1)``.

**Injury risk: a proxy, not a validated predictor.** Gabbett 2016 ("The training-injury prevention paradox", Br J
Sports Med 50:273-280) relates injuries to spikes of the acute:chronic workload ratio (ACWR), with a "sweet spot"
of 0.8 to 1.3 and a danger zone above 1.5; Impellizzeri et al. 2021 (Sports Med 51:581-592) show the ratio's
statistical flaws (mathematical coupling, arbitrary windows) and that it should not be used to predict injuries of
an individual. It is used here only to make sudden changes of plan cost something, as coaches believe they do:

* acute load ``A_e`` = this week's load of exercise ``e``; chronic load ``C_e`` = the mean of the previous
  ``CHRONIC_WEEKS`` (4) weeks, uncoupled (the acute week is not part of it);
* the ratio counts the trainee's whole weekly budget ``B`` toward every exercise's tolerance (general
  conditioning: ``TOLERANCE_SHARE``, 1, an estimate): ``ratio_e = (A_e + TOLERANCE_SHARE B) / (C_e +
  TOLERANCE_SHARE B)``. Moving half the budget onto a new exercise in one week gives a ratio of about 1.5 for
  it; the same move spread over 4 weeks stays under 1.3;
* concentration: the normalized Herfindahl index of the week's allocation, ``(sum_e x_e^2 - 1/44) / (1 - 1/44)``,
  0 for an even plan and 1 for a single exercise (overuse);
* weekly hazard ``h = BASE_HAZARD (1 + CONCENTRATION_HAZARD c) + SPIKE_HAZARD sum_e x_e max(ratio_e - SWEET_SPOT,
  0)`` and probability ``1 - exp(-h)``. ``BASE_HAZARD`` 0.004 a week gives about 6% over 16 weeks, inside the
  injury incidence of recreational training programmes; the other weights are estimates.

The reward pays the expected cost ``INJURY_COST p`` (0.05 in target-score units, an estimate: several weeks of a
programme's gain, for the weeks lost and the fitness that decays meanwhile). With ``injuries=True`` an injury is
drawn instead and stops training for ``INJURY_WEEKS`` weeks (loads 0), starting the week after it.

**Measurement.** The observation's qualities are the true ones plus ``N(0, MEASUREMENT_NOISE)`` (0.02), drawn
at every week's end, clipped to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.hidden import HiddenParameters
from fitness_weights_env.response import (
    FitnessFatigue,
    constant_impulse_terms,
    habitual_state,
    performance,
    step_terms,
    stimulus,
    target_rows,
    training_plan,
)

__all__ = [
    "ADAPTATION_RATE",
    "BASE_HAZARD",
    "CHRONIC_WEEKS",
    "CONCENTRATION_HAZARD",
    "DAYS_PER_WEEK",
    "FATIGUE_GROWTH",
    "FATIGUE_MEMORY",
    "INJURY_COST",
    "INJURY_WEEKS",
    "MEASUREMENT_NOISE",
    "QUALITY_FLOOR",
    "SPIKE_HAZARD",
    "SWEET_SPOT",
    "TOLERANCE_SHARE",
    "Body",
    "WeekResult",
    "injury_probability",
    "settle",
    "start",
    "train_week",
]

N_SUBJECTS, N_QUALITIES, N_EXERCISES = CATALOG.n_subjects, CATALOG.n_qualities, CATALOG.n_exercises
DAYS_PER_WEEK = 7
ADAPTATION_RATE = 0.1
"""Change of a quality per unit of performance above the habit, at responsiveness 1 (calibrated)."""
QUALITY_FLOOR = 0.02
FATIGUE_GROWTH = 0.2
"""``k3 / k2``: growth of the fatigue gain per unit of recent load (an estimate)."""
FATIGUE_MEMORY = 4.0
"""``tau3``, days (an estimate)."""
CHRONIC_WEEKS = 4
TOLERANCE_SHARE = 1.0
SWEET_SPOT = 1.3
BASE_HAZARD = 0.004
CONCENTRATION_HAZARD = 2.0
SPIKE_HAZARD = 0.12
INJURY_COST = 0.05
INJURY_WEEKS = 2
MEASUREMENT_NOISE = 0.02
HABITUAL_VOLUME = 0.5
"""The weekly volume of the trainee's habit before the programme, a share of the programme's budget (an estimate)."""

_CONCENTRATION_SLOPE = BASE_HAZARD * CONCENTRATION_HAZARD / (1.0 - 1.0 / N_EXERCISES)  # the hazard per unit of energy
_CQ_PRIOR = np.asarray(CATALOG.cq_prior)
_QX_PRIOR = np.asarray(CATALOG.qx_prior)
_CQ_PRIOR_T = np.ascontiguousarray(_CQ_PRIOR.T)
_ONES_EXERCISES = np.ones(N_EXERCISES)
_INVERSE_CHRONIC_WEEKS = 1.0 / CHRONIC_WEEKS  # a power of two: multiplying by it divides exactly
if CHRONIC_WEEKS & (CHRONIC_WEEKS - 1):
    raise RuntimeError("CHRONIC_WEEKS must be a power of two, so that the chronic mean is a multiplication")


@dataclass
class Body:
    """The simulated trainees of a batch (struct of arrays, leading axis N); see the module docstring.

    Attributes:
        baseline: (N, 5) true qualities at the start, ``q0``.
        qualities: (N, 5) true qualities now.
        baseline_scores: (N, 93) subject scores at the start.
        scores: (N, 93) true subject scores now.
        target_mask: (N, 93) 1 on target subjects, else 0.
        target_weight: (N, 93) ``1 / n_targets`` on target subjects, else 0.
        target_rows: (N, 93) each trainee's target subjects first, in subject order (then 0s).
        target_count: (N,) number of targets.
        target_qualities: (N, 5) the mean of the target subjects' CQ_prior rows: what the targets need.
        fitness_level: (N,) in [0, 1].
        budget: (N,) weekly load ``B``.
        hidden: The hidden parameters.
        state: Fitness, fatigue and recent load per quality, (N, 5) each.
        habitual: (N, 5) ``p*``, the performance of the habitual plan's steady state.
        week_terms: (N, 1, 8) a week of the fitness-fatigue recursion under a constant impulse, summed
            (:func:`~fitness_weights_env.response.constant_impulse_terms` of the time constants and gains; set by
            :func:`settle`).
        history: (N, CHRONIC_WEEKS, 44) the previous weeks' loads, week ``w`` at ``w % CHRONIC_WEEKS``.
        tolerance: (N, 44) the denominator of the load ratios, ``C_e + TOLERANCE_SHARE B``, kept with ``history``.
        ratio_slope: (N, 44) ``B / tolerance``: a ratio is ``x_e ratio_slope + TOLERANCE_SHARE ratio_slope``.
        allocation: (N, 44) the allocation of the last week trained (the habitual plan's at the start).
        target_score: (N,) the mean target score now.
        injured_weeks: (N,) weeks of training still lost to an injury.
        week: (N,) weeks trained.
    """

    baseline: np.ndarray
    qualities: np.ndarray
    baseline_scores: np.ndarray
    scores: np.ndarray
    target_mask: np.ndarray
    target_weight: np.ndarray
    target_rows: np.ndarray
    target_count: np.ndarray
    target_qualities: np.ndarray
    fitness_level: np.ndarray
    budget: np.ndarray
    hidden: HiddenParameters
    state: FitnessFatigue
    habitual: np.ndarray
    week_terms: np.ndarray
    history: np.ndarray
    tolerance: np.ndarray
    ratio_slope: np.ndarray
    allocation: np.ndarray
    target_score: np.ndarray
    injured_weeks: np.ndarray
    week: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> Body:
        """An empty batch of ``n`` trainees; fill it with :func:`start`."""
        q, s, e = (n, N_QUALITIES), (n, N_SUBJECTS), (n, N_EXERCISES)
        hidden = HiddenParameters(
            responsiveness=np.ones(q),
            tau1=np.full(n, 42.0),
            tau2=np.full(n, 8.5),
            gain_ratio=np.full(n, 2.0),
            transfer=np.zeros((n, N_EXERCISES, N_QUALITIES)),
        )
        return cls(
            baseline=np.zeros(q),
            qualities=np.zeros(q),
            baseline_scores=np.zeros(s),
            scores=np.zeros(s),
            target_mask=np.zeros(s),
            target_weight=np.zeros(s),
            target_rows=np.zeros(s, dtype=np.int64),
            target_count=np.ones(n, dtype=np.int64),
            target_qualities=np.zeros(q),
            fitness_level=np.zeros(n),
            budget=np.zeros(n),
            hidden=hidden,
            state=FitnessFatigue.zeros(q),
            habitual=np.zeros(q),
            week_terms=np.zeros((n, 1, 8)),
            history=np.zeros((n, CHRONIC_WEEKS, N_EXERCISES)),
            tolerance=np.ones(e),
            ratio_slope=np.ones(e),
            allocation=np.zeros(e),
            target_score=np.zeros(n),
            injured_weeks=np.zeros(n, dtype=np.int64),
            week=np.zeros(n, dtype=np.int64),
        )

    def take(self, index: Any) -> Body:
        """A copy of the trainees at ``index`` (an index array may repeat trainees: the planner's candidates)."""
        arrays = {
            f.name: getattr(self, f.name)[index].copy() for f in fields(self) if f.name not in ("hidden", "state")
        }
        hidden = HiddenParameters(**{name: value[index].copy() for name, value in vars(self.hidden).items()})
        state = FitnessFatigue(*(getattr(self.state, name)[index].copy() for name in ("fitness", "fatigue", "load")))
        return Body(**arrays, hidden=hidden, state=state)

    def put(self, index: Any, other: Body) -> None:
        """Write the trainees of ``other`` (a :meth:`take` of ``index``) back at ``index``."""
        for f in fields(self):
            if f.name not in ("hidden", "state"):
                getattr(self, f.name)[index] = getattr(other, f.name)
        for name, value in vars(other.hidden).items():
            getattr(self.hidden, name)[index] = value
        for name in ("fitness", "fatigue", "load"):
            getattr(self.state, name)[index] = getattr(other.state, name)


def habitual_loads(
    target_mask: np.ndarray,
    scores: np.ndarray,
    fitness_level: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The weekly loads (N, 44) of the trainees' habitual plan: the catalog's matrices for their targets.

    ``rows``: :func:`~fitness_weights_env.response.target_rows` of ``target_mask``, when the caller has them.
    """
    n = target_mask.shape[0]
    cq = np.broadcast_to(_CQ_PRIOR, (n, N_SUBJECTS, N_QUALITIES))
    qx = np.broadcast_to(_QX_PRIOR, (n, N_QUALITIES, N_EXERCISES))
    return training_plan(cq, qx, target_mask, scores, fitness_level, rows=rows)[2]


def start(
    body: Body,
    index: Any,
    vectors: np.ndarray,
    hidden: HiddenParameters,
    layout: Any,
    habitual_volume: float = HABITUAL_VOLUME,
) -> None:
    """Start the trainees at ``index`` from their vectors (k, 198) and hidden parameters, at their habit's steady state.

    Args:
        body: The batch.
        index: Which trainees (an index array or a slice).
        vectors: Their trainee vectors (the qualities and scores are the true ones at the start).
        hidden: Their hidden parameters (k trainees).
        layout: The observation layout.
        habitual_volume: The habit's weekly volume, a share of the budget (``HABITUAL_VOLUME``).
    """
    baseline = vectors[:, layout.qualities].astype(np.float64)
    scores = vectors[:, layout.subject_scores].astype(np.float64)
    mask = vectors[:, layout.targets].astype(np.float64)
    fitness_level = vectors[:, layout.fitness_level][:, 0].astype(np.float64)
    body.baseline[index] = baseline
    body.qualities[index] = baseline
    body.baseline_scores[index] = scores
    body.scores[index] = scores
    body.target_mask[index] = mask
    rows, valid = target_rows(mask)
    body.target_rows[index] = 0
    body.target_rows[index, : rows.shape[1]] = rows
    body.target_count[index] = valid.sum(axis=1)
    weight = mask / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
    body.target_weight[index] = weight
    body.target_qualities[index] = np.matmul(weight[:, None, :], _CQ_PRIOR)[:, 0, :]
    body.fitness_level[index] = fitness_level
    plan = habitual_loads(mask, scores, fitness_level, rows=(rows, valid))
    body.budget[index] = plan.sum(axis=1)
    loads = habitual_volume * plan
    for name, value in vars(hidden).items():
        getattr(body.hidden, name)[index] = value
    body.history[index] = loads[:, None, :]
    body.tolerance[index] = loads + TOLERANCE_SHARE * body.budget[index][:, None]
    body.ratio_slope[index] = body.budget[index][:, None] / body.tolerance[index]
    body.allocation[index] = plan / body.budget[index][:, None]
    body.target_score[index] = np.sum(weight * scores, axis=1)
    body.injured_weeks[index] = 0
    body.week[index] = 0
    settle(body, index)


def settle(body: Body, index: Any = slice(None)) -> None:
    """Put the trainees at ``index`` at the steady state of their habit (the loads of their history, all equal).

    :func:`start` calls it; a planner that changes a batch's hidden parameters (``planner.average_trainee``) calls
    it again, before any week is trained.
    """
    hidden = body.hidden
    k2 = hidden.gain_ratio[index][:, None]
    habit = habitual_state(
        stimulus(body.history[index, -1], hidden.transfer[index]),
        tau1=hidden.tau1[index][:, None],
        tau2=hidden.tau2[index][:, None],
        k2=k2,
        k3=k2 * FATIGUE_GROWTH,
        tau3=FATIGUE_MEMORY,
    )
    for name in ("fitness", "fatigue", "load"):
        getattr(body.state, name)[index] = getattr(habit, name)
    body.habitual[index] = performance(habit, 1.0)
    body.week_terms[index] = constant_impulse_terms(
        tau1=hidden.tau1[index][:, None],
        tau2=hidden.tau2[index][:, None],
        k2=k2,
        k3=k2 * FATIGUE_GROWTH,
        tau3=FATIGUE_MEMORY,
        days=DAYS_PER_WEEK,
    )


def _load_ratios(ratio_slope: np.ndarray, allocation: np.ndarray) -> np.ndarray:
    """The acute:chronic ratio (N, 44) of each exercise for a week trained by ``allocation``."""
    ratios = allocation + TOLERANCE_SHARE
    ratios *= ratio_slope  # (B x + TOLERANCE_SHARE B) / tolerance
    return ratios


def _hazard(allocation: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """The weekly injury hazard (N,) of an allocation with these load ratios (the module docstring's ``h``).

    ``BASE_HAZARD (1 + CONCENTRATION_HAZARD c) + SPIKE_HAZARD spike``, with the concentration (the normalized
    Herfindahl index, 0 for an even plan, 1 for one exercise) ``c = max(sum_e x_e^2 - 1/44, 0) / (1 - 1/44)``.
    """
    excess = ratios - SWEET_SPOT
    np.clip(excess, 0.0, np.inf, out=excess)  # max(excess, 0): clip is the faster ufunc
    hazard = np.vecdot(allocation, allocation) - 1.0 / N_EXERCISES
    np.maximum(hazard, 0.0, out=hazard)
    hazard *= _CONCENTRATION_SLOPE
    hazard += BASE_HAZARD
    hazard += SPIKE_HAZARD * np.vecdot(allocation, excess)
    return hazard


def _probability(allocation: np.ndarray, ratios: np.ndarray) -> np.ndarray:
    """The weekly injury probability (N,) of an allocation with these load ratios: ``1 - exp(-h)``."""
    return -np.expm1(-_hazard(allocation, ratios))


def injury_probability(body: Body, loads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The injury probability (N,) of training a week with ``loads`` (N, 44), and the load ratios (N, 44)."""
    _, ratios, _, probability = _week_risk(body, loads)
    return probability, ratios


def _week_risk(body: Body, loads: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A week of ``loads``: its allocation, load ratios, who trains at all, and the injury probability (0 at rest)."""
    allocation = loads / body.budget[:, None]
    ratios = _load_ratios(body.ratio_slope, allocation)
    trained = np.vecdot(loads, _ONES_EXERCISES) > 0.0  # a week without training risks nothing (loads >= 0)
    probability = _probability(allocation, ratios)
    if not trained.all():
        probability = np.where(trained, probability, 0.0)
    return allocation, ratios, trained, probability


def quality(baseline: np.ndarray, change: np.ndarray) -> np.ndarray:
    """The quality levels that a change of ``change`` (in quality units, before saturation) makes of ``baseline``.

    Linear for small changes and saturating at the room left: ``q0 + R tanh(change / R)`` with ``R = 1 - q0`` on
    the way up and ``q0`` on the way down (each at least ``QUALITY_FLOOR``), clipped to [0, 1].
    """
    room = np.maximum(np.where(change >= 0.0, 1.0 - baseline, baseline), QUALITY_FLOOR)
    level = change / room
    np.tanh(level, out=level)
    level *= room
    level += baseline
    return _clip01(level)


def _clip01(values: np.ndarray) -> np.ndarray:
    """``values`` clipped to [0, 1], in place."""
    return np.clip(values, 0.0, 1.0, out=values)  # one clip pass costs less than maximum, then minimum


def plan_hazard(ratio_slope: np.ndarray, allocation: np.ndarray) -> np.ndarray:
    """The weekly injury hazard (k,) of a week trained by ``allocation`` (k, 44): the metric of every step.

    ``ratio_slope`` is :attr:`Body.ratio_slope` of the same k trainees; the probability is ``1 - exp(-hazard)``.
    """
    return _hazard(allocation, _load_ratios(ratio_slope, allocation))


@dataclass
class WeekResult:
    """What one week of training did, for the trainees trained (arrays with their leading axis).

    Attributes:
        loads: (k, 44) the loads trained (0 during an injury).
        ratios: (k, 44) the acute:chronic load ratios of the week.
        injury_probability: (k,) the week's injury probability.
        injured: (k,) bool, an injury was drawn this week (``injuries=True`` only).
        score_change: (k,) the change of the mean target score.
    """

    loads: np.ndarray
    ratios: np.ndarray
    injury_probability: np.ndarray
    injured: np.ndarray
    score_change: np.ndarray


def train_week(body: Body, loads: np.ndarray, injury_draws: np.ndarray | None = None) -> WeekResult:
    """Train every trainee of ``body`` for one week with the planned ``loads`` (N, 44); update ``body`` in place.

    Args:
        body: The trainees.
        loads: The week's planned loads; a trainee still injured trains nothing.
        injury_draws: (N,) uniforms in [0, 1) to draw injuries with (``injuries=True``), or ``None``: no injuries,
            the reward pays their expected cost.
    """
    resting = body.injured_weeks > 0
    any_resting = bool(resting.any())
    if any_resting:
        loads = np.where(resting[:, None], 0.0, loads)
    allocation, ratios, trained, probability = _week_risk(body, loads)  # a week at rest keeps the last allocation
    injured = np.zeros(loads.shape[0], dtype=bool)
    if injury_draws is not None:
        injured = injury_draws < probability
    if any_resting or injury_draws is not None:  # otherwise every count is 0 and stays 0
        body.injured_weeks = np.where(resting, body.injured_weeks - 1, 0) + np.where(injured, INJURY_WEEKS, 0)

    step_terms(body.state, stimulus(loads, body.hidden.transfer), body.week_terms)  # the 7 days, summed
    body.qualities = quality(
        body.baseline, ADAPTATION_RATE * body.hidden.responsiveness * (performance(body.state, 1.0) - body.habitual)
    )
    delta = body.qualities - body.baseline
    scores = np.matmul(delta[:, None, :], _CQ_PRIOR_T)[:, 0, :]
    scores += body.baseline_scores
    body.scores = _clip01(scores)
    target_score = np.vecdot(body.target_weight, body.scores)
    score_change = target_score - body.target_score
    body.target_score = target_score

    history = body.history
    history[np.arange(loads.shape[0]), body.week % CHRONIC_WEEKS] = loads  # a ring: the oldest week goes
    chronic = history[:, 0] + history[:, 1]  # the mean over the ring, summed in order (as history.mean(axis=1))
    for week in range(2, CHRONIC_WEEKS):
        chronic += history[:, week]
    chronic *= _INVERSE_CHRONIC_WEEKS
    chronic += (TOLERANCE_SHARE * body.budget)[:, None]
    body.tolerance = chronic
    body.ratio_slope = body.budget[:, None] / chronic
    body.allocation = allocation if trained.all() else np.where(trained[:, None], allocation, body.allocation)
    body.week = body.week + 1
    return WeekResult(loads, ratios, probability, injured, score_change)
