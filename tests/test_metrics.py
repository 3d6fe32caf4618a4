import math

import numpy as np
import pytest
from scipy import stats

from fitness_weights_env.metrics import matrix_metrics, spearman


def test_identical_matrices():
    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.ones(5), size=(4, 93))
    m = matrix_metrics(reference, reference, confidence=np.linspace(0, 1, 4))
    assert m.mse == 0 and m.mae == 0 and m.rmse == 0
    assert m.mean_cosine == pytest.approx(1.0) and m.mean_pearson == pytest.approx(1.0)
    assert m.pearson_defined == 1.0 and m.mean_confidence == pytest.approx(0.5)
    assert math.isnan(m.confidence_error_spearman)  # every error is 0: a constant sample


def test_values_against_a_direct_computation():
    rng = np.random.default_rng(1)
    reference = rng.dirichlet(np.ones(5), size=(6, 93))
    predicted = rng.dirichlet(np.ones(5), size=(6, 93))
    m = matrix_metrics(predicted, reference)
    error = predicted - reference
    assert m.mse == pytest.approx(np.mean(error**2))
    assert m.mae == pytest.approx(np.mean(np.abs(error)))
    pearson = [stats.pearsonr(p, r)[0] for p, r in zip(predicted.reshape(-1, 5), reference.reshape(-1, 5), strict=True)]
    assert m.mean_pearson == pytest.approx(np.mean(pearson))
    cosine = np.sum(predicted * reference, -1) / np.linalg.norm(predicted, axis=-1) / np.linalg.norm(reference, axis=-1)
    assert m.mean_cosine == pytest.approx(cosine.mean())
    assert math.isnan(m.mean_confidence)


def test_constant_reference_rows_leave_pearson_undefined_without_crashing():
    reference = np.full((2, 93, 5), 0.2)
    reference[:, 0] = [0.6, 0.1, 0.1, 0.1, 0.1]
    predicted = np.full((2, 93, 5), 0.2)
    predicted[:, 0] = [0.5, 0.2, 0.1, 0.1, 0.1]
    m = matrix_metrics(predicted, reference)
    assert m.pearson_defined == pytest.approx(1 / 93)
    assert np.isfinite(m.mean_pearson)
    all_constant = matrix_metrics(np.full((2, 93, 5), 0.2), np.full((2, 93, 5), 0.2))
    assert math.isnan(all_constant.mean_pearson) and all_constant.pearson_defined == 0.0
    zero_row = matrix_metrics(np.zeros((1, 2, 5)), np.full((1, 2, 5), 0.2))
    assert math.isnan(zero_row.mean_cosine)


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, 40).astype(float)
    y = x + rng.normal(0, 2, 40)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(spearman([1.0, 2.0], [2.0, 1.0]))
    assert math.isnan(spearman(np.ones(5), np.arange(5.0)))


def test_confidence_that_ranks_errors_scores_negative():
    rng = np.random.default_rng(3)
    reference = rng.dirichlet(np.ones(5), size=(50, 93))
    noise = np.linspace(0.001, 0.1, 50)[:, None, None]
    predicted = reference + noise * rng.normal(size=reference.shape)
    m = matrix_metrics(predicted, reference, confidence=1 - np.linspace(0, 1, 50))
    assert m.confidence_error_spearman < -0.9


@pytest.mark.parametrize(
    ("predicted", "reference", "confidence", "message"),
    [
        (np.zeros((2, 3, 4)), np.zeros((2, 3, 5)), None, "must be equal"),
        (np.zeros(5), np.zeros(5), None, "must be equal"),
        (np.full((1, 2, 2), np.nan), np.zeros((1, 2, 2)), None, "finite"),
        (np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), np.zeros(3), "one value per sample"),
    ],
)
def test_bad_input_raises(predicted, reference, confidence, message):
    with pytest.raises(ValueError, match=message):
        matrix_metrics(predicted, reference, confidence)
