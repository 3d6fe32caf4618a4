"""The policies' graphs in ONNX Runtime: equal to torch, templates per architecture, and the service's answers."""

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy

import fitness_weights_env  # noqa: F401  (registers the envs)
from fitness_weights_api.model_format import ServedModel, load_policy, model_from_bytes
from fitness_weights_api.registry import ModelRegistry
from fitness_weights_api.service import WeightService
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_api.weights import optimize_weights, predict_weights
from fitness_weights_env import sample_profile
from fitness_weights_env.errors import FieldError
from sb3_ext import AttnCQQXPolicy
from sb3_ext.actions import PolicyActions
from sb3_ext.offline.attention_policy import OfflineAttnPolicy
from sb3_ext.onnx_policy import (
    ATOL,
    TEMPLATES,
    OnnxExportError,
    OnnxPolicy,
    OnnxPolicyWithHeads,
    _architecture_key,
    export_graphs,
)

pytest.importorskip("onnxruntime")
# The default widths, as the service's models: a graph is exported once per architecture and shared from then on.


def _policy(kind: str, env_id: str = "FitnessWeights-v0", seed: int = 0):
    env = gym.make(env_id)
    th.manual_seed(seed)
    if kind == "attn":
        return AttnCQQXPolicy(env.observation_space, env.action_space, lambda _: 3e-4)
    if kind == "offline-attn":
        return OfflineAttnPolicy(env.observation_space, env.action_space, lambda _: 3e-4, critics=False)
    return ActorCriticPolicy(env.observation_space, env.action_space, lambda _: 3e-4, net_arch=[32])


def _observations(env_id: str, n: int = 8) -> np.ndarray:
    env = gym.make_vec(env_id, num_envs=n, vectorization_mode="sync")
    observations, _ = env.reset(seed=3)
    return observations


@pytest.mark.parametrize(
    ("kind", "env_id"),
    [
        ("attn", "FitnessWeights-v0"),
        ("attn", "FitnessWeights-v1"),
        ("mlp", "FitnessWeights-v1"),
        ("offline-attn", "FitnessWeights-v0"),
    ],
)
def test_the_graphs_compute_the_policy_s_probabilities_and_predictions(kind, env_id, tmp_path):
    policy = _policy(kind, env_id)
    exported = OnnxPolicy.from_policy(policy, cache_dir=tmp_path)
    assert isinstance(exported, OnnxPolicyWithHeads) == (kind != "mlp")
    observations = _observations(env_id)
    with th.no_grad():
        expected = PolicyActions(policy)._probabilities(observations)
    found = exported.action_probabilities(observations)
    assert found.shape == (8, 685) and np.abs(found - expected).max() < ATOL
    if kind != "mlp":
        for got, want in zip(exported.predict_weights(observations), policy.predict_weights(observations), strict=True):
            assert np.abs(np.asarray(got) - np.asarray(want)).max() < ATOL
        cq, qx, confidence = exported.predict_weights(observations[0])  # one observation, as the torch policy
        assert cq.shape == (93, 5) and qx.shape == (5, 44) and isinstance(confidence, float)
        with pytest.raises(ValueError, match="values must lie in"):
            exported.predict_weights(observations[0] + 2.0)


def test_seeded_actions_from_the_graph_are_the_torch_policy_s(tmp_path):
    policy = _policy("attn")
    exported = OnnxPolicy.from_policy(policy, cache_dir=tmp_path)
    env = gym.make_vec("FitnessWeights-v0", num_envs=8, vectorization_mode="sync")
    observations, _ = env.reset(seed=5)
    from_torch, from_graph = PolicyActions(policy, range(8)), PolicyActions(exported, range(8))
    for _ in range(32):
        actions = from_torch(observations)
        assert np.array_equal(from_graph(observations), actions)
        observations, *_ = env.step(actions)
    assert np.array_equal(PolicyActions(exported)(observations), PolicyActions(policy)(observations))  # the mode


def test_a_policy_of_a_known_architecture_binds_its_own_weights_into_the_template():
    first, second = _policy("attn", seed=0), _policy("attn", seed=1)
    OnnxPolicy.from_policy(first, cache_dir=None)
    exports = TEMPLATES.exports
    exported = OnnxPolicy.from_policy(second, cache_dir=None)
    assert TEMPLATES.exports == exports  # no export: the template of the first, with the second's weights
    observations = _observations("FitnessWeights-v0")
    mine = exported.action_probabilities(observations)
    assert np.abs(mine - PolicyActions(second)._probabilities(observations)).max() < ATOL
    theirs = PolicyActions(first)._probabilities(observations)  # near uniform too, untrained: compare the logs
    assert np.abs(np.log(mine) - np.log(theirs)).max() > 1e-2
    assert _architecture_key(first, "actor") != _architecture_key(_policy("mlp"), "actor")


def test_templates_are_shared_through_the_cache_folder_and_a_damaged_one_is_exported_again(tmp_path):
    policy = _policy("mlp")
    key = _architecture_key(policy, "actor")
    TEMPLATES.memory.pop(key, None)
    export_graphs(policy, tmp_path)
    (template,) = tmp_path.glob("actor-*.onnx")
    exports = TEMPLATES.exports
    TEMPLATES.memory.pop(key)  # as another process: only the folder has it
    OnnxPolicy.from_policy(policy, cache_dir=tmp_path)
    assert TEMPLATES.exports == exports
    TEMPLATES.memory.pop(key)
    template.write_bytes(b"\x08not a graph")
    exported = OnnxPolicy.from_policy(policy, cache_dir=tmp_path)
    assert TEMPLATES.exports == exports + 1 and template.stat().st_size > 1000  # exported and written again
    assert max(exported.difference(policy).values()) < ATOL


def test_a_template_that_computes_something_else_is_refused(tmp_path):
    import onnx
    from onnx import numpy_helper

    policy = _policy("attn", seed=2)
    export_graphs(policy, None)
    key = _architecture_key(policy, "actor")
    damaged = onnx.ModelProto()
    damaged.CopyFrom(TEMPLATES.memory[key])
    for initializer in damaged.graph.initializer:  # a constant of the architecture, not a weight: kept by binding
        if initializer.name.endswith("feature_mask"):
            initializer.CopyFrom(
                numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(initializer)), initializer.name)
            )
    TEMPLATES.memory[key] = damaged
    try:
        with pytest.raises(OnnxExportError, match=r"the exported probs differs from the torch policy's by"):
            OnnxPolicy.from_policy(policy, cache_dir=None)
    finally:
        TEMPLATES.memory.pop(key)


@pytest.fixture(scope="module")
def registry(tiny_models, tmp_path_factory):
    registry = ModelRegistry(tmp_path_factory.mktemp("onnx-registry"))
    for name in ("attn0", "mlp"):
        registry.register(tiny_models[name], training_config={"name": name})
    return registry


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_service_answers_with_the_graphs_as_with_torch(registry, version):
    on_graph, on_torch = registry.load(version, inference="onnx"), registry.load(version)
    assert (on_graph.runtime, on_graph.runtime_note, on_torch.runtime) == ("onnx", None, "torch")
    for seed in range(4):
        profile = sample_profile(np.random.default_rng(seed))
        graph, torch = (optimize_weights(m, profile, 64, seed=seed) for m in (on_graph, on_torch))
        assert np.array_equal(graph.cq, torch.cq) and np.array_equal(graph.qx, torch.qx)
        assert graph.target_scores == torch.target_scores and graph.performance_metrics == torch.performance_metrics
        if version == "v1":  # the attention model predicts
            graph, torch = (predict_weights(m, profile, seed=seed) for m in (on_graph, on_torch))
            assert np.abs(graph.cq - torch.cq).max() < ATOL and np.abs(graph.qx - torch.qx).max() < ATOL
            assert abs(graph.confidence - torch.confidence) < ATOL


def test_the_service_loads_the_runtime_it_is_told_and_refuses_an_unknown_one(registry):
    registry.activate("v1")
    service = WeightService(registry)
    service.model()
    assert service.served_runtime() == "onnx"
    torch_service = WeightService(registry, inference="torch")
    torch_service.model()
    assert torch_service.served_runtime() == "torch"
    with pytest.raises(FieldError, match="inference"):
        WeightService(registry, inference="tensorrt")
    with pytest.raises(FieldError, match="FITNESS_WEIGHTS_INFERENCE"):
        ServiceSettings.from_env({"FITNESS_WEIGHTS_INFERENCE": "tensorrt"})
    with pytest.raises(FieldError, match="inference"):
        registry.load("v1", inference="tensorrt")


def test_without_onnx_runtime_the_torch_policy_answers_and_says_why(tiny_models, tmp_path):
    script = f"""
import sys
sys.modules["onnxruntime"] = None  # as on a machine where it is not installed
from pathlib import Path
from fitness_weights_api.model_format import load_policy, model_from_bytes
data = Path({str(tiny_models["mlp"])!r}).read_bytes()
model = model_from_bytes(data, max_bytes=1 << 26, env_id="FitnessWeights-v0", training_config={{}})
served = load_policy(model, inference="onnx")
print(served.runtime, "|", served.runtime_note)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    runtime, note = out.stdout.strip().split(" | ")
    assert runtime == "torch" and "onnxruntime is not installed" in note
    assert "answers with torch: onnxruntime is not installed" in out.stderr  # the log says it too


def test_served_model_without_graphs_is_torch(tiny_models):
    data = tiny_models["mlp"].read_bytes()
    served = load_policy(model_from_bytes(data, max_bytes=1 << 26, env_id="FitnessWeights-v0", training_config={}))
    assert isinstance(served, ServedModel) and served.runtime == "torch" and served.inference is None
