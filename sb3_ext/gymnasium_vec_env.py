"""An SB3 ``VecEnv`` over any Gymnasium ``VectorEnv``.

SB3 takes its own :class:`~stable_baselines3.common.vec_env.VecEnv` API, not Gymnasium's
:class:`~gymnasium.vector.VectorEnv`. :class:`GymnasiumVecEnv` adapts a Gymnasium vector env
(``SyncVectorEnv``, ``AsyncVectorEnv``, or a batched one such as a vector entry point) to it, with the
semantics of SB3's ``DummyVecEnv``::

    import gymnasium as gym
    from stable_baselines3 import PPO
    from sb3_ext.gymnasium_vec_env import GymnasiumVecEnv

    env = GymnasiumVecEnv(gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="async"))
    model = PPO("MlpPolicy", env, n_steps=64).learn(10_000)
"""

from __future__ import annotations

import re
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from copy import deepcopy
from typing import Any, TypeVar, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import AlreadyPendingCallError
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.vector.async_vector_env import AsyncState
from gymnasium.vector.utils import concatenate, create_empty_array
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

__all__ = ["GymnasiumVecEnv"]

_ARRAY_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_FINAL_KEYS = frozenset({"final_obs", "final_info"})

_BatchedActions = np.ndarray | dict[str, Any] | tuple[Any, ...]
"""A vector env's batched actions: an array, or a dict or tuple of them for ``Dict`` and ``Tuple`` action spaces."""

# A vector env's batched observations (the spaces of _check_observation_space): an array, or a dict of arrays;
# two batches of one vector env are of the same kind.
_Obs = TypeVar("_Obs", np.ndarray, dict[str, np.ndarray])


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

    **Reset options.** A vector env's ``reset`` takes one ``options`` dict for all its sub-envs. When
    :meth:`set_options` gives different options per sub-env, a vector env with partial resets
    (``partial_reset``) resets each group of sub-envs with equal options in turn, with
    ``reset(seed=..., options={**options, "reset_mask": group})`` (so a group without options receives
    ``{}``, not ``None``). A partial reset needs a full one before it, so per-env options that differ are
    taken only after the first :meth:`reset`, and only by vector envs with partial resets;
    :meth:`set_options` raises ``ValueError`` for them otherwise.

    **Sub-env attributes.** :meth:`get_attr`, :meth:`set_attr`, :meth:`env_method`, :meth:`has_attr` and
    :meth:`env_is_wrapped` act on the sub-envs named by ``indices`` (an index, a sequence of them, negative
    ones counting from the end, or ``None`` for all) as in ``DummyVecEnv``: an attribute or method is
    looked up through each sub-env's wrappers (``env.get_wrapper_attr(name)``), ``set_attr`` sets it on the
    outermost wrapper (``setattr(env, name, value)``), and ``env_is_wrapped`` looks for ``wrapper_class``
    among the sub-env's wrappers. How the sub-envs are reached depends on the vector env
    (``vector_env.unwrapped``):

    - ``SyncVectorEnv``: directly, in ``vector_env.envs``.
    - ``AsyncVectorEnv``: by Gymnasium's own call messages, sent to the named workers only (its ``call``
      reaches all of them). A missing attribute raises ``AttributeError`` without shutting the worker
      down; an exception raised inside a worker (by a method that ``env_method`` calls, say) shuts it down,
      as it does in Gymnasium, and is raised here. ``reset``, ``step`` and ``close`` cannot be called
      through ``env_method`` (Gymnasium's workers refuse them: use :meth:`reset` and :meth:`step`). A
      worker reports its wrappers as ``str(env)`` (``"<Monitor<TimeLimit<...>>>"``), so ``env_is_wrapped``
      matches class names: those of ``wrapper_class`` and of its subclasses known in this process (a
      wrapper that overrides ``__str__`` hides the wrappers inside it).
    - Any other vector env, such as a batched one with no sub-env objects: its own per-sub-env API if it
      has one, ``get_attr(name)``, ``set_attr(name, values)`` and ``call(name, *args, **kwargs)`` as in
      Gymnasium's ``SyncVectorEnv`` (one value per sub-env); else its own attribute, found on the first env
      of its wrapper chain (outermost first) that has it, and given once per index. Either way it sets and
      calls for all its sub-envs at once, so ``set_attr`` and ``env_method`` raise ``ValueError`` unless
      ``indices`` name every sub-env. ``env_is_wrapped`` says whether the vector env's wrapper chain holds
      ``wrapper_class``.

    Observation spaces: ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``, or a ``Dict`` of
    those (the spaces SB3's policies take); others raise ``ValueError``.

    Args:
        vector_env: The Gymnasium vector env. It is reset by :meth:`reset`, not by the constructor.
        partial_reset: Whether ``vector_env.reset(options={"reset_mask": mask})`` resets only the
            masked sub-envs (used with ``NEXT_STEP`` and ``DISABLED`` autoreset, and for per-env reset
            options). ``None`` (default): true for Gymnasium's ``SyncVectorEnv`` and ``AsyncVectorEnv`` (with
            ``shared_memory=True``: without, Gymnasium 1.4's partial reset is broken), false otherwise. A vector
            env that changes the observations of sub-envs outside the mask raises ``RuntimeError``.

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
        self._actions: _BatchedActions | list[Any] | None = None
        self._has_reset = False  # partial resets (per-env options) need a full reset before them
        self._sub_envs = _sub_envs(vector_env)  # before super().__init__, which reads the render modes
        super().__init__(vector_env.num_envs, observation_space, vector_env.single_action_space)
        self.metadata = dict(vector_env.metadata)

    @property
    def spec(self) -> gym.envs.registration.EnvSpec | None:
        """The vector env's spec (``VecMonitor`` writes its id in the log's header)."""
        return self.vector_env.spec

    def reset(self) -> VecEnvObs:
        """Reset every sub-env with the seeds and options set since the last reset, and return the observations."""
        seed = self._vector_seed()
        groups = self._reset_groups(self._options)
        if len(groups) == 1 and groups[0][0] is None:
            obs, info = self._vector_reset(seed, groups[0][1])
            self.reset_infos = _unbatch_info(info, None, self.num_envs)
        else:
            reset_infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
            obs = None
            for mask, options in groups:
                assert mask is not None
                group_obs, info = self._vector_reset(seed, {**(options or {}), "reset_mask": mask})
                group = np.flatnonzero(mask)
                for i, info_i in zip(group, _unbatch_info(info, group, self.num_envs), strict=True):
                    reset_infos[i] = info_i
                if obs is None:
                    obs = group_obs
                else:
                    _set_rows(obs, mask, group_obs)
            self.reset_infos = reset_infos
        self._has_reset = True
        self._reset_seeds()
        self._reset_options()
        return deepcopy(obs) if self._copy_obs else obs

    def step_async(self, actions: _BatchedActions | list[Any]) -> None:
        """Store the actions (one per sub-env) for :meth:`step_wait`.

        Args:
            actions: The batched actions (an array of shape ``(num_envs, ...)``; for a ``Dict`` or ``Tuple``
                action space, the vector env's batched dict or tuple), or a list of one action per sub-env.

        Raises:
            ValueError: ``actions`` does not have the batched action space's shape ``(num_envs, ...)``, or is a
                list of another length than ``num_envs``.
        """
        shape = self.vector_env.action_space.shape
        if shape is not None:
            actions = np.asarray(actions)
            if actions.shape != shape:
                raise ValueError(
                    f"actions must have shape {shape} (num_envs={self.num_envs} actions of {self.action_space}), "
                    f"got shape {actions.shape}"
                )
        elif isinstance(actions, list):  # one action per sub-env, as DummyVecEnv takes them
            if len(actions) != self.num_envs:
                raise ValueError(f"actions: a list must hold num_envs={self.num_envs} actions, got {len(actions)}")
            space = self.vector_env.single_action_space
            out = create_empty_array(space, self.num_envs)  # None for a custom space, whose concatenate takes None
            actions = concatenate(space, actions, out)  # type: ignore[arg-type]  # Gymnasium's hint omits out=None
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

    def _reset_finished(self, obs: _Obs, dones: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]) -> _Obs:
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

    def _vector_reset(
        self, seed: int | list[int | None] | None, options: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        """``vector_env.reset(seed=seed, options=options)``; a list of seeds gives each sub-env its own."""
        # VectorEnv.reset is typed seed: int | None, but Sync/AsyncVectorEnv and batched ones take a list too
        return self.vector_env.reset(seed=seed, options=options)  # type: ignore[arg-type]  # a seed list, see above

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

    def _reset_groups(self, options: list[dict[str, Any]]) -> list[tuple[np.ndarray | None, dict[str, Any] | None]]:
        """The ``reset`` calls that give each sub-env its options: ``(reset_mask, options)`` pairs.

        One call without a mask when the vector env can take the options at once (:meth:`_vector_options`),
        else one partial reset per group of sub-envs with equal options.

        Raises:
            ValueError: The options differ and the vector env cannot reset part of its sub-envs (yet).
        """
        try:
            return [(None, self._vector_options(options))]
        except ValueError as error:
            if not self.partial_reset:
                raise
            if not self._has_reset:
                raise ValueError(
                    f"{error}; different options per env need partial resets, which come after a full one: "
                    "call reset() once with equal options (or none) first"
                ) from None
        groups: list[tuple[dict[str, Any], list[int]]] = []
        for i, option in enumerate(options):
            for group_options, members in groups:
                if _same(group_options, option):
                    members.append(i)
                    break
            else:
                groups.append((option, [i]))
        calls: list[tuple[np.ndarray | None, dict[str, Any] | None]] = []
        for group_options, members in groups:
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[members] = True
            calls.append((mask, dict(group_options)))
        return calls

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        """Set the options of the next :meth:`reset` (a dict for every env, or a list of one per env).

        Raises:
            ValueError: The vector env cannot take these options (see the class docstring).
        """
        if isinstance(options, list) and len(options) != self.num_envs:
            raise ValueError(f"options must be a dict or a list of num_envs={self.num_envs} dicts, got {len(options)}")
        previous = self._options
        super().set_options(options)
        try:
            self._reset_groups(self._options)
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
        return cast("list[np.ndarray]", list(frames))  # render_mode "rgb_array": one image array per sub-env

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of each sub-env named by ``indices`` (see the class docstring).

        Raises:
            AttributeError: A sub-env has no such attribute.
            IndexError: An index is out of range.
        """
        return self._sub_envs.get(attr_name, self._index_list(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set the attribute on each sub-env named by ``indices`` (see the class docstring).

        Raises:
            IndexError: An index is out of range.
            ValueError: The vector env sets attributes for all its sub-envs at once, and ``indices`` do not
                name them all.
        """
        self._sub_envs.set(attr_name, value, self._index_list(indices))

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call the method of each sub-env named by ``indices``; the results, one per index.

        Raises:
            AttributeError: A sub-env has no such method.
            IndexError: An index is out of range.
            ValueError: The vector env calls its method for all its sub-envs at once, and ``indices`` do not
                name them all; or ``AsyncVectorEnv``'s workers do not take the method.
        """
        return self._sub_envs.call(method_name, method_args, method_kwargs, self._index_list(indices))

    def has_attr(self, attr_name: str) -> bool:
        """Whether every sub-env has the attribute."""
        return self._sub_envs.has(attr_name)

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """Whether each sub-env named by ``indices`` is wrapped in a ``wrapper_class`` (see the class docstring).

        Raises:
            IndexError: An index is out of range.
        """
        return self._sub_envs.is_wrapped(wrapper_class, self._index_list(indices))

    def _index_list(self, indices: VecEnvIndices) -> list[int]:
        """``indices`` as a list of sub-env indices in ``[0, num_envs)`` (negative ones count from the end)."""
        n = self.num_envs
        if indices is None:
            return list(range(n))
        if isinstance(indices, (int, np.integer)):
            indices = [int(indices)]
        index_list = list(indices)
        bad = [i for i in index_list if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n]
        if bad:
            raise IndexError(f"indices must be integers in [-{n}, {n}) (num_envs={n}), got {bad}")
        return [int(i) % n for i in index_list]


class _SubEnvs(ABC):
    """How :class:`GymnasiumVecEnv` reaches the sub-envs of one kind of vector env (indices already checked)."""

    @abstractmethod
    def get(self, name: str, indices: list[int]) -> list[Any]:
        """``env.get_wrapper_attr(name)`` of each sub-env in ``indices``."""

    @abstractmethod
    def set(self, name: str, value: Any, indices: list[int]) -> None:
        """``setattr(env, name, value)`` on each sub-env in ``indices``."""

    @abstractmethod
    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], indices: list[int]) -> list[Any]:
        """``env.get_wrapper_attr(name)(*args, **kwargs)`` of each sub-env in ``indices``."""

    @abstractmethod
    def has(self, name: str) -> bool:
        """Whether every sub-env has the attribute."""

    @abstractmethod
    def is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: list[int]) -> list[bool]:
        """Whether each sub-env in ``indices`` is wrapped in a ``wrapper_class``."""


class _SyncSubEnvs(_SubEnvs):
    """The sub-env objects of a ``SyncVectorEnv``, as ``DummyVecEnv`` reaches its envs."""

    def __init__(self, vector_env: SyncVectorEnv) -> None:
        self.vector_env = vector_env

    def get(self, name: str, indices: list[int]) -> list[Any]:
        """See :class:`_SubEnvs`."""
        envs = self.vector_env.envs
        return [envs[i].get_wrapper_attr(name) for i in indices]

    def set(self, name: str, value: Any, indices: list[int]) -> None:
        """See :class:`_SubEnvs`."""
        envs = self.vector_env.envs
        for i in indices:
            setattr(envs[i], name, value)

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], indices: list[int]) -> list[Any]:
        """See :class:`_SubEnvs`."""
        envs = self.vector_env.envs
        return [envs[i].get_wrapper_attr(name)(*args, **kwargs) for i in indices]

    def has(self, name: str) -> bool:
        """See :class:`_SubEnvs`."""
        return all(env.has_wrapper_attr(name) for env in self.vector_env.envs)

    def is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: list[int]) -> list[bool]:
        """See :class:`_SubEnvs`."""
        envs = self.vector_env.envs
        return [is_wrapped(envs[i], wrapper_class) for i in indices]


class _AsyncSubEnvs(_SubEnvs):
    """The workers of an ``AsyncVectorEnv``, reached one by one with Gymnasium's own ``_call`` message.

    ``AsyncVectorEnv.call`` sends its call to every worker; SB3's ``indices`` name some. So this sends the
    message that ``call_async`` sends (``("_call", (name, args, kwargs))``, which the worker answers with
    ``env.get_wrapper_attr(name)``, called if callable) to the named workers' pipes only, and hands failures
    to ``AsyncVectorEnv._raise_if_errors``, as ``call_wait`` does. Attributes are read with the call
    ``get_wrapper_attr(name)`` (so a callable one is returned, not called) and set with ``__setattr__``.
    """

    # Names that Gymnasium's worker refuses in a "_call" message (and shuts down on)
    _REFUSED = frozenset({"reset", "step", "close", "_setattr", "_check_spaces"})

    def __init__(self, vector_env: AsyncVectorEnv) -> None:
        self.vector_env = vector_env

    def get(self, name: str, indices: list[int]) -> list[Any]:
        """See :class:`_SubEnvs`."""
        self._require(name, indices)
        return self._call(indices, "get_wrapper_attr", name)

    def set(self, name: str, value: Any, indices: list[int]) -> None:
        """See :class:`_SubEnvs`."""
        self._call(indices, "__setattr__", name, value)

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], indices: list[int]) -> list[Any]:
        """See :class:`_SubEnvs`."""
        if name in self._REFUSED:
            raise ValueError(
                f"env_method({name!r}): AsyncVectorEnv's workers do not take {name!r} as a call; "
                "use the VecEnv's reset(), step() or close()"
            )
        self._require(name, indices)
        return self._call(indices, name, *args, **kwargs)

    def has(self, name: str) -> bool:
        """See :class:`_SubEnvs`."""
        return all(self._call(list(range(self.vector_env.num_envs)), "has_wrapper_attr", name))

    def is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: list[int]) -> list[bool]:
        """See :class:`_SubEnvs`."""
        names = _class_names(wrapper_class)
        return [not names.isdisjoint(_wrapper_names(text)) for text in self._call(indices, "__str__")]

    def _require(self, name: str, indices: list[int]) -> None:
        """Raise ``AttributeError`` here, not in the workers (where an error shuts the worker down)."""
        has = self._call(indices, "has_wrapper_attr", name)
        missing = sorted({i for i, has_i in zip(indices, has, strict=True) if not has_i})
        if missing:
            raise AttributeError(f"sub-envs {missing} of the AsyncVectorEnv have no attribute {name!r}")

    def _call(self, indices: list[int], name: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Call ``name`` in the workers of ``indices`` (once per index, in order); their results."""
        env = self.vector_env
        env._assert_is_running()
        if env._state != AsyncState.DEFAULT:
            raise AlreadyPendingCallError(
                f"Calling a sub-env's attribute while waiting for a pending call to `{env._state.value}` to complete",
                str(env._state.value),
            )
        dead = sorted({i for i in indices if env.parent_pipes[i] is None})
        if dead:
            raise RuntimeError(f"the workers of sub-envs {dead} were shut down by an earlier error")
        results: list[Any] = [None] * len(indices)
        remaining = list(enumerate(indices))
        while remaining:  # a round sends at most one message per worker (an index may repeat)
            round_: dict[int, int] = {}
            later: list[tuple[int, int]] = []
            for position, i in remaining:
                if i in round_:
                    later.append((position, i))
                else:
                    round_[i] = position
            for i in round_:
                env.parent_pipes[i].send(("_call", (name, args, kwargs)))
            replies = [env.parent_pipes[i].recv() for i in round_]
            successes = [success for _, success in replies]
            # _raise_if_errors counts the failures as num_envs - sum(successes)
            env._raise_if_errors(successes + [True] * (env.num_envs - len(successes)))
            for position, (result, _) in zip(round_.values(), replies, strict=True):
                results[position] = result
            remaining = later
        return results


class _BatchedSubEnvs(_SubEnvs):
    """A vector env without sub-env objects: its own ``get_attr``/``set_attr``/``call``, else its attributes."""

    def __init__(self, vector_env: VectorEnv) -> None:
        self.vector_env = vector_env
        self.num_envs = vector_env.num_envs

    def get(self, name: str, indices: list[int]) -> list[Any]:
        """See :class:`_SubEnvs`."""
        get_attr = self._api("get_attr")
        if get_attr is None:
            return [self._chain_attr(name)[1]] * len(indices)
        values = self._per_env(get_attr(name), "get_attr")
        return [values[i] for i in indices]

    def set(self, name: str, value: Any, indices: list[int]) -> None:
        """See :class:`_SubEnvs`."""
        self._require_all(indices, "set_attr")
        set_attr = self._api("set_attr")
        if set_attr is not None:
            set_attr(name, [value] * self.num_envs)  # a list: one value per sub-env, even if value is a list
            return
        try:
            holder, _ = self._chain_attr(name)
        except AttributeError:
            holder = self.vector_env
        setattr(holder, name, value)

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], indices: list[int]) -> list[Any]:
        """See :class:`_SubEnvs`."""
        self._require_all(indices, "env_method")
        call = self._api("call")
        if call is None:
            return [self._chain_attr(name)[1](*args, **kwargs)] * len(indices)
        results = self._per_env(call(name, *args, **kwargs), "call")
        return [results[i] for i in indices]

    def has(self, name: str) -> bool:
        """See :class:`_SubEnvs`."""
        get_attr = self._api("get_attr")
        try:
            if get_attr is None:
                self._chain_attr(name)
            else:
                get_attr(name)
        except AttributeError:
            return False
        return True

    def is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: list[int]) -> list[bool]:
        """See :class:`_SubEnvs`: whether the vector env's wrapper chain holds a ``wrapper_class``."""
        env: VectorEnv = self.vector_env
        found = isinstance(env, wrapper_class)
        while not found and isinstance(env, VectorWrapper):
            env = env.env
            found = isinstance(env, wrapper_class)
        return [found] * len(indices)

    def _api(self, method: str) -> Any:
        """The vector env's per-sub-env method (``get_attr``, ``set_attr``, ``call``), or None."""
        try:
            value = self._chain_attr(method)[1]
        except AttributeError:
            return None
        return value if callable(value) else None

    def _chain_attr(self, name: str) -> tuple[VectorEnv, Any]:
        """The first env of the vector env's wrapper chain (outermost first) with the attribute, and its value."""
        env: VectorEnv = self.vector_env
        while True:
            try:
                return env, getattr(env, name)
            except AttributeError:
                if not isinstance(env, VectorWrapper):
                    raise AttributeError(f"{type(self.vector_env).__name__} has no attribute {name!r}") from None
                env = env.env

    def _per_env(self, values: Any, method: str) -> Sequence[Any]:
        if not isinstance(values, (list, tuple)) or len(values) != self.num_envs:
            raise TypeError(
                f"{type(self.vector_env.unwrapped).__name__}.{method}() must return one value per sub-env "
                f"(a tuple of num_envs={self.num_envs}), got {type(values).__name__}"
            )
        return values

    def _require_all(self, indices: list[int], method: str) -> None:
        if sorted(set(indices)) != list(range(self.num_envs)):
            raise ValueError(
                f"{method}: indices must name every sub-env (or be None): "
                f"{type(self.vector_env.unwrapped).__name__} has no sub-env objects, it acts on all at once"
            )


def _sub_envs(vector_env: VectorEnv) -> _SubEnvs:
    unwrapped = vector_env.unwrapped
    if isinstance(unwrapped, SyncVectorEnv):
        return _SyncSubEnvs(unwrapped)
    if isinstance(unwrapped, AsyncVectorEnv):
        return _AsyncSubEnvs(unwrapped)
    return _BatchedSubEnvs(vector_env)


def _class_names(cls: type) -> set[str]:
    """The names of ``cls`` and of its subclasses (those defined so far in this process)."""
    seen: set[type] = set()
    stack = [cls]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(current.__subclasses__())
    return {current.__name__ for current in seen}


def _wrapper_names(text: str) -> list[str]:
    """The class names in Gymnasium's ``str(env)``, outermost first: ``"<Monitor<TimeLimit<CartPoleEnv<...>>>>"``."""
    return re.findall(r"<([^<>\s]+)", text)


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
    info: dict[str, Any], indices: Sequence[int] | np.ndarray | None, num_envs: int, skip: Iterable[str] = ()
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


def _set_rows(obs: _Obs, mask: np.ndarray, source: _Obs) -> None:
    if isinstance(obs, dict):
        for key, value in obs.items():
            value[mask] = source[key][mask]
    else:
        obs[mask] = source[mask]


def _rows_equal(a: _Obs, b: _Obs, mask: np.ndarray) -> bool:
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
