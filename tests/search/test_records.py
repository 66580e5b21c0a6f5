"""The search's typed records become dicts only in its files: what they read back they write
again as the same text, keys in the same order (fixture in tests/conftest.py: a tiny search)."""

from __future__ import annotations

import json

from conftest import tiny

from hnas_edge.search.engine import SearchState
from hnas_edge.search.records import BackboneKey, BackboneScore, Cost, SearchResult


def same_text(a, b):
    return json.dumps(a) == json.dumps(b)  # order-sensitive, unlike ==


def test_a_search_state_read_and_written_back_is_the_same_text(finished):
    data = json.loads((finished / "state.json").read_text())
    state = SearchState.from_dict(data)
    assert same_text(state.to_dict(tiny()), data)
    fused = state.fused()
    assert fused and all(r.fusion.generation in (0, 1) for r in fused)
    assert all(isinstance(k, BackboneKey) for k in state.backbone_scores)


def test_the_front_read_and_written_back_is_the_same_text(finished):
    data = json.loads((finished / "front.json").read_text())
    result = SearchResult.from_dict(data)
    assert same_text(result.to_dict(), data)
    assert [m.id for m in result.models] == [m["id"] for m in data["models"]]


def test_a_backbone_key_is_the_modality_and_the_config_as_canonical_json():
    key = BackboneKey.of("image", {"ks": [3], "e": [4], "d": [2]})
    assert key.text == 'image:{"d": [2], "e": [4], "ks": [3]}'
    assert BackboneKey.parse(key.text) == key
    assert key.config == {"d": [2], "e": [4], "ks": [3]}


def test_a_backbone_the_paper_accounting_does_not_price_keeps_its_record():
    """A fixed backbone under the paper's accounting: zero cost, ``priced`` false, and no
    ``energy_is_estimate`` (what such a record has always held)."""
    score = BackboneScore(0.5, Cost.unpriced())
    record = {"val_metric": 0.5, "latency_ms": 0.0, "energy_mj": 0.0, "calibrated": False,
              "priced": False}  # fmt: skip
    assert same_text(score.to_dict(), record)
    assert BackboneScore.from_dict(record) == score
