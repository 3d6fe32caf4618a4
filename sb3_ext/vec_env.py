"""The batched FitnessWeights VecEnv for Stable-Baselines3, and ``make_vec_env``.

:class:`FitnessWeightsVecEnv` is :class:`~sb3_ext.gymnasium_vec_env.GymnasiumVecEnv` (the adapter of any
Gymnasium vector env to SB3's ``VecEnv`` API, re-exported here) over
:class:`~fitness_weights_env.FitnessWeightsVectorEnv`: N trainees in one call of the batched kernel.
:func:`make_vec_env` builds it, or SB3's ``DummyVecEnv`` / ``SubprocVecEnv``::

    from sb3_ext import PPO, make_vec_env

    env = make_vec_env("FitnessWeights-v0", n_envs=64, seed=0)  # batched, with a VecMonitor
    model = PPO("AttnCQQXPolicy", env, n_steps=64).learn(100_000)
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import VectorEnv
from stable_baselines3.common import env_util
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from fitness_weights_env import FitnessWeightsVectorEnv
from fitness_weights_env.errors import FieldError
from sb3_ext.device_vec_env import DeviceVecEnv
from sb3_ext.gymnasium_vec_env import GymnasiumVecEnv

__all__ = ["FitnessWeightsVecEnv", "GymnasiumVecEnv", "make_vec_env"]

Vectorization = Literal["batched", "device", "dummy", "subproc"]


class FitnessWeightsVecEnv(GymnasiumVecEnv):
    """N FitnessWeights trainees as an SB3 ``VecEnv``, stepped by one call of the batched kernel.

    :class:`GymnasiumVecEnv` over a :class:`~fitness_weights_env.FitnessWeightsVectorEnv` (same-step
    autoreset), step for step equal to SB3's ``DummyVecEnv`` over N ``gym.make("FitnessWeights-v0")``
    seeded alike, but without per-trainee env objects and without copying every trainee's matrices
    each step:

    - ``infos[i]`` of a finished trainee holds ``cq_matrix`` (93, 5) and ``qx_matrix`` (5, 44), float32,
      the matrices its episode ended with (the auxiliary targets of :class:`sb3_ext.PPO`), and
      ``reset_infos[i]`` those of its new episode, as the single env's infos do. With the vector env's
      default ``info_matrices="final"``, running trainees' infos have no matrices (the single env's
      have them every step); :meth:`current_matrices` gives them, once per rollout, to PPO's target
      callback.
    - :meth:`set_options` takes the single env's options: ``{"profile": p}`` per env (or one dict for
      all) becomes the vector env's ``{"profiles": [...]}`` (trainees without a profile are drawn from
      the population).
    - The trainees are rows of one batch, not env objects: :meth:`get_attr`, :meth:`set_attr` and
      :meth:`env_method` use the vector env's own ``get_attr``/``set_attr``/``call`` where it has them, else
      its attributes (``get_attr("max_episode_steps")`` gives the vector env's value once per trainee);
      ``set_attr`` and ``env_method`` act on all trainees at once, so their ``indices`` must name every
      trainee (else ``ValueError``), and :meth:`env_is_wrapped` is false for single-env wrappers such as
      ``Monitor`` (use ``VecMonitor``).

    Args:
        vector_env: A ``FitnessWeightsVectorEnv`` (or a Gymnasium vector wrapper of one), e.g.
            ``gym.make_vec("FitnessWeights-v0", num_envs=N)``.

    Raises:
        TypeError: ``vector_env`` is not a ``FitnessWeightsVectorEnv``.
    """

    def __init__(self, vector_env: VectorEnv) -> None:
        if not isinstance(vector_env, VectorEnv) or not isinstance(vector_env.unwrapped, FitnessWeightsVectorEnv):
            raise TypeError(f"vector_env must be a FitnessWeightsVectorEnv, got {type(vector_env).__name__}")
        self.trainees: FitnessWeightsVectorEnv = vector_env.unwrapped
        super().__init__(vector_env)

    def current_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """The trainees' current CQ (N, 93, 5) and QX (N, 5, 44) matrices, as float32 copies."""
        state = self.trainees.state
        return state.cq.astype(np.float32), state.qx.astype(np.float32)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every trainee; the finished ones restart, with their new matrices in ``reset_infos``."""
        obs, rewards, dones, infos = super().step_wait()
        state = self.trainees.state
        for i in np.flatnonzero(dones):
            reset_info = self.reset_infos[i]
            if "cq_matrix" not in reset_info:  # info_matrices="final": the single env's reset info has them
                reset_info["cq_matrix"] = state.cq[i].astype(np.float32)
                reset_info["qx_matrix"] = state.qx[i].astype(np.float32)
        return obs, rewards, dones, infos

    def _vector_options(self, options: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Map the single env's per-env ``{"profile": p}`` to the vector env's ``{"profiles": [...]}``."""
        if any(options) and all(set(option) <= {"profile"} for option in options):
            return {"profiles": [option.get("profile") for option in options]}
        return super()._vector_options(options)


def make_vec_env(
    env_id: str | Callable[..., gym.Env],
    n_envs: int = 1,
    vectorization: Vectorization | None = None,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    vec_env_kwargs: dict[str, Any] | None = None,
    monitor_dir: str | None = None,
    monitor_kwargs: dict[str, Any] | None = None,
    wrapper_class: Callable[[gym.Env], gym.Env] | None = None,
    wrapper_kwargs: dict[str, Any] | None = None,
    start_index: int = 0,
) -> VecEnv:
    """Create a monitored SB3 ``VecEnv``: batched for FitnessWeights, SB3's ``make_vec_env`` otherwise.

    ``"dummy"`` and ``"subproc"`` are SB3's ``make_vec_env`` with ``DummyVecEnv`` / ``SubprocVecEnv``:
    each env is ``gym.make(env_id, render_mode="rgb_array", **env_kwargs)`` (without the render mode if
    the env does not take it) in a ``Monitor``. ``"batched"`` is ``gym.make_vec(env_id, num_envs=n_envs,
    vectorization_mode="vector_entry_point", **env_kwargs)`` (render mode likewise) in a
    :class:`FitnessWeightsVecEnv` (or a :class:`GymnasiumVecEnv` for other envs) in a ``VecMonitor``, so
    that episode statistics (``rollout/ep_rew_mean``) are logged as with ``Monitor``. ``"device"`` is the same
    vector env with ``backend="torch"`` (``env_kwargs["device"]`` says where, ``"cpu"`` by default) in a
    :class:`~sb3_ext.device_vec_env.DeviceVecEnv`, which keeps its own episode statistics; :class:`sb3_ext.PPO`
    then keeps its rollouts on the device. In every case the seeds are set for the first reset (env ``i`` gets
    ``seed + i``; random seeds when ``seed`` is None).

    Args:
        env_id: A registered env id, or (``"dummy"`` and ``"subproc"`` only) a callable returning an env.
        n_envs: Number of envs (trainees).
        vectorization: ``"batched"``, ``"device"``, ``"dummy"`` or ``"subproc"``. ``None``: ``"batched"`` for ids whose
            vector entry point is ``FitnessWeightsVectorEnv`` (``FitnessWeights-v0``), ``"dummy"`` otherwise.
        seed: Seed of the first reset.
        env_kwargs: Keyword arguments of the env (``"batched"``: of the vector env, e.g. ``info_matrices``).
        vec_env_kwargs: Keyword arguments of the ``VecEnv`` class (``"subproc"``: ``start_method``;
            ``"batched"``: of :class:`GymnasiumVecEnv` for envs other than FitnessWeights).
        monitor_dir: Folder for the monitor log(s) (``Monitor``: one file per env; ``VecMonitor``: one).
        monitor_kwargs: Keyword arguments of ``Monitor`` (``"batched"``: of ``VecMonitor``, i.e. ``info_keywords``).
        wrapper_class: Wrapper of each single env, after its ``Monitor`` (not with ``"batched"``).
        wrapper_kwargs: Keyword arguments of ``wrapper_class``.
        start_index: Rank of the first env (monitor file names and action-space seeds).

    Returns:
        The ``VecEnv``.

    Raises:
        FieldError: An argument is invalid (``field`` names it).
    """
    if not (isinstance(env_id, str) or callable(env_id)):
        raise FieldError("env_id", "must be an env id or a callable returning an env", env_id)
    if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise FieldError("n_envs", "must be a positive integer", n_envs)
    if vectorization not in (None, "batched", "device", "dummy", "subproc"):
        raise FieldError("vectorization", "must be 'batched', 'device', 'dummy', 'subproc' or None", vectorization)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise FieldError("seed", "must be an integer or None", seed)
    if isinstance(start_index, bool) or not isinstance(start_index, (int, np.integer)) or start_index < 0:
        raise FieldError("start_index", "must be a non-negative integer", start_index)
    for name, kwargs in (
        ("env_kwargs", env_kwargs),
        ("vec_env_kwargs", vec_env_kwargs),
        ("monitor_kwargs", monitor_kwargs),
        ("wrapper_kwargs", wrapper_kwargs),
    ):
        if kwargs is not None and not isinstance(kwargs, dict):
            raise FieldError(name, f"must be a dict or None, got {type(kwargs).__name__}")
    if vectorization is None:
        vectorization = "batched" if isinstance(env_id, str) and _is_fitness_weights(env_id) else "dummy"
    if vectorization == "device":
        unsupported: dict[str, Any] = {
            "vec_env_kwargs": vec_env_kwargs,
            "monitor_dir": monitor_dir,
            "monitor_kwargs": monitor_kwargs,
        }
        unsupported["wrapper_class"] = wrapper_class
        for name, value in unsupported.items():
            if value:
                raise FieldError(name, "is not taken by vectorization='device' (DeviceVecEnv keeps its own statistics)")
        return _make_device(env_id, int(n_envs), seed, env_kwargs or {}, start_index)
    if vectorization == "batched":
        if wrapper_class is not None:
            raise FieldError("wrapper_class", "wraps single envs, which vectorization='batched' does not have")
        return _make_batched(
            env_id, int(n_envs), seed, env_kwargs, vec_env_kwargs, monitor_dir, monitor_kwargs, start_index
        )
    vec_env_cls = SubprocVecEnv if vectorization == "subproc" else None
    if vec_env_cls is None and vec_env_kwargs:
        raise FieldError("vec_env_kwargs", "DummyVecEnv takes none", sorted(vec_env_kwargs))
    if vec_env_cls is not None and isinstance(env_id, str):
        env_id = _importable_id(env_id)  # a spawned worker must import the module that registers the id
    return env_util.make_vec_env(
        env_id,
        n_envs=int(n_envs),
        seed=seed,
        start_index=start_index,
        monitor_dir=monitor_dir,
        wrapper_class=wrapper_class,
        env_kwargs=env_kwargs,
        vec_env_cls=vec_env_cls,
        vec_env_kwargs=vec_env_kwargs,
        monitor_kwargs=monitor_kwargs,
        wrapper_kwargs=wrapper_kwargs,
    )


def _make_batched(
    env_id: str | Callable[..., gym.Env],
    n_envs: int,
    seed: int | None,
    env_kwargs: dict[str, Any] | None,
    vec_env_kwargs: dict[str, Any] | None,
    monitor_dir: str | None,
    monitor_kwargs: dict[str, Any] | None,
    start_index: int,
) -> VecEnv:
    if not isinstance(env_id, str):
        raise ValueError("vectorization='batched' needs a registered env id as env_id, not a callable")
    if gym.spec(env_id).vector_entry_point is None:
        raise ValueError(f"vectorization='batched' needs an env with a vector entry point; {env_id!r} has none")
    monitor_kwargs = monitor_kwargs or {}
    unknown = sorted(set(monitor_kwargs) - {"info_keywords"})
    if unknown:
        raise ValueError(f"monitor_kwargs {unknown}: VecMonitor (vectorization='batched') takes only info_keywords")
    env_kwargs = env_kwargs or {}
    try:
        vector_env = _make_vector_env(env_id, n_envs, {"render_mode": "rgb_array", **env_kwargs})
    except TypeError:
        vector_env = _make_vector_env(env_id, n_envs, env_kwargs)
    adapter_cls = FitnessWeightsVecEnv if isinstance(vector_env.unwrapped, FitnessWeightsVectorEnv) else GymnasiumVecEnv
    vec_env_kwargs = vec_env_kwargs or {}
    try:
        inspect.signature(adapter_cls).bind(vector_env, **vec_env_kwargs)
    except TypeError as error:
        vector_env.close()
        raise ValueError(
            f"vec_env_kwargs {sorted(vec_env_kwargs)} not taken by {adapter_cls.__name__}: {error}"
        ) from None
    vec_env: VecEnv = adapter_cls(vector_env, **vec_env_kwargs)
    filename = None
    if monitor_dir is not None:
        os.makedirs(monitor_dir, exist_ok=True)
        filename = os.path.join(monitor_dir, str(start_index))
    vec_env = VecMonitor(vec_env, filename=filename, **monitor_kwargs)
    if seed is not None:
        vec_env.action_space.seed(seed + start_index)
    vec_env.seed(seed)
    return vec_env


def _make_device(
    env_id: str | Callable[..., gym.Env], n_envs: int, seed: int | None, env_kwargs: dict[str, Any], start_index: int
) -> VecEnv:
    if not isinstance(env_id, str) or not _is_fitness_weights(env_id):
        raise FieldError("vectorization", "'device' needs a FitnessWeights env id", env_id)
    if "backend" in env_kwargs:
        raise FieldError("env_kwargs", "vectorization='device' sets backend='torch' itself", env_kwargs["backend"])
    try:
        vector_env = _make_vector_env(env_id, n_envs, {**env_kwargs, "backend": "torch"})
    except TypeError as error:
        if "backend" not in str(error):
            raise
        raise FieldError(
            "vectorization", f"'device' needs an env with a torch backend (FitnessWeights-v0); {env_id} has none"
        ) from None
    vec_env = DeviceVecEnv(vector_env)
    if seed is not None:
        vec_env.action_space.seed(seed + start_index)
    vec_env.seed(seed)
    return vec_env


def _make_vector_env(env_id: str, n_envs: int, env_kwargs: dict[str, Any]) -> VectorEnv:
    """``gym.make_vec`` from the id's vector entry point; ``env_kwargs`` go to the vector env's constructor."""
    return gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **env_kwargs)


def _is_fitness_weights(env_id: str) -> bool:
    """Whether the id's vector entry point is a ``FitnessWeightsVectorEnv`` (v0's, v1's or a subclass)."""
    entry_point = gym.spec(env_id).vector_entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    return isinstance(creator, type) and issubclass(creator, FitnessWeightsVectorEnv)


def _importable_id(env_id: str) -> str:
    """``"module:id"`` so that ``gym.make`` in a fresh process imports the module of the env's entry point first."""
    if ":" in env_id:
        return env_id
    entry_point = gym.spec(env_id).entry_point
    if isinstance(entry_point, str) and ":" in entry_point:
        return f"{entry_point.split(':')[0]}:{env_id}"
    return env_id
