"""HTTP API on loopback, against a real ``fitness-weights serve``: latency, mixed load, load during training.

Three parts, each a Markdown table:

1. Latency of ``POST /predict_weights`` and ``POST /optimize_weights`` (64 steps), on each server: sequential
   requests from one client after a warm-up, p50 and p99 against the targets (predict p50 <= 5 ms, optimize
   p50 <= 100 ms).
2. Mixed load, once per ``--workers`` count: ``--requests`` requests (50% predict, 10% optimize with 64 steps,
   15% ``GET /catalog``, 15% ``GET /health``, 10% ``GET /models``) from ``--clients`` threads, each with its own
   ``httpx.Client``; throughput, errors (anything not 2xx; target 0) and the latencies within the load.
3. The same load while a training job runs (``POST /train``, 2,000,000 timesteps, cancelled afterwards): predict
   p99 during training over predict p99 of the idle run on the same server (target < 4x), and whether the job
   was running from before the load to after it.
4. ``GET /health`` latency while ``UPLOADS`` clients each send a 100 MB body (half with a ``Content-Length``,
   half chunked), against the same requests on the idle server: the bodies must be refused (413) before they are
   read, and ``/health`` stay under 50 ms.

Every client sends an admin token (made in the service folder's token store), as an operator's scripts would:
``GET /models`` and the training routes need one.

The server gets an active AttnCQQXPolicy model: a small one trained here (256 steps; latency does not depend
on training), or ``--model FILE``::

    python benchmarks/bench_api.py                                # all three parts, workers 1 and 2
    python benchmarks/bench_api.py --model runs/demo/model.zip    # the README's trained model
    python benchmarks/bench_api.py --workers 2 --requests 2000 --skip-training-load

The service folder is a fresh temporary one, deleted at the end, unless ``--home`` is given (the server logs,
``server-workers<N>.log``, stay there).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch as th

Endpoint = tuple[str, str]  # method, path
Body = dict[str, Any]

PREDICT = ("POST", "/predict_weights")
OPTIMIZE = ("POST", "/optimize_weights")
MIX = {  # endpoint: share of the mixed load
    PREDICT: 0.50,
    OPTIMIZE: 0.10,
    ("GET", "/catalog"): 0.15,
    ("GET", "/health"): 0.15,
    ("GET", "/models"): 0.10,
}
OPTIMIZATION_STEPS = 64
LATENCY_SAMPLES = {PREDICT: 300, OPTIMIZE: 100}
WARMUP = {PREDICT: 20, OPTIMIZE: 5}
LATENCY_TARGETS_MS = {PREDICT: 5.0, OPTIMIZE: 100.0}  # p50
TRAINING_P99_RATIO_TARGET = 4.0
TRAIN_REQUEST = {"timesteps": 2_000_000, "eval_trainees": 2}
N_TRAINEES = 20
STARTUP_TIMEOUT_S = 60.0
TRAINING_START_TIMEOUT_S = 180.0
UPLOADS = 4
UPLOAD_BYTES = 100 << 20
HEALTH_TARGET_MS = 50.0
AUTH: dict[str, str] = {}  # the admin token's header, set by register_model
STOP_GRACE_S = 15.0
REQUEST_TIMEOUT_S = 120.0


# -- setup ---------------------------------------------------------------------------------------------------


def train_small_model(path: Path, seed: int) -> None:
    """A small AttnCQQXPolicy model (256 steps): it answers like a trained one, only worse."""
    from sb3_ext.config import TrainConfig
    from sb3_ext.recipe import make_model

    sizes = {"n_steps": 64, "batch_size": 64, "n_epochs": 1}
    config = TrainConfig(256, preset="sb3", vectorization="dummy", seed=seed, device="cpu", ppo_kwargs=sizes)
    model = make_model(config)
    model.learn(config.timesteps)
    model.save(path)


def register_model(home: Path, model: Path | None, seed: int) -> str:
    """Register and activate ``model`` (or a small one trained here) in ``home``'s registry; what was registered."""
    from fitness_weights_api import ModelRegistry
    from fitness_weights_api.settings import ServiceSettings

    settings = ServiceSettings(home=home)
    if model is None:
        model = home / "bench-model.zip"
        train_small_model(model, seed)
        described = "AttnCQQXPolicy trained here for 256 steps"
    else:
        described = str(model)
    record = ModelRegistry(settings.registry_root, settings.registry_url).register(
        model, training_config={}, activate=True
    )
    _, token = settings.open_tokens().create("admin", "bench_api")
    AUTH["Authorization"] = f"Bearer {token}"
    return f"{described}, registered as {record.version}"


def trainee_bodies(seed: int) -> list[Body]:
    """Request bodies of ``N_TRAINEES`` sampled trainees."""
    from fitness_weights_env import sample_profiles

    bodies = []
    for i, profile in enumerate(sample_profiles(N_TRAINEES, seed=seed)):
        data = profile.to_dict()
        bodies.append(
            {
                "user_id": f"bench-{i}",
                "age": data["age"],
                "gender": data["gender"],
                "fitness_level": data["fitness_level"],
                "current_qualities": data["qualities"],
                "target_subjects": data["targets"],
            }
        )
    return bodies


def request_body(endpoint: Endpoint, bodies: list[Body], i: int) -> Body | None:
    if endpoint == PREDICT:
        return bodies[i % len(bodies)]
    if endpoint == OPTIMIZE:
        return {**bodies[i % len(bodies)], "optimization_steps": OPTIMIZATION_STEPS}
    return None


# -- the server ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A ``fitness-weights serve`` process: its URL and log file."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path


def wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.process.returncode}; see {server.log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the server did not answer /health within {STARTUP_TIMEOUT_S:.0f} s; see {server.log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL after a grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def serve(home: Path, workers: int) -> Iterator[Server]:
    """A server with ``workers`` workers on a free port, answering ``/health``; stopped on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITNESS_WEIGHTS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({"FITNESS_WEIGHTS_MAX_TIMESTEPS": str(TRAIN_REQUEST["timesteps"]), "FITNESS_WEIGHTS_TORCH_THREADS": "1"})
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(home), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    log = home / f"server-workers{workers}.log"
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stopped as one
        )
    try:
        server = Server(process, f"http://127.0.0.1:{port}", log)
        wait_healthy(server)
        yield server
    finally:
        stop(process)


def report_log_errors(server: Server) -> None:
    """Print the server log's tail to stderr when it recorded errors."""
    lines = server.log.read_text(errors="replace").splitlines()
    if any("Traceback" in line or "ERROR" in line for line in lines):
        tail = "\n".join(lines[-60:])
        print(f"\n[server log {server.log}, last lines]\n{tail}\n", file=sys.stderr)


# -- measurements --------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What a load run measured: wall time, status codes, and latencies (ms) of the 2xx answers by endpoint."""

    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: dict[Endpoint, list[float]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not status.startswith("2"))

    def add(self, endpoint: Endpoint, status: str, ms: float) -> None:
        self.statuses[status] += 1
        if status.startswith("2"):
            self.latencies.setdefault(endpoint, []).append(ms)

    def merge(self, other: LoadResult) -> None:
        self.statuses.update(other.statuses)
        for endpoint, values in other.latencies.items():
            self.latencies.setdefault(endpoint, []).extend(values)

    def percentile(self, endpoint: Endpoint, q: float) -> float:
        values = self.latencies.get(endpoint)
        return float(np.percentile(values, q)) if values else float("nan")


def timed_request(client: httpx.Client, endpoint: Endpoint, body: Body | None) -> tuple[str, float]:
    """The status (``"200"``, ``"500"``, or the exception's name) and the latency in ms of one request."""
    method, path = endpoint
    start = time.perf_counter()
    try:
        status = str(client.request(method, path, json=body).status_code)
    except httpx.HTTPError as err:
        status = type(err).__name__
    return status, (time.perf_counter() - start) * 1e3


def sequential_latency(url: str, bodies: list[Body]) -> LoadResult:
    """Sequential predict then optimize requests from one client, after a warm-up of each."""
    result = LoadResult()
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, headers=AUTH) as client:
        for endpoint, samples in LATENCY_SAMPLES.items():
            for i in range(WARMUP[endpoint]):
                timed_request(client, endpoint, request_body(endpoint, bodies, i))
            start = time.perf_counter()
            for i in range(samples):
                result.add(endpoint, *timed_request(client, endpoint, request_body(endpoint, bodies, i)))
            result.seconds += time.perf_counter() - start
    return result


def load_plan(n_requests: int, seed: int) -> list[Endpoint]:
    """``n_requests`` endpoints in the shares of ``MIX`` (exactly, rounded), shuffled."""
    counts = {endpoint: round(n_requests * share) for endpoint, share in MIX.items()}
    counts[PREDICT] += n_requests - sum(counts.values())
    plan = [endpoint for endpoint, count in counts.items() for _ in range(count)]
    order = np.random.default_rng(seed).permutation(len(plan))
    return [plan[i] for i in order]


def client_run(url: str, plan: list[Endpoint], offset: int, bodies: list[Body], out: LoadResult) -> None:
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, headers=AUTH) as client:
        for i, endpoint in enumerate(plan):
            out.add(endpoint, *timed_request(client, endpoint, request_body(endpoint, bodies, offset + i)))


def mixed_load(url: str, n_requests: int, clients: int, bodies: list[Body], seed: int) -> LoadResult:
    """The ``MIX`` of ``n_requests`` requests, split over ``clients`` threads with a client each."""
    plan = load_plan(n_requests, seed)
    parts = [LoadResult() for _ in range(clients)]
    threads = [
        threading.Thread(target=client_run, args=(url, plan[c::clients], c, bodies, parts[c])) for c in range(clients)
    ]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = LoadResult(seconds=time.perf_counter() - start)
    for part in parts:
        result.merge(part)
    return result


# -- training ------------------------------------------------------------------------------------------------


def submit_training(client: httpx.Client) -> str:
    """Start a training job; its id."""
    response = client.post("/train", json=TRAIN_REQUEST)
    response.raise_for_status()
    return response.json()["job_id"]


def wait_training(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """Wait until the job runs and has recorded progress; the job."""
    deadline = time.monotonic() + TRAINING_START_TIMEOUT_S
    while True:
        job = job_state(client, job_id)
        if job["state"] == "running" and job["timesteps_done"] > 0:
            return job
        if job["state"] not in ("queued", "running"):
            raise RuntimeError(f"training job {job_id} ended {job['state']}: {job['error']}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"training job {job_id} did not progress within {TRAINING_START_TIMEOUT_S:.0f} s")
        time.sleep(0.5)


def job_state(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/train/{job_id}")
    response.raise_for_status()
    return response.json()


def cancel_training(client: httpx.Client, job_id: str) -> str:
    """Cancel the job; its final state."""
    response = client.delete(f"/train/{job_id}")
    response.raise_for_status()
    return response.json()["state"]


@dataclass
class TrainingRun:
    """A mixed load during training, and the job's progress around it."""

    load: LoadResult
    state_after: str
    timesteps_before: int
    timesteps_after: int
    final_state: str


def load_during_training(url: str, args: argparse.Namespace, bodies: list[Body]) -> TrainingRun:
    """The mixed load (same order as the idle run) while a training job runs; the job is cancelled afterwards."""
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S, headers=AUTH) as client:
        job_id = submit_training(client)
        try:
            before = wait_training(client, job_id)
            load = mixed_load(url, args.requests, args.clients, bodies, args.seed)
            after = job_state(client, job_id)
        finally:
            final_state = cancel_training(client, job_id)
    return TrainingRun(load, after["state"], before["timesteps_done"], after["timesteps_done"], final_state)


# -- large bodies ----------------------------------------------------------------------------------------------


def upload(port: int, chunked: bool, answers: list[bytes]) -> None:
    """Send a 100 MB body to ``/predict_weights`` as fast as the server takes it; keep the status line it gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT_S) as sock:
        length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {UPLOAD_BYTES}"
        sock.sendall(f"POST /predict_weights HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}\r\n\r\n".encode())
        chunk, sent, answer = b" " * (1 << 20), 0, b""
        sock.settimeout(0.2)
        while sent < UPLOAD_BYTES and not answer:
            with contextlib.suppress(TimeoutError):
                answer = sock.recv(4096)
            if answer:
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            except OSError:  # the server answered and closed
                break
            sent += len(chunk)
        sock.settimeout(REQUEST_TIMEOUT_S)
        with contextlib.suppress(OSError):
            answer += sock.recv(4096)
        answers.append(answer.split(b"\r\n", 1)[0])


def health_latency(url: str, during_uploads: bool) -> tuple[list[float], list[bytes]]:
    """``/health`` latencies (ms) for 2 s, or while the uploads last (at least 20); the uploads' status lines."""
    port = int(url.rsplit(":", 1)[1])
    answers: list[bytes] = []
    threads = [threading.Thread(target=upload, args=(port, i % 2 == 1, answers)) for i in range(UPLOADS)]
    for thread in threads if during_uploads else []:
        thread.start()
    latencies: list[float] = []
    deadline = time.monotonic() + 2.0

    def going() -> bool:
        if during_uploads:
            return any(thread.is_alive() for thread in threads) or len(latencies) < 20
        return time.monotonic() < deadline

    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        while going():
            start = time.perf_counter()
            client.get("/health").raise_for_status()
            latencies.append((time.perf_counter() - start) * 1000)
    for thread in threads if during_uploads else []:
        thread.join()
    return latencies, answers


# -- tables --------------------------------------------------------------------------------------------------


def met(ok: bool) -> str:
    return "met" if ok else "not met"


def print_latency(results: dict[int, LoadResult]) -> None:
    samples = ", ".join(f"{n} {path}" for (_, path), n in LATENCY_SAMPLES.items())
    print(f"\n### Latency: sequential requests from one client ({samples}, after a warm-up)\n")
    print("| workers | endpoint | p50 ms | p99 ms | target (p50) | errors |\n|---:|---|---:|---:|---|---:|")
    for workers, result in results.items():
        for endpoint in LATENCY_SAMPLES:
            p50 = result.percentile(endpoint, 50)
            name = f"{endpoint[0]} {endpoint[1]}" + (f" ({OPTIMIZATION_STEPS} steps)" if endpoint == OPTIMIZE else "")
            target = LATENCY_TARGETS_MS[endpoint]
            print(
                f"| {workers} | {name} | {p50:.2f} | {result.percentile(endpoint, 99):.2f} "
                f"| <= {target:.0f} ms: {met(p50 <= target)} | {result.errors} |"
            )


def print_mixed(results: dict[int, LoadResult], clients: int) -> None:
    shares = ", ".join(f"{share:.0%} {method} {path}" for (method, path), share in MIX.items())
    print(f"\n### Mixed load: {clients} concurrent clients; {shares} (optimize: {OPTIMIZATION_STEPS} steps)\n")
    print(
        "| workers | requests | seconds | requests/s | errors (target 0) | predict p50 ms | predict p99 ms "
        "| optimize p50 ms | optimize p99 ms | non-2xx |\n|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"
    )
    for workers, r in results.items():
        bad = ", ".join(f"{s}: {n}" for s, n in sorted(r.statuses.items()) if not s.startswith("2")) or "none"
        print(
            f"| {workers} | {r.requests:,} | {r.seconds:.1f} | {r.requests / r.seconds:,.0f} "
            f"| {r.errors} ({met(r.errors == 0)}) | {r.percentile(PREDICT, 50):.1f} | {r.percentile(PREDICT, 99):.1f} "
            f"| {r.percentile(OPTIMIZE, 50):.1f} | {r.percentile(OPTIMIZE, 99):.1f} | {bad} |"
        )


def print_training(runs: dict[int, TrainingRun], idle: dict[int, LoadResult]) -> None:
    steps = f"{TRAIN_REQUEST['timesteps']:,}"
    print(f"\n### Mixed load during training (job of {steps} timesteps, cancelled after the load)\n")
    print(
        "| workers | requests/s | errors | predict p50 ms | predict p99 ms | idle predict p99 ms "
        f"| p99 ratio (target < {TRAINING_P99_RATIO_TARGET:.0f}x) | job state after load | timesteps during load "
        "| job after cancel |\n|---:|---:|---:|---:|---:|---:|---|---|---:|---|"
    )
    for workers, run in runs.items():
        r = run.load
        ratio = r.percentile(PREDICT, 99) / idle[workers].percentile(PREDICT, 99)
        print(
            f"| {workers} | {r.requests / r.seconds:,.0f} | {r.errors} | {r.percentile(PREDICT, 50):.1f} "
            f"| {r.percentile(PREDICT, 99):.1f} | {idle[workers].percentile(PREDICT, 99):.1f} "
            f"| {ratio:.2f}x: {met(ratio < TRAINING_P99_RATIO_TARGET)} | {run.state_after} "
            f"| {run.timesteps_before:,} -> {run.timesteps_after:,} | {run.final_state} |"
        )


def print_uploads(results: dict[int, tuple[list[float], list[float], list[bytes]]]) -> None:
    print(f"\n### GET /health while {UPLOADS} clients send {UPLOAD_BYTES >> 20} MB bodies (half chunked)\n")
    print(
        "| workers | idle p50 / max ms | during p50 / p99 / max ms | target (max) | upload answers |"
        "\n|---:|---:|---:|---|---|"
    )
    for workers, (idle, during, answers) in results.items():
        statuses = ", ".join(sorted({a.decode(errors="replace") for a in answers})) or "none"
        print(
            f"| {workers} | {np.percentile(idle, 50):.2f} / {max(idle):.2f} | {np.percentile(during, 50):.2f} / "
            f"{np.percentile(during, 99):.2f} / {max(during):.2f} | < {HEALTH_TARGET_MS:.0f} ms: "
            f"{met(max(during) < HEALTH_TARGET_MS)} | {statuses} |"
        )


# -- main ----------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace, home: Path) -> None:
    th.set_num_threads(1)
    model = register_model(home, args.model, args.seed)
    bodies = trainee_bodies(args.seed)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"torch {th.__version__}, 1 torch thread per server worker; model: {model}")
    latency: dict[int, LoadResult] = {}
    idle: dict[int, LoadResult] = {}
    training: dict[int, TrainingRun] = {}
    uploads: dict[int, tuple[list[float], list[float], list[bytes]]] = {}
    for workers in args.workers:
        with serve(home, workers) as server:
            try:
                idle_health, _ = health_latency(server.url, during_uploads=False)
                during, answers = health_latency(server.url, during_uploads=True)
                uploads[workers] = (idle_health, during, answers)
                latency[workers] = sequential_latency(server.url, bodies)
                idle[workers] = mixed_load(server.url, args.requests, args.clients, bodies, args.seed)
                if not args.skip_training_load:
                    training[workers] = load_during_training(server.url, args, bodies)
            finally:
                report_log_errors(server)
    print_latency(latency)
    print_mixed(idle, args.clients)
    if training:
        print_training(training, idle)
    print_uploads(uploads)


def run_in_home(home: Path | None, prefix: str, run: Callable[[Path], None]) -> None:
    """``run(home)`` in the service folder ``home`` (a temporary one, deleted after, if ``None``), then its time."""
    start = time.perf_counter()
    if home is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
            run(Path(temporary))
    else:
        home.mkdir(parents=True, exist_ok=True)
        run(home.absolute())
    print(f"\nTotal time: {time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="requests per mixed-load run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="server worker counts")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the mixed load")
    parser.add_argument("--model", type=Path, default=None, help="model file to serve (default: train a small one)")
    parser.add_argument("--home", type=Path, default=None, help="service folder (default: a temporary one)")
    parser.add_argument("--skip-training-load", action="store_true", help="no mixed load during training")
    parser.add_argument("--seed", type=int, default=0, help="seed of the trainees, the load order and the model")
    args = parser.parse_args()
    run_in_home(args.home, "bench-api-", lambda home: run(args, home))


if __name__ == "__main__":
    main()
