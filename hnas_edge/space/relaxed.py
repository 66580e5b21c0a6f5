"""The relaxed fusion network of stage 2 (DARTS): every choice mixed, computed on tokens.

The relaxed network mixes the choices of :mod:`~hnas_edge.space.fusion`'s discrete network:
every candidate input k of a cell's input slot is weighted by the softmax of α (eq. 7), every
node input by the softmax of β, and every operator of a node by the softmax of γ (eq. 9).
:meth:`RelaxedFusionNetwork.derive` keeps the argmax of each (eq. 8, 10): a
:class:`~hnas_edge.space.fusion.Genotype`.

It holds the discrete operators' own modules (the chosen one hands its weights to the derived
network), but computes them apart from the static network they export to, for speed, on tokens
(B, L, C) instead of the exported layout (B, C, L):

- a 1×1 convolution over channels is one matrix product (``F.linear``) on tokens: measured 2.4×
  faster forward and 1.7× forward + backward than ``Conv1d`` (C = 192, L = 16, batch 64, one core);
- every operator of a node that maps X (or Y) linearly before its non-linearity — LinearGLU's W1,
  ConcatFC's X half, CatConvMish's W1 folded into its mix — is one product with their rows
  stacked, so a node costs two products where the operators one by one cost eight;
- the mixtures (eq. 7, 9) are one weighted reduction of the stacked choices, not one
  multiply-add per choice.

The function is the discrete operators' (tested on every operator); the rounding is not the
same, so a search is reproducible for a seed but not bit-equal to one computed operator by
operator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hnas_edge.errors import ConfigError
from hnas_edge.space.fusion import (
    SEARCHED_OPS,
    CatConvMish,
    CellGene,
    ConcatFC,
    FeatureAdapter,
    Genotype,
    LinearGLU,
    NodeGene,
    build_operator,
    check_operators,
    refuse_other_shape,
)
from hnas_edge.space.specs import FUSION_OPS

Tensor = torch.Tensor
#: (weight (C_out, C_in), bias (C_out,) or None): one linear map of tokens.
LinearMap = tuple[Tensor, Tensor | None]


def _matrix(conv: nn.Conv1d) -> torch.Tensor:
    return conv.weight.squeeze(-1)


def linear_terms(op: nn.Module) -> tuple[LinearMap, LinearMap] | None:
    """The linear maps ``op`` applies to X and to Y before its non-linearity; None for an operator
    that maps neither.

    CatConvMish's mix of its two transformed inputs is linear too, so it folds into them:
    mix([X·W1ᵀ + b1, Y·W2ᵀ + b2]) = X·(M_X·W1)ᵀ + Y·(M_Y·W2)ᵀ + (M_X·b1 + M_Y·b2 + b_mix), which
    applies two C×C maps per token instead of four.
    """
    if isinstance(op, LinearGLU):
        return (_matrix(op.w1.conv), op.w1.conv.bias), (_matrix(op.w2.conv), op.w2.conv.bias)
    if isinstance(op, ConcatFC):
        weight = _matrix(op.fc.conv)
        C = weight.shape[1] // 2
        return (weight[:, :C], op.fc.conv.bias), (weight[:, C:], None)
    if isinstance(op, CatConvMish):
        mix = _matrix(op.mix.conv)
        C = mix.shape[1] // 2
        mix_x, mix_y = mix[:, :C], mix[:, C:]
        w1, w2 = op.w1.conv, op.w2.conv
        bias = mix_x @ w1.bias + mix_y @ w2.bias + op.mix.conv.bias
        return (mix_x @ _matrix(w1), bias), (mix_y @ _matrix(w2), None)
    return None


def _attend(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    scores = torch.matmul(x, y.transpose(1, 2)) / math.sqrt(x.shape[-1])
    return x + torch.matmul(torch.softmax(scores, dim=-1), y)


def _excite(op: nn.Module, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(op.fc(source.mean(dim=1))).unsqueeze(1) * target


#: Each operator on tokens: (its module, X, Y, X's and Y's linear maps or None) → output.
TOKEN_FORMS: dict[str, Callable[[nn.Module, Tensor, Tensor, Tensor, Tensor], Tensor]] = {
    "Sum": lambda op, x, y, px, py: x + y,
    "ScaleDotAttn": lambda op, x, y, px, py: _attend(x, y),
    "LinearGLU": lambda op, x, y, px, py: px * torch.sigmoid(py),
    "ConcatFC": lambda op, x, y, px, py: torch.relu(px + py),
    "SE1": lambda op, x, y, px, py: _excite(op, x, y),
    "SE2": lambda op, x, y, px, py: _excite(op, y, x),
    "CatConvMish": lambda op, x, y, px, py: F.mish(px + py),
}
assert tuple(TOKEN_FORMS) == FUSION_OPS


def _stacked(maps: Sequence[LinearMap]) -> LinearMap:
    weight = torch.cat([w for w, _ in maps])
    biases = [b if b is not None else w.new_zeros(w.shape[0]) for w, b in maps]
    return weight, torch.cat(biases)


class MixedNode(nn.Module):
    """Every searched operator of one node at once, mixed by softmax(γ) (eq. 9), on tokens."""

    def __init__(self, C: int, L: int, operators: Sequence[str]) -> None:
        super().__init__()
        self.operators = tuple(operators)
        self.ops = nn.ModuleList(build_operator(op, C, L) for op in operators)

    def outputs(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """Each operator's output on tokens x, y (B, L, C), in operator order."""
        terms = [linear_terms(op) for op in self.ops]
        mapped = [t for t in terms if t is not None]
        chunks_x: list[Tensor] = []
        chunks_y: list[Tensor] = []
        if mapped:
            sizes = [t[0][0].shape[0] for t in mapped]
            chunks_x = list(F.linear(x, *_stacked([t[0] for t in mapped])).split(sizes, dim=-1))
            chunks_y = list(F.linear(y, *_stacked([t[1] for t in mapped])).split(sizes, dim=-1))
        outs = []
        for name, op, term in zip(self.operators, self.ops, terms, strict=True):
            px, py = (chunks_x.pop(0), chunks_y.pop(0)) if term is not None else (None, None)
            outs.append(TOKEN_FORMS[name](op, x, y, px, py))
        return outs

    def forward(self, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _weighted(self.outputs(x, y), weights)


def _weighted(states: Sequence[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Σ_k weights[..., k] · states_k in one reduction; weights (k,) or (slots, k). Under
    autocast the states may be bf16: the weights (fp32 softmaxes) are rounded to them."""
    stacked = torch.stack(list(states))
    return torch.tensordot(weights.to(stacked.dtype), stacked, dims=1)


class RelaxedFusionNetwork(nn.Module):
    """The fusion hypernetwork: α (cell inputs), β (node inputs), γ (operators), all relaxed.

    α[p] has shape (2, n_inputs + p): one softmax over F1 per input slot of cell p; β[p][d] has
    shape (2, 2 + d): one softmax over F2 per input slot of node d; γ[p] has shape
    (nodes, |operators|). The identity/zero pair of eq. (7) is folded into one softmax per slot,
    whose argmax is the same choice eq. (8) makes. ``operators`` is the set searched
    (:data:`~hnas_edge.space.fusion.SEARCHED_OPS` by default).
    """

    def __init__(
        self,
        n_inputs: int,
        cells: int,
        nodes: int,
        C: int,
        L: int,
        operators: Sequence[str] = SEARCHED_OPS,
    ) -> None:
        super().__init__()
        self.n_inputs, self.n_cells, self.n_nodes, self.C, self.L = n_inputs, cells, nodes, C, L
        self.operators = check_operators(operators)
        self.alpha = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(2, n_inputs + p)) for p in range(cells)
        )
        self.beta = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(2, 2 + d)) for _ in range(cells) for d in range(nodes)
        )
        self.gamma = nn.ParameterList(
            nn.Parameter(1e-3 * torch.randn(nodes, len(self.operators))) for _ in range(cells)
        )
        self.mixed = nn.ModuleList(MixedNode(C, L, self.operators) for _ in range(cells * nodes))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [*self.alpha, *self.beta, *self.gamma]

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.mixed.parameters())

    def op_weights(self) -> torch.Tensor:
        """softmax(γ) per node, shape (cells, nodes, |operators|)."""
        return torch.stack([torch.softmax(g, dim=-1) for g in self.gamma])

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The mixed output (B, C, L) of candidate features (B, C, L), the discrete layout."""
        return self.forward_tokens([f.transpose(1, 2) for f in features]).transpose(1, 2)

    def forward_tokens(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """The mixed output (B, L, C) of candidate features as tokens (B, L, C)."""
        states = list(features)
        for p in range(self.n_cells):
            nodes = list(_weighted(states, torch.softmax(self.alpha[p], dim=-1)).unbind(0))
            for d in range(self.n_nodes):
                beta = self.beta[p * self.n_nodes + d]
                x, y = _weighted(nodes, torch.softmax(beta, dim=-1)).unbind(0)
                gamma = torch.softmax(self.gamma[p][d], dim=-1)
                nodes.append(self.mixed[p * self.n_nodes + d](x, y, gamma))
            states.append(nodes[-1])
        return states[-1]

    @torch.no_grad()
    def derive(self, sources: Sequence[str] | None = None) -> Genotype:
        """The discrete genotype: the most probable two distinct inputs per slot pair and the most
        probable operator per node (eq. 8 and 10).

        ``sources`` names the modality of each candidate input. Given, the network derived reads
        every modality: where the most probable choices read fewer (two features of one backbone,
        say), the output cell takes its most probable input pair with which they are all read.
        The relaxed network read every feature; its argmax may not, and a "multimodal" network
        that reads one modality scores at best what that backbone scores alone (measured: 19.8
        points below the other backbone). Every node of a cell depends on both cell inputs, so
        with two modalities such a pair always exists; with more, the argmax is kept if none does.
        """
        cells = []
        for p in range(self.n_cells):
            node_genes = []
            for d in range(self.n_nodes):
                op = self.operators[int(self.gamma[p][d].argmax())]
                node_genes.append(NodeGene(_pairs(self.beta[p * self.n_nodes + d])[0], op))
            cells.append(CellGene(_pairs(self.alpha[p])[0], tuple(node_genes)))
        genotype = Genotype(self.n_inputs, tuple(cells))
        if sources is None or _reads_all(genotype, sources):
            return genotype
        output = cells[-1]
        for pair in _pairs(self.alpha[-1]):
            covering = Genotype(self.n_inputs, (*cells[:-1], CellGene(pair, output.nodes)))
            if _reads_all(covering, sources):
                return covering
        return genotype


def _pairs(logits: torch.Tensor) -> list[tuple[int, int]]:
    """Pairs of distinct inputs, most probable first by the product of the two slots'
    probabilities (eq. 8 takes the first)."""
    probs = torch.softmax(logits, dim=-1)
    joint = (probs[0].unsqueeze(1) * probs[1].unsqueeze(0)).flatten()
    n = probs.shape[1]
    order = torch.argsort(joint, descending=True, stable=True).tolist()
    return [(k // n, k % n) for k in order if k // n != k % n]


def _reads_all(genotype: Genotype, sources: Sequence[str]) -> bool:
    return {sources[i] for i in genotype.used_inputs()} == set(sources)


def operator_costs(network: RelaxedFusionNetwork, cost_of_op: Mapping[str, float]) -> torch.Tensor:
    """The cost of each operator ``network`` searches, in its γ order."""
    missing = [op for op in network.operators if op not in cost_of_op]
    if missing:
        raise ConfigError(f"no cost for fusion operator(s) {missing}; the LUT must hold them")
    costs = [float(cost_of_op[op]) for op in network.operators]
    return torch.tensor(costs, device=network.gamma[0].device)


def expected_cost(network: RelaxedFusionNetwork, cost_of_op: Mapping[str, float]) -> torch.Tensor:
    """Σ_p Σ_d Σ_f softmax(γ_p[d])_f · cost(f) (eq. 11); differentiable with respect to γ."""
    return (network.op_weights() * operator_costs(network, cost_of_op)).sum()


# --- adapters on tokens --------------------------------------------------------------------------


@torch.no_grad()
def adapter_input(adapter: FeatureAdapter, feature: torch.Tensor) -> torch.Tensor:
    """What ``adapter`` reads of a frozen feature, computed once for a whole split: a map pooled
    to its L positions as tokens (N, L, C_in); a flat vector as it is (N, C_in)."""
    refuse_other_shape(feature.shape[1:], adapter.in_shape, "a feature adapter")
    if adapter.pool is None:
        return feature
    return adapter.pool(feature).flatten(2).transpose(1, 2).contiguous()


def adapt_tokens(adapter: FeatureAdapter, prepared: torch.Tensor) -> torch.Tensor:
    """``adapter``'s output as tokens (B, L, C) from :func:`adapter_input`'s (a batch of it).

    A flat vector is mapped once and then repeated at the L positions (the discrete adapter maps
    each repeat); batch norm then sees the same B·L values per channel, so its statistics and
    running estimates are the discrete adapter's.
    """
    tokens = F.linear(prepared, _matrix(adapter.conv))
    if adapter.pool is None:
        tokens = tokens.unsqueeze(1).expand(-1, adapter.L, -1)
    normalised = adapter.bn(tokens.reshape(-1, adapter.C))
    return torch.relu(normalised).view(-1, adapter.L, adapter.C)
