"""`hnas lut validate`'s calibration: the plain a·sum + c·n + b or one scale per kind of part,
whichever predicts the held-out networks better; stored in the LUT and applied by `predict`."""

from __future__ import annotations

import numpy as np
import pytest

from hnas_edge.errors import HnasError
from hnas_edge.profiling.cost import predict
from hnas_edge.profiling.lut import Calibration, Lut, check_lut_dict
from hnas_edge.profiling.validate import held_out_report
from hnas_edge.space.specs import ConvSpec, LinearSpec

GROUPS = ("conv", "mbconv k3", "mbconv k5", "mbconv k7", "adapter", "fusion Sum", "linear")


def networks(n: int, seed: int) -> tuple[list[dict[str, float]], np.ndarray, np.ndarray]:
    """``n`` synthetic networks: their LUT sums per fine group of parts and part counts."""
    rng = np.random.default_rng(seed)
    rows = [{g: float(rng.uniform(0.01, 0.3)) for g in GROUPS} for _ in range(n)]
    return rows, np.array([sum(r.values()) for r in rows]), rng.integers(10, 30, n)


def test_the_per_kind_calibration_is_kept_when_the_device_prices_kinds_differently():
    rows, sums, n_parts = networks(40, seed=0)
    # this device runs MBConvs at 1.6× the LUT's figure but convolutions and fusion at 0.7×
    truth = {"conv": 0.7, "mbconv": 1.6, "adapter": 1.0, "fusion": 0.7, "linear": 1.0}
    noise = np.random.default_rng(1).normal(1.0, 0.01, len(rows))
    measured = (
        np.array([sum(truth[g.split()[0]] * v for g, v in r.items()) for r in rows]) + 0.01
    ) * noise
    report = held_out_report(sums, n_parts, measured, rows)
    assert report.chosen == "per_kind"
    assert report.candidates["per_kind"] < report.candidates["plain"]
    assert report.calibration.grouping in ("kind", "fine")
    assert report.after.within_10 == 1.0
    if report.calibration.grouping == "kind":
        assert report.calibration.scales["mbconv"] == pytest.approx(1.6, rel=0.1)


def test_the_plain_calibration_is_kept_when_one_scale_fits_every_kind():
    rows, sums, n_parts = networks(40, seed=2)
    noise = np.random.default_rng(3).normal(1.0, 0.03, len(rows))
    measured = (1.2 * sums + 0.004 * n_parts + 0.02) * noise
    report = held_out_report(sums, n_parts, measured, rows)
    assert report.chosen == "plain"
    assert report.calibration.grouping is None
    assert set(report.candidates) == {"plain", "per_kind"}


def lut_with(calibration: Calibration) -> Lut:
    def entry(median: float) -> dict:
        return {"latency_ms": {"median": median}, "energy_mj": {"total": 10 * median}}

    lut = Lut(
        device={"name": "cpu", "runtime": "onnxruntime", "precision": "fp32"},
        entries={STEM.key: entry(0.5), HEAD.key: entry(0.1)},
    )
    lut.calibration["latency"] = calibration
    return lut


STEM = ConvSpec((1, 28, 28), 16, 3, 2, True, "h_swish")
HEAD = LinearSpec(80, 10)
PER_KIND = Calibration(1.0, 0.02, 0.001, 20, "kind", {"conv": 0.5, "linear": 2.0})


def test_predict_applies_a_stored_per_kind_calibration():
    cost = predict(lut_with(PER_KIND), [("stem", STEM), ("classifier", HEAD)])
    assert cost.latency_sum_ms == pytest.approx(0.6)  # the entries stay as measured
    assert cost.latency_ms == pytest.approx(0.5 * 0.5 + 2.0 * 0.1 + 0.001 * 2 + 0.02)


def test_a_per_kind_calibration_survives_saving_and_loading(tmp_path):
    path = lut_with(PER_KIND).save(tmp_path / "cpu.json")
    assert Lut.load(path).calibration_for("latency") == PER_KIND


def test_an_old_plain_calibration_still_loads_and_applies():
    lut = Lut.from_dict(lut_with(Calibration(0.5, 0.1, 0.01, 10)).to_dict())
    cost = predict(lut, [("stem", STEM), ("classifier", HEAD)])
    assert cost.latency_ms == pytest.approx(0.5 * 0.6 + 0.01 * 2 + 0.1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grouping": "per-op"}, r"calibration.latency.grouping"),
        ({"scales": {"conv": -1.0}}, r"calibration.latency.scales\['conv'\]"),
        ({"scales": {"conv": float("nan")}}, r"calibration.latency.scales\['conv'\]"),
        ({"grouping": None}, r"calibration.latency.grouping is missing"),
        ({"scales": None}, r"calibration.latency.scales is missing"),
        ({"scales": [1.0]}, r"calibration.latency.scales"),
    ],
)
def test_a_malformed_per_kind_calibration_is_refused_in_one_line(change, message):
    data = lut_with(PER_KIND).to_dict()
    fit = {**data["calibration"]["latency"], **change}
    data["calibration"]["latency"] = {k: v for k, v in fit.items() if v is not None}
    with pytest.raises(HnasError, match=message) as error:
        check_lut_dict(data, "cpu.json")
    assert "\n" not in str(error.value)


def test_a_plain_fit_with_a_slope_of_zero_or_less_is_never_stored():
    rows, sums, n_parts = networks(16, seed=4)
    measured = 2.0 - 0.5 * sums  # networks that get faster as their parts get dearer: noise
    report = held_out_report(sums, n_parts, measured, rows)
    assert report.chosen == "per_kind"  # non-negative scales: always a valid calibration
    with pytest.raises(HnasError, match=r"do not follow the LUT's sums .*nothing written"):
        held_out_report(sums, n_parts, measured)  # energy: no per-kind model to fall back on
