"""Sequential predict and optimize latency of this tree's server against another revision's, or of its two runtimes.

Both servers run at once on loopback (``fitness-weights serve --workers 1``), each from its own source tree (the
other revision is checked out with ``git worktree`` in a temporary folder and put first on ``PYTHONPATH``), each
with its own service folder and the same model file registered by its own code. The client then alternates
blocks of requests between them (``--rounds`` rounds of ``--block`` predicts and ``--block // 5`` optimizes of 64
steps), so the machine's noise falls on both alike; the table gives each one's p50 and p99 and their ratio::

    python benchmarks/bench_api_revisions.py --base 110abdc            # this tree against revision 110abdc
    python benchmarks/bench_api_revisions.py --base main --rounds 40
    python benchmarks/bench_api_revisions.py --inference               # this tree: ONNX Runtime against torch

With ``--inference`` both servers run this tree, one answering with the model's exported graphs in ONNX Runtime
(``FITNESS_WEIGHTS_INFERENCE=onnx``, the default) and one with the torch policy (``torch``).

The requests send an admin token where the tree has a token store (this one); an older revision ignores it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_api import OPTIMIZATION_STEPS, free_port, train_small_model, trainee_bodies  # noqa: E402

STARTUP_TIMEOUT_S = 120.0


def run_python(tree: Path, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, check=True, capture_output=True, text=True
    ).stdout


REGISTER = """
import sys
from fitness_weights_api.cli import main
sys.exit(main(["--home", sys.argv[1], "models", "register", sys.argv[2], "--activate"]))
"""


@contextlib.contextmanager
def serve(tree: Path, home: Path, model: Path, settings: dict[str, str]) -> Iterator[str]:
    """A one-worker server of the code in ``tree`` with ``model`` active and the ``settings`` variables; its URL."""
    run_python(tree, REGISTER, str(home), str(model))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITNESS_WEIGHTS_")}
    env.update({"PYTHONPATH": str(tree), "FITNESS_WEIGHTS_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", **settings})
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(home), "serve", "--port", str(port)]
    with open(home / "server.log", "ab") as log:
        process = subprocess.Popen(
            [*command, "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"the server of {tree} did not start; see {home / 'server.log'}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def block(client: httpx.Client, path: str, bodies: list[dict], n: int, out: list[float]) -> None:
    for i in range(n):
        start = time.perf_counter()
        client.post(path, json=bodies[i % len(bodies)]).raise_for_status()
        out.append((time.perf_counter() - start) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--base", help="the git revision to compare with")
    which.add_argument("--inference", action="store_true", help="compare this tree's ONNX Runtime and torch answers")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of interleaved blocks")
    parser.add_argument("--block", type=int, default=50, help="predict requests per block")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and the trainees")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-revisions-") as folder:
        folder = Path(folder)
        base_tree = folder / "base"
        if args.base:
            command = ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_tree), args.base]
            subprocess.run(command, check=True)
        try:
            model = folder / "model.zip"
            train_small_model(model, args.seed)
            bodies = trainee_bodies(args.seed)
            optimize = [{**body, "optimization_steps": OPTIMIZATION_STEPS} for body in bodies]
            servers: dict[str, tuple[Path, dict[str, str]]] = (
                {
                    "onnx": (ROOT, {"FITNESS_WEIGHTS_INFERENCE": "onnx"}),
                    "torch": (ROOT, {"FITNESS_WEIGHTS_INFERENCE": "torch"}),
                }
                if args.inference
                else {"this tree": (ROOT, {}), f"{args.base}": (base_tree, {})}
            )
            times: dict[str, dict[str, list[float]]] = {name: {"predict": [], "optimize": []} for name in servers}
            with contextlib.ExitStack() as stack:
                urls = {name: stack.enter_context(serve(tree, folder / f"home-{i}", model, settings)) for i, (name,
                        (tree, settings)) in enumerate(servers.items())}  # fmt: skip
                token = run_python(
                    ROOT,
                    "import sys; from fitness_weights_api.tokens import TokenStore; "
                    "print(TokenStore(sys.argv[1]).create('admin')[1])",
                    str(folder / "home-0" / "tokens.sqlite"),
                ).strip()
                clients = {
                    name: stack.enter_context(
                        httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {token}"})
                    )
                    for name, url in urls.items()
                }
                for client in clients.values():  # warm-up
                    block(client, "/predict_weights", bodies, 20, [])
                    block(client, "/optimize_weights", optimize, 5, [])
                for round_ in range(args.rounds):
                    order = list(clients) if round_ % 2 == 0 else list(reversed(clients))
                    for name in order:
                        block(clients[name], "/predict_weights", bodies, args.block, times[name]["predict"])
                        block(clients[name], "/optimize_weights", optimize, args.block // 5, times[name]["optimize"])
        finally:
            if args.base:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
    this, base = list(times)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    optimizes = args.block // 5
    print(
        f"{args.rounds} interleaved rounds of {args.block} predicts and {optimizes} optimizes "
        f"({OPTIMIZATION_STEPS} steps)\n"
    )
    header = f"| endpoint | {this} p50 / p99 ms | {base} p50 / p99 ms | p50 ratio ({this} / {base}) |"
    print(f"{header}\n|---|---:|---:|---:|")
    for endpoint in ("predict", "optimize"):
        a, b = np.asarray(times[this][endpoint]), np.asarray(times[base][endpoint])
        print(
            f"| {endpoint} | {np.percentile(a, 50):.2f} / {np.percentile(a, 99):.2f} | {np.percentile(b, 50):.2f} / "
            f"{np.percentile(b, 99):.2f} | {np.percentile(a, 50) / np.percentile(b, 50):.3f} |"
        )


if __name__ == "__main__":
    main()
