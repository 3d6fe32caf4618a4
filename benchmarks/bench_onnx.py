"""The service's policies in ONNX Runtime against torch: forward latency at batch 1, and what exporting costs.

Two tables:

1. One forward pass of the actor (the action probabilities) and of the prediction heads at batch size 1, torch
   against ONNX Runtime, for ``AttnCQQXPolicy`` (default width) and SB3's ``MlpPolicy`` on v0: interleaved windows
   of ``--calls`` calls each, medians over ``--rounds`` windows, and their ratio.
2. What making the graphs costs (:meth:`sb3_ext.onnx_policy.OnnxPolicy.from_policy`, check included), each in a
   fresh process: exported cold (empty cache folder), from the cache folder's template (another process exported
   it), and from the in-memory template (a second model of the architecture in the same process)::

    python benchmarks/bench_onnx.py
    python benchmarks/bench_onnx.py --rounds 40 --calls 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy

import fitness_weights_env  # noqa: F401  (registers the envs)
from sb3_ext import AttnCQQXPolicy
from sb3_ext.actions import PolicyActions
from sb3_ext.onnx_policy import OnnxPolicy

POLICIES = {"AttnCQQXPolicy": AttnCQQXPolicy, "MlpPolicy": ActorCriticPolicy}

MAKE = """
import json, sys, time
import gymnasium as gym
import fitness_weights_env
from stable_baselines3.common.policies import ActorCriticPolicy
from sb3_ext import AttnCQQXPolicy
from sb3_ext.onnx_policy import OnnxPolicy
cls = {"AttnCQQXPolicy": AttnCQQXPolicy, "MlpPolicy": ActorCriticPolicy}[sys.argv[1]]
env = gym.make("FitnessWeights-v0")
times = []
for seed in range(2):
    policy = cls(env.observation_space, env.action_space, lambda _: 3e-4)
    start = time.perf_counter()
    OnnxPolicy.from_policy(policy, cache_dir=sys.argv[2])
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def window(call, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e6


def calls_of(cls: type, env: gym.Env, observation: np.ndarray) -> dict[str, tuple[Callable[[], object], ...]]:
    """Per graph: a torch forward pass and the ONNX Runtime one, for one new policy of ``cls``."""
    policy = cls(env.observation_space, env.action_space, lambda _: 3e-4)
    exported = OnnxPolicy.from_policy(policy, cache_dir=None)
    torch_actions, tensor = PolicyActions(policy), th.as_tensor(observation)

    def heads() -> object:
        with th.no_grad():
            return policy.aux_prediction(tensor)

    calls = {"actor": (lambda: torch_actions._probabilities(observation), lambda: exported.run("actor", observation))}
    if hasattr(policy, "aux_prediction"):
        calls["heads"] = (heads, lambda: exported.run("heads", observation))
    return calls


def forward_latency(args: argparse.Namespace) -> None:
    env = gym.make("FitnessWeights-v0")
    observation = env.reset(seed=0)[0][None]
    print("| policy | graph | torch us | ONNX Runtime us | torch / ONNX Runtime |\n|---|---|---:|---:|---:|")
    for name, cls in POLICIES.items():
        for graph, (on_torch, on_onnx) in calls_of(cls, env, observation).items():
            for call in (on_torch, on_onnx):  # warm-up
                window(call, args.calls)
            times: dict[str, list[float]] = {"torch": [], "onnx": []}
            for round_ in range(args.rounds):
                order = ("torch", "onnx") if round_ % 2 == 0 else ("onnx", "torch")
                for runtime in order:
                    times[runtime].append(window(on_torch if runtime == "torch" else on_onnx, args.calls))
            a, b = np.median(times["torch"]), np.median(times["onnx"])
            print(f"| {name} | {graph} | {a:.0f} | {b:.0f} | {a / b:.1f}x |")


def making_cost() -> None:
    header = "| policy | exported cold, s | from the cache folder, s | from memory (second model), s |"
    print(f"\n{header}\n|---|---:|---:|---:|")
    for name in POLICIES:
        with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            run = [sys.executable, "-c", MAKE, name, folder]
            cold = json.loads(subprocess.run(run, env=env, check=True, capture_output=True, text=True).stdout)
            warm = json.loads(subprocess.run(run, env=env, check=True, capture_output=True, text=True).stdout)
        print(f"| {name} | {cold[0]:.2f} | {warm[0]:.3f} | {cold[1]:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved windows per runtime")
    parser.add_argument("--calls", type=int, default=100, help="calls per window")
    args = parser.parse_args()
    th.set_num_threads(1)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {th.__version__}, one thread each\n")
    forward_latency(args)
    making_cost()


if __name__ == "__main__":
    main()
