"""How much of a v1 plan's value is in the order of its actions: why v1's observation carries the block's progress.

The plan for the population's average trainee (``PlanPolicy("average")``, no hidden information) is run on held-out
trainees and its actions recorded; then the same actions are replayed to the same trainees (same seeds: the same
hidden parameters and draws) in their order, in a random order, and drawn independently from each trainee's
action counts. A policy that sees no clock cannot act on the step it is at, so the last two are what a memoryless
policy can make of the same actions. Scores: 0 is the coach, 1 the oracle, as the evaluation's::

    python benchmarks/bench_v1_order.py            # about a minute on a 2-core CPU
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from fitness_weights_env import sample_profiles
from fitness_weights_env.baselines import run_episodes
from fitness_weights_env.training_baselines import CoachPolicy, OraclePolicy, PlanPolicy

ENV = "FitnessWeights-v1"


class Recorder:
    """Wraps a policy and keeps its actions, (steps, trainees)."""

    def __init__(self, policy: Callable) -> None:
        self.policy, self.actions = policy, []

    def __call__(self, observation: np.ndarray, env: object) -> np.ndarray:
        actions = np.asarray(self.policy(observation, env))
        self.actions.append(actions.copy())
        return actions


def replay(actions: np.ndarray) -> Callable:
    """A policy that plays ``actions`` (steps, trainees) step by step."""
    steps = iter(actions)
    return lambda observation, env: next(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainees", type=int, default=200)
    parser.add_argument("--seed", type=int, default=10_000, help="profiles and env seeds (trainee i: seed + i)")
    args = parser.parse_args()
    profiles = sample_profiles(args.trainees, seed=args.seed, edge_fraction=0)

    def returns(policy: Callable) -> np.ndarray:
        return run_episodes(policy, profiles, seed=args.seed, steps=64, env_id=ENV).returns

    coach, oracle = returns(CoachPolicy()), returns(OraclePolicy())
    recorder = Recorder(PlanPolicy("average"))
    planned = returns(recorder)
    actions = np.stack(recorder.actions)  # (64, trainees)
    rng = np.random.default_rng(args.seed)
    shuffled = np.stack([rng.permutation(column) for column in actions.T], axis=1)
    independent = np.stack([rng.choice(column, size=column.shape[0]) for column in actions.T], axis=1)
    rows = {
        "average trainee's plan (its actions, in order)": planned,
        "the same actions replayed in order": returns(replay(actions)),
        "the same actions, each trainee's in a random order": returns(replay(shuffled)),
        "drawn independently from each trainee's action counts": returns(replay(independent)),
    }
    margin = float(np.mean(oracle - coach))
    print(f"{args.trainees} held-out trainees (profiles and env seeds from {args.seed}); 0 = coach, 1 = oracle\n")
    print("| actions | mean return | normalized score |\n|---|---:|---:|")
    for name, values in (("coach", coach), ("oracle", oracle), *rows.items()):
        print(f"| {name} | {values.mean():.4f} | {np.mean(values - coach) / margin:.3f} |")


if __name__ == "__main__":
    main()
