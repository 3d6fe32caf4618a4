"""The attention network behind :class:`~sb3_ext.policies.AttnCQQXPolicy`.

The 198-dim state becomes 100 entity tokens: 93 subjects (a learned subject embedding plus its score
and target flag), 5 qualities (embedding plus level), the profile (age, gender, fitness level) and the
metrics. A token is linear in its entity's features, ``e_i + x_i F``, so any linear projection of the
tokens is a batch-independent table plus a small product, ``e W + x (F W)``. The network never
multiplies 100 tokens by a d x d matrix per sample.

Attention runs where it is cheap (Perceiver-style):

1. ``n_latents`` learned latent tokens read all 100 entities (cross-attention, O(latents x entities));
2. the latents attend to each other (``n_layers`` pre-norm blocks);
3. the 5 quality tokens read the latents, and every subject receives the pooled latent context.

Heads, all over the entity structure of the matrices:

* actor: CQ logits ``h_s . (A g_k)`` for every (subject, quality) cell and QX logits
  ``(B g_k) . x_e`` for every (quality, exercise) cell: 465 + 220 = 685 logits, in action order;
* critic: an MLP of the pooled latents;
* CQ prediction: subject-quality cross-attention weights, ``softmax_k(h_s . (C g_k) / sqrt(d))``;
* QX prediction: quality-exercise cross-attention weights, ``softmax_e((D g_k) . x_e / sqrt(d))``;
* error head: the log of the predictions' expected squared error, which ranks their confidence.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch as th
import torch.nn.functional as F  # noqa: N812
from torch import nn

from fitness_weights_env import CATALOG, LAYOUT

__all__ = ["CQQXNetwork", "EntityEmbedding", "NetworkOutput"]

N_SUBJECTS, N_QUALITIES, N_EXERCISES = CATALOG.n_subjects, CATALOG.n_qualities, CATALOG.n_exercises
PROFILE = slice(LAYOUT.age.start, LAYOUT.fitness_level.stop)  # age, gender, fitness level


class NetworkOutput(NamedTuple):
    """One forward pass: actor logits (B, 685), value (B, 1), and the auxiliary predictions."""

    logits: th.Tensor
    value: th.Tensor
    cq: th.Tensor
    qx: th.Tensor
    log_error: th.Tensor


class EntityEmbedding(nn.Module):
    """Tokens ``e_i + x_i F`` for ``n`` entities with ``n_features`` features each.

    Args:
        n: Number of entities.
        n_features: Features per entity.
        dim: Token width.
    """

    def __init__(self, n: int, n_features: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(th.randn(n, dim) * 0.02)
        self.feature_map = nn.Parameter(th.randn(n_features, dim) / math.sqrt(n_features))

    def forward(self, features: th.Tensor) -> th.Tensor:
        """Tokens (B, n, dim) for features (B, n, n_features)."""
        return self.embedding + features @ self.feature_map

    def project(self, features: th.Tensor, linear: nn.Linear) -> th.Tensor:
        """``linear(self(features))``, computed as a table plus a rank-``n_features`` product."""
        base = F.linear(self.embedding, linear.weight, linear.bias)
        return base + features @ (self.feature_map @ linear.weight.T)


def _heads(x: th.Tensor, n_heads: int) -> th.Tensor:
    """(B, n, d) -> (B, heads, n, d / heads)."""
    return x.unflatten(-1, (n_heads, -1)).transpose(-3, -2)


def _merge(x: th.Tensor) -> th.Tensor:
    """(B, heads, n, d / heads) -> (B, n, d)."""
    return x.transpose(-3, -2).flatten(-2)


class LatentBlock(nn.Module):
    """A pre-norm self-attention and MLP block over the latent tokens."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm_attention = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, latents: th.Tensor) -> th.Tensor:
        """Update the latents (B, L, dim)."""
        q, k, v = (_heads(t, self.n_heads) for t in self.qkv(self.norm_attention(latents)).chunk(3, dim=-1))
        latents = latents + self.out(_merge(F.scaled_dot_product_attention(q, k, v)))
        return latents + self.mlp(self.norm_mlp(latents))


class CQQXNetwork(nn.Module):
    """Shared trunk and heads for the actor, the critic and the CQ/QX predictions.

    Args:
        embed_dim: Token width d.
        n_heads: Attention heads (must divide ``embed_dim``).
        n_latents: Latent tokens that summarize the entities.
        n_layers: Latent self-attention blocks.
        mlp_ratio: Hidden width of the MLPs, as a multiple of d.
    """

    def __init__(
        self, embed_dim: int = 64, n_heads: int = 4, n_latents: int = 8, n_layers: int = 1, mlp_ratio: int = 2
    ) -> None:
        super().__init__()
        if embed_dim % n_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be a multiple of n_heads ({n_heads})")
        d = embed_dim
        self.n_heads = n_heads
        self.scale = 1.0 / math.sqrt(d)
        # entities
        self.subjects = EntityEmbedding(N_SUBJECTS, 2, d)  # score, target flag
        self.qualities = EntityEmbedding(N_QUALITIES, 1, d)  # level
        self.profile = EntityEmbedding(1, PROFILE.stop - PROFILE.start, d)
        self.metrics = EntityEmbedding(1, LAYOUT.metrics.stop - LAYOUT.metrics.start, d)
        self.exercises = nn.Parameter(th.randn(N_EXERCISES, d) * 0.02)
        # 1. latents read the entities
        self.latents = nn.Parameter(th.randn(n_latents, d) * 0.02)
        self.read_query = nn.Linear(d, d)
        self.read_key_value = nn.Linear(d, 2 * d)
        self.read_out = nn.Linear(d, d)
        self.read_norm = nn.LayerNorm(d)
        self.read_mlp = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.GELU(), nn.Linear(mlp_ratio * d, d))
        # 2. latent self-attention
        self.blocks = nn.ModuleList(LatentBlock(d, n_heads, mlp_ratio) for _ in range(n_layers))
        self.latent_norm = nn.LayerNorm(d)
        # 3. qualities read the latents; subjects get the pooled context
        self.quality_query = nn.Linear(d, d)
        self.latent_key_value = nn.Linear(d, 2 * d)
        self.quality_out = nn.Linear(d, d)
        self.subject_context = nn.Linear(d, d)
        # heads
        self.actor_cq = nn.Linear(d, d, bias=False)
        self.actor_qx = nn.Linear(d, d, bias=False)
        self.aux_cq = nn.Linear(d, d, bias=False)
        self.aux_qx = nn.Linear(d, d, bias=False)
        self.critic = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.Tanh(), nn.Linear(mlp_ratio * d, 1))
        self.error = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.Tanh(), nn.Linear(mlp_ratio * d, 1))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight, gain=math.sqrt(2))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for head in (self.actor_cq, self.actor_qx):  # a near-uniform initial policy, as SB3's 0.01 gain
            nn.init.orthogonal_(head.weight, gain=0.01)
        nn.init.orthogonal_(self.critic[-1].weight, gain=1.0)

    @property
    def aux_parameters(self) -> list[nn.Parameter]:
        """Parameters used only by the CQ/QX predictions and the error head."""
        return [*self.aux_cq.parameters(), *self.aux_qx.parameters(), *self.error.parameters()]

    def forward(self, observation: th.Tensor) -> NetworkOutput:
        """Run the trunk and every head on a batch of observations (B, 198)."""
        batch = observation.shape[0]
        subject_features = th.stack(
            (observation[:, LAYOUT.subject_scores], observation[:, LAYOUT.targets]), dim=-1
        )  # (B, 93, 2)
        quality_features = observation[:, LAYOUT.qualities, None]  # (B, 5, 1)
        profile_features = observation[:, None, PROFILE]
        metric_features = observation[:, None, LAYOUT.metrics]

        # 1. latents read the 100 entity tokens
        key_value = th.cat(
            [
                self.subjects.project(subject_features, self.read_key_value),
                self.qualities.project(quality_features, self.read_key_value),
                self.profile.project(profile_features, self.read_key_value),
                self.metrics.project(metric_features, self.read_key_value),
            ],
            dim=1,
        )
        key, value = (_heads(t, self.n_heads) for t in key_value.chunk(2, dim=-1))
        query = _heads(self.read_query(self.latents), self.n_heads).expand(batch, -1, -1, -1)
        latents = self.latents + self.read_out(_merge(F.scaled_dot_product_attention(query, key, value)))
        latents = latents + self.read_mlp(self.read_norm(latents))
        # 2. latent self-attention
        for block in self.blocks:
            latents = block(latents)
        latents = self.latent_norm(latents)
        pooled = latents.mean(dim=1)  # (B, d)
        # 3. qualities read the latents; subjects get the pooled context
        quality_tokens = self.qualities(quality_features)  # (B, 5, d)
        key, value = (_heads(t, self.n_heads) for t in self.latent_key_value(latents).chunk(2, dim=-1))
        query = _heads(self.quality_query(quality_tokens), self.n_heads)
        qualities = quality_tokens + self.quality_out(_merge(F.scaled_dot_product_attention(query, key, value)))
        subjects = self.subjects(subject_features) + self.subject_context(pooled)[:, None, :]  # (B, 93, d)

        cq_logits = th.einsum("bsd,bkd->bsk", subjects, self.actor_cq(qualities)) * self.scale
        qx_logits = th.einsum("bkd,ed->bke", self.actor_qx(qualities), self.exercises) * self.scale
        cq = th.softmax(th.einsum("bsd,bkd->bsk", subjects, self.aux_cq(qualities)) * self.scale, dim=-1)
        qx = th.softmax(th.einsum("bkd,ed->bke", self.aux_qx(qualities), self.exercises) * self.scale, dim=-1)
        return NetworkOutput(
            logits=th.cat((cq_logits.flatten(1), qx_logits.flatten(1)), dim=1),
            value=self.critic(pooled),
            cq=cq,
            qx=qx,
            log_error=self.error(pooled).squeeze(-1),
        )
