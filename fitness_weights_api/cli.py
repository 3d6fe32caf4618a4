r"""The ``fitness-weights`` command: train, evaluate, optimize, predict, manage models, serve the API.

Every subcommand works on one service folder (``--home``, or ``FITNESS_WEIGHTS_HOME``; see
:mod:`fitness_weights_api.settings`), the same one ``serve`` answers from::

    fitness-weights train --timesteps 200000 --activate      # a training job; its model is registered
    fitness-weights train --timesteps 200000 --env-id FitnessWeights-v1   # trained and served on v1
    fitness-weights models list
    fitness-weights predict --profile trainee.json
    fitness-weights optimize --age 23 --gender male --fitness-level 0.6 \\
        --qualities 0.55,0.5,0.6,0.65,0.6 --target "3000 m run" --target 单杠引体向上
    fitness-weights evaluate active --trainees 200
    fitness-weights tokens create --role admin --name ops   # the token alone on the last line, shown once
    fitness-weights serve --workers 2 --port 8000
    fitness-weights dataset make --behavior expert --episodes 1000        # offline RL (fitness_weights_api.offline_cli)
    fitness-weights tune --study v0 --trials 16                           # search (fitness_weights_api.tuning_cli)
    fitness-weights offline train --algo iql --dataset fitness-weights/v0/expert-v0 --register

The commands act on the service folder directly, so whoever may write that folder administers the service; the
HTTP API asks for tokens instead. No command unpickles a model: registered versions load from the registry's safe
format, and a model file given to ``evaluate`` is converted the same way first.

Exit codes: 0 done, 1 a failed or cancelled training job, 2 bad input (the message names the field),
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.job_store import FINAL_STATES, SUCCEEDED, Job
from fitness_weights_api.jobs import JobManager
from fitness_weights_api.model_format import ENV_IDS
from fitness_weights_api.registry import FORMAT, RegistryError
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_env.errors import FieldError, FitnessWeightsError
from sb3_ext.config import POLICIES
from sb3_ext.presets import PRESETS

__all__ = ["main"]

TOP_QUALITIES = 3
TOP_EXERCISES = 3


class CommandError(FitnessWeightsError):
    """Bad input to a subcommand: printed as ``error: <message>``, exit code 2."""


# -- helpers -------------------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> ServiceSettings:
    settings = ServiceSettings.from_env()
    return settings if args.home is None else replace(settings, home=args.home)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _check_env_id(env_id: str | None) -> None:
    """An ``--env-id`` given is one of the registry's env ids (checked before any work)."""
    if env_id is not None and env_id not in ENV_IDS:
        raise FieldError("env_id", f"must be one of {list(ENV_IDS)}", env_id)


# -- train ---------------------------------------------------------------------------------------------------


def _job_config(args: argparse.Namespace) -> JobConfig:
    """The job's config: the flags', or the ``--config`` file's.

    The file is a training config (a study's ``best_config.json``); ``--timesteps`` and ``--activate`` apply to it.
    """
    if args.config is not None:
        try:
            data = json.loads(Path(args.config).read_text(encoding="utf-8"))
        except OSError as err:
            raise CommandError(f"config: cannot read {args.config}: {err.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CommandError(f"config: {args.config} is not JSON: {err}") from None
        if not isinstance(data, dict):
            raise CommandError(f"config: {args.config} must hold a JSON object")
        overrides = {"timesteps": args.timesteps} if args.timesteps is not None else {}
        return JobConfig.from_dict({**data, **overrides, "activate": args.activate or bool(data.get("activate"))})
    if args.timesteps is None:
        raise CommandError("timesteps: give --timesteps N, or --config FILE")
    return JobConfig(
        timesteps=args.timesteps,
        env_id=args.env_id,
        policy=args.policy,
        preset=args.preset,
        n_envs=args.n_envs,
        seed=args.seed,
        learning_rate=args.learning_rate,
        eval_trainees=args.eval_trainees,
        eval_rollouts=args.eval_rollouts,
        activate=args.activate,
        device=args.device,
    )


def _train(args: argparse.Namespace, on_submit: Callable[[str], None] | None = None) -> int:
    """``train``; ``on_submit`` is told the job's id once it is submitted."""
    from tqdm import tqdm

    _check_env_id(args.env_id)
    config = _job_config(args)  # checked before the service folder is opened (a bad field creates nothing)
    settings = _settings(args)
    registry = settings.open_registry()
    jobs = settings.open_jobs(registry)
    job = jobs.submit(config)
    print(f"job {job.job_id} {job.state}; log: {jobs.job_dir(job.job_id) / 'job.log'}")
    if on_submit is not None:
        on_submit(job.job_id)
    if args.detach:
        return 0
    try:
        with tqdm(total=config.timesteps, unit="step", desc="training", disable=args.quiet) as bar:
            while job.state not in FINAL_STATES:
                job = _poll(jobs, job.job_id)
                bar.n = min(job.timesteps_done, config.timesteps)
                if job.last_mean_reward is not None:
                    bar.set_postfix(mean_reward=f"{job.last_mean_reward:.2f}", state=job.state)
                bar.refresh()
    except KeyboardInterrupt:
        print(f"\ninterrupted: cancelling job {job.job_id}", file=sys.stderr)
        jobs.cancel(job.job_id)
        return 130
    if job.state != SUCCEEDED:
        print(f"job {job.job_id} {job.state}: {job.error or 'no error recorded'}", file=sys.stderr)
        print(f"its log: {jobs.job_dir(job.job_id) / 'job.log'}", file=sys.stderr)
        return 1
    record = registry.get(job.model_version)  # type: ignore[arg-type]
    score = "n/a" if record.evaluation_score is None else f"{record.evaluation_score:.3f}"
    active = " (active)" if record.active else ""
    print(
        f"registered {record.version}{active}: normalized score {score} on {config.eval_trainees} trainees of "
        f"{config.env_id}"
    )
    return 0


def _poll(jobs: JobManager, job_id: str, interval_s: float = 0.5) -> Job:
    time.sleep(interval_s)
    jobs.refresh()
    return jobs.get(job_id)


# -- evaluate ------------------------------------------------------------------------------------------------


def _load_model(settings: ServiceSettings, model: str, device: str, env_id: str | None = None) -> Any:
    """A registry version (``v3``), ``active``, or a model file (an SB3 archive, converted: nothing unpickled).

    ``env_id`` is the env a model file acts in (``None``: a registry-format file's own, ``FitnessWeights-v0`` for an
    SB3 archive, which does not say); a registered version acts in its own.
    """
    registry = settings.open_registry()
    if model == "active" or (model.startswith("v") and model[1:].isdigit()):
        if model == "active":
            record = registry.active()
            if record is None:
                raise CommandError("model: no model version is active")
            model = record.version
        return registry.load(model, device=device)
    path = Path(model)
    if not path.is_file():
        raise CommandError(f"model: {model!r} is neither a registered version (v1, v2, ...), 'active', nor a file")
    from fitness_weights_api.model_format import (
        ModelFormatError,
        file_bytes,
        is_safetensors,
        load_policy,
        model_from_bytes,
        read_model,
    )

    try:
        data = file_bytes(path, settings.max_model_bytes)
        if env_id is None and is_safetensors(data):
            safe = read_model(data, settings.max_model_bytes)
        else:
            safe = model_from_bytes(data, max_bytes=settings.max_model_bytes, env_id=env_id or ENV_IDS[0])
        return load_policy(safe, device=device)
    except ModelFormatError as err:
        raise CommandError(f"model: {path} is refused: {err}") from None


def _evaluate(args: argparse.Namespace) -> int:
    from fitness_weights_api.weights import model_env_id
    from sb3_ext.evaluate import evaluate_model

    _check_env_id(args.env_id)
    model = _load_model(_settings(args), args.model, args.device, args.env_id)
    env_id = model_env_id(model, args.env_id)  # a registered version's own env; another one named is refused
    report = evaluate_model(model, n_trainees=args.trainees, seed=args.seed, env_id=env_id)
    print(report.to_markdown())
    if args.out is not None:
        report.write(args.out)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from fitness_weights_api.plots import CURVE_FILE, CURVE_KEY, plot_learning_curve, plot_weights, read_curve

    settings = _settings(args)
    target = str(args.target)
    if re.fullmatch(r"[0-9a-f]{32}", target):  # a job id
        jobs = settings.open_jobs(settings.open_registry())
        job = jobs.get(target)
        folder = jobs.job_dir(job.job_id)
        rows = jobs.metrics(job.job_id)
        points = [(r.step, float(value)) for r in rows if (value := r.metrics.get(CURVE_KEY)) is not None]
        files = [folder / name for name in ("model.zip", "checkpoint.zip") if (folder / name).is_file()]
        model_file = files[0] if files else None
        title = f"job {job.job_id[:8]} ({job.config.policy}, {job.config.env_id})"
    else:
        folder = Path(target)
        if not folder.is_dir():
            raise CommandError(f"run: {target} is neither a run folder nor a job id")
        points = read_curve(folder / CURVE_FILE)
        model_file = folder / "model.zip" if (folder / "model.zip").is_file() else None
        title = f"run {folder.name}"
    out = args.out or folder
    out.mkdir(parents=True, exist_ok=True)
    print(plot_learning_curve(points, out / "learning_curve.png", title))
    if model_file is None:
        raise CommandError("run: no model.zip or checkpoint.zip to draw the weights of")
    print(plot_weights(_load_model(settings, str(model_file), "cpu"), out / "weights.png"))
    return 0


# -- optimize and predict ------------------------------------------------------------------------------------


def _profile_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields: the ``--profile`` file's, then the flags'."""
    fields: dict[str, Any] = {"user_id": "cli"}
    if args.profile is not None:
        try:
            loaded = json.loads(Path(args.profile).read_text(encoding="utf-8"))
        except OSError as err:
            raise CommandError(f"profile: cannot read {args.profile}: {err.strerror}") from None
        except json.JSONDecodeError as err:
            raise CommandError(f"profile: {args.profile} is not JSON: {err}") from None
        if not isinstance(loaded, dict):
            raise CommandError(f"profile: {args.profile} must hold a JSON object")
        fields.update(loaded)
    flags = {
        "user_id": args.user_id,
        "age": args.age,
        "gender": args.gender,
        "fitness_level": args.fitness_level,
        "current_qualities": args.qualities,
        "target_subjects": args.target,
    }
    fields.update({name: value for name, value in flags.items() if value is not None})
    return fields


def _qualities(text: str) -> Any:
    """``0.5,0.6,...`` (catalog order) or ``endurance=0.5,power=0.6,...``."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        if all("=" in part for part in parts):
            return {name.strip(): float(value) for name, value in (part.split("=", 1) for part in parts)}
        return [float(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers, got {text!r}") from None


def _request(args: argparse.Namespace, kind: type[Any]) -> Any:
    fields = _profile_fields(args)
    fields["seed"] = args.seed
    if kind.__name__ == "OptimizeRequest":
        fields.update({"optimization_steps": args.steps, "deterministic": args.deterministic})
    from pydantic import ValidationError

    from fitness_weights_api.schemas import validation_details

    try:
        request = kind.model_validate(fields)
    except ValidationError as err:
        raise CommandError("; ".join(detail["msg"] for detail in validation_details(err.errors()))) from None
    return request, request.to_profile()  # a FieldError names the field (and quotes what was typed)


def _service(args: argparse.Namespace) -> Any:
    from fitness_weights_api.service import WeightService

    settings = _settings(args)
    # One answer per process: the torch policy, since exporting its graphs would cost more than they save.
    return WeightService(settings.open_registry(), device=settings.device, inference="torch")


def _optimize(args: argparse.Namespace) -> int:
    from fitness_weights_api.schemas import OptimizeRequest, OptimizeResponse

    _check_env_id(args.env_id)
    request, profile = _request(args, OptimizeRequest)
    served = _service(args).optimize(
        profile, request.optimization_steps, seed=request.seed, deterministic=request.deterministic, env_id=args.env_id
    )
    if args.json:
        print(OptimizeResponse.build(request.user_id, served.model_version, served.result).model_dump_json(indent=2))
        return 0
    result = served.result
    title = f"optimize: model {served.model_version}, {result.steps} steps on {result.env_id}"
    _print_tables(title, profile, result)
    metrics = ", ".join(f"{name} {value:.3f}" for name, value in (result.performance_metrics or {}).items())
    print(f"performance metrics: {metrics}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from fitness_weights_api.schemas import PredictRequest, PredictResponse

    _check_env_id(args.env_id)
    request, profile = _request(args, PredictRequest)
    served = _service(args).predict(profile, seed=request.seed, env_id=args.env_id)
    if args.json:
        print(PredictResponse.build(request.user_id, served.model_version, served.result).model_dump_json(indent=2))
        return 0
    result = served.result
    _print_tables(f"predict: model {served.model_version} on {result.env_id}", profile, result)
    print(f"prediction confidence: {result.confidence:.3f}")
    return 0


def _print_tables(title: str, profile: Any, result: Any) -> None:
    """The top qualities of each target subject (CQ rows) and the top exercises of those qualities (QX rows)."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from fitness_weights_env import CATALOG

    console = Console()
    subjects = Table(title=title, title_justify="left")
    subjects.add_column("target subject")
    subjects.add_column("achievement", justify="right")
    subjects.add_column(f"top {TOP_QUALITIES} qualities (CQ weight)")
    used: list[int] = []
    for index in profile.targets:
        subject = CATALOG.subjects[index]
        order = np.argsort(-result.cq[index], kind="stable")[:TOP_QUALITIES]
        used += [int(q) for q in order if int(q) not in used]
        top = ", ".join(f"{CATALOG.qualities[q].name_en} {result.cq[index, q]:.3f}" for q in order)
        subjects.add_row(f"{subject.name_en} ({subject.name_zh})", f"{result.target_scores[subject.name_en]:.3f}", top)
    console.print(subjects)
    exercises = Table(title="exercises for those qualities", title_justify="left")
    exercises.add_column("quality")
    exercises.add_column(f"top {TOP_EXERCISES} exercises (QX weight)")
    for q in used:
        row = result.qx[q]
        order = np.argsort(-row, kind="stable")[:TOP_EXERCISES]
        top = ", ".join(f"{CATALOG.exercises[x].name_en} {row[x]:.3f}" for x in order)
        if np.ptp(row) < 1e-6:
            top = f"all {CATALOG.n_exercises} exercises alike ({row[0]:.3f} each)"
        exercises.add_row(f"{CATALOG.qualities[q].name_en} ({CATALOG.qualities[q].name_zh})", top)
    console.print(exercises)


# -- models --------------------------------------------------------------------------------------------------


def _models(args: argparse.Namespace) -> int:
    registry = _settings(args).open_registry()
    if args.action == "activate":
        record = registry.activate(args.version)
        print(f"active: {record.version}")
        return 0
    if args.action == "register":
        _check_env_id(args.env_id)
        print(f"converting and checking {args.file} (a dry run in a child process) ...", file=sys.stderr)
        record = registry.register(args.file, training_config={}, activate=args.activate, env_id=args.env_id)
        policy = record.metadata.get("policy")
        print(f"registered {record.version}{' (active)' if record.active else ''}: {policy} on {args.env_id}")
        return 0
    versions = registry.versions()
    if args.json:
        _print_json([vars(v) for v in versions])
        return 0
    if not versions:
        print(f"no models registered in {registry.root}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"models in {registry.root}", title_justify="left")
    for column in ("version", "active", "created", "score", "policy", "env", "timesteps", "job", "format"):
        table.add_column(column)
    for v in versions:
        score = "" if v.evaluation_score is None else f"{v.evaluation_score:.3f}"
        meta = v.metadata
        table.add_row(
            v.version,
            "*" if v.active else "",
            v.created[:19],
            score,
            str(meta.get("policy", "")),
            str(meta.get("env_id", "")),
            str(meta.get("timesteps", "")),
            str(meta.get("job_id", ""))[:8],
            v.format if v.format == FORMAT else f"{v.format} (never loaded: register again)",
        )
    Console().print(table)
    return 0


# -- tokens --------------------------------------------------------------------------------------------------


def _tokens(args: argparse.Namespace) -> int:
    tokens = _settings(args).open_tokens()
    if args.action == "create":
        record, token = tokens.create(args.role, args.name)
        print(
            f"created token {record.token_id} (role {record.role}); it is shown once, below: keep it secret",
            file=sys.stderr,
        )
        print(
            "send it as 'Authorization: Bearer <token>'; revoke it with 'fitness-weights tokens revoke "
            f"{record.token_id}'",
            file=sys.stderr,
        )
        print(token)  # alone on the last line of standard output, for scripts
        return 0
    if args.action == "revoke":
        record = tokens.revoke(args.token_id)
        print(
            f"revoked {record.token_id} ({record.role}{', ' + record.name if record.name else ''}) at {record.revoked}"
        )
        return 0
    records = tokens.list()
    if args.json:
        _print_json([vars(record) for record in records])
        return 0
    if not records:
        print("no tokens: create one with 'fitness-weights tokens create --role admin'")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="API tokens (the store keeps their hashes only)", title_justify="left")
    for column in ("id", "role", "name", "created", "revoked"):
        table.add_column(column)
    for record in records:
        table.add_row(record.token_id, record.role, record.name, record.created, record.revoked or "")
    Console().print(table)
    return 0


# -- serve ---------------------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - the api extra is not installed
        raise CommandError("serve needs the API packages: pip install 'fitness-weights[api]'") from None
    from fitness_weights_api.metrics import MULTIPROC_ENV
    from fitness_weights_api.supervision import SUPERVISOR_PID_ENV, MetricsFolder, remove_stale_metrics_folders

    settings = _settings(args)
    os.environ.update(settings.to_env())  # every worker reads the same settings
    os.environ[SUPERVISOR_PID_ENV] = str(os.getpid())  # each worker exits when this process ends, however it ends
    settings.open_jobs(settings.open_registry())  # create the folder and databases once, before the workers race
    own_metrics = args.workers > 1 and not os.environ.get(MULTIPROC_ENV)
    if not own_metrics:
        remove_stale_metrics_folders(settings.home)  # those of killed servers (MetricsFolder removes them too)
    app = "fitness_weights_api.app:create_app"
    # HOME/metrics/serve-<hex>/, locked while this process lives: removed at exit, or by the next serve if killed
    with MetricsFolder(settings.home) if own_metrics else contextlib.nullcontext() as metrics_dir:
        if metrics_dir is not None:
            os.environ[MULTIPROC_ENV] = str(metrics_dir)  # /metrics sums every worker's figures
        if args.workers == 1:
            uvicorn.run(app, factory=True, host=args.host, port=args.port, log_level=args.log_level)
        else:
            from uvicorn.supervisors import Multiprocess

            config = uvicorn.Config(
                app, factory=True, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level
            )
            sockets = [_tcp_socket(args.host, args.port)]
            logging.getLogger("uvicorn.error").info("serving on http://%s:%d", args.host, sockets[0].getsockname()[1])
            # From this (the main) thread: it spawns and respawns every worker, and PR_SET_PDEATHSIG (see
            # fitness_weights_api.supervision) fires when the thread that spawned a worker ends.
            Multiprocess(config, sockets=sockets).run()
    return 0


def _tcp_socket(host: str, port: int) -> socket.socket:
    """The listening socket the workers share, made with ``proto=IPPROTO_TCP``.

    uvicorn's own (0.54) has ``proto=0``; the connections its workers accept inherit it, and asyncio then
    leaves Nagle's algorithm on (it sets ``TCP_NODELAY`` only when ``proto`` is TCP), which delays every
    response by the client's delayed ACK, about 40 ms (uvicorn issue 3149).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise CommandError(f"--host/--port: cannot listen on {host}:{port}: {err.strerror}") from None
    sock.set_inheritable(True)
    return sock


# -- parser --------------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _env_ids_help() -> str:
    return " or ".join(ENV_IDS)


_EXPECTED_ENV_HELP = (
    "the environment the active model must act in (it runs in its own; another is refused); default: any"
)


def _add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trainee (a JSON file with the API's fields, and/or flags that override it)")
    group.add_argument("--profile", metavar="FILE", help="JSON object with the API's trainee fields")
    group.add_argument("--user-id", help="the trainee's id (default: cli)")
    group.add_argument("--age", type=int, help="age in whole years, 16 to 65")
    group.add_argument("--gender", help="male or female")
    group.add_argument("--fitness-level", type=float, help="overall fitness in [0, 1]")
    group.add_argument(
        "--qualities", type=_qualities, help="5 levels in [0, 1]: 0.5,0.6,... in catalog order, or name=value,..."
    )
    group.add_argument(
        "--target", action="append", metavar="SUBJECT", help="a target subject, English or Chinese name (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer instead of tables")


def build_parser() -> argparse.ArgumentParser:
    """The command line parser (every subcommand has ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="fitness-weights",
        description="Optimize and predict personalized physical-training weights (CQ and QX), train and serve "
        "the models.",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="the service folder: model registry and training jobs (default: $FITNESS_WEIGHTS_HOME or "
        "./fitness_weights_home)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    train = commands.add_parser(
        "train",
        help="train a model in a training job and register it",
        description="Start a training job (PPO on --env-id's environment, the schedule of examples/train_ppo.py), "
        "follow it with a progress bar, and register its model with that env id when it succeeds (optimize and "
        "predict then run it in that env). Ctrl-C cancels the job.",
    )
    train.add_argument("--timesteps", type=_positive, default=None, help="environment steps to train for")
    train.add_argument(
        "--config",
        type=Path,
        default=None,
        help="a training config (JSON, such as a study's best_config.json) instead of the flags below",
    )
    train.add_argument("--env-id", default=ENV_IDS[0], help=f"the environment to train in: {_env_ids_help()}")
    train.add_argument("--policy", default="AttnCQQXPolicy", choices=POLICIES, help="the policy")
    train.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="throughput preset")
    train.add_argument("--n-envs", type=_positive, default=None, help="parallel environments (default: preset's)")
    train.add_argument("--seed", type=int, default=0, help="seed of the envs, the policy and the evaluation")
    train.add_argument(
        "--learning-rate", type=float, default=JobConfig.learning_rate, help="initial learning rate (cosine to 1/10)"
    )
    train.add_argument(
        "--eval-trainees", type=int, default=JobConfig.eval_trainees, help="held-out trainees of the final evaluation"
    )
    train.add_argument(
        "--eval-rollouts",
        type=int,
        default=JobConfig.eval_rollouts,
        help="rollouts between two evaluations during training (0: none)",
    )
    train.add_argument("--activate", action="store_true", help="make the model the active one")
    train.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    train.add_argument("--detach", action="store_true", help="print the job id and return (the job runs on)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a model on held-out trainees",
        description="Run the policy (sampled with seeds, and deterministic), the greedy oracle and random on K "
        "held-out trainees; print the normalized score and the prediction table (python -m sb3_ext.evaluate).",
    )
    evaluate.add_argument("model", help="a registered version (v1, v2, ...), 'active', or a model file")
    evaluate.add_argument("--trainees", type=_positive, default=200, help="held-out trainees (default 200)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the held-out set")
    evaluate.add_argument("--out", type=Path, default=None, help="folder for evaluation.json and evaluation.md")
    evaluate.add_argument("--device", default="cpu", help="torch device (default cpu)")
    evaluate.add_argument(
        "--env-id",
        default=None,
        help=f"the environment the model acts in, {_env_ids_help()} (default: a registered version's or a "
        f"registry-format file's own; {ENV_IDS[0]} for an SB3 archive, which does not say)",
    )
    evaluate.set_defaults(run=_evaluate)

    optimize = commands.add_parser(
        "optimize",
        help="run the active policy on a trainee",
        description="Run the active model's policy on the trainee and print the top qualities of each target "
        "subject and the top exercises of those qualities.",
    )
    _add_profile_arguments(optimize)
    optimize.add_argument("--steps", type=int, default=64, help="optimization steps, 1 to 1024 (default 64)")
    optimize.add_argument("--seed", type=int, default=0, help="seed of the initial matrices and the sampled actions")
    optimize.add_argument(
        "--deterministic", action="store_true", help="the most likely actions instead of actions sampled with the seed"
    )
    optimize.add_argument("--env-id", default=None, help=_EXPECTED_ENV_HELP)
    optimize.set_defaults(run=_optimize)

    predict = commands.add_parser(
        "predict",
        help="predict a trainee's weights in one forward pass",
        description="Predict the optimized matrices with the active model's prediction heads, with a confidence, "
        "and print the top qualities of each target subject and the top exercises of those qualities.",
    )
    _add_profile_arguments(predict)
    predict.add_argument("--seed", type=int, default=0, help="seed of the initial matrices (the starting state)")
    predict.add_argument("--env-id", default=None, help=_EXPECTED_ENV_HELP)
    predict.set_defaults(run=_predict)

    models = commands.add_parser(
        "models", help="list, activate or register models", description="The model registry of the service folder."
    )
    actions = models.add_subparsers(dest="action", required=True, metavar="action")
    listing = actions.add_parser("list", help="list the registered versions", description="List the versions.")
    listing.add_argument("--json", action="store_true", help="print JSON")
    activate = actions.add_parser(
        "activate", help="make a version the active one", description="Activate a version for every worker."
    )
    activate.add_argument("version", help="v1, v2, ...")
    register = actions.add_parser(
        "register", help="register a model file", description="Copy a model saved by sb3_ext.PPO into the registry."
    )
    register.add_argument("file", type=Path, help="the model file (.zip)")
    register.add_argument("--activate", action="store_true", help="make it the active version")
    register.add_argument(
        "--env-id",
        default=ENV_IDS[0],
        help=f"the environment it acts in and is served in: {_env_ids_help()} (default {ENV_IDS[0]}); a model file "
        "in the registry's format that says another is refused",
    )
    models.set_defaults(run=_models)

    from fitness_weights_api.tokens import ROLES

    tokens = commands.add_parser(
        "tokens",
        help="create, list or revoke the HTTP API's bearer tokens",
        description="Bearer tokens of the HTTP API, hashed at rest in the service folder. Roles: read (job and "
        "model listings, metrics, and optimize/predict when FITNESS_WEIGHTS_REQUIRE_TOKEN=1), admin (also "
        "training, cancelling and activating).",
    )
    token_actions = tokens.add_subparsers(dest="action", required=True, metavar="action")
    create = token_actions.add_parser(
        "create", help="make a token", description="Make a token; it is printed once, alone on the last line."
    )
    create.add_argument("--role", required=True, choices=ROLES, help="what it allows")
    create.add_argument("--name", default="", help="what it is for (shown in listings)")
    token_list = token_actions.add_parser("list", help="list the tokens", description="List the tokens.")
    token_list.add_argument("--json", action="store_true", help="print JSON")
    revoke = token_actions.add_parser("revoke", help="revoke a token", description="Revoke a token by its id.")
    revoke.add_argument("token_id", help="the token's id (see 'tokens list')")
    tokens.set_defaults(run=_tokens)

    plot = commands.add_parser(
        "plot",
        help="draw a run's or a job's learning curve and weights (PNG)",
        description="Write learning_curve.png (mean episode return against timesteps) and weights.png (a held-out "
        "trainee's optimized and predicted CQ and QX matrices) for a run folder (examples/train_ppo.py --out) or a "
        "job id, into that folder or --out.",
    )
    plot.add_argument("target", metavar="RUN_OR_JOB", help="a run folder or a job id")
    plot.add_argument("--out", type=Path, default=None, help="folder for the PNG files (default: the run's)")
    plot.set_defaults(run=_plot)

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API (uvicorn)",
        description="Serve the HTTP API with uvicorn; the OpenAPI docs are at /docs.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=_positive, default=1, help="worker processes (default 1)")
    serve.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    serve.set_defaults(run=_serve)

    from fitness_weights_api import offline_cli, tuning_cli

    offline_cli.add_commands(commands, ENV_IDS, _settings)
    tuning_cli.add_commands(commands, ENV_IDS, _settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (CommandError, FieldError, RegistryError) as err:  # bad input: a field, a version, a model file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except FitnessWeightsError as err:  # the service cannot do it: a failed job, no active model, ...
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
