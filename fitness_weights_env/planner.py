"""Plans for ``FitnessWeights-v1`` trainees, evaluated and optimized with the env's own kernel.

A *plan* here is an exercise allocation ``x`` (on the 44-simplex) held for the whole block: every week the trainee
trains ``B x``. :func:`plan_return` simulates it with :func:`~fitness_weights_env.body.train_week`, the function
the env steps with, and returns what the env's reward would sum to (the gain of the mean target score less the
expected injury cost). :func:`best_plan` maximizes it by exponentiated-gradient ascent (mirror ascent on the
simplex: ``x <- x exp(eta g) / Z``) with the gradient taken by forward differences of the simulation, all
trainees and all 44 directions in one batch. Given the trainee's true hidden parameters it is the oracle's plan;
given :func:`average_trainee` (the population's mean hidden parameters) it is the best plan for the average
trainee, which knows the profile but nothing hidden.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from fitness_weights_env import body as trainees
from fitness_weights_env.body import Body
from fitness_weights_env.errors import FieldError, check_int
from fitness_weights_env.hidden import DEFAULT_HIDDEN, HiddenDistribution

__all__ = ["HIDDEN_NAMES", "SUMMARY_NAMES", "average_trainee", "best_plan", "plan_return"]

HIDDEN_NAMES = ("responsiveness", "tau1", "tau2", "gain_ratio", "transfer")
"""The hidden parameters of a trainee (:class:`~fitness_weights_env.hidden.HiddenParameters`)."""
SUMMARY_NAMES = ("responsiveness", "tau1", "tau2", "gain_ratio")
"""The 8 values that summarize a trainee: every hidden parameter but the 220 transfer cells."""

N_EXERCISES = trainees.N_EXERCISES
_FD_STEP = 1e-3


def plan_return(body: Body, allocation: np.ndarray, weeks: int | np.ndarray) -> np.ndarray:
    """The return (N,) of holding ``allocation`` (N, 44) for ``weeks`` weeks, from the trainees' current state.

    ``weeks`` is one number for every trainee or one per trainee (N,). ``body`` is left unchanged (a copy is
    trained).
    """
    weeks = np.broadcast_to(np.asarray(weeks, dtype=np.int64), allocation.shape[:1])
    trained = body.take(slice(None))
    loads = trained.budget[:, None] * allocation
    total = np.zeros(allocation.shape[0])
    for week_index in range(int(weeks.max(initial=0))):
        week = trainees.train_week(trained, loads)
        gain = week.score_change - trainees.INJURY_COST * week.injury_probability
        total += np.where(week_index < weeks, gain, 0.0)
    return total


def best_plan(
    body: Body, start: np.ndarray, weeks: int, *, iterations: int = 30, chunk_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """The allocation (N, 44) that maximizes :func:`plan_return` for each trainee, and its return (N,).

    Args:
        body: The trainees, in the state the plan starts from.
        start: (N, 44) the allocation to start the ascent from (the current plan); never worse than the result.
        weeks: The plan's length.
        iterations: Ascent steps; the step size decays as ``1 / sqrt(t)``.
        chunk_size: Trainees optimized at once (each is simulated 45 times per step).
    """
    check_int("iterations", iterations, 1, 10_000)
    check_int("chunk_size", chunk_size, 1, 100_000)
    plans, returns = np.empty_like(start), np.empty(start.shape[0])
    for first in range(0, start.shape[0], chunk_size):
        chunk = slice(first, min(first + chunk_size, start.shape[0]))
        plans[chunk], returns[chunk] = _ascend(body.take(chunk), start[chunk], weeks, iterations)
    return plans, returns


def _ascend(body: Body, start: np.ndarray, weeks: int, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    n = start.shape[0]
    candidates = body.take(np.repeat(np.arange(n), N_EXERCISES + 1))  # each trainee, then its 44 nudged plans
    nudge = np.vstack([np.zeros(N_EXERCISES), _FD_STEP * np.eye(N_EXERCISES)])
    x = np.maximum(start, 1e-9) / np.maximum(start, 1e-9).sum(axis=1, keepdims=True)
    best, best_return = start.copy(), np.full(n, -np.inf)
    for t in range(iterations + 1):
        tried = x[:, None, :] + nudge[None, :, :]
        tried /= tried.sum(axis=2, keepdims=True)
        values = plan_return(candidates, tried.reshape(-1, N_EXERCISES), weeks).reshape(n, N_EXERCISES + 1)
        better = values[:, 0] > best_return
        best[better], best_return[better] = x[better], values[better, 0]
        if t == iterations:
            break
        gradient = (values[:, 1:] - values[:, :1]) / _FD_STEP
        gradient -= np.sum(gradient * x, axis=1, keepdims=True)
        scale = np.maximum(np.abs(gradient).max(axis=1, keepdims=True), 1e-12)
        x = x * np.exp(gradient / scale / np.sqrt(t + 1.0))
        x = np.maximum(x, 1e-9)
        x /= x.sum(axis=1, keepdims=True)
    return best, best_return


def average_trainee(
    body: Body, distribution: HiddenDistribution = DEFAULT_HIDDEN, *, known: Collection[str] = ()
) -> Body:
    """A copy of ``body`` whose hidden parameters are the population's: what a planner without hidden data assumes.

    Responsiveness 1 (the median), the medians of ``tau1``, ``tau2`` and ``gain_ratio``, and the mean transfer
    of the population's Dirichlet draws. The trainees' habitual state is recomputed for these parameters.

    Args:
        body: The trainees.
        distribution: The population's draw of hidden parameters: the env's (``env.config.hidden_distribution``),
            v1's default unless told.
        known: Hidden parameters that keep the trainee's own values (:data:`HIDDEN_NAMES`):
            :data:`SUMMARY_NAMES` plans with everything but the transfer.

    Raises:
        FieldError: An unknown name in ``known``.
    """
    unknown = sorted(set(known) - set(HIDDEN_NAMES))
    if unknown:
        raise FieldError("known", f"must name hidden parameters ({', '.join(HIDDEN_NAMES)})", unknown)
    average = body.take(slice(None))
    hidden = average.hidden
    population = {
        "responsiveness": 1.0,
        "tau1": distribution.tau1[0],
        "tau2": distribution.tau2[0],
        "gain_ratio": distribution.gain_ratio[0],
        "transfer": distribution.mean_transfer,
    }
    for name, value in population.items():
        if name not in known:
            getattr(hidden, name)[:] = value
    trainees.settle(average)
    return average
