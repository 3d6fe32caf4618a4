"""PPO training FPS of this checkout against an earlier commit, the README's settings, interleaved in one run.

The earlier commit is checked out once as a detached git worktree under ``.cache/speedup/`` (git's objects are
shared, nothing is downloaded). Each round trains a fresh model of each policy with each code, alternating, every
figure in a process of its own that imports only that code (``PYTHONPATH``), so that the shared machine's swings hit
both alike. The figure is env steps per second of ``learn`` over whole rollouts (collection and update), as
``bench_policy.py`` measures it. The table gives medians, the ratio of the medians, and the fraction of this CPU's
fp32 ceiling the current code reaches: the matrix-multiply FLOPs of one env step of PPO (its rollout forward, and
``n_epochs`` forwards and backwards of the update, counted by ``torch.utils.flop_counter``) times the FPS, over
the rate of a large fp32 matrix product measured in the same run::

    python benchmarks/bench_speedup.py --baseline 8941d78
    python benchmarks/bench_speedup.py --baseline 8941d78 --policies AttnCQQXPolicy --rounds 7
    python benchmarks/bench_speedup.py --baseline 8941d78 --compile   # and with the loss compiled

With ``--compile`` every arm first trains one rollout untimed (the compiled arm compiles then, and the table gives
how long that first update took), and the figures are the rollouts after it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in a child process with the code under test first on the path: one FPS figure, printed as JSON.
CHILD = """
import json, sys, time
import torch as th
from sb3_ext.config import TrainConfig
from sb3_ext.recipe import make_model
policy, rollouts, device, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
config = TrainConfig(1, policy=policy, preset="cpu", device=device)
model = make_model(config)
compile_s = None
if mode != "plain":  # --compile: one untimed rollout first, in every arm; "compiled" compiles the loss then
    if mode == "compiled":
        from sb3_ext.compiled import CompiledLoss
        model.compile, model.compiled_loss = True, CompiledLoss(model.compute_loss, model.device)
    model.learn(config.rollout_size())
    compile_s = getattr(getattr(model, "compiled_loss", None), "compile_seconds", None)
steps = rollouts * config.rollout_size()
start = time.perf_counter()
model.learn(steps, reset_num_timesteps=False)
fps = steps / (time.perf_counter() - start)
print(json.dumps({"fps": fps, "threads": th.get_num_threads(), "compile_s": compile_s}))
"""


def checkout(commit: str) -> Path:
    """A detached worktree of ``commit`` under ``.cache/speedup`` (made once)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", commit], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = ROOT / ".cache" / "speedup" / sha
    if not tree.exists():
        tree.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True, capture_output=True
        )
    return tree


def fps(tree: Path, policy: str, rollouts: int, device: str, mode: str = "plain") -> dict[str, float]:
    """One fresh model's training FPS with the code of ``tree`` (``mode``: plain, warm, compiled), and compile_s."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, policy, str(rollouts), device, mode],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def flops_per_step(policy: str) -> float:
    """Matrix-multiply FLOPs of one env step of PPO at the cpu preset: its rollout forward plus its update's share."""
    import torch as th
    from torch.utils.flop_counter import FlopCounterMode

    from sb3_ext.config import TrainConfig
    from sb3_ext.recipe import make_model

    config = TrainConfig(1, policy=policy, preset="cpu", device="cpu")
    model = make_model(config)
    obs = th.as_tensor(model.get_env().reset(), dtype=th.float32)
    actions = th.zeros(len(obs), dtype=th.int64)
    with FlopCounterMode(display=False) as rollout, th.no_grad():
        model.policy(obs)
    with FlopCounterMode(display=False) as update:
        if model.has_aux_heads:  # the update's forward, as PPO.compute_loss runs it
            values, log_prob, entropy, aux = model.policy.evaluate_actions_with_aux(obs, actions)  # type: ignore[operator]
            extra = sum(part.float().sum() for part in aux)
        else:
            values, log_prob, entropy = model.policy.evaluate_actions(obs, actions)
            extra = 0.0
        (values.sum() + log_prob.sum() + entropy.sum() + extra).backward()
    per_sample = (rollout.get_total_flops() + model.n_epochs * update.get_total_flops()) / len(obs)
    model.get_env().close()
    return float(per_sample)


def fp32_rate(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a square fp32 matrix product on this CPU with torch's threads (best of ``repeats``)."""
    import torch as th

    a, b = th.randn(size, size), th.randn(size, size)
    a @ b  # warm-up
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--policies", nargs="+", default=["AttnCQQXPolicy", "MlpPolicy"])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--rollouts", type=int, default=2, help="rollouts (collect + update) per figure")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="add this checkout with PPO(compile=True); every arm then trains one untimed rollout first",
    )
    args = parser.parse_args()

    baseline = checkout(args.baseline)
    codes: dict[str, tuple[Path, str]] = {"baseline": (baseline, "plain"), "current": (ROOT, "plain")}
    if args.compile:
        codes = {name: (tree, "warm") for name, (tree, _) in codes.items()}
        codes["compiled"] = (ROOT, "compiled")
    rates: dict[tuple[str, str], list[float]] = {(p, c): [] for p in args.policies for c in codes}
    compile_s: dict[str, list[float]] = {p: [] for p in args.policies}
    for round_index in range(args.rounds):
        order = list(codes.items()) if round_index % 2 == 0 else list(codes.items())[::-1]
        for policy in args.policies:
            for name, (tree, mode) in order:
                result = fps(tree, policy, args.rollouts, args.device, mode)
                rates[(policy, name)].append(result["fps"])
                if result.get("compile_s") is not None:
                    compile_s[policy].append(result["compile_s"])
        print(f"round {round_index + 1} of {args.rounds} done", file=sys.stderr, flush=True)

    ceiling = fp32_rate()
    print(
        f"Baseline {baseline.name}, current {ROOT.name}; {args.rounds} rounds of {args.rollouts} rollouts, cpu preset"
    )
    print(f"fp32 matrix product on this CPU: {ceiling / 1e9:,.0f} GFLOP/s\n")
    print(
        "| policy | baseline FPS (median) | current FPS (median) | current / baseline | MFLOP per env step | "
        "fraction of the fp32 ceiling |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for policy in args.policies:
        old, new = (statistics.median(rates[(policy, name)]) for name in ("baseline", "current"))
        flops = flops_per_step(policy)
        print(
            f"| {policy} | {old:,.0f} | {new:,.0f} | {new / old:.2f}x | {flops / 1e6:.2f} | "
            f"{new * flops / ceiling:.1%} |"
        )
    if args.compile:
        print("\n| policy | compiled FPS (median) | compiled / current | compiled / baseline | fraction of the "
              "fp32 ceiling | first update, compiling, s (each round) |\n|---|---:|---:|---:|---:|---|")  # fmt: skip
        for policy in args.policies:
            old, new, compiled = (statistics.median(rates[(policy, name)]) for name in codes)
            seconds = ", ".join(f"{s:.1f}" for s in compile_s[policy])
            print(
                f"| {policy} | {compiled:,.0f} | {compiled / new:.2f}x | {compiled / old:.2f}x | "
                f"{compiled * flops_per_step(policy) / ceiling:.1%} | {seconds} |"
            )


if __name__ == "__main__":
    main()
