"""How much knowing a v1 trainee pays under a distribution of hidden parameters, without training anything.

For each candidate distribution (:class:`~fitness_weights_env.hidden.HiddenDistribution`) the same trainees (the
same profiles and env seeds, so the same standard draws under other spreads) are run with the coach's plan, the
plan oracle (plans with the trainee's hidden parameters), the plan for the population's average trainee (the
profile, nothing hidden: what one policy for everyone can reach at most by planning) and the plan with the 8 summary
values (the trainee's responsiveness, time constants and gain ratio, the population's transfer). Scores: 0 is the
coach, 1 the oracle, as the evaluation's; the oracle's lead over the average trainee's plan, ``1 - score``, is what
adaptation could gain at most over a one-size plan. The trainees are not the gate's held-out ones (another seed)::

    python benchmarks/bench_v1_spread.py                      # the candidates, 100 trainees each
    python benchmarks/bench_v1_spread.py --only default,wide --trainees 200
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from fitness_weights_env import sample_profiles
from fitness_weights_env.baselines import run_episodes
from fitness_weights_env.hidden import DEFAULT_HIDDEN, HIDDEN_DISTRIBUTIONS, HiddenDistribution
from fitness_weights_env.training_baselines import CoachPolicy, OraclePolicy, PlanPolicy

ENV = "FitnessWeights-v1"
_replace = dataclasses.replace
CANDIDATES: dict[str, HiddenDistribution] = {
    **HIDDEN_DISTRIBUTIONS,
    "transfer c=5": _replace(DEFAULT_HIDDEN, transfer_concentration=5.0),
    "transfer c=3": _replace(DEFAULT_HIDDEN, transfer_concentration=3.0),
    "transfer c=1": _replace(DEFAULT_HIDDEN, transfer_concentration=1.0),
    "time constants x2": _replace(DEFAULT_HIDDEN, tau1_sigma=0.3, tau2_sigma=0.3, gain_ratio_sigma=0.4),
    "responses uncorrelated": _replace(DEFAULT_HIDDEN, responsiveness_correlation=0.0),
    "responses uncorrelated + sigma 0.8": _replace(
        DEFAULT_HIDDEN, responsiveness_correlation=0.0, responsiveness_sigma=0.8
    ),
    "tau1 x2": _replace(DEFAULT_HIDDEN, tau1_sigma=0.3),
    "tau2 x2": _replace(DEFAULT_HIDDEN, tau2_sigma=0.3),
    "gain ratio x2": _replace(DEFAULT_HIDDEN, gain_ratio_sigma=0.4),
    "time constants x1.5": _replace(DEFAULT_HIDDEN, tau1_sigma=0.225, tau2_sigma=0.225, gain_ratio_sigma=0.3),
    "time constants x2 + transfer c=5": _replace(
        DEFAULT_HIDDEN, tau1_sigma=0.3, tau2_sigma=0.3, gain_ratio_sigma=0.4, transfer_concentration=5.0
    ),
}
"""The distributions compared: the presets, then one spread changed at a time."""


def ratio_interval(
    value: np.ndarray, low: np.ndarray, high: np.ndarray, reps: int, seed: int = 0
) -> tuple[float, float]:
    """95% paired bootstrap interval over trainees of ``(mean(value) - mean(low)) / (mean(high) - mean(low))``."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, value.shape[0], size=(reps, value.shape[0]))
    low_mean = low[index].mean(axis=1)
    ratios = (value[index].mean(axis=1) - low_mean) / (high[index].mean(axis=1) - low_mean)
    lower, upper = np.quantile(ratios, [0.025, 0.975])
    return float(lower), float(upper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainees", type=int, default=100)
    parser.add_argument("--seed", type=int, default=10_000, help="profiles and env seeds (trainee i: seed + i)")
    parser.add_argument("--only", default=None, help="comma-separated candidate names (default: all)")
    parser.add_argument("--reps", type=int, default=5_000, help="bootstrap replicates")
    args = parser.parse_args()
    names = list(CANDIDATES) if args.only is None else args.only.split(",")
    profiles = sample_profiles(args.trainees, seed=args.seed, edge_fraction=0)
    print(f"{args.trainees} trainees (profiles and env seeds from {args.seed}); 0 = coach, 1 = plan oracle\n")
    print(
        "| distribution | rho, sigma_r | tau1, tau2, ratio log-sd | transfer c | oracle - coach (return) "
        "| average trainee's plan | summary plan | oracle's lead over the average plan [95% CI] | s |"
    )
    print("|---|---|---|---:|---:|---:|---:|---|---:|")
    for name in names:
        distribution = CANDIDATES[name]
        start = time.perf_counter()

        def returns(policy: object, distribution: HiddenDistribution = distribution) -> np.ndarray:
            return run_episodes(policy, profiles, seed=args.seed, steps=64, env_id=ENV, hidden=distribution).returns

        coach, oracle = returns(CoachPolicy()), returns(OraclePolicy())
        average, summary = returns(PlanPolicy("average")), returns(PlanPolicy("summary"))
        margin = float(np.mean(oracle - coach))
        lead_low, lead_high = (1.0 - x for x in reversed(ratio_interval(average, coach, oracle, args.reps)))
        d = distribution
        print(
            f"| {name} | {d.responsiveness_correlation:g}, {d.responsiveness_sigma:g} | "
            f"{d.tau1_sigma:g}, {d.tau2_sigma:g}, {d.gain_ratio_sigma:g} | {d.transfer_concentration:g} | "
            f"{margin:.4f} | {np.mean(average - coach) / margin:.3f} | {np.mean(summary - coach) / margin:.3f} | "
            f"{1.0 - np.mean(average - coach) / margin:.3f} [{lead_low:.3f}, {lead_high:.3f}] | "
            f"{time.perf_counter() - start:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
