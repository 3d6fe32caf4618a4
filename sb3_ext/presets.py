"""Throughput presets: named PPO rollout and update sizes for CPU and GPU.

A preset fixes how many trainees step together (``n_envs``), how long a rollout is per env
(``n_steps``) and how the update walks the rollout (``batch_size``, ``n_epochs``). Other PPO settings
(learning rate, clipping, coefficients) are left to the caller.

========================  ======  =======  ==========  ========  ============  ================
preset                    n_envs  n_steps  batch_size  n_epochs  rollout size  gradient steps
========================  ======  =======  ==========  ========  ============  ================
``"sb3"`` (SB3 defaults)       1     2048          64        10          2048   320 per rollout
``"cpu"``                     64       64         256         4          4096    64 per rollout
``"gpu"``                   1024       64        8192         4         65536    32 per rollout
========================  ======  =======  ==========  ========  ============  ================

Why these sizes:

* **Batched envs.** With the batched VecEnv (:func:`sb3_ext.make_vec_env`), stepping 64 trainees
  costs little more than stepping one, so the env side is cheap at any ``n_envs``; SB3's defaults
  spend most of their time in ``DummyVecEnv`` and in 320 small gradient steps per 2048 samples.
* **One episode per env per rollout.** ``n_steps=64`` is the episode length, so every rollout ends
  every episode once and the auxiliary targets (the episode-final matrices) are all final.
* **Fewer, larger gradient steps.** 4 epochs over minibatches of 256 (CPU) or 8192 (GPU) trade
  gradient steps per sample for samples per second; on the CPU the learner, not the env, is the
  bottleneck. ``benchmarks/bench_rollout.py`` measures the throughput and the learning at equal
  env steps, preset against SB3 defaults (figures in ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fitness_weights_env.errors import FieldError

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """Rollout and update sizes of PPO.

    Args:
        n_envs: Environments stepped together.
        n_steps: Steps per environment in one rollout.
        batch_size: Minibatch size of the update.
        n_epochs: Passes over the rollout per update.
    """

    n_envs: int
    n_steps: int
    batch_size: int
    n_epochs: int

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FieldError(name, "must be a positive integer", value)
        if (self.n_envs * self.n_steps) % self.batch_size:
            rollout = self.n_envs * self.n_steps
            raise FieldError(
                "batch_size", f"must divide the rollout size n_envs * n_steps ({rollout})", self.batch_size
            )

    @property
    def rollout_size(self) -> int:
        """Env steps per rollout, ``n_envs * n_steps``."""
        return self.n_envs * self.n_steps

    def ppo_kwargs(self) -> dict[str, Any]:
        """The PPO constructor arguments of the preset (``n_steps``, ``batch_size``, ``n_epochs``)."""
        return {"n_steps": self.n_steps, "batch_size": self.batch_size, "n_epochs": self.n_epochs}


PRESETS: dict[str, Preset] = {
    "sb3": Preset(n_envs=1, n_steps=2048, batch_size=64, n_epochs=10),
    "cpu": Preset(n_envs=64, n_steps=64, batch_size=256, n_epochs=4),
    "gpu": Preset(n_envs=1024, n_steps=64, batch_size=8192, n_epochs=4),
}
"""The named presets (see the module docstring)."""


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``"sb3"``, ``"cpu"`` or ``"gpu"``).

    Raises:
        ValueError: An unknown name; the message lists the known ones.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise FieldError("preset", f"unknown preset; choose one of {sorted(PRESETS)}", name) from None
