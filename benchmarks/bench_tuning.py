"""How fast a study runs: trials per hour with 1 and 2 worker processes, in a journal file and in PostgreSQL, and
what the storage costs a trial. Two Markdown tables.

1. **Storage overhead.** A trial that samples the whole search space and trains nothing
   (:func:`sb3_ext.tuning.sample_config` on the default space, the config stored as the trial's attribute, value 0),
   ``--overhead-trials`` of them per storage in alternating blocks of 20: milliseconds per trial, median of the
   blocks.
2. **Trials per hour.** ``fitness-weights tune --workers W --trials --trials`` of real tiny trials (``--timesteps``
   steps of 8 envs, 4 validation trainees) for each worker count and storage, ``--rounds`` rounds of every row in
   turn: the median wall time and trials per hour.

PostgreSQL is Debian's, started on loopback from a temporary data directory (as the ``postgres`` user when run as
root); without it the PostgreSQL rows are left out::

    python benchmarks/bench_tuning.py
    python benchmarks/bench_tuning.py --trials 12 --timesteps 4096
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_api import free_port


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    matches = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return matches[-1] if matches else None


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    """A PostgreSQL server on loopback for the run, its URL (``None`` when none is installed)."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    folder.chmod(0o777)
    data, port = folder / "data", free_port()
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "tuner", "--auth=trust"], check=True, capture_output=True)
    options = f"-p {port} -h 127.0.0.1 -k {folder}"
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
    subprocess.run([*prefix, *start], check=True, capture_output=True)
    try:
        yield f"postgresql://tuner@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def overhead(storages: dict[str, object], trials: int) -> dict[str, list[float]]:
    """Milliseconds per no-training trial, per block of 20, for each storage (blocks alternate)."""
    import optuna

    from sb3_ext.config import TrainConfig
    from sb3_ext.tuning import SEARCH_SPACE, check_space, sample_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, base = check_space(SEARCH_SPACE), TrainConfig(timesteps=1024, n_envs=8)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("config", sample_config(trial, base, space).to_dict())
        return 0.0

    studies = {
        name: optuna.create_study(storage=storage, study_name="overhead", direction="maximize", load_if_exists=True)
        for name, storage in storages.items()
    }
    blocks: dict[str, list[float]] = {name: [] for name in storages}
    for _ in range(max(1, trials // 20)):
        for name, study in studies.items():
            start = time.perf_counter()
            study.optimize(objective, n_trials=20)
            blocks[name].append((time.perf_counter() - start) / 20 * 1000)
    return blocks


def trials_per_hour(home: Path, storage: str | None, workers: int, args: argparse.Namespace, study: str) -> float:
    """Wall seconds of ``tune --workers`` running ``args.trials`` tiny trials."""
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(home), "tune", "--study", study]
    command += ["--workers", str(workers), "--trials", str(args.trials), "--timesteps", str(args.timesteps)]
    command += ["--n-envs", "8", "--eval-trainees", "4", "--eval-rollouts", "2", "--quiet"]
    if storage is not None:
        command += ["--storage", storage]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead-trials", type=int, default=200, help="no-training trials per storage")
    parser.add_argument("--trials", type=int, default=8, help="tiny trials per tune run")
    parser.add_argument("--timesteps", type=int, default=2048, help="steps per tiny trial")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the trials-per-hour rows")
    args = parser.parse_args()
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}\n")
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as temporary, postgres() as url:
        home = Path(temporary)
        storages: dict[str, object] = {"journal file": JournalStorage(JournalFileBackend(str(home / "overhead.log")))}
        if url is not None:
            import optuna

            storages["PostgreSQL"] = optuna.storages.RDBStorage(url)
        blocks = overhead(storages, args.overhead_trials)
        print(f"1. Storage overhead per trial (no training; {args.overhead_trials} trials per storage)\n")
        print("| storage | ms per trial (median of blocks of 20) | min | max |")
        print("|---|---:|---:|---:|")
        for name, values in blocks.items():
            print(f"| {name} | {np.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |")
        rows = [(storage, workers) for workers in (1, 2) for storage in ([None] + ([url] if url else []))]
        print(f"\n2. Trials per hour: {args.trials} trials of {args.timesteps} steps per run\n")
        print("| storage | workers | seconds (median) | trials per hour |")
        print("|---|---:|---:|---:|")
        seconds: dict[int, list[float]] = {i: [] for i in range(len(rows))}
        for round_ in range(args.rounds):
            for i, (storage, workers) in enumerate(rows):
                seconds[i].append(trials_per_hour(home, storage, workers, args, f"rate-{round_}-{i}"))
        for i, (storage, workers) in enumerate(rows):
            name, median = "journal file" if storage is None else "PostgreSQL", float(np.median(seconds[i]))
            print(f"| {name} | {workers} | {median:.1f} | {args.trials / median * 3600:.0f} |")


if __name__ == "__main__":
    main()
