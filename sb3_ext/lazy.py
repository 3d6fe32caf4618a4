"""Names of a package that load their module on first use (PEP 562), so that importing the package stays cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, modules: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for the names of ``modules`` (name -> the module that holds it).

    Args:
        package: The package's ``__name__``.
        modules: Each lazily loaded name and its module.
        namespace: The package's ``globals()``: a loaded name is stored there, so later lookups skip the hook.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted([*namespace, *modules])

    return __getattr__, __dir__
