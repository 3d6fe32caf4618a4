r"""The offline subcommands of ``fitness-weights``: datasets (Minari) and offline training (IQL, BC).

::

    fitness-weights dataset make --env-id FitnessWeights-v0 --behavior medium-replay --episodes 1000 --seed 0
    fitness-weights dataset list
    fitness-weights dataset show fitness-weights/v0/medium-replay-v0
    fitness-weights offline train --algo iql --dataset fitness-weights/v0/medium-replay-v0 --steps 100000 \
        --register --activate

``offline train`` trains on the dataset alone, saves the model, evaluates it on the held-out trainees of the
dataset's env (the evaluation of :mod:`sb3_ext.evaluate`) and, with ``--register``, registers it with that env id
and its normalized score: the service then optimizes with it (and predicts, for ``--policy AttnCQQXPolicy``) as
with a PPO model. Datasets live under ``MINARI_DATASETS_PATH`` (Minari's ``~/.minari/datasets`` by default).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]

ALGOS = ("iql", "bc")
OFFLINE_POLICIES = ("MlpPolicy", "AttnCQQXPolicy")
MAX_STEPS = 10_000_000


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def add_commands(commands: Any, env_ids: tuple[str, ...], settings: Any) -> None:
    """Add ``dataset`` and ``offline`` to the ``fitness-weights`` subcommands.

    Args:
        commands: The parser's subparsers.
        env_ids: The env ids the registry takes.
        settings: ``args -> ServiceSettings`` (the service folder of ``--home``).
    """
    from sb3_ext.offline.datasets import BEHAVIORS

    dataset = commands.add_parser(
        "dataset",
        help="make, list or show offline datasets (Minari)",
        description="Local Minari datasets of FitnessWeights episodes, under MINARI_DATASETS_PATH "
        "(default ~/.minari/datasets). Nothing touches the network.",
    )
    actions = dataset.add_subparsers(dest="action", required=True, metavar="action")
    make = actions.add_parser(
        "make", help="log a behavior's episodes as a dataset", description="Run a behavior and write its episodes."
    )
    make.add_argument("--env-id", default=env_ids[0], choices=env_ids, help="the environment")
    make.add_argument("--behavior", required=True, choices=BEHAVIORS, help="the behavior (D4RL's levels)")
    make.add_argument("--episodes", type=_positive, required=True, help="episodes to log")
    make.add_argument("--seed", type=int, default=0, help="the dataset's seed (0 to 999)")
    make.add_argument("--dataset-id", default=None, help="the Minari id (default fitness-weights/<env>/<behavior>-v0)")
    make.add_argument("--noise", type=float, default=0.25, help="coach: probability of a random action")
    make.add_argument("--reference-trainees", type=int, default=200, help="held-out trainees of the reference scores")
    make.add_argument("--medium-score", type=float, default=0.5, help="medium: the PPO run's stopping score")
    make.add_argument("--medium-timesteps", type=_positive, default=2_000_000, help="medium: the run's step budget")
    make.add_argument("--overwrite", action="store_true", help="replace a dataset of the same id")
    make.add_argument("--quiet", action="store_true", help="no progress bar")
    listing = actions.add_parser("list", help="list the local datasets", description="List the local datasets.")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = actions.add_parser("show", help="describe one dataset", description="A dataset's summary and returns.")
    show.add_argument("dataset_id", help="the Minari id")
    show.add_argument("--json", action="store_true", help="print JSON")
    dataset.set_defaults(run=lambda args: _dataset(args))

    offline = commands.add_parser(
        "offline",
        help="train a model on a dataset alone (IQL, BC)",
        description="Offline RL: train on a Minari dataset, evaluate on held-out trainees, register.",
    )
    offline_actions = offline.add_subparsers(dest="action", required=True, metavar="action")
    train = offline_actions.add_parser(
        "train", help="train, evaluate and optionally register", description="Train IQL or BC on a dataset."
    )
    train.add_argument("--algo", default="iql", choices=ALGOS, help="iql (discrete IQL) or bc (behavior cloning)")
    train.add_argument("--dataset", required=True, help="the dataset's Minari id")
    train.add_argument("--policy", default="MlpPolicy", choices=OFFLINE_POLICIES, help="the networks")
    train.add_argument("--steps", type=_positive, default=100_000, help="gradient steps")
    train.add_argument("--seed", type=int, default=0, help="seed of the networks, the minibatches, the evaluation")
    train.add_argument("--batch-size", type=_positive, default=256, help="transitions per gradient step")
    train.add_argument("--learning-rate", type=float, default=3e-4, help="learning rate (the actor's: cosine to 0)")
    train.add_argument("--expectile", type=float, default=0.7, help="IQL: the value's expectile")
    train.add_argument("--temperature", type=float, default=3.0, help="IQL: beta of the advantage weights")
    train.add_argument("--eval-trainees", type=int, default=200, help="held-out trainees of the evaluation")
    train.add_argument("--out", type=Path, default=Path("runs/offline"), help="folder of the model and evaluation")
    train.add_argument("--register", action="store_true", help="register the model in the service folder")
    train.add_argument("--activate", action="store_true", help="with --register: make it the active version")
    train.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    offline.set_defaults(run=lambda args: _offline_train(args, settings(args)))


def _dataset(args: argparse.Namespace) -> int:
    from sb3_ext.offline.datasets import dataset_episodes, list_datasets, load_dataset, make_dataset

    if args.action == "make":
        made = make_dataset(
            args.env_id,
            args.behavior,
            args.episodes,
            args.seed,
            args.dataset_id,
            noise=args.noise,
            reference_trainees=args.reference_trainees,
            medium_score=args.medium_score,
            medium_timesteps=args.medium_timesteps,
            overwrite=args.overwrite,
            progress_bar=not args.quiet,
        )
        print(f"made {made.spec.dataset_id}: {made.total_episodes} episodes, {made.total_steps} steps")
        return 0
    if args.action == "list":
        datasets = list_datasets()
        if args.json:
            print(json.dumps(datasets, indent=2))
        elif not datasets:
            print("no local FitnessWeights datasets (make one with 'fitness-weights dataset make')")
        for dataset_id, summary in ({} if args.json else datasets).items():
            print(
                f"{dataset_id}  {summary['env_id']}  {summary['behavior']}  {summary['total_episodes']} episodes  "
                f"{summary['total_steps']} steps"
            )
        return 0
    import minari
    import numpy as np

    dataset = load_dataset(args.dataset_id)
    episodes = dataset_episodes(dataset)
    summary = list_datasets().get(args.dataset_id, {})
    returns = episodes.returns
    summary.update(
        mean_return=float(returns.mean()),
        return_range=[float(returns.min()), float(returns.max())],
        normalized_score=float(minari.get_normalized_score(dataset, np.asarray(returns.mean()))),
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0


def _offline_train(args: argparse.Namespace, settings: Any) -> int:
    from sb3_ext.evaluate import evaluate_model
    from sb3_ext.offline.bc import BC
    from sb3_ext.offline.datasets import load_dataset
    from sb3_ext.offline.iql import IQL

    if args.steps > MAX_STEPS:
        raise _field_error("steps", f"must be at most {MAX_STEPS}", args.steps)
    if args.activate and not args.register:
        raise _field_error("activate", "needs --register", True)
    dataset = load_dataset(args.dataset)  # refused (the known ids listed) before any work
    kwargs: dict[str, Any] = dict(
        learning_rate=args.learning_rate, batch_size=args.batch_size, seed=args.seed, device=args.device
    )
    if args.algo == "iql":
        model: Any = IQL(args.policy, dataset, expectile=args.expectile, temperature=args.temperature, **kwargs)
    else:
        model = BC(args.policy, dataset, **kwargs)
    model.learn(args.steps, progress_bar=not args.quiet)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "model.zip"
    model.save(path)
    env_id = model.dataset_env_id
    report = evaluate_model(model, n_trainees=args.eval_trainees, seed=args.seed, env_id=env_id)
    report.write(args.out)
    print(report.to_markdown())
    print(f"saved {path}")
    if not args.register:
        return 0
    registry = settings.open_registry()
    config = {
        "algo": args.algo,
        "dataset": args.dataset,
        "policy": args.policy,
        "steps": args.steps,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "env_id": env_id,
    }
    if args.algo == "iql":
        config.update(expectile=args.expectile, temperature=args.temperature)
    print(f"converting and checking {path} (a dry run in a child process) ...", file=sys.stderr)
    record = registry.register(
        path,
        training_config=config,
        evaluation_score=report.normalized_score,
        metadata={"algo": args.algo, "dataset": args.dataset},
        activate=args.activate,
        env_id=env_id,
    )
    print(f"registered {record.version}{' (active)' if record.active else ''}: {args.algo} {args.policy} on {env_id}")
    return 0


def _field_error(field: str, reason: str, value: Any) -> Exception:
    from fitness_weights_env.errors import FieldError

    return FieldError(field, reason, value)
