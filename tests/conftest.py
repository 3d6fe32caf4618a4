import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch as th

from fitness_weights_env import TraineeProfile, sample_profile

with warnings.catch_warnings():  # starlette suggests httpx2 (not installed here): its TestClient runs on httpx
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests' models are tiny: one thread avoids OpenMP contention (10-100x slower on a busy 2-core machine)."""
    threads = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(threads)


@pytest.fixture
def profile() -> TraineeProfile:
    return sample_profile(np.random.default_rng(2024))


class ReferenceEpisode:
    """The original design's transition and reward, written plainly for one trainee (the test oracle)."""

    def __init__(self, cq0: np.ndarray, qx0: np.ndarray, qualities: np.ndarray, targets: list[int], drift_coef: float):
        self.cq, self.qx = cq0.astype(np.float64).copy(), qx0.astype(np.float64).copy()
        self.cq0, self.qx0 = self.cq.copy(), self.qx.copy()
        self.q = qualities.astype(np.float64)
        self.targets = targets
        self.drift_coef = drift_coef

    def step(self, action: int, delta: float) -> float:
        if action < 465:
            matrix, row, col = self.cq, action // 5, action % 5
        else:
            matrix, row, col = self.qx, (action - 465) // 44, (action - 465) % 44
        matrix[row, col] = min(max(matrix[row, col] + delta, 0.0), 1.0)
        matrix[row] /= matrix[row].sum()
        return self.reward()

    def reward(self) -> float:
        score = np.mean([self.cq[s] @ self.q for s in self.targets])
        drift = np.linalg.norm(self.cq - self.cq0) + np.linalg.norm(self.qx - self.qx0)
        return float(score - self.drift_coef * drift)


@pytest.fixture
def reference_episode():
    return ReferenceEpisode


# -- the HTTP API: tiny trained models, the app in process, real servers on loopback ----------------------------------


def train_tiny_model(path: Path, policy: str = "AttnCQQXPolicy", seed: int = 0) -> Path:
    """A model trained for one 64-step rollout (enough to be a valid, distinct model)."""
    import gymnasium as gym

    import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
    from sb3_ext import PPO

    model = PPO(policy, gym.make("FitnessWeights-v0"), n_steps=64, batch_size=64, n_epochs=1, seed=seed, device="cpu")
    model.learn(64).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Three saved models: two attention policies (seeds 0 and 1) and an MLP policy (no prediction heads)."""
    folder = tmp_path_factory.mktemp("tiny_models")
    return {
        "attn0": train_tiny_model(folder / "attn0.zip", seed=0),
        "attn1": train_tiny_model(folder / "attn1.zip", seed=1),
        "mlp": train_tiny_model(folder / "mlp.zip", policy="MlpPolicy", seed=0),
    }


ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""The environment of the servers' and the apps' job processes: tiny models, one thread each."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_token(home: Path, role: str = "admin") -> str:
    """A new API token of ``role`` in the service folder's token store (as ``fitness-weights tokens create``)."""
    from fitness_weights_api.settings import ServiceSettings

    return ServiceSettings(home=home).open_tokens().create(role, f"tests-{role}")[1]


class ApiServer:
    """``fitness-weights serve`` in a subprocess on a free loopback port; its output goes to ``home/server.log``.

    ``admin_token`` (made in the home's token store unless ``with_token=False``) is what the tests and the
    teardown send to the routes that need one; ``auth`` is its header.
    """

    def __init__(self, home: Path, workers: int = 1, with_token: bool = True, **settings: str) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.admin_token = make_token(self.home) if with_token else None
        self.auth = {"Authorization": f"Bearer {self.admin_token}"} if with_token else {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **ONE_THREAD_ENV, "FITNESS_WEIGHTS_TORCH_THREADS": "1"}
        env.update({f"FITNESS_WEIGHTS_{name.upper()}": str(value) for name, value in settings.items()})
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(self.home), "serve"]
        command += ["--port", str(self.port), "--workers", str(workers), "--log-level", "warning"]
        self.log = open(self.home / "server.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self._wait_ready(workers)

    def _wait_ready(self, workers: int, timeout_s: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {self.read_log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout_s} s: {self.read_log()}")

    def read_log(self) -> str:
        return (self.home / "server.log").read_text(errors="replace")[-4000:]

    def cancel_jobs(self) -> None:
        """Cancel the jobs still queued or running (job processes outlive the server otherwise)."""
        import httpx

        if not self.auth:
            return
        with contextlib.suppress(httpx.HTTPError, ValueError, TypeError):
            for job in httpx.get(f"{self.url}/train", params={"limit": 1000}, headers=self.auth, timeout=30).json():
                if job["state"] in ("queued", "running"):
                    httpx.delete(f"{self.url}/train/{job['job_id']}", headers=self.auth, timeout=60)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.cancel_jobs()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="session")
def api_servers():
    """Start servers with ``api_servers(home, workers=1, **settings)``; every one is stopped at the end."""
    servers: list[ApiServer] = []

    def start(home: Path, workers: int = 1, with_token: bool = True, **settings: str) -> ApiServer:
        servers.append(ApiServer(home, workers, with_token, **settings))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


class InProcessApi:
    """``create_app(settings)`` in this process behind starlette's ``TestClient``: the real app, without a socket.

    The settings are real (``home``'s SQLite registry, token store and job database; job processes are real too);
    only uvicorn and the loopback socket are left out. ``TestClient`` sends ``Host: testserver``, so that is the one
    host allowed unless ``allowed_hosts`` (and a matching ``base_url``) say otherwise. ``admin_token`` and ``auth``
    are as in :class:`ApiServer`; ``client`` sends no token unless a request (or ``client.headers``) adds one.
    ``close`` cancels the jobs still queued or running, then ends the app's lifespan.
    """

    def __init__(
        self,
        home: Path,
        with_token: bool = True,
        base_url: str = "http://testserver",
        allowed_hosts: tuple[str, ...] = ("testserver",),
        **settings,
    ) -> None:
        from fitness_weights_api.app import create_app
        from fitness_weights_api.settings import ServiceSettings

        self.settings = ServiceSettings(home=home, allowed_hosts=allowed_hosts, **settings)
        self.home = self.settings.home
        self.home.mkdir(parents=True, exist_ok=True)
        self.admin_token = make_token(self.home) if with_token else None
        self.auth = {"Authorization": f"Bearer {self.admin_token}"} if with_token else {}
        self.app = create_app(self.settings)
        jobs = self.app.state.service.jobs
        assert isinstance(jobs.env, dict)
        jobs.env = {**jobs.env, **ONE_THREAD_ENV}  # what ApiServer's workers pass their jobs (tiny models)
        # A 500 comes back as the answer a real server gives, not as the exception (the app logs it either way)
        self.client = TestClient(self.app, base_url=base_url, raise_server_exceptions=False)
        self.client.__enter__()  # runs the lifespan: the model loaded, the job refresher started

    def cancel_jobs(self) -> None:
        jobs = self.app.state.service.jobs
        for job in jobs.list(limit=1000):
            if job.state in ("queued", "running"):
                jobs.cancel(job.job_id)

    def close(self) -> None:
        try:
            self.cancel_jobs()
        finally:
            self.client.__exit__(None, None, None)

    def __enter__(self) -> "InProcessApi":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


@pytest.fixture
def api_apps():
    """Build in-process apps with ``api_apps(home, **settings)``; every one is closed at the test's end."""
    apps: list[InProcessApi] = []

    def build(home: Path, with_token: bool = True, **settings) -> InProcessApi:
        apps.append(InProcessApi(home, with_token, **settings))
        return apps[-1]

    yield build
    for app in reversed(apps):
        app.close()


# -- hostile model files ----------------------------------------------------------------------------------------


class MarkerPayload:
    """Pickles to a call that creates ``marker``: what an attacker's archive runs in whoever unpickles it."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def hostile_archive(source: Path, target: Path, marker: Path, *, weights_payload: bool = False) -> Path:
    """A copy of the SB3 archive ``source`` whose pickled fields (policy class, spaces, schedules) run the payload.

    ``weights_payload`` also puts it in ``policy.pth`` (a pickle beside the tensors, as ``torch.save`` writes it).
    """
    import base64
    import json
    import pickle
    import zipfile

    import torch as th

    payload = base64.b64encode(pickle.dumps(MarkerPayload(marker))).decode()
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    for key in ("policy_class", "observation_space", "action_space", "lr_schedule", "clip_range"):
        data[key][":serialized:"] = payload
    entries["data"] = json.dumps(data).encode()
    if weights_payload:
        state = th.load(io.BytesIO(entries["policy.pth"]), weights_only=True)
        buffer = io.BytesIO()
        th.save({**state, "extra": MarkerPayload(marker)}, buffer)
        entries["policy.pth"] = buffer.getvalue()
    with zipfile.ZipFile(target, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return target
