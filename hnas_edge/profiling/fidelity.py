"""How well LUT sums predict whole networks: error bands, rank correlation, calibration fit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hnas_edge.profiling.lut import Calibration


def rank(values: Sequence[float]) -> np.ndarray:
    """Ranks starting at 1, ties sharing their average rank."""
    arr = np.asarray(values, dtype=float)
    order = np.argsort(arr, kind="mergesort")
    ranks = np.empty(len(arr))
    ranks[order] = np.arange(1, len(arr) + 1)
    for value in np.unique(arr):
        tied = arr == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson correlation of the ranks)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("spearman needs two sequences of equal length >= 2")
    rx, ry = rank(x), rank(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass(frozen=True)
class Fidelity:
    n: int
    within_5: float
    within_10: float
    spearman: float
    mean_abs_rel_error: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "within_5pct": self.within_5,
            "within_10pct": self.within_10,
            "spearman": self.spearman,
            "mean_abs_rel_error": self.mean_abs_rel_error,
        }


def fidelity(predicted: Sequence[float], measured: Sequence[float]) -> Fidelity:
    """Share of predictions within ±5% and ±10% of the measurement, and rank agreement."""
    pred = np.asarray(predicted, dtype=float)
    meas = np.asarray(measured, dtype=float)
    rel = np.abs(pred - meas) / meas
    return Fidelity(
        n=len(pred),
        within_5=float((rel <= 0.05).mean()),
        within_10=float((rel <= 0.10).mean()),
        spearman=spearman(pred, meas),
        mean_abs_rel_error=float(rel.mean()),
    )


def fit_calibration(
    sums: Sequence[float], n_parts: Sequence[int], measured: Sequence[float]
) -> Calibration:
    """Least-squares fit of ``measured ≈ a·sum + c·n_parts + b`` on relative error.

    Rows are weighted by 1/measured so that small and large networks count alike (the targets are
    relative error bands). Where all networks have the same number of parts, ``c`` is not
    identifiable and is left at 0 (``a·sum + b``).
    """
    s = np.asarray(sums, dtype=float)
    k = np.asarray(n_parts, dtype=float)
    m = np.asarray(measured, dtype=float)
    columns = [s, np.ones_like(s)]
    use_parts = np.ptp(k) > 0
    if use_parts:
        columns.insert(1, k)
    design = np.stack(columns, axis=1) / m[:, None]
    coef, *_ = np.linalg.lstsq(design, np.ones_like(m), rcond=None)
    if use_parts:
        a, c, b = coef
    else:
        (a, b), c = coef, 0.0
    return Calibration(a=float(a), b=float(b), c=float(c), fitted_on=len(m))
