import inspect

import pytest
import stable_baselines3

from fitness_weights_env.errors import FieldError
from sb3_ext import PRESETS, Preset, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_make_whole_minibatches_of_whole_episodes(name):
    preset = get_preset(name)
    assert preset.rollout_size % preset.batch_size == 0
    assert set(preset.ppo_kwargs()) == {"n_steps", "batch_size", "n_epochs"}
    if name != "sb3":
        assert preset.n_steps % 64 == 0, "a rollout should end every episode (64 steps) once per env"


def test_sb3_preset_is_sb3s_ppo_defaults():
    defaults = {name: p.default for name, p in inspect.signature(stable_baselines3.PPO.__init__).parameters.items()}
    assert get_preset("sb3").ppo_kwargs() == {k: defaults[k] for k in ("n_steps", "batch_size", "n_epochs")}
    assert get_preset("sb3").n_envs == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n_envs": 0}, "n_envs"),
        ({"n_steps": 1.5}, "n_steps"),
        ({"batch_size": True}, "batch_size"),
        ({"n_epochs": -1}, "n_epochs"),
        ({"batch_size": 100}, "batch_size: must divide"),
    ],
)
def test_bad_preset_fields_are_named(fields, message):
    values = {"n_envs": 4, "n_steps": 64, "batch_size": 64, "n_epochs": 2, **fields}
    with pytest.raises(FieldError, match=f"^{message}") as raised:
        Preset(**values)
    assert raised.value.field == message.split(":")[0]


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(
        FieldError, match=r"^preset: unknown preset; choose one of \['cpu', 'gpu', 'sb3'\] \(got 'tpu'\)"
    ):
        get_preset("tpu")


def test_the_apis_preset_names_are_the_presets():
    from fitness_weights_api.schemas import PRESET_NAMES

    assert sorted(PRESET_NAMES) == sorted(PRESETS)
