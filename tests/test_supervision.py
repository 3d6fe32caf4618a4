"""Process hygiene of `fitness-weights serve --workers N`, on real processes: workers die with their supervisor,
and each serve's Prometheus folder lives under the home, locked, removed at exit or by the next serve."""

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from fitness_weights_api.supervision import (
    LOCK_SUFFIX,
    METRICS_DIR,
    SUPERVISOR_PID_ENV,
    MetricsFolder,
    remove_stale_metrics_folders,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")

EXIT_BOUND_S = 15.0  # a liveness bound (graceful shutdown of an idle worker takes well under a second)


# -- processes, from /proc ---------------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """A process's (state, ppid, process group), or None if it is gone; a zombie counts as gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]  # after "pid (comm) "
    return None if state in ("Z", "X") else (state, int(ppid), int(pgrp))


def live_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def workers_of(supervisor: int) -> list[int]:
    """The uvicorn workers of a supervisor: its children started by multiprocessing's spawn (not its tracker)."""
    found = []
    for pid in live_pids():
        stat = proc_stat(pid)
        if stat is None or stat[1] != supervisor:
            continue
        with contextlib.suppress(OSError):
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return sorted(found)


def group_members(pgid: int) -> list[int]:
    return [pid for pid in live_pids() if (stat := proc_stat(pid)) is not None and stat[2] == pgid]


def kill_group(pgid: int) -> None:
    """SIGKILL what is left of a server's process group (it was started in a session of its own)."""
    for pid in group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_until(condition, timeout_s: float, interval_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def answering_workers(server, expected: int, path: str = "/health", max_requests: int = 400) -> dict[str, int]:
    """Requests (a new connection each) until ``expected`` workers answered; requests answered, by worker id."""
    counts: dict[str, int] = {}
    for _ in range(max_requests):
        response = httpx.get(server.url + path, headers=server.auth, timeout=30)
        assert response.status_code == 200, response.text
        worker = response.headers["x-worker-id"]
        counts[worker] = counts.get(worker, 0) + 1
        if len(counts) == expected:
            return counts
    raise AssertionError(f"only workers {sorted(counts)} answered {max_requests} requests")


def start_two_workers(api_servers, home: Path):
    server = api_servers(home, workers=2)
    supervisor = server.process.pid
    assert wait_until(lambda: len(workers_of(supervisor)) == 2, 60), workers_of(supervisor)
    workers = workers_of(supervisor)
    assert len(answering_workers(server, expected=2)) == len(workers)  # both serve
    return server, supervisor, workers


def metrics_folders(home: Path) -> set[str]:
    return {path.name for path in (home / METRICS_DIR).glob("serve-*") if path.is_dir()}


def lock_is_held(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def request_count(exposition: str, route: str) -> float:
    pattern = rf'^fitness_weights_http_requests_total\{{method="GET",route="{re.escape(route)}",status="200"\}} (\S+)$'
    match = re.search(pattern, exposition, re.MULTILINE)
    return 0.0 if match is None else float(match.group(1))


# -- workers exit with their supervisor --------------------------------------------------------------------------


def test_workers_exit_when_the_supervisor_is_killed(tmp_path, api_servers):
    home = tmp_path / "home"
    server, supervisor, workers = start_two_workers(api_servers, home)
    try:
        (folder,) = metrics_folders(home)
        os.kill(supervisor, signal.SIGKILL)  # the supervisor only: nothing to forward a signal to the workers
        server.process.wait(timeout=30)
        assert wait_until(lambda: all(proc_stat(pid) is None for pid in workers), EXIT_BOUND_S), [
            (pid, proc_stat(pid)) for pid in workers
        ]

        def refused() -> bool:
            try:
                httpx.get(f"{server.url}/health", timeout=2)
            except httpx.TransportError:
                return True
            return False

        assert wait_until(refused, EXIT_BOUND_S), "the port still answers"
        assert wait_until(lambda: not group_members(supervisor), EXIT_BOUND_S), group_members(supervisor)
        # the killed supervisor could not remove its metrics folder, but its lock went with it: the next serve's
        assert metrics_folders(home) == {folder}
        assert remove_stale_metrics_folders(home) == [home / METRICS_DIR / folder]
        assert not (home / METRICS_DIR / folder).exists()
        assert not (home / METRICS_DIR / (folder + LOCK_SUFFIX)).exists()
    finally:
        kill_group(supervisor)


def run_exit_with_supervisor(supervisor_pid: str | None) -> subprocess.CompletedProcess:
    """A child of this process that calls exit_with_supervisor() and prints 'alive' if it returns."""
    env = {k: v for k, v in os.environ.items() if k != SUPERVISOR_PID_ENV}
    if supervisor_pid is not None:
        env[SUPERVISOR_PID_ENV] = supervisor_pid
    code = "from fitness_weights_api.supervision import exit_with_supervisor as f; f(); print('alive')"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_a_worker_whose_supervisor_is_already_gone_exits():
    assert run_exit_with_supervisor(str(os.getpid())).stdout.strip() == "alive"  # its parent: the supervisor
    assert run_exit_with_supervisor(None).stdout.strip() == "alive"  # not a worker
    gone = run_exit_with_supervisor(str(os.getppid()))  # a supervisor that is not its parent (any more)
    assert gone.returncode != 0
    assert "alive" not in gone.stdout
    assert "supervisor" in gone.stderr
    refused = run_exit_with_supervisor("not-a-pid")
    assert refused.returncode != 0
    assert SUPERVISOR_PID_ENV in refused.stderr


# -- metrics folders -----------------------------------------------------------------------------------------------


def make_stale_folder(home: Path, stem: str) -> Path:
    folder = home / METRICS_DIR / stem
    folder.mkdir(parents=True)
    (folder / "counter_999999.db").write_bytes(b"\0" * 16)
    (home / METRICS_DIR / (stem + LOCK_SUFFIX)).write_text("999999\n")
    return folder


def test_metrics_folder_is_locked_while_in_use_and_stale_ones_are_removed(tmp_path):
    home = tmp_path / "home"
    stale = make_stale_folder(home, "serve-00aa")
    lockless = home / METRICS_DIR / "serve-00bb"
    lockless.mkdir()
    stray_lock = home / METRICS_DIR / ("serve-00cc" + LOCK_SUFFIX)
    stray_lock.write_text("")
    others = [home / METRICS_DIR / "notes.txt", home / METRICS_DIR / "serve-OTHER"]
    others[0].write_text("not ours")
    others[1].mkdir()
    with MetricsFolder(home) as folder:
        lock = folder.with_name(folder.name + LOCK_SUFFIX)
        assert folder.is_dir() and not any(folder.iterdir())
        assert lock_is_held(lock)
        assert lock.read_text() == f"{os.getpid()}\n"
        assert not stale.exists() and not stale.with_name(stale.name + LOCK_SUFFIX).exists()
        assert not lockless.exists() and not stray_lock.exists()
        assert all(path.exists() for path in others)
        assert remove_stale_metrics_folders(home) == []  # ours is live: kept
        assert folder.is_dir()
    assert not folder.exists() and not lock.exists()
    assert all(path.exists() for path in others)


def test_serve_removes_stale_folders_keeps_live_ones_and_sums_both_workers(tmp_path, api_servers):
    home = tmp_path / "home"
    first, first_supervisor, _ = start_two_workers(api_servers, home)
    second_supervisor = None
    try:
        (first_folder,) = metrics_folders(home)
        stale = make_stale_folder(home, "serve-0123456789abcdef")
        second, second_supervisor, workers = start_two_workers(api_servers, home)
        assert not stale.exists(), "the stale folder was not removed"
        assert not stale.with_name(stale.name + LOCK_SUFFIX).exists()
        (second_folder,) = metrics_folders(home) - {first_folder}  # the first server's folder is kept
        assert lock_is_held(home / METRICS_DIR / (first_folder + LOCK_SUFFIX))
        assert lock_is_held(home / METRICS_DIR / (second_folder + LOCK_SUFFIX))

        answered = answering_workers(second, expected=2, path="/catalog")
        total = sum(answered.values())
        reported: dict[str, float] = {}

        def both_report_the_sum() -> bool:  # each worker, asked for /metrics, reports the sum over both
            response = httpx.get(f"{second.url}/metrics", headers=second.auth, timeout=30)
            assert response.status_code == 200
            reported[response.headers["x-worker-id"]] = request_count(response.text, "/catalog")
            return reported.keys() == answered.keys() and all(count == total for count in reported.values())

        # a request is counted just after its response is sent: the last one may take a moment
        assert wait_until(both_report_the_sum, 30, interval_s=0.05), (total, reported)
        assert {f"counter_{pid}.db" for pid in workers} <= {
            p.name for p in (home / METRICS_DIR / second_folder).iterdir()
        }

        second.stop()  # SIGTERM: a normal exit removes its own folder and lock file
        assert metrics_folders(home) == {first_folder}
        assert not (home / METRICS_DIR / (second_folder + LOCK_SUFFIX)).exists()
        first.stop()
        assert metrics_folders(home) == set()
    finally:
        kill_group(first_supervisor)
        if second_supervisor is not None:
            kill_group(second_supervisor)
