"""The fit behind `hnas lut transfer`: a source LUT's part costs mapped onto a target device.

Pure functions of numbers, no measuring. For every network measured on the target, the source's
costs of its parts are summed per *group* of parts (a column each); the model is

    measured ≈ Σ_g s_g · X_g + c · n_parts + b,      s_g ≥ 0,

one non-negative scale per group, a per-part overhead ``c`` and an intercept ``b`` (both of either
sign: a part measured alone pays a call overhead that a whole network pays once, so ``c`` is
often negative). Parts the source does not price (an imported paper table has no adapters and no
shared head) form the group :data:`UNPRICED`, whose column is their MACs in millions instead of a
source cost: its scale is a cost per MMAC on the target.

Candidate groupings, coarse to fine:

- ``global``: every priced part shares one scale (the source is right up to a factor);
- ``kind``: one scale per spec kind (conv, mbconv, linear, maxout, adapter, fusion);
- ``fine``: as ``kind``, but MBConv split by kernel and squeeze-excitation and one scale per
  fusion operator;
- ``macs``: the source is not used; every part is priced by its MACs, one cost per MMAC per fine
  group (columns :func:`macs_column`). It is the fallback for a source that says little of the
  target (a GPU's eager per-kernel figures for a CPU): measured on a 2-core CPU from the paper's
  TX2 table with 20 networks, 89% within ±10% against 65% for ``fine`` (docs/luts.md). Listed
  last, it wins only where it beats every grouping of the source by :data:`SIMPLER_WITHIN`.

The fit minimises relative error (rows weighted by 1/measured, as the calibration of
:func:`hnas_edge.profiling.fidelity.fit_calibration`), so small and large networks count alike.
The grouping is chosen by leave-one-out error on the networks fitted: the simplest candidate
whose error is within :data:`SIMPLER_WITHIN` of the lowest wins, since with ten networks a
dozen scales fit the noise as readily as the device.

Fidelity is reported by :func:`cross_validate`: every network is predicted by a model chosen and
fitted without it. The model kept is then chosen and fitted on all networks, so the reported
figures are, if anything, pessimistic for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hnas_edge.space.specs import FusionOpSpec, LayerSpec, MBConvSpec

#: The grouping that prices parts by their MACs alone (the source unused).
MACS = "macs"
GROUPINGS = ("global", "kind", "fine", MACS)
UNPRICED = "unpriced (per MMAC)"
ALL = "all"
#: The suffix of a MACs column's name (:func:`macs_column`).
PER_MMAC = " per MMAC"
#: A finer grouping must beat the simplest one within this factor of its leave-one-out error.
SIMPLER_WITHIN = 1.10
#: Folds of the cross-validation that reports a transfer's fidelity.
FOLDS = 5


def fine_group(spec: LayerSpec) -> str:
    """The finest group a part of the source falls in (the ``fine`` grouping's column)."""
    if isinstance(spec, MBConvSpec):
        return f"mbconv k{spec.kernel}" + (" se" if spec.use_se else "")
    if isinstance(spec, FusionOpSpec):
        return f"fusion {spec.op}"
    return spec.kind


def macs_column(fine: str) -> str:
    """The column of the MACs (in millions) of a fine group's parts: the ``macs`` grouping's."""
    return fine + PER_MMAC


def is_macs_column(name: str) -> bool:
    return name.endswith(PER_MMAC)


def in_mmac(column: str) -> bool:
    """Whether a column holds MACs in millions (:data:`UNPRICED` or a ``macs`` column), not the
    source's figures."""
    return column == UNPRICED or is_macs_column(column)


def group_of(fine: str, grouping: str) -> str | None:
    """The column a fine group (or a MACs column) belongs to under ``grouping``; None where the
    grouping does not use it (the source's figures under ``macs``, MACs columns elsewhere)."""
    if (grouping == MACS) != is_macs_column(fine):
        return None
    if grouping == MACS or fine == UNPRICED:
        return fine
    if grouping == "global":
        return ALL
    if grouping == "kind":
        return fine.split(" ", 1)[0]
    return fine


@dataclass(frozen=True)
class TransferModel:
    """A fitted mapping: scales per group (ms per source ms, or per MMAC for the unpriced),
    ``per_part`` (c) and ``intercept`` (b), in the target's unit (ms or mJ)."""

    grouping: str
    scales: dict[str, float]
    per_part: float
    intercept: float
    fitted_on: int

    def scale_of(self, fine: str) -> float:
        group = group_of(fine, self.grouping)
        return 0.0 if group is None else self.scales.get(group, 0.0)

    def predict(self, columns: Mapping[str, float], n_parts: int) -> float:
        """One network from its fine-group sums."""
        total = sum(self.scale_of(g) * v for g, v in columns.items())
        return total + self.per_part * n_parts + self.intercept

    def to_dict(self) -> dict[str, object]:
        return {
            "grouping": self.grouping,
            "scales": self.scales,
            "per_part": self.per_part,
            "intercept": self.intercept,
            "fitted_on": self.fitted_on,
        }


@dataclass(frozen=True)
class Selection:
    """The model chosen and every candidate's leave-one-out mean relative error."""

    model: TransferModel
    loo_error: dict[str, float] = field(default_factory=dict)


def nnls(
    a: np.ndarray, y: np.ndarray, nonneg: Sequence[bool], max_iter: int | None = None
) -> np.ndarray:
    """Least squares ``min ‖a·x − y‖`` with ``x_i ≥ 0`` where ``nonneg[i]``, the others free.

    Lawson and Hanson's active-set method, extended to free variables: they start (and stay) in
    the passive set; a constrained variable enters when the gradient favours it and leaves when an
    interpolation step would take it below zero.
    """
    a = np.asarray(a, dtype=float)
    y = np.asarray(y, dtype=float)
    n = a.shape[1]
    constrained = np.asarray(nonneg, dtype=bool)
    passive = ~constrained
    tol = 1e-10 * max(1.0, float(np.abs(a).max(initial=0.0)) * float(np.abs(y).max(initial=0.0)))
    x = _solve(a, y, passive)
    for _ in range(max_iter or 3 * n + 10):
        gradient = a.T @ (y - a @ x)
        entering = constrained & ~passive & (gradient > tol)
        if not entering.any():
            break
        passive[np.argmax(np.where(entering, gradient, -np.inf))] = True
        while True:
            z = _solve(a, y, passive)
            bad = constrained & passive & (z <= 0)
            if not bad.any():
                x = z
                break
            step = np.min(x[bad] / (x[bad] - z[bad]))
            x = x + step * (z - x)
            leaving = constrained & passive & (x <= tol)
            if not leaving.any():  # numerical guard: drop the most negative
                leaving = bad & (z == z[bad].min())
            passive &= ~leaving
            x[~passive] = 0.0
    return x


def _solve(a: np.ndarray, y: np.ndarray, passive: np.ndarray) -> np.ndarray:
    x = np.zeros(a.shape[1])
    if passive.any():
        x[passive] = np.linalg.lstsq(a[:, passive], y, rcond=None)[0]
    return x


def _columns(rows: Sequence[Mapping[str, float]], grouping: str) -> tuple[list[str], np.ndarray]:
    used = {group_of(fine, grouping) for row in rows for fine in row} - {None}
    names = sorted(used, key=lambda g: (g == UNPRICED, g))
    matrix = np.zeros((len(rows), len(names)))
    for i, row in enumerate(rows):
        for fine, value in row.items():
            group = group_of(fine, grouping)
            if group is not None:
                matrix[i, names.index(group)] += value
    return names, matrix


def fit(
    rows: Sequence[Mapping[str, float]],
    n_parts: Sequence[int],
    measured: Sequence[float],
    grouping: str,
) -> TransferModel:
    """Fit one grouping on networks given as fine-group sums, part counts and measurements.

    Where every network has the same number of parts ``c`` is not identifiable and stays 0.
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping {grouping!r} is not one of {GROUPINGS}")
    names, matrix = _columns(rows, grouping)
    counts = np.asarray(n_parts, dtype=float)
    target = np.asarray(measured, dtype=float)
    use_parts = len(counts) > 1 and np.ptp(counts) > 0
    extra = [counts, np.ones_like(counts)] if use_parts else [np.ones_like(counts)]
    design = np.column_stack([matrix, *extra]) / target[:, None]
    coef = nnls(design, np.ones_like(target), [True] * len(names) + [False] * len(extra))
    scales = {name: float(v) for name, v in zip(names, coef, strict=False)}
    per_part = float(coef[len(names)]) if use_parts else 0.0
    return TransferModel(grouping, scales, per_part, float(coef[-1]), len(target))


def loo_error(
    rows: Sequence[Mapping[str, float]],
    n_parts: Sequence[int],
    measured: Sequence[float],
    grouping: str,
) -> float:
    """Mean |relative error| of each network predicted by the model fitted on the others."""
    errors = []
    for i in range(len(rows)):
        keep = [j for j in range(len(rows)) if j != i]
        model = fit(
            [rows[j] for j in keep],
            [n_parts[j] for j in keep],
            [measured[j] for j in keep],
            grouping,
        )
        errors.append(abs(model.predict(rows[i], n_parts[i]) - measured[i]) / measured[i])
    return float(np.mean(errors))


def choose(
    rows: Sequence[Mapping[str, float]],
    n_parts: Sequence[int],
    measured: Sequence[float],
    groupings: Sequence[str] = GROUPINGS,
) -> Selection:
    """Fit every candidate grouping, keep the simplest whose leave-one-out error is within
    :data:`SIMPLER_WITHIN` of the lowest (``global`` alone below three networks)."""
    if len(rows) < 3:
        return Selection(fit(rows, n_parts, measured, groupings[0]))
    errors = {g: loo_error(rows, n_parts, measured, g) for g in groupings}
    best = min(errors.values())
    winner = next(g for g in groupings if errors[g] <= best * SIMPLER_WITHIN + 1e-12)
    return Selection(fit(rows, n_parts, measured, winner), errors)


def cross_validate(
    rows: Sequence[Mapping[str, float]],
    n_parts: Sequence[int],
    measured: Sequence[float],
    folds: int = FOLDS,
) -> list[float]:
    """Each network's prediction by the model :func:`choose` picks and fits without it.

    Fold ``k`` holds the networks ``i`` with ``i % folds == k`` (``folds`` at most the number of
    networks); the whole procedure, the choice of grouping included, runs on the others.
    """
    folds = min(folds, len(rows))
    predicted = [0.0] * len(rows)
    for k in range(folds):
        held = [i for i in range(len(rows)) if i % folds == k]
        keep = [i for i in range(len(rows)) if i % folds != k]
        model = choose(
            [rows[i] for i in keep], [n_parts[i] for i in keep], [measured[i] for i in keep]
        ).model
        for i in held:
            predicted[i] = model.predict(rows[i], n_parts[i])
    return predicted
