r"""``fitness-weights tune``: an Optuna study of PPO's hyperparameters, which processes and machines can share.

The search itself (space, objective, samplers, pruners) is :mod:`sb3_ext.tuning`.

::

    fitness-weights tune --study v0-search --trials 16 --timesteps 100000
    fitness-weights tune --study v0-search --trials 16 --storage postgresql://tuner:PASSWORD@db.internal/optuna
    fitness-weights train --config ~/.fitness-weights/studies/v0-search/best_config.json --activate

A study lives in the service home's ``studies/<study>/`` folder: Optuna's journal file ``journal.log`` (safe for
several processes of this machine, where SQLite is known to lock) unless ``--storage`` names a database, and
``best_config.json``, the best trial's training config, rewritten whenever a trial finishes better. The same
command run against the same storage and study name joins the study: on another machine, give it the PostgreSQL
URL (Optuna's RDB storage). Each trial's value is the normalized score on ``--eval-trainees`` validation trainees
(:data:`sb3_ext.tuning.VALIDATION_SEED`), reported every ``--eval-rollouts`` rollouts to ``--pruner``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["STUDY_FILE", "add_commands", "joining_seed", "open_storage", "redact_url"]

STUDY_FILE = "journal.log"
HEARTBEAT_S = 30
"""Seconds between two heartbeats of a running trial in a database (see :func:`open_storage`)."""
BEST_CONFIG_FILE = "best_config.json"
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def redact_url(url: str) -> str:
    """``url`` without its password (``postgresql://user:***@host/db``)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def joining_seed(seed: int, trials: int) -> int:
    """The sampler seed of a process that joins a study of ``trials`` trials with ``--seed seed``.

    Past the trials already there, so that it does not draw the same first configurations again, and apart for
    every pair: ``seed + trials`` would give worker 1 joining an empty study and worker 0 joining it one trial
    later the same sampler. Processes that start a study at once need distinct ``--seed`` values.
    """
    return int(np.random.SeedSequence([seed, trials]).generate_state(1)[0])


def open_storage(url: str | None, journal: Path, heartbeat_s: int = HEARTBEAT_S) -> Any:
    """Optuna storage: the journal file ``journal`` when ``url`` is ``None``, else the database at ``url``.

    In a database, a running trial beats every ``heartbeat_s`` seconds; one whose process died (no beat for twice
    that) is marked failed by the next process that starts a trial, and queued again once with the same
    parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``). Optuna's journal file has no heartbeat: there, a killed
    process's trial stays ``RUNNING`` and the study goes on without it.

    Raises:
        FieldError: ``storage``: a URL that is not a database URL, or a database that cannot be reached (the
            message names the URL without its password).
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from fitness_weights_env.errors import FieldError

    if url is None:
        journal.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # the journal file lock's "experimental" note
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalFileBackend(str(journal)))
    if not re.match(r"(postgresql|mysql|sqlite)(\+\w+)?://", url):
        raise FieldError("storage", f"must be a postgresql://, mysql:// or sqlite:// URL, not {redact_url(url)!r}")
    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna (since v2.8)
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs={"pool_pre_ping": True},
                    heartbeat_interval=heartbeat_s,
                    grace_period=2 * heartbeat_s,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
                )
        except ImportError as err:  # no driver for the URL's database
            raise FieldError("storage", f"cannot open {redact_url(url)}: {err}") from None
        except Exception as err:  # unreachable, refused; or another process creating the tables at the same time
            attempt += 1
            racing = any(sign in str(err) for sign in ("duplicate key", "already exists"))
            if attempt == 3 or not racing:
                reason = str(err).splitlines()[0][:200].replace(url, redact_url(url))
                raise FieldError("storage", f"cannot open {redact_url(url)}: {reason}") from None
            time.sleep(0.5 * attempt)


def add_commands(commands: Any, env_ids: tuple[str, ...], settings: Any) -> None:
    """Add ``tune`` to the ``fitness-weights`` subcommands (``settings(args)`` gives the service settings)."""
    from sb3_ext.config import POLICIES
    from sb3_ext.tuning import PRUNERS, SAMPLERS

    tune = commands.add_parser(
        "tune",
        help="search PPO's hyperparameters with Optuna (a study any process or machine can join)",
        description=__doc__.split("::")[0].strip().replace("\\\n", ""),
    )
    tune.add_argument(
        "action", nargs="?", choices=("dashboard",), help="dashboard: serve optuna-dashboard for the study, on loopback"
    )
    tune.add_argument("--port", type=int, default=8080, help="with dashboard: the port (default 8080)")
    tune.add_argument("--study", default="fitness-weights", help="study name (its folder under the home's studies/)")
    tune.add_argument("--trials", type=int, default=16, help="trials this command runs, over its workers (16)")
    tune.add_argument(
        "--workers",
        type=int,
        default=1,
        help="trial processes on this machine; with --pbt, member processes (default 1)",
    )
    tune.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    tune.add_argument("--timesteps", type=int, default=100_000, help="environment steps per trial")
    tune.add_argument("--env-id", default=env_ids[0], choices=env_ids, help="the environment")
    tune.add_argument("--policy", default="AttnCQQXPolicy", choices=POLICIES, help="the policy")
    tune.add_argument("--n-envs", type=int, default=None, help="parallel environments (default: the cpu preset's)")
    tune.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial's training")
    tune.add_argument("--sampler", default="tpe", help=f"one of {', '.join(SAMPLERS)}")
    tune.add_argument("--pruner", default="median", help=f"one of {', '.join(PRUNERS)}")
    tune.add_argument(
        "--pruner-warmup",
        type=int,
        default=None,
        help="timesteps of a trial before the pruner judges it (default: a third of --timesteps, as RL Zoo)",
    )
    tune.add_argument("--storage", default=None, help="a database URL (postgresql://...); default: a journal file")
    tune.add_argument("--space", type=Path, default=None, help="a search-space file (YAML or JSON)")
    tune.add_argument("--eval-trainees", type=int, default=20, help="validation trainees a trial is scored on")
    tune.add_argument("--eval-rollouts", type=int, default=2, help="rollouts between two reports to the pruner")
    tune.add_argument("--device", default="cpu", help="torch device of the trials")
    tune.add_argument(
        "--heartbeat",
        type=int,
        default=HEARTBEAT_S,
        help="seconds between a database trial's heartbeats; a silent one is failed and retried after twice that",
    )
    tune.add_argument("--register", action="store_true", help="then train the best config as a job and register it")
    tune.add_argument("--activate", action="store_true", help="with --register: make that model the active one")
    tune.add_argument("--quiet", action="store_true", help="no progress bar")
    tune.add_argument("--pbt", action="store_true", help="population-based training instead of a search")
    tune.add_argument("--population", type=int, default=4, help="with --pbt: members (default 4)")
    tune.add_argument("--interval", type=int, default=4, help="with --pbt: rollouts between two exploit steps (4)")
    tune.set_defaults(run=lambda args: _tune(args, settings(args)))


def _tune(args: argparse.Namespace, settings: Any) -> int:
    import optuna

    from fitness_weights_api.storage import write_atomically
    from fitness_weights_api.studies import JOBS_ATTR
    from fitness_weights_env.errors import FieldError
    from sb3_ext.config import TrainConfig
    from sb3_ext.tuning import best_config, load_search_space, make_pruner, make_sampler, objective

    # every argument is checked before anything is created
    if not _STUDY_NAME.fullmatch(args.study):
        raise FieldError("study", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if args.action == "dashboard":
        return _dashboard(args, settings)
    if args.heartbeat < 1:
        raise FieldError("heartbeat", "must be at least 1 second", args.heartbeat)
    if args.trials < 1:
        raise FieldError("trials", "must be at least 1", args.trials)
    if not 1 <= args.workers <= 64:
        raise FieldError("workers", "must be from 1 to 64", args.workers)
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise FieldError("timeout", "must be a positive number of seconds", args.timeout)
    base = TrainConfig(
        timesteps=args.timesteps, env_id=args.env_id, policy=args.policy, n_envs=args.n_envs, seed=args.seed,
        device=args.device, learning_rate_schedule="constant" if args.pbt else "cosine",
    )  # fmt: skip
    if args.pbt:
        return _pbt(args, settings, base)
    warmup = args.timesteps // 3 if args.pruner_warmup is None else args.pruner_warmup
    make_sampler(args.sampler), make_pruner(args.pruner, warmup_steps=warmup)  # the names and the warmup, checked
    space = load_search_space(args.space) if args.space is not None else None
    worker = f"{socket.gethostname()}:{os.getpid()}"
    run = objective(
        base, space, n_trainees=args.eval_trainees, eval_rollouts=args.eval_rollouts,
        progress=lambda trial, _: trial.set_user_attr("worker", worker),  # which process of which machine ran it
    )  # fmt: skip
    folder = settings.home / "studies" / args.study
    storage = open_storage(args.storage, folder / STUDY_FILE, args.heartbeat)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study, storage=storage) if _exists(storage, args.study) else None
    sampler_seed = args.seed if study is None else joining_seed(args.seed, len(study.trials))
    study = optuna.create_study(
        storage=storage, study_name=args.study, direction="maximize", sampler=make_sampler(args.sampler, sampler_seed),
        pruner=make_pruner(args.pruner, warmup_steps=warmup), load_if_exists=True,
    )  # fmt: skip
    best_file = folder / BEST_CONFIG_FILE

    def write_best(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.COMPLETE and study.best_trial.number == trial.number:
            text = json.dumps(best_config(study).to_dict(), indent=2) + "\n"
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(best_file, lambda temp: temp.write_text(text, encoding="utf-8"))

    if args.workers == 1:
        study.optimize(
            run, n_trials=args.trials, timeout=args.timeout, callbacks=[write_best], show_progress_bar=not args.quiet
        )
    else:
        _run_workers(args, settings, study)
    print(_table(study))
    if not best_file.is_file():
        return 0
    print(f"\nbest config: {best_file}")
    if not args.register:
        print(f"train it: fitness-weights train --config {best_file} --activate")
        return 0
    from fitness_weights_api.cli import _train, build_parser

    best = study.best_trial.number

    def link(job_id: str) -> None:  # the dashboard opens the trial's job from the study's trial list
        study.set_user_attr(JOBS_ATTR, {**study.user_attrs.get(JOBS_ATTR, {}), str(best): job_id})

    home = ["--home", str(settings.home)]
    train = build_parser().parse_args(
        [*home, "train", "--config", str(best_file), *(["--activate"] if args.activate else [])]
    )
    return _train(train, on_submit=link)


def _dashboard(args: argparse.Namespace, settings: Any) -> int:
    """``tune dashboard``: optuna-dashboard over the study's storage, bound to 127.0.0.1.

    From another machine, reach it over an SSH tunnel or a reverse proxy.
    """
    from fitness_weights_env.errors import FieldError

    if not 1 <= args.port <= 65535:
        raise FieldError("port", "must be from 1 to 65535", args.port)
    journal = settings.home / "studies" / args.study / STUDY_FILE
    if args.storage is None and not journal.is_file():
        raise FieldError("study", f"no study {args.study!r} in this home (run fitness-weights tune --study first)")
    storage = open_storage(args.storage, journal, args.heartbeat)
    if not _exists(storage, args.study):
        raise FieldError("study", f"no study {args.study!r} in {redact_url(args.storage or 'the journal file')}")
    try:
        from optuna_dashboard import run_server
    except ImportError:
        raise FieldError(
            "action", "the dashboard needs optuna-dashboard: pip install 'fitness-weights[tune]'"
        ) from None
    print(f"optuna-dashboard for {args.study}: http://127.0.0.1:{args.port}/dashboard/", flush=True)
    run_server(storage, host="127.0.0.1", port=args.port)
    return 0


def _pbt(args: argparse.Namespace, settings: Any, base: Any) -> int:
    """``tune --pbt``: population-based training of ``--population`` members.

    With ``--workers 1`` the members train in this process, one after the other for each interval; with more,
    they are spread over that many worker processes (:mod:`sb3_ext.pbt_processes`), which train at once. Each
    member is also a trial of the study (its initial values as parameters, its score at every interval as an
    intermediate value, its schedule as the ``schedule`` attribute), so that optuna-dashboard, ``GET /studies``
    and every machine sharing the storage see the population. The schedules go to ``pbt.json`` and
    ``pbt_schedules.png`` in the study's folder, the best member's last values to ``best_config.json``.
    """
    import numpy as np
    import optuna
    from tqdm import tqdm

    from fitness_weights_api.plots import plot_pbt
    from fitness_weights_api.storage import write_atomically
    from fitness_weights_env.errors import FieldError
    from sb3_ext.pbt import PBT_SPACE, Member, PBTResult, PPOMember, population_based_training, sample
    from sb3_ext.pbt_processes import MemberHost, ProcessMember

    if not 2 <= args.population <= 16:
        raise FieldError("population", "must be from 2 to 16 members", args.population)
    if args.interval < 1:
        raise FieldError("interval", "must be at least 1 rollout", args.interval)
    intervals = max(1, math.ceil(base.timesteps / (args.interval * base.rollout_size())))
    rng = np.random.default_rng(args.seed)
    initial = [sample(PBT_SPACE, rng) for _ in range(args.population)]
    folder = settings.home / "studies" / args.study
    storage = open_storage(args.storage, folder / STUDY_FILE, args.heartbeat)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=args.study, direction="maximize", load_if_exists=True)
    distributions: dict[str, optuna.distributions.BaseDistribution] = {
        name: optuna.distributions.FloatDistribution(low, high, log=True) for name, (low, high) in PBT_SPACE.items()
    }
    trials = []
    for i, values in enumerate(initial):
        study.enqueue_trial(values, user_attrs={"pbt_member": i, "worker": f"{socket.gethostname()}:{os.getpid()}"})
        trials.append(study.ask(distributions))
    n_hosts = min(args.workers, args.population)
    hosts = [MemberHost(max(1, (os.cpu_count() or 1) // n_hosts)) for _ in range(n_hosts)] if n_hosts > 1 else []
    rollout = args.interval * base.rollout_size()

    def record(index: int, result: PBTResult) -> None:
        for trial, history in zip(trials, result.history, strict=True):
            trial.report(history[-1]["score"], (index + 1) * rollout)
            trial.set_user_attr("schedule", history)
        bar.update(1)

    configs = [dataclasses.replace(base, seed=base.seed + i) for i in range(args.population)]  # a seed each
    try:
        members: list[Member] = [
            ProcessMember(hosts[i % n_hosts], config, values, args.eval_trainees)
            if hosts
            else PPOMember(config, values, args.eval_trainees)
            for i, (config, values) in enumerate(zip(configs, initial, strict=True))
        ]
        with tqdm(total=intervals, unit="interval", desc="population", disable=args.quiet) as bar:
            result = population_based_training(
                members, intervals, args.interval, PBT_SPACE, seed=args.seed, on_interval=record
            )
    except BaseException:
        for trial in trials:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    finally:
        for host in hosts:
            host.close()
    for trial, member, score in zip(trials, members, result.final_scores, strict=True):
        trial.set_user_attr("final_hyperparams", member.hyperparams)
        study.tell(trial, score)
    folder.mkdir(parents=True, exist_ok=True)
    report = {"config": base.to_dict(), "interval_rollouts": args.interval, **result.to_dict()}
    write_atomically(folder / "pbt.json", lambda temp: temp.write_text(json.dumps(report, indent=2), encoding="utf-8"))
    plot_pbt(result.history, list(PBT_SPACE), folder / "pbt_schedules.png")
    best = members[result.best].hyperparams
    ppo_kwargs = {**(base.ppo_kwargs or {}), "ent_coef": best["ent_coef"], "clip_range": best["clip_range"]}
    config = base.to_dict() | {"learning_rate": best["learning_rate"], "ppo_kwargs": ppo_kwargs}
    text = json.dumps(config, indent=2) + "\n"
    write_atomically(folder / BEST_CONFIG_FILE, lambda temp: temp.write_text(text, encoding="utf-8"))
    print("| member | trial | final normalized score | copies | " + " | ".join(f"final {n}" for n in PBT_SPACE) + " |")
    print("|---:|---:|---:|---:|" + "---:|" * len(PBT_SPACE))
    for i, (member, trial, records) in enumerate(zip(members, trials, result.history, strict=True)):
        copies = sum(record["copied_from"] is not None for record in records)
        finals = " | ".join(f"{member.hyperparams[name]:.3g}" for name in PBT_SPACE)
        print(f"| {i} | {trial.number} | {result.final_scores[i]:.3f} | {copies} | {finals} |")
    print(f"\nschedules: {folder / 'pbt_schedules.png'}; the best member's last values: {folder / BEST_CONFIG_FILE}")
    return 0


def _run_workers(args: argparse.Namespace, settings: Any, study: Any) -> None:
    """``args.workers`` processes of this command, each with one worker, its share of the trials and its own seed.

    The study exists already, so that they all join it; a worker that fails is reported, the others go on.
    """
    import subprocess
    import sys

    from tqdm import tqdm

    shares = [args.trials // args.workers + (i < args.trials % args.workers) for i in range(args.workers)]
    flags = {
        "--study": args.study, "--timesteps": args.timesteps, "--env-id": args.env_id, "--policy": args.policy,
        "--sampler": args.sampler, "--pruner": args.pruner, "--eval-trainees": args.eval_trainees,
        "--eval-rollouts": args.eval_rollouts, "--device": args.device, "--heartbeat": args.heartbeat,
        "--pruner-warmup": args.pruner_warmup,
        "--n-envs": args.n_envs, "--timeout": args.timeout, "--storage": args.storage, "--space": args.space,
    }  # fmt: skip
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(settings.home), "tune", "--quiet"]
    command += [str(part) for flag, value in flags.items() if value is not None for part in (flag, value)]
    before = len(study.trials)
    workers = [
        subprocess.Popen(
            [*command, "--trials", str(share), "--seed", str(args.seed + i)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i, share in enumerate(shares)
        if share
    ]
    with tqdm(total=args.trials, unit="trial", desc="trials", disable=args.quiet) as bar:
        while any(worker.poll() is None for worker in workers):
            bar.n = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)[before:])
            bar.refresh()
            time.sleep(1.0)
        bar.n = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False)[before:])
        bar.refresh()
    for worker in workers:
        error = worker.stderr.read().decode(errors="replace").strip() if worker.stderr else ""
        if worker.returncode != 0:
            print(f"a worker exited with {worker.returncode}: {error.splitlines()[-1] if error else ''}")


def _exists(storage: Any, name: str) -> bool:
    return any(summary.study_name == name for summary in storage.get_all_studies())


def _table(study: Any) -> str:
    """Every trial of the study as a Markdown table, best value first."""
    trials = sorted(study.trials, key=lambda t: (t.value is None, -(t.value or 0.0)))
    names = sorted({name for trial in trials for name in trial.params})
    lines = [
        "| trial | state | normalized score | " + " | ".join(names) + " |",
        "|---:|---|---:|" + "---:|" * len(names),
    ]
    for trial in trials:
        value = "" if trial.value is None else f"{trial.value:.3f}"
        params = [_format(trial.params.get(name)) for name in names]
        lines.append(f"| {trial.number} | {trial.state.name.lower()} | {value} | " + " | ".join(params) + " |")
    return "\n".join(lines)


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
