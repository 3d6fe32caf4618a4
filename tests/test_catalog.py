import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fitness_weights_env.catalog import CATALOG, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"


def test_sizes_and_order():
    assert (CATALOG.n_subjects, CATALOG.n_qualities, CATALOG.n_exercises) == (93, 5, 44)
    assert [q.name_en for q in CATALOG.qualities] == ["endurance", "flexibility", "agility", "power", "strength"]
    assert [s.index for s in CATALOG.subjects] == list(range(93))
    assert CATALOG.subjects[0].name_en == "3000 m run" and CATALOG.subjects[0].unit == "s"
    assert CATALOG.subjects[0].higher_is_better is False and CATALOG.subjects[8].higher_is_better is True


def test_priors_are_row_stochastic_and_read_only():
    assert CATALOG.cq_prior.shape == (93, 5) and CATALOG.qx_prior.shape == (5, 44)
    np.testing.assert_allclose(CATALOG.cq_prior.sum(axis=1), 1.0)
    np.testing.assert_allclose(CATALOG.qx_prior.sum(axis=1), 1.0)
    loadings = np.array([e.loadings for e in CATALOG.exercises])
    np.testing.assert_allclose(CATALOG.qx_prior, loadings.T / loadings.T.sum(axis=1, keepdims=True))
    with pytest.raises(ValueError):
        CATALOG.cq_prior[0, 0] = 1.0


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("Pull-ups", 8),
        ("pull-ups", 8),
        ("  PULL-UPS ", 8),
        ("单杠引体向上", 8),
        ("3000米跑", 0),
        (8, 8),
        ("sit-and-reach", 43),
    ],
)
def test_subject_names_resolve(name, index):
    assert CATALOG.subject_index(name) == index


def test_quality_and_exercise_names_resolve():
    assert CATALOG.quality_index("Power") == 3 == CATALOG.quality_index("爆发力")
    assert CATALOG.exercise_index("back squat") == 13 == CATALOG.exercise_index("杠铃深蹲")


def test_unknown_name_lists_close_matches():
    with pytest.raises(
        UnknownNameError, match=r"^subject: unknown subject; did you mean .*'Pull-ups'.*\(got 'pullups'\)"
    ):
        CATALOG.subject_index("pullups")
    with pytest.raises(UnknownNameError, match=r"^exercise: unknown exercise \(got 'zzzz'\)$") as error:
        CATALOG.exercise_index("zzzz")
    assert (error.value.field, error.value.reason) == ("exercise", "unknown exercise")
    with pytest.raises(UnknownNameError, match="out of range"):
        CATALOG.subject_index(93)
    with pytest.raises(UnknownNameError, match="name or an index"):
        CATALOG.subject_index(1.5)


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the reference tables are not beside the checkout")
def test_shipped_data_file_matches_reference_tables():
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "build_catalog.py"), "--reference", str(REFERENCE), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
