"""``FitnessWeightsVectorEnv``: N trainees stepped together by the batched kernel."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from fitness_weights_env import dynamics
from fitness_weights_env.backend import Backend, namespace, to_numpy
from fitness_weights_env.env import check_options
from fitness_weights_env.episode import (
    DEFAULT_MAX_EPISODE_STEPS,
    Adjustment,
    EpisodeConfig,
    ProfileLike,
    check_max_episode_steps,
)
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import LAYOUT
from fitness_weights_env.profile import TraineeProfile
from fitness_weights_env.render import RENDER_MODES, check_render_mode, render_trainee

__all__ = ["TRAINEE_ATTRIBUTES", "FitnessWeightsVectorEnv"]

InfoMatrices = Literal["final", "every_step"]

TRAINEE_ATTRIBUTES = ("profile", "np_random", "np_random_seed", "observation_space", "action_space", "render")
"""The names that :meth:`FitnessWeightsVectorEnv.get_attr` and ``call`` answer with one value per trainee."""

_FIXED_ATTRIBUTES = frozenset(
    {
        "num_envs",
        "state",
        "config",
        "elapsed_steps",
        "autoreset_mode",
        "metadata",
        "render_mode",
        "single_observation_space",
        "single_action_space",
        "observation_space",
        "action_space",
        "profile",
        "np_random_seed",
        "render",
        "reset",
        "step",
        "call",
        "get_attr",
        "set_attr",
    }
)
"""Names that :meth:`FitnessWeightsVectorEnv.set_attr` refuses: fixed when the env is made, read-only, or methods."""

_AUTORESET_MODES = ", ".join(f"AutoresetMode.{mode.name} ({mode.value!r})" for mode in AutoresetMode)


def _check_autoreset_mode(value: Any) -> AutoresetMode:
    """An ``AutoresetMode`` from a member or its value (``"NextStep"``, ``"SameStep"``, ``"Disabled"``)."""
    if isinstance(value, AutoresetMode):
        return value
    try:
        return AutoresetMode(value)
    except (ValueError, TypeError):
        raise FieldError("autoreset_mode", f"must be one of {_AUTORESET_MODES}", value) from None


def _scatter(info: dict[str, Any], index: Any, n: int, xp: Any, device: Any) -> dict[str, Any]:
    """The batched info of the trainees at ``index`` spread over all ``n`` (0 elsewhere), nested dicts too."""
    full: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, dict):
            full[key] = _scatter(value, index, n, xp, device)
        else:
            full[key] = xp.zeros((n, *value.shape[1:]), dtype=value.dtype, device=device)
            full[key][index] = value
    return full


def _with_masks(
    info: dict[str, Any], present: np.ndarray, as_array: Callable[[Any], Any] | None = None
) -> dict[str, Any]:
    """Add Gymnasium's ``_key`` mask beside every key, in nested dicts too (as ``VectorEnv._add_info`` does).

    ``as_array`` makes each mask an array of the env's backend from a copy of ``present`` (numpy's: ``None``).
    """
    for key in list(info):
        if isinstance(info[key], dict):
            _with_masks(info[key], present, as_array)
        info[f"_{key}"] = present.copy() if as_array is None else as_array(present.copy())
    return info


def _check_device(backend: Backend, device: Any) -> Any:
    """The torch device of the torch backend (``"cpu"`` by default); ``None`` for numpy, which has no other."""
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise FieldError("device", "needs backend='torch': the numpy backend runs on the host only", device)
        return None
    import torch

    try:
        checked = torch.device("cpu" if device is None else device)
        torch.empty(0, device=checked)  # a device that does not exist here fails now, not at the first step
    except (RuntimeError, TypeError, AssertionError) as error:
        raise FieldError("device", f"is not a usable torch device ({type(error).__name__})", device) from None
    return checked


class FitnessWeightsVectorEnv(VectorEnv):
    """N independent FitnessWeights trainees stepped in one call of the batched kernel.

    Observation, action, reward and info are those of
    :class:`~fitness_weights_env.env.FitnessWeightsEnv`, batched along a leading axis of size
    ``num_envs``; info follows Gymnasium's vector convention (each key has a boolean ``_key`` mask, and
    values are 0 where the mask is false). Create it with ``gym.make_vec("FitnessWeights-v0", num_envs=N)``
    (keyword arguments go to the constructor) or directly. Step for step, it equals Gymnasium's
    ``SyncVectorEnv`` over N ``gym.make("FitnessWeights-v0")`` seeded alike, in every autoreset mode, but
    one call of :mod:`~fitness_weights_env.dynamics` steps every trainee.

    ## Autoreset modes

    ``autoreset_mode`` (also ``metadata["autoreset_mode"]``) says what follows the step that ends an
    episode, as Gymnasium 1.x defines it (https://farama.org/Vector-Autoreset-Mode):

    - ``AutoresetMode.SAME_STEP`` (default): that step already returns the first observation of the
      trainee's next episode; its last observation and info are in ``info["final_obs"]`` and
      ``info["final_info"]`` (masked by ``info["_final_obs"]`` and ``info["_final_info"]``).
    - ``AutoresetMode.NEXT_STEP``: that step returns the last observation and info; the trainee's next
      step ignores its action (which must still be valid) and restarts it: the first observation,
      reward 0, ``terminated`` and ``truncated`` false, the new episode's info.
    - ``AutoresetMode.DISABLED``: that step returns the last observation and info; ``step`` raises
      ``ResetNeeded`` until ``reset(options={"reset_mask": mask})`` restarts the trainee.

    ``SAME_STEP`` is what Stable-Baselines3 expects (``sb3_ext.FitnessWeightsVecEnv`` relies on it);
    Gymnasium's observation wrappers (``NormalizeObservation``, ``TransformObservation``, ...) take
    ``NEXT_STEP`` (most also ``DISABLED``). Nothing terminates; an episode is truncated after
    ``max_episode_steps`` steps.

    ## Matrices in info

    Copying both matrices of every trainee costs more than the step itself, so by default
    (``info_matrices="final"``) ``cq_matrix`` and ``qx_matrix`` appear in ``reset``'s info and in the info
    of an episode's last step only: ``info["final_info"]`` with ``SAME_STEP``, the step's own info (masked
    by the trainees that finished) with ``NEXT_STEP`` and ``DISABLED``. Those are the episode-final
    matrices that training uses as aux targets; :attr:`state` (``state.cq``, ``state.qx``) gives the live
    matrices without a copy. ``info_matrices="every_step"`` adds them to every info, like the single env.

    ## Reset

    ``reset(seed=s)`` seeds trainee ``i`` with ``s + i`` (a list seeds each; ``None`` keeps a trainee's
    generator), so the vector env reproduces N single envs seeded alike. The options are:

    | Option            | Meaning                                                                  |
    |-------------------|--------------------------------------------------------------------------|
    | ``"reset_mask"``  | (num_envs,) bool numpy array: restart only these trainees (the others    |
    |                   | keep their episode and observation); with it, seeds and profiles of the   |
    |                   | unmasked trainees are ignored and the info holds the masked ones only    |
    | ``"profiles"``    | one profile (or ``None``: drawn from the population) per trainee         |
    | ``"profile"``     | one profile for every trainee reset, the single env's option             |

    ``options`` itself is left unchanged (``SyncVectorEnv`` removes ``"reset_mask"`` from it), so the vector
    wrappers that read the mask after the env, such as ``RecordEpisodeStatistics``, see it.

    ## Backends: numpy, or torch on any device

    ``backend="torch"`` (with ``device="cuda"``, ``"cpu"``, ...) keeps the whole state in torch tensors on the
    device and steps it with the same kernel (:mod:`fitness_weights_env.backend`). Observations, rewards,
    ``terminated``, ``truncated`` and the info's values (and masks) are then tensors on the device, and actions
    may be a tensor there (or a numpy array). Two things differ from the numpy backend: with ``SAME_STEP``,
    ``info["final_obs"]`` is one ``(num_envs, size)`` tensor, 0 where ``info["_final_obs"]`` is false, as the
    other batched keys are, not an object array of rows; and random draws (new trainees, ``adjustment="random"``)
    are still made by each trainee's numpy generator and copied to the device, so that the two backends give
    the same episodes, to rounding.

    ## Attributes of the trainees

    A ``SyncVectorEnv`` answers ``get_attr(name)`` with one value per sub-env object; this env has no
    sub-env objects, so :meth:`get_attr`, :meth:`set_attr` and :meth:`call` give names one of two meanings:

    - **Per trainee** (:data:`TRAINEE_ATTRIBUTES`): ``profile`` (the trainee as a
      :class:`~fitness_weights_env.profile.TraineeProfile`, as the single env's ``profile``), ``np_random``
      (its generator; settable), ``np_random_seed`` (its seed, ``-1`` once ``np_random`` is set),
      ``observation_space`` and ``action_space`` (the single spaces, as a single env's), and ``render``
      (its frame). Each gives a tuple of ``num_envs`` values, trainee ``i``'s at ``i``.
    - **Env level**: any other attribute of this env (``max_episode_steps``, ``info_matrices``, ``config``,
      ``state``, ...), which all trainees share. ``get_attr`` returns the value ``num_envs`` times (the same
      object); ``call`` calls a method once, since one batched call serves every trainee, and returns its
      result ``num_envs`` times. ``set_attr`` takes one value, or a list of ``num_envs`` equal values
      (``max_episode_steps`` and ``info_matrices`` are validated, and apply from the next step on); names
      fixed when the env is made (``num_envs``, ``state``, ``config``, the spaces, ``render_mode``,
      ``autoreset_mode``, ``metadata``) or private raise ``AttributeError``.

    Args:
        num_envs: Number of trainees N.
        render_mode: ``"ansi"`` or ``"rgb_array"``: :meth:`render` returns one text summary or heatmap per trainee.
        autoreset_mode: ``AutoresetMode.SAME_STEP`` (default), ``NEXT_STEP`` or ``DISABLED``, or its value
            (``"SameStep"``, ...); see above.
        max_episode_steps: Episodes are truncated after this many steps (default 64; ``None``: never).
        step_size: Size of one adjustment.
        adjustment: ``"increase"`` or ``"random"`` (one draw per trainee and step).
        init: Initial matrices, ``"uniform"`` or ``"prior"``.
        drift_coef: Drift penalty coefficient.
        info_matrices: ``"final"`` or ``"every_step"`` (see above).
        backend: ``"numpy"`` (default) or ``"torch"`` (see above).
        device: The torch backend's device (default ``"cpu"``); the numpy backend takes only ``None`` or ``"cpu"``.

    Raises:
        FieldError: An argument is invalid (the error names it).
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4, "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        render_mode: str | None = None,
        *,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        max_episode_steps: int | None = DEFAULT_MAX_EPISODE_STEPS,
        step_size: float = 0.05,
        adjustment: Adjustment = "increase",
        init: dynamics.Init = "uniform",
        drift_coef: float = 0.01,
        info_matrices: InfoMatrices = "final",
        backend: Backend = "numpy",
        device: Any = None,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise FieldError("num_envs", "must be a positive integer", num_envs)
        self.num_envs = int(num_envs)
        self.autoreset_mode = _check_autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        self.info_matrices = info_matrices
        self.render_mode = check_render_mode(render_mode)
        self.max_episode_steps = max_episode_steps
        self.config = EpisodeConfig(step_size=step_size, adjustment=adjustment, init=init, drift_coef=drift_coef)
        self.single_observation_space = spaces.Box(0.0, 1.0, shape=(LAYOUT.size,), dtype=np.float32)
        self.single_action_space = spaces.Discrete(dynamics.N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.backend: Backend = backend
        self._xp = namespace(backend)  # validates the backend
        self.device = _check_device(backend, device)
        self.state = dynamics.WeightState.zeros(self.num_envs, self.config.step_size, xp=self._xp, device=self.device)
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._seeds: list[int | None] = [None] * self.num_envs
        self._started = np.zeros(self.num_envs, dtype=bool)  # reset at least once
        self._all_started = False
        self._autoreset = np.zeros(self.num_envs, dtype=bool)  # finished at the last step, not restarted yet
        self._elapsed_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._all = np.ones(self.num_envs, dtype=bool)

    @property
    def info_matrices(self) -> InfoMatrices:
        """When infos carry the matrices: ``"final"`` or ``"every_step"`` (see the class docstring)."""
        return self._info_matrices

    @info_matrices.setter
    def info_matrices(self, value: InfoMatrices) -> None:
        if value not in ("final", "every_step"):
            raise FieldError("info_matrices", "must be 'final' or 'every_step'", value)
        self._info_matrices: InfoMatrices = value

    @property
    def max_episode_steps(self) -> int | None:
        """Episodes are truncated after this many steps (``None``: never)."""
        return self._max_episode_steps

    @max_episode_steps.setter
    def max_episode_steps(self, value: int | None) -> None:
        self._max_episode_steps = check_max_episode_steps(value)

    @property
    def elapsed_steps(self) -> np.ndarray:
        """(num_envs,) the steps each trainee has taken in its current episode (a copy)."""
        return self._elapsed_steps.copy()

    @property  # type: ignore[misc]  # read-only: set per trainee with set_attr, VectorEnv's is settable
    def np_random(self) -> tuple[np.random.Generator, ...]:  # type: ignore[override]  # a tuple: one per trainee
        """Each trainee's generator, as ``SyncVectorEnv``'s (a trainee without one gets a randomly seeded one)."""
        return tuple(self._generator(i) for i in range(self.num_envs))

    @property
    def np_random_seed(self) -> tuple[int, ...]:  # type: ignore[override]  # a tuple: one per trainee
        """Each trainee's seed (``-1`` for a generator set with ``set_attr("np_random", ...)``)."""
        for i in range(self.num_envs):
            self._generator(i)  # creates the missing generators and their seeds
        return tuple(cast("int", seed) for seed in self._seeds)

    def _generator(self, i: int) -> np.random.Generator:
        rng = self._rngs[i]
        if rng is None:
            rng, self._seeds[i] = seeding.np_random()
            self._rngs[i] = rng
        return rng

    # --- reset and step ---------------------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes for every trainee, or for those in ``options["reset_mask"]``.

        Args:
            seed: ``s`` seeds trainee ``i`` with ``s + i``; a list gives each trainee's seed; ``None`` (or a
                ``None`` entry) keeps the trainee's generator (a fresh one on its first reset).
            options: ``{"reset_mask": mask, "profiles": [...]}`` or ``{"profile": p}`` (see the class docstring).

        Returns:
            The observations of all trainees (those outside the mask unchanged) and the info of the reset ones.

        Raises:
            FieldError: A bad seed or option (the error names it), or a bad profile field.
        """
        options = check_options(options, {"reset_mask", "profiles", "profile"})
        mask = self._check_reset_mask(options.get("reset_mask"))
        seeds = self._check_seeds(seed)
        profiles = self._check_profiles(options)
        index = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        for i in index:
            if seeds[i] is not None:
                self._rngs[i], self._seeds[i] = seeding.np_random(seeds[i])
        self._start(slice(None) if mask is None else index, [profiles[i] for i in index])
        self._started[index] = True
        self._all_started = bool(self._started.all())
        self._autoreset[index] = False
        return self._copy(self.state.observation), self._batched_info(mask, matrices=True)

    def _check_reset_mask(self, mask: Any) -> np.ndarray | None:
        """The validated ``options["reset_mask"]``; ``None`` when it selects every trainee (or is absent)."""
        if mask is None:
            return None
        field = "options['reset_mask']"
        if not isinstance(mask, np.ndarray):
            raise FieldError(field, f"must be a numpy array of dtype bool, got {type(mask).__name__}")
        if mask.shape != (self.num_envs,):
            raise FieldError(field, f"must have shape ({self.num_envs},) (num_envs), got shape {mask.shape}")
        if mask.dtype != np.bool_:
            raise FieldError(field, f"must have dtype bool, got dtype {mask.dtype}")
        if not mask.any():
            raise FieldError(field, "must select at least one trainee, got no True value")
        return None if mask.all() else mask.copy()

    def _check_seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        """One seed (or ``None``) per trainee."""
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence) or len(seed) != self.num_envs:
            raise FieldError("seed", f"must be an int, None or a list of num_envs={self.num_envs} seeds", seed)
        bad = [s for s in seed if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)))]
        if bad or any(s is not None and s < 0 for s in seed):
            raise FieldError("seed", "entries must be non-negative integers or None", bad or list(seed))
        return [None if s is None else int(s) for s in seed]

    def _check_profiles(self, options: dict[str, Any]) -> list[TraineeProfile | None]:
        """One validated profile (or ``None``: drawn from the population) per trainee."""
        if "profile" in options:
            if "profiles" in options:
                raise FieldError("options", "give 'profile' (one for all trainees) or 'profiles', not both")
            profile = options["profile"]
            profiles: Sequence[ProfileLike | None] = [profile] * self.num_envs
        else:
            given = options.get("profiles")
            if given is None:
                return [None] * self.num_envs
            if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
                raise FieldError("options['profiles']", f"must be a list of num_envs={self.num_envs} profiles")
            if len(given) != self.num_envs:
                raise FieldError("options['profiles']", f"must have num_envs={self.num_envs} entries, got {len(given)}")
            profiles = given
        coerced: dict[int, TraineeProfile] = {}  # one coercion per distinct profile object
        checked: list[TraineeProfile | None] = []
        for profile in profiles:
            if profile is not None and id(profile) not in coerced:
                coerced[id(profile)] = TraineeProfile.coerce(profile)
            checked.append(None if profile is None else coerced[id(profile)])
        return checked

    def _start(self, index: np.ndarray | slice, profiles: Sequence[ProfileLike | None]) -> None:
        """Start new episodes for the trainees at ``index`` (their generators exist or are created)."""
        positions = range(self.num_envs)[index] if isinstance(index, slice) else index
        rngs = [self._generator(int(i)) for i in positions]
        self._reset_kernel(index, rngs, profiles)
        self._elapsed_steps[index] = 0

    # --- the kernel: v0's here, v1's in FitnessWeightsV1VectorEnv ---------------------------------------------------

    def _reset_kernel(
        self, index: np.ndarray | slice, rngs: list[np.random.Generator], profiles: Sequence[ProfileLike | None]
    ) -> None:
        """Draw and start the episodes of the trainees at ``index``, trainee ``i`` with ``rngs[i]``."""
        starts = self.config.draw_starts(rngs, profiles)
        dynamics.reset(self.state, self._on_device(index), *map(self._on_device, starts))

    def _step_kernel(self, actions: Any, stepping: np.ndarray | None) -> Any:
        """One kernel step of every trainee; random draws only for those in ``stepping`` (all for ``None``)."""
        deltas = self._on_device(self._draw_deltas(stepping))
        return dynamics.step(self.state, actions, deltas, self.config.drift_coef)

    def _kernel_info(self, index: Any, matrices: bool) -> dict[str, Any]:
        """The kernel's batched info of the trainees at ``index`` (an index of the backend, or a slice)."""
        return dynamics.step_info(self.state, index, matrices=matrices)

    # --- the backend: host bookkeeping in numpy, the state where the backend keeps it -----------------------------

    def _on_device(self, x: Any) -> Any:
        """A host array (an index, a mask, draws) as an array of the backend; floats, slices and numpy's as they are."""
        if self._xp is np or not isinstance(x, np.ndarray):
            return x
        return self._xp.asarray(np.ascontiguousarray(x), device=self.device)  # a read-only view is copied first

    def _copy(self, x: Any) -> Any:
        return x.copy() if self._xp is np else self._xp.asarray(x, copy=True)

    def _check_actions(self, actions: Any) -> Any:
        """The validated actions as a flat int64 array of the backend (a tensor may be given to the torch one)."""
        if self._xp is np or not type(actions).__module__.startswith("torch"):
            return self._on_device(dynamics.check_actions(actions, (self.num_envs,)))
        xp, n = self._xp, dynamics.N_ACTIONS
        if not xp.isdtype(actions.dtype, "integral"):
            raise dynamics.InvalidActionError("actions", f"must be integers in [0, {n}), got dtype {actions.dtype}")
        if tuple(actions.shape) != (self.num_envs,):
            raise dynamics.InvalidActionError(
                "actions", f"expected shape {(self.num_envs,)}, got shape {tuple(actions.shape)}"
            )
        actions = xp.astype(actions.to(self.device), xp.int64)
        bad = (actions < 0) | (actions >= n)
        if bool(xp.any(bad)):  # one synchronization per step: every input is bounded
            raise dynamics.InvalidActionError("actions", f"must be in [0, {n})", actions[bad][:5].tolist())
        return actions

    def _terminated(self) -> np.ndarray:
        """(num_envs,) bool: the trainees whose episode ended in a terminal state this step (none in v0)."""
        return np.zeros(self.num_envs, dtype=bool)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Adjust one cell per trainee; finished trainees restart as ``autoreset_mode`` says.

        Args:
            actions: One action in [0, 685) per trainee.

        Returns:
            Observations (N, 198), rewards (N,) float64, terminated and truncated (N,) bool, and the info.

        Raises:
            ResetNeeded: A trainee was never reset, or (``DISABLED``) finished its episode and was not reset.
            InvalidActionError: ``actions`` are not ``num_envs`` integers in [0, 685).
        """
        if not self._all_started:
            missing = np.flatnonzero(~self._started).tolist()
            raise gym.error.ResetNeeded(f"call reset() before step(): trainees {missing} were never reset")
        actions = self._check_actions(actions)
        restarting = self._autoreset
        any_restarting = bool(restarting.any())
        if any_restarting and self.autoreset_mode == AutoresetMode.DISABLED:
            raise gym.error.ResetNeeded(
                f"trainees {np.flatnonzero(restarting).tolist()} finished their episodes and autoreset_mode is "
                "AutoresetMode.DISABLED: restart them with reset(options={'reset_mask': mask}) before step()"
            )
        every_step = self.info_matrices == "every_step"
        n = self.num_envs
        if any_restarting and restarting.all():  # NEXT_STEP, every trainee restarts: no adjustment to make
            self._start(slice(None), [None] * n)
            self._autoreset = np.zeros(n, dtype=bool)
            no = self._on_device(np.zeros(n, dtype=bool))
            observation, rewards = self._copy(self.state.observation), self._on_device(np.zeros(n))
            return observation, rewards, no, self._copy(no), self._batched_info(None, every_step)

        # One kernel call for the batch. NEXT_STEP: restarting trainees are adjusted too (without a random
        # draw), then restarted, which overwrites their state; their reward is 0.
        stepping = ~restarting if any_restarting else None
        rewards = self._step_kernel(actions, stepping)
        self._elapsed_steps += 1
        if any_restarting:
            index = np.flatnonzero(restarting)
            self._start(index, [None] * len(index))
            rewards[self._on_device(index)] = 0.0
        terminated = self._terminated()  # host arrays: the episodes' bookkeeping stays in numpy
        if self.max_episode_steps is None:
            truncated = np.zeros(n, dtype=bool)
        else:
            truncated = self._elapsed_steps >= self.max_episode_steps
        done = terminated | truncated
        any_done = bool(done.any())
        observation = self._copy(self.state.observation)
        ended = (terminated, truncated) if self._xp is np else (self._on_device(terminated), self._on_device(truncated))

        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            if not any_done:
                return observation, rewards, *ended, self._batched_info(None, every_step)
            done_index = np.flatnonzero(done)
            final_obs = self._final_obs(observation, done, done_index)
            final_info = self._batched_info(done, matrices=True)
            self._start(slice(None) if done.all() else done_index, [None] * len(done_index))
            on_device = self._on_device(done)
            observation[on_device] = self.state.observation[on_device]
            info = self._batched_info(None, every_step)
            info.update(final_obs=final_obs, final_info=final_info)
            info.update(_final_obs=self._on_device(done.copy()), _final_info=self._on_device(done.copy()))
            return observation, rewards, *ended, info

        self._autoreset = done
        info = self._batched_info(None, every_step)
        if any_done and not every_step:  # the episode-final matrices of the finished trainees
            final = self._batched_info(done, matrices=True)
            for key in final.keys() - info.keys():
                info[key] = final[key]
        return observation, rewards, *ended, info

    def _final_obs(self, observation: Any, done: np.ndarray, done_index: np.ndarray) -> Any:
        """``info["final_obs"]``: numpy's object array of the finished rows, or the torch backend's masked tensor."""
        if self._xp is not np:
            on_device = self._on_device(done)
            final_obs = self._xp.zeros_like(observation)
            final_obs[on_device] = observation[on_device]
            return final_obs
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i, row in zip(done_index, observation[done_index], strict=True):  # rows of a copy
            final_obs[i] = row
        return final_obs

    def _draw_deltas(self, stepping: np.ndarray | None) -> np.ndarray | float:
        """The change of each adjusted cell: a draw only for the trainees in ``stepping`` (all for ``None``)."""
        rngs = cast("list[np.random.Generator]", self._rngs)  # every trainee has been reset
        if stepping is None:
            return self.config.draw_deltas(rngs)
        index = np.flatnonzero(stepping)
        drawn = self.config.draw_deltas([rngs[i] for i in index])
        if isinstance(drawn, float):
            return drawn
        deltas = np.zeros(self.num_envs)
        deltas[index] = drawn
        return deltas

    def _batched_info(self, mask: np.ndarray | None, matrices: bool) -> dict[str, Any]:
        """The info of the trainees in ``mask`` (all for ``None``), batched as Gymnasium's ``_add_info`` does.

        Each key has its ``_key`` mask, and the values of trainees outside the mask are 0.
        """
        as_array = None if self._xp is np else self._on_device
        if mask is None or mask.all():
            return _with_masks(self._kernel_info(slice(None), matrices), self._all, as_array)
        index = self._on_device(np.flatnonzero(mask))
        info = _scatter(self._kernel_info(index, matrices), index, self.num_envs, self._xp, self.device)
        return _with_masks(info, mask, as_array)

    # --- rendering --------------------------------------------------------------------------------------------------

    def render(self) -> tuple[str, ...] | tuple[np.ndarray, ...] | None:
        """One text summary (``render_mode="ansi"``) or heatmap image (``"rgb_array"``) per trainee.

        Raises:
            ResetNeeded: A trainee was never reset.
        """
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if not self._all_started:
            raise gym.error.ResetNeeded("call reset() before render()")
        steps = self._elapsed_steps
        state = self.state if self._xp is np else self.state.to_numpy()  # v1's state is numpy only
        frames = tuple(render_trainee(self.render_mode, state, i, int(steps[i])) for i in range(self.num_envs))
        # one render mode for every trainee: all texts ("ansi") or all images ("rgb_array")
        return cast("tuple[str, ...] | tuple[np.ndarray, ...]", frames)

    # --- attributes, as SyncVectorEnv's ------------------------------------------------------------------------------

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call a method (or read an attribute) for every trainee, as ``SyncVectorEnv.call``.

        A per-trainee name (:data:`TRAINEE_ATTRIBUTES`) gives each trainee's value; any other is the env's
        own: a method is called once with ``args`` and ``kwargs`` and its result repeated, an attribute
        repeated (see the class docstring).

        Args:
            name: The method or attribute.
            *args: Positional arguments of the method.
            **kwargs: Keyword arguments of the method.

        Returns:
            One result per trainee.

        Raises:
            AttributeError: The env has no attribute ``name``.
            ResetNeeded: ``profile`` or ``render`` of a trainee that was never reset.
        """
        n = self.num_envs
        if name in TRAINEE_ATTRIBUTES:
            if name == "render":
                frames = self.render(*args, **kwargs)
                return (None,) * n if frames is None else frames
            if name == "profile":
                if not self._all_started:
                    raise gym.error.ResetNeeded("call reset() first: a trainee that was never reset has no profile")
                vectors = to_numpy(self.state.observation[:, : LAYOUT.size])
                return tuple(TraineeProfile.from_vector(row) for row in vectors)
            if name in ("observation_space", "action_space"):
                return (getattr(self, f"single_{name}"),) * n
            return getattr(self, name)  # np_random, np_random_seed: tuples already
        try:
            value = getattr(self, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r} (per-trainee names: {', '.join(TRAINEE_ATTRIBUTES)})"
            ) from None
        if callable(value):
            value = value(*args, **kwargs)
        return (value,) * n

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The attribute ``name`` for every trainee, as ``SyncVectorEnv.get_attr`` (which is :meth:`call`).

        Args:
            name: The attribute (see the class docstring for per-trainee and env-level names).

        Returns:
            One value per trainee.
        """
        return self.call(name)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set the attribute ``name``, as ``SyncVectorEnv.set_attr``.

        Args:
            name: ``"np_random"`` (one generator per trainee) or an env-level attribute (one value for all).
            values: A list or tuple of ``num_envs`` values, trainee ``i``'s at ``i``, or a single value for every
                trainee. An env-level attribute takes one value: the list's values must be equal.

        Raises:
            AttributeError: ``name`` cannot be set (fixed when the env is made, read-only, or private).
            FieldError: ``values`` has the wrong length, differs between trainees for an env-level attribute, or
                (``np_random``) holds something other than numpy generators; or the attribute refuses the value.
        """
        n = self.num_envs
        if isinstance(values, (list, tuple)):
            if len(values) != n:
                raise FieldError("values", f"must be one value or a list of num_envs={n} values, got {len(values)}")
            per_trainee = list(values)
        else:
            per_trainee = [values] * n
        if name == "np_random":
            bad = [type(v).__name__ for v in per_trainee if not isinstance(v, np.random.Generator)]
            if bad:
                raise FieldError("values", f"np_random takes numpy Generators, got {sorted(set(bad))}")
            self._rngs = per_trainee
            self._seeds = [-1] * n
            return
        if name in _FIXED_ATTRIBUTES or name.startswith("_"):
            raise AttributeError(f"set_attr: {name!r} of {type(self).__name__} cannot be set (make a new env instead)")
        first = per_trainee[0]
        if not all(v is first or data_equivalence(v, first, exact=True) for v in per_trainee[1:]):
            raise FieldError("values", f"{name!r} is one value for all trainees of the batched env; got different ones")
        setattr(self, name, first)
