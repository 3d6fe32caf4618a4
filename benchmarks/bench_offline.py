"""Offline RL on the same datasets and gradient steps: our IQL and BC (MLP, attention) against d3rlpy's CQL and BC.

For every env and behavior it makes the dataset once (``sb3_ext.offline.make_dataset``, under ``--out``'s
``datasets`` folder), holds its last ``--held-out`` episodes out, and trains each algorithm on the rest for
``--steps`` gradient steps with each of ``--seeds``. A dataset smaller than ten times ``--held-out`` holds out a
tenth of its episodes instead (v1's ``medium-replay`` has 128), so that held-out episodes never starve training.
d3rlpy runs in a venv of its own (``benchmarks/d3rlpy_venv.sh``, its ``gymnasium`` pin), on the same transitions
exported to arrays (``benchmarks/offline_d3rlpy.py``): an episode's end is terminal there too, as our algorithms
treat it, and the rewards get the same scale (CORL's ``T / (max return - min return)``). Every run is a JSON record
in ``--records`` (``benchmarks/records/offline``, kept in the repository: the published table is rebuilt from
them), so an interrupted study resumes where it stopped; datasets and exports go to ``--out``, never committed::

    bash benchmarks/d3rlpy_venv.sh
    python benchmarks/bench_offline.py --envs FitnessWeights-v0 --behaviors medium-replay,expert --steps 10000

It reports, per dataset and algorithm, on ``--trainees`` held-out trainees (the evaluation's, seed 0):

* the normalized score of the greedy (most likely) actions, the mean over seeds and the interquartile mean of the
  trainees x seeds scores with the 95% stratified-bootstrap interval (``benchmarks/seeds.py``); ours also sampled;
* the behavior's own score: the dataset's mean return against the anchors run on its own trainees
  (:func:`behavior_anchors`). Datasets are logged on the env's draws, which include its wide trainees, while the
  held-out trainees are the population alone; against the held-out anchors the expert's own episodes would score
  1.18 on v0 and random's -0.37;
* gradient updates per second on this CPU (``torch`` threads as set, one run at a time);
* IQL's and CQL's mean Q on the held-out episodes against their discounted Monte-Carlo return, at the episodes'
  first steps and over all steps (both on the training reward scale).

``--algos`` also takes IQL with another expectile than 0.7: ``iql-mlp-t50`` is expectile 0.5, where IQL's critic
learns the behavior's own Q (SARSA), the one the Monte-Carlo return estimates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from fitness_weights_env.baselines import run_episodes
from sb3_ext.actions import PolicyActions
from sb3_ext.evaluate import anchor_runs, held_out_profiles
from sb3_ext.offline.algorithm import returns_reward_scale
from sb3_ext.offline.episodes import Episodes

sys.path.insert(0, str(Path(__file__).parent))
from seeds import iqm, stratified_bootstrap

ALGOS = ("iql-mlp", "iql-attn", "bc-mlp", "bc-attn", "d3rlpy-cql", "d3rlpy-bc")
BEHAVIORS = {
    "FitnessWeights-v0": ("random", "expert", "medium", "medium-replay", "medium-expert"),
    "FitnessWeights-v1": ("random", "expert", "coach", "medium", "medium-replay", "medium-expert"),
}
D3RLPY_PYTHON = Path(".cache/d3rlpy-venv/bin/python")


def export(episodes: Episodes, path: Path, env_id: str) -> None:
    """The transitions as d3rlpy's arrays: every episode's end terminal (as our algorithms treat it)."""
    n, steps = episodes.actions.shape
    terminals = np.zeros((n, steps), dtype=bool)
    terminals[:, -1] = True
    np.savez(
        path,
        observations=episodes.observations[:, :-1].reshape(n * steps, -1),
        actions=episodes.actions.reshape(-1),
        rewards=episodes.rewards.reshape(-1).astype(np.float32),
        terminals=terminals.reshape(-1),
        timeouts=np.zeros(n * steps, dtype=bool),
        env_id=np.array(env_id),
    )


def seed_anchors(env_id: str, seeds: np.ndarray) -> tuple[float, float]:
    """Mean returns of the runs that score 0 and 1 on the trainees of these episode seeds."""
    from sb3_ext.offline.episodes import UniformPolicy, coach_policy, expert_policy, rollout

    zero = (lambda batch: coach_policy(env_id, 0.0, batch)) if env_id == "FitnessWeights-v1" else UniformPolicy
    runs = np.split(seeds, np.flatnonzero(np.diff(seeds) != 1) + 1)  # rollout batches take consecutive seeds
    low = np.concatenate([rollout(zero, env_id, run).returns for run in runs])  # type: ignore[arg-type]
    high = np.concatenate([rollout(lambda batch: expert_policy(env_id), env_id, run).returns for run in runs])
    return float(low.mean()), float(high.mean())


def behavior_anchors(env_id: str, train: Episodes, draws: int, path: Path) -> tuple[float, float]:
    """The anchors of a behavior's score (cached in ``path``): on its own trainees where every episode has its
    seed, else (PPO's rollouts in ``medium-replay``) on ``draws`` fresh draws of the env (dataset seed 99)."""
    if not path.exists():
        from sb3_ext.offline.datasets import episode_seeds

        seeds = train.seeds if (train.seeds >= 0).all() else episode_seeds(draws, 99)
        path.write_text(json.dumps(seed_anchors(env_id, np.asarray(seeds, dtype=np.int64))))
    low, high = json.loads(path.read_text())
    return float(low), float(high)


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """(E, T) discounted return from every step to the episode's end."""
    out = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return out


def run_ours(
    algo: str, dataset: Any, held_out: Episodes, env_id: str, seed: int, steps: int, trainees: int
) -> dict[str, Any]:
    """Train one of our algorithms, time its updates, evaluate it and check its Q."""
    from sb3_ext.offline.bc import BC
    from sb3_ext.offline.iql import IQL

    name, network, *variant = algo.split("-")
    policy = "AttnCQQXPolicy" if network == "attn" else "MlpPolicy"
    kwargs = {"expectile": int(variant[0][1:]) / 100} if variant else {}  # iql-mlp-t50: expectile 0.5
    model: Any = (IQL if name == "iql" else BC)(policy, dataset, seed=seed, **kwargs)
    start = time.perf_counter()
    model.learn(steps, log_interval=0)
    seconds = time.perf_counter() - start
    profiles = held_out_profiles(trainees)
    seeds = list(range(trainees))
    result: dict[str, Any] = {
        "updates_per_second": steps / seconds,
        "train_seconds": seconds,
        "returns": run_episodes(PolicyActions(model.policy), profiles, seed=0, env_id=env_id).returns.tolist(),
        "sampled_returns": run_episodes(
            PolicyActions(model.policy, seeds), profiles, seed=0, env_id=env_id
        ).returns.tolist(),
    }
    if name == "iql":
        obs = th.as_tensor(held_out.observations[:, :-1].reshape(-1, held_out.observations.shape[-1]))
        actions = th.as_tensor(held_out.actions.reshape(-1))
        with th.no_grad():
            q = th.min(*model.policy.q_taken(obs, actions)).numpy().reshape(held_out.actions.shape)
        mc = discounted_returns(held_out.rewards * model.reward_scale_value, model.gamma)
        result.update(
            q_first_mean=float(q[:, 0].mean()),
            mc_first_mean=float(mc[:, 0].mean()),
            q_all_mean=float(q.mean()),
            mc_all_mean=float(mc.mean()),
        )
    return result


def run_d3rlpy(
    algo: str, train: Path, held: Path, scale: float, seed: int, steps: int, trainees: int, out: Path
) -> dict[str, Any]:
    """One d3rlpy run in its venv (``benchmarks/offline_d3rlpy.py``)."""
    if not D3RLPY_PYTHON.exists():
        raise SystemExit(f"{D3RLPY_PYTHON} is missing: run bash benchmarks/d3rlpy_venv.sh first")
    command = [str(D3RLPY_PYTHON), str(Path(__file__).parent / "offline_d3rlpy.py"), "--data", str(train)]
    command += ["--algo", algo.split("-")[1], "--steps", str(steps), "--seed", str(seed), "--out", str(out)]
    command += ["--eval-trainees", str(trainees), "--reward-scale", str(scale), "--q-data", str(held)]
    command += ["--threads", str(th.get_num_threads()), "--batch-size", "256", "--target-update-interval", "1000"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(out.read_text())


def normalized(returns: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Per-trainee scores in units of the set's mean margin: their mean is the normalized score."""
    return (returns - low.mean()) / (high.mean() - low.mean())


def _row(
    env_id: str,
    behavior: str,
    algo: str,
    runs: list[dict[str, Any]],
    low: np.ndarray,
    high: np.ndarray,
    behavior_score: float,
    reps: int,
) -> str:
    """One table row: the seeds' greedy scores (mean, IQM and interval), sampled, speed and the Q check."""
    scores = np.stack([normalized(np.asarray(r["returns"]), low, high) for r in runs], axis=1)  # trainees x seeds
    per_seed = scores.mean(axis=0)
    interval = stratified_bootstrap(scores, iqm, reps, 0)
    sampled = [
        float(normalized(np.asarray(r["sampled_returns"]), low, high).mean()) for r in runs if "sampled_returns" in r
    ]
    ratios = [
        (r["q_first_mean"] / r["mc_first_mean"], r["q_all_mean"] / r["mc_all_mean"])
        for r in runs
        if r.get("q_first_mean") is not None
    ]
    q_first, q_all = (f"{np.mean([x[k] for x in ratios]):.2f}" if ratios else "" for k in (0, 1))
    cells = [
        env_id,
        behavior,
        algo,
        f"{per_seed.mean():.3f} ({', '.join(f'{s:.2f}' for s in per_seed)})",
        f"{float(iqm(scores[None])[0]):.3f} [{interval[0]:.3f}, {interval[1]:.3f}]",
        f"{np.mean(sampled):.3f}" if sampled else "",
        f"{behavior_score:.3f}",
        f"{np.mean([r['updates_per_second'] for r in runs]):.1f}",
        q_first,
        q_all,
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default="FitnessWeights-v0,FitnessWeights-v1")
    parser.add_argument("--behaviors", default=None, help="comma-separated (default: every behavior of the env)")
    parser.add_argument("--algos", default=",".join(ALGOS))
    parser.add_argument("--episodes", type=int, default=500, help="episodes per dataset, held-out ones included")
    parser.add_argument("--held-out", type=int, default=50, help="episodes kept out of training (the Q check)")
    parser.add_argument("--steps", type=int, default=10_000, help="gradient steps per run")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trainees", type=int, default=200, help="held-out trainees of the evaluation")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_offline"), help="datasets and exports")
    parser.add_argument(
        "--records", type=Path, default=Path(__file__).parent / "records" / "offline", help="one JSON per run"
    )
    parser.add_argument("--anchor-trainees", type=int, default=1000, help="env draws: anchors of unseeded episodes")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replicates")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.records.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MINARI_DATASETS_PATH", str((args.out / "datasets").resolve()))
    from sb3_ext.offline.datasets import dataset_episodes, load_dataset, make_dataset

    seeds = [int(s) for s in args.seeds.split(",")]
    lines = [
        f"Machine: {os.uname().machine}, {os.cpu_count()} CPUs, torch {th.__version__} ({th.get_num_threads()} "
        f"threads); up to {args.episodes - args.held_out} training episodes per dataset, {args.steps} gradient steps, "
        f"seeds {seeds}, {args.trainees} held-out trainees",
        "",
        "| env | dataset | algorithm | score (greedy): mean over seeds | IQM [95% CI] | sampled | behavior | "
        "updates/s | Q / MC (first steps) | Q / MC (all) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for env_id in args.envs.split(","):
        low, high = anchor_runs(env_id, args.trainees)
        behaviors = args.behaviors.split(",") if args.behaviors else BEHAVIORS[env_id]
        for behavior in behaviors:
            tag = f"{env_id[-2:]}-{behavior}"
            dataset_id = f"bench/{env_id[-2:]}/{behavior}-v0"
            try:
                dataset = load_dataset(dataset_id)
            except ValueError:
                dataset = make_dataset(
                    env_id, behavior, args.episodes, seed=0, dataset_id=dataset_id, progress_bar=True
                )
            indices = dataset.episode_indices
            held_out = min(args.held_out, len(indices) // 10)
            dataset.episode_indices = indices[: len(indices) - held_out]
            train = dataset_episodes(dataset)
            held = dataset_episodes(load_dataset(dataset_id)).take(slice(len(indices) - held_out, None))
            scale = returns_reward_scale(train)
            anchors_path = args.records / f"{tag}-anchors.json"
            own_low, own_high = behavior_anchors(env_id, train, args.anchor_trainees, anchors_path)
            behavior_score = float((train.returns.mean() - own_low) / (own_high - own_low))
            train_npz, held_npz = args.out / f"{tag}-train.npz", args.out / f"{tag}-held.npz"
            if not train_npz.exists():
                export(train, train_npz, env_id)
                export(held, held_npz, env_id)
            for algo in args.algos.split(","):
                runs = []
                for seed in seeds:
                    path = args.records / f"{tag}-{algo}-seed{seed}.json"
                    if not path.exists():
                        print(f"{tag} {algo} seed {seed} ...", flush=True)
                        if algo.startswith("d3rlpy"):
                            result = run_d3rlpy(algo, train_npz, held_npz, scale, seed, args.steps, args.trainees, path)
                        else:
                            result = run_ours(algo, dataset, held, env_id, seed, args.steps, args.trainees)
                        path.write_text(json.dumps(result))
                    runs.append(json.loads(path.read_text()))
                lines.append(_row(env_id, behavior, algo, runs, low, high, behavior_score, args.reps))
                print(lines[-1], flush=True)
    print("\n".join(lines))
    (args.out / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
