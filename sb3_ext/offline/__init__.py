"""Offline RL on FitnessWeights: coaching logs as Minari datasets, and discrete IQL and behavior cloning.

Needs the ``offline`` extra (``pip install "fitness-weights[offline]"``: Minari, h5py and Pillow)::

    from sb3_ext.offline import IQL, make_dataset

    make_dataset("FitnessWeights-v0", "medium-replay", n_episodes=1000, seed=0)
    model = IQL("MlpPolicy", "fitness-weights/v0/medium-replay-v0", seed=0).learn(100_000, progress_bar=True)
    model.save("runs/iql.zip")

The names below load their module on first use, as :mod:`sb3_ext`'s do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sb3_ext.lazy import lazy_exports

if TYPE_CHECKING:
    from sb3_ext.offline.algorithm import OfflineAlgorithm
    from sb3_ext.offline.attention_policy import OfflineAttnPolicy
    from sb3_ext.offline.bc import BC
    from sb3_ext.offline.datasets import (
        BEHAVIORS,
        DatasetError,
        dataset_episodes,
        list_datasets,
        load_dataset,
        make_dataset,
    )
    from sb3_ext.offline.episodes import Episodes
    from sb3_ext.offline.iql import IQL
    from sb3_ext.offline.mlp_policy import OfflineMlpPolicy
    from sb3_ext.offline.policy import OfflinePolicy

_MODULES = {
    "BC": "sb3_ext.offline.bc",
    "BEHAVIORS": "sb3_ext.offline.datasets",
    "DatasetError": "sb3_ext.offline.datasets",
    "Episodes": "sb3_ext.offline.episodes",
    "IQL": "sb3_ext.offline.iql",
    "OfflineAlgorithm": "sb3_ext.offline.algorithm",
    "OfflineAttnPolicy": "sb3_ext.offline.attention_policy",
    "OfflineMlpPolicy": "sb3_ext.offline.mlp_policy",
    "OfflinePolicy": "sb3_ext.offline.policy",
    "dataset_episodes": "sb3_ext.offline.datasets",
    "list_datasets": "sb3_ext.offline.datasets",
    "load_dataset": "sb3_ext.offline.datasets",
    "make_dataset": "sb3_ext.offline.datasets",
}

__all__ = [
    "BC",
    "BEHAVIORS",
    "IQL",
    "DatasetError",
    "Episodes",
    "OfflineAlgorithm",
    "OfflineAttnPolicy",
    "OfflineMlpPolicy",
    "OfflinePolicy",
    "dataset_episodes",
    "list_datasets",
    "load_dataset",
    "make_dataset",
]


__getattr__, __dir__ = lazy_exports(__name__, _MODULES, globals())
