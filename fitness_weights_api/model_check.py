"""The dry run a model passes before the registry takes it, in a child process bounded in time and memory.

:func:`dry_run` builds the policy from a :class:`~fitness_weights_api.model_format.SafeModel` (strict weights),
runs :data:`DRY_RUN_STEPS` optimize steps on a held-out trainee in the env its manifest names (``env_id``) and,
when the policy has prediction heads, one prediction, and checks that every number is finite and every matrix
has the catalog's shape with rows summing to 1. It runs in :class:`ModelChecker`'s child process
(``python -m fitness_weights_api.model_check``), which limits its own address space (``RLIMIT_AS``) before it
imports torch; the parent kills it when a check takes longer than its time limit. The child is kept between
checks (importing torch takes seconds; a check takes tens of milliseconds) and started again after any failure,
so a model that exhausted it affects no later check. The child exits when its parent does (its input closes).

Protocol: the parent writes the model file's length (8 bytes, little-endian) and its bytes; the child answers
one JSON line, ``{"ok": true, "policy": ..., "predicts": ...}`` or ``{"ok": false, "field": ..., "error": ...}``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import struct
import subprocess
import sys
import threading
import time
from typing import IO, Any

from fitness_weights_env.errors import FieldError

__all__ = ["DRY_RUN_STEPS", "ModelCheckError", "ModelChecker", "dry_run", "shared_checker"]

DRY_RUN_STEPS = 4
"""Optimize steps of the dry run."""
DRY_RUN_SEED = 10_007
"""Seed of the dry run's held-out trainee (among the evaluation's held-out seeds, never a training seed)."""

_LENGTH = struct.Struct("<Q")
_START_TIMEOUT_S = 120.0  # importing torch on a busy machine


class ModelCheckError(FieldError):
    """A model that failed its dry run; ``field`` names what failed, ``reason`` says how."""


def dry_run(model: Any) -> dict[str, Any]:
    """Build the policy and run it (see the module docstring); what it found.

    Raises:
        ModelFormatError: The weights or keyword arguments do not build the policy.
        ModelCheckError: The policy's answers are not finite, or have the wrong shapes (``dry_run``).
    """
    import numpy as np

    from fitness_weights_api.model_format import load_policy
    from fitness_weights_api.weights import optimize_weights, predict_weights
    from fitness_weights_env import CATALOG, sample_profile

    served = load_policy(model, device="cpu")
    env_id = served.manifest["env_id"]  # the env the service will run it in
    profile = sample_profile(np.random.default_rng(DRY_RUN_SEED))
    results = {"optimize": optimize_weights(served, profile, DRY_RUN_STEPS, seed=DRY_RUN_SEED, env_id=env_id)}
    predicts = hasattr(served.policy, "predict_weights")
    if predicts:
        results["predict"] = predict_weights(served, profile, env_id=env_id)
    for kind, result in results.items():
        if result.cq.shape != (CATALOG.n_subjects, CATALOG.n_qualities) or result.qx.shape != (
            CATALOG.n_qualities,
            CATALOG.n_exercises,
        ):
            raise ModelCheckError("dry_run", f"{kind} gave matrices of shapes {result.cq.shape}, {result.qx.shape}")
        numbers = [result.cq, result.qx, list(result.target_scores.values())]
        if result.confidence is not None:
            numbers.append([result.confidence])
        if not all(np.isfinite(np.asarray(values, dtype=np.float64)).all() for values in numbers):
            raise ModelCheckError("dry_run", f"{kind} gave NaN or infinite values")
        for matrix in (result.cq, result.qx):
            if not np.allclose(np.asarray(matrix, np.float64).sum(axis=1), 1.0, atol=1e-3):
                raise ModelCheckError("dry_run", f"{kind} gave matrix rows that do not sum to 1")
    return {"policy": served.manifest["policy"], "predicts": predicts}


class ModelChecker:
    """A child process that dry-runs models, each check bounded by ``timeout_s`` and the child by ``memory_mb``.

    Thread-safe (one check at a time). Use :func:`shared_checker` for the process's checker of given limits.

    Args:
        timeout_s: Seconds one check may take (the child is killed and started again after).
        memory_mb: The child's address-space limit in MiB.
        max_bytes: Largest model file the child reads.
    """

    def __init__(self, timeout_s: float, memory_mb: int, max_bytes: int) -> None:
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None

    def check(self, content: bytes) -> dict[str, Any]:
        """Dry-run the model file ``content``; what :func:`dry_run` found.

        Raises:
            ModelCheckError: The dry run failed, ran out of time or of memory (``field`` names the cause).
            ModelFormatError: The child found the file or its weights invalid.
        """
        from fitness_weights_api.model_format import ModelFormatError

        with self._lock:
            process = self._started()
            try:
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(_LENGTH.pack(len(content)) + content)
                process.stdin.flush()
                line = _read_line(process.stdout, self.timeout_s)
            except TimeoutError:  # before OSError, of which it is a subclass
                self._stop()
                raise ModelCheckError("dry_run", f"took longer than {self.timeout_s:g} s") from None
            except OSError:  # a broken pipe: the child died
                self._stop()
                raise ModelCheckError("dry_run", "the check process failed") from None
            if not line:
                code = self._stop()
                reason = f"was killed by signal {-code}" if code is not None and code < 0 else "ended"
                raise ModelCheckError("dry_run", f"the check process {reason} (out of memory or crashed)")
            try:
                answer = json.loads(line)
            except ValueError:  # something else wrote to the child's output
                self._stop()
                raise ModelCheckError("dry_run", "the check process answered out of protocol") from None
            if answer["ok"]:
                return answer
            if answer.get("memory"):
                self._stop()
                raise ModelCheckError("dry_run", f"needed more than its memory limit of {self.memory_mb} MiB")
            error = ModelFormatError if answer.get("format") else ModelCheckError
            raise error(answer["field"], answer["error"])

    def close(self) -> None:
        """Stop the child process."""
        with self._lock:
            self._stop()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        command = [
            sys.executable,
            "-m",
            "fitness_weights_api.model_check",
            f"--memory-mb={self.memory_mb}",
            f"--max-bytes={self.max_bytes}",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
        )
        assert self._process.stdout is not None
        try:
            ready = _read_line(self._process.stdout, _START_TIMEOUT_S)
        except TimeoutError:
            ready = b""
        if json.loads(ready or b"{}").get("ready") is not True:
            self._stop()
            raise ModelCheckError("dry_run", f"the check process did not start (memory limit {self.memory_mb} MiB?)")
        return self._process

    def _stop(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        with contextlib.suppress(OSError):
            process.kill()
        code = process.wait()
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        return code


def _read_line(stream: IO[bytes], timeout_s: float) -> bytes:
    """One line from a pipe, or ``b""`` at its end; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    fd = stream.fileno()
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 65_536)
        if not chunk:
            return b""
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)


_SHARED: dict[tuple[float, int, int], ModelChecker] = {}
_SHARED_LOCK = threading.Lock()


def shared_checker(timeout_s: float, memory_mb: int, max_bytes: int) -> ModelChecker:
    """This process's checker with these limits (started at its first check, stopped at exit)."""
    key = (float(timeout_s), int(memory_mb), int(max_bytes))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = ModelChecker(*key)
        return _SHARED[key]


@atexit.register
def _close_shared() -> None:
    for checker in _SHARED.values():
        checker.close()


# -- the child -----------------------------------------------------------------------------------------------


def _serve(memory_mb: int, max_bytes: int) -> int:
    import resource

    limit = memory_mb << 20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:  # started by a job under a lower limit: that one holds
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # before torch: everything below counts
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer

    def answer(data: dict[str, Any]) -> None:
        stdout.write(json.dumps(data).encode() + b"\n")
        stdout.flush()

    try:
        import torch as th

        import fitness_weights_api.weights  # noqa: F401  (the heavy imports happen before "ready")
        import sb3_ext.policies  # noqa: F401
        from fitness_weights_api.model_format import ModelFormatError, read_model

        th.set_num_threads(1)
    except MemoryError:
        return 1
    answer({"ready": True})
    while header := stdin.read(_LENGTH.size):
        if len(header) < _LENGTH.size:
            return 1
        (length,) = _LENGTH.unpack(header)
        if length > max_bytes:
            return 1
        content = stdin.read(length)
        try:
            found = dry_run(read_model(content, max_bytes))
            answer({"ok": True, **found})
        except ModelFormatError as err:
            answer({"ok": False, "format": True, "field": err.field, "error": str(err).removeprefix(f"{err.field}: ")})
        except ModelCheckError as err:
            answer({"ok": False, "field": err.field, "error": str(err).removeprefix(f"{err.field}: ")})
        except MemoryError:
            answer({"ok": False, "memory": True, "field": "dry_run", "error": "out of memory"})
            return 1
        except Exception as err:  # the policy's own failure: name its type, never the traceback
            answer({"ok": False, "field": "dry_run", "error": f"the policy failed to run ({type(err).__name__})"})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Serve checks on stdin and stdout (started by :class:`ModelChecker`, not by hand)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m fitness_weights_api.model_check")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--max-bytes", type=int, required=True)
    args = parser.parse_args(argv)
    return _serve(args.memory_mb, args.max_bytes)


if __name__ == "__main__":
    sys.exit(main())
