"""`hnas train` with a rich progress bar: one bar per modality, epochs done, the latest figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import TaskID

from hnas_edge.data.metrics import LABELS, metric_of
from hnas_edge.space.presets import preset_for_dataset
from hnas_edge.train.config import TrainConfig
from hnas_edge.train.loop import train


def train_with_progress(
    dataset: str,
    out: Path,
    cfg: TrainConfig,
    console: Console,
    data_dir: str | None = None,
    resume: bool = False,
    threads: int | None = None,
    accelerator: str = "cpu",
    deterministic: bool = False,
) -> dict[str, Any]:
    """:func:`~hnas_edge.train.loop.train`, showing progress on ``console``."""
    from hnas_edge.reporting import progress_bar

    label = LABELS[metric_of(preset_for_dataset(dataset).task)]
    with progress_bar(console, "figures", deferred=True) as bar:
        tasks: dict[str, TaskID] = {}

        def advance(modality: str, epoch: int, total: int, figures: dict[str, float]) -> None:
            if modality not in tasks:
                tasks[modality] = bar.add_task(f"training {modality}", total=total, figures="")
            text = (
                f"loss {figures['loss']:.3f}  val {label} (max subnet) "
                f"{figures['val_metric_max']:.1%}"
                if figures
                else ""
            )
            bar.update(tasks[modality], completed=epoch, figures=text)

        return train(
            dataset, out, cfg, data_dir, resume, advance, threads, accelerator, deterministic
        )
