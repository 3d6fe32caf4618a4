"""The attention network behind :class:`~sb3_ext.policies.AttnCQQXPolicy`.

The observation becomes 100 entity tokens: 93 subjects (a learned subject embedding plus its score
and target flag), 5 qualities (embedding plus level), the profile (age, gender, fitness level) and the
metrics (the 4 metrics, and on ``FitnessWeights-v1`` the block's progress). A token is linear in its
entity's features, ``e_i + x_i F``, so any linear projection of the tokens is a batch-independent
table plus a small product, ``e W + x (F W)``. The network never forms 100 tokens of width d per
sample.

Attention runs where it is cheap (Perceiver-style):

1. ``n_latents`` learned latent tokens read all 100 entities (cross-attention, O(latents x entities)),
   computed from the table and the features without forming the keys and values
   (:meth:`CQQXNetwork.read`);
2. optionally, the latents attend to each other (``n_layers`` pre-norm blocks,
   :func:`~torch.nn.functional.scaled_dot_product_attention`);
3. every subject and quality token receives the pooled latent context.

Heads, all over the entity structure of the matrices. Each head (:class:`CellScores`) has its own
subject embeddings ``u_s`` and exercise embeddings ``w_e``; ``h_s = u_s + x_s G + c`` is subject
``s`` with its score and target flag ``x_s`` and the pooled context ``c``, and ``g_k`` is quality
``k``'s token plus the context:

* actor: CQ logits ``h_s . (A g_k) + (v_s + x_s H) . (K c)`` for every (subject, quality) cell and QX
  logits ``(B g_k) . w_e`` for every (quality, exercise) cell: 465 + 220 = 685 logits, in action order.
  The second CQ term scores each subject in the current state before the choice of quality; it is what
  makes training reliable (measured in ``benchmarks/RESULTS.md``, "Measurements behind design choices in the code").
  ``h_s`` is never formed: ``h_s . a = u_s . a + x_s (G a) + c . a`` takes one matrix product with
  the subject table for the whole batch. The actor and the predictions do not share cell
  embeddings, so the prediction loss cannot steer the actor through them;
* critic: an MLP of the pooled latents;
* CQ prediction: subject-quality cross-attention weights, ``softmax_k(h_s . (C g_k) / sqrt(d))``;
* QX prediction: quality-exercise cross-attention weights, ``softmax_e((D g_k) . w_e / sqrt(d))``;
* error head: the log of the predictions' expected squared error, which ranks their confidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, cast

import torch as th
import torch.nn.functional as F  # noqa: N812
from torch import nn

from fitness_weights_env import CATALOG, LAYOUT
from fitness_weights_env.errors import FieldError
from fitness_weights_env.layout import ObservationLayout

__all__ = ["CQQXNetwork", "CellScores", "EntityEmbedding", "NetworkOutput"]

N_SUBJECTS, N_QUALITIES, N_EXERCISES = CATALOG.n_subjects, CATALOG.n_qualities, CATALOG.n_exercises


class NetworkOutput(NamedTuple):
    """One forward pass: actor logits (B, 685), value (B, 1), and the auxiliary predictions (or ``None``)."""

    logits: th.Tensor
    value: th.Tensor
    cq: th.Tensor | None
    qx: th.Tensor | None
    log_error: th.Tensor | None


def _fixed(index: int) -> Callable[[int], int]:
    """The observation index ``index`` for entity 0 of a one-entity type (the profile, the metrics)."""
    return lambda i: index


def _entity_features(layout: ObservationLayout) -> tuple[th.Tensor, th.Tensor]:
    """Where each entity token's features sit in an observation laid out by ``layout``.

    Every token has the same feature vector, one slot per feature of every entity type (subjects:
    score, target flag; qualities: level; profile: age, gender, fitness level; metrics: 4, and the
    progress where the layout has it), and uses only its type's slots. ``observation[:, index] * mask``
    gives all tokens' features (B, 100, 10; 11 with the progress).
    """
    metrics = list(range(layout.metrics.start, layout.metrics.stop))
    if layout.progress is not None:
        metrics += range(layout.progress.start, layout.progress.stop)
    types: list[tuple[int, list[Callable[[int], int]]]] = [  # (entities, observation index of feature f of entity i)
        (N_SUBJECTS, [lambda i: layout.subject_scores.start + i, lambda i: layout.targets.start + i]),
        (N_QUALITIES, [lambda i: layout.qualities.start + i]),
        (1, [_fixed(j) for j in range(layout.age.start, layout.fitness_level.stop)]),
        (1, [_fixed(j) for j in metrics]),
    ]
    n_entities = sum(n for n, _ in types)
    n_slots = sum(len(features) for _, features in types)
    index = th.zeros(n_entities, n_slots, dtype=th.long)
    mask = th.zeros(n_entities, n_slots)
    entity = slot = 0
    for n, features in types:
        for i in range(n):
            for f, position in enumerate(features):
                index[entity + i, slot + f] = position(i)
                mask[entity + i, slot + f] = 1.0
        entity, slot = entity + n, slot + len(features)
    return index, mask


SUBJECT_TOKENS = slice(0, N_SUBJECTS)
QUALITY_TOKENS = slice(N_SUBJECTS, N_SUBJECTS + N_QUALITIES)


class EntityEmbedding(nn.Module):
    """Tokens ``e_i + x_i F`` for entities with learned embeddings ``e_i`` and features ``x_i``.

    Args:
        n: Number of entities.
        n_features: Features per entity.
        dim: Token width.
    """

    def __init__(self, n: int, n_features: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(th.randn(n, dim) * 0.02)
        self.feature_map = nn.Parameter(th.randn(n_features, dim) / math.sqrt(n_features))

    def forward(self, features: th.Tensor, entities: slice = slice(None)) -> th.Tensor:
        """Tokens (B, n, dim) of the ``entities`` for their features (B, n, n_features)."""
        return self.embedding[entities] + features @ self.feature_map

    def project(self, features: th.Tensor, linear: nn.Linear) -> th.Tensor:
        """``linear(self(features))``, computed as a table plus a rank-``n_features`` product."""
        base = F.linear(self.embedding, linear.weight, linear.bias)
        return base + features @ (self.feature_map @ linear.weight.T)

    def scores(self, features: th.Tensor, keys: th.Tensor, entities: slice = slice(None)) -> th.Tensor:
        """``self(features, entities) @ keys^T`` for keys (B, K, dim), without forming the tokens.

        The embedding part is one matrix product for the whole batch: (n, dim) x (dim, B K).
        """
        batch, n_keys, dim = keys.shape
        table = (self.embedding[entities] @ keys.reshape(batch * n_keys, dim).T).reshape(-1, batch, n_keys)
        return table.transpose(0, 1) + features @ (self.feature_map @ keys.transpose(1, 2))


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


class CellScores(nn.Module):
    """Scores for every CQ cell (subject, quality) and QX cell (quality, exercise) of a batch.

    ``cq[b, s, k] = (u_s + x_s G + c_b) . (A g_bk)`` and ``qx[b, k, e] = (B g_bk) . w_e``, where
    ``u_s`` and ``w_e`` are this head's own subject and exercise embeddings, ``x_s`` the subject's
    score and target flag, ``c_b`` the context and ``g_bk`` the quality tokens. The actor and the
    CQ/QX predictions each have their own, so the prediction loss cannot feed back into the actor's
    choices through shared embeddings.

    With ``subject_term``, every CQ cell of subject ``s`` also gets ``(v_s + x_s H) . (K c_b)``: how much
    the subject is worth adjusting now, in this state, before the choice of quality. It is the same
    for all qualities of a subject, so it only helps a head whose scores compare subjects (the actor).

    Args:
        dim: Token width.
        gain: Orthogonal-init gain of the key projections (small for the actor: a near-uniform start).
        subject_term: Add the per-subject, state-dependent term above.
    """

    def __init__(self, dim: int, gain: float, subject_term: bool = False) -> None:
        super().__init__()
        self.subjects = EntityEmbedding(N_SUBJECTS, 2, dim)
        self.exercises = nn.Parameter(th.randn(N_EXERCISES, dim) * 0.02)
        self.keys = nn.Linear(dim, 2 * dim, bias=False)
        self.subject_values = EntityEmbedding(N_SUBJECTS, 2, dim) if subject_term else None
        self.context_key = nn.Linear(dim, dim, bias=False) if subject_term else None
        self.gain = gain
        self.scale = 1.0 / math.sqrt(dim)

    def forward(
        self, subject_features: th.Tensor, qualities: th.Tensor, context: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor]:
        """CQ scores (B, 93, 5) and QX scores (B, 5, 44)."""
        cq_keys, qx_keys = self.keys(qualities).chunk(2, dim=-1)
        cq = self.subjects.scores(subject_features, cq_keys) + (cq_keys @ context[:, :, None]).transpose(1, 2)
        if self.subject_values is not None and self.context_key is not None:
            cq = cq + self.subject_values.scores(subject_features, self.context_key(context)[:, None])
        return cq * self.scale, (qx_keys @ self.exercises.T) * self.scale


class CQQXNetwork(nn.Module):
    """Shared trunk and heads for the actor, the critic and the CQ/QX predictions.

    Args:
        embed_dim: Token width d.
        n_heads: Attention heads (must divide ``embed_dim``).
        n_latents: Latent tokens that summarize the entities.
        n_layers: Latent self-attention blocks.
        mlp_ratio: Hidden width of the MLPs, as a multiple of d.
        layout: The observation's layout: :data:`~fitness_weights_env.layout.LAYOUT` (v0) or
            :data:`~fitness_weights_env.layout.TRAINING_LAYOUT` (v1).
    """

    feature_index: th.Tensor
    """(100, n_features): observation index of each token's features (a buffer)."""
    feature_mask: th.Tensor
    """(100, n_features): 1 where a token uses the feature slot (a buffer)."""

    def __init__(
        self,
        embed_dim: int = 32,
        n_heads: int = 2,
        n_latents: int = 4,
        n_layers: int = 0,
        mlp_ratio: int = 2,
        layout: ObservationLayout = LAYOUT,
    ) -> None:
        super().__init__()
        if embed_dim % n_heads:
            raise FieldError("embed_dim", f"must be a multiple of n_heads ({n_heads})", embed_dim)
        d = embed_dim
        self.n_heads = n_heads
        # entities: 93 subjects, 5 qualities, the profile and the metrics
        self.layout = layout
        feature_index, feature_mask = _entity_features(layout)
        self.register_buffer("feature_index", feature_index, persistent=False)
        self.register_buffer("feature_mask", feature_mask, persistent=False)
        n_entities, n_slots = feature_index.shape
        self.entities = EntityEmbedding(n_entities, n_slots, d)
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
        # 3. subjects and qualities receive the pooled latent context
        self.subject_context = nn.Linear(d, d)
        self.quality_context = nn.Linear(d, d)
        # heads
        self.actor = CellScores(d, gain=0.01, subject_term=True)  # near-uniform initial policy, as SB3's 0.01 gain
        self.aux = CellScores(d, gain=1.0)
        self.critic = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.Tanh(), nn.Linear(mlp_ratio * d, 1))
        self.error = nn.Sequential(nn.Linear(d, mlp_ratio * d), nn.Tanh(), nn.Linear(mlp_ratio * d, 1))
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight, gain=math.sqrt(2))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for head in (self.actor, self.aux):
            nn.init.orthogonal_(head.keys.weight, gain=head.gain)
            if head.context_key is not None:
                nn.init.orthogonal_(head.context_key.weight, gain=head.gain)
        nn.init.orthogonal_(cast(nn.Linear, self.critic[-1]).weight, gain=1.0)  # the value layer (built above)

    def read(self, features: th.Tensor) -> th.Tensor:
        """The latents' multi-head attention over the entity tokens: (B, n_latents, d) before ``read_out``.

        For entity ``i`` with features ``x_i``, the key and value are a table row plus a small product,
        ``k_i = t_i + x_i G`` and ``v_i = s_i + x_i H`` (:meth:`EntityEmbedding.project`), and the queries
        ``q`` are the same for every sample. So, per head, the scores are ``q . t_i + (G q) . x_i`` and the
        result is ``w T_s + (w X) H`` for the attention weights ``w``: the (B, 100, d) keys and values are
        never formed. The result is that of :func:`torch.nn.functional.scaled_dot_product_attention` on
        the formed tokens (a test checks it), at a fraction of the cost on CPU, where forming them dominated
        the read (measured in ``benchmarks/RESULTS.md``, "Policy cost").

        Args:
            features: The entities' features (B, 100, n_features).
        """
        batch, n_entities, n_features = features.shape
        n_latents, dim = self.latents.shape
        heads, head_dim = self.n_heads, dim // self.n_heads
        weight, bias = self.read_key_value.weight, self.read_key_value.bias
        table = F.linear(self.entities.embedding, weight, bias).view(n_entities, 2, heads, head_dim)
        product = (self.entities.feature_map @ weight.T).view(n_features, 2, heads, head_dim)
        (table_key, table_value), (product_key, product_value) = table.unbind(1), product.unbind(1)
        query = self.read_query(self.latents).view(n_latents, heads, head_dim) / math.sqrt(head_dim)
        # scores (B, heads * latents, entities): a table for the batch plus the features' part
        scores = th.einsum("lhc,ihc->hli", query, table_key).reshape(heads * n_latents, n_entities)
        feature_query = th.einsum("fhc,lhc->fhl", product_key, query).reshape(n_features, heads * n_latents)
        weights = th.softmax(scores + (features @ feature_query).transpose(1, 2), dim=-1)
        read_features = weights @ features  # (B, heads * latents, n_features)
        # per head, with the batch folded into the rows: (heads, B * latents, head_dim)
        weights = weights.view(batch, heads, n_latents, n_entities).transpose(0, 1).reshape(heads, -1, n_entities)
        read_features = read_features.view(batch, heads, n_latents, n_features).transpose(0, 1)
        read_features = read_features.reshape(heads, -1, n_features)
        out = weights @ table_value.transpose(0, 1) + read_features @ product_value.transpose(0, 1)
        return out.view(heads, batch, n_latents, head_dim).permute(1, 2, 0, 3).reshape(batch, n_latents, dim)

    @property
    def aux_parameters(self) -> list[nn.Parameter]:
        """Parameters used only by the CQ/QX predictions and the error head."""
        return [*self.aux.parameters(), *self.error.parameters()]

    def forward(self, observation: th.Tensor, aux: bool = True) -> NetworkOutput:
        """Run the trunk and the heads on a batch of observations (B, ``layout.size``).

        With ``aux=False`` (acting) the CQ/QX predictions and the error are left out (``None``).
        """
        batch = observation.shape[0]
        # (B, 100, 10); index_select on the flat index, cheaper on CPU than advanced indexing (benchmarks/RESULTS.md)
        features = observation.index_select(1, self.feature_index.flatten()).view(batch, *self.feature_index.shape)
        features = features * self.feature_mask

        # 1. latents read the 100 entity tokens
        latents = self.latents + self.read_out(self.read(features))
        latents = latents + self.read_mlp(self.read_norm(latents))
        # 2. latent self-attention
        for block in self.blocks:
            latents = block(latents)
        pooled = self.latent_norm(latents).mean(dim=1)  # (B, d)
        # 3. subjects and qualities receive the pooled context
        qualities = self.entities(features[:, QUALITY_TOKENS], QUALITY_TOKENS) + self.quality_context(pooled)[:, None]
        context = self.subject_context(pooled)  # (B, d), added to every subject token
        subject_features = features[:, SUBJECT_TOKENS, :2]  # score, target flag

        cq_logits, qx_logits = self.actor(subject_features, qualities, context)
        logits = th.cat((cq_logits.flatten(1), qx_logits.flatten(1)), dim=1)
        if not aux:
            return NetworkOutput(logits, self.critic(pooled), None, None, None)
        cq_scores, qx_scores = self.aux(subject_features, qualities, context)
        return NetworkOutput(
            logits=logits,
            value=self.critic(pooled),
            # softmax over the 5 qualities with the 93 subjects innermost: a last axis of 5 is slow on CPU (RESULTS.md)
            cq=th.softmax(cq_scores.transpose(1, 2), dim=1).transpose(1, 2),
            qx=th.softmax(qx_scores, dim=-1),
            log_error=self.error(pooled).squeeze(-1),
        )
