"""Learning-rate schedules usable wherever Stable-Baselines3 takes a schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

from fitness_weights_env.errors import FieldError

__all__ = ["CosineSchedule", "ScaledSchedule"]


class CosineSchedule:
    """Cosine annealing from ``initial`` to ``final`` over training; picklable, so models save and load.

    SB3 calls a schedule with ``progress_remaining``, which goes from 1 at the start of training to 0
    at the end. The value is ``final + (initial - final) * (1 + cos(pi * (1 - progress_remaining))) / 2``.

    Args:
        initial: Value at the start of training.
        final: Value at the end of training.

    Example:
        ``PPO("AttnCQQXPolicy", env, learning_rate=CosineSchedule(3e-4, 3e-5))``
    """

    def __init__(self, initial: float, final: float = 0.0) -> None:
        for name, value in (("initial", initial), ("final", final)):
            if not (math.isfinite(value) and value >= 0):
                raise FieldError(name, "must be a non-negative number", value)
        self.initial = float(initial)
        self.final = float(final)

    def __call__(self, progress_remaining: float) -> float:
        """The value at ``progress_remaining`` (1 at the start, 0 at the end)."""
        done = min(max(1.0 - progress_remaining, 0.0), 1.0)
        return self.final + (self.initial - self.final) * 0.5 * (1.0 + math.cos(math.pi * done))

    def __repr__(self) -> str:
        return f"CosineSchedule(initial={self.initial}, final={self.final})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CosineSchedule) and (self.initial, self.final) == (other.initial, other.final)

    def __hash__(self) -> int:
        return hash((self.initial, self.final))


class ScaledSchedule:
    """A schedule (or a constant) times ``factor``; picklable. Scaling a :class:`ScaledSchedule` multiplies the factors.

    :class:`sb3_ext.live_params.LiveParams` uses it for a live ``lr_scale``: the run keeps its schedule's shape.

    Args:
        base: A schedule of ``progress_remaining``, or a number.
        factor: The factor, above 0.
    """

    def __init__(self, base: Callable[[float], float] | float, factor: float) -> None:
        if not (math.isfinite(factor) and factor > 0):
            raise FieldError("factor", "must be a number above 0", factor)
        self.base: Callable[[float], float] | float = base
        self.factor: float = float(factor)
        if isinstance(base, ScaledSchedule):  # one level: the factors multiply
            self.base, self.factor = base.base, base.factor * self.factor

    def __call__(self, progress_remaining: float) -> float:
        """The base's value at ``progress_remaining``, times the factor."""
        base = self.base(progress_remaining) if callable(self.base) else self.base
        return float(base) * self.factor

    def __repr__(self) -> str:
        return f"ScaledSchedule(base={self.base!r}, factor={self.factor})"
