"""``LiveParams``: change a running PPO's hyperparameters at the next rollout boundary, from any source.

SB3 has no way to change a hyperparameter while ``learn`` runs, and the obvious one fails: a rate written into the
optimizer's ``param_groups`` is overwritten by ``_update_learning_rate`` at the next ``train()`` (SB3 #1336), and
``clip_range`` is a schedule that ``train()`` calls. :class:`LiveParams` is a callback that, at the end of each
rollout (after collection, before the update that follows it), takes the pending changes from its source,
validates each one, applies it where SB3 reads it, logs it and acknowledges it with the timestep at which it took
effect. The update right after the boundary is the first to use the new value.

=================  ==========================  ==================================================================
name               value                       where it is set
=================  ==========================  ==================================================================
``learning_rate``  a number in (0, 1]          ``model.learning_rate`` and ``model.lr_schedule`` (constant)
``lr_scale``       a number in (0, 100]        both, as the current schedule times the factor (:class:`ScaledSchedule`)
``ent_coef``       a number >= 0               ``model.ent_coef``
``clip_range``     a number in (0, 1]          ``model.clip_range`` (a constant schedule)
``vf_coef``        a number >= 0               ``model.vf_coef``
``max_grad_norm``  a number > 0                ``model.max_grad_norm``
``n_epochs``       an integer from 1 to 100    ``model.n_epochs``
``target_kl``      a number > 0, or ``None``   ``model.target_kl``
``cq_coef``        a number >= 0               ``model.cq_coef`` (:class:`sb3_ext.PPO`)
``qx_coef``        a number >= 0               ``model.qx_coef``
``error_coef``     a number >= 0               ``model.error_coef``
=================  ==========================  ==================================================================

The learning rate goes through the schedule, so :class:`sb3_ext.PPO`'s auxiliary parameter groups keep their
``lr_multiplier``; ``learning_rate`` and the schedule are set alike, so the change survives ``save``/``load``
(``load`` rebuilds the schedule from ``model.learning_rate``), as every other attribute does. The buffer sizes
(``n_steps``, ``batch_size``, ``n_envs``) cannot change while the rollout buffer exists: a request for them is
refused, naming the field.

A source is a ``queue.Queue`` (drained without blocking), a callable returning the pending changes (a database
reader), or any other iterable, consumed as the changes come. A change is a :class:`ParamChange` or a mapping
with ``name`` and ``value`` (and optionally ``request_id``). An invalid change is not applied: its
acknowledgement carries the error.

``model.learn(100_000, callback=LiveParams(queue, on_ack=print))``; ``queue.put({"name": "ent_coef", "value": 0.01})``
"""

from __future__ import annotations

import math
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import FloatSchedule

from fitness_weights_env.errors import FieldError
from sb3_ext.schedules import ScaledSchedule

__all__ = ["FIXED_PARAMS", "LIVE_PARAMS", "LiveParams", "ParamAck", "ParamChange", "check_change"]

_NUMBER_RULES: dict[str, tuple[float, float, bool, str]] = {
    # name: (low, high, low included, the rule in words)
    "learning_rate": (0.0, 1.0, False, "must be a number above 0 and at most 1"),
    "lr_scale": (0.0, 100.0, False, "must be a number above 0 and at most 100"),
    "ent_coef": (0.0, 1e3, True, "must be a number from 0 to 1000"),
    "clip_range": (0.0, 1.0, False, "must be a number above 0 and at most 1"),
    "vf_coef": (0.0, 1e3, True, "must be a number from 0 to 1000"),
    "max_grad_norm": (0.0, 1e6, False, "must be a number above 0 and at most 1e6"),
    "target_kl": (0.0, 1e3, False, "must be a number above 0 and at most 1000, or None"),
    "cq_coef": (0.0, 1e6, True, "must be a number from 0 to 1e6"),
    "qx_coef": (0.0, 1e6, True, "must be a number from 0 to 1e6"),
    "error_coef": (0.0, 1e6, True, "must be a number from 0 to 1e6"),
}
LIVE_PARAMS = (*_NUMBER_RULES, "n_epochs")
"""The parameters a running model takes (module docstring)."""
FIXED_PARAMS = ("n_steps", "batch_size", "n_envs")
"""Sizes fixed by the rollout buffer: refused while training runs."""


@dataclass(frozen=True)
class ParamChange:
    """A requested change: ``name`` (one of :data:`LIVE_PARAMS`) to ``value``, with the requester's id."""

    name: str
    value: Any
    request_id: str | None = None


@dataclass(frozen=True)
class ParamAck:
    """What became of a change.

    Attributes:
        name: The parameter.
        value: The value now in effect (the requested one, as a float or int), or the requested one if refused.
        previous: The value before (``None`` if refused).
        timestep: ``model.num_timesteps`` when it took effect, or was refused.
        applied: Whether it took effect.
        error: Why it was refused (``"<field>: <reason>"``), else ``None``.
        request_id: The change's ``request_id``.
    """

    name: str
    value: Any
    previous: Any
    timestep: int
    applied: bool
    error: str | None = None
    request_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def check_change(name: Any, value: Any, model: Any = None) -> float | int | None:
    """The validated value of a change to ``name``, or :class:`FieldError` naming the parameter.

    Args:
        name: One of :data:`LIVE_PARAMS`.
        value: The new value.
        model: The model it is for: the CQ/QX coefficients need one with them (:class:`sb3_ext.PPO`).

    Raises:
        FieldError: An unknown or fixed parameter, or a value out of its range.
    """
    if not isinstance(name, str) or name not in LIVE_PARAMS:
        if name in FIXED_PARAMS:
            raise FieldError(str(name), "is fixed by the rollout buffer while training runs: start a new run")
        raise FieldError("name", f"must be one of {list(LIVE_PARAMS)}", name)
    if model is not None and name != "lr_scale" and not hasattr(model, name):
        raise FieldError(name, f"is not a parameter of {type(model).__name__}")
    if name == "n_epochs":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise FieldError(name, "must be an integer from 1 to 100", value)
        return int(value)
    if name == "target_kl" and value is None:
        return None
    low, high, low_included, rule = _NUMBER_RULES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FieldError(name, rule, value)
    if not (low <= value if low_included else low < value) or value > high:
        raise FieldError(name, rule, value)
    return float(value)


def _as_change(item: Any) -> ParamChange:
    if isinstance(item, ParamChange):
        return item
    if isinstance(item, Mapping):
        unknown = set(item) - {"name", "value", "request_id"}
        if unknown or "name" not in item or "value" not in item:
            raise FieldError("change", "must have 'name' and 'value' (and optionally 'request_id') only")
        request_id = item.get("request_id")
        return ParamChange(item["name"], item["value"], None if request_id is None else str(request_id)[:200])
    raise FieldError("change", "must be a ParamChange or a mapping with 'name' and 'value'")


class LiveParams(BaseCallback):
    """Applies requested hyperparameter changes at each rollout boundary (module docstring).

    Args:
        source: A ``queue.Queue``, a callable returning the pending changes, or an iterable of changes.
        on_ack: Called with each :class:`ParamAck`, applied or refused.
        verbose: 1 prints each acknowledgement.

    Attributes:
        acks: Every acknowledgement so far, in order.
    """

    def __init__(
        self,
        source: queue.Queue | Callable[[], Iterable[Any]] | Iterable[Any],
        on_ack: Callable[[ParamAck], None] | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self._source = source
        self._iterator: Iterator[Any] | None = None
        self.on_ack = on_ack
        self.acks: list[ParamAck] = []

    def _pending(self) -> list[Any]:
        source = self._source
        if isinstance(source, (queue.Queue, queue.SimpleQueue)):
            items = []
            while True:
                try:
                    items.append(source.get_nowait())
                except queue.Empty:
                    return items
        if callable(source):
            return list(source())
        if self._iterator is None:
            self._iterator = iter(source)
        return list(self._iterator)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.apply_pending()

    def apply_pending(self) -> list[ParamAck]:
        """Apply every pending change now; the acknowledgements, in order."""
        acks = []
        for item in self._pending():
            acks.append(self.apply(item))
        return acks

    def apply(self, item: Any) -> ParamAck:
        """Validate and apply one change to the model; log and acknowledge it."""
        timestep = int(self.model.num_timesteps)
        try:
            change = _as_change(item)
        except FieldError as error:
            return self._ack(ParamAck("", None, None, timestep, False, str(error)))
        try:
            value = check_change(change.name, change.value, self.model)
        except FieldError as error:
            return self._ack(ParamAck(change.name, change.value, None, timestep, False, str(error), change.request_id))
        previous = self._set(change.name, value)
        self.logger.record(f"live/{change.name}", value if value is not None else math.nan)
        return self._ack(ParamAck(change.name, value, previous, timestep, True, None, change.request_id))

    def _set(self, name: str, value: Any) -> Any:
        model: Any = self.model  # an on-policy algorithm: PPO's attributes
        progress = model._current_progress_remaining
        if name in ("learning_rate", "lr_scale"):
            previous = model.lr_schedule(progress)
            schedule = FloatSchedule(value) if name == "learning_rate" else ScaledSchedule(model.learning_rate, value)
            model.learning_rate = value if name == "learning_rate" else schedule
            model.lr_schedule = schedule
            return previous
        if name == "clip_range":
            previous = model.clip_range(progress)
            model.clip_range = FloatSchedule(value)
            return previous
        previous = getattr(model, name)
        setattr(model, name, value)
        return previous

    def _ack(self, ack: ParamAck) -> ParamAck:
        self.acks.append(ack)
        if ack.applied:
            self.logger.log(f"live parameter {ack.name}: {ack.previous} -> {ack.value} at timestep {ack.timestep}")
        else:
            self.logger.log(f"live parameter change refused at timestep {ack.timestep}: {ack.error}")
        if self.verbose:
            print(ack)
        if self.on_ack is not None:
            self.on_ack(ack)
        return ack
