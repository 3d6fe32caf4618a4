"""``DeviceVecEnv``: FitnessWeights trainees whose whole state stays on a torch device, for PPO's device rollout.

An SB3 ``VecEnv`` over a :class:`~fitness_weights_env.FitnessWeightsVectorEnv` with ``backend="torch"``. It has
two faces:

- :meth:`DeviceVecEnv.step_device` takes the actions as a tensor and returns tensors on the env's device (a
  :class:`DeviceStep`): what :class:`sb3_ext.PPO` calls when its env is a ``DeviceVecEnv`` on its own device,
  so that the rollout (the policy's forward, the env's step, the buffer's write) never leaves the device;
- SB3's ``VecEnv`` contract (``reset``, ``step``, ``get_attr``, ...) in numpy, as
  :class:`~sb3_ext.vec_env.FitnessWeightsVecEnv` gives it, for everything else that steps a ``VecEnv``.

It keeps the episodes' returns and lengths itself, as ``VecMonitor`` does (``infos[i]["episode"]``), so it is not
wrapped in one. Make it with ``make_vec_env("FitnessWeights-v0", n_envs, vectorization="device",
env_kwargs={"device": "cuda"})``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch as th
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from fitness_weights_env import FitnessWeightsVectorEnv

__all__ = ["DeviceStep", "DeviceVecEnv"]


@dataclass
class DeviceStep:
    """One step of every trainee, as tensors on the env's device (``N`` trainees).

    Attributes:
        observation: (N, size) float32: the next observations (the new episode's first for finished trainees).
        reward: (N,) float32.
        terminated: (N,) bool.
        truncated: (N,) bool.
        done: (N,) bool, ``terminated | truncated``.
        final_observation: (N, size) float32, the last observation of the finished trainees (0 elsewhere), or
            ``None`` when no trainee finished.
        final_cq: (N, 93, 5) float32, the matrices the finished trainees' episodes ended with (0 elsewhere), or
            ``None``.
        final_qx: (N, 5, 44) float32, likewise.
        episodes: ``{"r", "l", "t"}`` of each finished episode (as ``VecMonitor``'s ``info["episode"]``), on the host.
        info: The vector env's batched info (tensors).
    """

    observation: th.Tensor
    reward: th.Tensor
    terminated: th.Tensor
    truncated: th.Tensor
    done: th.Tensor
    final_observation: th.Tensor | None
    final_cq: th.Tensor | None
    final_qx: th.Tensor | None
    episodes: list[dict[str, float]]
    info: dict[str, Any]


class DeviceVecEnv(VecEnv):
    """N FitnessWeights trainees on a torch device, as an SB3 ``VecEnv`` (see the module docstring).

    Args:
        vector_env: A ``FitnessWeightsVectorEnv`` with ``backend="torch"`` and ``AutoresetMode.SAME_STEP`` (or a
            Gymnasium vector wrapper of one), e.g. ``gym.make_vec("FitnessWeights-v0", num_envs=N,
            backend="torch", device="cuda")``.

    Raises:
        TypeError: ``vector_env`` is not such an env.
    """

    def __init__(self, vector_env: VectorEnv) -> None:
        trainees = getattr(vector_env, "unwrapped", None)
        if not isinstance(trainees, FitnessWeightsVectorEnv) or trainees.backend != "torch":
            raise TypeError(
                "vector_env must be a FitnessWeightsVectorEnv with backend='torch', "
                f"got {type(vector_env).__name__}{'' if trainees is None else ' of backend ' + repr(trainees.backend)}"
            )
        if trainees.autoreset_mode != AutoresetMode.SAME_STEP:
            raise TypeError(f"vector_env must reset in AutoresetMode.SAME_STEP, got {trainees.autoreset_mode}")
        self.vector_env = vector_env
        self.trainees: FitnessWeightsVectorEnv = trainees
        self.device: th.device = trainees.device
        super().__init__(trainees.num_envs, trainees.single_observation_space, trainees.single_action_space)
        self.observation: th.Tensor = th.zeros(
            tuple(trainees.state.observation.shape), dtype=th.float32, device=self.device
        )
        """The observations of the last ``reset`` or step, on the device (what the next step's actions answer)."""
        self._returns = th.zeros(self.num_envs, dtype=th.float64, device=self.device)
        self._lengths = th.zeros(self.num_envs, dtype=th.int64, device=self.device)
        self._start_time = time.time()
        self._actions: Any = None

    # --- the device face --------------------------------------------------------------------------------------------

    def step_device(self, actions: th.Tensor) -> DeviceStep:
        """Step every trainee with ``actions`` (N integers, on any device); tensors out (see :class:`DeviceStep`)."""
        step = cast("tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor, dict[str, Any]]", self.trainees.step(actions))
        observation, reward, terminated, truncated, info = step
        done = terminated | truncated
        self._returns += reward
        self._lengths += 1
        final = final_cq = final_qx = None
        episodes: list[dict[str, float]] = []
        if "final_obs" in info:  # some trainee finished (the env knows it on the host: no device sync to ask)
            final, final_info = info["final_obs"], info["final_info"]
            final_cq, final_qx = final_info["cq_matrix"], final_info["qx_matrix"]
            elapsed = round(time.time() - self._start_time, 6)
            returns, lengths = self._returns[done].tolist(), self._lengths[done].tolist()
            episodes = [{"r": r, "l": n, "t": elapsed} for r, n in zip(returns, lengths, strict=True)]
            self._returns[done] = 0.0
            self._lengths[done] = 0
        self.observation = observation
        return DeviceStep(
            observation, reward.float(), terminated, truncated, done, final, final_cq, final_qx, episodes, info
        )

    def current_matrices(self) -> tuple[th.Tensor, th.Tensor]:
        """The trainees' current CQ (N, 93, 5) and QX (N, 5, 44) matrices, float32 copies on the device."""
        state = self.trainees.state  # torch tensors: the env's backend
        return cast(th.Tensor, state.cq).float(), cast(th.Tensor, state.qx).float()

    # --- SB3's VecEnv, in numpy -------------------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        """Reset every trainee (with the seeds and options set before), as SB3's ``VecEnv.reset``."""
        seeds = None if all(seed is None for seed in self._seeds) else list(self._seeds)
        options = self._options[0] if self._options and all(o == self._options[0] for o in self._options) else {}
        observation, info = cast(
            "tuple[th.Tensor, dict[str, Any]]", self.trainees.reset(seed=seeds, options=options or None)
        )
        self._reset_seeds()
        self._reset_options()
        self.observation = observation
        self._returns.zero_()
        self._lengths.zero_()
        cq, qx = info["cq_matrix"].cpu().numpy(), info["qx_matrix"].cpu().numpy()
        self.reset_infos = [{"cq_matrix": cq[i], "qx_matrix": qx[i]} for i in range(self.num_envs)]
        return observation.cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions of :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step every trainee, with SB3's numpy returns and per-env infos (``terminal_observation``, ``episode``)."""
        step = self.step_device(th.as_tensor(np.asarray(self._actions), device=self.device))
        dones = step.done.cpu().numpy()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if step.final_observation is not None:
            final = step.final_observation.cpu().numpy()
            cq, qx = (m.cpu().numpy() for m in (step.final_cq, step.final_qx) if m is not None)
            truncated = (step.truncated & ~step.terminated).cpu().numpy()
            now = self.current_matrices()
            now_cq, now_qx = now[0].cpu().numpy(), now[1].cpu().numpy()
            for i, episode in zip(np.flatnonzero(dones), step.episodes, strict=True):
                infos[i] = {
                    "terminal_observation": final[i],
                    "TimeLimit.truncated": bool(truncated[i]),
                    "episode": episode,
                    "cq_matrix": cq[i],
                    "qx_matrix": qx[i],
                }
                self.reset_infos[i] = {"cq_matrix": now_cq[i], "qx_matrix": now_qx[i]}
        return step.observation.cpu().numpy(), step.reward.cpu().numpy(), dones, infos

    def close(self) -> None:
        """Close the vector env."""
        self.vector_env.close()

    def _check_indices(self, indices: VecEnvIndices) -> None:
        if indices is not None and sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError("the trainees are rows of one batch: indices must name every env (or be None)")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's ``get_attr`` (one value per trainee), for the envs at ``indices``."""
        values = self.trainees.get_attr(attr_name)
        return [values[i] for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of every trainee (``indices`` must name them all)."""
        self._check_indices(indices)
        self.trainees.set_attr(attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list:
        """Call a method of the vector env once (``indices`` must name every trainee); its result per trainee."""
        self._check_indices(indices)
        return list(self.trainees.call(method_name, *method_args, **kwargs))

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """False for every env: the trainees are rows of one batch, not wrapped single envs."""
        return [False] * len(list(self._get_indices(indices)))

    def get_images(self) -> Sequence[np.ndarray | None]:
        """The trainees' frames (``render_mode="rgb_array"``)."""
        frames = self.trainees.render()
        return [None] * self.num_envs if frames is None else list(frames)  # type: ignore[arg-type]
