"""The two-tier search end to end, on tiny supernets and a LUT priced from MACs (fixtures in
tests/conftest.py)."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import MULTIBENCH_AUDIO, PRESET, mac_priced_lut, read_front, tiny, write_avmnist_npy
from conftest import run_search as run
from rich.console import Console

from hnas_edge.errors import ConfigError, HnasError
from hnas_edge.search.context import SearchContext, SearchInputs
from hnas_edge.search.engine import SearchProgress, load_state
from hnas_edge.search.evaluate import late_fusion
from hnas_edge.search.evolution import Individual
from hnas_edge.search.plots import error_label
from hnas_edge.search.preflight import check_inputs
from hnas_edge.search.records import CandidateRecord, Cost, FusionResult
from hnas_edge.space.mmnn import MultimodalArch, build_fresh
from hnas_edge.train import checkpoint
from hnas_edge.ui.search import print_search

pytestmark = pytest.mark.usefixtures("one_thread")


def front_of(out):
    return [(m["id"], m["val_metric"], m["latency_ms"]) for m in read_front(out)["models"]]


def test_a_search_writes_the_front_every_candidate_the_models_and_the_plots(finished):
    result = read_front(finished)
    names = {p.name for p in finished.iterdir()}
    assert {"front.json", "candidates.csv", "pareto.png", "hypervolume.png", "models"} <= names
    assert result["lut"]["device"] == "macs" and result["lut"]["accounting"] == "ours"
    assert result["lut"]["batch"] == 1  # its costs are per batch of 1: export builds that graph
    assert len(result["hypervolume"]) == 2
    assert result["hypervolume"][1]["hypervolume"] >= result["hypervolume"][0]["hypervolume"]
    rows = (finished / "candidates.csv").read_text().splitlines()
    assert len(rows) - 1 == result["evaluated"]["stage1"] >= result["evaluated"]["stage2"] > 0
    for model in result["models"]:
        assert 0 <= model["test_metric"] <= 1 and model["latency_ms"] > 0
        assert model["energy_mj"] == pytest.approx(2 * sum_of_parts(model), rel=1e-6)


def test_the_results_name_the_task_metric_they_rank_by(finished):
    """avdigits is multiclass: accuracy (a multi-label dataset would say weighted_f1)."""
    result = read_front(finished)
    assert result["metric"] == "accuracy"
    for entry in [*result["models"], *result["best_unimodal"].values()]:
        assert 0 <= entry["val_metric"] <= 1 and 0 <= entry["test_metric"] <= 1
    with open(finished / "candidates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"metric", "image_val_metric", "audio_val_metric", "val_metric"} <= set(rows[0])
    assert {row["metric"] for row in rows} == {"accuracy"}
    console = Console(record=True, width=200)
    print_search(console, result, finished)
    assert "val accuracy" in console.export_text()


def test_an_error_axis_says_which_metric_it_is_one_minus():
    assert error_label("weighted_f1") == "validation error (1 − weighted F1) %"
    assert error_label("accuracy") == "validation error (1 − accuracy) %"


def test_a_search_state_of_an_older_format_is_refused_with_the_settings_message(
    supernets, lut, tmp_path
):
    """Format 1 ranked on val_acc; its records cannot be read as the task's metric."""
    (tmp_path / "state.json").write_text(json.dumps({"format": 1, "settings": tiny().to_dict()}))
    inputs = SearchInputs(supernets, "avdigits", None, lut, tiny(), tmp_path)
    with pytest.raises(HnasError, match="other settings"):
        load_state(inputs, resume=True)


def sum_of_parts(model):
    from hnas_edge.space.mmnn import arch_parts

    arch = MultimodalArch.from_dict(model["architecture"])
    return sum(1e-3 + spec.macs() * 1e-8 for _, spec in arch_parts(PRESET, arch))


def test_the_front_is_mutually_non_dominated(finished):
    models = read_front(finished)["models"]
    points = [(1 - m["val_metric"], m["latency_ms"], m["energy_mj"]) for m in models]
    for p in points:
        for q in points:
            dominates = all(a <= b for a, b in zip(q, p, strict=True)) and q != p
            assert not dominates


def test_a_front_model_checkpoint_rebuilds_the_network_for_export(finished):
    model = read_front(finished)["models"][0]
    saved = checkpoint.load(finished / model["checkpoint"])  # weights_only
    arch = MultimodalArch.from_dict(json.loads(saved["architecture"]))
    net = build_fresh(PRESET, arch)
    net.load_state_dict(saved["state_dict"])  # strict: every weight is there
    inputs = net.eval().example_inputs(batch=2)
    assert net(*inputs.values()).shape == (2, 10)


def test_the_same_seed_gives_the_same_front(supernets, lut, finished, tmp_path):
    run(supernets, lut, tmp_path / "again", tiny())
    assert front_of(tmp_path / "again") == front_of(finished)


class Killed(Exception):
    pass


class KillAtSecondGeneration(SearchProgress):
    def generation(self, done, total, detail=""):
        if done == 1:
            raise Killed


def test_a_killed_search_resumes_to_the_same_front(supernets, lut, finished, tmp_path):
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        run(supernets, lut, out, tiny(), progress=KillAtSecondGeneration())
    assert json.loads((out / "state.json").read_text())["generation"] == 1
    with pytest.raises(HnasError, match="pass --resume"):
        run(supernets, lut, out, tiny())
    with pytest.raises(HnasError, match="other settings"):
        run(supernets, lut, out, tiny(seed=1), resume=True)
    run(supernets, lut, out, tiny(), resume=True)
    assert front_of(out) == front_of(finished)


class KillAfterFirstCandidate(SearchProgress):
    def candidates(self, done, total, detail=""):
        if done == 1:
            raise Killed


def test_a_search_killed_mid_generation_fuses_the_same_candidates_on_resume(
    supernets, lut, finished, tmp_path
):
    """The candidates a generation fused before the kill keep their place in its budget: the
    resumed generation fuses the rest of the same ones, not the next ones in the ranking."""
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        run(supernets, lut, out, tiny(), progress=KillAfterFirstCandidate())
    run(supernets, lut, out, tiny(), resume=True)
    state = json.loads((out / "state.json").read_text())
    assert [h["fused_new"] for h in state["hypervolume"]] == [3, 3]
    assert front_of(out) == front_of(finished)


def test_fixed_backbones_and_fixed_fusion_are_the_hand_picked_network(supernets, lut, tmp_path):
    result = run(supernets, lut, tmp_path / "fbff", tiny("fb-ff"))
    (model,) = result["models"]  # nothing to search: one network
    arch = MultimodalArch.from_dict(model["architecture"])
    assert arch.backbones == {m: s.max_config() for m, s in PRESET.backbones}
    assert arch.genotype == late_fusion(PRESET)


def test_fixed_backbones_with_searched_fusion_only_change_the_fusion(supernets, lut, tmp_path):
    run(supernets, lut, tmp_path / "fbsf", tiny("fb-sf"))
    state = json.loads((tmp_path / "fbsf" / "state.json").read_text())
    backbones = {json.dumps(r["individual"]["backbones"]) for r in state["records"].values()}
    assert len(backbones) == 1
    fused = [r for r in state["records"].values() if r["fusion"]]
    assert len(fused) == 6  # 3 untried fusion macro-architectures per generation, not the same 3
    assert (
        len(
            {
                (r["individual"]["cells"], r["individual"]["nodes"])
                for r in state["records"].values()
            }
        )
        > 1
    )


def test_every_generation_fuses_its_budget_of_candidates_never_fused_before(finished):
    """population 6 × quartile 0.5: three new candidates per generation, none fused twice."""
    state = json.loads((finished / "state.json").read_text())
    assert [h["fused_new"] for h in state["hypervolume"]] == [3, 3]
    assert [h["fused"] for h in state["hypervolume"]] == [3, 6]
    generations = [r["fusion"]["generation"] for r in state["records"].values() if r["fusion"]]
    assert sorted(generations) == [0, 0, 0, 1, 1, 1]


class Notes(SearchProgress):
    def __init__(self):
        self.notes = []

    def note(self, text):
        self.notes.append(text)


def test_a_generation_without_enough_new_candidates_says_so(supernets, lut, tmp_path):
    """With fixed backbones and fixed fusion every individual is the same network: one to fuse
    in the first generation, none after; the run says so instead of silently fusing fewer."""
    progress = Notes()
    run(supernets, lut, tmp_path / "fbff", tiny("fb-ff"), progress=progress)
    state = json.loads((tmp_path / "fbff" / "state.json").read_text())
    assert [h["fused_new"] for h in state["hypervolume"]] == [1, 0]
    assert len(progress.notes) == 2
    assert "1 new candidates for stage 2 (budget 3)" in progress.notes[0]


def test_the_elites_are_the_best_half_of_the_stage2_budget():
    from hnas_edge.search.engine import Search

    class Budget:
        stage2_budget = 8
        config = tiny()
        mode = tiny().run_mode

    def fused(i):
        """Each more accurate and slower than the last: all on the front."""
        arch = MultimodalArch(PRESET.name, {}, 1, 1 + i)
        result = FusionResult(0, arch, 0.5 + 0.01 * i, Cost(1.0 + i, 1.0 + i, False), (), (), 0, {})
        return CandidateRecord(str(i), 0, Individual({}, 1, 1 + i), {}, result)

    assert len(Search.elites(Budget(), [fused(i) for i in range(10)])) == 4


def test_a_lut_that_cannot_price_the_space_is_refused_before_any_work(supernets, tmp_path):
    head = PRESET.head_spec().key
    partial = mac_priced_lut(tmp_path / "partial.json", spare={head})
    inputs = SearchInputs(supernets, "avdigits", None, partial, tiny(), tmp_path / "out")
    with pytest.raises(HnasError, match="lacks 1 of the"):
        check_inputs(inputs)
    assert not (tmp_path / "out").exists()


def test_samples_of_other_sizes_than_the_supernets_take_are_refused_before_any_work(
    supernets, lut, tmp_path
):
    multibench = write_avmnist_npy(tmp_path / "avmnist", audio_size=112)
    inputs = SearchInputs(supernets, "avmnist", str(multibench), lut, tiny(), tmp_path / "out")
    with pytest.raises(ConfigError, match=MULTIBENCH_AUDIO):
        check_inputs(inputs)
    with pytest.raises(ConfigError, match=MULTIBENCH_AUDIO):
        SearchContext(inputs)  # what every worker builds: it does not run on them either
    assert not (tmp_path / "out").exists()


def test_supernets_of_another_space_are_refused_in_one_line(lut, tmp_path):
    (tmp_path / "memes").mkdir()
    (tmp_path / "memes" / "train.json").write_text(json.dumps({"preset": "memes"}))
    inputs = SearchInputs(tmp_path / "memes", "avdigits", None, lut, tiny(), tmp_path / "out")
    with pytest.raises(HnasError, match="holds supernets of the memes space; dataset avdigits "
                       "searches avmnist"):  # fmt: skip
        check_inputs(inputs)


def test_a_process_pool_finds_the_same_front_as_one_process(supernets, lut, finished, tmp_path):
    run(supernets, lut, tmp_path / "pool", tiny(), workers=2)
    assert front_of(tmp_path / "pool") == front_of(finished)
