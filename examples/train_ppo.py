"""Train PPO with the attention policy on FitnessWeights-v0 (or v1), save the model, and evaluate it.

    python examples/train_ppo.py --timesteps 300000 --preset cpu --vec batched --device cpu --seed 0 \\
        --out runs/attn --tensorboard runs/tensorboard
    python examples/train_ppo.py --env FitnessWeights-v1 --device cpu --out runs/v1

The model comes from the project's one training recipe (``sb3_ext.recipe.make_model``) with a
``sb3_ext.config.TrainConfig`` of the arguments: the preset (``sb3_ext.presets``) sets the number of envs and
PPO's rollout and update sizes, ``--n-envs`` overrides its number of envs, ``--vec`` picks how the envs are
stepped, and the learning rate anneals (cosine) from 2e-3 to a tenth of it. Besides the model and the evaluation,
``--out`` gets ``learning_curve.csv`` and, with matplotlib, ``learning_curve.png`` and ``weights.png``
(``fitness_weights_api.plots``; ``fitness-weights plot RUN`` redraws them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from fitness_weights_api.plots import CURVE_FILE, plot_learning_curve, plot_weights, write_curve
from fitness_weights_env import ENV_IDS
from sb3_ext.config import DEFAULT_LEARNING_RATE, POLICIES, VECTORIZATIONS, TrainConfig
from sb3_ext.evaluate import evaluate_model
from sb3_ext.presets import PRESETS
from sb3_ext.recipe import learning_rate, make_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="FitnessWeights-v0", choices=ENV_IDS, help="the env (default v0)")
    parser.add_argument("--timesteps", type=int, default=800_000, help="environment steps to train for")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="throughput preset (default cpu)")
    parser.add_argument("--n-envs", type=int, default=None, help="parallel environments (default: the preset's)")
    parser.add_argument("--vec", default="batched", choices=VECTORIZATIONS, help="vectorization")
    parser.add_argument("--policy", default="AttnCQQXPolicy", choices=POLICIES, help="the policy")
    parser.add_argument("--learning-rate", type=float, default=DEFAULT_LEARNING_RATE, help="initial learning rate")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the environments, the policy and the evaluation")
    parser.add_argument("--out", type=Path, default=Path("runs/ppo"), help="folder for the model and the evaluation")
    parser.add_argument("--tensorboard", default=None, help="TensorBoard log folder (off when not given)")
    parser.add_argument("--eval-trainees", type=int, default=200, help="held-out trainees for the evaluation")
    args = parser.parse_args()

    config = TrainConfig(
        timesteps=args.timesteps,
        env_id=args.env,
        policy=args.policy,
        preset=args.preset,
        n_envs=args.n_envs,
        vectorization=args.vec,
        seed=args.seed,
        learning_rate=args.learning_rate,
        device=args.device,
        eval_trainees=args.eval_trainees,
    )
    model = make_model(config, tensorboard_log=args.tensorboard)
    curve = CurveRecorder()
    start = time.perf_counter()
    model.learn(config.timesteps, progress_bar=True, callback=curve)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.zip")
    rate = config.timesteps / seconds
    print(f"trained {config.timesteps} steps in {seconds:.0f} s ({rate:.0f} steps/s); saved {args.out / 'model.zip'}")

    report = evaluate_model(model, n_trainees=config.eval_trainees, seed=config.seed, env_id=config.env_id)
    settings = {**config.ppo_arguments(), "learning_rate": learning_rate(config)}
    report.extra.update(
        policy=config.policy,
        timesteps=config.timesteps,
        train_seconds=seconds,
        preset=config.preset,
        n_envs=config.envs(),
        vectorization=config.vectorization,
        config=config.to_dict(),
        **{name: repr(value) for name, value in settings.items()},
    )
    print(report.to_markdown())
    report.write(args.out)
    write_curve(args.out / CURVE_FILE, curve.points)
    try:
        plot_learning_curve(curve.points, args.out / "learning_curve.png", f"{config.policy} on {config.env_id}")
        plot_weights(model, args.out / "weights.png", env_id=config.env_id)
        print(f"wrote {args.out / 'learning_curve.png'} and {args.out / 'weights.png'}")
    except ImportError:  # matplotlib is in the dev and plots extras
        print("matplotlib is not installed: no pictures (pip install 'fitness-weights[plots]')")


class CurveRecorder(BaseCallback):
    """Records ``(timesteps, mean episode return)`` after every rollout (SB3's ``ep_info_buffer``)."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.model.ep_info_buffer:
            self.points.append((self.num_timesteps, float(np.mean([info["r"] for info in self.model.ep_info_buffer]))))


if __name__ == "__main__":
    main()
