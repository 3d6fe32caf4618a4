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
matrices, and the prediction latency::

    python -m sb3_ext.evaluate runs/model.zip --trainees 200 --seed 0 --out runs/
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fitness_weights_env import FitnessWeightsVectorEnv, sample_profiles
from fitness_weights_env.baselines import GreedyPolicy, RandomPolicy, normalized_score, run_episodes
from fitness_weights_env.metrics import MatrixMetrics, matrix_metrics
from sb3_ext.actions import PolicyActions
from sb3_ext.ppo import PPO

__all__ = ["EvaluationReport", "evaluate_model", "main"]

HELD_OUT_SEED = 10_000
"""Offset of the held-out trainees' seeds, away from the seeds training envs use."""


@dataclass
class EvaluationReport:
    """Everything :func:`evaluate_model` measures. ``to_markdown`` and ``to_dict`` render it."""

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
    extra: dict[str, Any] = field(default_factory=dict)

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
        lines = [
            f"## Evaluation on {self.n_trainees} held-out trainees (seed {self.seed})",
            "",
            "| policy | mean return |",
            "|---|---:|",
            *(f"| {name} | {value:.3f} |" for name, value in self.mean_return.items()),
            "",
            f"Normalized score (0 = random, 1 = greedy): **{self.normalized_score:.3f}** "
            f"(95% CI {low:.3f} to {high:.3f}); with the most likely actions (deterministic) "
            f"{self.deterministic_score:.3f} ({deterministic_low:.3f} to {deterministic_high:.3f})",
            "",
        ]
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


def evaluate_model(model: PPO | HasPolicy, n_trainees: int = 200, seed: int = 0, **env_kwargs: Any) -> EvaluationReport:
    """Run the policy, the greedy oracle and random on the same held-out trainees and measure the predictions.

    Args:
        model: A trained model (only its ``policy`` is used). Without ``predict_weights`` on its policy
            (``MlpPolicy``), the report has no prediction table.
        n_trainees: Number of held-out trainees K.
        seed: Seed of the held-out set and of the episodes.
        **env_kwargs: Passed to the environment (``step_size``, ``init``...); use the training settings.
    """
    if n_trainees < 2:
        raise ValueError(f"n_trainees must be at least 2, got {n_trainees}")
    profiles = sample_profiles(n_trainees, seed=HELD_OUT_SEED + seed)
    seeds = [seed + i for i in range(n_trainees)]  # trainee i's episode seed (run_episodes), and its actions'
    outcome = run_episodes(PolicyActions(model.policy, seeds), profiles, seed=seed, **env_kwargs)
    deterministic = run_episodes(PolicyActions(model.policy), profiles, seed=seed, **env_kwargs)
    greedy = run_episodes(GreedyPolicy(), profiles, seed=seed, **env_kwargs)
    random = run_episodes(RandomPolicy(seed=seed), profiles, seed=seed, **env_kwargs)

    mean_return = {
        "policy (optimize: sampled, seeded)": float(outcome.returns.mean()),
        "policy (deterministic)": float(deterministic.returns.mean()),
        "greedy": float(greedy.returns.mean()),
        "random": float(random.returns.mean()),
    }
    scores = {
        "normalized_score": normalized_score(outcome.returns, random.returns, greedy.returns),
        "normalized_score_ci": _bootstrap_ci(outcome.returns, random.returns, greedy.returns, seed),
        "deterministic_score": normalized_score(deterministic.returns, random.returns, greedy.returns),
        "deterministic_score_ci": _bootstrap_ci(deterministic.returns, random.returns, greedy.returns, seed),
    }
    predict = getattr(model.policy, "predict_weights", None)
    if predict is None:
        return EvaluationReport(n_trainees, seed, mean_return, **scores, cq=None, qx=None, latency_ms={})

    env = FitnessWeightsVectorEnv(n_trainees, **env_kwargs)
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
    parser.add_argument("--out", type=Path, default=None, help="folder for evaluation.json and evaluation.md")
    parser.add_argument("--device", default="cpu", help="torch device for the policy (default cpu)")
    args = parser.parse_args(argv)
    if not args.model.exists() and not args.model.with_suffix(".zip").exists():
        parser.error(f"model file {args.model} does not exist")
    model = PPO.load(args.model, device=args.device)
    report = evaluate_model(model, n_trainees=args.trainees, seed=args.seed)
    print(report.to_markdown())
    if args.out is not None:
        report.write(args.out)
    return report


if __name__ == "__main__":
    main()
