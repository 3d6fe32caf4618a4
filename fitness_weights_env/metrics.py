"""Metrics of predicted against reference matrices: the original design's evaluation table.

Row-wise similarities compare each predicted row with its reference row (a subject's CQ row over
the 5 qualities, or a quality's QX row over the 44 exercises). A constant row has no Pearson
correlation, and an all-zero row no cosine: such rows are left out of the means and counted, never
turned into a crash or a silent 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["MatrixMetrics", "matrix_metrics", "spearman"]


@dataclass(frozen=True)
class MatrixMetrics:
    """The evaluation table for one matrix kind (CQ or QX).

    Attributes:
        mse: Mean squared error over all cells.
        mae: Mean absolute error over all cells.
        rmse: Root of ``mse``.
        mean_cosine: Mean row-wise cosine similarity over rows where it is defined.
        mean_pearson: Mean row-wise Pearson correlation over rows where it is defined; NaN if none is.
        pearson_defined: Fraction of rows whose Pearson correlation is defined (neither row constant).
        mean_confidence: Mean confidence, NaN without confidences.
        confidence_error_spearman: Spearman correlation between each sample's confidence and its MSE;
            negative when higher confidence means lower error. NaN when undefined.
    """

    mse: float
    mae: float
    rmse: float
    mean_cosine: float
    mean_pearson: float
    pearson_defined: float
    mean_confidence: float
    confidence_error_spearman: float

    def to_dict(self) -> dict[str, float]:
        """The metrics as a plain dict (NaN stays NaN)."""
        return asdict(self)


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    dot = np.sum(a * b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), np.nan)


def _rowwise_pearson(a: np.ndarray, b: np.ndarray, tolerance: float = 1e-12) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    scale = np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1))
    defined = scale > tolerance
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, np.sum(a * b, axis=-1) / np.where(defined, scale, 1.0), np.nan)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return ranks


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D samples; NaN if fewer than 3 pairs or either is constant."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"samples must have the same length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3:
        return math.nan
    correlation = _rowwise_pearson(_ranks(x)[None], _ranks(y)[None])[0]
    return float(correlation)


def matrix_metrics(predicted: np.ndarray, reference: np.ndarray, confidence: np.ndarray | None = None) -> MatrixMetrics:
    """Compare predicted with reference matrices.

    Args:
        predicted: (K, rows, cols) or (rows, cols) predicted matrices.
        reference: Reference matrices of the same shape.
        confidence: Optional (K,) confidence of each predicted sample.

    Raises:
        ValueError: Shapes differ, or the inputs hold NaN or infinity.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if predicted.shape != reference.shape or predicted.ndim not in (2, 3):
        raise ValueError(f"predicted {predicted.shape} and reference {reference.shape} must be equal (K, rows, cols)")
    if not (np.all(np.isfinite(predicted)) and np.all(np.isfinite(reference))):
        raise ValueError("predicted and reference must be finite")
    if predicted.ndim == 2:
        predicted, reference = predicted[None], reference[None]
    error = predicted - reference
    mse = float(np.mean(error**2))
    pearson = _rowwise_pearson(predicted, reference)
    mean_confidence = correlation = math.nan
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64).ravel()
        if confidence.shape != (predicted.shape[0],):
            raise ValueError(
                f"confidence must have one value per sample ({predicted.shape[0]}), got {confidence.shape}"
            )
        mean_confidence = _nanmean(confidence)
        correlation = spearman(confidence, np.mean(error**2, axis=(1, 2)))
    return MatrixMetrics(
        mse=mse,
        mae=float(np.mean(np.abs(error))),
        rmse=math.sqrt(mse),
        mean_cosine=_nanmean(_rowwise_cosine(predicted, reference)),
        mean_pearson=_nanmean(pearson),
        pearson_defined=float(np.mean(np.isfinite(pearson))),
        mean_confidence=mean_confidence,
        confidence_error_spearman=correlation,
    )
