"""The trained policy as the optimizer: its actions for a batch of trainees, sampled per trainee or the mode.

The "optimize" outcome of a model is what running its policy produces, as in training, where the
episodes sample their actions. :class:`PolicyActions` draws trainee ``i``'s actions with a generator
of its own, seeded with ``seeds[i]``, so a trainee's outcome depends only on its profile and its seed:
the evaluation of a batch of trainees and the service's optimization of one trainee give the same
matrices for the same trainee and seed (up to the last bits of the policy's probabilities, which can
differ between batch sizes, so a draw that falls within rounding of a boundary may go the other way).
Without seeds it takes the most likely action (SB3's ``deterministic=True``).

Why sampling: the observation does not show each target subject's progress, so the most likely action
stays on one target; sampling shares the steps between targets as training does (measured in
``benchmarks/RESULTS.md``, "Measurements behind design choices in the code").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import CategoricalDistribution
from stable_baselines3.common.policies import ActorCriticPolicy

from fitness_weights_env.errors import FieldError
from sb3_ext.distributions import LeanCategorical

if TYPE_CHECKING:
    from sb3_ext.onnx_policy import OnnxPolicy

__all__ = ["ACTION_STREAM", "PolicyActions", "action_generator", "action_probabilities"]

ACTION_STREAM = 0xAC7
"""Second word of an action generator's seed: keeps its draws apart from other generators seeded alike."""


def action_generator(seed: int) -> np.random.Generator:
    """The generator of one trainee's sampled actions, for episode seed ``seed``."""
    return np.random.default_rng([int(seed), ACTION_STREAM])


class PolicyActions:
    """A trained policy as a batched policy ``(observation, env) -> actions`` for :func:`run_episodes`.

    Args:
        policy: The model's policy (``model.policy``), over the Discrete(685) action space, or its exported graph
            (:class:`~sb3_ext.onnx_policy.OnnxPolicy`), which samples alike from the same probabilities.
        seeds: One seed per trainee of the batch: sample trainee ``i``'s actions from the policy's
            distribution with :func:`action_generator` of ``seeds[i]``. ``None``: the most likely action.
    """

    def __init__(self, policy: ActorCriticPolicy | OnnxPolicy, seeds: Sequence[int] | None = None) -> None:
        self.policy = policy
        self.generators = None if seeds is None else [action_generator(seed) for seed in seeds]
        if isinstance(policy, th.nn.Module):
            policy.set_training_mode(False)

    def __call__(self, observation: np.ndarray, env: Any = None) -> np.ndarray:
        """The actions (N,) for a batch of observations (N, n) of the policy's space; ``env`` is unused.

        Raises:
            FieldError: The observations are not a batch of the policy's observation space (``observation``): a
                model of one env run in another (v0's 198 values, v1's 199).
        """
        expected = tuple(self.policy.observation_space.shape or ())
        if np.ndim(observation) != len(expected) + 1 or tuple(np.shape(observation)[1:]) != expected:
            raise FieldError(
                "observation",
                f"the policy takes a batch of observations of shape {expected}, got shape {np.shape(observation)}: "
                "run a model in the env it was trained on",
            )
        if self.generators is None and isinstance(self.policy, th.nn.Module):
            with th.no_grad():
                return self.policy._predict(th.as_tensor(observation, device=self.policy.device), True).cpu().numpy()
        probs = self._probabilities(observation)
        if self.generators is None:
            return np.argmax(probs, axis=1)  # the mode, as SB3's deterministic=True
        if len(self.generators) != len(observation):
            raise ValueError(f"{len(observation)} observations for {len(self.generators)} seeded trainees")
        cdf = np.cumsum(probs.astype(np.float64), axis=1)
        uniforms = np.array([generator.random() for generator in self.generators])
        # inverse transform: the first action whose cumulative probability exceeds the draw
        actions = np.sum(cdf <= (uniforms * cdf[:, -1])[:, None], axis=1)
        return np.minimum(actions, cdf.shape[1] - 1)

    def _probabilities(self, observation: np.ndarray) -> np.ndarray:
        """The policy's action probabilities (N, n_actions) for the batch."""
        if not isinstance(self.policy, th.nn.Module):  # an OnnxPolicy
            return self.policy.action_probabilities(observation)
        with th.no_grad():
            probs = action_probabilities(self.policy, th.as_tensor(observation, device=self.policy.device))
            return probs.double().cpu().numpy()


def action_probabilities(policy: Any, observation: th.Tensor) -> th.Tensor:
    """The probabilities (N, n_actions) of ``policy``'s action distribution for a batch of observations.

    ``policy`` is an SB3 actor-critic or offline policy over a Discrete action space: this is what its actions are
    drawn from, here and in its exported graph (:mod:`sb3_ext.onnx_policy`).

    Raises:
        TypeError: The policy's distribution is not categorical.
    """
    distribution = policy.get_distribution(observation)
    if not isinstance(distribution, CategoricalDistribution):
        raise TypeError(f"the actions need a Discrete action space, got a {type(distribution).__name__}")
    return distribution.probs if isinstance(distribution, LeanCategorical) else distribution.distribution.probs
