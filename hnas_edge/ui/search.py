"""`hnas search` on screen: the bars of the generations and of stage 2, supernets trained on
demand, then the front."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hnas_edge.accelerator import Compute
from hnas_edge.search.context import SearchInputs
from hnas_edge.search.engine import SearchProgress, search
from hnas_edge.search.executor import RayOptions
from hnas_edge.search.preflight import check_inputs, ensure_supernets, supernets_folder
from hnas_edge.search.results import write_results
from hnas_edge.space.fusion import Genotype
from hnas_edge.ui.progress import Bars, bars
from hnas_edge.ui.text import metric_label
from hnas_edge.ui.train import training_bars


class BarProgress(SearchProgress):
    """One bar for generations, one for the stage-2 candidates of the current generation."""

    def __init__(self, open_bars: Bars) -> None:
        self.console = open_bars.console
        self.generations = open_bars.add("generations")
        self.stage2 = open_bars.add("stage 2", visible=False)

    def generation(self, done: int, total: int, detail: str = "") -> None:
        self.generations(done, total, detail)

    def candidates(self, done: int, total: int, detail: str = "") -> None:
        self.stage2(done, total, detail)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)


def ensure_supernets_with_progress(
    supernets: Path | None,
    dataset: str,
    data_dir: str | None,
    out: Path,
    console: Console,
    compute: Compute = Compute(),
) -> Path:
    """:func:`~hnas_edge.search.preflight.ensure_supernets`, saying so and drawing the training
    bars when it trains them."""
    if supernets is None:
        console.print(f"no --supernets given: training them into {supernets_folder(out)}")
    with training_bars(console, dataset) as advance:
        return ensure_supernets(supernets, dataset, data_dir, out, compute, advance)


def search_with_progress(
    inputs: SearchInputs,
    console: Console,
    workers: int = 1,
    resume: bool = False,
    ray: RayOptions | None = None,
) -> dict[str, Any]:
    """Check the inputs, search with progress bars, then test the front and write the results."""
    check_inputs(inputs)
    with bars(console) as open_bars:
        runner, state = search(inputs, workers, resume, BarProgress(open_bars), ray)
    console.print("testing the front once on the test split, writing results")
    return write_results(runner, state)


def live_operators(genotype: Mapping[str, Any]) -> str:
    """The operators of a genotype's live nodes, e.g. ``ConcatFC, 2×Sum``."""
    g = Genotype.from_dict(genotype)
    live = g.live()[0]
    ops = Counter(
        node.op
        for p, cell in enumerate(g.cells)
        for d, node in enumerate(cell.nodes)
        if (p, d) in live
    )
    return ", ".join(op if n == 1 else f"{n}×{op}" for op, n in ops.most_common())


def print_search(console: Console, result: Mapping[str, Any], out: Path) -> None:
    """The front and how the search went, from its result (front.json as written)."""
    lut = result["lut"]
    energy_note = "; energy is an ESTIMATE" if lut["energy_is_estimate"] else ""
    batch = lut.get("batch") or 1
    batch_note = f" at batch {batch} (costs per batch)" if batch > 1 else ""
    console.print(
        f"[bold]Pareto front[/] of {result['mode']} on {result['dataset']} for "
        f"{lut['device']}{batch_note} ({lut['accounting']} accounting{energy_note})"
    )
    label = metric_label(result["metric"])
    table = Table(
        "id",
        f"val {label}",
        f"test {label}",
        "latency (ms)",
        "energy (mJ)",
        "cells×nodes",
        "operators (live)",
    )
    for model in result["models"]:
        fusion = model["architecture"]["fusion"]
        energy = model["energy_mj"]
        table.add_row(
            model["id"],
            f"{model['val_metric']:.1%}",
            f"{model['test_metric']:.1%}",
            f"{model['latency_ms']:.3f}",
            "-" if energy is None else f"{energy:.3f}",
            f"{fusion['cells']}×{fusion['nodes']}",
            live_operators(fusion["genotype"]),
        )
    console.print(table)
    for modality, best in result["best_unimodal"].items():
        console.print(
            f"best {modality} backbone alone: val {label} {best['val_metric']:.1%}, "
            f"test {best['test_metric']:.1%}, {best['latency_ms']:.3f} ms"
        )
    hv = result["hypervolume"]
    if hv:
        console.print(
            "hypervolume per generation: " + ", ".join(f"{h['hypervolume']:.4f}" for h in hv)
        )
        console.print(
            "fused per generation: " + ", ".join(str(h.get("fused_new", "?")) for h in hv)
        )
    seconds = result["seconds"]
    ran_on = result.get("executor") or {}
    if ran_on.get("kind") == "ray":
        console.print(
            f"stage 2 on Ray: {ran_on['tasks']} tasks on {ran_on['nodes']} node(s), "
            f"{ran_on['shared_objects_put']} backbones shared through the object store "
            f"({ran_on['shared_bytes_put'] / 1e6:.1f} MB)"
        )
    console.print(
        f"stage 1 {seconds['stage1']:.0f} s, stage 2 {seconds['stage2_wall']:.0f} s; "
        f"front.json, candidates.csv, models/, pareto.png in {out}"
    )
