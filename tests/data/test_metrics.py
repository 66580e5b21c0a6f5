"""Task metrics: accuracy and the weighted F1 of MM-IMDB."""

import numpy as np
import pytest

from hnas_edge.data import METRICS, accuracy, metric_of, score, weighted_f1


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


# score: logits of a whole split against its targets, in the task's metric -------------------


@pytest.fixture
def genres():
    """MM-IMDB-like targets: 40 films, 23 genres, 2 or 3 genres each (about 1 label in 10 on)."""
    rng = np.random.default_rng(0)
    targets = np.zeros((40, 23), dtype=np.float32)
    for row in targets:
        row[rng.choice(23, size=rng.integers(2, 4), replace=False)] = 1.0
    return targets


def test_predicting_no_genre_scores_zero_though_most_labels_are_right(genres):
    nothing = np.full(genres.shape, -3.0)  # every sigmoid below 0.5
    assert np.mean((nothing > 0) == genres) > 0.85  # what element-wise accuracy would say
    assert score(nothing, genres, "multilabel") == 0.0


def test_a_perfect_multilabel_prediction_scores_one(genres):
    assert score(np.where(genres > 0, 2.0, -2.0), genres, "multilabel") == 1.0


def test_a_label_is_predicted_where_its_sigmoid_is_above_one_half():
    targets = np.array([[1, 0], [1, 1]])
    logits = np.array([[0.1, -0.1], [0.0, 5.0]])  # sigmoid(0) = 0.5 exactly: not predicted
    # class 0: tp 1, fn 1 -> F1 2/3 (support 2); class 1: tp 1 -> F1 1 (support 1)
    assert score(logits, targets, "multilabel") == pytest.approx((2 / 3 * 2 + 1) / 3)


def test_a_multiclass_score_is_the_accuracy_of_the_argmax():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5], [0.0, 0.0, 4.0]])
    targets = np.array([0, 1, 2, 2])
    assert score(logits, targets, "multiclass") == accuracy(targets, logits.argmax(1)) == 0.75


def test_each_task_names_its_metric_and_an_unknown_task_is_refused():
    assert metric_of("multiclass") == "accuracy" and metric_of("multilabel") == "weighted_f1"
    with pytest.raises(ValueError, match="unknown task 'regression'"):
        score(np.zeros((1, 2)), np.zeros(1), "regression")
