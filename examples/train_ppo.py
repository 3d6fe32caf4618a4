"""Train PPO with the attention policy on FitnessWeights-v0, save the model, and evaluate it.

    python examples/train_ppo.py --timesteps 300000 --n-envs 8 --device cpu --seed 0 \\
        --out runs/attn --tensorboard runs/tensorboard
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stable_baselines3.common.env_util import make_vec_env

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from sb3_ext import PPO, CosineSchedule
from sb3_ext.evaluate import evaluate_model

# PPO settings of the README's main run (see README, "Training and evaluation").
HYPERPARAMETERS = {"n_steps": 256, "batch_size": 256, "n_epochs": 10, "learning_rate": CosineSchedule(2e-3, 2e-4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=420_000, help="environment steps to train for")
    parser.add_argument("--n-envs", type=int, default=8, help="parallel environments")
    parser.add_argument("--policy", default="AttnCQQXPolicy", help="AttnCQQXPolicy or an SB3 policy (MlpPolicy)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the environments, the policy and the evaluation")
    parser.add_argument("--out", type=Path, default=Path("runs/ppo"), help="folder for the model and the evaluation")
    parser.add_argument("--tensorboard", default=None, help="TensorBoard log folder (off when not given)")
    parser.add_argument("--eval-trainees", type=int, default=200, help="held-out trainees for the evaluation")
    args = parser.parse_args()

    env = make_vec_env("FitnessWeights-v0", n_envs=args.n_envs, seed=args.seed)
    model = PPO(
        args.policy, env, tensorboard_log=args.tensorboard, seed=args.seed, device=args.device, **HYPERPARAMETERS
    )
    start = time.perf_counter()
    model.learn(args.timesteps, progress_bar=True)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.zip")
    rate = args.timesteps / seconds
    print(f"trained {args.timesteps} steps in {seconds:.0f} s ({rate:.0f} steps/s); saved {args.out / 'model.zip'}")

    report = evaluate_model(model, n_trainees=args.eval_trainees, seed=args.seed)
    settings = {name: repr(value) for name, value in HYPERPARAMETERS.items()}
    report.extra.update(policy=args.policy, timesteps=args.timesteps, train_seconds=seconds, **settings)
    markdown = report.to_markdown()
    print(markdown)
    (args.out / "evaluation.json").write_text(json.dumps(report.to_dict(), indent=2))
    (args.out / "evaluation.md").write_text(markdown)


if __name__ == "__main__":
    main()
