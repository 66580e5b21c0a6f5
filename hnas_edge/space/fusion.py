"""Fusion: Table 2's operators, the feature adapter and the discrete fusion network.

Every fused feature has the shape (B, C, L): C channels at L positions. A fusion network has
``cells`` cells; cell ``p`` picks two inputs among the candidates F1 = [backbone features...,
outputs of cells 1..p-1] (eq. 6). A cell has ``nodes`` nodes; node ``d`` picks two inputs among
F2 = [X, Y, outputs of nodes 1..d-1] and applies one operator; the cell's output is its last
node's output, and the network's output is its last cell's output.

The relaxed network that stage 2 searches (:mod:`~hnas_edge.space.relaxed`) mixes these choices
and derives a :class:`Genotype`, from which :class:`FusionNetwork` builds the discrete network.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hnas_edge.errors import ConfigError
from hnas_edge.space.specs import (
    FUSION_OPS,
    AdapterSpec,
    FusionOpSpec,
    register_builder,
    shape_text,
)

# --- operators (Table 2) ---------------------------------------------------------------------


class Sum(nn.Module):
    """Sum(X, Y) = X + Y."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class ScaleDotAttn(nn.Module):
    """X + Softmax(Xᵀ·Y / √C)·Yᵀ: every position of X attends over the positions of Y, added to X.

    Table 2 has no ``X +``. Without it, a Y whose positions are all equal — every flat feature
    (a backbone's final embedding), which the adapter repeats at the L positions — makes the
    attention return Y whatever X is: the node drops X, and a network derived with it reads one
    modality only (measured: a fused candidate 13.6 points below its best backbone alone). With
    it, X always reaches the output, as in a transformer's residual attention block.
    """

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        scores = torch.matmul(x.transpose(1, 2), y) / math.sqrt(x.shape[1])
        attended = torch.matmul(torch.softmax(scores, dim=-1), y.transpose(1, 2)).transpose(1, 2)
        return x + attended


class _ChannelLinear(nn.Module):
    """A linear map over the channel axis applied at every position (a 1×1 Conv1d)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class LinearGLU(nn.Module):
    """LinearGLU(X, Y) = X·W1 ⊙ σ(Y·W2): Y gates each element of the transformed X."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.w1, self.w2 = _ChannelLinear(C, C), _ChannelLinear(C, C)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.w1(x) * torch.sigmoid(self.w2(y))


class ConcatFC(nn.Module):
    """ConcatFC(X, Y) = ReLU(Concat(X, Y)·W + b), concatenated on the channel axis."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.fc = _ChannelLinear(2 * C, C)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(torch.cat([x, y], dim=1)))


class _SqueezeExcite(nn.Module):
    """E_S ⊙ T with E_S = σ(mean_L(S)·W + b): the squeezed source gates the target's channels."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.fc = nn.Linear(C, C)

    def gate(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        excitation = torch.sigmoid(self.fc(source.mean(dim=2)))
        return excitation.unsqueeze(-1) * target


class SE1(_SqueezeExcite):
    """SE(X, Y) = E_X ⊙ Y: the first input recalibrates the second's channels."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.gate(x, y)


class SE2(_SqueezeExcite):
    """The mirror of SE1, E_Y ⊙ X: the second input recalibrates the first's channels."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.gate(y, x)


class CatConvMish(nn.Module):
    """Mish(Cat(X·W1, Y·W2)·W3): both inputs transformed, concatenated, mixed back to C, Mish."""

    def __init__(self, C: int) -> None:
        super().__init__()
        self.w1, self.w2 = _ChannelLinear(C, C), _ChannelLinear(C, C)
        self.mix = _ChannelLinear(2 * C, C)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mish(self.mix(torch.cat([self.w1(x), self.w2(y)], dim=1)))


_OPERATORS: dict[str, Any] = {
    "Sum": lambda C, L: Sum(),
    "ScaleDotAttn": lambda C, L: ScaleDotAttn(),
    "LinearGLU": lambda C, L: LinearGLU(C),
    "ConcatFC": lambda C, L: ConcatFC(C),
    "SE1": lambda C, L: SE1(C),
    "SE2": lambda C, L: SE2(C),
    "CatConvMish": lambda C, L: CatConvMish(C),
}
assert tuple(_OPERATORS) == FUSION_OPS


#: The operators stage 2 searches by default: Table 2 without ``SE2``. ``SE2(X, Y)`` is
#: ``SE1(Y, X)`` and the search already chooses each node's input order (β), so a seventh candidate
#: would only split the softmax mass of one operator in two (the authors' code drops it too).
#: ``SE2`` stays buildable, priced and importable.
SEARCHED_OPS = tuple(op for op in FUSION_OPS if op != "SE2")


def check_operators(operators: Sequence[str]) -> tuple[str, ...]:
    """``operators`` as a tuple, refused when empty, repeated or not of Table 2."""
    unknown = [op for op in operators if op not in FUSION_OPS]
    if unknown or not operators or len(set(operators)) != len(operators):
        raise ConfigError(
            f"fusion operators {list(operators)}: give distinct names among {', '.join(FUSION_OPS)}"
        )
    return tuple(operators)


def build_operator(op: str, C: int, L: int) -> nn.Module:
    if op not in _OPERATORS:
        raise ConfigError(f"unknown fusion operator {op!r}; use one of {', '.join(FUSION_OPS)}")
    return _OPERATORS[op](C, L)


register_builder(FusionOpSpec, lambda spec: build_operator(spec.op, spec.C, spec.L))


# --- adapter -----------------------------------------------------------------------------------


def window_index(size: int, out: int) -> torch.Tensor:
    """(out, k) indices of adaptive pooling's windows [⌊i·size/out⌋, ⌈(i+1)·size/out⌉).

    Windows shorter than the longest repeat their last index, which leaves a max unchanged.
    """
    windows = [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]
    k = max(end - start for start, end in windows)
    return torch.tensor([[min(start + j, end - 1) for j in range(k)] for start, end in windows])


def refuse_other_shape(got: Sequence[int], built_for: Sequence[int], what: str) -> None:
    """Refuse a feature whose shape is not the one a module was built for, instead of letting it
    read part of it. Shapes are Python ints here, so the check costs nothing and leaves no trace
    in an ONNX graph or a captured CUDA graph."""
    if tuple(got) != tuple(built_for):
        raise ConfigError(
            f"{what} was built for {shape_text(tuple(built_for))} features but got "
            f"{shape_text(tuple(got))}: the backbone's input is not the size its preset expects "
            "(see docs/datasets.md)"
        )


class AdaptiveMaxPool(nn.Module):
    """``F.adaptive_max_pool2d`` to ``out``×``out`` for a fixed ``height``×``width``, in operations
    every ONNX runtime has.

    The ONNX exporter refuses adaptive pooling whose output does not divide the input (7×7 → 4×4
    here), so uneven cases gather each axis's windows and take their max. The window indices are
    non-persistent buffers made once: they follow the module to its device and no host tensor is
    copied per call (which a CUDA graph capture forbids); checkpoints do not hold them. A map of
    another size is refused: fixed windows would read only part of it.
    """

    def __init__(self, height: int, width: int, out: int) -> None:
        super().__init__()
        self.size = (height, width)
        self.out = out
        self.even = height % out == 0 and width % out == 0
        self.kernel = (height // out, width // out)
        self.register_buffer("rows", window_index(height, out), persistent=False)
        self.register_buffer("cols", window_index(width, out), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refuse_other_shape(x.shape[-2:], self.size, "an adaptive max pool")
        if self.even:
            return F.max_pool2d(x, self.kernel)
        for dim, index in ((2, self.rows), (3, self.cols)):
            x = (
                x.index_select(dim, index.flatten())
                .unflatten(dim, tuple(index.shape))
                .amax(dim + 1)
            )
        return x


class FeatureAdapter(nn.Module):
    """Brings one backbone feature to (B, C, L).

    A C_in×H×W map is max-pooled to √L×√L positions and flattened to (B, C_in, L); a flat vector
    (B, C_in) is repeated at the L positions. Then a 1×1 Conv1d to C channels, batch norm, ReLU.
    A feature of any other shape than ``in_shape`` is refused (:func:`refuse_other_shape`).
    """

    def __init__(self, in_shape: Sequence[int], C: int, L: int) -> None:
        super().__init__()
        side = math.isqrt(L)
        if len(in_shape) == 3 and side * side != L:
            raise ConfigError(f"fusion L={L} must be a perfect square to pool a feature map")
        if len(in_shape) not in (1, 3):
            raise ConfigError(f"an adapter takes C×H×W maps or flat vectors, got {tuple(in_shape)}")
        self.in_shape, self.C, self.L, self.side = tuple(in_shape), C, L, side
        self.pool = AdaptiveMaxPool(*in_shape[1:], side) if len(in_shape) == 3 else None
        self.conv = nn.Conv1d(in_shape[0], C, 1, bias=False)
        self.bn = nn.BatchNorm1d(C)

    @classmethod
    def from_spec(cls, spec: AdapterSpec) -> FeatureAdapter:
        return cls(spec.in_shape, spec.C, spec.L)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refuse_other_shape(x.shape[1:], self.in_shape, "a feature adapter")
        if self.pool is not None:
            x = self.pool(x).flatten(2)
        else:
            x = x.unsqueeze(-1).expand(-1, -1, self.L)
        return torch.relu(self.bn(self.conv(x)))


register_builder(AdapterSpec, FeatureAdapter.from_spec)


# --- genotype ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeGene:
    """A node: two inputs as indices into F2 = [X, Y, node 1, ...] and its operator."""

    inputs: tuple[int, int]
    op: str


@dataclass(frozen=True)
class CellGene:
    """A cell: two inputs as indices into F1 = [candidates..., cell 1, ...] and its nodes."""

    inputs: tuple[int, int]
    nodes: tuple[NodeGene, ...]


@dataclass(frozen=True)
class Genotype:
    """A discrete fusion network over ``n_inputs`` candidate features."""

    n_inputs: int
    cells: tuple[CellGene, ...]

    def __post_init__(self) -> None:
        if not self.cells:
            raise ConfigError("a fusion genotype needs at least one cell")
        for p, cell in enumerate(self.cells):
            _check_pair(cell.inputs, self.n_inputs + p, f"cells[{p}].inputs")
            if not cell.nodes:
                raise ConfigError(f"cells[{p}] has no nodes; a cell needs at least one")
            for d, node in enumerate(cell.nodes):
                _check_pair(node.inputs, 2 + d, f"cells[{p}].nodes[{d}].inputs")
                if node.op not in FUSION_OPS:
                    raise ConfigError(
                        f"cells[{p}].nodes[{d}].op = {node.op!r}; "
                        f"use one of {', '.join(FUSION_OPS)}"
                    )

    @property
    def n_nodes(self) -> int:
        return len(self.cells[0].nodes)

    def live(self) -> tuple[frozenset[tuple[int, int]], frozenset[int]]:
        """The nodes (cell, node) and the candidate features the output depends on.

        A node no later node reads, or a cell no later cell reads, is dead: it would be computed
        for nothing (and an ONNX exporter removes it), so it is neither run nor counted.
        """
        nodes: set[tuple[int, int]] = set()
        inputs: set[int] = set()
        live_cells = {len(self.cells) - 1}
        for p in reversed(range(len(self.cells))):
            if p not in live_cells:
                continue
            cell = self.cells[p]
            wanted = {len(cell.nodes) - 1}
            for d in reversed(range(len(cell.nodes))):
                if d not in wanted:
                    continue
                nodes.add((p, d))
                for source in cell.nodes[d].inputs:
                    if source >= 2:
                        wanted.add(source - 2)
                        continue
                    feature = cell.inputs[source]
                    if feature >= self.n_inputs:
                        live_cells.add(feature - self.n_inputs)
                    else:
                        inputs.add(feature)
        return frozenset(nodes), frozenset(inputs)

    def used_inputs(self) -> list[int]:
        """Indices of the candidate features the network really reads."""
        return sorted(self.live()[1])

    def ops(self) -> list[str]:
        return [node.op for cell in self.cells for node in cell.nodes]

    def live_ops(self) -> list[str]:
        """The operators of the nodes that run (see :meth:`live`)."""
        live = self.live()[0]
        return [
            node.op
            for p, cell in enumerate(self.cells)
            for d, node in enumerate(cell.nodes)
            if (p, d) in live
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "cells": [
                {
                    "inputs": list(cell.inputs),
                    "nodes": [{"inputs": list(n.inputs), "op": n.op} for n in cell.nodes],
                }
                for cell in self.cells
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Genotype:
        try:
            cells = tuple(
                CellGene(
                    inputs=_pair(cell["inputs"]),
                    nodes=tuple(
                        NodeGene(inputs=_pair(node["inputs"]), op=str(node["op"]))
                        for node in cell["nodes"]
                    ),
                )
                for cell in data["cells"]
            )
            n_inputs = int(data["n_inputs"])
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ConfigError(
                f"bad fusion genotype ({type(exc).__name__}: {exc}); expected "
                '{"n_inputs": N, "cells": [{"inputs": [i, j], "nodes": [{"inputs": [a, b], '
                '"op": NAME}, ...]}, ...]}'
            ) from None
        return cls(n_inputs, cells)


def _pair(values: Any) -> tuple[int, int]:
    first, second = values
    return int(first), int(second)


def _check_pair(pair: tuple[int, int], n_choices: int, where: str) -> None:
    if not all(0 <= i < n_choices for i in pair):
        raise ConfigError(f"{where} = {list(pair)}; each index must be in 0..{n_choices - 1}")


def random_genotype(n_inputs: int, cells: int, nodes: int, rng: Any) -> Genotype:
    """A uniformly random genotype (``rng``: a :class:`random.Random`)."""
    return Genotype(
        n_inputs,
        tuple(
            CellGene(
                inputs=tuple(rng.sample(range(n_inputs + p), 2)),  # type: ignore[arg-type]
                nodes=tuple(
                    NodeGene(tuple(rng.sample(range(2 + d), 2)), rng.choice(FUSION_OPS))  # type: ignore[arg-type]
                    for d in range(nodes)
                ),
            )
            for p in range(cells)
        ),
    )


# --- discrete network ----------------------------------------------------------------------------


class FusionNetwork(nn.Module):
    """The discrete fusion network of a genotype; ``forward(features)`` takes all candidates."""

    def __init__(self, genotype: Genotype, C: int, L: int) -> None:
        super().__init__()
        self.genotype, self.C, self.L = genotype, C, L
        self.ops = nn.ModuleList(
            nn.ModuleList(build_operator(node.op, C, L) for node in cell.nodes)
            for cell in genotype.cells
        )

        self.live_nodes = self.genotype.live()[0]

    def forward(self, features: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """Run the live nodes; ``features`` may hold None for candidates nobody reads."""
        states = list(features)
        for p, (cell, ops) in enumerate(zip(self.genotype.cells, self.ops, strict=True)):
            nodes = [states[cell.inputs[0]], states[cell.inputs[1]]]
            for d, (node, op) in enumerate(zip(cell.nodes, ops, strict=True)):
                live = (p, d) in self.live_nodes
                nodes.append(op(nodes[node.inputs[0]], nodes[node.inputs[1]]) if live else None)
            states.append(nodes[-1])
        return states[-1]

    def parts(self, live_only: bool = True) -> list[tuple[str, FusionOpSpec]]:
        """One operator per node; by default only the live ones (those that run)."""
        return [
            (f"fusion.cell{p + 1}.node{d + 1}", FusionOpSpec(node.op, self.C, self.L))
            for p, cell in enumerate(self.genotype.cells)
            for d, node in enumerate(cell.nodes)
            if not live_only or (p, d) in self.live_nodes
        ]
