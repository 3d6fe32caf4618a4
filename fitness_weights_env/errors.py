"""The project's errors: one base class, and one error for a bad value of a named field.

Every error that FitnessWeights raises on purpose (a refused input, a missing model, a damaged store) is a
:class:`FitnessWeightsError`, in the three packages alike, so a caller can catch the project's errors and let
real bugs raise. A bad value of a named field (a profile field, a config key, a request field, an argument) is a
:class:`FieldError`; it is also a ``ValueError``, as Python's convention for a bad argument wants::

    try:
        profile = TraineeProfile(age=7, ...)
    except FieldError as err:
        print(err.field, err.reason)     # "age", "is outside [16, 65]"
"""

from __future__ import annotations

from typing import Any

__all__ = ["FieldError", "FitnessWeightsError", "check_int"]

_MAX_VALUE_CHARS = 80
"""The longest quoted value in an error message; a longer ``repr`` is cut."""

_NO_VALUE: Any = object()


class FitnessWeightsError(Exception):
    """Base class of the errors FitnessWeights raises on purpose."""


class FieldError(FitnessWeightsError, ValueError):
    """A bad value of the field ``field``.

    ``str(error)`` is ``"<field>: <reason>"``, followed by ``" (got <value>)"`` when the value is given: for a
    Python or command-line user, who typed it. A service answers ``field`` and ``reason`` only, which never quote
    the input.

    Args:
        field: The field, as the caller names it (``"age"``, ``"learning_rate"``, ``"target_subjects"``).
        reason: What is wrong, without the value (``"must be a finite number above 0"``).
        value: The value at fault, quoted in ``str(error)`` only (its ``repr``, cut to 80 characters).
    """

    def __init__(self, field: str, reason: str, value: Any = _NO_VALUE) -> None:
        self.field = field
        self.reason = reason
        message = f"{field}: {reason}"
        if value is not _NO_VALUE:
            text = repr(value)
            if len(text) > _MAX_VALUE_CHARS:
                text = text[: _MAX_VALUE_CHARS - 3] + "..."
            message += f" (got {text})"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # keeps field and reason across processes (multiprocessing)
        return (_rebuild_field_error, (type(self), self.field, self.reason, str(self)))


def _rebuild_field_error(cls: type[FieldError], field: str, reason: str, message: str) -> FieldError:
    error = cls.__new__(cls)
    error.field, error.reason = field, reason
    error.args = (message,)
    return error


def check_int(field: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) from ``low`` to ``high`` (no upper bound when ``None``).

    Raises:
        FieldError: It is not, naming ``field``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, "must be an integer", value)
    if value < low or (high is not None and value > high):
        bounds = f"at least {low}" if high is None else f"from {low} to {high}"
        raise FieldError(field, f"must be {bounds}", value)
    return value
