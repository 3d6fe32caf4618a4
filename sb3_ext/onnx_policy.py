"""``OnnxPolicy``: a trained policy's actor and prediction heads as ONNX graphs, run by ONNX Runtime.

A policy answers the service's requests one trainee at a time, and at batch size 1 torch's per-operation overhead
is most of a forward pass. ONNX Runtime runs the same graph about ten times faster there (``benchmarks/RESULTS.md``,
"HTTP API"). :func:`export_graphs` exports two graphs of a policy with torch's exporter (``torch.export``):

* ``actor``: ``observation`` (B, n) -> ``probs`` (B, 685), the probabilities of the policy's action
  distribution, exactly what :class:`~sb3_ext.actions.PolicyActions` samples from;
* ``heads``, for a policy with the CQ/QX prediction heads: ``observation`` -> ``cq`` (B, 93, 5), ``qx`` (B, 5, 44)
  and ``confidence`` (B,), what ``predict_weights`` returns.

:meth:`OnnxPolicy.from_policy` runs them and checks them against the torch policy on probe observations (to
:data:`ATOL`) before anything uses them; :class:`~sb3_ext.actions.PolicyActions` and
:func:`fitness_weights_api.weights.predict_weights` take an ``OnnxPolicy`` where they take the torch policy.

**Exporting once per architecture.** Tracing and translating the attention network takes seconds, and every
model of one architecture (policy class, constructor arguments, spaces) has the same graph up to its weights.
The graphs are exported without the exporter's optimizer, so that every parameter stays an initializer named
after its ``state_dict`` entry; a graph is kept as a template, and a new policy of the same architecture gets a
copy whose initializers are its own weights (milliseconds). Templates live in memory and in a cache folder
(:func:`default_cache_dir`), keyed by a hash of the architecture and the torch and ONNX versions, so they are
shared by processes. ONNX Runtime optimizes the graph when it builds a session. The check against torch runs on
every graph, exported or bound, so a stale or damaged template cannot serve.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch as th
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from sb3_ext.actions import action_probabilities
from sb3_ext.policies import observation_batch

__all__ = [
    "ATOL",
    "GRAPHS",
    "OnnxExportError",
    "OnnxPolicy",
    "OnnxPolicyWithHeads",
    "default_cache_dir",
    "export_graphs",
    "has_heads",
    "onnx_available",
]

ATOL = 1e-5
"""Largest absolute difference from the torch policy that :meth:`OnnxPolicy.from_policy` accepts, on any output."""
GRAPHS = ("actor", "heads")
"""The graphs of a policy: the actor's probabilities, and the prediction heads (only for a policy that has them)."""
OPSET = 18
MAX_TEMPLATE_BYTES = 256 << 20  # a template is about 0.2 MB for the default attention network
PROBE_SEED = 0x0AA
_TEMPLATE_FORMAT = 1


class OnnxExportError(RuntimeError):
    """The policy cannot be exported, or its graph does not compute what the torch policy does."""


def onnx_available() -> str | None:
    """``None`` when the exporter's modules and ONNX Runtime are installed, else why not (the missing module)."""
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or without a spec
            found = False
        if not found:
            return f"{module} is not installed (pip install 'fitness-weights[api]')"
    return None


def default_cache_dir() -> Path:
    """``$FITNESS_WEIGHTS_CACHE_DIR/onnx``, else ``$XDG_CACHE_HOME/fitness-weights/onnx`` (``~/.cache`` by default)."""
    root = os.environ.get("FITNESS_WEIGHTS_CACHE_DIR")
    if root:
        return Path(root) / "onnx"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fitness-weights" / "onnx"


# -- what each graph computes ------------------------------------------------------------------------------------


class _Actor(nn.Module):
    def __init__(self, policy: BasePolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observation: th.Tensor) -> th.Tensor:
        return action_probabilities(self.policy, observation)


class _Heads(nn.Module):
    def __init__(self, policy: BasePolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, observation: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        prediction = self.policy.aux_prediction(observation)  # type: ignore[operator]
        return prediction.cq, prediction.qx, self.policy.confidence(prediction.log_error)  # type: ignore[operator]


_OUTPUTS = {"actor": ["probs"], "heads": ["cq", "qx", "confidence"]}
_MODULES = {"actor": _Actor, "heads": _Heads}


def has_heads(policy: BasePolicy) -> bool:
    """Whether ``policy`` has the CQ/QX prediction heads (``aux_prediction`` and ``confidence``)."""
    return callable(getattr(policy, "aux_prediction", None)) and callable(getattr(policy, "confidence", None))


# -- export and templates ----------------------------------------------------------------------------------------


def _architecture_key(policy: BasePolicy, graph: str) -> str:
    """A hash of what the graph's structure depends on: code versions, class, arguments, spaces, parameter shapes."""
    arguments = {
        name: repr(value)
        for name, value in sorted(policy._get_constructor_parameters().items())
        if name not in ("lr_schedule", "optimizer_class", "optimizer_kwargs")  # no part of the graph
    }
    state = {name: [str(t.dtype), list(t.shape)] for name, t in policy.state_dict().items()}
    described = {
        "format": _TEMPLATE_FORMAT,
        "graph": graph,
        "opset": OPSET,
        "versions": [th.__version__, *(importlib.metadata.version(name) for name in ("onnx", "onnxscript"))],
        "class": f"{type(policy).__module__}.{type(policy).__qualname__}",
        "arguments": arguments,
        "state": state,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


def _export(policy: BasePolicy, graph: str) -> Any:
    """The ONNX model of one graph of ``policy``, exported without the optimizer (module docstring)."""
    size = int(policy.observation_space.shape[0])  # type: ignore[index]
    module = _MODULES[graph](policy)
    example = th.full((2, size), 0.5, dtype=th.float32, device=policy.device)
    batch = th.export.Dim("batch", min=1, max=1 << 16)
    try:
        with (
            warnings.catch_warnings(),
            th.no_grad(),
            _no_argument_validation(),
            _quiet_exporter(),
            contextlib.redirect_stdout(io.StringIO()),  # the exporter prints its progress
        ):
            warnings.simplefilter("ignore")
            program = th.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["observation"],
                output_names=_OUTPUTS[graph],
                dynamic_shapes=({0: batch},),
                opset_version=OPSET,
                optimize=False,
                verbose=False,
            )
    except Exception as err:  # torch.export's and the translator's errors have no common base
        raise OnnxExportError(f"the {graph} of {type(policy).__name__} does not export: {type(err).__name__}") from err
    assert program is not None
    return program.model_proto


@contextlib.contextmanager
def _quiet_exporter() -> Any:
    """The exporter without its log lines (e.g. one per torchvision operator it cannot register)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _no_argument_validation() -> Any:
    """``torch.distributions`` without argument checks (data-dependent branches that ``torch.export`` refuses)."""
    before = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        th.distributions.Distribution.set_default_validate_args(before)


def _bind(template: Any, policy: BasePolicy) -> bytes:
    """``template`` with every initializer that names a ``state_dict`` entry set to ``policy``'s value."""
    from onnx import numpy_helper

    model = copy.deepcopy(template)
    state = policy.state_dict()
    for initializer in model.graph.initializer:
        name = initializer.name.removeprefix("policy.")
        tensor = state.get(name)
        if tensor is None:  # a constant of the architecture (e.g. the layout's feature index)
            continue
        value = tensor.detach().cpu().numpy()
        if tuple(initializer.dims) != value.shape:
            raise OnnxExportError(f"the template's {name!r} has shape {list(initializer.dims)}, not {value.shape}")
        initializer.CopyFrom(numpy_helper.from_array(value, initializer.name))
    return bytes(model.SerializeToString())


class _Templates:
    """Exported graphs by architecture key: in memory, and as files in a cache folder."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.memory: dict[str, Any] = {}
        self.exports = 0
        """Graphs exported by this process (the others came from a template)."""

    def get(self, policy: BasePolicy, graph: str, cache_dir: Path | None) -> Any:
        """The template of ``policy``'s ``graph``: from memory, else from ``cache_dir``, else exported (and kept)."""
        key = _architecture_key(policy, graph)
        with self.lock:
            if key in self.memory:
                return self.memory[key]
        path = None if cache_dir is None else cache_dir / f"{graph}-{key[:32]}.onnx"
        template = None
        if path is not None:
            template = _read_template(path, graph)
        if template is None:
            template = _export(policy, graph)
            self.exports += 1
            if path is not None:
                _write_quietly(path, template.SerializeToString())
        with self.lock:
            self.memory[key] = template
        return template


def _read_template(path: Path, graph: str) -> Any:
    """The template in ``path``, or ``None`` when it is missing, unreadable, too large, or not a graph of ``graph``."""
    import onnx

    try:
        if path.stat().st_size > MAX_TEMPLATE_BYTES:
            return None
        template = onnx.load_from_string(path.read_bytes())
        onnx.checker.check_model(template)
    except Exception:  # OSError, protobuf's DecodeError, onnx's ValidationError: export it again
        return None
    names = ([i.name for i in template.graph.input], [o.name for o in template.graph.output])
    return template if names == (["observation"], _OUTPUTS[graph]) else None


TEMPLATES = _Templates()
"""This process's graph templates."""


def _write_quietly(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a cache folder that cannot be written is skipped."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(temp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def export_graphs(policy: BasePolicy, cache_dir: Path | str | None = "default") -> dict[str, bytes]:
    """The ONNX graphs of ``policy`` (:data:`GRAPHS`; ``heads`` only when it has them), as serialized models.

    Args:
        policy: A policy over a FitnessWeights observation and ``Discrete(685)``: ``AttnCQQXPolicy``, SB3's
            ``MlpPolicy`` or an offline policy.
        cache_dir: The templates' folder; ``"default"`` for :func:`default_cache_dir`, ``None`` for memory only.

    Raises:
        OnnxExportError: The exporter refused the policy.
        ImportError: ``onnx`` or ``onnxscript`` is not installed.
    """
    folder = default_cache_dir() if cache_dir == "default" else None if cache_dir is None else Path(cache_dir)
    graphs = ["actor", "heads"] if has_heads(policy) else ["actor"]
    policy.set_training_mode(False)
    return {graph: _bind(TEMPLATES.get(policy, graph, folder), policy) for graph in graphs}


# -- running the graphs ------------------------------------------------------------------------------------------


class OnnxPolicy:
    """A policy's actor graph in an ONNX Runtime session: what :class:`~sb3_ext.actions.PolicyActions` samples from.

    Build one with :meth:`from_policy`, which exports and checks the graphs.

    Args:
        graphs: Serialized ONNX models by name (:data:`GRAPHS`).
        observation_space: The policy's observation space.
        threads: ONNX Runtime's threads per session (1: requests run concurrently in a service's threads).
    """

    def __init__(self, graphs: Mapping[str, bytes], observation_space: Any, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        self.graphs = dict(graphs)
        self.observation_space = observation_space
        self.size = int(observation_space.shape[0])
        self.sessions = {
            name: ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            for name, graph in self.graphs.items()
        }

    @classmethod
    def from_policy(
        cls, policy: BasePolicy, *, cache_dir: Path | str | None = "default", atol: float = ATOL
    ) -> OnnxPolicy:
        """Export ``policy``'s graphs (:func:`export_graphs`), run them, and check them against it.

        Returns:
            An :class:`OnnxPolicyWithHeads` when the policy has prediction heads, else an :class:`OnnxPolicy`.

        Raises:
            OnnxExportError: The policy does not export, or a graph's outputs differ from torch's by more than
                ``atol`` on the probe observations (the message names the output and the difference).
        """
        graphs = export_graphs(policy, cache_dir)
        kind = OnnxPolicyWithHeads if "heads" in graphs else OnnxPolicy
        exported = kind(graphs, policy.observation_space)
        difference = exported.difference(policy)
        worst = max(difference, key=difference.__getitem__)
        if not difference[worst] <= atol:
            raise OnnxExportError(
                f"the exported {worst} differs from the torch policy's by {difference[worst]:.2e} (above {atol:g})"
            )
        return exported

    def run(self, graph: str, observation: np.ndarray) -> list[np.ndarray]:
        """The outputs of ``graph`` for a batch of observations (B, n), as float32."""
        feed = {"observation": np.ascontiguousarray(observation, dtype=np.float32)}
        return cast(list[np.ndarray], self.sessions[graph].run(None, feed))

    def action_probabilities(self, observation: np.ndarray) -> np.ndarray:
        """The action probabilities (B, 685) for a batch of observations (B, n)."""
        return self.run("actor", observation)[0]

    def difference(self, policy: BasePolicy, n: int = 16) -> dict[str, float]:
        """The largest absolute difference from ``policy`` of each output, on ``n`` probes and on one alone.

        The probes are uniform draws in the observation space (seeded): the graphs compute the same function as the
        policy everywhere, not only on the states an episode visits.
        """
        probes = np.random.default_rng(PROBE_SEED).random((n, self.size), dtype=np.float32)
        policy.set_training_mode(False)
        difference: dict[str, float] = {}
        for batch in (probes, probes[:1]):
            tensor = th.as_tensor(batch, device=policy.device)
            with th.no_grad(), _no_argument_validation():
                expected = {"probs": action_probabilities(policy, tensor)}
                if "heads" in self.sessions:
                    expected.update(zip(_OUTPUTS["heads"], _Heads(policy)(tensor), strict=True))
            found = dict(zip(_OUTPUTS["actor"], self.run("actor", batch), strict=True))
            if "heads" in self.sessions:
                found.update(zip(_OUTPUTS["heads"], self.run("heads", batch), strict=True))
            for name, value in expected.items():
                gap = float(np.abs(found[name].astype(np.float64) - value.double().cpu().numpy()).max())
                difference[name] = max(difference.get(name, 0.0), gap if np.isfinite(gap) else np.inf)
        return difference


class OnnxPolicyWithHeads(OnnxPolicy):
    """An :class:`OnnxPolicy` with the prediction heads' graph: it predicts the weights too."""

    def predict_weights(self, observation: np.ndarray | th.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray | float]:
        """The predicted CQ and QX matrices and confidence, as :meth:`sb3_ext.AttnCQQXPolicy.predict_weights`.

        Raises:
            ValueError: The observation has the wrong shape, or holds NaN, infinity or values outside [0, 1].
        """
        batch, single = observation_batch(observation, self.size)
        cq, qx, confidence = self.run("heads", batch)
        return (cq[0], qx[0], float(confidence[0])) if single else (cq, qx, confidence)
