"""Train PPO with the attention policy on FitnessWeights-v0, save the model, and evaluate it.

    python examples/train_ppo.py --timesteps 300000 --preset cpu --vec batched --device cpu --seed 0 \\
        --out runs/attn --tensorboard runs/tensorboard

The preset (``sb3_ext.presets``) sets the number of envs and PPO's rollout and update sizes;
``--n-envs`` overrides its number of envs, and ``--vec`` picks how the envs are stepped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import fitness_weights_env  # noqa: F401  (registers FitnessWeights-v0)
from sb3_ext import PPO, PRESETS, CosineSchedule, get_preset, make_vec_env
from sb3_ext.evaluate import evaluate_model

# Learning rate of the README's main run (see README, "Training and evaluation"); the preset gives the rest.
LEARNING_RATE = CosineSchedule(2e-3, 2e-4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=800_000, help="environment steps to train for")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="throughput preset (default cpu)")
    parser.add_argument("--n-envs", type=int, default=None, help="parallel environments (default: the preset's)")
    parser.add_argument("--vec", default="batched", choices=["batched", "dummy", "subproc"], help="vectorization")
    parser.add_argument("--policy", default="AttnCQQXPolicy", help="AttnCQQXPolicy or an SB3 policy (MlpPolicy)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu or cuda")
    parser.add_argument("--seed", type=int, default=0, help="seed of the environments, the policy and the evaluation")
    parser.add_argument("--out", type=Path, default=Path("runs/ppo"), help="folder for the model and the evaluation")
    parser.add_argument("--tensorboard", default=None, help="TensorBoard log folder (off when not given)")
    parser.add_argument("--eval-trainees", type=int, default=200, help="held-out trainees for the evaluation")
    args = parser.parse_args()

    preset = get_preset(args.preset)
    n_envs = preset.n_envs if args.n_envs is None else args.n_envs
    env = make_vec_env("FitnessWeights-v0", n_envs=n_envs, vectorization=args.vec, seed=args.seed)
    settings = {**preset.ppo_kwargs(), "learning_rate": LEARNING_RATE}
    model = PPO(args.policy, env, tensorboard_log=args.tensorboard, seed=args.seed, device=args.device, **settings)
    start = time.perf_counter()
    model.learn(args.timesteps, progress_bar=True)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "model.zip")
    rate = args.timesteps / seconds
    print(f"trained {args.timesteps} steps in {seconds:.0f} s ({rate:.0f} steps/s); saved {args.out / 'model.zip'}")

    report = evaluate_model(model, n_trainees=args.eval_trainees, seed=args.seed)
    report.extra.update(
        policy=args.policy,
        timesteps=args.timesteps,
        train_seconds=seconds,
        preset=args.preset,
        n_envs=n_envs,
        vectorization=args.vec,
        **{name: repr(value) for name, value in settings.items()},
    )
    print(report.to_markdown())
    report.write(args.out)


if __name__ == "__main__":
    main()
