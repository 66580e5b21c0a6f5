"""`hnas train` on screen: one bar per modality (epochs done, the latest figures), then the
table of what was trained."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hnas_edge.accelerator import Compute
from hnas_edge.data.metrics import metric_of
from hnas_edge.space.presets import preset_for_dataset
from hnas_edge.train.config import TrainConfig
from hnas_edge.train.loop import Progress as TrainProgress
from hnas_edge.train.loop import train
from hnas_edge.ui.progress import Line, bars
from hnas_edge.ui.text import metric_label


@contextmanager
def training_bars(console: Console, dataset: str) -> Iterator[TrainProgress]:
    """The callback :func:`~hnas_edge.train.loop.train` reports its epochs to, drawing a bar
    per modality from the first epoch on (nothing is drawn when nothing is trained)."""
    label = metric_label(metric_of(preset_for_dataset(dataset).task))
    with bars(console, "figures", deferred=True) as open_bars:
        lines: dict[str, Line] = {}

        def advance(modality: str, epoch: int, total: int, figures: dict[str, float]) -> None:
            if modality not in lines:
                lines[modality] = open_bars.add(f"training {modality}", total)
            text = (
                f"loss {figures['loss']:.3f}  val {label} (max subnet) "
                f"{figures['val_metric_max']:.1%}"
                if figures
                else ""
            )
            lines[modality](epoch, detail=text)

        yield advance


def train_with_progress(
    dataset: str,
    out: Path,
    cfg: TrainConfig,
    console: Console,
    data_dir: str | None = None,
    resume: bool = False,
    threads: int | None = None,
    compute: Compute = Compute(),
) -> dict[str, Any]:
    """:func:`~hnas_edge.train.loop.train`, showing progress on ``console``."""
    with training_bars(console, dataset) as advance:
        return train(dataset, out, cfg, data_dir, resume, advance, threads, compute)


def print_training(console: Console, record: Mapping[str, Any], out: Path) -> None:
    """The table of a training record (train.json as written)."""
    label = metric_label(record["metric"])
    table = Table(
        "modality", "epochs", f"val {label} max subnet", "min subnet", "random subnets", "wall (s)"
    )
    for modality, summary in record["modalities"].items():
        low = summary.get("val_metric_min")
        spread = summary.get("val_metric_random") or []
        table.add_row(
            modality,
            str(summary["epochs_run"]) + (" (early stop)" if summary["stopped_early"] else ""),
            f"{summary['val_metric_max']:.1%}",
            "-" if low is None else f"{low:.1%}",
            f"{min(spread):.1%}–{max(spread):.1%} ({len(spread)})" if spread else "-",
            f"{summary['wall_s']:.0f}",
        )
    console.print(table)
    console.print(f"supernets and train.json in {out}")
