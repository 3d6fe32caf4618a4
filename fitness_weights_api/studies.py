"""The tuning studies of a service home (``HOME/studies/<name>/journal.log``), summarized for ``GET /studies``.

A study in a database (``tune --storage postgresql://...``) is not listed: the service knows only its own folder.
Optuna is imported at the first call (``pip install 'fitness-weights[tune]'``); without it the list is empty.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["MAX_STUDIES", "list_studies"]

MAX_STUDIES = 100
"""Most studies listed (the most recently changed)."""


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
            counts = {state.name.lower(): 0 for state in optuna.trial.TrialState}
            for trial in trials:
                counts[trial.state.name.lower()] += 1
            scored = [(float(t.value), t) for t in trials if t.state.name == "COMPLETE" and t.value is not None]
            value, best = max(scored, key=lambda pair: pair[0], default=(math.nan, None))
            studies.append(
                {
                    "study": summary.study_name,
                    "trials": len(trials),
                    "states": {name: count for name, count in counts.items() if count},
                    "best_trial": None if best is None else best.number,
                    "best_value": value if math.isfinite(value) else None,
                    "best_params": {} if best is None else best.params,
                }
            )
    return studies
