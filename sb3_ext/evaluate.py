"""Evaluate a trained model on held-out trainees: the optimize outcome, the baselines and the predictions.

For K seeded held-out trainees (default 200), the policy (the "optimize" outcome), the greedy oracle
and the random policy each run one 64-step episode from the same start. The policy samples its
actions as in training, trainee ``i`` with its own generator seeded ``seed + i``
(:class:`~sb3_ext.actions.PolicyActions`), so the outcome is reproducible and each trainee's matrices
are those the service's optimize gives for the same trainee and seed. The report gives each one's
mean return and the normalized score ``(R - R_random) / (R_greedy - R_random)`` with a 95% bootstrap
confidence interval, and the same for the policy's most likely actions (deterministic), beside it.
It also gives the original design's table for ``predict_weights`` on each trainee's initial state
against the matrices the optimization ended with, the same table against the deterministic run's
matrices, and the prediction latency.

The held-out trainees are drawn from the population alone (``edge_fraction=0``), whatever share of wide
trainees training draws: the headline score stays the score of the trainees the population describes,
comparable across versions, and is not dominated by the one-hot trainees, whose greedy-random gap is
about five times the population's. The wide part is measured by a fixed table of named
edge profiles (:data:`EDGE_PROFILES`): for each, ``edge_trainees`` trainees of the population (seeded
apart from the held-out set) with the named fields set, each run by the greedy oracle, random, the
sampled policy and the most likely actions, with the normalized score per profile. The report keeps
every held-out trainee's returns (``per_trainee``) so that runs of several seeds can be aggregated
(``benchmarks/seeds.py``).

On ``FitnessWeights-v1`` (``--env FitnessWeights-v1``) the score's 0 and 1 are the coach (the catalog's plan,
never personalized) and the oracle (which knows the trainee's hidden parameters), ``(R - R_coach) / (R_oracle -
R_coach)``; random and the best plan for the population's average trainee are reported beside them::

    python -m sb3_ext.evaluate runs/model.zip --trainees 200 --seed 0 --out runs/
    python -m sb3_ext.evaluate runs/v1/model.zip --env FitnessWeights-v1 --out runs/v1/
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from fitness_weights_env import CATALOG, ENV_IDS, TraineeProfile, sample_profiles
from fitness_weights_env.baselines import (
    VECTOR_ENVS,
    EpisodeResults,
    GreedyPolicy,
    Policy,
    RandomPolicy,
    normalized_score,
    run_episodes,
)
from fitness_weights_env.errors import FieldError, check_int
from fitness_weights_env.layout import AGE_MAX, AGE_MIN
from fitness_weights_env.metrics import MatrixMetrics, matrix_metrics
from fitness_weights_env.population import typical_subject_scores
from fitness_weights_env.training_baselines import CoachPolicy, OraclePolicy, PlanPolicy
from sb3_ext.actions import PolicyActions
from sb3_ext.ppo import PPO

__all__ = [
    "EDGE_PROFILES",
    "EdgeProfileResult",
    "EvaluationReport",
    "ScoreCallback",
    "anchor_returns",
    "anchor_runs",
    "edge_profiles",
    "evaluate_model",
    "held_out_profiles",
    "main",
]

HELD_OUT_SEED = 10_000
"""Offset of the held-out trainees' seeds, away from the seeds training envs use."""
EDGE_SEED = 20_000
"""Offset of the seeds of the edge profiles' base trainees, away from the held-out set."""
EDGE_TRAINEES = 16
"""Default number of trainees per edge profile."""
EDGE_GAP = 0.05
"""Greedy-random gap in mean return below which an edge profile's normalized score is mostly noise."""
V1_EDGE_GAP = 0.005
"""The same on ``FitnessWeights-v1``, whose oracle-coach margins are about 0.02 in mean return."""

POLICY_NAMES = ("policy (optimize: sampled, seeded)", "policy (deterministic)", "greedy", "random")
"""The four runs of every trainee on ``FitnessWeights-v0``, in the report's order."""
V1_POLICY_NAMES = (*POLICY_NAMES[:2], "oracle", "coach", "random", "average trainee's plan")
"""The runs of every trainee on ``FitnessWeights-v1``: the score's 1 and 0 (oracle, coach), random and the plan
for the population's average trainee (:mod:`fitness_weights_env.training_baselines`)."""
SCORE_ANCHORS = {"FitnessWeights-v0": ("random", "greedy"), "FitnessWeights-v1": ("coach", "oracle")}
"""The runs that score 0 and 1 on each env."""


def policy_names(env_id: str) -> tuple[str, ...]:
    """The runs of every trainee on ``env_id``, in the report's order."""
    return V1_POLICY_NAMES if env_id == "FitnessWeights-v1" else POLICY_NAMES


def _reference_policies(env_id: str, seed: int) -> tuple[Policy, ...]:
    """The reference runs after the policy's two, in :func:`policy_names` order."""
    if env_id == "FitnessWeights-v1":
        # v1's policies take v1's vector env (a FitnessWeightsVectorEnv), which is what run_episodes gives them
        return (OraclePolicy(), CoachPolicy(), RandomPolicy(seed), PlanPolicy("average"))  # type: ignore[return-value]
    return (GreedyPolicy(), RandomPolicy(seed))


def _with_qualities(qualities: Sequence[float]) -> Callable[[TraineeProfile, int], dict[str, Any]]:
    """Set every quality, and the subject scores the population has for them (what the service assumes)."""
    levels = np.asarray(qualities, dtype=np.float64)
    return lambda profile, i: {"qualities": levels, "subject_scores": typical_subject_scores(levels)}


def _with_targets(count: int) -> Callable[[TraineeProfile, int], dict[str, Any]]:
    """``count`` distinct target subjects, drawn per trainee with a generator of its own."""
    return lambda profile, i: {
        "targets": np.random.default_rng([EDGE_SEED, count, i]).permutation(CATALOG.n_subjects)[:count].tolist()
    }


def _one_hot(index: int) -> list[float]:
    return [1.0 if j == index else 0.0 for j in range(CATALOG.n_qualities)]


EDGE_PROFILES: dict[str, Callable[[TraineeProfile, int], dict[str, Any]]] = {
    "all qualities 0.5": _with_qualities([0.5] * CATALOG.n_qualities),
    "all qualities 0": _with_qualities([0.0] * CATALOG.n_qualities),
    "all qualities 1": _with_qualities([1.0] * CATALOG.n_qualities),
    **{f"one-hot {q.name_en}": _with_qualities(_one_hot(j)) for j, q in enumerate(CATALOG.qualities)},
    f"youngest age ({AGE_MIN})": lambda profile, i: {"age": AGE_MIN},
    f"oldest age ({AGE_MAX})": lambda profile, i: {"age": AGE_MAX},
    "lowest fitness (0)": lambda profile, i: {"fitness_level": 0.0},
    "highest fitness (1)": lambda profile, i: {"fitness_level": 1.0},
    "5 targets": _with_targets(5),
    "10 targets": _with_targets(10),
    "30 targets": _with_targets(30),
    f"all {CATALOG.n_subjects} targets": _with_targets(CATALOG.n_subjects),
}
"""The named edge profiles: each maps a population trainee (and its index) to the fields it sets.

A profile that sets the qualities also sets the subject scores to the population's for those qualities,
as the service does for a trainee whose scores were not measured. ``"wide draws"`` (trainees drawn from
the wide distribution of :mod:`fitness_weights_env.population`) is added after these."""

WIDE_ROW = "wide draws"
"""The edge table's last row: trainees drawn from the population's wide distribution alone."""


def edge_profiles(n_per_profile: int, seed: int) -> dict[str, list[TraineeProfile]]:
    """The trainees of each edge profile: ``n_per_profile`` population trainees with the profile's fields set.

    Every profile starts from the same base trainees (``sample_profiles(n, EDGE_SEED + seed, edge_fraction=0)``),
    so the rows differ only in what they name; ``"wide draws"`` are ``edge_fraction=1`` draws of the same seeds.
    """
    base = sample_profiles(n_per_profile, seed=EDGE_SEED + seed, edge_fraction=0.0)
    rows = {
        name: [TraineeProfile.from_dict({**profile.to_dict(), **change(profile, i)}) for i, profile in enumerate(base)]
        for name, change in EDGE_PROFILES.items()
    }
    rows[WIDE_ROW] = sample_profiles(n_per_profile, seed=EDGE_SEED + seed, edge_fraction=1.0)
    return rows


@dataclass
class EdgeProfileResult:
    """One row of the edge table.

    Attributes:
        name: The profile's name (a key of :data:`EDGE_PROFILES`, or ``"wide draws"``).
        n_trainees: Trainees in the row.
        mean_return: Mean return of each run, keyed as the report's ``mean_return``.
        normalized_score: The sampled policy's (the optimize outcome's) normalized score on the row.
        deterministic_score: The most likely actions' normalized score on the row.
        anchors: The runs that score 0 and 1 (:data:`SCORE_ANCHORS`).
    """

    name: str
    n_trainees: int
    mean_return: dict[str, float]
    normalized_score: float
    deterministic_score: float
    anchors: tuple[str, str] = ("random", "greedy")

    @property
    def gap(self) -> float:
        """The score's 1 minus its 0 in mean return (greedy - random on v0): the scale of the row's scores."""
        return self.mean_return[self.anchors[1]] - self.mean_return[self.anchors[0]]


@dataclass
class EvaluationReport:
    """Everything :func:`evaluate_model` measures. ``to_markdown`` and ``to_dict`` render it.

    ``per_trainee`` holds, for each held-out trainee in order, its return under each of :func:`policy_names`
    and its number of target subjects (``"n_targets"``); ``edge_profiles`` is the edge table.
    """

    n_trainees: int
    seed: int
    mean_return: dict[str, float]
    normalized_score: float
    normalized_score_ci: tuple[float, float]
    deterministic_score: float
    deterministic_score_ci: tuple[float, float]
    cq: MatrixMetrics | None
    qx: MatrixMetrics | None
    latency_ms: dict[str, float]
    cq_deterministic: MatrixMetrics | None = None
    qx_deterministic: MatrixMetrics | None = None
    edge_profiles: list[EdgeProfileResult] = field(default_factory=list)
    per_trainee: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    env_id: str = "FitnessWeights-v0"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes null)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value

        return clean(asdict(self))

    def to_markdown(self) -> str:
        """The report as Markdown tables."""
        low, high = self.normalized_score_ci
        deterministic_low, deterministic_high = self.deterministic_score_ci
        zero, one = SCORE_ANCHORS[self.env_id]
        lines = [
            f"## Evaluation on {self.env_id}, {self.n_trainees} held-out trainees (seed {self.seed})",
            "",
            "| policy | mean return |",
            "|---|---:|",
            *(f"| {name} | {value:.3f} |" for name, value in self.mean_return.items()),
            "",
            f"Normalized score (0 = {zero}, 1 = {one}): **{self.normalized_score:.3f}** "
            f"(95% CI {low:.3f} to {high:.3f}); with the most likely actions (deterministic) "
            f"{self.deterministic_score:.3f} ({deterministic_low:.3f} to {deterministic_high:.3f})",
            "",
        ]
        lines += self._edge_lines()
        if self.cq is None or self.qx is None:
            lines.append("The policy has no `predict_weights`: no prediction table.")
            return "\n".join(lines) + "\n"
        lines += [
            "`predict_weights` on the initial state against the optimize outcome:",
            "",
            "| metric | CQ | QX |",
            "|---|---:|---:|",
        ]
        lines += _metrics_rows(self.cq, self.qx)
        if self.cq_deterministic is not None and self.qx_deterministic is not None:
            lines += [
                "",
                "The same predictions against the outcome of the deterministic run (the most likely actions):",
                "",
                "| metric | CQ | QX |",
                "|---|---:|---:|",
                *_metrics_rows(self.cq_deterministic, self.qx_deterministic),
            ]
        lines += ["", "| prediction latency | ms |", "|---|---:|"]
        lines += [f"| {name} | {value:.3f} |" for name, value in self.latency_ms.items()]
        return "\n".join(lines) + "\n"

    def _edge_lines(self) -> list[str]:
        """The edge table, or nothing when it was not measured."""
        if not self.edge_profiles:
            return []
        n = self.edge_profiles[0].n_trainees
        zero, one = SCORE_ANCHORS[self.env_id]
        gap = V1_EDGE_GAP if self.env_id == "FitnessWeights-v1" else EDGE_GAP
        lines = [
            f"Edge profiles ({n} trainees each; normalized score 0 = {zero}, 1 = {one}, per profile; "
            f"* where {one} and {zero} differ by at most {gap} in mean return, so the score is mostly noise):",
            "",
            f"| profile | {one} | {zero} | {one} - {zero} | optimize (sampled) | deterministic "
            "| score (sampled) | score (deterministic) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in self.edge_profiles:
            returns = [row.mean_return[name] for name in (one, zero)]
            policies = [row.mean_return[name] for name in POLICY_NAMES[:2]]
            mark = "*" if abs(row.gap) <= gap else ""
            lines.append(
                f"| {row.name} | {returns[0]:.3f} | {returns[1]:.3f} | {row.gap:.3f}{mark} | {policies[0]:.3f} "
                f"| {policies[1]:.3f} | {row.normalized_score:.3f} | {row.deterministic_score:.3f} |"
            )
        return [*lines, ""]

    def write(self, folder: str | Path) -> None:
        """Write ``evaluation.json`` and ``evaluation.md`` in ``folder`` (created if missing)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "evaluation.json").write_text(json.dumps(self.to_dict(), indent=2))
        (folder / "evaluation.md").write_text(self.to_markdown())


def _metrics_rows(cq: MatrixMetrics, qx: MatrixMetrics) -> list[str]:
    """The rows of the original design's prediction table, CQ beside QX."""
    rows = []
    for name in ("mse", "mae", "rmse", "mean_cosine", "mean_pearson", "pearson_defined", "mean_confidence"):
        rows.append(f"| {name} | {_format(getattr(cq, name))} | {_format(getattr(qx, name))} |")
    spearman = (cq.confidence_error_spearman, qx.confidence_error_spearman)
    rows.append(f"| confidence-error Spearman | {_format(spearman[0])} | {_format(spearman[1])} |")
    return rows


def _format(value: float) -> str:
    if not math.isfinite(value):
        return "undefined"
    return f"{value:.3g}" if abs(value) < 1e-2 else f"{value:.4f}"


def _bootstrap_ci(
    returns: np.ndarray, random: np.ndarray, greedy: np.ndarray, seed: int, resamples: int = 2000
) -> tuple[float, float]:
    """95% percentile interval of the normalized score, resampling trainees."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(returns), size=(resamples, len(returns)))
    low, high = random[index].mean(axis=1), greedy[index].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (returns[index].mean(axis=1) - low) / (high - low)
    scores = scores[np.isfinite(scores)]
    return float(np.percentile(scores, 2.5)), float(np.percentile(scores, 97.5))


class HasPolicy(Protocol):
    """Anything with an SB3 policy: a ``PPO`` model, or a policy loaded on its own (the service's registry)."""

    policy: Any


def _score_or_nan(returns: np.ndarray, random: np.ndarray, greedy: np.ndarray) -> float:
    """The normalized score, NaN where greedy and random have the same mean return."""
    try:
        return normalized_score(returns, random, greedy)
    except ValueError:
        return math.nan


def held_out_profiles(n_trainees: int, seed: int = 0) -> list[TraineeProfile]:
    """The evaluation's held-out trainees: ``n_trainees`` of the population alone, set ``HELD_OUT_SEED + seed``."""
    return sample_profiles(n_trainees, seed=HELD_OUT_SEED + seed, edge_fraction=0.0)


def anchor_runs(
    env_id: str = "FitnessWeights-v0", n_trainees: int = 200, seed: int = 0, **env_kwargs: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Per-trainee returns (K,) of the runs that score 0 and 1 (:data:`SCORE_ANCHORS`) on the held-out trainees.

    They are the runs of :func:`evaluate_model` with the same arguments.
    """
    if env_id not in ENV_IDS:
        raise FieldError("env_id", f"must be one of {list(ENV_IDS)}", env_id)
    profiles = held_out_profiles(n_trainees, seed)
    policies = dict(zip(policy_names(env_id)[2:], _reference_policies(env_id, seed), strict=True))
    low, high = (
        run_episodes(policies[name], profiles, seed=seed, env_id=env_id, **env_kwargs).returns
        for name in SCORE_ANCHORS[env_id]
    )
    return low, high


def anchor_returns(
    env_id: str = "FitnessWeights-v0", n_trainees: int = 200, seed: int = 0, **env_kwargs: Any
) -> tuple[float, float]:
    """The mean returns that score 0 and 1 on the held-out trainees of ``seed`` (:func:`anchor_runs`).

    ``(R - low) / (high - low)`` of a mean return ``R`` over those trainees is the evaluation's normalized score
    (an offline dataset's reference scores).
    """
    low, high = anchor_runs(env_id, n_trainees, seed, **env_kwargs)
    return float(low.mean()), float(high.mean())


def _run_all(
    policy: Any, profiles: Sequence[TraineeProfile], seed: int, env_kwargs: dict[str, Any], env_id: str
) -> dict[str, EpisodeResults]:
    """One episode of each trainee under each of :func:`policy_names`, all from the same starts.

    Trainee ``i`` starts from episode seed ``seed + i`` and, sampled, draws its actions with seed ``seed + i``.
    """
    seeds = [seed + i for i in range(len(profiles))]
    runs: tuple[Policy, ...] = (PolicyActions(policy, seeds), PolicyActions(policy), *_reference_policies(env_id, seed))
    return {
        name: run_episodes(actions, profiles, seed=seed, env_id=env_id, **env_kwargs)
        for name, actions in zip(policy_names(env_id), runs, strict=True)
    }


def _edge_table(
    policy: Any, n_per_profile: int, seed: int, env_kwargs: dict[str, Any], env_id: str
) -> list[EdgeProfileResult]:
    """Run every edge profile's trainees in one batch and score each profile on its own rows."""
    rows = edge_profiles(n_per_profile, seed)
    all_profiles = [profile for trainees in rows.values() for profile in trainees]
    results = _run_all(policy, all_profiles, seed, env_kwargs, env_id)
    zero, one = SCORE_ANCHORS[env_id]
    table = []
    for k, name in enumerate(rows):
        part = {key: value.returns[k * n_per_profile : (k + 1) * n_per_profile] for key, value in results.items()}
        table.append(
            EdgeProfileResult(
                name=name,
                n_trainees=n_per_profile,
                mean_return={key: float(value.mean()) for key, value in part.items()},
                normalized_score=_score_or_nan(part[POLICY_NAMES[0]], part[zero], part[one]),
                deterministic_score=_score_or_nan(part[POLICY_NAMES[1]], part[zero], part[one]),
                anchors=(zero, one),
            )
        )
    return table


class ScoreCallback(BaseCallback):
    """Every ``eval_rollouts`` rollouts, the policy's normalized score on held-out trainees, logged during training.

    The score is :func:`evaluate_model`'s headline, on the same trainees and the same runs: the policy's optimize
    outcome (actions sampled with each trainee's seed) on ``n_trainees`` held-out trainees of ``seed``, against
    the anchors of :func:`anchor_runs` (run once, at the start of training). It is recorded as
    ``eval/normalized_score`` in the logger, so it appears in the dump that follows the rollout (TensorBoard, the
    job's metrics), and kept in :attr:`last_score`.

    Args:
        eval_rollouts: Rollouts between two evaluations, at least 1.
        n_trainees: Held-out trainees, at least 2.
        seed: Seed of the held-out set and of the episodes.
        env_id: The env the policy trains in.
    """

    def __init__(self, eval_rollouts: int, n_trainees: int = 50, seed: int = 0, env_id: str = ENV_IDS[0]) -> None:
        super().__init__()
        check_int("eval_rollouts", eval_rollouts, 1)
        check_int("n_trainees", n_trainees, 2)
        if env_id not in ENV_IDS:
            raise FieldError("env_id", f"must be one of {list(ENV_IDS)}", env_id)
        self.eval_rollouts, self.n_trainees, self.seed, self.env_id = eval_rollouts, n_trainees, seed, env_id
        self.rollouts = 0
        self.last_score: float | None = None
        self._profiles: list[TraineeProfile] = []
        self._anchors: tuple[np.ndarray, np.ndarray] | None = None

    def _on_training_start(self) -> None:
        self._profiles = held_out_profiles(self.n_trainees, self.seed)
        self._anchors = anchor_runs(self.env_id, self.n_trainees, self.seed)

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        self.rollouts += 1
        if self.rollouts % self.eval_rollouts == 0:
            self.evaluate()

    def evaluate(self) -> float:
        """Evaluate the policy now; log and return its normalized score (NaN if the anchors tie)."""
        if self._anchors is None:  # not started by learn: the trainees and anchors now
            self._on_training_start()
        assert self._anchors is not None
        seeds = [self.seed + i for i in range(len(self._profiles))]
        policy: Any = self.model.policy  # an ActorCriticPolicy: PPO's
        actions = PolicyActions(policy, seeds)
        returns = run_episodes(actions, self._profiles, seed=self.seed, env_id=self.env_id).returns
        self.last_score = _score_or_nan(returns, *self._anchors)
        self.logger.record("eval/normalized_score", self.last_score)
        return self.last_score


def evaluate_model(
    model: PPO | HasPolicy,
    n_trainees: int = 200,
    seed: int = 0,
    edge_trainees: int | None = None,
    env_id: str = "FitnessWeights-v0",
    **env_kwargs: Any,
) -> EvaluationReport:
    """Run the policy and the reference policies on the same held-out trainees and measure the predictions.

    On ``FitnessWeights-v0`` the references are the greedy oracle (the score's 1) and random (its 0); on
    ``FitnessWeights-v1`` the oracle and the coach, with random and the average trainee's plan beside.

    Args:
        model: A trained model (only its ``policy`` is used). Without ``predict_weights`` on its policy
            (``MlpPolicy``), the report has no prediction table.
        n_trainees: Number of held-out trainees K, drawn from the population alone (``edge_fraction=0``).
        seed: Seed of the held-out set, of the edge profiles' trainees and of the episodes.
        edge_trainees: Trainees per edge profile (:data:`EDGE_PROFILES`); 0 leaves the edge table out. By default
            ``EDGE_TRAINEES``, or ``n_trainees`` if that is fewer, so that a small evaluation stays small.
        env_id: The env the policy acts in, one of ``fitness_weights_env.ENV_IDS``.
        **env_kwargs: Passed to the environment (``step_size``, ``init``...); use the training settings.
    """
    if n_trainees < 2:
        raise FieldError("n_trainees", "must be at least 2", n_trainees)
    if env_id not in ENV_IDS:
        raise FieldError("env_id", f"must be one of {list(ENV_IDS)}", env_id)
    if edge_trainees is None:
        edge_trainees = min(EDGE_TRAINEES, n_trainees)
    if edge_trainees < 0:
        raise FieldError("edge_trainees", "must be at least 0", edge_trainees)
    profiles = held_out_profiles(n_trainees, seed)
    runs = _run_all(model.policy, profiles, seed, env_kwargs, env_id)
    outcome, deterministic = runs[POLICY_NAMES[0]], runs[POLICY_NAMES[1]]
    zero, one = (runs[name].returns for name in SCORE_ANCHORS[env_id])
    per_trainee = {name: run.returns.tolist() for name, run in runs.items()}
    per_trainee["n_targets"] = [float(len(profile.targets)) for profile in profiles]
    edges = _edge_table(model.policy, edge_trainees, seed, env_kwargs, env_id) if edge_trainees else []

    mean_return = {name: float(run.returns.mean()) for name, run in runs.items()}
    scores: dict[str, Any] = {
        "normalized_score": normalized_score(outcome.returns, zero, one),
        "normalized_score_ci": _bootstrap_ci(outcome.returns, zero, one, seed),
        "deterministic_score": normalized_score(deterministic.returns, zero, one),
        "deterministic_score_ci": _bootstrap_ci(deterministic.returns, zero, one, seed),
        "env_id": env_id,
    }
    predict = getattr(model.policy, "predict_weights", None)
    if predict is None:
        return EvaluationReport(
            n_trainees,
            seed,
            mean_return,
            **scores,
            cq=None,
            qx=None,
            latency_ms={},
            edge_profiles=edges,
            per_trainee=per_trainee,
        )

    env = VECTOR_ENVS[env_id](n_trainees, **env_kwargs)
    initial, _ = env.reset(seed=seed, options={"profiles": profiles})
    cq, qx, confidence = predict(initial)
    single = []
    for observation in initial[: min(n_trainees, 100)]:
        start = time.perf_counter()
        predict(observation)
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    predict(initial)
    batched = time.perf_counter() - start
    return EvaluationReport(
        n_trainees=n_trainees,
        seed=seed,
        mean_return=mean_return,
        **scores,
        cq=matrix_metrics(cq, outcome.cq, confidence),
        qx=matrix_metrics(qx, outcome.qx, confidence),
        cq_deterministic=matrix_metrics(cq, deterministic.cq, confidence),
        qx_deterministic=matrix_metrics(qx, deterministic.qx, confidence),
        edge_profiles=edges,
        per_trainee=per_trainee,
        latency_ms={
            "one trainee (median)": 1e3 * statistics.median(single),
            f"batch of {n_trainees}, per trainee": 1e3 * batched / n_trainees,
        },
    )


def main(argv: list[str] | None = None) -> EvaluationReport:
    """Command line: evaluate a saved model, print the Markdown report and write JSON and Markdown."""
    parser = argparse.ArgumentParser(prog="python -m sb3_ext.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model saved by sb3_ext.PPO (.zip)")
    parser.add_argument("--trainees", type=int, default=200, help="held-out trainees (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out set and episodes")
    parser.add_argument(
        "--edge-trainees", type=int, default=None, help=f"trainees per edge profile (default {EDGE_TRAINEES}; 0: none)"
    )
    parser.add_argument("--out", type=Path, default=None, help="folder for evaluation.json and evaluation.md")
    parser.add_argument("--device", default="cpu", help="torch device for the policy (default cpu)")
    parser.add_argument("--env", default="FitnessWeights-v0", choices=ENV_IDS, help="the env (default v0)")
    args = parser.parse_args(argv)
    if not args.model.exists() and not args.model.with_suffix(".zip").exists():
        parser.error(f"model file {args.model} does not exist")
    model = PPO.load(args.model, device=args.device)
    report = evaluate_model(
        model, n_trainees=args.trainees, seed=args.seed, edge_trainees=args.edge_trainees, env_id=args.env
    )
    print(report.to_markdown())
    if args.out is not None:
        report.write(args.out)
    return report


if __name__ == "__main__":
    main()
