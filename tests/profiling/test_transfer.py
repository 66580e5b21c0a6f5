"""`hnas lut transfer`: the fit recovers a known mapping, the LUT it writes works everywhere a
LUT does, and bad input is refused before anything is measured or written.

The fit is checked on synthetic networks (the target's "measurement" computed from a known
per-kind scaling of the source), so these tests are exact and fast; one CLI test measures a few
networks for real with a fast timing profile.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import mac_priced_lut, tiny
from conftest import run_search as run_search_on
from rich.console import Console
from test_profiler import FAST_DEVICE, run

from hnas_edge.errors import HnasError
from hnas_edge.profiling.cost import predict
from hnas_edge.profiling.device import DeviceProfile
from hnas_edge.profiling.lut import Lut
from hnas_edge.profiling.lut_transfer import (
    TransferRequest,
    build_lut,
    check_request,
    source_identity,
)
from hnas_edge.profiling.summary import summarize
from hnas_edge.profiling.transfer import (
    UNPRICED,
    choose,
    cross_validate,
    fine_group,
    fit,
    nnls,
)
from hnas_edge.profiling.validate import WholeNetwork, sample_archs
from hnas_edge.space.mmnn import MultimodalArch, arch_parts
from hnas_edge.space.presets import get_preset
from hnas_edge.space.specs import MBConvSpec
from hnas_edge.ui.lut import print_lut_summary, print_transfer

PRESET = get_preset("avmnist")
TARGET = DeviceProfile.from_dict(
    {"name": "target", "runtime": "onnxruntime", "meter": "estimate"}, "test"
)
#: A known mapping: MBConv scaled by kernel, convs, fusion operators one by one.
SCALES = {
    "conv": 2.0,
    "mbconv k3": 1.5,
    "mbconv k5": 2.5,
    "mbconv k7": 4.0,
    "adapter": 3.0,
    "linear": 1.0,
    **{f"fusion {s.op}": 1.0 + 0.5 * i for i, s in enumerate(PRESET.fusion_specs())},
}
PER_PART, INTERCEPT = 0.002, 0.05


def source_lut(tmp_path, spare=()):
    return Lut.load(mac_priced_lut(tmp_path / "source.json", spare))


def parts_of(arch):
    return arch_parts(PRESET, MultimodalArch.from_dict(arch))


def target_latency(source, arch, scales=SCALES, per_part=PER_PART, intercept=INTERCEPT):
    """What the synthetic target 'measures': the source's parts scaled per fine group."""
    parts = parts_of(arch)
    total = 0.0
    for _, spec in parts:
        group = fine_group(spec) if spec.key in source else UNPRICED
        value = source.latency_ms(spec.key) if spec.key in source else spec.macs() / 1e6
        total += scales[group] * value
    return total + per_part * len(parts) + intercept


def networks(source, n, seed=0, **truth):
    return [
        WholeNetwork(arch, target_latency(source, arch, **truth), None)
        for arch in sample_archs("avmnist", n, seed)
    ]


def transferred(tmp_path, source, nets):
    info = {"path": str(tmp_path / "source.json"), "device": "macs", "sha256": "0" * 64}
    return build_lut(source, info, PRESET, TARGET, None, nets)


def test_the_active_set_solver_matches_scipy_with_and_without_free_variables():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    for _ in range(200):
        m, n = rng.integers(2, 15), rng.integers(1, 8)
        a, y = rng.standard_normal((m, n)), rng.standard_normal(m)
        nonneg = rng.random(n) < 0.7
        x = nnls(a, y, nonneg)
        lower = np.where(nonneg, 0.0, -np.inf)
        best = optimize.lsq_linear(a, y, bounds=(lower, np.inf), method="bvls").x
        assert (x[nonneg] >= 0).all()
        assert np.linalg.norm(a @ x - y) <= np.linalg.norm(a @ best - y) + 1e-8


def test_a_known_per_kind_scaling_is_recovered_and_chosen_over_one_global_scale(tmp_path):
    source = source_lut(tmp_path)
    lut, report = transferred(tmp_path, source, networks(source, 40))
    model = report.latency.selection.model
    assert model.grouping == "fine"
    errors = report.latency.selection.loo_error
    assert errors["fine"] < 1e-6 < errors["global"]
    for group in ("conv", "mbconv k3", "mbconv k5", "mbconv k7", "adapter"):
        assert model.scales[group] == pytest.approx(SCALES[group], rel=1e-6), group
    assert model.per_part == pytest.approx(PER_PART, abs=1e-6)
    assert report.latency.held_out.within_5 == 1.0
    # the LUT prices a network it never saw as the target does, through the one cost function
    for arch in sample_archs("avmnist", 5, seed=99):
        truth = target_latency(source, arch)
        assert predict(lut, parts_of(arch)).latency_ms == pytest.approx(truth, rel=1e-6)


def test_one_global_factor_is_fitted_as_one_scale(tmp_path):
    source = source_lut(tmp_path)
    truth = {"scales": dict.fromkeys(SCALES, 2.5), "per_part": 0.0, "intercept": 0.0}
    _, report = transferred(tmp_path, source, networks(source, 20, **truth))
    model = report.latency.selection.model
    assert model.grouping == "global"
    assert model.scales["all"] == pytest.approx(2.5, rel=1e-6)


def test_scales_stay_non_negative_when_the_data_would_pull_one_below_zero():
    rows = [{"a": 1.0 + i, "b": 2.0 - 0.1 * i} for i in range(6)]
    measured = [r["a"] - 0.5 * r["b"] + 3 for r in rows]
    model = fit(rows, [3] * 6, measured, "fine")
    assert min(model.scales.values()) >= 0
    assert model.per_part == 0  # every network has three parts: c is not identifiable


def test_with_few_networks_the_simpler_model_wins_ties():
    rows = [{"conv": 1.0 + i, "mbconv k3": 2.0 * (1.0 + i)} for i in range(5)]
    selection = choose(rows, [2] * 5, [3.0 * (1.0 + i) * 1.1 for i in range(5)])
    assert selection.model.grouping == "global"


def test_cross_validation_predicts_each_network_without_its_own_measurement():
    rng = np.random.default_rng(1)
    rows = [
        {"conv": float(rng.uniform(1, 3)), "mbconv k3": float(rng.uniform(1, 3))} for _ in range(10)
    ]
    counts = [int(rng.integers(5, 9)) for _ in range(10)]
    measured = [
        1.5 * r["conv"] + 0.5 * r["mbconv k3"] + 0.01 * c for r, c in zip(rows, counts, strict=True)
    ]
    first = cross_validate(rows, counts, measured)
    assert first == pytest.approx(measured, rel=1e-6)
    spoiled = [*measured[:3], 100.0, *measured[4:]]
    again = cross_validate(rows, counts, spoiled)
    assert again[3] == pytest.approx(first[3], rel=1e-9)  # its own figure never reaches it


def test_parts_the_source_lacks_are_priced_by_their_macs_and_listed(tmp_path):
    spare = [s.key for s in PRESET.all_specs() if s.kind == "adapter"] + [PRESET.head_spec().key]
    source = source_lut(tmp_path, spare)
    scales = {**SCALES, UNPRICED: 0.4}
    lut, report = transferred(tmp_path, source, networks(source, 40, scales=scales))
    assert report.unpriced == {"adapter": 5, "linear": 1}
    assert lut.extra["transfer"]["unpriced"] == {"adapter": 5, "linear": 1}
    for key in spare:
        origin = lut.entries[key]["origin"]
        assert origin["group"] == UNPRICED and origin["source_unit"] == "MMAC"
    assert report.latency.held_out.within_5 == 1.0


def test_a_source_that_says_nothing_of_the_target_is_flagged(tmp_path):
    """Networks that cost less on the target the more they cost on the source: every scale of
    the source fits to 0, and the report says the LUT does not rest on the source."""
    source = source_lut(tmp_path)
    nets = [
        WholeNetwork(n.arch, 1.0 / n.latency_ms, None)
        for n in networks(source, 20, per_part=0.0, intercept=0.0)
    ]
    lut, report = transferred(tmp_path, source, nets)
    assert "fitted to 0" in report.warnings()[0]
    assert lut.extra["transfer"]["warnings"] == report.warnings()


def test_a_target_its_macs_predict_better_than_the_source_is_priced_by_macs_and_flagged(tmp_path):
    """A source whose figures are noise for the target (as a GPU's eager per-kernel times are for
    a CPU) and a target whose cost follows each part's MACs: the ``macs`` grouping wins, every
    entry is its MACs times its group's cost per MMAC, and the report says the source is unused."""
    rng = np.random.default_rng(3)
    noise = tmp_path / "noise.json"
    Lut(
        device={"name": "noise", "runtime": "r", "precision": "fp32"},
        entries={
            s.key: {"latency_ms": {"median": float(rng.uniform(0.01, 1.0))}}
            for s in PRESET.all_specs()
        },
    ).save(noise)
    source = Lut.load(noise)

    def per_mmac(spec):
        return 0.02 if isinstance(spec, MBConvSpec) else 0.005

    def measured(arch):
        parts = parts_of(arch)
        return sum(per_mmac(s) * s.macs() / 1e6 for _, s in parts) + PER_PART * len(parts)

    nets = [WholeNetwork(a, measured(a), None) for a in sample_archs("avmnist", 40, seed=0)]
    lut, report = transferred(tmp_path, source, nets)
    selection = report.latency.selection
    assert selection.model.grouping == "macs"
    assert selection.loo_error["macs"] < 1e-6
    assert all(selection.loo_error[g] > 0.01 for g in ("global", "kind", "fine"))
    assert "MACs predicted this device better" in report.warnings()[0]
    mbconv = next(s for s in PRESET.all_specs() if isinstance(s, MBConvSpec))
    origin = lut.entries[mbconv.key]["origin"]
    assert origin["source_unit"] == "MMAC" and origin["scale"] == pytest.approx(0.02, rel=1e-6)
    for arch in sample_archs("avmnist", 5, seed=99):
        assert predict(lut, parts_of(arch)).latency_ms == pytest.approx(measured(arch), rel=1e-6)
    console = Console(record=True, width=300)
    print_transfer(console, report, tmp_path / "new.json")
    text = console.export_text()
    assert "latency from the parts' MACs (the source is not used): model macs" in text
    assert "mbconv k3 0.02 ms/MMAC" in text


def test_a_target_that_meters_energy_gets_its_energy_fitted_from_the_source_energy(tmp_path):
    source = source_lut(tmp_path)  # its energy is twice its latency
    truth = {"scales": dict.fromkeys(SCALES, 3.0), "per_part": 0.0, "intercept": 0.0}
    nets = [
        WholeNetwork(n.arch, n.latency_ms, 0.5 * n.latency_ms)  # on the target: 3 × 0.5 × 2
        for n in networks(source, 12, **truth)
    ]
    lut, report = transferred(tmp_path, source, nets)
    assert report.energy is not None and report.energy.basis == "energy"
    assert report.energy.selection.model.scales["all"] == pytest.approx(0.75, rel=1e-6)
    assert not lut.is_estimated_energy()
    arch = sample_archs("avmnist", 1, seed=7)[0]
    cost = predict(lut, parts_of(arch))
    assert cost.energy_mj == pytest.approx(0.5 * target_latency(source, arch, **truth), rel=1e-6)


def test_the_lut_records_its_source_model_and_held_out_report(tmp_path):
    source = source_lut(tmp_path)
    lut, _ = transferred(tmp_path, source, networks(source, 10))
    path = lut.save(tmp_path / "new.json")
    again = Lut.load(path)
    record = again.extra["transfer"]
    assert record["source"]["device"] == "macs" and record["samples"] == 10
    assert set(record["latency"]) >= {"model", "candidates_loo_error", "held_out"}
    assert record["latency"]["held_out"]["n"] == 10  # cross-validated: every network
    assert again.calibration["latency"].fitted_on == 10
    assert {e["origin"]["kind"] for e in again.entries.values()} == {"transferred"}
    assert again.is_estimated_energy()  # the target meters no energy here
    assert again.provenance["versions"]["hnas-edge"]
    console = Console(record=True, width=200)
    print_lut_summary(console, summarize(again), path)
    text = console.export_text()
    assert "origin: transferred (source.json): 57" in text
    assert "transferred from macs" in text


def test_source_identity_names_the_device_and_the_file_hash(tmp_path):
    path = mac_priced_lut(tmp_path / "s.json")
    info = source_identity(Lut.load(path), path)
    assert info["device"] == "macs" and info["origin"] == "measured" and len(info["sha256"]) == 64


def test_a_transferred_lut_goes_through_check_predict_and_show_on_the_command_line(tmp_path):
    source = source_lut(tmp_path)
    lut, _ = transferred(tmp_path, source, networks(source, 10))
    path = lut.save(tmp_path / "new.json")
    assert run("lut", "check", str(path), "--space", "avmnist").returncode == 0
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps(sample_archs("avmnist", 1, seed=5)[0]))
    result = run("lut", "predict", str(path), "--space", "avmnist", "--config", str(arch))
    assert result.returncode == 0, result.stderr
    assert "transferred from macs" in run("lut", "show", str(path)).stdout


@pytest.mark.usefixtures("one_thread")
def test_a_search_runs_unchanged_on_a_transferred_lut(supernets, tmp_path):
    source = source_lut(tmp_path)
    lut, _ = transferred(tmp_path, source, networks(source, 10))
    path = lut.save(tmp_path / "new.json")
    out = tmp_path / "search"
    run_search_on(supernets, path, out, tiny())
    front = json.loads((out / "front.json").read_text())
    assert front["lut"]["device"] == "target" and front["lut"]["accounting"] == "ours"
    assert all(m["latency_ms"] > 0 for m in front["models"])


@pytest.fixture
def device(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text(FAST_DEVICE)
    return str(path)


def test_transfer_measures_networks_and_writes_the_lut(tmp_path, device):
    source = mac_priced_lut(tmp_path / "source.json")
    out = tmp_path / "new.json"
    args = ["--device", device, "--samples", "6", "--out", str(out)]
    result = run("lut", "transfer", str(source), *args)
    assert result.returncode == 0, result.stderr
    assert "6 networks measured end to end" in result.stdout
    lut = Lut.load(out)
    assert lut.device["name"] == "cpu" and lut.extra["transfer"]["samples"] == 6
    assert lut.extra["transfer"]["seconds"] > 0
    # an existing --out is refused in one line, and left as it was
    before = out.read_bytes()
    again = run("lut", "transfer", str(source), *args)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "Traceback" not in again.stderr and out.read_bytes() == before


def test_bad_requests_are_refused_before_measuring(tmp_path):
    source = mac_priced_lut(tmp_path / "source.json")

    def request(**changes):
        base = {"source": source, "device": TARGET, "space": "avmnist", "samples": 10}
        return TransferRequest(**{**base, "out": tmp_path / "o.json", **changes})

    with pytest.raises(HnasError, match="too few"):
        check_request(request(samples=3))
    with pytest.raises(HnasError, match="is the source LUT"):
        check_request(request(out=source, force=True))
    with pytest.raises(HnasError, match="LUT not found"):
        check_request(request(source=tmp_path / "absent.json"))
    with pytest.raises(HnasError, match="unknown space"):
        check_request(request(space="nope"))
    empty = tmp_path / "empty.json"
    Lut(device={"name": "x", "runtime": "r", "precision": "fp32"}).save(empty)
    with pytest.raises(HnasError, match="prices no backbone part"):
        check_request(request(source=empty))
    assert not (tmp_path / "o.json").exists()
