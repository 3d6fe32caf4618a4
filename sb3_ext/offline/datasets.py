"""Coaching logs as Minari datasets: the behaviors of D4RL's levels, written and read locally.

:func:`make_dataset` runs a behavior on FitnessWeights trainees and writes a local Minari dataset (HDF5) with
``minari.create_dataset_from_buffers`` (Minari's ``DataCollector`` needs jax); :func:`load_dataset` reads it back,
checked. Nothing touches the network: datasets live under ``MINARI_DATASETS_PATH``, by default Minari's own
``~/.minari/datasets``, and are generated, never committed::

    from sb3_ext.offline import load_dataset, make_dataset

    make_dataset("FitnessWeights-v0", "expert", n_episodes=1000, seed=0)   # id "fitness-weights/v0/expert-v0"
    dataset = load_dataset("fitness-weights/v0/expert-v0")

The behaviors (:data:`BEHAVIORS`):

=================  ==============================================================================================
``random``         uniformly random actions
``expert``         the greedy one-step oracle on v0; the oracle that knows the hidden parameters on v1
``coach``          v1's coach (the catalog's plan, never personalized) with ``noise`` random actions (v1 only)
``medium``         a PPO policy stopped at about half the expert's normalized score, sampled
                   (:mod:`sb3_ext.offline.medium`)
``medium-replay``  every episode of that PPO run up to the stop, ``n_episodes`` of them evenly spaced in time
``medium-expert``  the union of medium and expert: ``n_episodes // 2`` of medium, the rest expert
=================  ==============================================================================================

Every episode is one trainee seeded apart from the training and held-out seeds (:func:`episode_seeds`), with the
trainee's own generators for every random choice. Each episode's final CQ and QX matrices are stored as its
episode metadata (``final_cq`` (93, 5), ``final_qx`` (5, 44), float32), the auxiliary heads' targets. The dataset's
``ref_min_score`` and ``ref_max_score`` are the evaluation's anchors on its held-out trainees
(:func:`sb3_ext.evaluate.anchor_returns`: random and greedy on v0, coach and oracle on v1), so
``minari.get_normalized_score(dataset, R)`` of a mean return over those trainees is the project's normalized score.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fitness_weights_env import ENV_IDS
from fitness_weights_env.errors import FieldError, check_int
from sb3_ext.offline.episodes import Episodes, UniformPolicy, coach_policy, expert_policy, rollout

__all__ = [
    "BEHAVIORS",
    "DATASET_NAMESPACE",
    "DatasetError",
    "check_dataset",
    "dataset_episodes",
    "dataset_made",
    "datasets_root",
    "default_dataset_id",
    "delete_dataset",
    "episode_seeds",
    "generate_episodes",
    "list_datasets",
    "load_dataset",
    "make_dataset",
    "write_dataset",
]

BEHAVIORS = ("random", "expert", "coach", "medium", "medium-replay", "medium-expert")
"""The behaviors a dataset can log (module docstring)."""
DATASET_NAMESPACE = "fitness-weights"
"""The Minari namespace of the project's default dataset ids."""
DATASET_SEED = 1_000_000
"""Episode seeds of dataset ``seed`` start at ``DATASET_SEED * (seed + 1)``: apart from training and evaluation."""
MAX_EPISODES = 100_000
"""Most episodes one dataset may hold (6.4 million steps, about 5 GB of observations)."""
_ENV_TAGS = {"FitnessWeights-v0": "v0", "FitnessWeights-v1": "v1"}
_FORMAT_KEY = "fitness_weights"
_FORMAT_VERSION = 1


class DatasetError(FieldError):
    """A dataset that cannot be made or read; ``field`` names what is wrong."""


def datasets_root() -> Path:
    """Where local Minari datasets live: ``MINARI_DATASETS_PATH``, else ``~/.minari/datasets`` (Minari's default).

    A relative ``MINARI_DATASETS_PATH`` is made absolute (against the current directory) in the environment:
    Minari's writer joins a relative root with itself and fails to find the file it has just written.
    """
    from minari.storage import get_dataset_path

    root = os.environ.get("MINARI_DATASETS_PATH")
    if root and not os.path.isabs(root):
        os.environ["MINARI_DATASETS_PATH"] = os.path.abspath(root)
    return Path(get_dataset_path())


def default_dataset_id(env_id: str, behavior: str, seed: int = 0) -> str:
    """``fitness-weights/v0/expert-v0`` for seed 0, ``fitness-weights/v0/expert-seed3-v0`` for seed 3."""
    name = behavior if seed == 0 else f"{behavior}-seed{seed}"
    return f"{DATASET_NAMESPACE}/{_ENV_TAGS[env_id]}/{name}-v0"


def episode_seeds(n_episodes: int, seed: int, first: int = 0) -> np.ndarray:
    """The episode seeds of dataset ``seed``: ``DATASET_SEED * (seed + 1) + first + k`` for k < ``n_episodes``."""
    return DATASET_SEED * (seed + 1) + first + np.arange(n_episodes, dtype=np.int64)


def _check_int(field: str, value: Any, low: int, high: int) -> None:
    try:
        check_int(field, value, low, high)
    except FieldError as err:
        raise DatasetError(err.field, err.reason, value) from None


def _check(env_id: str, behavior: str, n_episodes: int, seed: int) -> None:
    if env_id not in _ENV_TAGS:
        raise DatasetError("env_id", f"must be one of {list(ENV_IDS)}", env_id)
    if behavior not in BEHAVIORS:
        raise DatasetError("behavior", f"must be one of {list(BEHAVIORS)}", behavior)
    if behavior == "coach" and env_id != "FitnessWeights-v1":
        raise DatasetError("behavior", "'coach' (the catalog's plan) exists on FitnessWeights-v1 only", behavior)
    _check_int("n_episodes", n_episodes, 1, MAX_EPISODES)
    _check_int("seed", seed, 0, 999)
    if behavior == "medium-expert" and n_episodes < 2:
        raise DatasetError("n_episodes", "medium-expert needs at least 2 episodes (one of each)", n_episodes)


def generate_episodes(
    env_id: str,
    behavior: str,
    n_episodes: int,
    seed: int = 0,
    *,
    noise: float = 0.25,
    anchors: tuple[float, float],
    medium_score: float = 0.5,
    medium_timesteps: int = 2_000_000,
    medium_kwargs: dict[str, Any] | None = None,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> tuple[Episodes, dict[str, Any]]:
    """The episodes of a behavior, and what the dataset's metadata says of how they were made (module docstring).

    Args:
        env_id: The env.
        behavior: One of :data:`BEHAVIORS`.
        n_episodes: Episodes to log.
        seed: The dataset's seed (0 to 999): its episode seeds and, for the medium levels, the PPO run's seed.
        noise: ``coach``'s probability of a random action.
        anchors: The mean returns that score 0 and 1 on the evaluation's trainees (the medium run's rollout
            scores).
        medium_score: The validation score at which the medium PPO run stops
            (:func:`~sb3_ext.offline.medium.train_medium`).
        medium_timesteps: The medium run's step budget.
        medium_kwargs: Other keywords of the medium run: ``validation_trainees``, and
            :class:`~sb3_ext.config.TrainConfig` fields.
        batch_size: Trainees stepped together.
        progress: Called with the number of episodes each finished batch adds.
    """
    _check(env_id, behavior, n_episodes, seed)
    seeds = episode_seeds(n_episodes, seed)
    made: dict[str, Any] = {"behavior": behavior, "seed": seed}
    run = dict(batch_size=batch_size, progress=progress)
    if behavior == "random":
        return rollout(UniformPolicy, env_id, seeds, **run), made  # type: ignore[arg-type]
    if behavior == "expert":
        return rollout(lambda _: expert_policy(env_id), env_id, seeds, **run), made  # type: ignore[arg-type]
    if behavior == "coach":
        made["noise"] = noise
        coach = rollout(lambda batch: coach_policy(env_id, noise, batch), env_id, seeds, **run)  # type: ignore[arg-type]
        return coach, made
    from sb3_ext.actions import PolicyActions
    from sb3_ext.offline.medium import train_medium

    medium = train_medium(
        env_id,
        seed,
        low=anchors[0],
        high=anchors[1],
        target_score=medium_score,
        max_timesteps=medium_timesteps,
        **(medium_kwargs or {}),
    )
    made.update(
        medium_score=medium.score,
        medium_target=medium_score,
        medium_reached=medium.reached,
        medium_timesteps=medium.timesteps,
    )
    if behavior == "medium-replay":
        replay = medium.replay
        index = np.unique(np.linspace(0, len(replay) - 1, min(n_episodes, len(replay))).round().astype(np.int64))
        made["replay_episodes"] = len(replay)
        return replay.take(index), made
    n_medium = n_episodes if behavior == "medium" else n_episodes // 2
    policy = medium.model.policy
    episodes = rollout(
        lambda batch: PolicyActions(policy, [int(s) for s in batch]),
        env_id,
        seeds[:n_medium],
        **run,  # type: ignore[arg-type]
    )
    if behavior == "medium-expert":
        expert = rollout(lambda _: expert_policy(env_id), env_id, seeds[n_medium:], **run)  # type: ignore[arg-type]
        episodes = Episodes.concatenate([episodes, expert])
        made["medium_episodes"] = n_medium
    return episodes, made


def make_dataset(
    env_id: str,
    behavior: str,
    n_episodes: int,
    seed: int = 0,
    dataset_id: str | None = None,
    *,
    noise: float = 0.25,
    reference_trainees: int = 200,
    medium_score: float = 0.5,
    medium_timesteps: int = 2_000_000,
    medium_kwargs: dict[str, Any] | None = None,
    batch_size: int = 64,
    overwrite: bool = False,
    progress_bar: bool = False,
) -> Any:
    """Log ``n_episodes`` of ``behavior`` on ``env_id`` and write them as a local Minari dataset; return it.

    Args:
        env_id: ``"FitnessWeights-v0"`` or ``"FitnessWeights-v1"`` (its default settings).
        behavior: One of :data:`BEHAVIORS` (module docstring).
        n_episodes: Episodes to log (at most :data:`MAX_EPISODES`).
        seed: The dataset's seed, 0 to 999.
        dataset_id: The Minari id; by default :func:`default_dataset_id`.
        noise: ``coach``'s probability of a random action.
        reference_trainees: Held-out trainees of the reference scores (the evaluation's 200 by default).
        medium_score: The validation score at which the medium PPO run stops
            (:func:`~sb3_ext.offline.medium.train_medium`).
        medium_timesteps: The medium run's step budget.
        medium_kwargs: Other keywords of the medium run: ``validation_trainees``, and
            :class:`~sb3_ext.config.TrainConfig` fields (``policy``...).
        batch_size: Trainees stepped together.
        overwrite: Replace a dataset of the same id (once the new one is made); else an existing id is refused.
        progress_bar: Show a progress bar of the episodes logged.

    Returns:
        The ``minari.MinariDataset``.

    Raises:
        DatasetError: A bad argument (the field is named), or the id exists and ``overwrite`` is false.
    """
    from sb3_ext.evaluate import anchor_returns

    _check(env_id, behavior, n_episodes, seed)
    _check_int("reference_trainees", reference_trainees, 2, 10_000)
    dataset_id = dataset_id or default_dataset_id(env_id, behavior, seed)
    _check_id(dataset_id)
    if not overwrite and _exists(dataset_id):
        raise DatasetError("dataset_id", "exists already (pass overwrite=True to replace it)", dataset_id)
    anchors = anchor_returns(env_id, reference_trainees)
    bar = _progress_bar(n_episodes, progress_bar)
    try:
        episodes, made = generate_episodes(
            env_id,
            behavior,
            n_episodes,
            seed,
            noise=noise,
            anchors=anchors,
            medium_score=medium_score,
            medium_timesteps=medium_timesteps,
            medium_kwargs=medium_kwargs,
            batch_size=batch_size,
            progress=None if bar is None else bar.update,
        )
    finally:
        if bar is not None:
            bar.close()
    made["reference_trainees"] = reference_trainees
    return write_dataset(dataset_id, env_id, episodes, anchors, made, overwrite=overwrite)


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.rich import tqdm

    return tqdm(total=total, unit="episode")


def _check_id(dataset_id: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id

    if not isinstance(dataset_id, str) or len(dataset_id) > 200:
        raise DatasetError("dataset_id", "must be a string of at most 200 characters", dataset_id)
    try:
        parse_dataset_id(dataset_id)
    except (ValueError, AssertionError) as err:
        raise DatasetError("dataset_id", f"is not a Minari id ('namespace/name-v0'): {err}", dataset_id) from None
    if any(part in ("", ".", "..") for part in dataset_id.split("/")):
        raise DatasetError("dataset_id", "has an empty, '.' or '..' part", dataset_id)


def _exists(dataset_id: str) -> bool:
    return (datasets_root() / dataset_id).exists()


def write_dataset(
    dataset_id: str,
    env_id: str,
    episodes: Episodes,
    anchors: tuple[float, float],
    made: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Any:
    """Write ``episodes`` as the local Minari dataset ``dataset_id``; nothing is left half-written if it fails.

    Args:
        dataset_id: The Minari id.
        env_id: The env the episodes ran in.
        episodes: The episodes.
        anchors: The reference scores ``(ref_min_score, ref_max_score)``.
        made: How they were made (stored in the dataset's metadata, JSON).
        overwrite: Replace a dataset of the same id.
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    _check_id(dataset_id)
    path = datasets_root() / dataset_id
    if path.exists():
        if not overwrite:
            raise DatasetError("dataset_id", "exists already (pass overwrite=True to replace it)", dataset_id)
        shutil.rmtree(path)
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=int(episodes.seeds[i]) if episodes.seeds[i] >= 0 else None,
            observations=episodes.observations[i],
            actions=episodes.actions[i],
            rewards=episodes.rewards[i],
            terminations=episodes.terminations[i],
            truncations=episodes.truncations[i],
        )
        for i in range(len(episodes))
    ]
    try:
        with warnings.catch_warnings():  # Minari asks for a code link, an e-mail and an eval env: none to give
            warnings.filterwarnings("ignore", r"`(code_permalink|author_email|eval_env)` is set to None", UserWarning)
            dataset = minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=env_id,
                algorithm_name=str(made.get("behavior", "")),
                author={"FitnessWeights"},
                ref_min_score=float(anchors[0]),
                ref_max_score=float(anchors[1]),
                description=f"{made.get('behavior')} episodes on {env_id} (sb3_ext.offline.make_dataset)",
                data_format="hdf5",
            )
        dataset.storage.update_metadata({_FORMAT_KEY: json.dumps({"format_version": _FORMAT_VERSION, **made})})
        dataset.storage.update_episode_metadata(
            [{"final_cq": episodes.cq[i], "final_qx": episodes.qx[i]} for i in range(len(episodes))],
            range(len(episodes)),
        )
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return dataset


def list_datasets() -> dict[str, dict[str, Any]]:
    """The local Minari datasets of FitnessWeights envs: id -> a summary (env, behavior, episodes, steps, scores)."""
    import minari

    datasets_root()  # an absolute root for Minari
    with warnings.catch_warnings():  # Minari warns of folders that hold no dataset; they are skipped
        warnings.simplefilter("ignore")
        local = minari.list_local_datasets()
    summaries = {}
    for dataset_id, metadata in local.items():
        env_id = _env_id(metadata)
        if env_id is None:
            continue
        made = _made(metadata)
        summaries[dataset_id] = {
            "env_id": env_id,
            "behavior": made.get("behavior", metadata.get("algorithm_name")),
            "seed": made.get("seed"),
            "total_episodes": metadata.get("total_episodes"),
            "total_steps": metadata.get("total_steps"),
            "ref_min_score": metadata.get("ref_min_score"),
            "ref_max_score": metadata.get("ref_max_score"),
            "made": made,
        }
    return summaries


def _env_id(metadata: dict[str, Any]) -> str | None:
    spec = metadata.get("env_spec")
    try:
        env_id = json.loads(spec).get("id") if isinstance(spec, str) else None
    except (ValueError, AttributeError):
        return None
    return env_id if env_id in _ENV_TAGS else None


def _made(metadata: dict[str, Any]) -> dict[str, Any]:
    try:
        made = json.loads(metadata.get(_FORMAT_KEY, "{}"))
    except (TypeError, ValueError):
        return {}
    return made if isinstance(made, dict) else {}


def load_dataset(dataset_id: str) -> Any:
    """Read the local Minari dataset ``dataset_id``, checked against its env.

    Raises:
        DatasetError: An unknown id (the known ones are listed), a dataset of another env than a FitnessWeights
            one, spaces that are not its env's, or a damaged or truncated file.
    """
    import minari
    from minari.storage import get_dataset_path

    _check_id(dataset_id)
    datasets_root()  # an absolute root for Minari
    if not (Path(get_dataset_path(dataset_id)) / "data").is_dir():
        known = sorted(list_datasets())
        listed = ", ".join(known) if known else "none; make one with make_dataset or `fitness-weights dataset make`"
        raise DatasetError("dataset_id", f"no local dataset has this id (the known ones: {listed})", dataset_id)
    with _reading(dataset_id):
        dataset = minari.load_dataset(dataset_id)
        check_dataset(dataset)
    return dataset


@contextlib.contextmanager
def _reading(dataset_id: str) -> Iterator[None]:
    """Turn the errors of reading a damaged dataset into a :class:`DatasetError` of the field ``dataset``."""
    try:
        yield
    except DatasetError:
        raise
    except (OSError, ValueError, KeyError, AssertionError, TypeError, EOFError) as err:
        raise DatasetError(
            "dataset", f"cannot be read: its files are damaged or truncated ({type(err).__name__})", dataset_id
        ) from None


def check_dataset(dataset: Any, env_id: str | None = None) -> str:
    """The env id of a FitnessWeights Minari dataset, after checking its spaces (and its env, if given).

    Raises:
        DatasetError: Not a dataset of a FitnessWeights env, another env than ``env_id``, or spaces that are not
            the env's (``observation_space``, ``action_space``).
    """
    from fitness_weights_env.baselines import VECTOR_ENVS

    spec = dataset.spec.env_spec
    dataset_env = getattr(spec, "id", None)
    if dataset_env not in _ENV_TAGS:
        raise DatasetError("env_id", f"the dataset is not of a FitnessWeights env ({list(ENV_IDS)})", dataset_env)
    if env_id is not None and dataset_env != env_id:
        raise DatasetError("env_id", f"the dataset was logged on {dataset_env}, not {env_id}", env_id)
    env = VECTOR_ENVS[dataset_env](1)
    for name, expected in (
        ("observation_space", env.single_observation_space),
        ("action_space", env.single_action_space),
    ):
        if getattr(dataset, name) != expected:
            raise DatasetError(name, f"the dataset's {getattr(dataset, name)} is not {dataset_env}'s {expected}")
    return dataset_env


def dataset_episodes(dataset: Any) -> Episodes:
    """A Minari dataset's episodes as arrays, with their final matrices (all episodes must have one length).

    Raises:
        DatasetError: Episodes of different lengths, or an episode without its final matrices.
    """
    check_dataset(dataset)
    indices = dataset.episode_indices
    with _reading(dataset.spec.dataset_id):
        parts = list(dataset.iterate_episodes(indices))
        metadata = list(dataset.storage.get_episode_metadata(indices))
    if not parts:
        raise DatasetError("dataset", "holds no episodes")
    lengths = {len(part.actions) for part in parts}
    if len(lengths) != 1:
        raise DatasetError("dataset", f"holds episodes of different lengths ({sorted(lengths)[:4]})")
    try:
        cq = np.stack([np.asarray(m["final_cq"], dtype=np.float32) for m in metadata])
        qx = np.stack([np.asarray(m["final_qx"], dtype=np.float32) for m in metadata])
    except KeyError as err:
        raise DatasetError("final_cq", f"an episode has no {err.args[0]!r} (not made by make_dataset)") from None
    seeds = np.array([-1 if m.get("seed") is None else int(m["seed"]) for m in metadata], dtype=np.int64)
    return Episodes(
        observations=np.stack([part.observations for part in parts]).astype(np.float32, copy=False),
        actions=np.stack([part.actions for part in parts]).astype(np.int64, copy=False),
        rewards=np.stack([part.rewards for part in parts]).astype(np.float64, copy=False),
        terminations=np.stack([part.terminations for part in parts]).astype(bool, copy=False),
        truncations=np.stack([part.truncations for part in parts]).astype(bool, copy=False),
        cq=cq,
        qx=qx,
        seeds=seeds,
    )


def dataset_made(dataset: Any) -> dict[str, Any]:
    """How a dataset was made (its ``fitness_weights`` metadata): behavior, seed, and the behavior's settings."""
    return _made(dataset.storage.metadata)


def delete_dataset(dataset_id: str) -> None:
    """Delete the local dataset ``dataset_id`` (an unknown id is refused, with the known ones listed)."""
    _check_id(dataset_id)
    path = datasets_root() / dataset_id
    if not (path / "data").is_dir():
        raise DatasetError("dataset_id", f"no local dataset has this id (the known ones: {sorted(list_datasets())})")
    shutil.rmtree(path)
