"""Serve a trained model from Python: register it, then optimize and predict one trainee's weights.

    python examples/weight_service.py runs/demo/model.zip --home runs/service

The same service answers ``fitness-weights optimize`` / ``predict`` and the HTTP API
(``fitness-weights --home runs/service serve``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fitness_weights_api.service import WeightService
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_env import CATALOG, TraineeProfile, typical_metrics, typical_subject_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a model saved by sb3_ext.PPO (AttnCQQXPolicy)")
    parser.add_argument("--home", type=Path, default=Path("runs/service"), help="the service folder")
    args = parser.parse_args()

    settings = ServiceSettings(home=args.home)
    registry = settings.open_registry()
    record = registry.register(args.model, training_config={"source": str(args.model)}, activate=True)
    print(f"registered {record.version} in {registry.root} and activated it")
    service = WeightService(registry, settings.open_jobs(registry))

    qualities = np.array([0.55, 0.50, 0.60, 0.65, 0.60])  # endurance, flexibility, agility, power, strength
    trainee = TraineeProfile(
        age=23,
        gender="male",
        fitness_level=0.6,
        qualities=qualities,
        subject_scores=typical_subject_scores(qualities),
        targets=["3000 m run", "单杠引体向上"],
        performance_metrics=typical_metrics(0.6),
    )
    optimized = service.optimize(trainee, steps=64)
    predicted = service.predict(trainee)
    print(f"model {optimized.model_version}; prediction confidence {predicted.result.confidence:.3f}")
    print("| target subject | achievement, optimized | achievement, predicted | strongest quality (optimized CQ) |")
    print("|---|---:|---:|---|")
    for index in trainee.targets:
        name = CATALOG.subjects[index].name_en
        best = CATALOG.qualities[int(np.argmax(optimized.result.cq[index]))].name_en
        print(
            f"| {name} | {optimized.result.target_scores[name]:.3f} | "
            f"{predicted.result.target_scores[name]:.3f} | {best} |"
        )


if __name__ == "__main__":
    main()
