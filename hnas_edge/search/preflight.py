"""What `hnas search` checks before any work, and the supernets it trains when none are given."""

from __future__ import annotations

from pathlib import Path

from hnas_edge.accelerator import Compute
from hnas_edge.data import load_dataset
from hnas_edge.errors import HnasError
from hnas_edge.profiling.coverage import coverage
from hnas_edge.profiling.lut import Lut
from hnas_edge.search.context import SearchInputs
from hnas_edge.space.presets import preset_for_dataset
from hnas_edge.space.shapes import check_dataset_shapes
from hnas_edge.train.config import TrainConfig
from hnas_edge.train.loop import Progress, train, trained_preset


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


def supernets_folder(out: Path) -> Path:
    """Where a search without ``--supernets`` trains them: ``OUT/supernets``."""
    return out / "supernets"


def ensure_supernets(
    supernets: Path | None,
    dataset: str,
    data_dir: str | None,
    out: Path,
    compute: Compute = Compute(),
    progress: Progress | None = None,
) -> Path:
    """The given folder, or supernets trained now into :func:`supernets_folder` (resumed if
    there) as ``compute`` says, their epochs reported to ``progress``."""
    if supernets is not None:
        if not (supernets / "train.json").is_file():
            raise HnasError(f"{supernets} holds no trained supernets; run `hnas train` first")
        return supernets
    folder = supernets_folder(out)
    train(
        dataset,
        folder,
        TrainConfig(),
        data_dir,
        folder.exists(),
        progress,
        compute=compute,
    )
    return folder
