r"""d3rlpy peer of the offline-RL benchmark: train d3rlpy's discrete CQL or BC on an exported dataset, evaluate it.

It runs in a venv of its own, since d3rlpy 2.8.1 declares ``gymnasium==1.0.0`` (``benchmarks/d3rlpy_venv.sh``
creates it and says how the pin is lifted), and imports only numpy, gymnasium, d3rlpy, torch and
``fitness_weights_env``: never ``sb3_ext`` or stable-baselines3::

    bash benchmarks/d3rlpy_venv.sh
    .cache/d3rlpy-venv/bin/python benchmarks/offline_d3rlpy.py --data runs/data.npz --algo cql --steps 100000 \
        --seed 0 --q-data runs/held_out.npz --out runs/d3rlpy_cql_seed0.json

**Data** (``--data``, and ``--q-data`` in the same format): an ``.npz`` with ``observations`` (T, D) float32,
``actions`` (T,) int64 in [0, 685), ``rewards`` (T,) float32, ``terminals`` (T,) bool, ``timeouts`` (T,) bool and
the scalar string ``env_id`` (``FitnessWeights-v0``, D = 198, or ``FitnessWeights-v1``, D = 199). An episode ends
at a step whose ``terminals`` or ``timeouts`` is true. d3rlpy asserts that the two flags are never true together,
so a step flagged both is kept as terminal only; steps after the last flag belong to no episode and are dropped.
As d3rlpy does (D4RL's convention), the last step of an episode that ends by timeout has no next observation and
is not a training transition: a 64-step truncated episode gives 63 transitions.

**Training**: ``d3rlpy.algos.DiscreteCQLConfig`` (Double DQN plus alpha times the conservative term) or
``DiscreteBCConfig``, with a ``VectorEncoderFactory(hidden_units)`` encoder, on CPU. The learning rate and CQL's
``target_update_interval`` default to d3rlpy's (CQL: 6.25e-5 and 8000 steps; BC: 1e-3). Rewards are multiplied by
``--reward-scale`` before d3rlpy sees them. ``fit`` runs one epoch of ``--steps`` gradient steps, without
evaluators, progress bar, saved models or log files. ``updates_per_second`` is ``--steps`` over the wall time of
``fit`` after the networks are built (it includes d3rlpy's per-step batch sampling, which is part of its
update loop); ``loop_updates_per_second`` times the loop alone, from the first step's end to the last's.

**Evaluation** in this project's env: ``--eval-trainees`` held-out trainees
(``sample_profiles(K, seed=held_out_seed_offset + eval_seed, edge_fraction=0.0)``), one episode each with
``fitness_weights_env.baselines.run_episodes`` and the algo's greedy ``predict``; ``returns`` are undiscounted.

**Value check** (``--q-data``, held-out dataset episodes): the mean of ``predict_value(s, a)`` at each episode's
first step and over all its steps, against the mean discounted Monte-Carlo return from the same steps (``--gamma``,
rewards times ``--reward-scale``, summed to the episode's end). BC has no value function: its ``q_*`` are null.

**Output** (``--out``): a JSON object with algo, seed, steps, hidden, batch_size, env_id, train_seconds,
updates_per_second, returns (K floats), mean_return, q_first_mean, mc_first_mean, q_all_mean, mc_all_mean, and
the remaining settings and versions. The summary is also printed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, cast

import d3rlpy
import gymnasium
import numpy as np
import torch

from fitness_weights_env import N_ACTIONS, sample_profiles
from fitness_weights_env.baselines import run_episodes
from fitness_weights_env.vector_env import FitnessWeightsVectorEnv

OBSERVATION_SIZES = {"FitnessWeights-v0": 198, "FitnessWeights-v1": 199}
"""D of each env id's observations."""
ALGOS = ("cql", "bc")
PREDICT_CHUNK = 4096
"""Rows per ``predict_value`` call of the value check."""


class Dataset:
    """The arrays of one exported ``.npz``, checked, cut to whole episodes.

    Args:
        path: The ``.npz``.

    Attributes:
        env_id: The env the data was logged in.
        observations: (T, D) float32.
        actions: (T,) int64.
        rewards: (T,) float32, unscaled.
        terminals: (T,) bool.
        timeouts: (T,) bool, false wherever ``terminals`` is true.
        starts: (E,) index of each episode's first step.
        ends: (E,) index one past each episode's last step.
        dropped: Steps after the last episode end, not kept.
    """

    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as data:
            missing = {"observations", "actions", "rewards", "terminals", "timeouts", "env_id"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: missing keys {sorted(missing)}")
            env_id = data["env_id"].item()
            self.env_id = env_id.decode() if isinstance(env_id, bytes) else str(env_id)
            observations = np.asarray(data["observations"], dtype=np.float32)
            actions = np.asarray(data["actions"]).astype(np.int64).reshape(-1)
            rewards = np.asarray(data["rewards"], dtype=np.float32).reshape(-1)
            terminals = np.asarray(data["terminals"]).astype(bool).reshape(-1)
            timeouts = np.asarray(data["timeouts"]).astype(bool).reshape(-1)
        if self.env_id not in OBSERVATION_SIZES:
            raise ValueError(f"{path}: env_id {self.env_id!r} is not one of {sorted(OBSERVATION_SIZES)}")
        size = OBSERVATION_SIZES[self.env_id]
        if observations.ndim != 2 or observations.shape[1] != size:
            raise ValueError(f"{path}: observations {observations.shape}, expected (T, {size}) for {self.env_id}")
        length = observations.shape[0]
        for name, array in (("actions", actions), ("rewards", rewards), ("terminals", terminals)):
            if array.shape != (length,):
                raise ValueError(f"{path}: {name} {array.shape}, expected ({length},)")
        if timeouts.shape != (length,):
            raise ValueError(f"{path}: timeouts {timeouts.shape}, expected ({length},)")
        if length and (actions.min() < 0 or actions.max() >= N_ACTIONS):
            raise ValueError(f"{path}: actions outside [0, {N_ACTIONS})")
        timeouts &= ~terminals  # d3rlpy's EpisodeGenerator asserts the flags are never both true
        ends = np.flatnonzero(terminals | timeouts) + 1
        if ends.size == 0:
            raise ValueError(f"{path}: no step ends an episode (terminals and timeouts are all false)")
        keep = int(ends[-1])
        self.dropped = length - keep
        self.observations = observations[:keep]
        self.actions = actions[:keep]
        self.rewards = rewards[:keep]
        self.terminals = terminals[:keep]
        self.timeouts = timeouts[:keep]
        self.ends = ends
        self.starts = np.concatenate([[0], ends[:-1]])

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    def mdp_dataset(self, reward_scale: float) -> d3rlpy.dataset.MDPDataset:
        """d3rlpy's dataset of these episodes, rewards times ``reward_scale``."""
        return d3rlpy.dataset.MDPDataset(
            observations=self.observations,
            actions=self.actions,
            rewards=self.rewards * np.float32(reward_scale),
            terminals=self.terminals.astype(np.float32),
            timeouts=self.timeouts.astype(np.float32),
            action_space=d3rlpy.ActionSpace.DISCRETE,
            action_size=N_ACTIONS,
        )

    def discounted_returns(self, gamma: float, reward_scale: float) -> np.ndarray:
        """(T,) discounted return from each step to its episode's end, rewards times ``reward_scale``."""
        rewards = self.rewards.astype(np.float64) * reward_scale
        returns = np.empty_like(rewards)
        for start, end in zip(self.starts, self.ends, strict=True):
            running = 0.0
            for t in range(end - 1, start - 1, -1):
                running = rewards[t] + gamma * running
                returns[t] = running
        return returns


def make_algo(args: argparse.Namespace) -> d3rlpy.algos.QLearningAlgoBase:
    """The untrained d3rlpy algo of ``args``, on CPU."""
    kwargs: dict[str, Any] = {
        "encoder_factory": d3rlpy.models.VectorEncoderFactory(hidden_units=list(args.hidden)),
        "batch_size": args.batch_size,
        "gamma": args.gamma,
    }
    if args.learning_rate is not None:
        kwargs["learning_rate"] = args.learning_rate
    if args.algo == "cql":
        kwargs["alpha"] = args.alpha
        if args.target_update_interval is not None:
            kwargs["target_update_interval"] = args.target_update_interval
        config: d3rlpy.base.LearnableConfig = d3rlpy.algos.DiscreteCQLConfig(**kwargs)
    else:
        config = d3rlpy.algos.DiscreteBCConfig(**kwargs)
    return cast(d3rlpy.algos.QLearningAlgoBase, config.create(device="cpu:0"))


def train(algo: d3rlpy.algos.QLearningAlgoBase, dataset: d3rlpy.dataset.MDPDataset, steps: int) -> dict[str, float]:
    """Run ``steps`` gradient steps of ``algo`` on ``dataset``; return the timings.

    The networks are built first, outside the timed ``fit``.
    """
    algo.build_with_dataset(dataset)
    step_times: list[float] = []

    def callback(_algo: object, _epoch: int, _step: int) -> None:
        step_times.append(time.perf_counter())

    start = time.perf_counter()
    algo.fit(
        dataset,
        n_steps=steps,
        n_steps_per_epoch=steps,
        experiment_name="offline_d3rlpy",
        with_timestamp=False,
        logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
        show_progress=False,
        save_interval=steps + 1,
        evaluators=None,
        callback=callback,
    )
    seconds = time.perf_counter() - start
    loop = step_times[-1] - step_times[0] if len(step_times) > 1 else float("nan")
    return {
        "train_seconds": seconds,
        "updates_per_second": steps / seconds,
        "loop_updates_per_second": (len(step_times) - 1) / loop if len(step_times) > 1 else float("nan"),
    }


def evaluate(
    algo: d3rlpy.algos.QLearningAlgoBase, env_id: str, trainees: int, offset: int, eval_seed: int
) -> np.ndarray:
    """(K,) undiscounted returns of the greedy policy on ``trainees`` held-out trainees."""
    profiles = sample_profiles(trainees, seed=offset + eval_seed, edge_fraction=0.0)

    def policy(observation: np.ndarray, env: FitnessWeightsVectorEnv) -> np.ndarray:
        return np.asarray(algo.predict(np.asarray(observation, dtype=np.float32)), dtype=np.int64).reshape(-1)

    return np.asarray(run_episodes(policy, profiles, seed=eval_seed, env_id=env_id).returns, dtype=np.float64)


def value_check(
    algo: d3rlpy.algos.QLearningAlgoBase, data: Dataset, gamma: float, reward_scale: float
) -> dict[str, float | None]:
    """Mean predicted Q(s, a) and mean discounted Monte-Carlo return, at the episodes' first steps and at all."""
    returns = data.discounted_returns(gamma, reward_scale)
    result: dict[str, float | None] = {
        "q_first_mean": None,
        "mc_first_mean": float(returns[data.starts].mean()),
        "q_all_mean": None,
        "mc_all_mean": float(returns.mean()),
    }
    try:
        values = np.concatenate(
            [
                np.asarray(
                    algo.predict_value(data.observations[i : i + PREDICT_CHUNK], data.actions[i : i + PREDICT_CHUNK])
                ).reshape(-1)
                for i in range(0, len(data), PREDICT_CHUNK)
            ]
        ).astype(np.float64)
    except NotImplementedError:  # BC: "BC does not support value estimation"
        return result
    result["q_first_mean"] = float(values[data.starts].mean())
    result["q_all_mean"] = float(values.mean())
    return result


def parse_hidden(text: str) -> list[int]:
    """``"256,256"`` -> ``[256, 256]``."""
    units = [int(part) for part in text.split(",") if part.strip()]
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"expected positive comma-separated sizes, got {text!r}")
    return units


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="training dataset (.npz)")
    parser.add_argument("--algo", choices=ALGOS, default="cql", help="DiscreteCQL or DiscreteBC")
    parser.add_argument("--steps", type=int, default=10_000, help="gradient steps")
    parser.add_argument("--seed", type=int, default=0, help="d3rlpy.seed and torch seed")
    parser.add_argument("--hidden", type=parse_hidden, default=[256, 256], help="encoder hidden units, e.g. 256,256")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=None, help="default: d3rlpy's for the algo")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--alpha", type=float, default=1.0, help="CQL's conservative weight")
    parser.add_argument(
        "--target-update-interval", type=int, default=None, help="CQL's target sync interval; default d3rlpy's (8000)"
    )
    parser.add_argument("--reward-scale", type=float, default=1.0, help="rewards are multiplied by this")
    parser.add_argument("--eval-trainees", type=int, default=200, help="held-out trainees evaluated (0: none)")
    parser.add_argument("--held-out-seed-offset", type=int, default=10_000)
    parser.add_argument("--eval-seed", type=int, default=0)
    parser.add_argument("--q-data", type=Path, default=None, help="held-out episodes (.npz) for the value check")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="JSON result")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be positive")
    if args.eval_trainees < 0:
        parser.error("--eval-trainees must not be negative")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate, write and print the result."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    d3rlpy.seed(args.seed)
    torch.manual_seed(args.seed)

    data = Dataset(args.data)
    if data.dropped:
        print(f"warning: {data.dropped} steps after the last episode end of {args.data} are dropped")
    dataset = data.mdp_dataset(args.reward_scale)
    algo = make_algo(args)
    timing = train(algo, dataset, args.steps)

    returns = (
        evaluate(algo, data.env_id, args.eval_trainees, args.held_out_seed_offset, args.eval_seed)
        if args.eval_trainees
        else np.zeros(0)
    )
    values: dict[str, float | None] = dict.fromkeys(("q_first_mean", "mc_first_mean", "q_all_mean", "mc_all_mean"))
    if args.q_data is not None:
        q_data = Dataset(args.q_data)
        if q_data.env_id != data.env_id:
            raise ValueError(f"--q-data is {q_data.env_id}, --data is {data.env_id}")
        values = value_check(algo, q_data, args.gamma, args.reward_scale)

    config = algo.config
    result: dict[str, Any] = {
        "algo": args.algo,
        "seed": args.seed,
        "steps": args.steps,
        "hidden": list(args.hidden),
        "batch_size": args.batch_size,
        "env_id": data.env_id,
        **timing,
        "returns": [float(value) for value in returns],
        "mean_return": float(returns.mean()) if returns.size else None,
        **values,
        "learning_rate": config.learning_rate,
        "gamma": args.gamma,
        "alpha": getattr(config, "alpha", None),
        "target_update_interval": getattr(config, "target_update_interval", None),
        "reward_scale": args.reward_scale,
        "threads": args.threads,
        "eval_trainees": args.eval_trainees,
        "held_out_seed_offset": args.held_out_seed_offset,
        "eval_seed": args.eval_seed,
        "data": str(args.data),
        "q_data": None if args.q_data is None else str(args.q_data),
        "train_transitions": int(dataset.transition_count),
        "train_episodes": len(data.starts),
        "versions": {
            "d3rlpy": d3rlpy.__version__,
            "torch": torch.__version__,
            "gymnasium": gymnasium.__version__,
            "numpy": np.__version__,
        },
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    summary = {key: value for key, value in result.items() if key != "returns"}
    print(json.dumps(summary, indent=2))
    return result


if __name__ == "__main__":
    main()
