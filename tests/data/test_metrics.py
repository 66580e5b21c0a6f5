"""Task metrics: accuracy and the weighted F1 of MM-IMDB."""

import numpy as np

from hnas_edge.data import METRICS, accuracy, weighted_f1


def test_weighted_f1_weights_each_class_by_its_true_count():
    y_true = np.array([[1, 0], [1, 0], [1, 1], [0, 1]])
    y_pred = np.array([[1, 0], [0, 0], [1, 0], [0, 1]])
    # class 0: tp 2, fn 1 -> F1 0.8 (support 3); class 1: tp 1, fn 1 -> F1 2/3 (support 2)
    assert np.isclose(weighted_f1(y_true, y_pred), (0.8 * 3 + 2 / 3 * 2) / 5)


def test_weighted_f1_is_one_for_perfect_and_zero_for_empty_predictions():
    y = np.array([[1, 0, 1], [0, 1, 0]])
    assert weighted_f1(y, y) == 1.0
    assert weighted_f1(y, np.zeros_like(y)) == 0.0


def test_weighted_f1_accepts_class_indices():
    y_true, y_pred = np.array([0, 0, 1]), np.array([0, 1, 1])
    assert np.isclose(weighted_f1(y_true, y_pred), (2 / 3 * 2 + 2 / 3) / 3)


def test_accuracy_and_the_metric_of_each_task():
    assert accuracy(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    assert METRICS == {"multiclass": "accuracy", "multilabel": "weighted_f1"}
