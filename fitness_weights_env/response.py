"""The training-response model of ``FitnessWeights-v1``: the plan the matrices imply, and how a body answers it.

The plan turns the agent's matrices into weekly loads; the fitness-fatigue core turns a daily stimulus into a change
of performance.

**The plan** (:func:`training_plan`). The agent's matrices are what a coach uses them for:

* the quality emphasis ``e`` (on the 5-simplex) is the mean of the target subjects' CQ rows, each weighted by its
  remaining gap ``g_s = max(1 - S_s, GAP_FLOOR)``, where ``S_s`` in [0, 1] is the subject's current score: the
  gap is the room left to the top of the score scale, so a target near its best pulls less, and
  ``GAP_FLOOR`` (0.05, an estimate) keeps a maxed-out target from dropping out of the plan;
* the exercise allocation is ``x = e^T QX`` (on the 44-simplex: QX's rows sum to 1);
* the weekly load per exercise is ``L_e = B x_e``, with the weekly budget ``B = BUDGET_BASE (1 + BUDGET_SLOPE f)``
  growing with the fitness level ``f`` in [0, 1] (``BUDGET_BASE`` 1 unit, ``BUDGET_SLOPE`` 1: a trainee at the
  top of the scale trains twice the volume of one at the bottom; an estimate, in the units the stimulus is
  calibrated in).

**The stimulus** (:func:`stimulus`). A week's loads reach the qualities through the trainee's own transfer
(:mod:`fitness_weights_env.hidden`): ``u_q = sum_e L_e E_true[e, q]``, with diminishing returns
``d_q = u_q / (u_q + K_q)`` (:data:`HALF_SATURATION`, the stimulus at which half the possible response is
reached; smallest for strength, whose returns diminish most: Pelland et al. 2024, a meta-regression of 67 studies of
resistance training volume). The values are estimates, in the budget's units, set about one budget so that the
habitual plans sit on the rising part of the curve (``d`` 0.2 to 0.4) and doubling a load gains less than double;
the calibration that fixed them is in ``benchmarks/RESULTS.md`` ("FitnessWeights-v1: the training model").

**The fitness-fatigue core.**

A trainee's performance in a quality answers each training impulse (the stimulus of a day's load, ``w``) twice:
a slow, positive fitness effect and a fast, negative fatigue effect (the impulse-response model of Banister et al.
1975, "A systems model of training for athletic performance", Aust J Sports Med 7:57-61). With a fixed fatigue gain,
the change of performance ``n`` days after the impulses ``w(i)`` is

    p(n) = k1 * sum_i w(i) exp(-(n - i) / tau1)  -  k2 * sum_i w(i) exp(-(n - i) / tau2)

(``tau1`` about 42 days, ``tau2`` about 7 to 10; ``k2 > k1``, so a load first tires and later pays). The response
to one impulse crosses zero ``tau1 tau2 / (tau1 - tau2) ln(k2 / k1)`` days after it and peaks
``tau1 tau2 / (tau1 - tau2) ln(k2 tau1 / (k1 tau2))`` days after it (:func:`impulse_zero_crossing`,
:func:`impulse_peak`).

Busso 2003 ("Variable dose-response relationship between exercise training and performance", Med Sci Sports
Exerc 35:1188-1195) makes the fatigue gain grow with the recent load, which gives an inverted-U optimal load
instead of "more is always better":

    k2(i) = k3 * sum_{j <= i} w(j) exp(-(i - j) / tau3),
    p(n)  = k1 * sum_i w(i) exp(-(n - i) / tau1)  -  sum_i k2(i) w(i) exp(-(n - i) / tau2).

Both are written once here as a recursion over days, batched over trainees and qualities (arrays of any leading
shape, ``(N, Q)`` in the env), with the array-API operations of the arrays' namespace, as the v0 kernel
(:mod:`fitness_weights_env.dynamics`) is. One call of :func:`step` advances ``days`` days under a constant daily
impulse: the state decays, then takes the day's impulse, so the state after a step holds that day's impulse at lag
0. :func:`performance` reads ``k1 F - G`` from the state. Under a constant impulse the days of a step sum in
closed form (:func:`constant_impulse_terms`: the state after them is linear in the state before and quadratic in
the impulse); :func:`step_terms` applies that sum, which the env's week uses (a trainee's coefficients are computed
once per episode), and a test holds it to the recursion.

=============  ===========================================================================================
state          meaning
=============  ===========================================================================================
``fitness``    ``F(n) = sum_i w(i) exp(-(n - i) / tau1)``
``fatigue``    ``G(n) = sum_i k2(i) w(i) exp(-(n - i) / tau2)``: the fatigue already weighted by its gain
``load``       ``H(n) = sum_i w(i) exp(-(n - i) / tau3)``, the recent load that sets Busso's gain
=============  ===========================================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fitness_weights_env.dynamics import array_namespace
from fitness_weights_env.errors import FieldError

__all__ = [
    "BUDGET_BASE",
    "BUDGET_SLOPE",
    "GAP_FLOOR",
    "HALF_SATURATION",
    "FitnessFatigue",
    "constant_impulse_terms",
    "gap_weights",
    "impulse_peak",
    "impulse_response",
    "impulse_zero_crossing",
    "performance",
    "step",
    "step_terms",
    "stimulus",
    "target_rows",
    "training_plan",
    "weighted_plan",
]

GAP_FLOOR = 0.05
"""The least gap of a target subject: a target at its best still pulls a little (an estimate)."""
BUDGET_BASE = 1.0
"""The weekly budget of a trainee at fitness level 0, in stimulus units."""
BUDGET_SLOPE = 1.0
"""How the weekly budget grows with the fitness level: ``B = BUDGET_BASE (1 + BUDGET_SLOPE f)`` (an estimate)."""


HALF_SATURATION = np.array([2.4, 1.8, 1.8, 1.5, 0.9])
"""``K_q`` of the diminishing returns, in catalog quality order (endurance, flexibility, agility, power, strength)."""


def stimulus(loads: Any, transfer: Any, half_saturation: Any = HALF_SATURATION) -> Any:
    """The diminished stimulus ``d`` ``(N, 5)`` of weekly loads ``(N, 44)`` through the transfer ``(N, 44, 5)``."""
    xp = array_namespace(loads)
    u = xp.matmul(loads[:, None, :], transfer)[:, 0, :]
    return u / (u + half_saturation)


def target_rows(target_mask: Any) -> tuple[Any, Any]:
    """Each trainee's target subjects as padded rows: indices ``(N, K)`` in subject order and a validity mask.

    ``K`` is the batch's largest number of targets (at least 1); a trainee with fewer is padded with row 0, invalid.
    """
    xp = array_namespace(target_mask)
    mask = target_mask > 0
    counts = xp.sum(mask, axis=1, dtype=xp.int64)
    k = max(int(xp.max(counts)), 1) if mask.shape[0] else 1
    flat = xp.nonzero(xp.reshape(mask, (-1,)))[0]  # row-major: each trainee's targets in subject order
    trainee = flat // mask.shape[1]
    first = xp.cumulative_sum(counts, include_initial=True)[:-1]
    rows = xp.zeros((mask.shape[0], k), dtype=xp.int64)
    rows[trainee, xp.arange(trainee.shape[0]) - first[trainee]] = flat - trainee * mask.shape[1]
    return rows, xp.arange(k)[None, :] < counts[:, None]


def gap_weights(scores: Any, valid: Any) -> Any:
    """Each target's share of the emphasis ``(N, K)``, from the targets' scores and validity (module docstring)."""
    xp = array_namespace(scores)
    gaps = xp.where(valid, xp.maximum(1.0 - scores, GAP_FLOOR), 0.0)
    return gaps / xp.sum(gaps, axis=1, keepdims=True)


def training_plan(
    cq: Any,
    qx: Any,
    target_mask: Any,
    subject_scores: Any,
    fitness_level: Any,
    rows: tuple[Any, Any] | None = None,
) -> tuple[Any, Any, Any]:
    """The plan the matrices imply, for a batch: emphasis ``(N, 5)``, allocation ``(N, 44)``, weekly loads ``(N, 44)``.

    Args:
        cq: CQ matrices ``(N, 93, 5)``, rows on the simplex.
        qx: QX matrices ``(N, 5, 44)``, rows on the simplex.
        target_mask: ``(N, 93)``, true (or 1) for each trainee's target subjects; at least one per trainee.
        subject_scores: Current subject scores ``(N, 93)`` in [0, 1].
        fitness_level: ``(N,)`` in [0, 1].
        rows: :func:`target_rows` of ``target_mask``, when the caller keeps them.

    See the module docstring for the equations. Only the target rows of CQ are read.
    """
    xp = array_namespace(cq)
    index, valid = target_rows(target_mask) if rows is None else rows
    weights = gap_weights(xp.take_along_axis(subject_scores, index, axis=1), valid)
    emphasis, allocation = weighted_plan(cq, qx, index, weights)
    budget = BUDGET_BASE * (1.0 + BUDGET_SLOPE * fitness_level)
    return emphasis, allocation, budget[:, None] * allocation


def weighted_plan(cq: Any, qx: Any, rows: Any | None, weights: Any) -> tuple[Any, Any]:
    """The emphasis ``(N, 5)`` and allocation ``(N, 44)`` of target rows ``(N, K)`` with their gap weights ``(N, K)``.

    The part of :func:`training_plan` after the gap weights: ``e = sum_k w_k CQ[rows_k]``, ``x = e^T QX``. With
    ``rows=None``, ``cq`` holds the target rows already, ``(N, K, 5)``.
    """
    xp = array_namespace(cq)
    targets = cq if rows is None else cq[xp.arange(cq.shape[0])[:, None], rows]
    # the sum over the targets, one at a time: the same additions in the same order as a sum over axis 1, and
    # faster for these few terms
    emphasis = weights[:, 0, None] * targets[:, 0]
    for k in range(1, targets.shape[1]):
        emphasis += weights[:, k, None] * targets[:, k]
    return emphasis, xp.matmul(emphasis[:, None, :], qx)[:, 0, :]


@dataclass
class FitnessFatigue:
    """The state of the model for a batch (arrays of one shape, ``(N, Q)`` in the env); see the module docstring.

    Args:
        fitness: ``F``, the decayed sum of past impulses with ``tau1``.
        fatigue: ``G``, the decayed sum of past impulses, each times the fatigue gain it met, with ``tau2``.
        load: ``H``, the decayed sum of past impulses with ``tau3`` (Busso's recent load).
    """

    fitness: Any
    fatigue: Any
    load: Any

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> FitnessFatigue:
        """A trainee with no training history (numpy arrays of ``shape``)."""
        return cls(np.zeros(shape), np.zeros(shape), np.zeros(shape))


def step(
    state: FitnessFatigue,
    impulse: Any,
    *,
    tau1: Any,
    tau2: Any,
    k2: Any = 0.0,
    k3: Any = 0.0,
    tau3: Any = 1.0,
    days: int = 1,
) -> None:
    """Advance ``state`` in place by ``days`` days, each with the daily ``impulse``.

    Args:
        state: The batch's state.
        impulse: The daily impulse ``w`` of each element (broadcast to the state's shape), at least 0.
        tau1: Fitness time constant, days (broadcasts like ``impulse``).
        tau2: Fatigue time constant, days.
        k2: The fixed part of the fatigue gain (Banister's ``k2``; 0 for Busso's model alone).
        k3: Busso's gain per unit of recent load (0: Banister's fixed gain).
        tau3: Time constant of the recent load behind Busso's gain, days.
        days: Days the step covers (``days_per_step``).

    The fatigue gain of a day is ``k2 + k3 H`` with ``H`` including that day's impulse.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise FieldError("days", "must be a whole number of days, at least 1", days)
    xp = array_namespace(state.fitness)
    decay1, decay2, decay3 = xp.exp(-1.0 / tau1), xp.exp(-1.0 / tau2), xp.exp(-1.0 / tau3)
    for _ in range(days):
        state.load = state.load * decay3 + impulse
        state.fitness = state.fitness * decay1 + impulse
        state.fatigue = state.fatigue * decay2 + (k2 + k3 * state.load) * impulse


def constant_impulse_terms(*, tau1: Any, tau2: Any, k2: Any, k3: Any, tau3: Any, days: int) -> Any:
    """The recursion of :func:`step` over ``days`` days of one constant impulse, summed: 8 coefficients per element.

    With ``a = exp(-1 / tau)`` and the daily impulse ``w`` held for ``D = days`` days, the state after them is
    linear in the state before it (``H0``, ``F0``, ``G0``) and quadratic in ``w``:

        H_D = a3^D H0 + s3 w,    F_D = a1^D F0 + s1 w,    G_D = a2^D G0 + w (k2 S + k3 P H0 + k3 Q w),

    ``s = sum_{j < D} a^j``, ``S = sum_{n=1..D} a2^(D-n)``, ``P = sum_n a2^(D-n) a3^n`` and
    ``Q = sum_n a2^(D-n) s3(n)``, with ``s3(n)`` the load's sum after ``n`` days. The arrays broadcast together;
    the result stacks ``(a1^D, a2^D, a3^D, s1, s3, k2 S, k3 P, k3 Q)`` on a new last axis, for :func:`step_terms`.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise FieldError("days", "must be a whole number of days, at least 1", days)
    xp = array_namespace(tau1)
    decay1, decay2, decay3 = xp.exp(-1.0 / tau1), xp.exp(-1.0 / tau2), xp.exp(-1.0 / tau3)
    power1 = power2 = power3 = 1.0
    sum1 = sum3 = fixed = cross = square = 0.0
    for _ in range(days):  # day n: the load first (it includes the day's impulse), then the fatigue it meets
        sum1 = sum1 * decay1 + 1.0
        power1 = power1 * decay1
        sum3 = sum3 * decay3 + 1.0
        power3 = power3 * decay3
        fixed = fixed * decay2 + 1.0
        cross = cross * decay2 + power3
        square = square * decay2 + sum3
        power2 = power2 * decay2
    terms = (power1, power2, power3, sum1, sum3, k2 * fixed, k3 * cross, k3 * square)
    return xp.stack(xp.broadcast_arrays(*(xp.asarray(term, dtype=xp.float64) for term in terms)), axis=-1)


def step_terms(state: FitnessFatigue, impulse: Any, terms: Any) -> None:
    """Advance ``state`` in place under the constant daily ``impulse``, by :func:`constant_impulse_terms`' days.

    The same days as :func:`step` with the same arguments, in 12 array operations instead of 9 a day.
    """
    decay1, decay2, decay3, sum1, sum3, fixed, cross, square = (terms[..., i] for i in range(8))
    load = state.load
    state.load = decay3 * load + sum3 * impulse
    state.fitness = decay1 * state.fitness + sum1 * impulse
    state.fatigue = decay2 * state.fatigue + impulse * (fixed + cross * load + square * impulse)


def performance(state: FitnessFatigue, k1: Any) -> Any:
    """The change of performance the training so far makes: ``k1 F - G``."""
    return k1 * state.fitness - state.fatigue


def impulse_response(days: Any, *, k1: float, k2: float, tau1: float, tau2: float) -> Any:
    """The change of performance ``days`` after one unit impulse, fixed gains: ``k1 e^(-t/tau1) - k2 e^(-t/tau2)``."""
    xp = array_namespace(days)
    return k1 * xp.exp(-days / tau1) - k2 * xp.exp(-days / tau2)


def _check_time_constants(tau1: float, tau2: float) -> float:
    if not (math.isfinite(tau1) and math.isfinite(tau2) and tau1 > tau2 > 0):
        raise FieldError("tau1", "must be finite and above tau2, which must be above 0", (tau1, tau2))
    return tau1 * tau2 / (tau1 - tau2)


def impulse_zero_crossing(*, k1: float, k2: float, tau1: float, tau2: float) -> float:
    """Days after one impulse at which its response turns from negative to positive (``k2 > k1``)."""
    if not k2 > k1 > 0:
        raise FieldError("k2", "must be above k1, which must be above 0 (else the response never turns)", (k1, k2))
    return _check_time_constants(tau1, tau2) * math.log(k2 / k1)


def impulse_peak(*, k1: float, k2: float, tau1: float, tau2: float) -> float:
    """Days after one impulse at which its response is highest."""
    if not (k1 > 0 and k2 > 0):
        raise FieldError("k1", "k1 and k2 must be above 0", (k1, k2))
    return _check_time_constants(tau1, tau2) * math.log(k2 * tau1 / (k1 * tau2))


def habitual_state(impulse: Any, *, tau1: Any, tau2: Any, k2: Any, k3: Any, tau3: Any) -> FitnessFatigue:
    """The steady state of a constant daily ``impulse`` held forever: where a trainee's habitual plan has left them.

    Each sum of the state is a geometric series, ``w / (1 - exp(-1 / tau))``; the fatigue's gain is then constant,
    ``k2 + k3 H``.
    """
    xp = array_namespace(impulse)
    fitness = impulse / (1.0 - xp.exp(-1.0 / tau1))
    load = impulse / (1.0 - xp.exp(-1.0 / tau3))
    fatigue = (k2 + k3 * load) * impulse / (1.0 - xp.exp(-1.0 / tau2))
    return FitnessFatigue(fitness, fatigue, load)
