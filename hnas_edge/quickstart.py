"""`hnas quickstart`: the whole pipeline on the bundled AV-digits dataset and the cpu profile.

profile → validate (calibrate) → train → search → export the most accurate and the fastest front
models to ONNX → deploy-bench both and test them. Every stage leaves its output in ``OUT`` and is
skipped when that output is complete, so a re-run (or a run after a kill) goes on where it was.
``OUT/quickstart.json`` records the wall time of each stage and the summary. Training and the
search compute as ``compute`` says (auto: on CUDA when present, forward passes in bf16 there);
profiling, validation and deployment measure the cpu device profile whatever it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from hnas_edge.accelerator import Compute
from hnas_edge.io import atomic_write_json, provenance, read_json
from hnas_edge.outputs import claim_output
from hnas_edge.torch_state import torch_threads

if TYPE_CHECKING:
    from hnas_edge.search.records import FrontModel

DATASET, SPACE, DEVICE = "avdigits", "avmnist", "cpu"

#: torch's threads for every stage: on the 2-core machines it is sized for, one thread trains and
#: searches faster than two beside the measuring runtime (the runtimes keep their own counts).
TORCH_THREADS = 1


@dataclass(frozen=True)
class Budget:
    """Sized for about 15 minutes on a 2-core machine (9–11 min measured on an idle one)."""

    validate_samples: int = 30
    population: int = 12
    generations: int = 3
    darts_epochs: int = 2
    finetune_epochs: int = 3
    bench_iterations: int = 300


class Stages:
    def __init__(self, out: Path, console: Console, accelerator: Mapping[str, Any]) -> None:
        self.out, self.console, self.accelerator = out, console, accelerator
        self.record_path = out / "quickstart.json"
        self.record: dict[str, Any] = (
            read_json(self.record_path, what="quickstart record")
            if self.record_path.exists()
            else {"stages": {}}
        )

    def run(self, name: str, done: bool, work: Callable[[], Any]) -> None:
        if done:
            self.console.print(f"[dim]{name}: done before, reused[/]")
            return
        self.console.rule(name)
        started = time.monotonic()
        work()
        self.record["stages"][name] = {"wall_s": round(time.monotonic() - started, 1)}
        self.save()

    def save(self) -> None:
        settings = {"dataset": DATASET, "device": DEVICE, "accelerator": self.accelerator}
        self.record["provenance"] = provenance(settings)
        atomic_write_json(self.record_path, self.record)


def _lut_complete(path: Path) -> bool:
    from hnas_edge.profiling.coverage import coverage
    from hnas_edge.profiling.lut import Lut
    from hnas_edge.space.presets import get_preset

    return path.exists() and coverage(Lut.load(path), get_preset(SPACE)).complete


def _calibrated(path: Path) -> bool:
    from hnas_edge.profiling.lut import Lut

    return path.exists() and not Lut.load(path).calibration_for("latency").is_identity


def _trained(folder: Path) -> bool:
    from hnas_edge.space.presets import get_preset
    from hnas_edge.train.loop import trained_all

    path = folder / "train.json"
    return path.exists() and trained_all(read_json(path), get_preset(SPACE))


def quickstart(
    out: Path,
    console: Console,
    budget: Budget | None = None,
    compute: Compute = Compute(),
) -> dict[str, Any]:
    """Every stage in ``out``; training and search as ``compute`` says (where, in which
    precision)."""
    from hnas_edge.profiling.device import DeviceProfile
    from hnas_edge.search.results import read_front

    computes_on, precision = compute.setup()  # `cuda` without a GPU: one line, before any work
    budget = budget or Budget()
    claim_output(out, kind="folder", resume=True)  # a re-run goes on where the last one was
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(out, console, compute.describe(computes_on, precision))
    device = DeviceProfile.load(DEVICE)  # what is measured: the cpu profile, whatever computes
    lut, supernets, result = out / "cpu.json", out / "supernets", out / "search"
    with torch_threads(TORCH_THREADS):
        stages.run("profile", _lut_complete(lut), lambda: _profile(device, lut, console))
        stages.run(
            "validate",
            _calibrated(lut),
            lambda: _validate(device, lut, budget.validate_samples, console),
        )
        stages.run("train", _trained(supernets), lambda: _train(supernets, console, compute))
        stages.run(
            "search",
            (result / "front.json").exists(),
            lambda: _search(lut, supernets, result, budget, console, compute),
        )
        chosen = pick_models(read_front(result).models)
        exported = {role: out / "models" / f"{role}.onnx" for role in chosen}

        def export() -> None:
            stages.record.pop("summary", None)  # new artifacts: the old measurements no longer hold
            _export(result, chosen, exported, console)

        stages.run("export", all(p.exists() for p in exported.values()), export)
        stages.run(
            "deploy",
            "summary" in stages.record,
            lambda: stages.record.update(summary=_deploy(exported, device, budget, out)),
        )
    stages.save()
    return stages.record


def pick_models(models: Sequence[FrontModel]) -> dict[str, str]:
    """The most accurate (by the validation metric, as the search knew it) and the fastest front
    model."""
    accurate = max(models, key=lambda m: (m.val_metric, -m.latency_ms))
    fastest = min(models, key=lambda m: (m.latency_ms, -m.val_metric))
    return {"most_accurate": accurate.id, "fastest": fastest.id}


def _profile(device: Any, lut: Path, console: Console) -> None:
    from hnas_edge.profiling.profiler import ProfileRequest
    from hnas_edge.ui.measure import profile_with_progress

    request = ProfileRequest(device=device, space=SPACE, out=lut, resume=lut.exists())
    profile_with_progress(request, console)


def _validate(device: Any, lut: Path, samples: int, console: Console) -> None:
    from hnas_edge.ui.lut import print_validation
    from hnas_edge.ui.measure import validate_with_progress

    print_validation(console, validate_with_progress(lut, device, SPACE, samples, 0, console), lut)


def _train(folder: Path, console: Console, compute: Compute) -> None:
    from hnas_edge.train.config import TrainConfig
    from hnas_edge.ui.train import train_with_progress

    train_with_progress(
        DATASET, folder, TrainConfig(), console, resume=folder.exists(), compute=compute
    )


def _search(
    lut: Path,
    supernets: Path,
    out: Path,
    budget: Budget,
    console: Console,
    compute: Compute,
) -> None:
    from hnas_edge.search.config import SearchConfig
    from hnas_edge.search.context import SearchInputs
    from hnas_edge.search.darts import DartsConfig
    from hnas_edge.search.evolution import EvolutionConfig
    from hnas_edge.ui.search import print_search, search_with_progress

    config = SearchConfig(
        evolution=EvolutionConfig(population=budget.population, generations=budget.generations),
        darts=DartsConfig(epochs=budget.darts_epochs),
        finetune_epochs=budget.finetune_epochs,
    )
    inputs = SearchInputs(supernets, DATASET, None, lut, config, out, compute)
    # killed before its first checkpoint, the folder already holds settings.json
    print_search(console, search_with_progress(inputs, console, resume=out.exists()), out)


def _export(result: Path, chosen: dict[str, str], paths: dict[str, Path], console: Console) -> None:
    from hnas_edge.export.artifact import export_model
    from hnas_edge.export.searched import load_searched

    for role, model_id in chosen.items():
        report = export_model(load_searched(result / model_id), "onnx", paths[role], force=True)
        console.print(
            f"{role}: {model_id} → {report.path} (max |onnx − torch| {report.max_abs_diff:.1e})"
        )


def _deploy(paths: dict[str, Path], device: Any, budget: Budget, out: Path) -> dict[str, Any]:
    from hnas_edge.deploy.runner import bench, evaluate_split, open_artifact

    summary = {}
    for role, path in paths.items():
        with open_artifact(path, device) as deployed:
            report = bench(deployed, device, budget.bench_iterations)
            test = evaluate_split(deployed, "test")
        summary[role] = {
            "artifact": str(path.relative_to(out)),
            "model_id": deployed.sidecar["model_id"],
            "bench": report.to_dict(),
            "test": test,
        }
    return summary
