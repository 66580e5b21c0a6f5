"""The LUT file: strict loading, atomic saving, merging shards, predicting network cost."""

import json

import pytest

from hnas_edge.errors import HnasError
from hnas_edge.profiling.cost import predict
from hnas_edge.profiling.fidelity import fidelity, fit_calibration, spearman
from hnas_edge.profiling.lut import SCHEMA, Calibration, Lut, merge
from hnas_edge.profiling.summary import summarize
from hnas_edge.space.specs import ConvSpec, LinearSpec


def entry(median, std=0.01, energy=None, estimate=False):
    out = {
        "latency_ms": {
            "median": median,
            "p10": median,
            "p90": median,
            "mean": median,
            "std": std,
            "n": 100,
        }
    }
    if energy is not None:
        out["energy_mj"] = {
            "total": energy,
            "dynamic": energy / 2,
            "source": "test",
            "estimate": estimate,
        }
    return out


def make_lut(entries, name="cpu"):
    return Lut(
        device={"name": name, "runtime": "onnxruntime", "precision": "fp32"}, entries=entries
    )


STEM = ConvSpec((1, 28, 28), 16, 3, 2, True, "h_swish")
HEAD = LinearSpec(80, 10)


def test_save_then_load_round_trips(tmp_path):
    lut = make_lut({STEM.key: entry(0.5, energy=1.0), HEAD.key: entry(0.1)})
    lut.calibration["latency"] = Calibration(a=0.9, b=0.01, c=0.002, fitted_on=20)
    path = lut.save(tmp_path / "cpu.json")
    again = Lut.load(path)
    assert again.entries == lut.entries
    assert again.calibration_for("latency") == Calibration(0.9, 0.01, 0.002, 20)
    assert json.loads(path.read_text())["schema"] == SCHEMA


def test_saving_leaves_no_temporary_files(tmp_path):
    make_lut({HEAD.key: entry(0.1)}).save(tmp_path / "lut.json")
    assert [p.name for p in tmp_path.iterdir()] == ["lut.json"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "other/2", "device": {"name": "x"}, "entries": {}}', "schema is 'other/2'"),
        ('{"schema": "hnas-lut/1", "entries": {}}', "device is missing"),
        ('{"schema": "hnas-lut/1", "device": {"name": "x"}}', "entries"),
        (
            '{"schema": "hnas-lut/1", "device": {"name": "x"}, "entries": {"k": {}}}',
            "latency_ms = None; allowed: an object",
        ),
        (
            '{"schema": "hnas-lut/1", "device": {"name": "x"}, '
            '"entries": {"k": {"latency_ms": {"median": -1}}}}',
            "entries['k'].latency_ms.median = -1; allowed: a finite number > 0",
        ),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_malformed_luts_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(HnasError) as info:
        Lut.load(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_lut_names_the_path(tmp_path):
    with pytest.raises(HnasError, match="not found"):
        Lut.load(tmp_path / "absent.json")


def test_merging_two_shards_gives_the_union_and_keeps_the_steadier_duplicate():
    first = make_lut({"a": entry(1.0), "shared": entry(2.0, std=0.5)})
    second = make_lut({"b": entry(3.0), "shared": entry(2.1, std=0.05)})
    merged, both = merge(first, second)
    assert set(merged.entries) == {"a", "b", "shared"}
    assert both == ["shared"]
    assert merged.entries["shared"]["latency_ms"]["median"] == 2.1


def test_luts_of_different_devices_do_not_merge():
    with pytest.raises(HnasError, match="different targets"):
        merge(make_lut({}, "cpu"), make_lut({}, "agx"))


def test_predict_sums_parts_and_applies_the_calibration():
    lut = make_lut({STEM.key: entry(0.5, energy=2.0), HEAD.key: entry(0.1, energy=1.0)})
    parts = [("stem", STEM), ("classifier", HEAD)]
    raw = predict(lut, parts)
    assert raw.latency_sum_ms == pytest.approx(0.6)
    assert raw.latency_ms == pytest.approx(0.6)
    assert raw.energy_mj == pytest.approx(3.0)
    assert not raw.calibrated

    lut.calibration["latency"] = Calibration(a=0.5, b=0.1, c=0.01, fitted_on=10)
    calibrated = predict(lut, parts)
    assert calibrated.latency_ms == pytest.approx(0.5 * 0.6 + 0.01 * 2 + 0.1)
    assert calibrated.calibrated


def test_predict_names_missing_keys_and_how_to_fill_them():
    lut = make_lut({HEAD.key: entry(0.1)})
    with pytest.raises(HnasError, match=r"lacks 1 key.*--resume"):
        predict(lut, [("stem", STEM), ("classifier", HEAD)])


def test_predicted_energy_is_flagged_when_any_entry_is_an_estimate():
    lut = make_lut({HEAD.key: entry(0.1, energy=0.5, estimate=True)})
    assert predict(lut, [("classifier", HEAD)]).energy_is_estimate


def test_estimated_energy_follows_the_latency_calibration():
    lut = make_lut({HEAD.key: entry(0.1, energy=1.5, estimate=True)})  # 15 W × 0.1 ms
    lut.calibration["latency"] = Calibration(a=0.5, b=0.0, c=0.0, fitted_on=10)
    cost = predict(lut, [("classifier", HEAD)])
    assert cost.latency_ms == pytest.approx(0.05)
    assert cost.energy_mj == pytest.approx(0.75)  # still 15 W, over the calibrated time


def test_measured_energy_is_not_rescaled_by_the_latency_calibration():
    lut = make_lut({HEAD.key: entry(0.1, energy=1.5)})
    lut.calibration["latency"] = Calibration(a=0.5, b=0.0, c=0.0, fitted_on=10)
    assert predict(lut, [("classifier", HEAD)]).energy_mj == pytest.approx(1.5)


def test_spearman_matches_a_hand_computed_value():
    # ranks x: 1 2 3 4 5, y: 2 1 4 3 5 -> d^2 = 1+1+1+1+0 = 4 -> 1 - 6*4/(5*24) = 0.8
    assert spearman([1, 2, 3, 4, 5], [20, 10, 40, 30, 50]) == pytest.approx(0.8)


def test_fidelity_counts_predictions_inside_each_band():
    result = fidelity(predicted=[1.04, 1.08, 1.2, 0.97], measured=[1, 1, 1, 1])
    assert result.within_5 == pytest.approx(0.5)
    assert result.within_10 == pytest.approx(0.75)


def test_calibration_fit_recovers_a_known_linear_relation():
    sums = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    parts = [5, 7, 6, 9, 8, 10]
    measured = [0.8 * s - 0.01 * k + 0.2 for s, k in zip(sums, parts, strict=True)]
    cal = fit_calibration(sums, parts, measured)
    assert (cal.a, cal.c, cal.b) == pytest.approx((0.8, -0.01, 0.2), abs=1e-9)
    assert cal.fitted_on == 6


def test_calibration_without_varying_part_counts_fits_a_and_b_only():
    cal = fit_calibration([1.0, 2.0, 4.0], [3, 3, 3], [1.5, 2.5, 4.5])
    assert (cal.a, cal.b, cal.c) == pytest.approx((1.0, 0.5, 0.0))


def test_the_summary_reports_the_spread_retries_judge_not_stall_inflated_std():
    stalled = entry(0.02, std=0.01)  # a few stalls: std is half the median
    stalled["latency_ms"]["robust_cv"] = 0.03  # the bulk is tight
    imported = entry(0.04, std=0.004)  # a published table: std only
    summary = summarize(make_lut({"a": stalled, "b": imported}))
    assert summary.cv_quantiles["max"] == pytest.approx(0.1)
    assert summary.cv_quantiles["p50"] == pytest.approx(0.065)
