"""The compiled minibatch loss of :class:`sb3_ext.PPO` (``compile=True`` or ``"auto"``), with its eager fallback.

One minibatch update of the attention policy makes thousands of small operations, and on CPU their dispatch costs
more than their arithmetic. ``torch.compile`` (TorchInductor) fuses the loss's forward and backward into a few
kernels. The first call compiles (tens of seconds cold; a few with a warm cache: TorchInductor keeps its compiled
graphs in a folder that later processes read, ``TORCHINDUCTOR_CACHE_DIR``, by default under the system's temporary
folder); measured in ``benchmarks/RESULTS.md``, "Policy cost".

Where compiling is not possible (Python or platform without TorchDynamo, no C++ compiler for the CPU backend) or
fails at the first call, the loss runs eagerly and the reason is given as a warning and in :attr:`CompiledLoss.note`.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch as th

__all__ = ["CompiledLoss", "compile_unsupported"]


def compile_unsupported(device: th.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or ``None`` when it can."""
    if not th._dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python or platform"
    if device.type == "cpu":
        compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
        if not any(shutil.which(name) for name in compilers if name):
            return "TorchInductor's CPU backend needs a C++ compiler (g++ or clang++), and none is on the PATH"
    return None


class CompiledLoss:
    """``loss`` compiled with ``torch.compile``, falling back to ``loss`` itself (module docstring).

    Args:
        loss: The eager function (``PPO.compute_loss``).
        device: Where it runs.
    """

    def __init__(self, loss: Callable[..., Any], device: th.device) -> None:
        self.eager = loss
        self.note: str | None = compile_unsupported(device)
        """Why the loss runs eagerly (``None`` while it runs compiled)."""
        self.compile_seconds: float | None = None
        """How long the first call took, compiling included (``None`` before it, or when eager)."""
        self._compiled = None if self.note is not None else th.compile(loss)
        if self.note is not None:
            warnings.warn(f"PPO(compile=...) trains eagerly: {self.note}", stacklevel=3)

    @property
    def compiled(self) -> bool:
        """Whether the loss runs compiled."""
        return self._compiled is not None

    def __call__(self, *args: Any) -> Any:
        """The loss of ``args``: compiled, after the first call's compilation; eagerly when compiling is off."""
        if self._compiled is None:
            return self.eager(*args)
        if self.compile_seconds is not None:
            return self._compiled(*args)
        start = time.perf_counter()
        try:
            result = self._compiled(*args)
        except Exception as err:  # TorchDynamo's and the backends' errors have no common base
            self._compiled, self.note = None, f"compiling the loss failed ({type(err).__name__})"
            warnings.warn(f"PPO(compile=...) trains eagerly: {self.note}", stacklevel=2)
            return self.eager(*args)
        self.compile_seconds = time.perf_counter() - start
        return result
