"""The `hnas` command line. Thin by design: parse, call one library function, print.

Errors a user can cause surface as :class:`~hnas_edge.errors.HnasError`; ``main`` prints their
one line and exits with code 2.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from hnas_edge import __version__
from hnas_edge.errors import HnasError

app = typer.Typer(
    name="hnas",
    help="Hardware-first multimodal neural architecture search for edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def finite(value: float | None) -> float | None:
    """Typer callback of every float option: ranges (``min=``/``max=``) let NaN through."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def positive(value: float | None) -> float | None:
    """Typer callback of a float option that must be finite and > 0 (Typer has no open bound)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a finite number > 0")
    return value


def _version(value: bool) -> None:
    if value:
        console.print(f"hnas-edge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Hardware-first multimodal neural architecture search for edge devices."""


space_app = typer.Typer(help="Inspect the search spaces (presets).", no_args_is_help=True)
app.add_typer(space_app, name="space")


@space_app.command("show")
def space_show(name: str = typer.Argument(..., help="Preset: avmnist, memes or mmimdb.")) -> None:
    """Print a preset's backbones: configurations, parameter and MAC ranges, fusion candidates."""
    from hnas_edge.space.presets import get_preset
    from hnas_edge.space.summary import summarize_preset
    from hnas_edge.ui.space import print_space_summary

    preset = get_preset(name)
    print_space_summary(console, preset, summarize_preset(preset))


@app.command("profile")
def profile(
    device: str = typer.Option(
        ...,
        "--device",
        help="Shipped profile (cpu, gpu, agx, tx2, orin) or the path of a device TOML.",
    ),
    space: str = typer.Option("avmnist", "--space", help="Preset whose parts to measure."),
    out: Path = typer.Option(None, "--out", help="LUT to write (default DEVICE.json)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted profile."),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing --out and start over (default: refuse it)."
    ),
    shard: str = typer.Option("1/1", "--shard", help="Measure part I of N of the keys."),
    limit: int = typer.Option(None, "--limit", min=1, help="Measure at most N keys (quick look)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the random inputs."),
    batch: int = typer.Option(
        1,
        "--batch",
        min=1,
        help="Samples per call: every part is measured at this batch and the LUT is of this "
        "batch only (latency and energy per batch); validate, search, export and deploy follow it.",
    ),
    ray_address: str = typer.Option(
        None,
        "--ray-address",
        help="Measure on the boards of this Ray cluster that offer device:NAME (docs/jetson.md).",
    ),
    validate: int = typer.Option(
        0,
        "--validate",
        min=0,
        help="Also measure N whole networks, shuffled among the parts, and calibrate (as "
        "`hnas lut validate --samples N`).",
    ),
) -> None:
    """Measure the latency and energy of every part a space can need on this device (or on a
    fleet of such devices joined in a Ray cluster). One process writes a LUT at a time: a
    second one for the same --out is refused."""
    from hnas_edge.profiling.device import DeviceProfile
    from hnas_edge.profiling.profiler import ProfileRequest, Shard
    from hnas_edge.ui.measure import profile_with_progress

    profile_device = DeviceProfile.load(device)
    request = ProfileRequest(
        device=profile_device,
        space=space,
        out=out or Path(f"{profile_device.name}.json"),
        resume=resume,
        shard=Shard.parse(shard),
        limit=limit,
        seed=seed,
        force=force,
        validate=validate,
        batch=batch,
    )
    if ray_address is None:
        lut = profile_with_progress(request, console)
    elif validate:
        raise HnasError("--validate runs on one machine; drop it with --ray-address")
    else:
        from hnas_edge.profiling.fleet import FleetSettings
        from hnas_edge.ui.measure import profile_fleet_with_progress

        lut = profile_fleet_with_progress(request, FleetSettings(ray_address), console)
    console.print(f"wrote {request.out}: {len(lut)} entries")
    if validate:
        from hnas_edge.ui.lut import print_interleaved

        print_interleaved(console, lut.extra["validation"])


def accelerator_option(what: str) -> Any:
    return typer.Option(
        "auto",
        "--accelerator",
        help=f"Where {what} computes: auto (CUDA when torch sees a GPU), cpu or cuda.",
    )


def deterministic_option() -> Any:
    return typer.Option(
        False,
        "--deterministic",
        help="On CUDA: reproducible algorithms instead of cuDNN's fastest (the CPU always is).",
    )


def amp_option() -> Any:
    return typer.Option(
        "auto",
        "--amp",
        help="Precision of forward passes: auto (bf16 on a GPU that has it, fp32 elsewhere), "
        "off (fp32) or bf16 (also on a CPU: stage 2 faster with AVX512-BF16 or AMX).",
    )


@app.command("train")
def train(
    dataset: str = typer.Option(
        "avdigits", "--dataset", help="avdigits (bundled), avmnist, memes or mmimdb."
    ),
    data_dir: str = typer.Option(None, "--data-dir", help="Folder of an on-disk dataset."),
    epochs: int = typer.Option(12, "--epochs", min=1, help="Most epochs per modality."),
    seed: int = typer.Option(
        0, "--seed", min=0, help="Seed of batches, subnets and initial weights."
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="Train on the first N samples only."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
    threads: int = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for torch (default: torch's; 1 on a busy machine).",
    ),
    accelerator: str = accelerator_option("training"),
    deterministic: bool = deterministic_option(),
    amp: str = amp_option(),
    out: Path = typer.Option(..., "--out", help="Folder for the supernets and train.json."),
) -> None:
    """Train one once-for-all supernet per modality (sandwich rule, in-place distillation)."""
    from hnas_edge.accelerator import Compute
    from hnas_edge.train.config import TrainConfig
    from hnas_edge.ui.train import print_training, train_with_progress

    config = TrainConfig(epochs=epochs, seed=seed, limit=limit)
    compute = Compute(accelerator, deterministic, amp)
    record = train_with_progress(dataset, out, config, console, data_dir, resume, threads, compute)
    print_training(console, record, out)


@app.command()
def search(
    lut: Path = typer.Option(..., "--lut", help="LUT of the target device (profiled or imported)."),
    dataset: str = typer.Option("avdigits", "--dataset", help="Dataset to search on."),
    data_dir: str = typer.Option(None, "--data-dir", help="Folder of an on-disk dataset."),
    supernets: Path = typer.Option(
        None, "--supernets", help="Folder of `hnas train` (default: train into OUT/supernets)."
    ),
    generations: int = typer.Option(30, "--generations", min=1, help="Generations of stage 1."),
    population: int = typer.Option(128, "--population", min=2, help="Individuals per generation."),
    quartile: float = typer.Option(
        0.25,
        "--quartile",
        max=1,
        callback=positive,
        help="Share sent to stage 2.",
    ),
    mutation: float = typer.Option(
        0.4, "--mutation", min=0, max=1, callback=finite, help="Probability of re-drawing a gene."
    ),
    crossover: float = typer.Option(
        0.8, "--crossover", min=0, max=1, callback=finite, help="Probability of crossover."
    ),
    mode: str = typer.Option("sb-sf-hw", "--mode", help="fb-ff, fb-sf, sb-sf or sb-sf-hw."),
    budget: str = typer.Option(
        "small",
        "--budget",
        help="Stage-2 training per candidate: small (3 DARTS epochs, flat rate) or paper "
        "(25 epochs, cosine 1e-4 → 1e-6, 10 fine-tune epochs); the flags below override it.",
    ),
    darts_epochs: int = typer.Option(
        None, "--darts-epochs", min=0, help="DARTS epochs per candidate."
    ),
    lr_weights: float = typer.Option(
        None,
        "--lr-weights",
        callback=positive,
        help="DARTS weight learning rate.",
    ),
    lr_arch: float = typer.Option(
        None, "--lr-arch", callback=positive, help="DARTS α/β/γ learning rate."
    ),
    a: float = typer.Option(1.0, "--a", min=0, callback=finite, help="Exponent of the task loss."),
    b: float = typer.Option(
        1.0, "--b", min=0, callback=finite, help="Exponent of the latency loss (0: off)."
    ),
    c: float = typer.Option(
        1.0, "--c", min=0, callback=finite, help="Exponent of the energy loss (0: off)."
    ),
    hw_weight: float = typer.Option(
        None,
        "--hw-weight",
        min=0,
        callback=finite,
        help="λ: weight of the normalised hardware loss against the task loss (0: off; "
        "default 0.1, docs/internals.md says why).",
    ),
    operators: str = typer.Option(
        None,
        "--operators",
        help="Comma-separated fusion operators DARTS chooses among (default: Table 2 without "
        "SE2, the mirror of SE1).",
    ),
    finetune_epochs: int = typer.Option(
        None, "--finetune-epochs", min=0, help="Fine-tuning epochs of the derived fusion network."
    ),
    accounting: str = typer.Option(
        None, "--accounting", help="ours or paper (default: paper for imported tables)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the whole search."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for stage-2 candidates."),
    executor: str = typer.Option("local", "--executor", help="local (process pool) or ray."),
    ray_address: str = typer.Option(
        None,
        "--ray-address",
        help="Ray cluster to join: HOST:PORT, or auto for the one started on this machine "
        "(default: a new local Ray instance).",
    ),
    task_cpus: float = typer.Option(
        1.0, "--task-cpus", callback=positive, help="CPUs per Ray task."
    ),
    task_gpus: float = typer.Option(
        0.0,
        "--task-gpus",
        min=0,
        callback=finite,
        help="GPUs per Ray task (e.g. 0.25: four tasks share one); a task computes on the GPU "
        "Ray assigns it, on its CPUs without one.",
    ),
    threads: int = typer.Option(
        None, "--threads", min=1, help="CPU threads for torch in this process."
    ),
    accelerator: str = accelerator_option("the search (and stage-2 workers)"),
    deterministic: bool = deterministic_option(),
    amp: str = amp_option(),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted search in --out."),
    out: Path = typer.Option(..., "--out", help="Folder for the front, models, plots."),
) -> None:
    """Two-tier search: evolution over backbones, DARTS over fusion, costs from the LUT."""
    from dataclasses import replace

    from hnas_edge.accelerator import Compute
    from hnas_edge.cluster import import_ray
    from hnas_edge.search.config import SearchConfig, get_budget
    from hnas_edge.search.context import SearchInputs
    from hnas_edge.search.darts import DartsConfig
    from hnas_edge.search.engine import claim_out
    from hnas_edge.search.evolution import EvolutionConfig
    from hnas_edge.search.executor import RayOptions
    from hnas_edge.search.preflight import check_data, check_lut
    from hnas_edge.train.loop import set_threads
    from hnas_edge.ui.search import (
        ensure_supernets_with_progress,
        print_search,
        search_with_progress,
    )
    from hnas_edge.ui.text import warn

    set_threads(threads)
    plan = get_budget(budget)
    given = {
        "epochs": darts_epochs,
        "lr_weights": lr_weights,
        "lr_arch": lr_arch,
        "hw_weight": hw_weight,
        "operators": tuple(op.strip() for op in operators.split(",")) if operators else None,
    }
    darts = plan.apply(DartsConfig(a=a, b=b, c=c, seed=seed))
    config = SearchConfig(
        evolution=EvolutionConfig(population, generations, quartile, mutation, crossover, seed),
        darts=replace(darts, **{k: v for k, v in given.items() if v is not None}),
        mode=mode,
        finetune_epochs=plan.finetune_epochs if finetune_epochs is None else finetune_epochs,
        accounting=accounting,
    )
    overrun = plan.overrun_warning(config.darts)
    if overrun:
        warn(err_console, overrun)
    if executor not in ("local", "ray"):
        raise HnasError(f"--executor {executor}: use local or ray")
    if ray_address and executor != "ray":
        raise HnasError("--ray-address joins a Ray cluster for --executor ray; add it")
    ray = RayOptions(ray_address or "local", task_cpus, task_gpus) if executor == "ray" else None
    if ray is not None:
        import_ray()  # one line naming the extra, before any work
    compute = Compute(accelerator, deterministic, amp)
    compute.setup()  # `cuda` without a GPU, an unknown --amp: one line, before any work
    claim_out(out, resume)  # before any work
    check_lut(lut, dataset, accounting)  # before training supernets for nothing
    check_data(dataset, data_dir)
    folder = ensure_supernets_with_progress(supernets, dataset, data_dir, out, console, compute)
    inputs = SearchInputs(folder, dataset, data_dir, lut, config, out, compute)
    print_search(console, search_with_progress(inputs, console, workers, resume, ray), out)


@app.command()
def export(
    model: Path = typer.Argument(..., help="RESULT_DIR/MODEL_ID of a finished search."),
    format: str = typer.Option("onnx", "--format", help="onnx, ort (CPU-optimised) or plan."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, fp16 or int8 (plans)."),
    batch: int = typer.Option(
        None,
        "--batch",
        min=1,
        help="Batch of the graph (default: the LUT's, what it priced; another is refused).",
    ),
    dynamic_batch: bool = typer.Option(
        False,
        "--dynamic-batch",
        help="Any batch size (default: the LUT's batch only); deploy --bench still runs at it.",
    ),
    output: Path = typer.Option(
        None, "-o", "--output", help="File to write (default MODEL_ID.FORMAT)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace an existing output and its sidecar (default: refuse)."
    ),
) -> None:
    """Export a front model (checked against torch) with a sidecar JSON of what it promises."""
    from hnas_edge.export.artifact import SUFFIXES, export_model
    from hnas_edge.export.searched import load_searched

    searched = load_searched(model)
    target = output or Path(searched.id + SUFFIXES.get(format, ""))
    report = export_model(searched, format, target, precision, dynamic_batch, batch, force)
    console.print(
        f"wrote {report.path} and {report.sidecar.name}; max |diff| against "
        f"{report.checked_against} {report.max_abs_diff:.2e}"
    )


@app.command()
def deploy(
    path: Path = typer.Argument(..., help="An exported .onnx, .ort or .plan (with its sidecar)."),
    bench: int = typer.Option(
        None,
        "--bench",
        min=2,
        help="Time N runs at the sidecar's batch (its LUT's), meter energy.",
    ),
    input: Path = typer.Option(None, "--input", help=".npz of preprocessed modality arrays."),
    split: str = typer.Option(None, "--split", help="Score a split of the model's dataset."),
    device: str = typer.Option("cpu", "--device", help="Device profile to run it with."),
) -> None:
    """Run an exported model on this device: benchmark it, score it, or predict."""
    from hnas_edge.deploy.runner import bench as run_bench
    from hnas_edge.deploy.runner import evaluate_split, open_artifact, predict_file
    from hnas_edge.profiling.device import DeviceProfile
    from hnas_edge.ui.deploy import print_bench, print_split

    profile = DeviceProfile.load(device)
    with open_artifact(path, profile) as deployed:
        if bench is None and input is None and split is None:
            bench = 300
        if bench is not None:
            print_bench(console, run_bench(deployed, profile, bench), profile.name)
        if split is not None:
            print_split(console, evaluate_split(deployed, split))
        if input is not None:
            predicted, warning = predict_file(deployed, input)
            if warning:
                err_console.print(warning, markup=False, highlight=False)
            console.print(" ".join(str(p) for p in predicted.tolist()))


@app.command()
def quickstart(
    out: Path = typer.Option(Path("hnas-quickstart"), "--out", help="Folder for every stage."),
    accelerator: str = accelerator_option("training and search"),
    deterministic: bool = deterministic_option(),
    amp: str = amp_option(),
) -> None:
    """The whole pipeline on the bundled dataset and the cpu profile (15–20 min on 2 cores)."""
    from hnas_edge.accelerator import Compute
    from hnas_edge.quickstart import quickstart as run
    from hnas_edge.ui.deploy import print_quickstart

    record = run(out, console, compute=Compute(accelerator, deterministic, amp))
    print_quickstart(console, record, out)


lut_app = typer.Typer(
    help="Inspect, check, merge and validate latency/energy LUTs.", no_args_is_help=True
)
app.add_typer(lut_app, name="lut")


@lut_app.command("show")
def lut_show(path: Path = typer.Argument(..., help="LUT JSON file.")) -> None:
    """Summarise a LUT: its target, how its figures were obtained, their spread."""
    from hnas_edge.profiling.lut import Lut
    from hnas_edge.profiling.summary import summarize
    from hnas_edge.ui.lut import print_lut_summary

    print_lut_summary(console, summarize(Lut.load(path)), path)


@lut_app.command("check")
def lut_check(
    path: Path = typer.Argument(..., help="LUT JSON file."),
    space: str = typer.Option(..., "--space", help="Preset whose keys the LUT must hold."),
    accounting: str = typer.Option(
        None, "--accounting", help="ours or paper (default: paper for imported tables)."
    ),
) -> None:
    """List the keys a search space needs that the LUT lacks (exit 1 when any is missing)."""
    from hnas_edge.profiling.coverage import coverage
    from hnas_edge.profiling.lut import Lut
    from hnas_edge.space.presets import get_preset
    from hnas_edge.ui.lut import print_coverage

    report = coverage(Lut.load(path), get_preset(space), accounting)
    print_coverage(console, report, path)
    if not report.complete:
        raise typer.Exit(1)


@lut_app.command("predict")
def lut_predict(
    path: Path = typer.Argument(..., help="LUT JSON file."),
    space: str = typer.Option(..., "--space", help="Preset the architecture belongs to."),
    config: str = typer.Option(
        ...,
        "--config",
        help="Architecture: a JSON file or inline JSON (whole network or "
        'one backbone\'s {"ks": [...], "e": [...], "d": [...]}).',
    ),
    modality: str = typer.Option(None, "--modality", help="Backbone a backbone config is for."),
    accounting: str = typer.Option(
        None,
        "--accounting",
        help="Whole networks: ours (what runs) or paper (Harmonic-NAS; the default for "
        "imported tables).",
    ),
) -> None:
    """Latency and energy of one architecture on the LUT's device, per part and in total."""
    from hnas_edge.profiling.architecture import price, read_config
    from hnas_edge.profiling.cost import predict
    from hnas_edge.profiling.coverage import default_accounting
    from hnas_edge.profiling.lut import Lut
    from hnas_edge.space.presets import get_preset
    from hnas_edge.ui.lut import print_prediction

    lut = Lut.load(path)
    accounting = accounting or default_accounting(lut)
    priced = price(get_preset(space), read_config(config), modality, accounting)
    print_prediction(console, priced, predict(lut, priced.parts), lut)


@lut_app.command("validate")
def lut_validate(
    path: Path = typer.Argument(..., help="LUT JSON file (the calibration is written into it)."),
    device: str = typer.Option(..., "--device", help="The device profile the LUT was made with."),
    space: str = typer.Option("avmnist", "--space", help="Preset to sample networks from."),
    samples: int = typer.Option(50, "--samples", help="Random whole networks to measure."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of the sampled architectures."),
) -> None:
    """Measure random whole networks, compare with the LUT sums, fit and store the calibration."""
    from hnas_edge.profiling.device import DeviceProfile
    from hnas_edge.ui.lut import print_validation
    from hnas_edge.ui.measure import validate_with_progress

    report = validate_with_progress(path, DeviceProfile.load(device), space, samples, seed, console)
    print_validation(console, report, path)


@lut_app.command("transfer")
def lut_transfer(
    source: Path = typer.Argument(..., help="LUT of another device (profiled or imported)."),
    device: str = typer.Option(..., "--device", help="Profile of the target, measured here."),
    space: str = typer.Option("avmnist", "--space", help="Preset to sample networks from."),
    samples: int = typer.Option(
        20, "--samples", help="Whole networks to measure on the target (20: docs/luts.md says why)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampled architectures."),
    out: Path = typer.Option(..., "--out", help="Transferred LUT to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """A LUT for this device from another device's LUT and a few whole networks measured here."""
    from hnas_edge.profiling.device import DeviceProfile
    from hnas_edge.profiling.lut_transfer import TransferRequest
    from hnas_edge.ui.lut import print_transfer
    from hnas_edge.ui.measure import transfer_with_progress

    request = TransferRequest(source, DeviceProfile.load(device), space, samples, out, seed, force)
    print_transfer(console, transfer_with_progress(request, console), out)


@lut_app.command("import")
def lut_import(
    source: str = typer.Argument(..., help="Whose tables: harmonic-nas."),
    backbone: list[Path] = typer.Option(
        [], "--backbone", help="A published backbone table (lut_ofa_*_DEVICE.json); repeatable."
    ),
    fusion: Path = typer.Option(None, "--fusion", help="The published fusion table."),
    device: str = typer.Option(..., "--device", help="tx2 or agx: the device they measured."),
    out: Path = typer.Option(..., "--out", help="LUT to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Convert the Harmonic-NAS authors' published Jetson tables into a LUT."""
    from hnas_edge.errors import HnasError
    from hnas_edge.outputs import lut_output
    from hnas_edge.profiling.harmonic_import import import_tables, unmapped_summary

    if source != "harmonic-nas":
        raise HnasError(f"unknown table source {source!r}; hnas-edge imports harmonic-nas")
    with lut_output(out, force=force) as target:
        result = import_tables(backbone, fusion, device)
        result.lut.save(target)
    counts = ", ".join(f"{name}: {n}" for name, n in result.sources.items())
    console.print(f"wrote {out}: {len(result.lut)} entries ({counts})")
    if result.unmapped:
        console.print(
            f"{len(result.unmapped)} key(s) match no part of our spaces and were not imported: "
            f"{unmapped_summary(result.unmapped)}",
            highlight=False,
        )


@lut_app.command("compare")
def lut_compare(
    first: Path = typer.Argument(..., help="LUT A (e.g. cpu.json)."),
    second: Path = typer.Argument(..., help="LUT B (e.g. tx2-paper.json)."),
    space: str = typer.Option(..., "--space", help="Preset to compare on."),
    samples: int = typer.Option(200, "--samples", min=2, help="Random architectures to price."),
    seed: int = typer.Option(0, "--seed", min=0),
    accounting: str = typer.Option(None, "--accounting", help="ours or paper."),
) -> None:
    """How far two devices' costs disagree: per part, and in the ranking of whole networks."""
    from hnas_edge.profiling.compare import compare_luts
    from hnas_edge.profiling.lut import Lut
    from hnas_edge.space.presets import get_preset
    from hnas_edge.ui.lut import print_comparison

    a, b = Lut.load(first), Lut.load(second)
    comparison = compare_luts(a, b, get_preset(space), samples, seed, accounting)
    print_comparison(console, comparison, first, second)


@lut_app.command("merge")
def lut_merge(
    first: Path = typer.Argument(..., help="First LUT (e.g. shard 1/2)."),
    second: Path = typer.Argument(..., help="Second LUT (e.g. shard 2/2)."),
    out: Path = typer.Option(..., "-o", "--out", help="Merged LUT to write."),
    force: bool = typer.Option(False, "--force", help="Replace -o if it exists (default: refuse)."),
) -> None:
    """Join two LUTs of the same device (shards of one profile)."""
    from hnas_edge.outputs import lut_output
    from hnas_edge.profiling.lut import Lut, merge

    with lut_output(out, force=force, flag="-o") as target:
        merged, both = merge(Lut.load(first), Lut.load(second))
        merged.save(target)
    note = f" ({len(both)} key(s) in both; kept the steadier)" if both else ""
    console.print(f"wrote {out}: {len(merged)} entries{note}")


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        _interrupted()
    except typer.TyperException as exc:  # a bad flag or value: one line, like our own errors
        message = " ".join(exc.format_message().split())  # empty: help was printed (no args)
        if message:
            err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except HnasError as exc:
        # escaped: a message names things like "hnas-edge[gpu]", which rich would eat as markup
        line = escape(str(exc))
        err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        _interrupted()
    except SystemExit as exc:
        if exc.code == 130:  # typer turns Ctrl-C into a silent exit 130
            _interrupted()
        raise
    if code == 130:  # typer turns Ctrl-C into a silent exit 130
        _interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _interrupted() -> None:
    err_console.print("interrupted; finished work is saved, rerun with --resume to go on")
    sys.exit(130)


if __name__ == "__main__":
    main()
