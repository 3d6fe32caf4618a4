"""Stable-Baselines3 VecEnvs over Gymnasium vector envs, and the batched FitnessWeights one.

SB3 takes its own :class:`~stable_baselines3.common.vec_env.VecEnv` API, not Gymnasium's
:class:`~gymnasium.vector.VectorEnv`. :class:`GymnasiumVecEnv` adapts any Gymnasium vector env to it, with
the semantics of SB3's ``DummyVecEnv``; :class:`FitnessWeightsVecEnv` is that adapter over
:class:`~fitness_weights_env.FitnessWeightsVectorEnv` (N trainees in one call of the batched kernel), and
:func:`make_vec_env` builds either, or SB3's ``DummyVecEnv`` / ``SubprocVecEnv``::

    from sb3_ext import PPO, make_vec_env

    env = make_vec_env("FitnessWeights-v0", n_envs=64, seed=0)  # batched, with a VecMonitor
    model = PPO("AttnCQQXPolicy", env, n_steps=64).learn(100_000)
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from copy import deepcopy
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from stable_baselines3.common import env_util
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecMonitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from fitness_weights_env import FitnessWeightsVectorEnv

__all__ = ["FitnessWeightsVecEnv", "GymnasiumVecEnv", "make_vec_env"]

Vectorization = Literal["batched", "dummy", "subproc"]

_ARRAY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_FINAL_KEYS = frozenset({"final_obs", "final_info"})


class GymnasiumVecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a Gymnasium ``VectorEnv``, with the semantics of SB3's ``DummyVecEnv``.

    - :meth:`reset` returns the observations only and stores each sub-env's reset info in
      ``reset_infos``; it passes the seeds set by :meth:`seed` (sub-env ``i`` gets ``seed + i``) and the
      options set by :meth:`set_options` once, at the next reset, as SB3 does.
    - :meth:`step_wait` returns ``(obs, rewards, dones, infos)``: ``dones = terminated | truncated``,
      rewards as float32, and ``infos`` a list of one dict per sub-env (Gymnasium's dict of arrays with
      ``_key`` masks, split). A finished sub-env restarts in the same step: ``obs[i]`` is the first
      observation of its next episode, ``infos[i]`` is the info of its last step with
      ``"terminal_observation"`` (the last observation), and its reset info goes to ``reset_infos[i]``.
      Every ``infos[i]`` has ``"TimeLimit.truncated" = truncated and not terminated``.

    **Autoreset modes.** ``AutoresetMode.SAME_STEP`` maps directly: ``info["final_obs"]`` and
    ``info["final_info"]`` become the finished sub-envs' ``terminal_observation`` and info, and the
    top-level info of a finished sub-env (that of its new episode) becomes its reset info. (So keys a
    vector wrapper adds at the last step, such as the ``"episode"`` of Gymnasium's
    ``RecordEpisodeStatistics``, land in ``reset_infos``: use SB3's ``VecMonitor`` instead.)
    ``AutoresetMode.NEXT_STEP`` (Gymnasium's default) spends a finished sub-env's next step on its reset,
    dropping that step's action, and ``DISABLED`` leaves the reset to the caller; the adapter gives both
    same-step semantics by resetting the finished sub-envs right away with
    ``reset(options={"reset_mask": dones})``. That partial reset is supported by Gymnasium's
    ``SyncVectorEnv`` and ``AsyncVectorEnv`` (with shared memory) and their wrappers, not by every vector env:
    ``CartPoleVectorEnv``, for one, resets all its sub-envs and has no way to reset one, so it is
    rejected at construction. A vector env without ``metadata["autoreset_mode"]`` is taken to be
    ``NEXT_STEP``.

    **Sub-env attributes.** A vector env's sub-envs need not be objects (a batched one has none), so
    :meth:`get_attr`, :meth:`set_attr` and :meth:`env_method` act on the vector env itself: the first
    env of its wrapper chain (outermost first) with the attribute. ``get_attr`` returns its value once
    per index; ``set_attr`` and ``env_method`` change or call it once, for all sub-envs, so their
    ``indices`` must name every sub-env (``env_method`` returns the result once per index).
    :meth:`env_is_wrapped` says whether the vector env's wrapper chain holds the class. Per-sub-env
    attributes of a ``SyncVectorEnv`` are at ``vec_env.vector_env.get_attr(name)``.

    Observation spaces: ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``, or a ``Dict`` of
    those (the spaces SB3's policies take); others raise ``ValueError``.

    Args:
        vector_env: The Gymnasium vector env. It is reset by :meth:`reset`, not by the constructor.
        partial_reset: Whether ``vector_env.reset(options={"reset_mask": mask})`` resets only the
            masked sub-envs (used with ``NEXT_STEP`` and ``DISABLED`` autoreset only). ``None`` (default):
            true for Gymnasium's ``SyncVectorEnv`` and ``AsyncVectorEnv`` (with ``shared_memory=True``: without,
            Gymnasium 1.4's partial reset is broken), false otherwise. A vector env that changes the observations of
            sub-envs outside the mask raises ``RuntimeError``.

    Raises:
        TypeError: ``vector_env`` is not a Gymnasium ``VectorEnv``.
        ValueError: The observation space is not supported, or the autoreset mode cannot give
            same-step semantics.
    """

    def __init__(self, vector_env: VectorEnv, partial_reset: bool | None = None) -> None:
        if not isinstance(vector_env, VectorEnv):
            hint = " (a single env: use SB3's DummyVecEnv)" if isinstance(vector_env, gym.Env) else ""
            raise TypeError(f"vector_env must be a gymnasium.vector.VectorEnv, got {type(vector_env).__name__}{hint}")
        observation_space = vector_env.single_observation_space
        _check_observation_space(observation_space)
        self.vector_env = vector_env
        self.autoreset_mode = _autoreset_mode(vector_env)
        if partial_reset is None:
            partial_reset = _supports_partial_reset(vector_env.unwrapped)
        self.partial_reset = bool(partial_reset)
        if self.autoreset_mode != AutoresetMode.SAME_STEP and not self.partial_reset:
            raise ValueError(
                f"{type(vector_env.unwrapped).__name__} autoresets with {self.autoreset_mode} and does not support "
                "partial resets (reset(options={'reset_mask': mask})), so it cannot restart a finished sub-env in the "
                "same step as SB3 needs. Use a vector env with AutoresetMode.SAME_STEP, e.g. gym.make_vec(env_id, "
                "vectorization_mode='sync', vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP}), or pass "
                "partial_reset=True if it does support reset_mask."
            )
        # Gymnasium's sync/async envs return their internal buffer when created with copy=False
        self._copy_obs = getattr(vector_env.unwrapped, "copy", True) is False
        self._actions: np.ndarray | None = None
        super().__init__(vector_env.num_envs, observation_space, vector_env.single_action_space)
        self.metadata = dict(vector_env.metadata)

    @property
    def spec(self) -> gym.envs.registration.EnvSpec | None:
        """The vector env's spec (``VecMonitor`` writes its id in the log's header)."""
        return self.vector_env.spec

    def reset(self) -> VecEnvObs:
        """Reset every sub-env with the seeds and options set since the last reset, and return the observations."""
        obs, info = self.vector_env.reset(seed=self._vector_seed(), options=self._vector_options(self._options))
        self.reset_infos = _unbatch_info(info, None, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return deepcopy(obs) if self._copy_obs else obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions (one per sub-env) for :meth:`step_wait`.

        Raises:
            ValueError: ``actions`` does not have the batched action space's shape ``(num_envs, ...)``.
        """
        shape = self.vector_env.action_space.shape
        if shape is not None:
            actions = np.asarray(actions)
            if actions.shape != shape:
                raise ValueError(
                    f"actions must have shape {shape} (num_envs={self.num_envs} actions of {self.action_space}), "
                    f"got shape {actions.shape}"
                )
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step every sub-env, restart the finished ones, and return ``(obs, rewards, dones, infos)``."""
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, info = self.vector_env.step(actions)
        if self._copy_obs:
            obs = deepcopy(obs)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        dones = terminated | truncated
        done = np.flatnonzero(dones)
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            infos = _unbatch_info(info, None, self.num_envs, skip=_FINAL_KEYS)
            if done.size:
                self._same_step_finals(info, done, infos)
        else:
            infos = _unbatch_info(info, None, self.num_envs)
            if done.size:
                obs = self._reset_finished(obs, dones, done, infos)
        for info_i, time_limit in zip(infos, (truncated & ~terminated).tolist(), strict=True):
            info_i["TimeLimit.truncated"] = time_limit
        return obs, np.array(rewards, dtype=np.float32), dones, infos

    def _same_step_finals(self, info: dict[str, Any], done: np.ndarray, infos: list[dict[str, Any]]) -> None:
        if "final_obs" not in info:
            raise RuntimeError(f"sub-envs {done.tolist()} finished but the vector env gave no info['final_obs']")
        final_obs = info["final_obs"]
        final_infos = _unbatch_info(info.get("final_info", {}), done, self.num_envs)
        for i, final_info in zip(done, final_infos, strict=True):
            self.reset_infos[i] = infos[i]
            final_info["terminal_observation"] = final_obs[i]
            infos[i] = final_info

    def _reset_finished(
        self, obs: VecEnvObs, dones: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]
    ) -> VecEnvObs:
        for i in done:
            infos[i]["terminal_observation"] = _obs_row(obs, i)
        reset_obs, reset_info = self.vector_env.reset(options={"reset_mask": dones.copy()})
        if not _rows_equal(obs, reset_obs, ~dones):
            raise RuntimeError(
                f"{type(self.vector_env.unwrapped).__name__}.reset(options={{'reset_mask': ...}}) changed the "
                "observations of sub-envs outside the mask: it does not support partial resets (partial_reset=False)"
            )
        for i, reset_info_i in zip(done, _unbatch_info(reset_info, done, self.num_envs), strict=True):
            self.reset_infos[i] = reset_info_i
        _set_rows(obs, dones, reset_obs)
        return obs

    def _vector_seed(self) -> int | list[int | None] | None:
        """SB3's per-env seeds as one ``reset(seed=...)`` argument: ``s`` for ``[s, s + 1, ...]``, else the list."""
        seeds = self._seeds
        if all(seed is None for seed in seeds):
            return None
        first = seeds[0]
        if first is not None and all(seed == first + i for i, seed in enumerate(seeds)):
            return int(first)
        return list(seeds)

    def _vector_options(self, options: list[dict[str, Any]]) -> dict[str, Any] | None:
        """SB3's per-env reset options as the vector env's one ``options`` dict.

        A vector env takes one ``options`` for all its sub-envs, so the per-env options must be equal.

        Raises:
            ValueError: The options differ between sub-envs.
        """
        if not any(options):
            return None
        if not all(_same(option, options[0]) for option in options[1:]):
            raise ValueError(
                f"options: {type(self.vector_env.unwrapped).__name__} takes one options dict for all its sub-envs, "
                "but set_options() gave different options per env"
            )
        return dict(options[0])

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        """Set the options of the next :meth:`reset` (a dict for every env, or a list of one per env).

        Raises:
            ValueError: The vector env cannot take these options (see :meth:`_vector_options`).
        """
        if isinstance(options, list) and len(options) != self.num_envs:
            raise ValueError(f"options must be a dict or a list of num_envs={self.num_envs} dicts, got {len(options)}")
        previous = self._options
        super().set_options(options)
        try:
            self._vector_options(self._options)
        except ValueError:
            self._options = previous
            raise

    def close(self) -> None:
        """Close the vector env."""
        self.vector_env.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One RGB image per sub-env (``render_mode="rgb_array"``), from the vector env's ``render()``."""
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but this method assumes it is `rgb_array` to obtain images.",
                stacklevel=2,
            )
            return [None] * self.num_envs
        frames = self.vector_env.render()
        if frames is None or len(frames) != self.num_envs:
            raise RuntimeError(f"{type(self.vector_env).__name__}.render() did not return one frame per sub-env")
        return list(frames)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute (see the class docstring), once per index."""
        return [self._vector_attr(attr_name)[1]] * len(self._index_list(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the attribute on the vector env: one value for all its sub-envs (``indices`` must name all)."""
        self._require_all(indices, "set_attr")
        try:
            holder, _ = self._vector_attr(attr_name)
        except AttributeError:
            holder = self.vector_env
        setattr(holder, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call the vector env's method once (``indices`` must name all sub-envs); its result once per index."""
        self._require_all(indices, "env_method")
        result = self._vector_attr(method_name)[1](*method_args, **method_kwargs)
        return [result] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Whether the vector env's wrapper chain holds a ``wrapper_class``, once per index."""
        env: VectorEnv = self.vector_env
        found = isinstance(env, wrapper_class)
        while not found and isinstance(env, VectorWrapper):
            env = env.env
            found = isinstance(env, wrapper_class)
        return [found] * len(self._index_list(indices))

    def _vector_attr(self, name: str) -> tuple[VectorEnv, Any]:
        env: VectorEnv = self.vector_env
        while True:
            try:
                return env, getattr(env, name)
            except AttributeError:
                if not isinstance(env, VectorWrapper):
                    raise AttributeError(f"{type(self.vector_env).__name__} has no attribute {name!r}") from None
                env = env.env

    def _index_list(self, indices: VecEnvIndices) -> list[int]:
        index_list = list(self._get_indices(indices))
        bad = [i for i in index_list if not 0 <= i < self.num_envs]
        if bad:
            raise IndexError(f"indices must be in [0, {self.num_envs}), got {bad}")
        return index_list

    def _require_all(self, indices: VecEnvIndices, method: str) -> None:
        if sorted(set(self._index_list(indices))) != list(range(self.num_envs)):
            raise ValueError(
                f"{method}: indices must name every sub-env (or be None): the vector env has one value for all of them"
            )


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
    that episode statistics (``rollout/ep_rew_mean``) are logged as with ``Monitor``. In every case the
    seeds are set for the first reset (env ``i`` gets ``seed + i``; random seeds when ``seed`` is None).

    Args:
        env_id: A registered env id, or (``"dummy"`` and ``"subproc"`` only) a callable returning an env.
        n_envs: Number of envs (trainees).
        vectorization: ``"batched"``, ``"dummy"`` or ``"subproc"``. ``None``: ``"batched"`` for ids whose
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
        ValueError: An argument is invalid (the message names it).
    """
    if not (isinstance(env_id, str) or callable(env_id)):
        raise ValueError(f"env_id must be an env id or a callable returning an env, got {env_id!r}")
    if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs!r}")
    if vectorization not in (None, "batched", "dummy", "subproc"):
        raise ValueError(f"vectorization must be 'batched', 'dummy', 'subproc' or None, got {vectorization!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    if isinstance(start_index, bool) or not isinstance(start_index, (int, np.integer)) or start_index < 0:
        raise ValueError(f"start_index must be a non-negative integer, got {start_index!r}")
    for name, kwargs in (
        ("env_kwargs", env_kwargs),
        ("vec_env_kwargs", vec_env_kwargs),
        ("monitor_kwargs", monitor_kwargs),
        ("wrapper_kwargs", wrapper_kwargs),
    ):
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ValueError(f"{name} must be a dict or None, got {type(kwargs).__name__}")
    if vectorization is None:
        vectorization = "batched" if isinstance(env_id, str) and _is_fitness_weights(env_id) else "dummy"
    if vectorization == "batched":
        if wrapper_class is not None:
            raise ValueError("wrapper_class wraps single envs, which vectorization='batched' does not have")
        return _make_batched(
            env_id, int(n_envs), seed, env_kwargs, vec_env_kwargs, monitor_dir, monitor_kwargs, start_index
        )
    vec_env_cls = SubprocVecEnv if vectorization == "subproc" else None
    if vec_env_cls is None and vec_env_kwargs:
        raise ValueError(f"vec_env_kwargs: DummyVecEnv takes none, got {sorted(vec_env_kwargs)}")
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
    make_vec_kwargs = {"num_envs": n_envs, "vectorization_mode": "vector_entry_point"}
    try:
        vector_env = gym.make_vec(env_id, **make_vec_kwargs, **{"render_mode": "rgb_array", **env_kwargs})
    except TypeError:
        vector_env = gym.make_vec(env_id, **make_vec_kwargs, **env_kwargs)
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


def _is_fitness_weights(env_id: str) -> bool:
    entry_point = gym.spec(env_id).vector_entry_point
    return entry_point is FitnessWeightsVectorEnv or entry_point == (
        f"{FitnessWeightsVectorEnv.__module__}:{FitnessWeightsVectorEnv.__name__}"
    )


def _importable_id(env_id: str) -> str:
    """``"module:id"`` so that ``gym.make`` in a fresh process imports the module of the env's entry point first."""
    if ":" in env_id:
        return env_id
    entry_point = gym.spec(env_id).entry_point
    if isinstance(entry_point, str) and ":" in entry_point:
        return f"{entry_point.split(':')[0]}:{env_id}"
    return env_id


def _supports_partial_reset(vector_env: VectorEnv) -> bool:
    """Whether ``reset(options={"reset_mask": mask})`` resets only the masked sub-envs and clears their autoreset.

    Gymnasium 1.4's ``AsyncVectorEnv`` without shared memory resets them but leaves its workers' autoreset flag
    set, so in ``NEXT_STEP`` mode their next step is a second reset.
    """
    if isinstance(vector_env, AsyncVectorEnv):
        return bool(vector_env.shared_memory)
    return isinstance(vector_env, SyncVectorEnv)


def _autoreset_mode(vector_env: VectorEnv) -> AutoresetMode:
    mode = vector_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    try:
        return AutoresetMode(mode)
    except ValueError:
        raise ValueError(f"unknown metadata['autoreset_mode'] {mode!r} of {type(vector_env).__name__}") from None


def _check_observation_space(space: spaces.Space) -> None:
    if isinstance(space, _ARRAY_SPACES):
        return
    if isinstance(space, spaces.Dict) and all(isinstance(sub, _ARRAY_SPACES) for sub in space.spaces.values()):
        return
    raise ValueError(
        f"single_observation_space {space} is not supported: use Box, Discrete, MultiDiscrete, MultiBinary "
        "or a Dict of those"
    )


def _unbatch_info(
    info: dict[str, Any], indices: Sequence[int] | None, num_envs: int, skip: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Split Gymnasium's vector info (arrays with ``_key`` masks) into one dict per sub-env.

    Args:
        info: The vector info; nested dicts are vector infos themselves.
        indices: The sub-envs to return (``None``: all, without copying the arrays' rows).
        num_envs: The number of sub-envs.
        skip: Top-level keys to leave out.
    """
    out: list[dict[str, Any]] = [{} for _ in range(num_envs if indices is None else len(indices))]
    for key, value in info.items():
        if key in skip or (key.startswith("_") and key[1:] in info):  # a mask
            continue
        if isinstance(value, dict):
            column: Any = _unbatch_info(value, indices, num_envs)
        else:
            column = value if indices is None else [value[i] for i in indices]
        mask = info.get(f"_{key}")
        keep = None if mask is None else np.asarray(mask, dtype=bool)
        if keep is not None and indices is not None:
            keep = keep[indices]
        if keep is None or keep.all():
            for info_i, value_i in zip(out, column, strict=True):
                info_i[key] = value_i
        else:
            for j in np.flatnonzero(keep):
                out[j][key] = column[j]
    return out


def _obs_row(obs: VecEnvObs, i: int) -> Any:
    """A copy of sub-env ``i``'s observation."""
    if isinstance(obs, dict):
        return {key: value[i].copy() for key, value in obs.items()}
    return obs[i].copy()


def _set_rows(obs: VecEnvObs, mask: np.ndarray, source: VecEnvObs) -> None:
    if isinstance(obs, dict):
        for key, value in obs.items():
            value[mask] = source[key][mask]
    else:
        obs[mask] = source[mask]


def _rows_equal(a: VecEnvObs, b: VecEnvObs, mask: np.ndarray) -> bool:
    if isinstance(a, dict):
        return all(_rows_equal(a[key], b[key], mask) for key in a)
    return np.array_equal(a[mask], b[mask], equal_nan=bool(np.issubdtype(a.dtype, np.inexact)))


def _same(a: Any, b: Any) -> bool:
    """Equality of option values, arrays and containers included."""
    if a is b:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b
