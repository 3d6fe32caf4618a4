"""A tuning study's best configuration against the README's, retrained with several seeds and compared.

For each env: ``fitness-weights tune`` runs ``--trials`` trials of ``--timesteps`` steps in ``--workers``
processes (TPE, the median pruner, the trials scored on the validation trainees of
:data:`sb3_ext.tuning.VALIDATION_SEED`); then the best trial's config for ``--timesteps``, and the README's
(``TrainConfig``'s defaults) for ``--timesteps`` and for its own ``--reference-timesteps``, are each trained with
every ``--seeds`` seed (``--jobs`` at once) and evaluated on 200 held-out trainees of that seed (``evaluate_model``,
as ``examples/train_ppo.py`` does: the same trainees for every config, none of them a validation trainee). The
table gives the sampled policy's normalized score per seed, its mean and IQM with 95% stratified-bootstrap
intervals (``benchmarks/seeds.py``), and the paired difference, tuned minus each README row, on the same trainees.
Resumable: a study continues to ``--trials``, a run with its ``evaluation.json`` is not trained again::

    OMP_NUM_THREADS=1 python benchmarks/bench_tuning_search.py --envs FitnessWeights-v0,FitnessWeights-v1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from seeds import iqm, load_run, mean, stratified_bootstrap


def run_study(
    home: Path, study: str, env_id: str, trials: int, timesteps: int, workers: int, warmup: int | None
) -> None:
    """Bring the study to ``trials`` finished trials."""
    import optuna

    from fitness_weights_api.cli import main
    from fitness_weights_api.tuning_cli import STUDY_FILE, open_storage

    journal = home / "studies" / study / STUDY_FILE
    done = 0
    if journal.is_file():
        storage = open_storage(None, journal)
        done = sum(t.state.is_finished() for t in optuna.load_study(study_name=study, storage=storage).trials)
    if done < trials:
        flags = ["--study", study, "--trials", str(trials - done), "--timesteps", str(timesteps), "--env-id", env_id]
        flags += ["--workers", str(workers), *(["--pruner-warmup", str(warmup)] if warmup is not None else [])]
        if main(["--home", str(home), "tune", *flags, "--seed", str(done)]) != 0:
            raise SystemExit(f"the study {study} failed")


def train_and_evaluate(config: object, folder: Path, trainees: int) -> None:
    """Train ``config`` and write its evaluation to ``folder`` (skipped when it is there)."""
    from sb3_ext.evaluate import evaluate_model
    from sb3_ext.recipe import make_model

    if (folder / "evaluation.json").is_file():
        return
    model = make_model(config)  # type: ignore[arg-type]
    start = time.perf_counter()
    model.learn(config.timesteps)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    report = evaluate_model(model, trainees, seed=config.seed, env_id=config.env_id)  # type: ignore[attr-defined]
    report.extra.update(config=config.to_dict(), train_seconds=seconds)  # type: ignore[attr-defined]
    report.write(folder)
    print(f"{folder}: {report.normalized_score:.3f} in {seconds:.0f} s", flush=True)


def interval(scores: np.ndarray, statistic: object, reps: int, seeds_too: bool = False) -> str:
    low, high = stratified_bootstrap(scores, statistic, reps, 0, resample_strata=seeds_too)  # type: ignore[arg-type]
    return f"[{low:.3f}, {high:.3f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default="FitnessWeights-v0,FitnessWeights-v1")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--timesteps", type=int, default=400_000, help="steps of a trial and of a retrained run")
    parser.add_argument(
        "--reference-timesteps", type=int, default=800_000, help="the README's own budget (0: no such row)"
    )
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trainees", type=int, default=200, help="held-out trainees of each evaluation")
    parser.add_argument("--workers", type=int, default=2, help="trial processes of the study")
    parser.add_argument("--pruner-warmup", type=int, default=None, help="tune's (default: a third of a trial)")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (one torch thread each)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_tuning_search"))
    parser.add_argument("--reps", type=int, default=20_000, help="bootstrap replicates")
    args = parser.parse_args(argv)
    from sb3_ext.config import TrainConfig

    home = args.out / "home"
    seeds = [int(s) for s in args.seeds.split(",")]
    lines = [
        f"{args.trials} trials of {args.timesteps} steps per env; retrained with seeds {seeds}, {args.trainees} "
        "held-out trainees each; sampled policy",
        "",
        "| env | config | steps | per seed | mean [95% CI; seeds too] | IQM [95% CI; seeds too] | "
        "tuned minus this, mean [95% CI] |",
        "|---|---|---:|---|---|---|---|",
    ]
    for env_id in args.envs.split(","):
        study = f"search-{env_id[-2:]}"
        run_study(home, study, env_id, args.trials, args.timesteps, args.workers, args.pruner_warmup)
        best = TrainConfig.from_dict(json.loads((home / "studies" / study / "best_config.json").read_text()))
        readme = TrainConfig(timesteps=args.timesteps, env_id=env_id, device="cpu")
        print(f"{env_id} best: {json.dumps(best.to_dict())}", flush=True)
        rows = {("tuned", args.timesteps): best, ("README", args.timesteps): readme}
        if args.reference_timesteps:
            rows[("README", args.reference_timesteps)] = readme
        runs = {
            args.out / env_id / f"{name}-{steps}" / f"seed{seed}": dataclasses.replace(
                config, seed=seed, timesteps=steps
            )
            for (name, steps), config in rows.items()
            for seed in seeds
        }
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context, initializer=_one_thread) as pool:
            for done in [
                pool.submit(train_and_evaluate, config, folder, args.trainees) for folder, config in runs.items()
            ]:
                done.result()
        matrices = {
            key: np.stack(
                [load_run(args.out / env_id / f"{key[0]}-{key[1]}" / f"seed{s}").normalized("sampled") for s in seeds],
                axis=1,
            )  # trainees x seeds
            for key in rows
        }
        tuned = matrices[("tuned", args.timesteps)]
        for (name, steps), scores in matrices.items():
            per_seed = ", ".join(f"{s:.3f}" for s in scores.mean(axis=0))
            difference = tuned - scores  # the same held-out trainees, seed by seed
            lines.append(
                f"| {env_id} | {name} | {steps:,} | {per_seed} | {scores.mean():.3f} "
                f"{interval(scores, mean, args.reps)}; {interval(scores, mean, args.reps, True)} | "
                f"{float(iqm(scores[None])[0]):.3f} "
                f"{interval(scores, iqm, args.reps)}; {interval(scores, iqm, args.reps, True)} | "
                + (f"{difference.mean():+.3f} {interval(difference, mean, args.reps)}" if name != "tuned" else "")
                + " |"
            )
            print(lines[-1], flush=True)
    print("\n".join(lines))
    (args.out / "results.md").write_text("\n".join(lines) + "\n")


def _one_thread() -> None:
    import torch as th

    th.set_num_threads(1)


if __name__ == "__main__":
    main()
