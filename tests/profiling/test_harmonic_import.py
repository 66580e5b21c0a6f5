"""Importing the Harmonic-NAS published tables: key mapping, both value styles, refusals.

The tests write tiny tables in the published format themselves (the real ones are not ours to
ship); the keys below are the format's, field for field.
"""

from __future__ import annotations

import json

import pytest

from hnas_edge.errors import HnasError
from hnas_edge.profiling.harmonic_import import import_tables, paper_key, parse_key
from hnas_edge.profiling.lut import Lut
from hnas_edge.space.presets import get_preset

STEM = "ConvLayer-input:1_1_28_28-in_ch:1-out_ch:16-kernel:3-stride:2-use_se:0-use_bn:1"
FIRST = (
    "MBConvLayer-input:1_16_14_14-in_ch:16-out_ch:16-mid_ch:0-expand:1-kernel:3-stride:1-use_se:0"
)
BLOCK = (
    "MBConvLayer-input:1_16_14_14-in_ch:16-out_ch:24-mid_ch:48-expand:3-kernel:5-stride:2-use_se:0"
)
FINAL = "ConvLayer-input:1_24_7_7-in_ch:24-out_ch:40-kernel:1-stride:1-use_se:0-use_bn:1"
MIX = "ConvLayer-input:1_40_1_1-in_ch:40-out_ch:80-kernel:1-stride:1-use_se:0-use_bn:0"
HEAD = "LinearLayer-input:80-in_ch:80-out_ch:10"
IMAGENET = "LinearLayer-input:1536-in_ch:1536-out_ch:1000"
FUSION = "ConcatFC-input:1_192_16-N:1-C:192-L:16"


def table(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_every_backbone_key_of_our_presets_renders_in_their_format_and_parses_back():
    for spec in get_preset("avmnist").required_specs("paper"):
        kind, fields = parse_key(paper_key(spec))
        assert fields["input"].startswith("1_") or kind == "LinearLayer"


def test_both_value_styles_import_onto_our_canonical_keys(tmp_path):
    backbone = table(tmp_path, "lut_ofa_mnist_tx2.json", {
        STEM: {"lat": "0.4857", "enrg": "0.7"}, BLOCK: {"lat": "0.9199", "enrg": "1.5"},
        FINAL: {"lat": "0.5093", "enrg": "0.6"}, MIX: {"lat": "0.4345", "enrg": "0.5"},
        HEAD: {"lat": "0.1435", "enrg": "0.2"},
    })  # fmt: skip
    fusion = table(tmp_path, "lut_fusion_tx2.json", {FUSION: {"lat": 0.52, "enrg": 1.02}})
    result = import_tables([backbone], fusion, "tx2")
    lut = result.lut
    assert result.unmapped == []
    stem = get_preset("avmnist").backbone("image").stem_spec()
    assert lut.latency_ms(stem.key) == pytest.approx(0.4857)
    entry = lut.entries[stem.key]
    assert entry["origin"]["kind"] == "imported"
    assert entry["origin"]["source"] == "lut_ofa_mnist_tx2.json"
    assert entry["energy_mj"] == {"total": 0.7, "dynamic": None, "source": "published"}
    assert lut.latency_ms("fusion|op=ConcatFC|C=192|L=16") == pytest.approx(0.52)
    # the feature-mix key carries no activation: our macro-architecture supplies h_swish
    assert "conv|in_shape=40x1x1|out_ch=80|kernel=1|stride=1|use_bn=0|act=h_swish|pool=0" in lut


def test_a_key_of_no_space_of_ours_is_listed_not_dropped(tmp_path):
    backbone = table(tmp_path, "t.json", {STEM: {"lat": "1"}, IMAGENET: {"lat": "0.3"}})
    result = import_tables([backbone], None, "tx2")
    assert result.unmapped == [IMAGENET]
    assert len(result.lut) == 1
    assert result.lut.extra["imported"]["unmapped"] == [IMAGENET]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ({STEM: {"enrg": "1"}}, "has no 'lat' value"),
        ({"ConvLayer-input:1_1_28_28-kernel3": {"lat": "1"}}, "is not name:value"),
        ({"Dense-input:80": {"lat": "1"}}, "unknown layer type 'Dense'"),
        ({STEM: {"lat": "-0.5"}}, "must be a non-negative number"),
        ({STEM: {"lat": "fast"}}, "is not a number"),
    ],
)
def test_a_malformed_table_is_refused_in_one_line_and_nothing_is_written(
    tmp_path, content, message
):
    import os
    import subprocess
    import sys

    path = table(tmp_path, "bad.json", content)
    out = tmp_path / "out.json"
    with pytest.raises(HnasError, match=message):
        import_tables([path], None, "tx2")
    result = subprocess.run(
        [sys.executable, "-c", "from hnas_edge.cli import main; main()", "lut", "import",
         "harmonic-nas", "--backbone", str(path), "--device", "tx2", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_an_imported_lut_prices_a_backbone_as_the_paper_does(tmp_path):
    """Table 7's accounting: stem + first + active blocks + final + mix + classifier."""
    space = get_preset("avmnist").backbone("image")
    config = {"ks": [5, 5, 5, 7], "e": [3, 6, 4, 3], "d": [2]}
    values = {paper_key(spec): {"lat": "0.5", "enrg": "1.0"} for _, spec in space.parts(config)}
    lut = import_tables([table(tmp_path, "t.json", values)], None, "tx2").lut
    from hnas_edge.profiling.cost import predict

    cost = predict(lut, space.parts(config))
    assert cost.n_parts == 7 and cost.latency_sum_ms == pytest.approx(3.5)
    assert isinstance(Lut.from_dict(lut.to_dict()), Lut)
