"""`hnas space show`: a preset's backbones, their ranges and the fusion candidates."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from hnas_edge.space.specs import shape_text

if TYPE_CHECKING:
    from hnas_edge.space.presets import SpacePreset
    from hnas_edge.space.summary import BackboneSummary


def _span(low: int, high: int) -> str:
    unit, suffix = (1e6, "M") if high >= 1e6 else (1e3, "k")
    return f"{low / unit:.3g}–{high / unit:.3g} {suffix}"


def print_space_summary(
    console: Console, preset: SpacePreset, backbones: list[BackboneSummary]
) -> None:
    console.print(
        f"[bold]{preset.name}[/]: {', '.join(preset.modalities)} → {preset.n_classes} classes "
        f"({preset.task})"
    )
    table = Table("modality", "backbone", "input", "configurations", "parameters", "MACs")
    for b in backbones:
        table.add_row(
            b.modality,
            b.kind,
            shape_text(b.in_shape),
            f"{b.num_configs:.3g}" if b.num_configs > 9999 else str(b.num_configs),
            _span(*b.params),
            _span(*b.macs),
        )
    console.print(table)
    total = 1
    for b in backbones:
        total *= b.num_configs
    console.print(
        f"backbone combinations: {total:.3g}; fusion: features adapted to "
        f"C={preset.fusion_C} × L={preset.fusion_L}, cells {list(preset.cells)}, "
        f"nodes per cell {list(preset.nodes)}"
    )
    for b in backbones:
        shapes = ", ".join(shape_text(s) for s in b.feature_shapes)
        console.print(f"fusion candidates of {b.modality}: {shapes}")
