"""Where one step's time goes: the parts of a single-env step and of a vector-env step, in microseconds.

Each figure is the minimum over repeated timings (the code's own cost, robust to a shared machine's
speed swings)::

    python benchmarks/profile_step.py
"""

from __future__ import annotations

import timeit

import gymnasium as gym
import numpy as np

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from fitness_weights_env import dynamics
from fitness_weights_env.episode import EpisodeConfig


def cost_us(call, number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=9)) / number * 1e6


def main() -> None:
    print("| part | N=1 (us) | N=1024 (us) |\n|---|---:|---:|")
    single = gym.make("FitnessWeights-v0").unwrapped
    single.reset(seed=0)
    vector = gym.make_vec("FitnessWeights-v0", num_envs=1024)
    vector.reset(seed=0)
    config = EpisodeConfig()
    actions = {1: np.array([3]), 1024: np.random.default_rng(0).integers(0, 685, 1024)}
    states = {1: single.state, 1024: vector.state}
    parts = {
        "dynamics.evaluate": lambda n: lambda: dynamics.evaluate(states[n], actions[n], 0.05, 0.01),
        "dynamics.step (evaluate, write back, metrics)": lambda n: (
            lambda: dynamics.step(states[n], actions[n], 0.05, 0.01)
        ),
        "dynamics.step_info (no matrices)": lambda n: lambda: dynamics.step_info(states[n], matrices=False),
        "dynamics.step_info (with matrices)": lambda n: lambda: dynamics.step_info(states[n]),
        "observation copy": lambda n: lambda: states[n].observation.copy(),
        "env.step, whole": lambda n: (lambda: single.step(3)) if n == 1 else (lambda: vector.step(actions[1024])),
    }
    for name, make in parts.items():
        print(f"| {name} | {cost_us(make(1), 2000):.1f} | {cost_us(make(1024), 20):.1f} |")
    rngs = [np.random.default_rng(i) for i in range(1024)]
    starts = config.draw_starts(rngs, [None] * 1024)
    draw = cost_us(lambda: config.draw_starts(rngs, [None] * 1024), 3)
    reset = cost_us(lambda: dynamics.reset(states[1024], slice(None), *starts), 3)
    print(f"| draw 1024 new episodes (population + initial matrices) | | {draw:.0f} |")
    print(f"| dynamics.reset of 1024 trainees | | {reset:.0f} |")


if __name__ == "__main__":
    main()
