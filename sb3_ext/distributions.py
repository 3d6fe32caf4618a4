"""``LeanCategorical``: SB3's categorical distribution computed from log-probabilities, without ``torch.distributions``.

SB3's :class:`~stable_baselines3.common.distributions.CategoricalDistribution` wraps
``torch.distributions.Categorical``, which validates its arguments, normalizes the logits once more for every
quantity, and samples with ``torch.multinomial``, which costs several times the rest of the draw on CPU
(``benchmarks/RESULTS.md``, "Policy cost"). This class takes one ``log_softmax`` per batch and derives everything
from it:

* ``log_prob``: a gather of the log-probabilities;
* ``entropy``: ``-sum(p log p)``, with the log-probabilities of impossible actions clamped as torch does;
* ``sample``: the inverse CDF of one uniform draw per row (torch's global generator, as ``multinomial``);
* ``mode``: the most likely action.

The values are those of ``torch.distributions.Categorical`` to float rounding (a test); the sampled actions have
the same law but not the same draws. :class:`~sb3_ext.AttnCQQXPolicy` uses it; ``MlpPolicy`` keeps SB3's, so that
it stays bit-identical to SB3's PPO.
"""

from __future__ import annotations

from typing import TypeVar

import torch as th
from stable_baselines3.common.distributions import CategoricalDistribution
from torch.distributions import Categorical

__all__ = ["LeanCategorical"]

SelfLeanCategorical = TypeVar("SelfLeanCategorical", bound="LeanCategorical")


class LeanCategorical(CategoricalDistribution):
    """A categorical distribution over ``action_dim`` actions, from logits (module docstring).

    Args:
        action_dim: Number of actions.
    """

    log_probs: th.Tensor
    """The normalized log-probabilities (B, action_dim) of the last :meth:`proba_distribution`."""

    def proba_distribution(self: SelfLeanCategorical, action_logits: th.Tensor) -> SelfLeanCategorical:
        """Set the distribution from a batch of logits (B, action_dim); returns itself, as SB3's."""
        self.log_probs = th.log_softmax(action_logits, dim=-1)
        return self

    @property
    def probs(self) -> th.Tensor:
        """The probabilities (B, action_dim)."""
        return self.log_probs.exp()

    @property
    def distribution(self) -> Categorical:  # type: ignore[override]  # SB3 declares an attribute
        """The same distribution as a ``torch.distributions.Categorical``, for code that reads SB3's attribute."""
        return Categorical(logits=self.log_probs, validate_args=False)

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """Log-probabilities (B,) of a batch of actions (B,)."""
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> th.Tensor:
        """Entropies (B,)."""
        # an impossible action has log-probability -inf and contributes 0: clamped as Categorical.entropy does
        log_probs = self.log_probs.clamp(min=th.finfo(self.log_probs.dtype).min)
        return -(log_probs.exp() * log_probs).sum(-1)

    def sample(self) -> th.Tensor:
        """One action per row, drawn by the inverse CDF of a uniform from torch's global generator."""
        cdf = self.probs.cumsum(-1)
        uniforms = th.rand((*cdf.shape[:-1], 1), dtype=cdf.dtype, device=cdf.device) * cdf[..., -1:]
        # the first action whose cumulative probability exceeds the draw; the clamp guards float rounding at the end
        return (cdf <= uniforms).sum(-1).clamp(max=cdf.shape[-1] - 1)

    def mode(self) -> th.Tensor:
        """The most likely action of each row."""
        return self.log_probs.argmax(-1)
