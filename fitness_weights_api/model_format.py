"""The registry's model format: a policy's weights as safetensors and its description as JSON, nothing to unpickle.

An SB3 archive (``model.save``) stores cloudpickled objects (the spaces, the schedules, the policy class and often
``policy_kwargs``): loading one runs whatever code it carries. The registry never loads one. It converts it:

* the weights: the archive's ``policy.pth`` read with ``torch.load(weights_only=True)``, which builds tensors and
  containers only, and refused unless it is a flat mapping of names to tensors;
* the description: only the archive's plain JSON fields. ``policy_kwargs`` must be a plain JSON object (an archive
  that holds it only as a pickle, because it names a class or a function, is refused with the field named). The
  policy class is not unpickled: it is the allow-listed class (:data:`POLICIES`) whose module the archive's plain
  ``policy_class.__module__`` field names and whose parameter names and shapes the weights match. The spaces are
  not read from the archive: they come from the env id.

The result, one ``.safetensors`` file: an 8-byte little-endian header length, a JSON header (each tensor's dtype,
shape and offsets, and ``__metadata__``), then the raw tensor bytes. ``__metadata__["manifest"]`` is the manifest,
JSON:

=====================  ======================================================================================
``format``             ``"fitness-weights-model"``, and ``format_version`` (:data:`FORMAT_VERSION`)
``policy``             the policy class, a name in :data:`POLICIES`
``policy_kwargs``      its keyword arguments, a JSON object (checked against the class's parameters)
``env_id``             the environment, one of :data:`ENV_IDS`
``observation_space``  the env's spaces as data (``{"type": "Box", "shape": [198], ...}``, ``{"type":
``action_space``       "Discrete", "n": 685}``); they must equal the env id's
``training_config``    how it was trained (JSON object)
``sb3_version``        the Stable-Baselines3 version that saved the archive, if it said
=====================  ======================================================================================

:func:`load_policy` reads such a file from bytes already checked against the registry's SHA-256, and builds the
policy with a strict ``load_state_dict``: every parameter present, none extra, every shape as the class makes it.
"""

from __future__ import annotations

import functools
import inspect
import io
import json
import logging
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import fitness_weights_env
from fitness_weights_env.errors import FieldError

if TYPE_CHECKING:
    import torch as th
    from stable_baselines3.common.policies import BasePolicy

__all__ = [
    "ENV_IDS",
    "FORMAT",
    "FORMAT_VERSION",
    "INFERENCE_RUNTIMES",
    "POLICIES",
    "ModelFormatError",
    "SafeModel",
    "ServedModel",
    "archive_timesteps",
    "check_inference",
    "convert_sb3_archive",
    "load_policy",
    "make_manifest",
    "model_from_bytes",
    "read_model",
]

FORMAT = "fitness-weights-model"
FORMAT_VERSION = 1
ENV_IDS: tuple[str, ...] = tuple(fitness_weights_env.ENV_IDS)
"""The environments whose models the registry takes: every env id ``fitness_weights_env`` registers."""

POLICIES = {  # name: (module, class name) -- the allow-list; nothing else is ever built
    "AttnCQQXPolicy": ("sb3_ext.policies", "AttnCQQXPolicy"),
    "MlpPolicy": ("stable_baselines3.common.policies", "ActorCriticPolicy"),
    "OfflineMlpPolicy": ("sb3_ext.offline.mlp_policy", "OfflineMlpPolicy"),  # IQL and BC (sb3_ext.offline)
    "OfflineAttnPolicy": ("sb3_ext.offline.attention_policy", "OfflineAttnPolicy"),
}
"""The policy classes a registered model may name, and where each lives."""

SB3_DATA_ENTRY = "data"
SB3_POLICY_ENTRY = "policy.pth"
SB3_VERSION_ENTRY = "_stable_baselines3_version"
MAX_JSON_BYTES = 1 << 20  # a manifest is about 1 kB (an SB3 ``data`` entry, which grows with n_envs, has max_bytes)
MAX_TENSORS = 10_000
_MANIFEST_KEY = "manifest"
_HEADER_LENGTH = struct.Struct("<Q")
_KWARG_RE = re.compile(r"[a-z_][a-z0-9_]{0,63}")
_BLOCKED_KWARGS = frozenset({"optimizer_class", "optimizer_kwargs", "features_extractor_class", "activation_fn"})
logger = logging.getLogger("fitness_weights_api")
_DTYPES = {"F32": "float32", "F64": "float64", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32"}


class ModelFormatError(FieldError):
    """A model file the registry refuses; ``field`` names what is wrong, ``reason`` says how."""


@dataclass(frozen=True)
class SafeModel:
    """A policy's weights and its manifest (see the module docstring), in memory.

    Attributes:
        manifest: The manifest, a JSON object.
        tensors: Parameter name -> CPU tensor.
    """

    manifest: dict[str, Any]
    tensors: dict[str, th.Tensor]

    def to_bytes(self) -> bytes:
        """The ``.safetensors`` file."""
        from safetensors.torch import save

        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.tensors.items()}
        return save(tensors, metadata={_MANIFEST_KEY: json.dumps(self.manifest, allow_nan=False, sort_keys=True)})

    @property
    def policy(self) -> str:
        """The manifest's policy name."""
        return str(self.manifest["policy"])


@dataclass
class ServedModel:
    """What the service needs of a model: the policy (``optimize_weights`` and ``predict_weights`` take it).

    Attributes:
        policy: The torch policy.
        manifest: The model file's manifest.
        inference: The policy's exported graphs in ONNX Runtime (:class:`sb3_ext.onnx_policy.OnnxPolicy`), which
            answer in its place; ``None`` when the torch policy answers.
        runtime_note: Why the torch policy answers although ONNX Runtime was asked for (``None`` otherwise).
    """

    policy: BasePolicy
    manifest: dict[str, Any]
    inference: Any = None
    runtime_note: str | None = None

    @property
    def runtime(self) -> Literal["onnx", "torch"]:
        """``"onnx"`` or ``"torch"``: what answers the model's optimize and predict."""
        return "torch" if self.inference is None else "onnx"


# -- spaces as data ------------------------------------------------------------------------------------------


def env_spaces(env_id: str) -> tuple[Any, Any]:
    """The observation and action spaces of ``env_id``, one of :data:`ENV_IDS`."""
    if env_id not in ENV_IDS:
        raise ModelFormatError("env_id", f"must be one of {list(ENV_IDS)}")
    return _spaces(env_id)


@functools.cache
def _spaces(env_id: str) -> tuple[Any, Any]:
    """Made once per env id: every manifest check and every policy built asks for them."""
    import gymnasium as gym

    env = gym.make(env_id)  # fitness_weights_env, imported above, registered it
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def space_to_data(space: Any) -> dict[str, Any]:
    """A Box or Discrete space as JSON data."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        low, high = space.low.ravel(), space.high.ravel()
        uniform = low.size > 0 and (low == low[0]).all() and (high == high[0]).all()
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": float(low[0]) if uniform else low.tolist(),
            "high": float(high[0]) if uniform else high.tolist(),
        }
    raise ModelFormatError("observation_space", f"{type(space).__name__} spaces are not supported")


# -- SB3 archive -> SafeModel --------------------------------------------------------------------------------


def convert_sb3_archive(
    data: bytes, *, env_id: str = ENV_IDS[0], training_config: dict[str, Any] | None = None, max_bytes: int
) -> SafeModel:
    """Convert a saved SB3 model (the archive's bytes) without unpickling anything (see the module docstring).

    The policy class is chosen by the archive's plain ``policy_class.__module__`` field and the weights' names;
    :func:`load_policy` later checks the shapes against the class (the registry's dry run builds it).

    Raises:
        ModelFormatError: Not a readable zip, an entry missing or larger than ``max_bytes`` uncompressed (or all
            of them together), a needed field stored only as a pickle, weights that are not a mapping of names
            to tensors, or weights that match no allowed policy. The field at fault is named.
    """
    entries = _read_entries(data, (SB3_DATA_ENTRY, SB3_POLICY_ENTRY), (SB3_VERSION_ENTRY,), max_bytes)
    fields = _json("data", entries[SB3_DATA_ENTRY], max_bytes)
    if not isinstance(fields, dict):
        raise ModelFormatError("data", "must be a JSON object (SB3's saved fields)")
    kwargs = fields.get("policy_kwargs", {})
    if isinstance(kwargs, dict) and ":serialized:" in kwargs:
        raise ModelFormatError(
            "policy_kwargs",
            "is stored only as a pickle (it holds Python objects such as a class or a function), which the "
            "registry never loads; train with JSON policy_kwargs (numbers, strings, lists)",
        )
    policy_class = fields.get("policy_class")
    module = policy_class.get("__module__") if isinstance(policy_class, dict) else None
    tensors = _load_weights(entries[SB3_POLICY_ENTRY])
    names = [name for name, (mod, _) in POLICIES.items() if mod == module]
    if not names:
        allowed = sorted({mod for mod, _ in POLICIES.values()})
        raise ModelFormatError("policy_class", f"must be a policy from {allowed} ({', '.join(POLICIES)})")
    if len(names) > 1:  # pragma: no cover - today every allowed class lives in its own module
        raise ModelFormatError("policy_class", f"is ambiguous among {names}")
    version = entries.get(SB3_VERSION_ENTRY, b"").decode("utf-8", "replace").strip()[:32]
    return SafeModel(make_manifest(names[0], kwargs, env_id, training_config, version or None), tensors)


def archive_timesteps(data: bytes, max_bytes: int) -> int | None:
    """The ``num_timesteps`` an SB3 archive was saved at, read from its plain ``data`` field (``None`` if absent).

    Raises:
        ModelFormatError: Not a readable SB3 archive, or a ``data`` entry that is not JSON (as
            :func:`convert_sb3_archive`).
    """
    entries = _read_entries(data, (SB3_DATA_ENTRY,), (), max_bytes)
    fields = _json("data", entries[SB3_DATA_ENTRY], max_bytes)
    value = fields.get("num_timesteps") if isinstance(fields, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def make_manifest(
    policy: str,
    policy_kwargs: Any,
    env_id: str = ENV_IDS[0],
    training_config: dict[str, Any] | None = None,
    sb3_version: str | None = None,
) -> dict[str, Any]:
    """The manifest of a ``policy`` (a name in :data:`POLICIES`) with these arguments, acting in ``env_id``.

    Raises:
        ModelFormatError: An unknown policy or env id, or arguments that are not plain JSON (the field is named).
    """
    if policy not in POLICIES:
        raise ModelFormatError("policy", f"must be one of {list(POLICIES)}")
    observation_space, action_space = env_spaces(env_id)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "policy": policy,
        "policy_kwargs": _check_kwargs(policy_kwargs),
        "env_id": env_id,
        "observation_space": space_to_data(observation_space),
        "action_space": space_to_data(action_space),
        "training_config": _json_object("training_config", training_config or {}),
        "sb3_version": sb3_version,
    }


def model_from_bytes(
    data: bytes, *, max_bytes: int, env_id: str = ENV_IDS[0], training_config: dict[str, Any] | None = None
) -> SafeModel:
    """A model file's bytes as a :class:`SafeModel`: read if it is in this format, converted if it is an SB3 archive.

    ``training_config``, when given, replaces the manifest's.

    Raises:
        ModelFormatError: Either reading refuses the file (see :func:`read_model`, :func:`convert_sb3_archive`),
            or a file in this format acts in another env than ``env_id`` (``env_id``).
    """
    if not is_safetensors(data):
        return convert_sb3_archive(data, env_id=env_id, training_config=training_config, max_bytes=max_bytes)
    model = read_model(data, max_bytes)
    if model.manifest["env_id"] != env_id:
        raise ModelFormatError("env_id", f"the model acts in {model.manifest['env_id']}, not {env_id}")
    if training_config is None:
        return model
    return SafeModel(
        {**model.manifest, "training_config": _json_object("training_config", training_config)}, model.tensors
    )


def _read_entries(data: bytes, needed: tuple[str, ...], optional: tuple[str, ...], max_bytes: int) -> dict[str, bytes]:
    """The named entries of a zip archive, each read to at most ``max_bytes`` whatever its header says."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ModelFormatError("model_file", "is not a readable zip archive (an SB3 model.zip)") from None
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        missing = [name for name in needed if name not in infos]
        if missing:
            raise ModelFormatError("model_file", f"is not a Stable-Baselines3 model: it lacks the entries {missing}")
        if sum(info.file_size for info in infos.values()) > max_bytes:
            raise ModelFormatError("model_file", f"holds more than {max_bytes} bytes uncompressed")
        entries = {}
        for name in (*needed, *(name for name in optional if name in infos)):
            try:
                with archive.open(infos[name]) as entry:
                    content = entry.read(max_bytes + 1)  # the header's size may lie: never read more
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError, NotImplementedError, ValueError):
                raise ModelFormatError(name, "cannot be read (a damaged or encrypted entry)") from None
            if len(content) > max_bytes:
                raise ModelFormatError(name, f"holds more than {max_bytes} bytes uncompressed")
            entries[name] = content
    return entries


def _load_weights(content: bytes) -> dict[str, th.Tensor]:
    import pickle

    import torch as th

    try:
        state = th.load(io.BytesIO(content), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError, TypeError, AttributeError) as err:
        message = "refused by torch.load(weights_only=True): it is not plain tensors"
        raise ModelFormatError(SB3_POLICY_ENTRY, message) from err
    if not isinstance(state, dict) or not state or len(state) > MAX_TENSORS:
        raise ModelFormatError(SB3_POLICY_ENTRY, "must map parameter names to tensors")
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, th.Tensor) or tensor.is_sparse:
            raise ModelFormatError(SB3_POLICY_ENTRY, "must map parameter names to dense tensors")
    return dict(state)


# -- the safetensors file ------------------------------------------------------------------------------------


def read_model(data: bytes, max_bytes: int) -> SafeModel:
    """Parse a ``.safetensors`` model file (bytes) and validate its manifest; no code runs.

    Raises:
        ModelFormatError: Not such a file, too large, or a manifest the registry refuses (the field is named).
    """
    if len(data) > max_bytes:
        raise ModelFormatError("model_file", f"is larger than {max_bytes} bytes")
    header = _header(data)
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or not isinstance(metadata.get(_MANIFEST_KEY), str):
        raise ModelFormatError("manifest", "is missing: not a fitness-weights model file")
    manifest = validate_manifest(_json("manifest", metadata[_MANIFEST_KEY].encode()))
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ModelFormatError("model_file", "its tensors cannot be read") from err
    if not tensors:
        raise ModelFormatError("model_file", "holds no tensors")
    return SafeModel(manifest, tensors)


def _header(data: bytes) -> dict[str, Any]:
    if len(data) < _HEADER_LENGTH.size:
        raise ModelFormatError("model_file", "is not a safetensors file")
    (length,) = _HEADER_LENGTH.unpack_from(data)
    if length > min(MAX_JSON_BYTES * 4, len(data) - _HEADER_LENGTH.size):
        raise ModelFormatError("model_file", "is not a safetensors file (a bad header length)")
    header = _json("model_file", data[_HEADER_LENGTH.size : _HEADER_LENGTH.size + length])
    if not isinstance(header, dict) or len(header) > MAX_TENSORS + 1:
        raise ModelFormatError("model_file", "is not a safetensors file")
    for name, entry in header.items():
        if name != "__metadata__" and (not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES):
            raise ModelFormatError("model_file", "holds a tensor of an unsupported type")
    return header


def is_safetensors(data: bytes) -> bool:
    """Whether ``data`` starts like a safetensors file (a plausible header length, then ``{``)."""
    if len(data) < _HEADER_LENGTH.size + 2:
        return False
    (length,) = _HEADER_LENGTH.unpack_from(data)
    return (
        2 <= length <= len(data) - _HEADER_LENGTH.size and data[_HEADER_LENGTH.size : _HEADER_LENGTH.size + 1] == b"{"
    )


def validate_manifest(manifest: Any) -> dict[str, Any]:
    """Check a manifest's fields (see the module docstring); return it.

    Raises:
        ModelFormatError: A field is missing or invalid, or the spaces are not the env id's (the field is named).
    """
    if not isinstance(manifest, dict):
        raise ModelFormatError("manifest", "must be a JSON object")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError("format", f"must be {FORMAT!r} version {FORMAT_VERSION}")
    if manifest.get("policy") not in POLICIES:
        raise ModelFormatError("policy", f"must be one of {list(POLICIES)}")
    _check_kwargs(manifest.get("policy_kwargs"))
    observation_space, action_space = env_spaces(manifest.get("env_id"))  # type: ignore[arg-type]
    for field, space in (("observation_space", observation_space), ("action_space", action_space)):
        if manifest.get(field) != space_to_data(space):
            raise ModelFormatError(field, f"does not match {manifest['env_id']}'s ({space})")
    _json_object("training_config", manifest.get("training_config"))
    return manifest


def _check_kwargs(kwargs: Any) -> dict[str, Any]:
    """``policy_kwargs``: a JSON object of plain values whose keys are parameter names."""
    value = _json_object("policy_kwargs", kwargs)
    for key in value:
        if not _KWARG_RE.fullmatch(key) or key in _BLOCKED_KWARGS:
            raise ModelFormatError("policy_kwargs", f"the key {key!r} is not a parameter the registry accepts")
    return value


def _json(field: str, content: bytes, max_bytes: int = MAX_JSON_BYTES) -> Any:
    if len(content) > max_bytes:
        raise ModelFormatError(field, f"is larger than {max_bytes} bytes of JSON")
    try:
        return json.loads(content.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ModelFormatError(field, "is not valid JSON") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_object(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelFormatError(field, "must be a JSON object")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        raise ModelFormatError(field, "must hold JSON values only (finite numbers, strings, lists, objects)") from None


# -- SafeModel -> a policy -----------------------------------------------------------------------------------


INFERENCE_RUNTIMES = ("onnx", "torch")
"""What may answer a served model's requests: its exported graphs in ONNX Runtime, or the torch policy."""


def check_inference(inference: Any) -> None:
    """Raise ``FieldError`` (``inference``) unless ``inference`` is one of :data:`INFERENCE_RUNTIMES`."""
    if inference not in INFERENCE_RUNTIMES:
        raise FieldError("inference", f"must be one of {', '.join(INFERENCE_RUNTIMES)}", inference)


def load_policy(model: SafeModel, device: str = "cpu", inference: str = "torch") -> ServedModel:
    """Build the manifest's policy for its env's spaces and load the weights strictly; in eval mode on ``device``.

    With ``inference="onnx"`` the policy's graphs are exported and checked against it
    (:meth:`sb3_ext.onnx_policy.OnnxPolicy.from_policy`) and answer in its place. Where that cannot be (a device
    other than the CPU, ONNX Runtime not installed, a graph that does not export or does not match), the torch
    policy answers, and :attr:`ServedModel.runtime_note` and the ``fitness_weights_api`` log say why.

    Raises:
        ModelFormatError: The keyword arguments do not fit the class (``policy_kwargs``), or the weights do not
            match what the class builds: a parameter missing, extra, or of another shape (``weights``).
        FieldError: ``inference`` is not one of :data:`INFERENCE_RUNTIMES`.
    """
    import importlib

    import torch as th

    check_inference(inference)
    manifest = validate_manifest(model.manifest)
    module, name = POLICIES[manifest["policy"]]
    policy_class = getattr(importlib.import_module(module), name)
    kwargs = manifest["policy_kwargs"]
    parameters = inspect.signature(policy_class.__init__).parameters
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        raise ModelFormatError("policy_kwargs", f"{manifest['policy']} takes no parameter {unknown[0]!r}")
    observation_space, action_space = env_spaces(manifest["env_id"])
    try:
        policy = policy_class(observation_space, action_space, _constant_zero, **kwargs)
    except RuntimeError as err:
        if "allocate" in str(err):  # torch's allocator refused: the arguments ask for more memory than allowed
            raise MemoryError(str(err)) from None
        raise ModelFormatError("policy_kwargs", f"do not build a {manifest['policy']}: {err}") from None
    except (TypeError, ValueError, AssertionError) as err:
        raise ModelFormatError("policy_kwargs", f"do not build a {manifest['policy']}: {err}") from None
    expected = policy.state_dict()
    for key in model.tensors:
        if key not in expected:
            raise ModelFormatError("weights", f"{key!r} is not a parameter of {manifest['policy']}")
    for key in expected:  # in the policy's order: the first mismatch is the one nearest the input
        tensor = model.tensors.get(key)
        if tensor is None:
            raise ModelFormatError("weights", f"the parameter {key!r} of {manifest['policy']} is missing")
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ModelFormatError(
                "weights",
                f"{key!r} has shape {list(tensor.shape)}, {manifest['policy']} with these policy_kwargs on "
                f"{manifest['env_id']} has {list(expected[key].shape)}",
            )
        if tensor.is_floating_point() and not bool(th.isfinite(tensor).all()):
            raise ModelFormatError("weights", f"{key!r} holds NaN or infinite values")
    policy.load_state_dict(model.tensors, strict=True)
    policy.set_training_mode(False)
    served = ServedModel(policy.to(device), manifest)
    if inference == "onnx":
        served.inference, served.runtime_note = _exported(served.policy, device)
        if served.runtime_note is not None:
            logger.warning("%s answers with torch: %s", manifest["policy"], served.runtime_note)
    return served


def _exported(policy: BasePolicy, device: str) -> tuple[Any, str | None]:
    """The policy's checked ONNX graphs, or ``None`` and why not."""
    from sb3_ext.onnx_policy import OnnxExportError, OnnxPolicy, onnx_available

    if str(device) != "cpu":
        return None, f"ONNX Runtime serves on the CPU; the model runs on {device}"
    missing = onnx_available()
    if missing is not None:
        return None, missing
    try:
        return OnnxPolicy.from_policy(policy), None
    except OnnxExportError as err:
        return None, str(err)
    except Exception as err:  # ONNX Runtime's own errors (a graph it refuses) have no common base
        return None, f"ONNX Runtime could not run the graphs ({type(err).__name__})"


def _constant_zero(_: float) -> float:
    return 0.0


def file_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of a file, read to at most ``max_bytes`` (a larger file is refused, not read whole)."""
    with open(path, "rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ModelFormatError("model_file", f"is larger than {max_bytes} bytes")
    return data
