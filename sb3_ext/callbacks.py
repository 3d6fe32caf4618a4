"""Callbacks: the auxiliary-target filler used by :class:`sb3_ext.PPO`, multi-metric early stopping, live parameters.

:class:`~sb3_ext.live_params.LiveParams`, which changes parameters while training runs, lives in its own module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from fitness_weights_env.errors import FieldError
from sb3_ext.buffers import AuxRolloutBuffer
from sb3_ext.live_params import LiveParams

__all__ = ["AuxTargetCallback", "LiveParams", "MultiMetricEarlyStopping", "StopTrainingOnNoMetricImprovement"]


def _episode_matrices(info: dict[str, Any], env_index: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        return info["cq_matrix"], info["qx_matrix"]
    except KeyError:
        raise KeyError(
            f"env {env_index}'s info has no 'cq_matrix'/'qx_matrix': the auxiliary targets are read from the "
            "environment's info (FitnessWeights-v0 provides them)"
        ) from None


class AuxTargetCallback(BaseCallback):
    """Back-fills each episode's auxiliary targets in the rollout buffer (added by :class:`sb3_ext.PPO`).

    The target of every step of an episode is the pair of matrices the episode ended with. The
    callback sees each step's ``infos`` and ``rollout_buffer.pos`` (SB3 calls it after ``env.step``
    and before ``rollout_buffer.add``), so when an episode ends at position ``pos`` it fills the
    episode's steps from its first position in this rollout up to ``pos``. Episodes still running
    at the end of the rollout get the matrices of the rollout's last step: from the last infos, or, when
    those lack them (a batched VecEnv), from the VecEnv's ``current_matrices()``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._episode_start = np.zeros(0, dtype=np.int64)

    def _on_rollout_start(self) -> None:
        self._episode_start = np.zeros(self.model.n_envs, dtype=np.int64)

    def _buffer(self) -> AuxRolloutBuffer:
        buffer = getattr(self.model, "rollout_buffer", None)
        if not isinstance(buffer, AuxRolloutBuffer):
            raise TypeError(
                f"AuxTargetCallback fills an AuxRolloutBuffer; the model's buffer is a {type(buffer).__name__}"
            )
        return buffer

    def _on_step(self) -> bool:
        buffer = self._buffer()
        for done in np.flatnonzero(self.locals["dones"]):
            env = int(done)
            cq, qx = _episode_matrices(self.locals["infos"][env], env)
            buffer.fill_targets(env, int(self._episode_start[env]), buffer.pos + 1, cq, qx)
            self._episode_start[env] = buffer.pos + 1
        return True

    def _on_rollout_end(self) -> None:
        buffer = self._buffer()
        infos = self.locals["infos"]
        current: tuple[np.ndarray, np.ndarray] | None = None
        for env, start in enumerate(self._episode_start):
            if start < buffer.buffer_size:
                if "cq_matrix" in infos[env] and "qx_matrix" in infos[env]:  # single envs: matrices every step
                    cq, qx = infos[env]["cq_matrix"], infos[env]["qx_matrix"]
                else:  # a batched VecEnv (through any VecEnvWrapper): all current matrices in one call
                    if current is None:
                        current = self._current_matrices(env)
                    cq, qx = current[0][env], current[1][env]
                buffer.fill_targets(env, int(start), buffer.buffer_size, cq, qx)

    def _current_matrices(self, env_index: int) -> tuple[np.ndarray, np.ndarray]:
        current_matrices = getattr(self.training_env, "current_matrices", None)
        if current_matrices is None:
            raise KeyError(
                f"env {env_index}'s info has no 'cq_matrix'/'qx_matrix': the auxiliary targets are read from the "
                "environment's info (FitnessWeights-v0 provides them) or, at the end of a rollout, from the VecEnv's "
                "current_matrices() (sb3_ext.FitnessWeightsVecEnv provides it)"
            )
        return current_matrices()


class StopTrainingOnNoMetricImprovement(BaseCallback):
    """Stop training when no tracked metric has improved for ``patience`` evaluations.

    Use it as the ``callback_after_eval`` of an :class:`~stable_baselines3.common.callbacks.EvalCallback`
    (or use :class:`MultiMetricEarlyStopping`). The metrics, as in the original design: the
    evaluation's mean reward, and from the last training update (``model.train_metrics``) the CQ
    accuracy, the QX accuracy (higher is better) and the total loss (lower is better). A metric the
    model does not report (for example, aux accuracies of a policy without aux heads) is skipped.

    Args:
        patience: Evaluations without any improvement before training stops.
        min_delta: Smallest change that counts as an improvement.
        min_evals: Evaluations before counting starts.
        verbose: 1 prints why training stopped.
    """

    parent: EvalCallback
    HIGHER_IS_BETTER = {"mean_reward": True, "cq_accuracy": True, "qx_accuracy": True, "loss": False}

    def __init__(self, patience: int, min_delta: float = 0.0, min_evals: int = 0, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        if patience < 1:
            raise FieldError("patience", "must be at least 1", patience)
        self.patience = patience
        self.min_delta = min_delta
        self.min_evals = min_evals
        self.best: dict[str, float] = {}
        self.evals_without_improvement = 0

    def current_metrics(self) -> dict[str, float]:
        """The tracked metrics after the latest evaluation."""
        metrics = {"mean_reward": float(self.parent.last_mean_reward)}
        train_metrics = getattr(self.model, "train_metrics", {})
        for name in ("cq_accuracy", "qx_accuracy", "loss"):
            if name in train_metrics:
                metrics[name] = float(train_metrics[name])
        return metrics

    def _on_step(self) -> bool:
        assert self.parent is not None, (
            "StopTrainingOnNoMetricImprovement must be the callback_after_eval of an EvalCallback"
        )
        improved = []
        for name, value in self.current_metrics().items():
            best = self.best.get(name)
            sign = 1.0 if self.HIGHER_IS_BETTER[name] else -1.0
            if best is None or sign * (value - best) > self.min_delta:
                self.best[name] = value
                improved.append(name)
        if self.n_calls <= self.min_evals or improved:
            self.evals_without_improvement = 0
            return True
        self.evals_without_improvement += 1
        if self.evals_without_improvement >= self.patience:
            if self.verbose >= 1:
                print(f"Stopping training: no metric improved in the last {self.evals_without_improvement} evaluations")
            return False
        return True


class MultiMetricEarlyStopping(EvalCallback):
    """An :class:`~stable_baselines3.common.callbacks.EvalCallback` that stops on no multi-metric improvement.

    It evaluates, logs and saves the best model (by mean reward, to ``best_model_save_path``) exactly
    as ``EvalCallback`` does, and stops training when none of mean reward, CQ accuracy, QX accuracy
    and total loss has improved for ``patience`` evaluations.

    Args:
        eval_env: The environment to evaluate on.
        patience: Evaluations without improvement before stopping.
        min_delta: Smallest change that counts as an improvement.
        min_evals: Evaluations before counting starts.
        **kwargs: Passed to ``EvalCallback`` (``eval_freq``, ``n_eval_episodes``, ``best_model_save_path``,
            ``log_path``, ``deterministic``, ``verbose``, ...).
    """

    def __init__(
        self, eval_env: Any, patience: int = 5, min_delta: float = 0.0, min_evals: int = 0, **kwargs: Any
    ) -> None:
        self.stopper = StopTrainingOnNoMetricImprovement(
            patience, min_delta, min_evals, verbose=kwargs.get("verbose", 1)
        )
        super().__init__(eval_env, callback_after_eval=self.stopper, **kwargs)
