"""A study shared through a real PostgreSQL server (Debian's ``postgresql``), started on loopback for the module.

The server runs from a temporary data directory, as the ``postgres`` user when the tests run as root (PostgreSQL
refuses root). ``make test-tuning`` runs these tests; ``.ci/run`` installs PostgreSQL when it is missing.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
from conftest import free_port

from fitness_weights_api.tuning_cli import open_storage


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


INITDB, PG_CTL = _binary("initdb"), _binary("pg_ctl")
pytestmark = [
    pytest.mark.tuning,
    pytest.mark.skipif(INITDB is None or PG_CTL is None, reason="no PostgreSQL server (.ci/run installs postgresql)"),
    pytest.mark.skipif(
        os.geteuid() == 0 and shutil.which("runuser") is None, reason="as root, the server needs runuser"
    ),
]
TINY = ["--timesteps", "1024", "--n-envs", "8", "--eval-trainees", "2", "--eval-rollouts", "1"]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres_url():
    folder = Path(tempfile.mkdtemp(prefix="fw-postgres-"))
    folder.chmod(0o777)  # the server's user writes its data directory and socket here
    data, port = folder / "data", free_port()
    subprocess.run(
        _as_server_user([INITDB, "-D", str(data), "-U", "tuner", "--auth=trust", "-E", "UTF8"]),
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-p {port} -h 127.0.0.1 -k {folder}"
    start = [PG_CTL, "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start"]
    subprocess.run(_as_server_user(start), check=True, capture_output=True)
    try:
        yield f"postgresql://tuner@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_server_user([PG_CTL, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _tune(home: Path, url: str, study: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "fitness_weights_api.cli", "--home", str(home), "tune", "--study", study]
    return subprocess.Popen(
        [*command, "--storage", url, *extra],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_two_processes_share_a_study_in_postgresql_and_interleave(postgres_url, tmp_path):
    workers = [_tune(tmp_path, postgres_url, "shared", "--trials", "3", "--seed", str(seed), *TINY) for seed in (0, 1)]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    assert sorted(t.number for t in study.trials) == list(range(6))  # each trial recorded once, none lost
    assert all(t.state.is_finished() for t in study.trials)
    numbers: dict[str, list[int]] = {}
    for trial in study.trials:
        numbers.setdefault(trial.user_attrs["worker"], []).append(trial.number)
    first, second = numbers.values()
    assert len(first) == len(second) == 3
    assert min(first) < max(second) and min(second) < max(first)  # interleaved, not one after the other
    assert (tmp_path / "studies" / "shared" / "best_config.json").is_file()


def test_a_killed_worker_s_trial_is_failed_and_retried_by_the_next_one(postgres_url, tmp_path):
    long = ["--timesteps", "2000000", "--n-envs", "8", "--eval-trainees", "2", "--eval-rollouts", "1000"]
    worker = _tune(tmp_path, postgres_url, "killed", "--trials", "1", "--heartbeat", "1", *long)
    storage = open_storage(postgres_url, tmp_path / "unused", heartbeat_s=1)
    deadline = time.monotonic() + 120
    while True:
        studies = [s for s in storage.get_all_studies() if s.study_name == "killed"]
        trials = optuna.load_study(study_name="killed", storage=storage).trials if studies else []
        if trials and trials[0].state == optuna.trial.TrialState.RUNNING:
            break
        assert time.monotonic() < deadline and worker.poll() is None, "the trial never started"
        time.sleep(0.2)
    time.sleep(2)  # beating
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(3)  # past the grace period of two heartbeats
    rerun = _tune(tmp_path, postgres_url, "killed", "--trials", "1", "--heartbeat", "1", *TINY)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="killed", storage=postgres_url)
    killed, retried = study.trials
    assert killed.state == optuna.trial.TrialState.FAIL
    assert retried.state == optuna.trial.TrialState.COMPLETE and retried.params == killed.params
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(retried) == killed.number


def test_a_population_in_member_processes_is_a_set_of_trials_in_postgresql(postgres_url, tmp_path):
    flags = ["--pbt", "--population", "2", "--workers", "2", "--interval", "1", "--timesteps", "1024", "--n-envs", "8"]
    population = _tune(tmp_path, postgres_url, "population", *flags, "--eval-trainees", "2", "--quiet")
    _, err = population.communicate(timeout=300)
    assert population.returncode == 0, err.decode()[-2000:]
    trials = optuna.load_study(study_name="population", storage=postgres_url).trials
    assert [t.user_attrs["pbt_member"] for t in trials] == [0, 1]
    assert all(
        t.state == optuna.trial.TrialState.COMPLETE and sorted(t.intermediate_values) == [512, 1024] for t in trials
    )
    assert [t.value for t in trials] == [t.user_attrs["schedule"][-1]["score"] for t in trials]
    assert not (tmp_path / "studies" / "population" / "journal.log").exists()  # the database holds the study


def test_an_opener_that_loses_the_race_to_create_the_schema_retries_and_joins_it(postgres_url, tmp_path):
    import psycopg
    import sqlalchemy
    from optuna.storages._rdb import models

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("CREATE DATABASE raced")
    url = postgres_url.rsplit("/", 1)[0] + "/raced"
    rival = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    creating = rival.connect()
    schema = creating.begin()
    models.BaseModel.metadata.create_all(creating)  # another process's schema, not yet committed

    def commit_the_rival_first(connection, cursor, statement, *args) -> None:
        if statement.startswith("CREATE TYPE") and schema.is_active and connection.engine is not rival:
            schema.commit()  # after the opener found no types, before it creates its first one

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", commit_the_rival_first)
    try:
        storage = open_storage(url, tmp_path / "unused")  # its CREATE TYPE fails: "already exists"; it retries
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute", commit_the_rival_first)
        creating.close()
        rival.dispose()
    assert not schema.is_active  # the race took place
    optuna.create_study(study_name="after", storage=storage)
    assert [s.study_name for s in storage.get_all_studies()] == ["after"]
