"""Datasets: the bundled AV-digits and loaders for AV-MNIST, MM-IMDB and Harm-P memes.

Every loader returns a :class:`MultimodalDataset` whose items are ``({modality: tensor}, label)``.
"""

from hnas_edge.data.base import SPLITS, MultimodalDataset, Normalization, TensorDataset
from hnas_edge.data.metrics import LABELS, METRICS, accuracy, metric_of, score, weighted_f1
from hnas_edge.data.registry import DATASET_NAMES, load_dataset

__all__ = [
    "DATASET_NAMES",
    "LABELS",
    "METRICS",
    "SPLITS",
    "MultimodalDataset",
    "Normalization",
    "TensorDataset",
    "accuracy",
    "load_dataset",
    "metric_of",
    "score",
    "weighted_f1",
]
