"""PNG figures of a search, drawn headless (matplotlib's Agg backend)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hnas_edge.data.metrics import LABELS
from hnas_edge.io import atomic_write_bytes

if TYPE_CHECKING:
    from hnas_edge.search.engine import SearchState
    from hnas_edge.search.records import HypervolumePoint

MARKERS = ("s", "^", "D", "v")
COLORS = ("tab:green", "tab:orange", "tab:purple", "tab:brown")


def figure(ncols: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.2), squeeze=False)
    return fig, axes[0]


def save_png(fig: Any, path: Path) -> None:
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def error_label(metric: str, split: str = "validation") -> str:
    """The axis name of an error in ``metric`` (e.g. "validation error (1 − weighted F1) %")."""
    return f"{split} error (1 − {LABELS[metric]}) %"


def plot_pareto(
    path: Path, state: SearchState, on_front: set[str], modalities: Sequence[str], metric: str
) -> None:
    """Validation error (1 − ``metric``) against latency and against energy (when the LUT has
    energy): each modality's backbones alone, every fused network, the front highlighted."""
    fused = [(r.id, r.fusion) for r in state.records.values() if r.fusion is not None]
    costs = [("latency_ms", "latency (ms, predicted)")]
    if fused and fused[0][1].cost.energy_mj is not None:
        costs.append(("energy_mj", "energy (mJ, predicted)"))
    fig, axes = figure(len(costs))
    for ax, (cost, label) in zip(axes, costs, strict=True):
        for marker, color, modality in zip(MARKERS, COLORS, modalities, strict=False):
            scores = [s for k, s in state.backbone_scores.items() if k.modality == modality]
            ax.scatter(
                [getattr(s.cost, cost) for s in scores],
                [100 * (1 - s.val_metric) for s in scores],
                marker=marker,
                color=color,
                s=14,
                alpha=0.5,
                label=f"{modality} alone",
            )
        ax.scatter(
            [getattr(f.cost, cost) for _, f in fused],
            [100 * (1 - f.val_metric) for _, f in fused],
            s=18,
            color="tab:blue",
            alpha=0.6,
            label="multimodal",
        )
        front = sorted((f for i, f in fused if i in on_front), key=lambda f: getattr(f.cost, cost))
        ax.plot(
            [getattr(f.cost, cost) for f in front],
            [100 * (1 - f.val_metric) for f in front],
            "o-",
            color="tab:red",
            label="Pareto front",
        )
        ax.set_xlabel(label)
        ax.set_ylabel(error_label(metric))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    save_png(fig, path)


def plot_hypervolume(path: Path, history: Sequence[HypervolumePoint]) -> None:
    fig, axes = figure(1)
    ax = axes[0]
    ax.plot([h.generation for h in history], [h.hypervolume for h in history], "o-")
    ax.set_xlabel("generation")
    ax.set_ylabel("hypervolume (normalised)")
    ax.grid(alpha=0.3)
    save_png(fig, path)
