"""Task metrics in numpy: accuracy for multiclass tasks, weighted F1 for multi-label MM-IMDB.

:func:`score` is the one place logits are turned into a task's figure; every ranking and report
(training summaries, both search stages, the test of the front, ``hnas deploy --split``) goes
through it, on a whole split at once (weighted F1 is not a mean over batches).
"""

from __future__ import annotations

import numpy as np

METRICS = {"multiclass": "accuracy", "multilabel": "weighted_f1"}
LABELS = {"accuracy": "accuracy", "weighted_f1": "weighted F1"}  # how reports name them


def metric_of(task: str) -> str:
    """The name of ``task``'s metric (a key of :data:`LABELS`)."""
    try:
        return METRICS[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(METRICS)}") from None


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


def predictions(logits: np.ndarray, task: str) -> np.ndarray:
    """Class indices (argmax) for multiclass; 0/1 labels, sigmoid above 0.5 (logits > 0), for
    multi-label."""
    logits = np.asarray(logits)
    return logits.argmax(1) if metric_of(task) == "accuracy" else logits > 0


def score(logits: np.ndarray, targets: np.ndarray, task: str) -> float:
    """``task``'s metric of a whole split's ``logits`` ``(N, classes)`` against its targets
    (class indices, or 0/1 label matrices for multi-label)."""
    predicted = predictions(logits, task)
    if metric_of(task) == "accuracy":
        return accuracy(targets, predicted)
    return weighted_f1(np.asarray(targets) > 0.5, predicted)
