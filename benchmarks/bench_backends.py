"""The kernel's backends: env-only steps/s of the v0 vector env on numpy and on torch, interleaved in one run.

Rows (each a window of whole 64-step episodes, one autoreset each, random actions made where the env keeps its
data):

- ``numpy``: this checkout's numpy backend, the default;
- ``numpy @ BASELINE``: the same at an earlier commit (``--baseline``), so that the ratio says whether the
  backend work slowed the default path. It runs from a detached git worktree under ``.cache/speedup/``, as
  ``bench_speedup.py``'s does;
- ``torch <device>``: the torch backend, the state and the actions on the device.

Every window runs in a process of its own that imports only its code (``PYTHONPATH``), round-robin over the rows,
so that the shared machine's swings hit every row alike; the table gives the median and the best window and the
ratio of each row's median to the numpy row's::

    python benchmarks/bench_backends.py --baseline 7c0a795                     # CPU: about two minutes
    python benchmarks/bench_backends.py --devices cuda --sizes 4096 65536     # a GPU, numpy rows beside it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from bench_speedup import checkout  # noqa: E402  (the baseline's worktree)

# One window in a child process: steps/s of whole episodes after one warm-up episode, printed as JSON.
CHILD = """
import json, sys, time
import numpy as np
from fitness_weights_env import FitnessWeightsVectorEnv
backend, device, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
kwargs = {} if backend == "numpy" else {"backend": "torch", "device": device}
env = FitnessWeightsVectorEnv(n, **kwargs)
env.reset(seed=0)
if backend == "numpy":
    rng = np.random.default_rng(0)
    def actions():
        return rng.integers(0, 685, n)
    def sync():
        pass
else:
    import torch
    generator = torch.Generator(device=device).manual_seed(0)
    def actions():
        return torch.randint(0, 685, (n,), device=device, generator=generator)
    def sync():
        if env.device.type == "cuda":
            torch.cuda.synchronize()
def episode():
    for _ in range(64):
        env.step(actions())
    sync()
episode()  # warm-up: the first episode pays for the device's tables and kernels
episodes, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    episode()
    episodes += 1
elapsed = time.perf_counter() - start
print(json.dumps({"steps_per_s": episodes * 64 * n / elapsed}))
"""


def window(tree: Path, backend: str, device: str, n: int, seconds: float) -> float:
    """Steps/s of one window of the given code, backend and size, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, backend, device, str(n), str(seconds)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        check=True,
    )
    return float(json.loads(result.stdout.strip().splitlines()[-1])["steps_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="an earlier commit whose numpy backend runs beside this one")
    parser.add_argument("--devices", nargs="*", default=["cpu"], help="the torch backend's devices (none: numpy)")
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 1024, 4096], help="num_envs of each row")
    parser.add_argument("--rounds", type=int, default=5, help="windows per row")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one window")
    args = parser.parse_args()

    arms: list[tuple[str, Path, str, str]] = [("numpy", ROOT, "numpy", "cpu")]
    if args.baseline:
        arms.append((f"numpy @ {args.baseline}", checkout(args.baseline), "numpy", "cpu"))
    arms += [(f"torch {device}", ROOT, "torch", device) for device in args.devices]
    rates: dict[tuple[str, int], list[float]] = {(arm[0], n): [] for arm in arms for n in args.sizes}
    for round_ in range(args.rounds):
        for n in args.sizes:
            for name, tree, backend, device in arms:
                rates[name, n].append(window(tree, backend, device, n, args.seconds))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)

    print(f"\nenv-only steps/s, FitnessWeights-v0 vector env, {args.rounds} windows of {args.seconds:g} s per row\n")
    print("| backend | num_envs | median | best | median / numpy |")
    print("|---|---:|---:|---:|---:|")
    for n in args.sizes:
        reference = statistics.median(rates["numpy", n])
        for name, *_ in arms:
            values = rates[name, n]
            median = statistics.median(values)
            print(f"| {name} | {n:,} | {median:,.0f} | {max(values):,.0f} | {median / reference:.2f}x |")


if __name__ == "__main__":
    main()
