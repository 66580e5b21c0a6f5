"""`hnas search` end to end: supernets (trained first when none are given), checks that the LUT
prices the space, the generations with progress bars, then the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from hnas_edge.data import load_dataset
from hnas_edge.errors import HnasError
from hnas_edge.profiling.coverage import coverage
from hnas_edge.profiling.lut import Lut
from hnas_edge.search.context import SearchInputs
from hnas_edge.search.engine import SearchProgress, search
from hnas_edge.search.executor import RayOptions
from hnas_edge.search.results import write_results
from hnas_edge.space.presets import preset_for_dataset
from hnas_edge.space.shapes import check_dataset_shapes
from hnas_edge.train.config import TrainConfig
from hnas_edge.train.loop import trained_preset


class BarProgress(SearchProgress):
    """One bar for generations, one for the stage-2 candidates of the current generation."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.console = bar.console
        self.generations = bar.add_task("generations", total=None, detail="")
        self.stage2 = bar.add_task("stage 2", total=None, detail="", visible=False)

    def generation(self, done: int, total: int, detail: str = "") -> None:
        self.bar.update(self.generations, completed=done, total=total, detail=detail)

    def candidates(self, done: int, total: int, detail: str = "") -> None:
        self.bar.update(self.stage2, completed=done, total=total, detail=detail, visible=True)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)


def check_lut(lut: Path, dataset: str, accounting: str | None) -> None:
    """Refuse, before any work, a LUT that cannot price the dataset's search space."""
    preset = preset_for_dataset(dataset)
    cover = coverage(Lut.load(lut), preset, accounting)
    if not cover.complete:
        raise HnasError(
            f"{lut} lacks {len(cover.missing)} of the {cover.needed} keys the "
            f"{preset.name} space needs ({cover.accounting} accounting); see `hnas lut check "
            f"{lut} --space {preset.name}` and complete it with `hnas profile --resume`"
        )


def check_data(dataset: str, data_dir: str | None) -> None:
    """Refuse, before any work, a dataset whose samples are not the sizes its space takes."""
    check_dataset_shapes(preset_for_dataset(dataset), load_dataset(dataset, data_dir, "train"))


def check_inputs(inputs: SearchInputs) -> None:
    """Refuse, before any work, a LUT that cannot price the space, supernets of another one, or
    samples of other sizes than the space takes."""
    check_lut(inputs.lut, inputs.dataset, inputs.config.accounting)
    preset = preset_for_dataset(inputs.dataset)
    supernet_preset = trained_preset(inputs.supernets)
    if supernet_preset.name != preset.name:
        raise HnasError(
            f"{inputs.supernets} holds supernets of the {supernet_preset.name} space; "
            f"dataset {inputs.dataset} searches {preset.name}: train for it with `hnas train`"
        )
    check_data(inputs.dataset, inputs.data_dir)


def ensure_supernets(
    supernets: Path | None,
    dataset: str,
    data_dir: str | None,
    out: Path,
    console: Console,
    accelerator: str = "cpu",
    deterministic: bool = False,
) -> Path:
    """The given folder, or supernets trained now into ``OUT/supernets`` (resumed if there) on
    ``accelerator``."""
    if supernets is not None:
        if not (supernets / "train.json").is_file():
            raise HnasError(f"{supernets} holds no trained supernets; run `hnas train` first")
        return supernets
    from hnas_edge.train.progress import train_with_progress

    folder = out / "supernets"
    resume = folder.exists()
    console.print(f"no --supernets given: training them into {folder}")
    train_with_progress(
        dataset,
        folder,
        TrainConfig(),
        console,
        data_dir,
        resume,
        accelerator=accelerator,
        deterministic=deterministic,
    )
    return folder


def search_with_progress(
    inputs: SearchInputs,
    console: Console,
    workers: int = 1,
    resume: bool = False,
    ray: RayOptions | None = None,
) -> dict[str, Any]:
    from hnas_edge.reporting import progress_bar

    check_inputs(inputs)
    with progress_bar(console) as bar:
        runner, state = search(inputs, workers, resume, BarProgress(bar), ray)
    console.print("testing the front once on the test split, writing results")
    return write_results(runner, state)
