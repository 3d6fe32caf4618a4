"""The model registry on real SQLite files under tmp_path, shared by real (spawned) processes.

The models are untrained policies (distinct seeds give distinct weights) in the registry's own format; converting
SB3 archives, the dry run and what the registry refuses are in test_model_format.py.
"""

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy

from fitness_weights_api import ModelRegistry, RegistryError, UnknownVersionError
from fitness_weights_api import registry as registry_module
from fitness_weights_api.model_format import SafeModel, env_spaces, make_manifest, read_model
from fitness_weights_api.registry import ModelRefusedError
from fitness_weights_env.errors import FieldError

SPAWN = multiprocessing.get_context("spawn")
JOIN_TIMEOUT_S = 60


def model_bytes(seed: int) -> bytes:
    """An untrained MlpPolicy in the registry's format; the same seed gives the same bytes in every process.

    (Orthogonal initialization gives other weights with another number of torch threads; PyTorch's default does not.)
    """
    th.manual_seed(seed)
    kwargs = {"ortho_init": False}
    policy = ActorCriticPolicy(*env_spaces("FitnessWeights-v0"), lambda _: 0.0, **kwargs)
    return SafeModel(make_manifest("MlpPolicy", kwargs), policy.state_dict()).to_bytes()


def weights_digest(data: bytes) -> str:
    """A hash of a model file's weights alone (the registry writes the training config into the manifest)."""
    tensors = read_model(data, 1 << 30).tensors
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + tensors[name].numpy().tobytes())
    return digest.hexdigest()


def write_model(path: Path, seed: int) -> Path:
    path.write_bytes(model_bytes(seed))
    return path


def sb3_like_zip(path: Path, entries: tuple[str, ...]) -> Path:
    """A zip with some of the entries SB3's save writes, holding nothing of a model."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in entries:
            archive.writestr(name, json.dumps({"x": 1}) if name == "data" else random.Random(0).randbytes(64))
    return path


def write_text(path: Path) -> Path:
    path.write_text("not a zip archive")
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_child(target, *args) -> multiprocessing.Process:
    process = SPAWN.Process(target=target, args=args)
    process.start()
    return process


def join(process: multiprocessing.Process) -> int | None:
    process.join(JOIN_TIMEOUT_S)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail("child process hung")
    return process.exitcode


def assert_consistent(registry: ModelRegistry) -> list[str]:
    """Every row's file exists with its hash and size; returns the names of files in models/ no row names."""
    versions = registry.versions()
    for record in versions:
        path = registry.path(record.version)
        assert path == registry.models_dir / f"{record.version}.safetensors"
        assert (sha256_of(path), path.stat().st_size) == (record.sha256, record.size_bytes)
    return sorted(set(os.listdir(registry.models_dir)) - {f"{v.version}.safetensors" for v in versions})


def snapshot(registry: ModelRegistry) -> tuple:
    return registry.versions(), sorted(os.listdir(registry.models_dir)), registry.active_token()


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def models(tmp_path) -> list[Path]:
    """Three distinct valid model files outside the registry."""
    (tmp_path / "src").mkdir()
    return [write_model(tmp_path / "src" / f"model{seed}.safetensors", seed) for seed in range(3)]


# -- child processes (top level so that spawn can import them) -------------------------------------------


def _serve_registry(root: str, conn) -> None:
    """Answer commands from the parent with this process's own registry: ('token',) or ('activate', version)."""
    registry = ModelRegistry(root)
    while (command := conn.recv()) is not None:
        if command[0] == "activate":
            registry.activate(command[1])
        conn.send(registry.active_token())


def _register_many(root: str, worker: int, count: int, start) -> None:
    start.wait(JOIN_TIMEOUT_S)
    registry = ModelRegistry(root)  # the workers also race to create the schema
    for i in range(count):
        source = write_model(Path(root).parent / f"source-{worker}-{i}.safetensors", seed=1000 * worker + i)
        registry.register(
            source, training_config={"worker": worker, "i": i}, evaluation_score=i / 10, activate=i % 3 == 0
        )


def _register_forever(root: str, source: str) -> None:
    registry = ModelRegistry(root)
    i = 0
    while True:
        registry.register(source, training_config={"i": i}, metadata={"job": "loop"})
        i += 1


def _die(*args, **kwargs) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _crash_while_registering(root: str, source: str, point: str) -> None:
    """Register, killing this process at ``point``: before the rename or between the rename and the commit."""
    if point == "before_rename":
        os.replace = _die  # the registry renames with os.replace while it holds the write lock
    else:
        assert callable(registry_module.fsync_dir)  # a patch of a name the registry does not call would not crash
        registry_module.fsync_dir = _die  # called after the rename, before the commit
    ModelRegistry(root).register(source, training_config={"crashed": True}, activate=True)


def _register_paused(root: str, source: str, paused, resume) -> None:
    """Register, pausing after the temporary copy is written (flocked) and before the transaction."""
    write = registry_module._write

    def pause(*args):
        written = write(*args)
        paused.set()
        resume.wait(JOIN_TIMEOUT_S)
        return written

    registry_module._write = pause
    ModelRegistry(root).register(source, training_config={"paused": True})


# -- registering, listing, reading -----------------------------------------------------------------------


def test_register_list_get_round_trip(registry, models):
    config = {"preset": "cpu", "learning_rate": 3e-4, "net": [64, 64], "nested": {"seed": 7, "ok": True}}
    first = registry.register(models[0], training_config=config, evaluation_score=0.75, metadata={"job": "j1"})
    second = registry.register(models[1], training_config={}, metadata=None)
    third = registry.register(models[2], training_config={"n": 3}, evaluation_score=-2)

    assert [v.version for v in (first, second, third)] == ["v1", "v2", "v3"]
    assert registry.versions() == [first, second, third]
    assert registry.get("v1") == first
    described = {"policy": "MlpPolicy", "env_id": "FitnessWeights-v0"}
    assert (first.training_config, first.evaluation_score, first.metadata) == (config, 0.75, {**described, "job": "j1"})
    assert (second.evaluation_score, second.metadata) == (None, described)
    assert third.evaluation_score == -2.0 and isinstance(third.evaluation_score, float)
    assert not any(v.active for v in registry.versions())
    assert first.created <= second.created <= third.created
    assert first.created.endswith("+00:00")
    for record, source in zip((first, second, third), models, strict=True):
        stored = registry.path(record.version).read_bytes()
        assert weights_digest(stored) == weights_digest(source.read_bytes())
        assert read_model(stored, 1 << 30).manifest["training_config"] == record.training_config
        assert record.format == "safetensors-1"
    assert assert_consistent(registry) == []
    assert sorted(os.listdir(registry.root)) == ["models", "registry.sqlite"]
    assert sorted(os.listdir(registry.models_dir)) == ["v1.safetensors", "v2.safetensors", "v3.safetensors"]


def test_records_are_copies_and_the_source_may_go(registry, models):
    record = registry.register(models[0], training_config={"a": [1]})
    record.training_config["a"].append(2)
    models[0].unlink()
    assert registry.get("v1").training_config == {"a": [1]}
    assert registry.path("v1").exists()


def test_a_reopened_registry_sees_everything(registry, models):
    registry.register(models[0], training_config={"k": 1}, activate=True)
    reopened = ModelRegistry(registry.root)
    assert reopened.versions() == registry.versions()
    assert reopened.active_token() == ("v1", 1)


def test_unknown_version_is_a_key_error_listing_known_ones(registry, models, tmp_path):
    with pytest.raises(UnknownVersionError, match="'v1'; the registry holds no versions"):
        registry.get("v1")
    for i in range(12):
        registry.register(models[i % 3], training_config={"i": i})
    with pytest.raises(KeyError) as raised:
        registry.get("v13")
    message = str(raised.value)
    assert message.startswith("unknown version 'v13'; 12 known versions, the latest: v3, v4,")
    assert message.endswith("v11, v12") and "v2," not in message
    with pytest.raises(UnknownVersionError, match="unknown version 'v99999999999999999999999'"):
        registry.path("v99999999999999999999999")  # beyond SQLite's integers: unknown, not an overflow


# -- activation -------------------------------------------------------------------------------------------


def test_activation_keeps_exactly_one_active_and_counts_changes(registry, models):
    for source in models:
        registry.register(source, training_config={})
    assert registry.active() is None
    assert registry.active_token() == (None, 0)

    tokens = []
    for version in ("v2", "v3", "v3", "v1"):
        record = registry.activate(version)
        assert record.active and record.version == version
        assert [v.version for v in registry.versions() if v.active] == [version]
        assert registry.active() == registry.get(version)
        tokens.append(registry.active_token())
    assert tokens == [("v2", 1), ("v3", 2), ("v3", 2), ("v1", 3)]  # activating the active version is a no-op

    with pytest.raises(UnknownVersionError, match="'v4'; known versions: v1, v2, v3"):
        registry.activate("v4")
    with pytest.raises(FieldError, match=r"^version: ") as raised:
        registry.activate("../v2")
    assert raised.value.field == "version"
    assert registry.active_token() == ("v1", 3)

    fourth = registry.register(models[0], training_config={}, activate=True)
    assert fourth.active and registry.active_token() == ("v4", 4)
    assert [v.version for v in registry.versions() if v.active] == ["v4"]


def test_the_schema_allows_one_active_row_and_only_registered_versions(registry, models):
    registry.register(models[0], training_config={}, activate=True)
    with contextlib.closing(sqlite3.connect(registry.database_path, isolation_level=None)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        assert conn.execute("PRAGMA user_version").fetchone()[0] == registry_module.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO active (id, number, generation) VALUES (2, 1, 0)")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("UPDATE active SET number = 99 WHERE id = 1")
    assert registry.active_token() == ("v1", 1)


def test_a_missing_model_file_is_reported_not_loaded_or_activated(registry, models):
    registry.register(models[0], training_config={})
    registry.register(models[1], training_config={}, activate=True)
    (registry.models_dir / "v1.safetensors").unlink()
    with pytest.raises(RegistryError, match=r"damaged.*v1\.safetensors.*missing"):
        registry.path("v1")
    with pytest.raises(RegistryError, match="damaged"):
        registry.activate("v1")
    assert registry.active_token() == ("v2", 1)
    (registry.models_dir / "v2.safetensors").write_bytes(b"truncated")
    with pytest.raises(RegistryError, match=r"v2\.safetensors.* has 9 bytes"):
        registry.path("v2")


def test_activation_is_seen_by_a_second_process_and_vice_versa(registry, models):
    for source in models[:2]:
        registry.register(source, training_config={})
    parent_end, child_end = SPAWN.Pipe()
    child = run_child(_serve_registry, str(registry.root), child_end)

    def ask(*command):
        parent_end.send(command)
        assert parent_end.poll(JOIN_TIMEOUT_S), "the second process did not answer"
        return parent_end.recv()

    try:
        assert ask("token") == (None, 0)
        registry.activate("v1")
        assert ask("token") == ("v1", 1)
        registry.activate("v2")
        assert ask("token") == ("v2", 2)
        assert ask("activate", "v1") == ("v1", 3)
        assert registry.active_token() == ("v1", 3)
        assert registry.active().version == "v1"
    finally:
        parent_end.send(None)
        assert join(child) == 0


# -- concurrency and crashes ------------------------------------------------------------------------------


def test_one_instance_is_shared_by_threads(registry, models):
    errors = []

    def work(thread: int) -> None:
        try:
            for i in range(3):
                registry.register(models[i], training_config={"thread": thread, "i": i}, activate=True)
        except Exception as err:  # reported below: an assert in a thread would not fail the test
            errors.append(err)

    threads = [threading.Thread(target=work, args=(thread,)) for thread in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert errors == []
    assert len({(v.training_config["thread"], v.training_config["i"]) for v in registry.versions()}) == 9
    assert registry.active_token()[1] == 9
    assert assert_consistent(registry) == []


def test_concurrent_registrations_from_several_processes_lose_nothing(tmp_path):
    root, workers, count = tmp_path / "registry", 2, 6  # the workers create the registry themselves
    start = SPAWN.Event()
    children = [run_child(_register_many, str(root), worker, count, start) for worker in range(workers)]
    start.set()
    assert [join(child) for child in children] == [0] * workers

    registry = ModelRegistry(root)
    versions = registry.versions()
    assert [v.version for v in versions] == [f"v{n}" for n in range(1, workers * count + 1)]
    registered = sorted((v.training_config["worker"], v.training_config["i"]) for v in versions)
    assert registered == [(worker, i) for worker in range(workers) for i in range(count)]
    for record in versions:
        seed = 1000 * record.training_config["worker"] + record.training_config["i"]
        assert weights_digest(registry.path(record.version).read_bytes()) == weights_digest(model_bytes(seed))
        assert record.evaluation_score == record.training_config["i"] / 10
    assert assert_consistent(registry) == []  # no temporary files left
    activations = workers * len(range(0, count, 3))
    active, generation = registry.active_token()
    assert generation == activations
    assert registry.get(active).training_config["i"] % 3 == 0
    assert [v.version for v in versions if v.active] == [active]


@pytest.mark.parametrize("point", ["before_rename", "before_commit"])
def test_a_process_killed_mid_registration_leaves_nothing_behind(registry, models, point):
    registry.register(models[0], training_config={}, activate=True)
    before = registry.versions(), registry.active_token()

    child = run_child(_crash_while_registering, str(registry.root), str(models[1]), point)
    assert join(child) == -signal.SIGKILL

    # The killed transaction is invisible; its one leftover file is named by no row.
    assert (registry.versions(), registry.active_token()) == before
    leftovers = assert_consistent(registry)
    if point == "before_rename":
        assert len(leftovers) == 1 and leftovers[0].startswith(".partial-")
    else:
        assert leftovers == ["v2.safetensors"]
        with pytest.raises(UnknownVersionError):
            registry.path("v2")

    # Opening the registry or registering removes it; the number is allocated again.
    if point == "before_commit":
        ModelRegistry(registry.root)
        assert assert_consistent(registry) == []
    record = registry.register(models[2], training_config={"after": point})
    assert record.version == "v2"
    assert weights_digest(registry.path("v2").read_bytes()) == weights_digest(models[2].read_bytes())
    assert assert_consistent(registry) == []


def test_a_registration_in_progress_in_another_process_is_not_swept(registry, models):
    paused, resume = SPAWN.Event(), SPAWN.Event()
    child = run_child(_register_paused, str(registry.root), str(models[0]), paused, resume)
    try:
        assert paused.wait(JOIN_TIMEOUT_S)
        (temp,) = os.listdir(registry.models_dir)
        registry.register(models[1], training_config={})  # sweeps, but the child holds its temp file's lock
        ModelRegistry(registry.root)
        assert sorted(os.listdir(registry.models_dir)) == sorted([temp, "v1.safetensors"])
    finally:
        resume.set()
        assert join(child) == 0
    assert [v.training_config for v in registry.versions()] == [{}, {"paused": True}]
    assert weights_digest(registry.path("v2").read_bytes()) == weights_digest(models[0].read_bytes())
    assert assert_consistent(registry) == []


@pytest.mark.slow  # the two deterministic kill points above run by default
def test_a_process_killed_at_a_random_moment_leaves_a_consistent_registry(registry, tmp_path):
    source = write_model(tmp_path / "model.safetensors", seed=5)
    child = run_child(_register_forever, str(registry.root), str(source))
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while len(registry.versions()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.013)
    child.kill()
    assert join(child) == -signal.SIGKILL

    versions = registry.versions()
    assert len(versions) >= 3
    assert [v.version for v in versions] == [f"v{n}" for n in range(1, len(versions) + 1)]
    leftovers = assert_consistent(registry)  # no row without its whole file
    assert leftovers in ([], [f"v{len(versions) + 1}.safetensors"]) or (
        len(leftovers) == 1 and leftovers[0].startswith(".partial-")
    )
    registry.register(source, training_config={"i": "after"})
    assert assert_consistent(registry) == []


# -- bad input --------------------------------------------------------------------------------------------


class Unserializable:
    pass


@pytest.mark.parametrize(
    ("make_source", "kwargs", "error", "field", "message"),
    [
        (lambda d: d / "missing.zip", {}, FieldError, "model_file", r"^model_file: does not exist \(got '.*"),
        (lambda d: d, {}, FieldError, "model_file", "^model_file: is not a regular file"),
        (
            lambda d: write_text(d / "notes.txt"),
            {},
            ModelRefusedError,
            "model_file",
            "model_file .*notes.txt.*not a readable zip",
        ),
        (
            lambda d: sb3_like_zip(d / "empty.zip", ()),
            {},
            ModelRefusedError,
            "model_file",
            "model_file .*not a Stable-Baselines3 model",
        ),
        (
            lambda d: sb3_like_zip(d / "nopth.zip", ("data",)),
            {},
            ModelRefusedError,
            "model_file",
            r"model_file .*lacks the entries \['policy.pth'\]",
        ),
        (
            lambda d: sb3_like_zip(d / "nodata.zip", ("policy.pth",)),
            {},
            ModelRefusedError,
            "model_file",
            r"model_file .*lacks the entries \['data'\]",
        ),
        (
            lambda d: sb3_like_zip(d / "junk.zip", ("data", "policy.pth")),
            {},
            ModelRefusedError,
            "policy.pth",
            "model_file .*policy.pth: refused by",
        ),
        (
            lambda d: d / "model0.safetensors",
            {"training_config": [1]},
            FieldError,
            "training_config",
            "^training_config: must be a dict",
        ),
        (
            lambda d: d / "model0.safetensors",
            {"training_config": {"x": Unserializable()}},
            FieldError,
            "training_config",
            "^training_config: is not JSON",
        ),
        (
            lambda d: d / "model0.safetensors",
            {"training_config": {"lr": math.nan}},
            FieldError,
            "training_config",
            "^training_config: is not JSON",
        ),
        (
            lambda d: d / "model0.safetensors",
            {"metadata": {"when": {1, 2}}},
            FieldError,
            "metadata",
            "^metadata: is not JSON",
        ),
        (
            lambda d: d / "model0.safetensors",
            {"metadata": "job-1"},
            FieldError,
            "metadata",
            "^metadata: must be a dict",
        ),
        *(
            (
                lambda d: d / "model0.safetensors",
                {"evaluation_score": bad},
                FieldError,
                "evaluation_score",
                "^evaluation_score: ",
            )
            for bad in (math.nan, -math.inf, "0.5", True)
        ),
        (lambda d: d / "model0.safetensors", {"activate": "yes"}, FieldError, "activate", "^activate: "),
    ],
)
def test_bad_registrations_name_the_field_and_leave_nothing(
    registry, models, make_source, kwargs, error, field, message
):
    registry.register(models[1], training_config={}, activate=True)
    before = snapshot(registry)
    source = make_source(models[0].parent)
    with pytest.raises(error, match=message) as raised:
        registry.register(source, **{"training_config": {}, **kwargs})
    assert raised.value.field == field
    assert snapshot(registry) == before
    assert registry.register(models[2], training_config={}).version == "v2"  # no number was used up


def test_a_damaged_zip_is_refused(registry, tiny_models, tmp_path):
    data = bytearray(tiny_models["mlp"].read_bytes())
    with zipfile.ZipFile(tiny_models["mlp"]) as archive:
        info = archive.getinfo("policy.pth")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2] ^= 0xFF
    (tmp_path / "damaged.zip").write_bytes(bytes(data))
    (tmp_path / "truncated.zip").write_bytes(bytes(data[: len(data) // 2]))
    for name in ("damaged.zip", "truncated.zip"):
        with pytest.raises(ModelRefusedError, match=f"model_file .*{name}"):
            registry.register(tmp_path / name, training_config={})
    assert registry.versions() == [] and os.listdir(registry.models_dir) == []


@pytest.mark.parametrize("version", ["../x", "v0", "1", "", "v01", "V1", "v1/../v2", "v1\n", " v1", "v-1", None, 1])
@pytest.mark.parametrize("method", ["get", "activate", "path"])
def test_malformed_version_ids_are_refused(registry, models, method, version):
    registry.register(models[0], training_config={}, activate=True)
    with pytest.raises(FieldError, match=r"^version: must be a version id") as raised:
        getattr(registry, method)(version)
    assert raised.value.field == "version" and raised.value.reason.startswith("must be a version id")
    assert not isinstance(raised.value, (UnknownVersionError, RegistryError))
    assert registry.active_token() == ("v1", 1)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user@host/db",
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///registry.sqlite?mode=ro",
        "mysql:///registry",
        "",
        42,
    ],
)
def test_unsupported_database_urls_are_refused(tmp_path, url):
    with pytest.raises(FieldError, match=r"^database_url: ") as raised:
        ModelRegistry(tmp_path / "registry", database_url=url)
    assert raised.value.field == "database_url"
    assert not (tmp_path / "registry").exists()  # refused before anything is created


def test_a_database_that_is_not_a_registry_is_refused(tmp_path):
    with contextlib.closing(sqlite3.connect(tmp_path / "app.sqlite", isolation_level=None)) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(RegistryError, match=r"not a model registry.*\['users'\]"):
        ModelRegistry(tmp_path / "registry", database_url=f"sqlite:///{tmp_path / 'app.sqlite'}")
    with contextlib.closing(sqlite3.connect(tmp_path / "app.sqlite")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # left as it was


def test_a_newer_schema_is_refused(registry):
    with contextlib.closing(sqlite3.connect(registry.database_path, isolation_level=None)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RegistryError, match="schema version 99 is newer"):
        ModelRegistry(registry.root)


# -- database location ------------------------------------------------------------------------------------


def test_a_custom_database_url(tmp_path, models, monkeypatch):
    url = f"sqlite:///{tmp_path / 'db' / 'other.sqlite'}"
    assert url.startswith("sqlite:////")  # an absolute path: four slashes
    registry = ModelRegistry(tmp_path / "registry", database_url=url)
    registry.register(models[0], training_config={"where": "other"}, activate=True)
    assert registry.database_path == tmp_path / "db" / "other.sqlite"
    assert (tmp_path / "db" / "other.sqlite").exists()
    assert not (tmp_path / "registry" / "registry.sqlite").exists()
    assert ModelRegistry(tmp_path / "registry", database_url=url).active_token() == ("v1", 1)
    assert ModelRegistry(tmp_path / "registry").versions() == []  # the default database is another one

    monkeypatch.chdir(tmp_path)
    relative = ModelRegistry("relative-root", database_url="sqlite:///relative.sqlite")
    relative.register(models[1], training_config={})
    assert relative.database_path == tmp_path / "relative.sqlite" and relative.database_path.exists()
    assert relative.root == tmp_path / "relative-root"
    assert [v.version for v in relative.versions()] == ["v1"]
