"""Process hygiene of ``fitness-weights serve --workers N``: workers die with their supervisor, no metrics leak.

With ``--workers N > 1`` uvicorn's ``Multiprocess`` supervisor spawns N worker processes and restarts those
that die. Two things would otherwise outlive a supervisor killed with ``SIGKILL`` (or the OOM killer):

- **Its workers**, which would keep serving with nothing to restart them. :func:`exit_with_supervisor`, called
  by every worker as it builds the app, asks Linux to send the worker ``SIGTERM`` (uvicorn's graceful
  shutdown) when its parent dies, and exits at once if the parent is already gone.
- **Its Prometheus multiprocess folder**, where each worker writes its figures. :class:`MetricsFolder` keeps
  one per ``serve`` under the service folder, ``HOME/metrics/serve-<hex>/``, owned by the supervisor through an
  ``flock`` on ``HOME/metrics/serve-<hex>.lock`` that it holds for its whole life (the lock goes with the
  process, however it ends). Each ``serve`` removes, as it starts, the folders whose lock no live process
  holds; several ``serve`` processes may share one home, and a live one's folder is never removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import secrets
import shutil
import signal
import sys
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: folders are removed at normal exit only
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_SUFFIX",
    "METRICS_DIR",
    "SUPERVISOR_PID_ENV",
    "MetricsFolder",
    "exit_with_supervisor",
    "remove_stale_metrics_folders",
]

SUPERVISOR_PID_ENV = "FITNESS_WEIGHTS_SUPERVISOR_PID"
"""The supervisor's process id, set by ``serve`` before it starts the workers (they inherit it)."""

METRICS_DIR = "metrics"
"""The folder of the service folder that holds each ``serve``'s metrics folder and its lock file."""

LOCK_SUFFIX = ".lock"

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_NAME = re.compile(r"^serve-[0-9a-f]+$")
_CLAIM_ATTEMPTS = 16

logger = logging.getLogger("fitness_weights_api")


# -- workers exit with their supervisor -------------------------------------------------------------------------


def exit_with_supervisor() -> None:
    """Make this worker get ``SIGTERM`` when its supervisor dies; exit now if it already has.

    A no-op unless :data:`SUPERVISOR_PID_ENV` is set, on Linux, in a process other than the supervisor (with
    ``--workers 1`` uvicorn serves from the supervisor's own process).

    ``PR_SET_PDEATHSIG`` fires when the *thread* that created this process exits, not the process. uvicorn's
    ``Multiprocess`` (0.54, ``uvicorn/supervisors/multiprocess.py``) starts every worker from the thread that
    calls ``Multiprocess.run()``: the first ones in ``init_processes``, replacements in
    ``keep_subprocess_alive``, and those of ``SIGHUP`` / ``SIGTTIN`` in ``handle_signals``, all called from the
    loop of ``run()``; ``serve`` calls ``run()`` from its main thread, so the signal comes only when the
    supervisor process ends. (The setting is cleared in a forked child: the training jobs a worker starts do
    not get it, and outlive the server as they are meant to.)

    Raises:
        ValueError: If :data:`SUPERVISOR_PID_ENV` is not a process id.
        OSError: If ``prctl`` fails.
        SystemExit: If the supervisor died before this call (this process's parent is no longer it).
    """
    text = os.environ.get(SUPERVISOR_PID_ENV)
    if not text or not sys.platform.startswith("linux"):
        return
    try:
        supervisor = int(text)
    except ValueError:
        raise ValueError(f"{SUPERVISOR_PID_ENV}: expected a process id, got {text!r}") from None
    if supervisor == os.getpid():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    libc.prctl.restype = ctypes.c_int
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    # The supervisor may have died between spawning us and the prctl: then no signal comes, and we were
    # reparented (to init or a subreaper), so the parent is no longer the supervisor.
    if os.getppid() != supervisor:
        raise SystemExit(f"worker {os.getpid()}: its supervisor (pid {supervisor}) is gone; exiting")


# -- one metrics folder per serve, removed when its supervisor is gone ------------------------------------------


def remove_stale_metrics_folders(home: Path) -> list[Path]:
    """Remove the metrics folders of ``home`` whose lock no live process holds, and stray lock files.

    Args:
        home: The service folder (its ``metrics`` folder is searched; a missing one has nothing to remove).

    Returns:
        The folders removed (those of the stray lock files included, though they did not exist).
    """
    root = Path(home) / METRICS_DIR
    if fcntl is None:  # pragma: no cover - no way to tell a live folder
        return []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    stems = {name.removesuffix(LOCK_SUFFIX) for name in names}
    return [root / stem for stem in sorted(stems) if _NAME.match(stem) and _remove_if_stale(root, stem)]


def _remove_if_stale(root: Path, stem: str) -> bool:
    """Remove ``root/stem`` and its lock file if no process holds the lock; whether it did.

    An owner creates and locks its lock file before it makes the folder, and removes the folder before the lock
    file: a folder without a lock file is stale. The exclusive lock taken here keeps an owner that is starting
    from claiming a lock file while it is removed (the owner sees it gone, and claims another name).
    """
    folder, lock = root / stem, root / (stem + LOCK_SUFFIX)
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not folder.is_dir():
            return False  # removed meanwhile by another serve
        shutil.rmtree(folder, ignore_errors=True)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live supervisor's
        if not _same_file(fd, lock):
            return False  # another serve removed it between our open and our lock
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        return True
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


class MetricsFolder:
    """A new, empty metrics folder under ``home/metrics``, owned (locked) from ``__enter__`` to ``__exit__``.

    The lock file's descriptor is not inherited (``O_CLOEXEC``): the lock lives exactly as long as this
    process, so a supervisor that is killed leaves a folder that the next ``serve`` removes.

    Args:
        home: The service folder.

    Attributes:
        path: The folder (set by ``__enter__``), for ``PROMETHEUS_MULTIPROC_DIR``.
    """

    def __init__(self, home: Path) -> None:
        self.root = Path(home) / METRICS_DIR
        self.path: Path | None = None
        self._lock: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> Path:
        """Remove the stale folders, then claim a new one; its path."""
        self.root.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_metrics_folders(self.root.parent)
        if removed:
            logger.info("removed %d stale metrics folder(s) in %s", len(removed), self.root)
        for _ in range(_CLAIM_ATTEMPTS):
            stem = f"serve-{secrets.token_hex(8)}"
            lock = self.root / (stem + LOCK_SUFFIX)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                claimed = _same_file(fd, lock)
            except BlockingIOError:  # another serve's cleanup holds it for a moment: it will remove it
                claimed = False
            if not claimed:
                os.close(fd)
                continue
            os.write(fd, f"{os.getpid()}\n".encode())  # for a person looking: the owner
            self._fd, self._lock, self.path = fd, lock, self.root / stem
            try:
                self.path.mkdir()
            except BaseException:
                self.__exit__(None, None, None)
                raise
            return self.path
        raise RuntimeError(f"could not claim a metrics folder in {self.root} in {_CLAIM_ATTEMPTS} attempts")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Remove the folder, then its lock file, then release the lock."""
        if self._fd is None:
            return
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(FileNotFoundError):
                self._lock.unlink()
        os.close(self._fd)
        self._fd = None
