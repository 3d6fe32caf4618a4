"""FitnessWeights-v1's training model against its acceptance figures: calibration, plans, trainees and injury.

Every figure comes from the env's own kernel (``fitness_weights_env.body.train_week``), on held-out population
trainees (``sample_profiles(n, seed=10_000, edge_fraction=0)``, hidden parameters drawn by the env at reset with
seed ``10_000 + i``). A "plan" is an allocation held for the 16 weeks from week 1 (``planner.plan_return``)::

    python benchmarks/bench_v1_model.py --trainees 1000

prints four tables:

* calibration: the oracle's plan (``planner.best_plan`` with the true hidden parameters): the relative gain of
  the target-weighted quality level ``c . q`` (``c`` the targets' mean CQ_prior row), its median, the coefficient
  of variation across trainees, the share under 5% (low responders), and the correlation between the baseline
  ``c . q0`` and the absolute gain;
* plans: the return of the coach's plan (the catalog's), v0's optimum (every target CQ row on the measured
  strongest quality, QX at the prior), the best plan for the population's average trainee and the oracle's,
  each as a share of the oracle's gain over the coach;
* policies: the same plans reached through the env's 685 actions (``training_baselines``) over 64 steps, with QX
  alone (CQ held at the prior) beside;
* injury: a sudden shift of half the budget onto the exercise the coach's plan loads least, against the same
  shift spread over 4 weeks.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fitness_weights_env import CATALOG, sample_profiles
from fitness_weights_env import body as trainees
from fitness_weights_env.baselines import RandomPolicy, run_episodes
from fitness_weights_env.planner import average_trainee, best_plan, plan_return
from fitness_weights_env.training_baselines import CoachPolicy, OraclePolicy, PlanPolicy
from fitness_weights_env.training_env import V1_WEEKS, FitnessWeightsV1VectorEnv

HELD_OUT_SEED = 10_000


def _bodies(n: int) -> tuple[trainees.Body, np.ndarray]:
    env = FitnessWeightsV1VectorEnv(n)
    observation, _ = env.reset(
        seed=HELD_OUT_SEED, options={"profiles": sample_profiles(n, seed=HELD_OUT_SEED, edge_fraction=0.0)}
    )
    return env.state.body.take(slice(None)), observation


def _final_qualities(body: trainees.Body, allocation: np.ndarray) -> np.ndarray:
    trained = body.take(slice(None))
    for _ in range(V1_WEEKS):
        trainees.train_week(trained, trained.budget[:, None] * allocation)
    return trained.qualities


def _row(name: str, *values: str) -> str:
    return f"| {name:<38} | " + " | ".join(f"{v:>12}" for v in values) + " |"


def calibration(body: trainees.Body, oracle: np.ndarray) -> None:
    need = body.target_qualities
    baseline = np.sum(need * body.baseline, axis=1)
    gain = np.sum(need * _final_qualities(body, oracle), axis=1) - baseline
    relative = gain / baseline
    print("\n| calibration (oracle's plan, 16 weeks)  |       figure |       target |")
    print("|----------------------------------------|--------------|--------------|")
    print(_row("median gain on targeted qualities", f"{np.median(relative):+.1%}", "+20% to +40%"))
    print(_row("coefficient of variation of the gain", f"{relative.std() / relative.mean():.2f}", ">= 0.4"))
    print(_row("low responders (gain under 5%)", f"{np.mean(relative < 0.05):.1%}", "2% to 10%"))
    print(_row("corr(baseline, absolute gain)", f"{np.corrcoef(baseline, gain)[0, 1]:+.3f}", "|r| <= 0.15"))
    print(_row("corr(baseline, relative gain)", f"{np.corrcoef(baseline, relative)[0, 1]:+.3f}", "(reported)"))


def plans(body: trainees.Body, observation: np.ndarray, oracle: np.ndarray, oracle_return: np.ndarray) -> None:
    coach = body.allocation.copy()
    strongest = np.argmax(observation[:, 3:8], axis=1)  # the measured qualities (LAYOUT.qualities)
    v0 = np.asarray(CATALOG.qx_prior)[strongest]
    average, _ = best_plan(average_trainee(body), coach, V1_WEEKS)
    returns = {
        "coach (catalog plan)": plan_return(body, coach, V1_WEEKS),
        "v0's optimum (CQ on strongest)": plan_return(body, v0, V1_WEEKS),
        "average trainee's best plan": plan_return(body, average, V1_WEEKS),
        "oracle": oracle_return,
    }
    low, high = returns["coach (catalog plan)"].mean(), oracle_return.mean()
    print("\n| plan held 16 weeks                     |  mean return | share of oracle's gain |")
    print("|----------------------------------------|--------------|--------------|")
    for name, value in returns.items():
        print(_row(name, f"{value.mean():.4f}", f"{(value.mean() - low) / (high - low):.2f}"))


def policies(n: int) -> None:
    profiles = sample_profiles(n, seed=HELD_OUT_SEED, edge_fraction=0.0)
    runs = {
        "coach": CoachPolicy(),
        "random": RandomPolicy(0),
        "average trainee's plan": PlanPolicy("average"),
        "oracle, QX alone (CQ at the prior)": PlanPolicy("true", "qx"),
        "oracle": OraclePolicy(),
    }
    returns = {}
    for name, policy in runs.items():
        returns[name] = run_episodes(policy, profiles, seed=HELD_OUT_SEED, steps=64, env_id="FitnessWeights-v1").returns
    low, high = returns["coach"].mean(), returns["oracle"].mean()
    print(f"\n| policy in the env (64 steps, {n} trainees) |  mean return | normalized |")
    print("|----------------------------------------|--------------|--------------|")
    for name, value in returns.items():
        print(_row(name, f"{value.mean():.4f}", f"{(value.mean() - low) / (high - low):.2f}"))


def injury(body: trainees.Body) -> None:
    coach = body.allocation.copy()
    new = np.argmin(coach, axis=1)
    shifted = 0.5 * coach
    shifted[np.arange(coach.shape[0]), new] += 0.5
    sudden = body.take(slice(None))
    p_coach, _ = trainees.injury_probability(sudden, sudden.budget[:, None] * coach)
    p_sudden, ratios = trainees.injury_probability(sudden, sudden.budget[:, None] * shifted)
    gradual, worst = body.take(slice(None)), np.zeros(coach.shape[0])
    for week in range(1, 9):
        share = min(week / 4, 1.0)
        week_plan = (1 - share) * coach + share * shifted
        result = trainees.train_week(gradual, gradual.budget[:, None] * week_plan)
        worst = np.maximum(worst, result.ratios.max(axis=1))
    print("\n| injury: half the budget onto a new exercise |       figure |       target |")
    print("|----------------------------------------|--------------|--------------|")
    print(_row("probability, coach's week", f"{p_coach.mean():.4f}", ""))
    print(_row("probability, sudden shift's week", f"{p_sudden.mean():.4f}", ""))
    print(_row("ratio sudden / coach (min over trainees)", f"{(p_sudden / p_coach).min():.2f}", ">= 3"))
    print(_row("highest load ratio, sudden", f"{ratios.max(axis=1).min():.2f}", "(min over trainees)"))
    print(_row("highest load ratio, over 4 weeks", f"{worst.max():.3f}", "<= 1.3"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainees", type=int, default=1000, help="trainees of the plan tables (default 1000)")
    parser.add_argument("--policy-trainees", type=int, default=200, help="trainees of the policy table (default 200)")
    args = parser.parse_args()
    started = time.perf_counter()
    body, observation = _bodies(args.trainees)
    oracle, oracle_return = best_plan(body, body.allocation.copy(), V1_WEEKS)
    calibration(body, oracle)
    plans(body, observation, oracle, oracle_return)
    injury(body)
    policies(args.policy_trainees)
    print(f"\n{args.trainees} trainees, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
