"""``MetricsWriter``: an SB3 logger output that hands every dump's scalars to a sink (a job store, a queue).

SB3's logger writes each ``dump`` to its output formats (stdout, CSV, TensorBoard). :class:`MetricsWriter` is one
more output format: it gives the sink the same keys TensorBoard gets (SB3's ``exclude`` filter for
``"tensorboard"``), as floats, with the dump's step, so a dashboard reading the sink shows exactly what TensorBoard
would. Videos, figures, images and hyperparameter records are left to the formats that draw them.

    from stable_baselines3.common.logger import configure

    logger = configure(folder, ["csv", "tensorboard"])
    logger.output_formats.append(MetricsWriter(lambda step, metrics: store.add(job_id, step, metrics)))
    model.set_logger(logger)
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np
from stable_baselines3.common.logger import KVWriter, filter_excluded_keys

__all__ = ["MetricsWriter", "scalar_metrics"]


def scalar_metrics(key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """The dump's numeric values that TensorBoard would record, as floats (non-finite ones kept)."""
    metrics = {}
    for key, value in filter_excluded_keys(key_values, key_excluded, "tensorboard").items():
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy and torch scalars
            value = value.item()
        if isinstance(value, (Real, np.number)) and not isinstance(value, bool):
            metrics[key] = float(value)
    return metrics


class MetricsWriter(KVWriter):
    """Hands each dump's scalars to ``sink(step, metrics)`` (module docstring).

    Args:
        sink: Called once per dump with the step (``model.num_timesteps``) and ``{key: float}``; not called when a
            dump has no scalars.
        prefixes: Only keys starting with one of these (``None``: every key).
    """

    def __init__(self, sink: Callable[[int, dict[str, float]], None], prefixes: tuple[str, ...] | None = None) -> None:
        self.sink = sink
        self.prefixes = prefixes

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        """Pass the dump's scalars to the sink."""
        metrics = scalar_metrics(key_values, key_excluded)
        if self.prefixes is not None:
            metrics = {key: value for key, value in metrics.items() if key.startswith(self.prefixes)}
        if metrics:
            self.sink(int(step), metrics)

    def close(self) -> None:
        """Nothing to close: the sink owns its resources."""
