"""The FitnessWeights dynamics: the one implementation of the transition, the reward and the metrics.

Every function works on a batch of trainees (leading axis ``N``). The single env runs it at N=1,
the vector env at N=num_envs, and the greedy oracle evaluates all 685 actions of every trainee at
once with :func:`evaluate`. The kernel is written with array-API operations (``xp.vecdot``,
``xp.where``, integer-array indexing, ...) taken from the arrays' namespace, so the same functions
step numpy arrays or torch tensors on any device (:mod:`fitness_weights_env.backend`).

**Weights layout.** CQ (93 x 5) and QX (5 x 44) live in one padded array ``weights`` of shape
``(N, 98, 44)``: rows 0..92 are the CQ rows (subjects, first 5 columns used, the rest 0), rows
93..97 are the QX rows (qualities). Every action adjusts one cell of one row and renormalizes that
row, so one gather, update and scatter serves both matrices. The padding stays 0.

**Actions.** ``a < 465`` adjusts CQ cell ``(a // 5, a % 5)``; otherwise QX cell
``((a - 465) // 44, (a - 465) % 44)``. The cell changes by ``delta``, is clipped to [0, 1] and its
row is divided by its sum.

**Reward.** ``mean_{s in targets} CQ[s] . q  -  drift_coef * (||CQ - CQ0||_F + ||QX - QX0||_F)``,
where ``q`` are the trainee's qualities and CQ0, QX0 the episode's initial matrices.

**Metrics** (the observation's last 4 entries), each in [0, 1]:

* ``recent_improvement = clip(0.5 + (T_t - T_{t-1}) / (2 step_size), 0, 1)`` where ``T`` is the
  mean target score: 0.5 means no change; one step moves ``T`` by about ``step_size`` at most.
* ``injury_risk``: concentration of the training plan, the normalized Herfindahl index of the QX
  rows, ``(mean_q sum_e QX[q, e]^2 - 1/44) / (1 - 1/44)``: 0 for a uniform plan, 1 when each
  quality is trained by a single exercise.
* ``training_efficiency = T / max(q)``: the target score relative to the best the trainee's
  qualities allow (0 when every quality is 0).
* ``consistency = exp(-drift)``, with ``drift = ||CQ - CQ0||_F + ||QX - QX0||_F``: 1 at the start of
  an episode, decreasing as the matrices move away from their initial values.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import Any, Literal

import numpy as np

from fitness_weights_env.backend import array_namespace, device_of, tables_like, to_numpy
from fitness_weights_env.catalog import CATALOG
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import LAYOUT, METRIC_NAMES

__all__ = [
    "N_ACTIONS",
    "N_CQ_ACTIONS",
    "Init",
    "InvalidActionError",
    "Outcome",
    "RowChange",
    "WeightState",
    "apply",
    "array_namespace",
    "check_actions",
    "decode_action",
    "evaluate",
    "initial_matrices",
    "move_rows",
    "reset",
    "reset_matrices",
    "reward",
    "step",
    "step_info",
]

Init = Literal["uniform", "prior"]

N_SUBJECTS, N_QUALITIES, N_EXERCISES = CATALOG.n_subjects, CATALOG.n_qualities, CATALOG.n_exercises
N_ROWS = N_SUBJECTS + N_QUALITIES
N_COLS = max(N_QUALITIES, N_EXERCISES)
N_CQ_ACTIONS = N_SUBJECTS * N_QUALITIES
"""Actions below this adjust CQ (465)."""
N_ACTIONS = N_CQ_ACTIONS + N_QUALITIES * N_EXERCISES
"""Number of actions, one per matrix cell (685)."""

_actions = np.arange(N_ACTIONS)
_is_cq = _actions < N_CQ_ACTIONS
ACTION_ROW = np.where(_is_cq, _actions // N_QUALITIES, N_SUBJECTS + (_actions - N_CQ_ACTIONS) // N_EXERCISES)
"""Row of ``weights`` that each action adjusts."""
ACTION_COL = np.where(_is_cq, _actions % N_QUALITIES, (_actions - N_CQ_ACTIONS) % N_EXERCISES)
"""Column of ``weights`` that each action adjusts."""
ACTION_MATRIX = np.stack([_is_cq, ~_is_cq], axis=1).astype(np.float64)
"""(685, 2) one-hot of the matrix each action adjusts: column 0 CQ, column 1 QX."""
del _actions, _is_cq


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so a backend caches its copy of each table
class _Tables:
    """The constants the kernel indexes or multiplies with; :func:`_tables` gives them in a state's namespace."""

    action_row: Any
    action_col: Any
    action_matrix: Any
    # Row sums are dot products with a vector of ones: ``vecdot`` sums each row on its own, so a trainee's
    # numbers do not depend on the batch it is in (a matrix product may block rows differently).
    ones_cols: Any
    ones_cq: Any
    ones_qx: Any
    ones_matrices: Any
    cq_prior: Any
    qx_prior: Any


_NUMPY_TABLES = _Tables(
    ACTION_ROW,
    ACTION_COL,
    ACTION_MATRIX,
    np.ones(N_COLS),
    np.ones(N_SUBJECTS),
    np.ones(N_QUALITIES),
    np.ones(2),
    np.asarray(CATALOG.cq_prior),
    np.asarray(CATALOG.qx_prior),
)


def _convert(xp: Any, device: Any, tables: _Tables) -> _Tables:
    return _Tables(*(xp.asarray(table, device=device) for table in astuple(tables)))


def _tables(x: Any) -> _Tables:
    """The kernel's constants in the namespace and on the device of ``x`` (numpy's own for numpy)."""
    return _NUMPY_TABLES if type(x) is np.ndarray else tables_like(_NUMPY_TABLES, x, _convert)  # numpy: no call


_RECENT_IMPROVEMENT, _INJURY_RISK, _TRAINING_EFFICIENCY, _CONSISTENCY = (
    METRIC_NAMES.index(name) for name in ("recent_improvement", "injury_risk", "training_efficiency", "consistency")
)
# injury_risk = (mean QX row sum of squares - 1/44) / (1 - 1/44) = qx_energy * scale - offset
_INJURY_SCALE = 1.0 / (N_QUALITIES * (1.0 - 1.0 / N_EXERCISES))
_INJURY_OFFSET = (1.0 / N_EXERCISES) / (1.0 - 1.0 / N_EXERCISES)


class InvalidActionError(FieldError):
    """An action that is not an integer in [0, 685), or a batch of the wrong shape (``field`` is ``"actions"``)."""


def decode_action(action: int) -> tuple[Literal["cq", "qx"], int, int]:
    """Return ``("cq", subject, quality)`` or ``("qx", quality, exercise)`` for an action."""
    (action,) = check_actions(action, ())
    if action < N_CQ_ACTIONS:
        return "cq", int(action // N_QUALITIES), int(action % N_QUALITIES)
    return "qx", int((action - N_CQ_ACTIONS) // N_EXERCISES), int((action - N_CQ_ACTIONS) % N_EXERCISES)


def check_actions(actions: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Validate integer actions of the given shape and return them as a flat int64 array.

    Raises:
        InvalidActionError: Not integers, the wrong shape, or out of [0, 685).
    """
    if not shape and isinstance(actions, (int, np.integer)) and not isinstance(actions, bool):  # fast path
        if 0 <= actions < N_ACTIONS:
            return np.array([actions], dtype=np.int64)
        raise InvalidActionError("actions", f"must be in [0, {N_ACTIONS})", actions)
    array = np.asarray(actions)
    if array.dtype.kind not in "iu":
        raise InvalidActionError("actions", f"must be integers in [0, {N_ACTIONS}), got dtype {array.dtype}", actions)
    if array.shape != shape:
        raise InvalidActionError("actions", f"expected shape {shape}, got shape {array.shape}")
    flat = array.reshape(-1).astype(np.int64, copy=False)
    if flat.size and (flat.min() < 0 or flat.max() >= N_ACTIONS):
        bad = flat[(flat < 0) | (flat >= N_ACTIONS)]
        raise InvalidActionError("actions", f"must be in [0, {N_ACTIONS})", bad.tolist()[:5])
    return flat


def reward(target_score: Any, drift: Any, drift_coef: float) -> Any:
    """The reward: the mean target score minus the drift penalty."""
    return target_score - drift_coef * drift


def initial_matrices(target_mask: Any, init: Init, target_rows: Any | None = None) -> tuple[Any, Any]:
    """The episode's initial CQ (N, 93, 5) and QX (N, 5, 44) for a batch of target masks (N, 93).

    Args:
        target_mask: Boolean target subjects of each trainee.
        init: ``"uniform"`` (the original design): CQ rows 1/5 except each target row, which is
            ``u / sum(u)`` for its ``u`` in ``target_rows``; QX rows 1/44. ``"prior"``: the catalog loadings.
        target_rows: (number of targets in the batch, 5) draws in [0, 1), one row per target in
            row-major order of ``target_mask`` (trainee, then subject); required for ``"uniform"``.
    """
    xp, tables, device = array_namespace(target_mask), _tables(target_mask), device_of(target_mask)
    n = target_mask.shape[0]
    if init == "uniform":
        if target_rows is None:
            raise ValueError("init='uniform' needs uniform draws for the target rows")
        cq = xp.full((n, N_SUBJECTS, N_QUALITIES), 1.0 / N_QUALITIES, dtype=xp.float64, device=device)
        cq[xp.nonzero(target_mask)] = target_rows * (1.0 / xp.vecdot(target_rows, tables.ones_qx))[:, None]
        qx = xp.full((n, N_QUALITIES, N_EXERCISES), 1.0 / N_EXERCISES, dtype=xp.float64, device=device)
    elif init == "prior":
        cq = xp.broadcast_to(tables.cq_prior, (n, N_SUBJECTS, N_QUALITIES))
        qx = xp.broadcast_to(tables.qx_prior, (n, N_QUALITIES, N_EXERCISES))
    else:
        raise FieldError("init", "must be 'uniform' or 'prior'", init)
    return cq, qx


@dataclass
class WeightState:
    """The dynamic state of N trainees (struct of arrays, leading axis N).

    Attributes:
        observation: (N, size) float32 observations: the trainee vectors (their first 198 values), the metrics
            slice kept current; v1's state adds ``progress`` (its kernel writes it).
        weights: (N, 98, 44) current CQ and QX rows (see the module docstring).
        initial: (N, 98, 44) the episode's initial rows.
        qualities: (N, 5) quality levels.
        inverse_best_quality: (N,) ``1 / max(q)``, or 0 when every quality is 0.
        target_weight: (N, 98) ``1 / n_targets`` on target subject rows, else 0.
        row_score: (N, 98) ``weights[:, r, :5] . q`` (meaningful on CQ rows).
        row_drift: (N, 98) squared distance of each row from its initial value.
        row_energy: (N, 98) sum of squares of each row (meaningful on QX rows).
        target_score: (N,) mean target score ``T``.
        drift_sq: (N, 2) ``||CQ - CQ0||_F^2`` and ``||QX - QX0||_F^2``.
        drift: (N,) ``||CQ - CQ0||_F + ||QX - QX0||_F``.
        step_size: Size of one adjustment, which scales ``recent_improvement``.
    """

    observation: np.ndarray
    weights: np.ndarray
    initial: np.ndarray
    qualities: np.ndarray
    inverse_best_quality: np.ndarray
    target_weight: np.ndarray
    row_score: np.ndarray
    row_drift: np.ndarray
    row_energy: np.ndarray
    target_score: np.ndarray
    drift_sq: np.ndarray
    drift: np.ndarray
    step_size: float

    @classmethod
    def zeros(
        cls, n: int, step_size: float, size: int = LAYOUT.size, *, xp: Any = np, device: Any = None
    ) -> WeightState:
        """An empty state for ``n`` trainees with observations of ``size`` values; fill it with :func:`reset`.

        Args:
            n: Number of trainees.
            step_size: Size of one adjustment.
            size: Values per observation.
            xp: The array namespace of the state (:func:`fitness_weights_env.backend.namespace`); numpy by default.
            device: The device of its arrays (``None``: the namespace's default).
        """

        def zeros(*shape: int) -> Any:
            return xp.zeros(shape, dtype=xp.float64, device=device)

        return cls(
            observation=xp.zeros((n, size), dtype=xp.float32, device=device),
            weights=zeros(n, N_ROWS, N_COLS),
            initial=zeros(n, N_ROWS, N_COLS),
            qualities=zeros(n, N_QUALITIES),
            inverse_best_quality=zeros(n),
            target_weight=zeros(n, N_ROWS),
            row_score=zeros(n, N_ROWS),
            row_drift=zeros(n, N_ROWS),
            row_energy=zeros(n, N_ROWS),
            target_score=zeros(n),
            drift_sq=zeros(n, 2),
            drift=zeros(n),
            step_size=step_size,
        )

    def to_numpy(self) -> WeightState:
        """The state in numpy arrays: itself for the numpy backend, else a host copy."""
        if type(self.weights) is np.ndarray:
            return self
        arrays = {f.name: to_numpy(getattr(self, f.name)) for f in fields(self) if f.name != "step_size"}
        return WeightState(**arrays, step_size=self.step_size)

    def subset(self, index: slice) -> WeightState:
        """The trainees in ``index`` as a state of views (no copy)."""
        arrays = {f.name: getattr(self, f.name)[index] for f in fields(self) if f.name != "step_size"}
        return WeightState(**arrays, step_size=self.step_size)

    @property
    def cq(self) -> np.ndarray:
        """(N, 93, 5) view of the current CQ matrices."""
        return self.weights[:, :N_SUBJECTS, :N_QUALITIES]

    @property
    def qx(self) -> np.ndarray:
        """(N, 5, 44) view of the current QX matrices."""
        return self.weights[:, N_SUBJECTS:, :N_EXERCISES]

    @property
    def target_mask(self) -> np.ndarray:
        """(N, 93) float32 view of the observation's target slice: 1 on target subjects, else 0."""
        return self.observation[:, LAYOUT.targets]


@dataclass
class Outcome:
    """What taking ``actions`` would do, computed by :func:`evaluate` without changing the state.

    Per-action arrays have the shape of ``actions`` (``(N,)`` or ``(N, K)``); ``new_rows`` adds a
    trailing axis of 44.
    """

    rows: Any
    new_rows: Any
    row_score: Any
    row_drift: Any
    row_energy: Any
    target_score: Any
    drift_sq: Any
    drift: Any
    reward: Any


def _drift(drift_sq: Any) -> Any:
    """``||CQ - CQ0||_F + ||QX - QX0||_F`` from the squared norms (..., 2), clamped at 0 against rounding."""
    xp = array_namespace(drift_sq)
    return xp.vecdot(xp.sqrt(xp.maximum(drift_sq, 0.0)), _tables(drift_sq).ones_matrices)


def _adjusted(rows: Any, entry: Any, cols: Any, deltas: Any) -> Any:
    """The rows (in place) after their cells ``cols`` moved by ``deltas`` within [0, 1], each divided by its sum."""
    xp = array_namespace(rows)
    rows[entry, cols] = xp.minimum(xp.maximum(rows[entry, cols] + deltas, 0.0), 1.0)
    rows *= (1.0 / xp.vecdot(rows, _tables(rows).ones_cols))[:, None]
    return rows


def _row_drift(new: Any, initial: Any, row_drift: Any, drift_sq: Any, actions: Any) -> tuple[Any, Any]:
    """The new rows' squared drift, and the matrices' totals ``drift_sq`` after the change (one entry per row).

    ``initial`` and ``row_drift`` are the adjusted rows' initial values and current squared drifts. Only the
    adjusted row's term of a total differs from the current one.
    """
    xp = array_namespace(new)
    difference = new - initial
    new_drift = xp.vecdot(difference, difference)
    return new_drift, drift_sq + (new_drift - row_drift)[:, None] * _tables(new).action_matrix[actions]


def evaluate(state: WeightState, actions: Any, deltas: Any, drift_coef: float) -> Outcome:
    """Evaluate actions of shape ``(N,)`` or ``(N, K)`` (K candidates per trainee) without changing the state.

    Args:
        state: The trainees.
        actions: Valid action indices (see :func:`check_actions`).
        deltas: The change of each adjusted cell, broadcastable to ``actions``.
        drift_coef: Coefficient of the drift penalty.
    """
    xp, tables, device = array_namespace(state.weights), _tables(state.weights), device_of(state.weights)
    n_trainees, shape = state.weights.shape[0], actions.shape
    trainee = xp.arange(n_trainees, device=device)
    candidates = actions.ndim > 1
    if candidates:  # one entry per (trainee, candidate), trainee-major
        flat = xp.reshape(actions, (-1,))
        trainee = xp.reshape(xp.broadcast_to(trainee[:, None], shape), (-1,))
        entry = xp.arange(flat.shape[0], device=device)
        deltas = xp.asarray(deltas, dtype=state.weights.dtype, device=device)
        deltas = xp.reshape(xp.broadcast_to(deltas, shape), (-1,))
    else:
        flat, entry = actions, trainee

    def own(x: Any) -> Any:  # a per-trainee array, one value per entry
        return x[trainee] if candidates else x

    rows, cols = tables.action_row[flat], tables.action_col[flat]
    new = _adjusted(state.weights[trainee, rows], entry, cols, deltas)
    score = xp.vecdot(new[:, :N_QUALITIES], own(state.qualities))
    initial, row_drift = state.initial[trainee, rows], state.row_drift[trainee, rows]
    drift_sq, matrix_drift_sq = _row_drift(new, initial, row_drift, own(state.drift_sq), flat)
    energy = xp.vecdot(new, new)
    drift = _drift(matrix_drift_sq)
    target_score = own(state.target_score) + state.target_weight[trainee, rows] * (
        score - state.row_score[trainee, rows]
    )
    outcome = Outcome(
        rows=rows,
        new_rows=new,
        row_score=score,
        row_drift=drift_sq,
        row_energy=energy,
        target_score=target_score,
        drift_sq=matrix_drift_sq,
        drift=drift,
        reward=reward(target_score, drift, drift_coef),
    )
    if candidates:
        for field in fields(outcome):
            value = getattr(outcome, field.name)
            setattr(outcome, field.name, xp.reshape(value, (*shape, *value.shape[1:])))
    return outcome


def apply(state: WeightState, actions: Any, deltas: Any, drift_coef: float) -> Outcome:
    """Apply one action per trainee to the matrices and their row statistics, in place; not the metrics.

    The matrix half of a step, which v1's kernel shares (:mod:`fitness_weights_env.training_dynamics`).
    The arguments are :func:`step`'s; returns the outcome :func:`evaluate` gave.
    """
    xp = array_namespace(state.weights)
    outcome = evaluate(state, actions, deltas, drift_coef)
    trainee, rows = xp.arange(actions.shape[0], device=device_of(state.weights)), outcome.rows
    state.weights[trainee, rows] = outcome.new_rows
    state.row_score[trainee, rows] = outcome.row_score
    state.row_drift[trainee, rows] = outcome.row_drift
    state.row_energy[trainee, rows] = outcome.row_energy
    state.target_score, state.drift_sq, state.drift = outcome.target_score, outcome.drift_sq, outcome.drift
    return outcome


@dataclass
class RowChange:
    """One action per trainee, applied by :func:`move_rows`: the adjusted rows (N,), before and after (N, 44)."""

    rows: Any
    old_rows: Any
    new_rows: Any


def move_rows(state: WeightState, actions: Any, deltas: Any) -> RowChange:
    """Apply one action per trainee to the matrices and keep the drift current, in place; nothing of v0's reward.

    The matrix half of a step for v1's kernel (:mod:`fitness_weights_env.training_dynamics`): the cell moves and
    the row is renormalized as in :func:`apply`, and ``row_drift``, ``drift_sq`` and ``drift`` follow; v0's
    scores, energies and metrics are left as they are (v1 has its own).
    """
    xp, tables = array_namespace(state.weights), _tables(state.weights)
    trainee = xp.arange(actions.shape[0], device=device_of(state.weights))
    rows, cols = tables.action_row[actions], tables.action_col[actions]
    # each trainee's adjusted row by its flat index: a take is cheaper than indexing with two arrays
    flat = trainee * N_ROWS + rows
    weights, initial = xp.reshape(state.weights, (-1, N_COLS)), xp.reshape(state.initial, (-1, N_COLS))
    row_drifts = xp.reshape(state.row_drift, (-1,))
    old = xp.take(weights, flat, axis=0)
    new = _adjusted(xp.asarray(old, copy=True), trainee, cols, deltas)
    previous = xp.take(initial, flat, axis=0), xp.take(row_drifts, flat)
    row_drift, state.drift_sq = _row_drift(new, *previous, state.drift_sq, actions)
    state.drift = _drift(state.drift_sq)
    weights[flat] = new
    row_drifts[flat] = row_drift
    return RowChange(rows, old, new)


def step(state: WeightState, actions: Any, deltas: Any, drift_coef: float) -> Any:
    """Apply one action per trainee, update the state and observation in place, and return the rewards.

    Args:
        state: The trainees.
        actions: (N,) valid action indices.
        deltas: (N,) change of each adjusted cell (``+step_size`` for ``adjustment="increase"``).
        drift_coef: Coefficient of the drift penalty.
    """
    previous_target_score = state.target_score
    outcome = apply(state, actions, deltas, drift_coef)
    _write_metrics(state, slice(None), previous_target_score)
    return outcome.reward


def reset(state: WeightState, index: Any, vectors: Any, cq: Any, qx: Any) -> None:
    """Start new episodes for the trainees at ``index``.

    Args:
        state: The trainees.
        index: Which trainees (an index array or a slice).
        vectors: (k, 198) their trainee vectors.
        cq: (k, 93, 5) their initial CQ.
        qx: (k, 5, 44) their initial QX.
    """
    xp = array_namespace(state.weights)
    dtype = state.weights.dtype
    reset_matrices(state, index, vectors, cq, qx)
    qualities = xp.astype(vectors[:, LAYOUT.qualities], dtype)
    state.qualities[index] = qualities
    best = xp.max(qualities, axis=-1)
    state.inverse_best_quality[index] = xp.where(best > 0.0, 1.0 / xp.where(best > 0.0, best, 1.0), 0.0)
    mask = xp.astype(vectors[:, LAYOUT.targets], dtype)
    target_weight = mask / xp.maximum(xp.vecdot(mask, _tables(mask).ones_cq), 1.0)[:, None]
    state.target_weight[index, :N_SUBJECTS] = target_weight
    row_score = xp.vecdot(cq, qualities[:, None, :])
    state.row_score[index, :N_SUBJECTS] = row_score
    state.row_energy[index, :N_SUBJECTS] = xp.vecdot(cq, cq)
    state.row_energy[index, N_SUBJECTS:] = xp.vecdot(qx, qx)
    state.target_score[index] = xp.vecdot(target_weight, row_score)
    _write_metrics(state, index, state.target_score[index])


def reset_matrices(state: WeightState, index: Any, vectors: Any, cq: Any, qx: Any) -> None:
    """The matrix half of :func:`reset` (v1's, with :func:`move_rows`): the vectors, the matrices, no drift yet."""
    state.observation[index, : LAYOUT.size] = vectors
    # Only the matrix cells are written: the padding of ``weights`` is 0 from creation on.
    for matrix in (state.weights, state.initial):
        matrix[index, :N_SUBJECTS, :N_QUALITIES] = cq
        matrix[index, N_SUBJECTS:, :N_EXERCISES] = qx
    state.row_drift[index] = 0.0
    state.drift_sq[index] = 0.0
    state.drift[index] = 0.0


def _write_metrics(state: WeightState, index: Any, previous_target_score: Any) -> None:
    """Recompute the 4 metrics of the trainees at ``index`` into the observation's metrics slice."""
    xp = array_namespace(state.weights)
    target_score = state.target_score[index]
    metrics = state.observation[:, LAYOUT.metrics]  # a view, columns in METRIC_NAMES order
    change = (target_score - previous_target_score) * (0.5 / state.step_size)
    metrics[index, _RECENT_IMPROVEMENT] = xp.minimum(xp.maximum(change + 0.5, 0.0), 1.0)
    qx_energy = xp.vecdot(state.row_energy[index, N_SUBJECTS:], _tables(state.weights).ones_qx)  # QX's squares
    metrics[index, _INJURY_RISK] = xp.maximum(qx_energy * _INJURY_SCALE - _INJURY_OFFSET, 0.0)
    metrics[index, _TRAINING_EFFICIENCY] = xp.minimum(target_score * state.inverse_best_quality[index], 1.0)
    metrics[index, _CONSISTENCY] = xp.exp(-state.drift[index])


def step_info(state: WeightState, index: Any = slice(None), matrices: bool = True) -> dict[str, Any]:
    """The info of the trainees at ``index``: batched for a slice or an index array, unbatched for an int.

    Keys: ``cq_matrix`` (93, 5) and ``qx_matrix`` (5, 44) float32 copies (only with ``matrices=True``);
    ``target_scores`` (93,) float32, ``CQ[s] . q`` for each target subject and 0 elsewhere;
    ``mean_target_score`` and ``drift``, float64. Batched arrays have a leading axis.
    """
    xp = array_namespace(state.weights)
    f32 = state.observation.dtype
    info = {}
    if matrices:
        info["cq_matrix"] = xp.astype(state.weights[index, :N_SUBJECTS, :N_QUALITIES], f32)
        info["qx_matrix"] = xp.astype(state.weights[index, N_SUBJECTS:, :N_EXERCISES], f32)
    targets = state.observation[index, LAYOUT.targets]  # 1 on target subjects, else 0
    info["target_scores"] = xp.astype(state.row_score[index, :N_SUBJECTS], f32) * targets
    for key, values in (("mean_target_score", state.target_score), ("drift", state.drift)):
        value = values[index]  # a float for an int index (numpy's float64 subclasses float)
        info[key] = xp.asarray(value, copy=True) if value.ndim else value
    return info
