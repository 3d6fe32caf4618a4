import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize

from fitness_weights_env import LAYOUT, FitnessWeightsVectorEnv, InvalidActionError
from sb3_ext import PPO, FitnessWeightsVecEnv, GymnasiumVecEnv, make_vec_env
from sb3_ext.vec_env import _importable_id

SMALL = {"embed_dim": 16, "n_heads": 2, "n_latents": 2}


def _assert_same(a, b, path):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            _assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{path}[{i}]")
    else:
        np.testing.assert_array_equal(a, b, err_msg=path)
        assert np.asarray(a).dtype == np.asarray(b).dtype, path


def _assert_same_episode(a, b, path):
    assert a["l"] == b["l"], path
    np.testing.assert_allclose(a["r"], b["r"], rtol=1e-5, err_msg=path)  # Monitor rounds, VecMonitor sums float32


def _assert_same_step(ours, reference, t, running_lacks=frozenset(), reward_rtol=0.0):
    """One step of both VecEnvs; infos of running envs may lack ``running_lacks`` in ``ours`` only."""
    (obs_a, rew_a, done_a, infos_a), (obs_b, rew_b, done_b, infos_b) = ours, reference
    _assert_same(obs_a, obs_b, f"step {t} obs")
    if reward_rtol:  # SB3's SubprocVecEnv returns float64 rewards, its DummyVecEnv float32
        np.testing.assert_allclose(rew_a, rew_b, rtol=reward_rtol, err_msg=f"step {t} rewards")
    else:
        _assert_same(rew_a, rew_b, f"step {t} rewards")
    _assert_same(done_a, done_b, f"step {t} dones")
    for i, (info_a, info_b) in enumerate(zip(infos_a, infos_b, strict=True)):
        info_a, info_b = dict(info_a), dict(info_b)
        if "episode" in info_a or "episode" in info_b:
            _assert_same_episode(info_a.pop("episode"), info_b.pop("episode"), f"step {t} env {i}")
        if not done_a[i]:
            info_b = {key: value for key, value in info_b.items() if key in info_a or key not in running_lacks}
        _assert_same(info_a, info_b, f"step {t} infos[{i}]")


def _run_both(ours, reference, actions, running_lacks=frozenset()):
    """Step both VecEnvs with ``actions`` (steps, n); return the number of terminated and truncated episodes."""
    n_terminated = n_truncated = 0
    for t, action in enumerate(actions):
        result_a, result_b = ours.step(action), reference.step(action)
        _assert_same_step(result_a, result_b, t, running_lacks)
        _assert_same(ours.unwrapped.reset_infos, reference.unwrapped.reset_infos, f"step {t} reset_infos")
        for i in np.flatnonzero(result_a[2]):
            if result_a[3][i]["TimeLimit.truncated"]:
                n_truncated += 1
            else:
                n_terminated += 1
    return n_terminated, n_truncated


# --- FitnessWeights: the batched VecEnv is DummyVecEnv over single envs --------------------------------------------


@pytest.mark.parametrize(
    ("batched_kwargs", "single_kwargs"),
    [({}, {}), ({"adjustment": "random", "init": "prior"}, {"adjustment": "random", "init": "prior"})],
)
def test_batched_vec_env_equals_dummy_vec_env(batched_kwargs, single_kwargs):
    n = 3
    ours = make_vec_env("FitnessWeights-v0", n_envs=n, seed=11, env_kwargs=batched_kwargs)
    reference = sb3_make_vec_env("FitnessWeights-v0", n_envs=n, seed=11, env_kwargs=single_kwargs)
    assert isinstance(ours, VecMonitor) and isinstance(ours.venv, FitnessWeightsVecEnv)
    _assert_same(ours.reset(), reference.reset(), "reset obs")
    _assert_same(ours.unwrapped.reset_infos, reference.reset_infos, "reset_infos")
    rng = np.random.default_rng(0)
    lacks = {"cq_matrix", "qx_matrix"}  # info_matrices="final": only finished trainees carry them
    assert _run_both(ours, reference, rng.integers(0, 685, (140, n)), lacks) == (0, 2 * n)  # crosses two autoresets

    assert ours.seed(123) == reference.seed(123) == [123, 124, 125]
    obs = ours.reset()
    _assert_same(obs, reference.reset(), "obs after seed(123)")
    _assert_same(ours.unwrapped.reset_infos, reference.reset_infos, "reset_infos after seed(123)")
    np.testing.assert_array_equal(obs, FitnessWeightsVectorEnv(n, **batched_kwargs).reset(seed=123)[0])
    assert _run_both(ours, reference, rng.integers(0, 685, (70, n)), lacks) == (0, n)
    assert not np.array_equal(ours.reset(), obs)  # seeds are used once: the next reset draws new trainees


def test_batched_vec_env_with_matrices_every_step_equals_dummy_vec_env():
    ours = FitnessWeightsVecEnv(gym.make_vec("FitnessWeights-v0", num_envs=2, info_matrices="every_step"))
    reference = DummyVecEnv([lambda: gym.make("FitnessWeights-v0") for _ in range(2)])
    ours.seed(4), reference.seed(4)
    _assert_same(ours.reset(), reference.reset(), "reset obs")
    assert _run_both(ours, reference, np.random.default_rng(1).integers(0, 685, (70, 2))) == (0, 2)


def test_batched_reset_options_are_the_single_env_options(profile):
    ours = FitnessWeightsVecEnv(gym.make_vec("FitnessWeights-v0", num_envs=3))
    reference = DummyVecEnv([lambda: gym.make("FitnessWeights-v0") for _ in range(3)])
    options = [{"profile": profile}, {}, {"profile": profile.to_dict()}]
    for env in (ours, reference):
        env.seed(0)
        env.set_options(options)
    obs = ours.reset()
    _assert_same(obs, reference.reset(), "reset obs")
    assert ours.trainees.state.target_mask[0].nonzero()[0].tolist() == list(profile.targets)
    for env in (ours, reference):
        env.seed(0)
        env.set_options({"profile": profile})  # one dict: every env
    _assert_same(ours.reset(), reference.reset(), "reset obs")
    np.testing.assert_array_equal(ours.trainees.state.target_mask, np.repeat(obs[:1, LAYOUT.targets], 3, axis=0))
    ours.set_options({"profil": profile})
    with pytest.raises(ValueError, match="unknown reset option"):
        ours.reset()


# --- The generic adapter on Gymnasium's CartPole --------------------------------------------------------------------


class DictObservation(gym.ObservationWrapper):
    """CartPole with a Dict observation (to check Dict support)."""

    def __init__(self, env):
        super().__init__(env)
        box = env.observation_space
        self.observation_space = spaces.Dict({"state": box, "sign": spaces.MultiBinary(4)})

    def observation(self, observation):
        return {"state": observation, "sign": (observation > 0).astype(np.int8)}


def _cartpole(dict_obs=False):
    env = gym.make("CartPole-v1", max_episode_steps=30)  # random actions: some episodes terminate, some truncate
    return DictObservation(env) if dict_obs else env


@pytest.mark.parametrize("dict_obs", [False, True])
@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_adapter_on_sync_vector_env_equals_dummy_vec_env(mode, dict_obs):
    n = 4
    ours = GymnasiumVecEnv(SyncVectorEnv([lambda: _cartpole(dict_obs) for _ in range(n)], autoreset_mode=mode))
    reference = DummyVecEnv([lambda: _cartpole(dict_obs) for _ in range(n)])
    assert ours.observation_space == reference.observation_space and ours.action_space == reference.action_space
    ours.seed(7), reference.seed(7)
    _assert_same(ours.reset(), reference.reset(), "reset obs")
    n_terminated, n_truncated = _run_both(ours, reference, np.random.default_rng(2).integers(0, 2, (120, n)))
    assert n_terminated >= 5 and n_truncated >= 1  # both kinds of episode end were compared

    ours.seed(99), reference.seed(99)
    ours.set_options({"low": -0.2, "high": 0.2}), reference.set_options({"low": -0.2, "high": 0.2})
    obs = ours.reset()
    _assert_same(obs, reference.reset(), "reset obs with options")
    state = obs["state"] if dict_obs else obs
    assert np.abs(state).max() > 0.05  # the options were used
    _run_both(ours, reference, np.random.default_rng(3).integers(0, 2, (40, n)))


def test_adapter_on_async_vector_env_equals_dummy_vec_env():
    async_env = AsyncVectorEnv([_cartpole, _cartpole], context="fork")  # NEXT_STEP, shared memory
    ours, reference = GymnasiumVecEnv(async_env), DummyVecEnv([_cartpole, _cartpole])
    try:
        ours.seed(5), reference.seed(5)
        _assert_same(ours.reset(), reference.reset(), "reset obs")
        n_terminated, _ = _run_both(ours, reference, np.random.default_rng(4).integers(0, 2, (60, 2)))
        assert n_terminated >= 2
    finally:
        ours.close()
    without_shared_memory = AsyncVectorEnv([_cartpole, _cartpole], shared_memory=False, context="fork")
    try:  # Gymnasium 1.4's partial reset leaves these workers' autoreset flag set: not same-step
        with pytest.raises(ValueError, match=r"AsyncVectorEnv autoresets with AutoresetMode\.NEXT_STEP"):
            GymnasiumVecEnv(without_shared_memory)
    finally:
        without_shared_memory.close()


def test_native_cartpole_vector_env_cannot_autoreset_in_the_same_step():
    with pytest.raises(
        ValueError, match=r"CartPoleVectorEnv autoresets with AutoresetMode.NEXT_STEP .* partial resets"
    ):
        GymnasiumVecEnv(gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="vector_entry_point"))
    with pytest.raises(ValueError, match="partial resets"):
        make_vec_env("CartPole-v1", n_envs=4, vectorization="batched")
    forced = GymnasiumVecEnv(
        gym.make_vec("CartPole-v1", num_envs=4, vectorization_mode="vector_entry_point"), partial_reset=True
    )
    forced.seed(0)
    forced.reset()
    with pytest.raises(RuntimeError, match="does not support partial resets"):  # it resets every sub-env
        for _ in range(100):
            forced.step(np.ones(4, dtype=np.int64))


def test_adapter_rejects_what_it_cannot_adapt():
    with pytest.raises(TypeError, match="DummyVecEnv"):
        GymnasiumVecEnv(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="single_observation_space"):
        GymnasiumVecEnv(SyncVectorEnv([lambda: gym.make("Blackjack-v1")], autoreset_mode=AutoresetMode.SAME_STEP))
    with pytest.raises(TypeError, match="FitnessWeightsVectorEnv"):
        FitnessWeightsVecEnv(SyncVectorEnv([lambda: gym.make("CartPole-v1")]))
    envs = GymnasiumVecEnv(SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(2)]))
    envs.set_options({"low": -0.3, "high": 0.3})
    with pytest.raises(ValueError, match="options"):
        envs.set_options([{"low": -0.1}, {"low": -0.2}])
    assert envs._vector_options(envs._options) == {"low": -0.3, "high": 0.3}  # the rejected options were dropped
    with pytest.raises(ValueError, match="num_envs=2"):
        envs.set_options([{}])
    with pytest.raises(RuntimeError, match="step_async"):
        envs.step_wait()


# --- VecEnv API: sub-env attributes ---------------------------------------------------------------------------------


class Tagged(gym.Wrapper):
    """A wrapper with an attribute and methods, to tell sub-envs apart."""

    def __init__(self, env, tag):
        super().__init__(env)
        self.tag = tag

    def scaled(self, x, offset=0):
        return x * self.tag + offset

    def fail(self):
        raise RuntimeError(f"sub-env {self.tag} failed")


class MyMonitor(Monitor):
    """A Monitor subclass (env_is_wrapped(Monitor) must see it)."""


def _tagged_fns():
    return [
        lambda: Tagged(gym.make("CartPole-v1"), 1),
        lambda: Monitor(Tagged(gym.make("CartPole-v1"), 2)),
        lambda: Tagged(MyMonitor(gym.make("CartPole-v1")), 3),
    ]


def _vector_env(kind, env_fns):
    return SyncVectorEnv(env_fns) if kind == "sync" else AsyncVectorEnv(env_fns, context="fork")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sub_env_attributes_are_those_of_dummy_vec_env(kind):
    ours, reference = GymnasiumVecEnv(_vector_env(kind, _tagged_fns())), DummyVecEnv(_tagged_fns())
    try:
        for envs in (ours, reference):
            assert envs.get_attr("tag") == [1, 2, 3]
            assert envs.get_attr("tag", indices=[-1, 0]) == [3, 1]
            assert envs.get_attr("gravity", indices=[0]) == [9.8]  # the base env's, through the wrappers
            assert envs.has_attr("tag") and not envs.has_attr("no_such_attribute")
            assert envs.env_method("scaled", 2, indices=[0, 2], offset=1) == [3, 7]
            envs.set_attr("tag", 7, indices=[1])
            assert envs.get_attr("tag") == [1, 7, 3]
            envs.set_attr("new_attribute", "x")  # created on the outermost wrapper
            assert envs.get_attr("new_attribute") == ["x"] * 3
            assert envs.env_is_wrapped(Monitor) == [False, True, True]  # MyMonitor is a Monitor
            assert envs.env_is_wrapped(MyMonitor) == [False, False, True]
            assert envs.env_is_wrapped(Tagged, indices=-1) == [True]
            assert envs.env_method("set_wrapper_attr", "tag", 5, indices=[0, 2]) == [True, True]
            assert envs.get_attr("tag") == [5, 7, 5]
        with pytest.raises(AttributeError, match="no_such_attribute"):
            ours.get_attr("no_such_attribute")
        for bad in ([3], [-4], [True], ["0"]):
            with pytest.raises(IndexError, match="indices"):
                ours.get_attr("tag", indices=bad)
        assert ours.get_attr("tag", indices=[]) == []
        assert ours.get_attr("tag", indices=np.int64(1)) == ours.get_attr("tag", indices=[np.int64(1)]) == [7]
        ours.seed(0)
        ours.reset()
        assert ours.step(np.zeros(3, dtype=np.int64))[0].shape == (3, 4)  # the sub-envs still step
    finally:
        ours.close()


@pytest.mark.filterwarnings("ignore:.*ERROR:")  # Gymnasium logs the worker's error as it shuts the worker down
def test_async_sub_env_calls_keep_the_workers_alive_until_a_call_fails():
    envs = GymnasiumVecEnv(AsyncVectorEnv(_tagged_fns(), context="fork"))
    try:
        with pytest.raises(AttributeError, match=r"sub-envs \[0, 1, 2\] .* 'no_such_method'"):
            envs.env_method("no_such_method")
        assert envs.get_attr("tag", indices=[1, 1, 0, 1]) == [2, 2, 1, 2]  # the same worker asked again
        for name in ("reset", "step", "close"):
            with pytest.raises(ValueError, match="do not take"):
                envs.env_method(name)
        envs.reset()
        with pytest.raises(RuntimeError, match="sub-env 2 failed"):
            envs.env_method("fail", indices=1)  # raised in the worker, which shuts down
        assert envs.get_attr("tag", indices=[0, 2]) == [1, 3]
        with pytest.raises(RuntimeError, match=r"workers of sub-envs \[1\] were shut down"):
            envs.get_attr("tag")
    finally:
        envs.close()


class BatchedCounter(VectorEnv):
    """A batched vector env without sub-env objects and without get_attr/set_attr/call."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs=3):
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(0.0, 1e6, shape=(1,), dtype=np.float32)
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = None
        self.speed = 1
        self.count = np.zeros((num_envs, 1), dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        self.count[:] = 0
        return self.count.copy(), {}

    def step(self, actions):
        self.count[:, 0] += self.speed * np.asarray(actions)
        done = np.zeros(self.num_envs, dtype=bool)
        return self.count.copy(), np.ones(self.num_envs), done, done.copy(), {}

    def double(self, x):
        return 2 * x


class BatchedCounterWithAPI(BatchedCounter):
    """The same, with Gymnasium's per-sub-env API: one value per sub-env."""

    def __init__(self, num_envs=3):
        super().__init__(num_envs)
        self.gains = [10, 20, 30]
        self.set_calls = []

    def get_attr(self, name):
        if name == "gain":
            return tuple(self.gains)
        return (getattr(self, name),) * self.num_envs

    def set_attr(self, name, values):
        self.set_calls.append((name, values))
        setattr(self, name, values[0])

    def call(self, name, *args, **kwargs):
        if name == "scaled":
            return tuple(gain * args[0] for gain in self.gains)
        return (getattr(self, name)(*args, **kwargs),) * self.num_envs


class BadAPI(BatchedCounter):
    def get_attr(self, name):
        return getattr(self, name)  # one value, not one per sub-env


class Named(gym.vector.VectorWrapper):
    """A vector wrapper with its own attribute."""

    def __init__(self, env):
        super().__init__(env)
        self.label = "named"


def test_batched_vector_env_without_api_gives_its_own_attributes():
    envs = GymnasiumVecEnv(Named(BatchedCounter()))
    assert envs.render_mode is None
    assert envs.get_attr("speed") == [1, 1, 1] and envs.get_attr("label", indices=[2, 0]) == ["named"] * 2
    assert envs.has_attr("speed") and not envs.has_attr("no_such_attribute")
    envs.set_attr("speed", 5, indices=[2, 1, 0, 0])
    assert envs.vector_env.unwrapped.speed == 5
    assert envs.env_method("double", 3) == [6, 6, 6]
    for call in (lambda: envs.set_attr("speed", 2, indices=[0]), lambda: envs.env_method("double", 1, indices=[1, 2])):
        with pytest.raises(ValueError, match=r"indices must name every sub-env .* BatchedCounter has no sub-env"):
            call()
    assert envs.vector_env.unwrapped.speed == 5
    assert envs.env_is_wrapped(Monitor) == [False] * 3 and envs.env_is_wrapped(Named, indices=[1]) == [True]
    envs.reset()
    assert envs.step(np.ones(3, dtype=np.int64))[0].ravel().tolist() == [5.0] * 3


def test_batched_vector_env_with_api_gives_one_value_per_sub_env():
    batched = BatchedCounterWithAPI()
    envs = GymnasiumVecEnv(Named(batched))  # the API is found below the wrapper
    assert envs.get_attr("gain") == [10, 20, 30] and envs.get_attr("gain", indices=[-1, 0]) == [30, 10]
    assert envs.has_attr("gain") and not envs.has_attr("no_such_attribute")
    assert envs.env_method("scaled", 2, indices=[2, 0, 1]) == [60, 20, 40]
    envs.set_attr("speed", [1, 2])  # a list value: one per sub-env, not the per-sub-env list itself
    assert batched.set_calls == [("speed", [[1, 2]] * 3)] and batched.speed == [1, 2]
    with pytest.raises(ValueError, match="indices must name every sub-env"):
        envs.set_attr("speed", 3, indices=[1])
    with pytest.raises(TypeError, match=r"BadAPI.get_attr\(\) must return one value per sub-env"):
        GymnasiumVecEnv(BadAPI())  # the constructor reads render_mode


def test_fitness_weights_vec_env_attributes():
    envs = FitnessWeightsVecEnv(gym.make_vec("FitnessWeights-v0", num_envs=3, render_mode="rgb_array"))
    assert envs.num_envs == 3 and envs.render_mode == "rgb_array"
    assert envs.get_attr("render_mode") == ["rgb_array"] * 3
    assert (
        envs.get_attr("max_episode_steps") == [64] * 3
        and envs.get_attr("max_episode_steps", indices=[0, 2]) == [64] * 2
    )
    assert envs.has_attr("max_episode_steps") and not envs.has_attr("no_such_attribute")
    with pytest.raises(IndexError, match="indices"):
        envs.get_attr("max_episode_steps", indices=[3])
    envs.set_attr("max_episode_steps", 32, indices=[2, 1, 0])
    assert envs.trainees.max_episode_steps == 32 and envs.get_attr("max_episode_steps") == [32] * 3
    with pytest.raises(ValueError, match="indices must name every sub-env"):
        envs.set_attr("max_episode_steps", 16, indices=[0])
    with pytest.raises(ValueError, match="indices must name every sub-env"):
        envs.env_method("render", indices=1)
    assert envs.trainees.max_episode_steps == 32
    assert envs.env_is_wrapped(Monitor) == [False] * 3
    assert envs.seed(5) == [5, 6, 7]
    obs = envs.reset()
    assert obs.shape == (3, *envs.observation_space.shape)
    frames = envs.get_images()
    assert len(frames) == 3 and frames[0].ndim == 3
    assert envs.render().shape[2] == 3  # the frames tiled into one image
    rendered = envs.env_method("render")
    assert len(rendered) == 3
    if callable(getattr(envs.trainees, "call", None)):  # the vector env's call: one frame per trainee
        np.testing.assert_array_equal(rendered[2], frames[2])
    envs.close()


# --- reset options per env ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_per_env_reset_options_equal_dummy_vec_env_after_the_first_reset(kind):
    ours = GymnasiumVecEnv(_vector_env(kind, [_cartpole] * 3))
    reference = DummyVecEnv([_cartpole] * 3)
    try:
        with pytest.raises(ValueError, match="call reset"):  # a partial reset needs a full one first
            ours.set_options([{"low": -0.2, "high": 0.2}, {}, {}])
        ours.seed(1), reference.seed(1)
        _assert_same(ours.reset(), reference.reset(), "reset obs")
        options = [{"low": -0.3, "high": 0.3}, {}, {"low": 0.1, "high": 0.2}]
        for envs in (ours, reference):
            envs.seed(2)
            envs.set_options(options)
        obs = ours.reset()
        _assert_same(obs, reference.reset(), "reset obs with options per env")
        _assert_same(ours.reset_infos, reference.reset_infos, "reset_infos with options per env")
        assert (obs[2] >= 0.1).all() and (np.abs(obs[1]) <= 0.05).all()  # each sub-env got its own options
        _run_both(ours, reference, np.random.default_rng(5).integers(0, 2, (40, 3)))
    finally:
        ours.close()


def test_per_env_reset_options_need_partial_resets():
    envs = GymnasiumVecEnv(BatchedCounter())
    envs.reset()
    with pytest.raises(ValueError, match="different options per env"):
        envs.set_options([{"a": 1}, {}, {}])
    envs.set_options({"a": 1})  # one dict for every sub-env is one options dict
    assert envs._vector_options(envs._options) == {"a": 1}


# --- SB3 wrappers and PPO over the batched VecEnv -------------------------------------------------------------------


def test_vec_normalize_and_vec_monitor_wrap_the_batched_env():
    batched = FitnessWeightsVecEnv(gym.make_vec("FitnessWeights-v0", num_envs=2, max_episode_steps=5))
    envs = VecNormalize(VecMonitor(batched))
    envs.seed(0)
    obs = envs.reset()
    assert obs.shape == (2, 198) and np.isfinite(obs).all()
    for t in range(12):
        obs, rewards, dones, infos = envs.step(np.array([t, 600 - t]))
        assert np.isfinite(obs).all() and np.isfinite(rewards).all()
        assert dones.tolist() == [(t + 1) % 5 == 0] * 2
        for info in infos:
            assert (
                ("episode" in info) == ("terminal_observation" in info) == ("cq_matrix" in info) == ((t + 1) % 5 == 0)
            )
            if "episode" in info:
                assert info["episode"]["l"] == 5 and info["cq_matrix"].shape == (93, 5)
    cq, qx = envs.current_matrices()  # forwarded through both wrappers
    assert cq.shape == (2, 93, 5) and qx.shape == (2, 5, 44) and cq.dtype == qx.dtype == np.float32
    np.testing.assert_array_equal(cq, batched.trainees.state.cq.astype(np.float32))


def _targets(model):
    buffer = model.rollout_buffer  # flattened by training: index env * n_steps + t
    n_envs, n_steps = model.n_envs, model.n_steps
    return (
        buffer.actions.reshape(n_envs, n_steps).astype(np.int64),
        buffer.cq_targets.reshape(n_envs, n_steps, 93, 5),
        buffer.qx_targets.reshape(n_envs, n_steps, 5, 44),
    )


@pytest.mark.parametrize(("wrap", "info_matrices"), [(None, "final"), ("normalize", "final"), (None, "every_step")])
def test_ppo_aux_targets_from_the_batched_env(wrap, info_matrices):
    episode, n_steps = 40, 64  # one finished episode and one running at the end of the rollout
    env = make_vec_env(
        "FitnessWeights-v0", n_envs=2, env_kwargs={"max_episode_steps": episode, "info_matrices": info_matrices}
    )
    env = VecNormalize(env) if wrap == "normalize" else env
    model = PPO(
        "AttnCQQXPolicy", env, n_steps=n_steps, batch_size=64, n_epochs=1, policy_kwargs=SMALL, seed=3, device="cpu"
    )
    model.learn(n_steps * 2)
    actions, cq_targets, qx_targets = _targets(model)

    replay = FitnessWeightsVectorEnv(2, max_episode_steps=episode)  # replay the rollout by hand
    replay.reset(seed=3)
    for t in range(n_steps):
        *_, truncated, info = replay.step(actions[:, t])
        if t == episode - 1:
            assert truncated.all()
            final_cq, final_qx = info["final_info"]["cq_matrix"], info["final_info"]["qx_matrix"]
    np.testing.assert_array_equal(cq_targets[:, :episode], np.repeat(final_cq[:, None], episode, axis=1))
    np.testing.assert_array_equal(qx_targets[:, :episode], np.repeat(final_qx[:, None], episode, axis=1))
    running_cq, running_qx = env.current_matrices()  # training does not step the env
    np.testing.assert_array_equal(running_cq, replay.state.cq.astype(np.float32))
    np.testing.assert_array_equal(cq_targets[:, episode:], np.repeat(running_cq[:, None], n_steps - episode, axis=1))
    np.testing.assert_array_equal(qx_targets[:, episode:], np.repeat(running_qx[:, None], n_steps - episode, axis=1))
    assert not np.array_equal(final_cq, running_cq)
    assert len(model.ep_info_buffer) == 2 and model.ep_info_buffer[0]["l"] == episode  # VecMonitor's statistics


@pytest.mark.parametrize("policy", ["AttnCQQXPolicy", "MlpPolicy"])
def test_ppo_learns_on_the_batched_env(policy):
    env = make_vec_env("FitnessWeights-v0", n_envs=2, seed=0)
    kwargs = {"policy_kwargs": SMALL} if policy == "AttnCQQXPolicy" else {}
    model = PPO(policy, env, n_steps=64, batch_size=64, device="cpu", **kwargs).learn(256)
    assert model.num_timesteps == 256 and np.isfinite(model.train_metrics["loss"])
    assert len(model.ep_info_buffer) == 4  # 2 trainees x 2 episodes of 64 steps


class WithoutMatrices(gym.Wrapper):
    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {k: v for k, v in info.items() if not k.endswith("_matrix")}


def test_aux_targets_need_info_matrices_or_current_matrices():
    env = DummyVecEnv([lambda: WithoutMatrices(gym.make("FitnessWeights-v0", max_episode_steps=100))])
    model = PPO("AttnCQQXPolicy", env, n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=SMALL, device="cpu")
    with pytest.raises(KeyError, match=r"no 'cq_matrix'/'qx_matrix'.*current_matrices\(\)"):
        model.learn(16)


# --- make_vec_env ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vectorization", [None, "batched", "dummy", "subproc"])
def test_make_vec_env_vectorizations_agree(vectorization):
    kwargs = {"vec_env_kwargs": {"start_method": "fork"}} if vectorization == "subproc" else {}
    env = make_vec_env("FitnessWeights-v0", n_envs=2, vectorization=vectorization, seed=8, **kwargs)
    reference = sb3_make_vec_env("FitnessWeights-v0", n_envs=2, seed=8)
    try:
        expected = {None: FitnessWeightsVecEnv, "batched": FitnessWeightsVecEnv, "dummy": DummyVecEnv}
        inner = env.venv if isinstance(env, VecMonitor) else env
        assert isinstance(inner, expected.get(vectorization, SubprocVecEnv))
        assert env.env_is_wrapped(Monitor) == [vectorization in ("dummy", "subproc")] * 2
        _assert_same(env.reset(), reference.reset(), "reset obs")
        for t in range(3):
            actions = np.array([t, 684])
            _assert_same_step(env.step(actions), reference.step(actions), t, {"cq_matrix", "qx_matrix"}, 1e-6)
    finally:
        env.close()


def test_make_vec_env_defaults_and_importable_ids():
    assert isinstance(make_vec_env("CartPole-v1", n_envs=2), DummyVecEnv)
    assert _importable_id("FitnessWeights-v0") == "fitness_weights_env.env:FitnessWeights-v0"
    assert _importable_id("x:FitnessWeights-v0") == "x:FitnessWeights-v0"
    assert gym.make(_importable_id("FitnessWeights-v0")).spec.id == "FitnessWeights-v0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_envs": 0}, "n_envs"),
        ({"n_envs": 2.0}, "n_envs"),
        ({"vectorization": "threads"}, "vectorization"),
        ({"seed": "1"}, "seed"),
        ({"start_index": -1}, "start_index"),
        ({"env_kwargs": [("step_size", 0.1)]}, "env_kwargs"),
        ({"env_id": 3}, "env_id"),
        ({"env_id": lambda: gym.make("FitnessWeights-v0"), "vectorization": "batched"}, "env_id"),
        ({"env_id": "Pendulum-v1", "vectorization": "batched"}, "vector entry point"),
        ({"wrapper_class": Monitor}, "wrapper_class"),
        ({"monitor_kwargs": {"allow_early_resets": True}}, "monitor_kwargs"),
        ({"vec_env_kwargs": {"partial_reset": True}}, "vec_env_kwargs"),
        ({"vectorization": "dummy", "vec_env_kwargs": {"start_method": "fork"}}, "vec_env_kwargs"),
    ],
)
def test_make_vec_env_rejects_bad_arguments(kwargs, message):
    kwargs = {"env_id": "FitnessWeights-v0", **kwargs}
    with pytest.raises(ValueError, match=message):
        make_vec_env(**kwargs)


@pytest.mark.parametrize(
    ("actions", "error", "message"),
    [
        (np.array([0, 1]), ValueError, r"shape \(3,\)"),
        (np.array([[0], [1], [2]]), ValueError, r"shape \(3,\)"),
        (np.array([0, 1, 685]), InvalidActionError, "685"),
        (np.array([0.0, 1.0, 2.0]), InvalidActionError, "integers"),
    ],
)
def test_bad_actions_raise_clear_errors(actions, error, message):
    envs = make_vec_env("FitnessWeights-v0", n_envs=3, seed=0)
    envs.reset()
    with pytest.raises(error, match=message):
        envs.step(actions)
    envs.step(np.array([0, 1, 2]))
