"""The registry's safe model format: SB3 archives converted without unpickling, checked by a bounded dry run.

Every hostile or broken model here is refused at registration, or never loaded, and nothing it carries runs. The
files are real: tiny trained SB3 archives (conftest.py), edited the way an attacker or a bad export would.
"""

import base64
import contextlib
import json
import pickle
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import hostile_archive

from fitness_weights_api import ModelRegistry
from fitness_weights_api.model_format import (
    ModelFormatError,
    SafeModel,
    convert_sb3_archive,
    load_policy,
    make_manifest,
    read_model,
)
from fitness_weights_api.registry import ModelRefusedError, RegistryError
from fitness_weights_api.weights import optimize_weights, predict_weights
from fitness_weights_env import sample_profile
from fitness_weights_env.errors import FieldError
from sb3_ext import PPO


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def trainee():
    return sample_profile(np.random.default_rng(3))


def rewrite_archive(source: Path, target: Path, **entries: bytes | None) -> Path:
    """A copy of an SB3 archive with some entries replaced (``None`` drops one)."""
    with zipfile.ZipFile(source) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    for name, value in entries.items():
        name = name.replace("__", ".")
        if value is None:
            content.pop(name, None)
        else:
            content[name] = value
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, value in content.items():
            archive.writestr(name, value)
    return target


def archive_data(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))


# -- nothing runs ------------------------------------------------------------------------------------------


def test_the_payload_runs_when_sb3_loads_the_archive(tiny_models, tmp_path):
    """The control: the hostile archive does run its code in SB3's own load (so the tests below could fail)."""
    marker = tmp_path / "sb3-ran-it"
    archive = hostile_archive(tiny_models["attn0"], tmp_path / "hostile.zip", marker)
    code = f"from sb3_ext import PPO\ntry:\n    PPO.load({str(archive)!r})\nexcept Exception:\n    pass"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert marker.exists()


def test_a_pickle_payload_never_runs_through_register_load_optimize_and_predict(
    registry, tiny_models, tmp_path, trainee
):
    marker = tmp_path / "payload-ran"
    archive = hostile_archive(tiny_models["attn0"], tmp_path / "hostile.zip", marker)
    record = registry.register(archive, training_config={}, activate=True)
    served = registry.load(record.version)
    optimize_weights(served, trainee, 4)
    cq, _, _ = served.policy.predict_weights(trainee.to_vector())
    assert not marker.exists()
    # the pickles were ignored, not needed: the weights are the trained ones, bit for bit
    expected = PPO.load(tiny_models["attn0"], device="cpu").policy.predict_weights(trainee.to_vector())[0]
    np.testing.assert_array_equal(cq, expected)
    stored = registry.path(record.version).read_bytes()
    assert b"\x80\x04" not in stored[:64] and read_model(stored, 1 << 26).manifest["policy"] == "AttnCQQXPolicy"


def test_weights_holding_a_pickled_object_are_refused_and_never_run(registry, tiny_models, tmp_path):
    marker = tmp_path / "payload-ran"
    archive = hostile_archive(tiny_models["attn0"], tmp_path / "hostile.zip", marker, weights_payload=True)
    with pytest.raises(ModelRefusedError, match=r"policy\.pth: refused by torch\.load\(weights_only=True\)") as raised:
        registry.register(archive, training_config={})
    assert raised.value.field == "policy.pth" and not marker.exists()
    assert registry.versions() == []


def test_policy_kwargs_stored_only_as_a_pickle_are_refused_naming_the_field(registry, tiny_models, tmp_path):
    data = archive_data(tiny_models["attn0"])
    data["policy_kwargs"] = {":type:": "<class 'dict'>", ":serialized:": base64.b64encode(pickle.dumps({})).decode()}
    archive = rewrite_archive(tiny_models["attn0"], tmp_path / "pickled-kwargs.zip", data=json.dumps(data).encode())
    with pytest.raises(ModelRefusedError, match="policy_kwargs: is stored only as a pickle") as raised:
        registry.register(archive, training_config={})
    assert raised.value.field == "policy_kwargs" and registry.versions() == []


# -- broken models are refused at registration ------------------------------------------------------------


class TenFeatures(gym.Env):
    """An env with another observation (Box(10)) and the same 685 actions."""

    observation_space = gym.spaces.Box(0.0, 1.0, (10,), np.float32)
    action_space = gym.spaces.Discrete(685)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(10, np.float32), {}

    def step(self, action):
        return np.zeros(10, np.float32), 0.0, False, True, {}


@pytest.mark.parametrize("env", ["CartPole-v1", "Box10"])
def test_a_model_of_other_spaces_is_refused_naming_the_weights(registry, tmp_path, env):
    model = PPO("MlpPolicy", TenFeatures() if env == "Box10" else gym.make(env), n_steps=64, batch_size=64, seed=0)
    model.save(tmp_path / "other.zip")
    with pytest.raises(ModelRefusedError, match=r"weights: 'mlp_extractor\.policy_net\.0\.weight' has shape") as err:
        registry.register(tmp_path / "other.zip", training_config={})
    assert "FitnessWeights-v0 has [64, 198]" in str(err.value) and registry.versions() == []


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        ({"data": b"\x00garbage{"}, "data: is not valid JSON"),
        ({"data": b"[1, 2]"}, "data: must be a JSON object"),
        ({"data": json.dumps({"policy_class": {"__module__": "os"}}).encode()}, "policy_class: must be a policy"),
        ({"policy__pth": b"not a torch file"}, "policy.pth: refused"),
        ({"data": None}, r"lacks the entries \['data'\]"),
    ],
)
def test_broken_archives_are_refused_naming_the_field(registry, tiny_models, tmp_path, entries, field):
    archive = rewrite_archive(tiny_models["mlp"], tmp_path / "broken.zip", **entries)
    with pytest.raises(ModelRefusedError, match=field):
        registry.register(archive, training_config={})
    assert registry.versions() == [] and [p.name for p in registry.models_dir.iterdir()] == []


def test_nan_weights_fail_the_dry_run_check(registry, tiny_models, tmp_path):
    model = convert_sb3_archive(tiny_models["mlp"].read_bytes(), max_bytes=1 << 26)
    name = next(iter(model.tensors))
    model.tensors[name][0] = float("nan")
    (tmp_path / "nan.safetensors").write_bytes(model.to_bytes())
    with pytest.raises(ModelRefusedError, match=f"weights: '{name}' holds NaN"):
        registry.register(tmp_path / "nan.safetensors", training_config={})


def test_the_dry_run_is_bounded_in_memory_and_time(tmp_path, tiny_models):
    model = convert_sb3_archive(tiny_models["mlp"].read_bytes(), max_bytes=1 << 26)
    # The weights are the default architecture's, but the manifest asks for two layers of 200,000 units: building
    # that policy (160 GB) is what the dry run tries first; without the limit it would take the machine's memory.
    huge = SafeModel(make_manifest("MlpPolicy", {"net_arch": [200_000, 200_000]}), model.tensors)
    (tmp_path / "huge.safetensors").write_bytes(huge.to_bytes())
    registry = ModelRegistry(tmp_path / "registry", check_memory_mb=3072)
    with pytest.raises(ModelRefusedError, match="dry_run: needed more than its memory limit of 3072 MiB"):
        registry.register(tmp_path / "huge.safetensors", training_config={})
    assert registry.register(tiny_models["mlp"], training_config={}).version == "v1"  # a new check process works

    hurried = ModelRegistry(tmp_path / "registry", check_timeout_s=1e-4)
    with pytest.raises(ModelRefusedError, match=r"dry_run: took longer than 0\.0001 s"):
        hurried.register(tiny_models["mlp"], training_config={})
    assert [v.version for v in hurried.versions()] == ["v1"]


def test_a_data_entry_of_several_megabytes_is_taken(registry, tiny_models, tmp_path):
    # SB3 stores the last observations of every env in ``data``: a model trained with 1024 envs has megabytes of it
    data = archive_data(tiny_models["mlp"]) | {"_last_obs": {":type:": "x", ":serialized:": "A" * (3 << 20)}}
    archive = rewrite_archive(tiny_models["mlp"], tmp_path / "many-envs.zip", data=json.dumps(data).encode())
    assert registry.register(archive, training_config={}).version == "v1"


def test_an_archive_larger_than_the_cap_uncompressed_is_refused_unread(tmp_path, tiny_models):
    bomb = rewrite_archive(tiny_models["mlp"], tmp_path / "bomb.zip", padding=b" " * (80 << 20))
    assert bomb.stat().st_size < 1 << 20  # 80 MiB of spaces in a small zip
    registry = ModelRegistry(tmp_path / "registry", max_model_bytes=64 << 20)
    with pytest.raises(ModelRefusedError, match=f"holds more than {64 << 20} bytes uncompressed"):
        registry.register(bomb, training_config={})
    with pytest.raises(ModelFormatError, match="holds more than 1000 bytes"):  # one entry alone, its size unread
        convert_sb3_archive(tiny_models["mlp"].read_bytes(), max_bytes=1000)


# -- loading checks the hash; the legacy format is never loaded ------------------------------------------


def test_a_changed_model_file_is_refused_at_load_and_activation(registry, tiny_models):
    registry.register(tiny_models["attn0"], training_config={}, activate=True)
    registry.register(tiny_models["attn1"], training_config={})
    path = registry.path("v2")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # one bit of a weight: same size, another hash
    path.write_bytes(bytes(data))
    with pytest.raises(ModelRefusedError, match="sha256: the model file does not match") as raised:
        registry.load("v2")
    assert raised.value.field == "sha256"
    with pytest.raises(ModelRefusedError, match="sha256"):
        registry.activate("v2")
    assert registry.active().version == "v1"
    registry.load("v1")  # the other versions still load


def test_a_schema_1_registry_is_migrated_and_its_sb3_archives_are_never_loaded(tmp_path, tiny_models):
    root = tmp_path / "registry"
    (root / "models").mkdir(parents=True)
    (root / "models" / "v1.zip").write_bytes(tiny_models["attn0"].read_bytes())
    size = (root / "models" / "v1.zip").stat().st_size
    with contextlib.closing(sqlite3.connect(root / "registry.sqlite", isolation_level=None)) as conn:
        conn.executescript(
            """
            CREATE TABLE versions (number INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL,
                training_config TEXT NOT NULL, evaluation_score REAL, metadata TEXT NOT NULL,
                sha256 TEXT NOT NULL CHECK (length(sha256) = 64), size_bytes INTEGER NOT NULL);
            CREATE TABLE active (id INTEGER PRIMARY KEY CHECK (id = 1), number INTEGER REFERENCES versions (number),
                generation INTEGER NOT NULL);
            PRAGMA user_version = 1;
            """
        )
        conn.execute(
            "INSERT INTO versions VALUES (1, '2026-01-01T00:00:00+00:00', '{}', NULL, '{}', ?, ?)", ("0" * 64, size)
        )
        conn.execute("INSERT INTO active VALUES (1, 1, 1)")
    registry = ModelRegistry(root)
    (record,) = registry.versions()
    assert record.format == "sb3-zip" and record.active
    with pytest.raises(ModelRefusedError, match="format: v1 is stored as an SB3 archive") as raised:
        registry.load("v1")
    assert raised.value.field == "format"
    again = registry.register(registry.models_dir / "v1.zip", training_config={}, activate=True)  # the way out
    assert again.version == "v2" and again.format == "safetensors-1" and registry.load("v2").policy is not None
    with pytest.raises(ModelRefusedError, match="format"):
        registry.activate("v1")
    assert registry.active().version == "v2"


# -- the format itself --------------------------------------------------------------------------------------


def test_the_converted_policy_answers_as_sb3_loads_it(tiny_models, trainee):
    for name in ("attn0", "mlp"):
        converted = read_model(
            convert_sb3_archive(tiny_models[name].read_bytes(), max_bytes=1 << 26).to_bytes(), 1 << 26
        )
        served, loaded = load_policy(converted), PPO.load(tiny_models[name], device="cpu")
        ours, theirs = optimize_weights(served, trainee, 8, seed=1), optimize_weights(loaded, trainee, 8, seed=1)
        np.testing.assert_array_equal(ours.cq, theirs.cq)
        if name == "attn0":
            np.testing.assert_array_equal(predict_weights(served, trainee).cq, predict_weights(loaded, trainee).cq)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m | {"policy": "os.system"}, "policy"),
        (lambda m: m | {"env_id": "CartPole-v1"}, "env_id"),
        (lambda m: m | {"action_space": {"type": "Discrete", "n": 2, "start": 0}}, "action_space"),
        (lambda m: m | {"policy_kwargs": {"optimizer_class": "x"}}, "policy_kwargs"),
        (lambda m: m | {"format_version": 99}, "format"),
        (lambda m: m | {"training_config": [1]}, "training_config"),
    ],
)
def test_a_manifest_the_registry_does_not_know_is_refused(tiny_models, change, field):
    model = convert_sb3_archive(tiny_models["mlp"].read_bytes(), max_bytes=1 << 26)
    data = SafeModel(change(model.manifest), model.tensors).to_bytes()
    with pytest.raises(ModelFormatError, match=rf"^{field}: ") as raised:
        read_model(data, 1 << 26)
    assert raised.value.field == field and isinstance(raised.value, FieldError)
    assert str(raised.value) == f"{field}: {raised.value.reason}"


@pytest.mark.parametrize("data", [b"", b"\x00" * 8, b"\xff" * 64, b"PK\x03\x04 not a zip", b"{}"])
def test_bytes_that_are_no_model_are_refused(data):
    with pytest.raises(ModelFormatError):
        read_model(data, 1 << 20)
    with pytest.raises(ModelFormatError, match="model_file"):
        convert_sb3_archive(data, max_bytes=1 << 20)


def test_a_file_that_cannot_be_read_is_a_field_error_naming_model_file(registry, tmp_path):
    (tmp_path / "dir.zip").mkdir()
    with pytest.raises(FieldError, match=r"^model_file: is not a regular file \(got '.*") as raised:
        registry.register(tmp_path / "dir.zip", training_config={})
    assert (raised.value.field, raised.value.reason) == ("model_file", "is not a regular file")
    assert not isinstance(raised.value, RegistryError)
    assert registry.versions() == []


def test_the_dry_run_works_under_a_lower_inherited_memory_limit(tmp_path, tiny_models):
    """A training job limited below the check's own limit (3 GiB < 4 GiB) still registers: the lower limit holds."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from fitness_weights_api import ModelRegistry\n"
        "print(ModelRegistry(sys.argv[1]).register(sys.argv[2], training_config={}).version)"
    )
    command = [sys.executable, "-c", code, str(tmp_path / "registry"), str(tiny_models["mlp"])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.stdout.strip() == "v1", done.stderr[-2000:]
