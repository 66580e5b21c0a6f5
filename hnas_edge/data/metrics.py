"""Task metrics in numpy: accuracy for multiclass tasks, weighted F1 for multi-label MM-IMDB."""

from __future__ import annotations

import numpy as np

METRICS = {"multiclass": "accuracy", "multilabel": "weighted_f1"}


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of samples whose predicted class equals the true class (1-D integer arrays)."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 per class averaged with weights proportional to each class's true count.

    Inputs are 0/1 indicator matrices ``(N, classes)`` (multi-label), or 1-D class indices (then
    treated as one-hot over the classes present in either). A class with no true, predicted or
    missed sample has F1 0; classes with no true sample weigh nothing. This is the "F1-W" of the
    Harmonic-NAS paper's MM-IMDB table (scikit-learn's ``average="weighted"``).
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.ndim == 1:
        classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
        y_true, y_pred = np.eye(classes)[y_true], np.eye(classes)[y_pred]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shapes differ: {y_true.shape} vs {y_pred.shape}")
    t, p = y_true.astype(bool), y_pred.astype(bool)
    tp = np.sum(t & p, axis=0)
    fp = np.sum(~t & p, axis=0)
    fn = np.sum(t & ~p, axis=0)
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(len(tp)), where=denom > 0)
    support = t.sum(axis=0)
    return float(np.sum(f1 * support) / support.sum()) if support.sum() else 0.0
