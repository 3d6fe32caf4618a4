"""The tuning studies of a service home (``HOME/studies/<name>/journal.log``), for ``GET /studies[/{study}]``.

A study in a database (``tune --storage postgresql://...``) is not listed: the service knows only its own folder.
Optuna is imported at the first call (``pip install 'fitness-weights[tune]'``); without it the list is empty.
A trial's curve is its reports to the pruner (the validation score against timesteps; a PBT member's score at
every interval); a trial that became a training job (``tune --register``) names the job, which the dashboard opens.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = [
    "JOBS_ATTR",
    "MAX_CURVE_POINTS",
    "MAX_STUDIES",
    "MAX_TRIALS",
    "UnknownStudyError",
    "list_studies",
    "study_detail",
]

MAX_STUDIES = 100
"""Most studies listed (the most recently changed)."""
MAX_TRIALS = 500
"""Most trials of a study's detail (the latest)."""
MAX_CURVE_POINTS = 200
"""Most points of a trial's curve (evenly thinned, the last one kept)."""
JOBS_ATTR = "jobs"
"""The study's user attribute ``{trial number: job id}`` of the trials trained as jobs (``tune --register``)."""


class UnknownStudyError(KeyError):
    """No study of that name in the service home."""

    def __str__(self) -> str:
        return "unknown study"


def list_studies(home: Path, limit: int = MAX_STUDIES) -> list[dict[str, Any]]:
    """Each study of ``home``: its name, trial counts by state, and its best trial (number, value, parameters)."""
    try:
        import optuna
    except ImportError:
        return []
    from fitness_weights_api.tuning_cli import STUDY_FILE, open_storage

    journals = sorted((home / "studies").glob(f"*/{STUDY_FILE}"), key=lambda path: path.stat().st_mtime, reverse=True)[
        :limit
    ]
    studies = []
    for journal in journals:
        storage = open_storage(None, journal)
        for summary in storage.get_all_studies():
            trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
            studies.append(_summary(summary.study_name, trials))
    return studies


def _summary(name: str, trials: list[Any]) -> dict[str, Any]:
    """A study's name, its trial counts by state and its best complete trial."""
    import optuna

    counts = {state.name.lower(): 0 for state in optuna.trial.TrialState}
    for trial in trials:
        counts[trial.state.name.lower()] += 1
    scored = [(float(t.value), t) for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    value, best = max(scored, key=lambda pair: pair[0], default=(math.nan, None))
    return {
        "study": name,
        "trials": len(trials),
        "states": {name: count for name, count in counts.items() if count},
        "best_trial": None if best is None else best.number,
        "best_value": value if math.isfinite(value) else None,
        "best_params": {} if best is None else best.params,
    }


def study_detail(home: Path, name: str, max_trials: int = MAX_TRIALS) -> dict[str, Any]:
    """The study ``name`` of ``home``: its summary (as :func:`list_studies`) and its latest trials.

    Each trial with its state, value, parameters, curve, the worker that ran it, its PBT member and the job it
    became, if any.

    Raises:
        UnknownStudyError: No such study in ``home`` (or Optuna is not installed).
    """
    try:
        import optuna
    except ImportError:
        raise UnknownStudyError(name) from None
    from fitness_weights_api.tuning_cli import STUDY_FILE, open_storage

    journal = home / "studies" / name / STUDY_FILE
    if not journal.is_file():
        raise UnknownStudyError(name)
    storage = open_storage(None, journal)
    if not any(summary.study_name == name for summary in storage.get_all_studies()):
        raise UnknownStudyError(name)
    study = optuna.load_study(study_name=name, storage=storage)
    jobs = study.user_attrs.get(JOBS_ATTR, {})
    trials = study.get_trials(deepcopy=False)
    detail = _summary(name, trials)
    detail["trial_details"] = [
        {
            "number": trial.number,
            "state": trial.state.name.lower(),
            "value": trial.value if trial.value is not None and math.isfinite(trial.value) else None,
            "params": trial.params,
            "curve": _thin(sorted(trial.intermediate_values.items())),
            "worker": trial.user_attrs.get("worker"),
            "pbt_member": trial.user_attrs.get("pbt_member"),
            "job_id": jobs.get(str(trial.number)),
        }
        for trial in trials[-max_trials:]
    ]
    return detail


def _thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """At most :data:`MAX_CURVE_POINTS` of ``points``, evenly spaced, the last one kept; no NaN."""
    points = [(step, value) for step, value in points if math.isfinite(value)]
    if len(points) <= MAX_CURVE_POINTS:
        return points
    keep = sorted({round(i * (len(points) - 1) / (MAX_CURVE_POINTS - 1)) for i in range(MAX_CURVE_POINTS)})
    return [points[i] for i in keep]
