"""Where a ``FitnessWeights-v1`` vector-env step's time goes, at N = 256: each part left out in turn.

Each row runs 128 steps of random actions with one part of v1's kernel replaced by a stand-in that does nothing
(or, for the hidden draws, hands back the first draw again), interleaved with the unchanged env, so that the
machine's swings hit every row alike. A part's cost is the step's time without it subtracted from the step's time
with it (minimum over the rounds, microseconds per step of the whole batch). Parts that feed later ones (the plan
followed row by row sets which trainees' metrics are recomputed) take those with them. The first rows are the two
envs with and without episode ends (``max_episode_steps=None``, ``weeks=None``), which splits off the resets::

    python benchmarks/profile_v1_step.py            # about a minute on a 2-core CPU
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import fitness_weights_env  # noqa: F401  (registers the envs)
from fitness_weights_env import FitnessWeightsV1VectorEnv, FitnessWeightsVectorEnv, training_dynamics
from fitness_weights_env import body as trainees
from fitness_weights_env.body import WeekResult
from fitness_weights_env.training_env import TrainingConfig

N, STEPS = 256, 128


def timed(env: Any) -> Callable[[], float]:
    """``STEPS`` random batches on ``env``; returns microseconds per step."""
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 685, (STEPS, N))

    def run() -> float:
        start = time.perf_counter()
        for batch in actions:
            env.step(batch)
        return (time.perf_counter() - start) / STEPS * 1e6

    return run


def idle_week(body: Any, loads: np.ndarray, injury_draws: Any = None) -> WeekResult:
    """A week that trains nothing (the weeks still count, so the episode runs as usual)."""
    n = loads.shape[0]
    body.week = body.week + 1
    return WeekResult(loads, np.ones_like(loads), np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11, help="timed windows per row, interleaved")
    args = parser.parse_args()

    first_hidden: dict[int, Any] = {}
    draw_hidden = TrainingConfig.draw_hidden

    def repeated_hidden(self: TrainingConfig, rngs: Any) -> Any:
        if len(rngs) not in first_hidden:
            first_hidden[len(rngs)] = draw_hidden(self, rngs)
        return first_hidden[len(rngs)]

    # row -> (env, the patch: module or class, attribute, stand-in)
    rows: dict[str, tuple[Any, tuple[Any, str, Any] | None]] = {
        "v0, 64-step episodes": (FitnessWeightsVectorEnv(N), None),
        "v0, no episode end": (FitnessWeightsVectorEnv(N, max_episode_steps=None), None),
        "v1, 64-step episodes": (FitnessWeightsV1VectorEnv(N), None),
        "v1, no episode end": (FitnessWeightsV1VectorEnv(N, max_episode_steps=None, weeks=None), None),
    }
    parts = {
        "the plan's metrics": (training_dynamics, "_write_metrics", lambda state, index=None: None),
        "the plan followed row by row (and the metrics it triggers)": (
            training_dynamics,
            "_follow",
            lambda state, rows, old, new: np.zeros(rows.shape[0], dtype=bool),
        ),
        "the week's training": (trainees, "train_week", idle_week),
        "the week's replan": (training_dynamics, "_replan", lambda state, index: None),
        "the week's record (measurement, info arrays)": (
            training_dynamics,
            "_record_week",
            lambda state, index, week, noise: None,
        ),
        "the info": (training_dynamics, "step_info", lambda state, index=None, matrices=True: {}),
        "the hidden parameters' draws": (TrainingConfig, "draw_hidden", repeated_hidden),
    }
    for name, patch in parts.items():
        rows[f"v1 without {name}"] = (FitnessWeightsV1VectorEnv(N), patch)
    runs = {name: timed(env) for name, (env, _) in rows.items()}
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (_, patch) in rows.items():
            if patch is None:
                times[name].append(runs[name]())
                continue
            owner, attribute, stand_in = patch
            original = getattr(owner, attribute)
            setattr(owner, attribute, stand_in)
            try:
                times[name].append(runs[name]())
            finally:
                setattr(owner, attribute, original)
    best = {name: min(values) for name, values in times.items()}
    base = best["v1, 64-step episodes"]
    print(f"N = {N}, {STEPS} steps of random actions per window, best of {args.rounds} interleaved windows\n")
    print("| row | us per step | part's cost (us per step) |\n|---|---:|---:|")
    for name, value in best.items():
        cost = f"{base - value:.0f}" if name.startswith("v1 without") else ""
        print(f"| {name} | {value:.0f} | {cost} |")
    v0, v1 = best["v0, 64-step episodes"], base
    print(
        f"\nv1 / v0 steps/s: {v0 / v1:.2f}; resets per step: v0 {v0 - best['v0, no episode end']:.0f} us, "
        f"v1 {v1 - best['v1, no episode end']:.0f} us"
    )


if __name__ == "__main__":
    main()
