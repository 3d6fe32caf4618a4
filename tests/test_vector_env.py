import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from fitness_weights_env import LAYOUT, FieldError, FitnessWeightsVectorEnv, InvalidActionError
from fitness_weights_env.vector_env import TRAINEE_ATTRIBUTES

MODES = [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED]


def _assert_same(a, b, path="info"):
    """Equal values, types and dtypes (object arrays such as ``final_obs`` element by element)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray) and a.dtype == object:
        assert a.shape == b.shape, path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x is None or y is None:
                assert x is None and y is None, f"{path}[{i}]"
            else:
                _assert_same(x, y, f"{path}[{i}]")
    else:
        np.testing.assert_array_equal(a, b, err_msg=path)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
    assert data_equivalence(a, b, exact=True), path


def _sync(n, mode, **kwargs):
    """The reference: Gymnasium's SyncVectorEnv over n single envs."""
    return SyncVectorEnv([lambda: gym.make("FitnessWeights-v0", **kwargs) for _ in range(n)], autoreset_mode=mode)


def _reset_both(ours, reference, path, seed=None, **options):
    # SyncVectorEnv pops "reset_mask" from the options it is given: each env gets its own dict
    copy = {key: value.copy() if isinstance(value, np.ndarray) else value for key, value in options.items()}
    _assert_same(ours.reset(seed=seed, options=options or None), reference.reset(seed=seed, options=copy or None), path)
    if "reset_mask" in options:
        assert "reset_mask" in options  # ours leaves the caller's options alone


# --- equivalence with N single envs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"adjustment": "random"}, {"init": "prior"}])
def test_vector_env_equals_n_single_envs(kwargs):
    n, steps = 5, 140  # crosses two autoresets
    ours = FitnessWeightsVectorEnv(n, info_matrices="every_step", **kwargs)
    reference = _sync(n, AutoresetMode.SAME_STEP, **kwargs)
    obs_a, info_a = ours.reset(seed=10)
    obs_b, info_b = reference.reset(seed=10)
    np.testing.assert_array_equal(obs_a, obs_b)
    _assert_same(info_a, info_b)
    actions = np.random.default_rng(0).integers(0, 685, (steps, n))
    for t in range(steps):
        result_a, result_b = ours.step(actions[t]), reference.step(actions[t])
        _assert_same(result_a, result_b, f"step {t}")
        assert result_a[3].any() == ((t + 1) % 64 == 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kwargs", [{}, {"adjustment": "random", "init": "prior"}])
def test_each_autoreset_mode_equals_sync_vector_env(mode, kwargs, profile):
    """Staggered episodes (a partial reset at step 3), so some trainees restart while the others step."""
    n, horizon = 4, 7
    ours = gym.make_vec(
        "FitnessWeights-v0",
        num_envs=n,
        autoreset_mode=mode,
        max_episode_steps=horizon,
        info_matrices="every_step",
        **kwargs,
    )
    assert isinstance(ours, FitnessWeightsVectorEnv)
    reference = _sync(n, mode, max_episode_steps=horizon, **kwargs)
    assert ours.metadata["autoreset_mode"] is reference.metadata["autoreset_mode"] is mode
    assert ours.autoreset_mode is mode
    _reset_both(ours, reference, "reset", seed=3)
    rng = np.random.default_rng(1)
    done = np.zeros(n, dtype=bool)
    n_episodes = partial_restarts = 0
    for t in range(40):
        if t == 3:
            mask = np.array([False, True, False, True])
            _reset_both(ours, reference, "partial reset", seed=100, reset_mask=mask, profile=profile)
        if mode == AutoresetMode.DISABLED and done.any():
            _reset_both(ours, reference, f"reset after step {t - 1}", reset_mask=done)
        elif mode == AutoresetMode.NEXT_STEP and 0 < done.sum() < n:
            partial_restarts += 1
        actions = rng.integers(0, 685, n)
        result_a, result_b = ours.step(actions), reference.step(actions)
        _assert_same(result_a, result_b, f"step {t}")
        if mode == AutoresetMode.NEXT_STEP:  # the restart step: reward 0, not done
            assert not result_a[1][done].any() and not result_a[3][done].any()
        done = result_a[2] | result_a[3]
        n_episodes += int(done.sum())
    assert n_episodes >= 2 * n
    if mode == AutoresetMode.NEXT_STEP:
        assert partial_restarts > 0


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_final_matrices_are_in_the_last_steps_info(mode):
    n, horizon = 3, 5
    lean = FitnessWeightsVectorEnv(n, autoreset_mode=mode, max_episode_steps=horizon)
    reference = _sync(n, mode, max_episode_steps=horizon)
    lean.reset(seed=2), reference.reset(seed=2)
    actions = np.random.default_rng(3).integers(0, 685, (20, n))
    finished = 0
    matrices = {"cq_matrix", "_cq_matrix", "qx_matrix", "_qx_matrix"}
    for t, action in enumerate(actions):
        if t == 2:  # trainee 0 restarts: it finishes apart from the others
            lean.reset(seed=9, options={"reset_mask": np.array([True, False, False])})
            reference.reset(seed=9, options={"reset_mask": np.array([True, False, False])})
        *result_a, info_a = lean.step(action)
        *result_b, info_b = reference.step(action)
        _assert_same(tuple(result_a), tuple(result_b), f"step {t}")
        done = result_a[2] | result_a[3]
        _assert_same({k: info_a[k] for k in info_a.keys() - matrices}, {k: info_b[k] for k in info_b.keys() - matrices})
        if done.any():
            finished += 1
            for key in ("cq_matrix", "qx_matrix"):
                np.testing.assert_array_equal(info_a[f"_{key}"], done)
                np.testing.assert_array_equal(info_a[key][done], info_b[key][done])
                assert not info_a[key][~done].any()
            if mode == AutoresetMode.DISABLED:
                lean.reset(options={"reset_mask": done})
                reference.reset(options={"reset_mask": done.copy()})
        else:
            assert "cq_matrix" not in info_a and "cq_matrix" in info_b
    assert finished >= 5


def test_final_matrices_only_by_default():
    full = FitnessWeightsVectorEnv(3, info_matrices="every_step")
    lean = FitnessWeightsVectorEnv(3)
    full.reset(seed=1)
    _, info = lean.reset(seed=1)
    assert "cq_matrix" in info
    for t in range(64):
        *_, truncated, info_full = full.step(np.full(3, t))
        *_, info_lean = lean.step(np.full(3, t))
        if truncated.any():
            _assert_same(info_lean["final_info"], info_full["final_info"])
            assert "cq_matrix" not in info_lean
        else:
            assert "cq_matrix" not in info_lean and "cq_matrix" in info_full
            np.testing.assert_array_equal(info_lean["target_scores"], info_full["target_scores"])
            np.testing.assert_array_equal(lean.state.cq, full.state.cq)


def test_make_vec_uses_the_vector_entry_point():
    envs = gym.make_vec("FitnessWeights-v0", num_envs=4, step_size=0.1)
    assert isinstance(envs, FitnessWeightsVectorEnv)
    assert envs.max_episode_steps == 64 and envs.config.step_size == 0.1
    assert envs.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP  # the default, which SB3 needs
    assert FitnessWeightsVectorEnv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (4, 198) and envs.observation_space.contains(obs)
    assert envs.action_space.shape == (4,)
    for _ in range(70):
        obs, *_ = envs.step(envs.action_space.sample())
        assert envs.observation_space.contains(obs)
    assert gym.make_vec("FitnessWeights-v0", num_envs=2, autoreset_mode="NextStep").autoreset_mode is (
        AutoresetMode.NEXT_STEP
    )


# --- reset_mask ---------------------------------------------------------------------------------------------------


def test_reset_mask_restarts_only_the_masked_trainees(profile):
    n = 4
    envs, twin = FitnessWeightsVectorEnv(n), FitnessWeightsVectorEnv(n)
    envs.reset(seed=0), twin.reset(seed=0)
    actions = np.random.default_rng(5).integers(0, 685, (30, n))
    for action in actions[:10]:
        envs.step(action), twin.step(action)
    mask = np.array([False, True, True, False])
    options = {"reset_mask": mask, "profiles": [None, profile, None, profile]}
    obs, info = envs.reset(seed=[None, 21, 22, 23], options=options)
    assert options["reset_mask"] is mask and mask.tolist() == [False, True, True, False]  # not consumed
    np.testing.assert_array_equal(obs[~mask], twin.state.observation[~mask])  # the others keep theirs
    assert envs.state.target_mask[1].nonzero()[0].tolist() == list(profile.targets)  # profiles[1]
    single = gym.make("FitnessWeights-v0")
    np.testing.assert_array_equal(obs[2], single.reset(seed=22)[0])  # seed[2]; seed[3], profiles[3] are ignored
    for key in ("cq_matrix", "mean_target_score", "target_scores"):  # the info of the masked trainees only
        np.testing.assert_array_equal(info[f"_{key}"], mask)
        assert not info[key][~mask].any() and info[key][mask].any()
    for t, action in enumerate(actions[10:]):
        result, expected = envs.step(action), twin.step(action)
        for name, k in (("obs", 0), ("reward", 1), ("truncated", 3)):
            np.testing.assert_array_equal(result[k][~mask], expected[k][~mask], err_msg=f"step {t}: {name}")
        np.testing.assert_array_equal(result[3], [False] * n)


def test_reset_seeds_and_generators():
    envs = FitnessWeightsVectorEnv(3, adjustment="random")
    assert len(set(envs.np_random_seed)) == 3  # random seeds before any reset, as gym.Env
    envs.reset(seed=7)
    assert envs.np_random_seed == envs.get_attr("np_random_seed") == (7, 8, 9)
    state = envs.np_random[1].bit_generator.state
    envs.reset(seed=[None, None, 40])  # None keeps the generator: trainee 1 continues its stream
    assert envs.np_random_seed == (7, 8, 40)
    assert envs.np_random[1].bit_generator.state != state
    first, _ = envs.reset(seed=7, options={"reset_mask": np.array([True, False, True])})
    assert envs.np_random_seed == (7, 8, 9)
    expected, _ = FitnessWeightsVectorEnv(3, adjustment="random").reset(seed=7)
    np.testing.assert_array_equal(first[[0, 2]], expected[[0, 2]])


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        ([True, False, True], r"options\['reset_mask'\]: must be a numpy array"),
        (np.array([True, False]), r"options\['reset_mask'\]: must have shape \(3,\)"),
        (np.array([[True, False, True]]), r"options\['reset_mask'\]: must have shape \(3,\)"),
        (np.array([1, 0, 1]), r"options\['reset_mask'\]: must have dtype bool"),
        (np.zeros(3, dtype=bool), r"options\['reset_mask'\]: must select at least one trainee"),
    ],
)
def test_bad_reset_mask_raises_and_changes_nothing(mask, message):
    envs = FitnessWeightsVectorEnv(3)
    obs, _ = envs.reset(seed=0)
    with pytest.raises(FieldError, match=message) as error:
        envs.reset(seed=5, options={"reset_mask": mask})
    assert error.value.field == "options['reset_mask']"
    np.testing.assert_array_equal(envs.state.observation, obs)
    assert envs.np_random_seed == (0, 1, 2)


def test_reset_with_profiles_and_seed_lists(profile):
    envs = FitnessWeightsVectorEnv(3)
    obs, _ = envs.reset(seed=[5, 6, 7], options={"profiles": [None, profile, profile.to_dict()]})
    single = gym.make("FitnessWeights-v0")
    expected, _ = single.reset(seed=5)
    np.testing.assert_array_equal(obs[0], expected)
    assert envs.state.target_mask[1].nonzero()[0].tolist() == list(profile.targets)
    obs, _ = envs.reset(seed=1, options={"profile": profile})  # the single env's option: every trainee
    trainee = slice(0, LAYOUT.metrics.start)  # all but the metrics, which depend on the initial matrices
    np.testing.assert_array_equal(obs[:, trainee], np.repeat(obs[:1, trainee], 3, axis=0))
    with pytest.raises(FieldError, match="num_envs=3"):
        envs.reset(options={"profiles": [profile]})
    with pytest.raises(FieldError, match="num_envs=3"):
        envs.reset(seed=[1, 2])
    for seed in ([1, -2, 3], [1, 2.5, 3], "123"):
        with pytest.raises(FieldError, match=r"^seed: "):
            envs.reset(seed=seed)
    with pytest.raises(FieldError, match=r"'profile' .* or 'profiles', not both"):
        envs.reset(options={"profile": profile, "profiles": [None] * 3})
    with pytest.raises(FieldError, match="unknown reset option"):
        envs.reset(options={"reset_masks": np.ones(3, dtype=bool)})
    with pytest.raises(FieldError, match=r"^gender:"):
        envs.reset(options={"profiles": [None, None, {**profile.to_dict(), "gender": "x"}]})


def test_step_needs_every_trainee_reset():
    envs = FitnessWeightsVectorEnv(3)
    envs.reset(seed=0, options={"reset_mask": np.array([True, False, True])})
    with pytest.raises(gym.error.ResetNeeded, match=r"trainees \[1\] were never reset"):
        envs.step([0, 0, 0])
    with pytest.raises(gym.error.ResetNeeded):
        envs.get_attr("profile")
    envs.reset(options={"reset_mask": np.array([False, True, False])})
    envs.step([0, 0, 0])


# --- autoreset modes ----------------------------------------------------------------------------------------------


def test_disabled_step_after_done_needs_a_reset():
    envs = FitnessWeightsVectorEnv(3, autoreset_mode=AutoresetMode.DISABLED, max_episode_steps=2)
    envs.reset(seed=0)
    envs.reset(options={"reset_mask": np.array([False, True, False])})
    envs.step([1, 2, 3])
    *_, truncated, _ = envs.step([1, 2, 3])
    assert truncated.tolist() == [True, True, True]
    before = envs.state.observation.copy()
    with pytest.raises(gym.error.ResetNeeded, match=r"trainees \[0, 1, 2\] .*DISABLED.*reset_mask"):
        envs.step([1, 2, 3])
    np.testing.assert_array_equal(envs.state.observation, before)  # nothing stepped
    envs.reset(options={"reset_mask": np.array([True, False, True])})
    with pytest.raises(gym.error.ResetNeeded, match=r"trainees \[1\]"):
        envs.step([1, 2, 3])
    envs.reset(options={"reset_mask": np.array([False, True, False])})
    _, rewards, _, truncated, _ = envs.step([1, 2, 3])
    assert not truncated.any() and (rewards != 0).all()


def test_next_step_restart_ignores_the_action():
    envs = FitnessWeightsVectorEnv(2, autoreset_mode=AutoresetMode.NEXT_STEP, max_episode_steps=3)
    envs.reset(seed=4)
    for _ in range(3):
        last_obs, *_, truncated, _ = envs.step([0, 500])
    assert truncated.all()
    restart_a = envs.step([0, 500])
    twin = FitnessWeightsVectorEnv(2, autoreset_mode=AutoresetMode.NEXT_STEP, max_episode_steps=3)
    twin.reset(seed=4)
    for _ in range(3):
        twin.step([0, 500])
    restart_b = twin.step([684, 1])  # other actions, same restart
    _assert_same(restart_a, restart_b, "restart step")
    obs, rewards, terminated, truncated, _ = restart_a
    assert not np.array_equal(obs, last_obs) and not rewards.any() and not (terminated | truncated).any()
    assert rewards.dtype == np.float64


@pytest.mark.parametrize("mode", ["sometimes", "next_step", 3, None, ["NextStep"]])
def test_unknown_autoreset_mode_raises(mode):
    with pytest.raises(FieldError, match=r"autoreset_mode: must be one of AutoresetMode\.NEXT_STEP") as error:
        FitnessWeightsVectorEnv(2, autoreset_mode=mode)
    assert error.value.field == "autoreset_mode"
    with pytest.raises(FieldError, match="autoreset_mode"):
        gym.make_vec("FitnessWeights-v0", num_envs=2, autoreset_mode=mode)


# --- call, get_attr, set_attr -------------------------------------------------------------------------------------


def test_per_trainee_attributes_equal_sync_vector_env():
    n = 3
    ours = FitnessWeightsVectorEnv(n, render_mode="ansi", autoreset_mode=AutoresetMode.NEXT_STEP)
    reference = SyncVectorEnv(
        [lambda: gym.make("FitnessWeights-v0", render_mode="ansi") for _ in range(n)],
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    ours.reset(seed=12), reference.reset(seed=12)
    for action in np.random.default_rng(0).integers(0, 685, (5, n)):
        ours.step(action), reference.step(action)
    for name in ("profile", "np_random_seed", "observation_space", "action_space", "render"):
        values = ours.get_attr(name)
        assert isinstance(values, tuple) and len(values) == n, name
        assert values == reference.get_attr(name), name
        assert ours.call(name) == reference.call(name), name
    profiles = ours.get_attr("profile")
    assert len({p.to_vector().tobytes() for p in profiles}) == n  # one trainee each
    states = [g.bit_generator.state for g in ours.get_attr("np_random")]
    assert states == [g.bit_generator.state for g in reference.get_attr("np_random")]
    assert ours.np_random_seed == reference.np_random_seed == (12, 13, 14)
    assert set(TRAINEE_ATTRIBUTES) == {"profile", "np_random", "np_random_seed", "observation_space"} | {
        "action_space",
        "render",
    }


def test_set_np_random_per_trainee_equals_sync_vector_env():
    n, kwargs = 3, {"adjustment": "random", "max_episode_steps": 4}
    ours = FitnessWeightsVectorEnv(n, autoreset_mode=AutoresetMode.NEXT_STEP, info_matrices="every_step", **kwargs)
    reference = _sync(n, AutoresetMode.NEXT_STEP, **kwargs)
    ours.set_attr("np_random", [np.random.default_rng(50 + i) for i in range(n)])
    reference.set_attr("np_random", [np.random.default_rng(50 + i) for i in range(n)])
    assert ours.get_attr("np_random_seed") == reference.get_attr("np_random_seed") == (-1, -1, -1)
    _reset_both(ours, reference, "reset")
    for t, action in enumerate(np.random.default_rng(1).integers(0, 685, (12, n))):
        _assert_same(ours.step(action), reference.step(action), f"step {t}")
    with pytest.raises(FieldError, match="np_random takes numpy Generators"):
        ours.set_attr("np_random", [np.random.default_rng(0), 1, None])


def test_env_level_attributes():
    n = 3
    envs = FitnessWeightsVectorEnv(n)
    assert envs.get_attr("max_episode_steps") == (64, 64, 64)
    config = envs.get_attr("config")
    assert len(config) == n and all(c is envs.config for c in config)  # one object, shared
    envs.set_attr("max_episode_steps", 2)
    envs.set_attr("info_matrices", ["every_step"] * n)
    assert envs.max_episode_steps == 2 and envs.info_matrices == "every_step"
    envs.reset(seed=0)
    *_, truncated, info = envs.step([0, 1, 2])
    assert not truncated.any() and "cq_matrix" in info
    assert envs.step([0, 1, 2])[3].all()
    envs.set_attr("note", "cohort A")
    assert envs.get_attr("note") == ("cohort A",) * n


def test_call_runs_an_env_level_method_once():
    envs, twin = FitnessWeightsVectorEnv(2), FitnessWeightsVectorEnv(2)
    results = envs.call("reset", seed=3)
    assert len(results) == 2 and results[0] is results[1]
    _assert_same(results[0], twin.reset(seed=3), "reset")
    results = envs.call("step", np.array([4, 600]))
    _assert_same(results[1], twin.step(np.array([4, 600])), "one step, not two")


@pytest.mark.parametrize(
    ("name", "values", "error", "message"),
    [
        ("num_envs", 5, AttributeError, "'num_envs' .* cannot be set"),
        ("state", None, AttributeError, "'state' .* cannot be set"),
        ("config", None, AttributeError, "'config' .* cannot be set"),
        ("profile", None, AttributeError, "'profile' .* cannot be set"),
        ("np_random_seed", 3, AttributeError, "'np_random_seed' .* cannot be set"),
        ("_elapsed_steps", 0, AttributeError, "'_elapsed_steps' .* cannot be set"),
        ("max_episode_steps", [2, 3, 2], FieldError, "values: 'max_episode_steps' is one value for all trainees"),
        ("max_episode_steps", [2, 2], FieldError, "values: must be one value or a list of num_envs=3 values"),
        ("max_episode_steps", 0, FieldError, "max_episode_steps: must be a positive integer"),
        ("info_matrices", "never", FieldError, "info_matrices: must be 'final' or 'every_step'"),
    ],
)
def test_set_attr_refuses_bad_names_and_values(name, values, error, message):
    envs = FitnessWeightsVectorEnv(3)
    with pytest.raises(error, match=message):
        envs.set_attr(name, values)
    assert envs.num_envs == 3 and envs.max_episode_steps == 64 and envs.info_matrices == "final"


def test_get_attr_of_an_unknown_name_raises():
    with pytest.raises(AttributeError, match="has no attribute 'nothing_here'"):
        FitnessWeightsVectorEnv(2).get_attr("nothing_here")
    with pytest.raises(AttributeError, match="'nothing_here'"):
        FitnessWeightsVectorEnv(2).call("nothing_here", 1)


# --- the checks of gymnasium.utils.env_checker, for a vector env ----------------------------------------------------
# Gymnasium 1.x has no vector env checker; these are check_env's checks, batched.


@pytest.mark.parametrize("mode", MODES)
def test_vector_env_checks(mode):
    n = 3

    def make():
        return FitnessWeightsVectorEnv(n, autoreset_mode=mode, max_episode_steps=4, adjustment="random")

    envs = make()
    assert isinstance(envs.metadata["autoreset_mode"], AutoresetMode)
    assert envs.single_observation_space.shape == (198,) and envs.observation_space.shape == (n, 198)
    # reset: seed determinism, observations in the space, data not reused
    obs_1, info_1 = envs.reset(seed=123)
    obs_2, info_2 = envs.reset(seed=123)
    assert data_equivalence((obs_1, info_1), (obs_2, info_2), exact=True)
    assert not np.array_equal(envs.reset(seed=124)[0], obs_1)
    assert envs.observation_space.contains(obs_1) and obs_1.dtype == np.float32
    assert not np.shares_memory(obs_1, obs_2)
    # step: same seed and actions, same results; types, shapes and dtypes; returned data not reused
    other = make()
    envs.reset(seed=5), other.reset(seed=5)
    envs.action_space.seed(0)
    previous = None
    for t in range(10):
        if mode == AutoresetMode.DISABLED and previous is not None and (previous[2] | previous[3]).any():
            done = previous[2] | previous[3]
            assert data_equivalence(
                envs.reset(options={"reset_mask": done}), other.reset(options={"reset_mask": done}), exact=True
            )
        actions = envs.action_space.sample()
        result = envs.step(actions)
        assert data_equivalence(result, other.step(actions), exact=True), f"step {t}"
        obs, rewards, terminated, truncated, info = result
        assert envs.observation_space.contains(obs)
        assert rewards.shape == (n,) and rewards.dtype == np.float64
        assert terminated.shape == truncated.shape == (n,) and terminated.dtype == truncated.dtype == np.bool_
        assert isinstance(info, dict) and all(info[f"_{key}"].dtype == np.bool_ for key in info if key[0] != "_")
        assert not np.shares_memory(obs, envs.state.observation)
        if previous is not None:
            assert not np.shares_memory(obs, previous[0])
        previous = result
    # bad options
    with pytest.raises(FieldError, match="options: must be a dict"):
        envs.reset(options=[1])


@pytest.mark.parametrize(
    "actions", [np.array([0, 1]), np.array([0.0, 1.0, 2.0]), np.array([0, 1, 685]), [[0, 1, 2]], 3]
)
def test_invalid_actions_raise(actions):
    envs = FitnessWeightsVectorEnv(3)
    envs.reset(seed=0)
    with pytest.raises(InvalidActionError):
        envs.step(actions)
    envs.step([0, 1, 2])


def test_invalid_arguments_and_order():
    with pytest.raises(FieldError, match="num_envs"):
        FitnessWeightsVectorEnv(0)
    with pytest.raises(FieldError, match="info_matrices"):
        FitnessWeightsVectorEnv(2, info_matrices="sometimes")
    with pytest.raises(gym.error.ResetNeeded):
        FitnessWeightsVectorEnv(2).step([0, 0])
    with pytest.raises(gym.error.ResetNeeded):
        FitnessWeightsVectorEnv(2, render_mode="ansi").render()


def test_render_returns_one_summary_per_trainee():
    envs = FitnessWeightsVectorEnv(2, render_mode="ansi")
    envs.reset(seed=0)
    texts = envs.render()
    assert len(texts) == 2 and all("Top exercises per quality" in t for t in texts)
    assert envs.call("render") == texts
    with pytest.warns(UserWarning, match="without a render_mode"):
        assert FitnessWeightsVectorEnv(2).call("render") == (None, None)
