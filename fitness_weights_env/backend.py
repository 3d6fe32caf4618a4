"""Array backends of the kernels: numpy (the default) and torch, through the array API standard.

The dynamics are written once, with array-API operations taken from the namespace of their arrays
(:func:`array_namespace`), so the same functions step numpy arrays on the host or torch tensors on any device.
numpy arrays take numpy itself, without a lookup; torch tensors take ``array_api_compat``'s torch namespace,
which gives torch the standard's names (``vecdot``, ``astype``, ``take``, ...). Module constants that the kernel
indexes or multiplies with live in numpy; :func:`tables_like` gives them in the namespace and on the device of
an array, converted once per device and cached.

Only the numpy backend needs nothing beyond numpy: torch and ``array_api_compat`` are imported when a torch
backend is asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numpy as np

from fitness_weights_env.errors import FieldError

__all__ = ["BACKENDS", "Backend", "array_namespace", "device_of", "namespace", "tables_like", "to_numpy"]

Backend = Literal["numpy", "torch"]
BACKENDS: tuple[Backend, ...] = ("numpy", "torch")
"""The array backends a vector env takes (``backend=``)."""

T = TypeVar("T")


def array_namespace(x: Any) -> Any:
    """The array-API namespace of ``x``: numpy for numpy arrays (and Python scalars), the compat torch for tensors."""
    if type(x) is np.ndarray:  # the common case, without the lookup
        return np
    get = getattr(x, "__array_namespace__", None)
    if get is not None:
        return get()
    if type(x).__module__.startswith("torch"):
        import array_api_compat

        return array_api_compat.array_namespace(x)
    return np


def device_of(x: Any) -> Any:
    """The device of an array, for the namespace's ``device=`` arguments (``None`` for numpy: the host)."""
    if isinstance(x, np.ndarray):
        return None
    import array_api_compat

    return array_api_compat.device(x)


def namespace(backend: Backend) -> Any:
    """The array namespace of a backend.

    Raises:
        FieldError: An unknown backend, or ``"torch"`` without torch and ``array_api_compat`` installed.
    """
    if backend == "numpy":
        return np
    if backend == "torch":
        try:
            import array_api_compat.torch as xp
        except ImportError as error:
            raise FieldError("backend", f"'torch' needs torch and array-api-compat installed ({error.name})") from None
        return xp
    raise FieldError("backend", f"must be one of {', '.join(map(repr, BACKENDS))}", backend)


def to_numpy(x: Any) -> Any:
    """A numpy array of ``x`` (a copy from a device; numpy arrays and other values as they are)."""
    if isinstance(x, np.ndarray) or not type(x).__module__.startswith("torch"):
        return x
    return x.detach().cpu().numpy()


def tables_like(tables: T, x: Any, convert: Callable[[Any, Any, T], T]) -> T:
    """``tables`` (numpy constants) in the namespace and on the device of ``x``, converted once per device.

    Args:
        tables: The numpy constants, returned as they are for a numpy ``x``.
        x: An array of the kernel's state.
        convert: ``convert(xp, device, tables)`` makes the converted tables (called once per namespace and device).
    """
    if type(x) is np.ndarray:
        return tables
    return _converted(convert, tables, array_namespace(x), device_of(x))


@functools.cache
def _converted(convert: Callable[[Any, Any, Any], Any], tables: Any, xp: Any, device: Any) -> Any:
    return convert(xp, device, tables)
