"""The modality space interface, and layer specs that build without importing upward."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest

import hnas_edge.space
from hnas_edge.errors import ConfigError
from hnas_edge.space.maxout import MaxoutBackbone, MaxoutSpace
from hnas_edge.space.modality import ModalityNetwork, ModalitySpace
from hnas_edge.space.ofa import OFASupernet, StaticBackbone
from hnas_edge.space.presets import PRESETS, get_preset

SPACE_DIR = Path(hnas_edge.space.__file__).parent


def every_space() -> list[tuple[str, ModalitySpace]]:
    return [(f"{p}.{m}", s) for p in PRESETS for m, s in get_preset(p).backbones]


@pytest.mark.parametrize(("name", "space"), every_space(), ids=lambda v: str(v))
def test_every_preset_backbone_is_a_modality_space_whose_supernet_is_a_modality_network(
    name, space
):
    assert isinstance(space, ModalitySpace)
    assert isinstance(space.supernet(), ModalityNetwork)
    assert space.validate_config(space.sample_config(0)) == space.sample_config(0)


def test_the_two_kinds_differ_only_through_the_interface():
    image, text = get_preset("memes").backbone("image"), get_preset("memes").backbone("text")
    assert (image.elastic, text.elastic) == (True, False)
    assert (image.label, text.label) == ("once-for-all MobileNetV3", "Maxout (fixed)")
    assert type(image.supernet()) is OFASupernet and type(text.supernet()) is MaxoutBackbone
    assert type(image.fresh(image.min_config())) is StaticBackbone
    assert type(text.fresh({})) is MaxoutBackbone
    assert [m for m, _ in get_preset("memes").elastic_backbones()] == ["image"]
    assert not isinstance(StaticBackbone.fresh(image, image.min_config()), ModalityNetwork)


def test_gene_choices_are_the_values_a_config_may_hold():
    space = get_preset("mmimdb").backbone("image")
    rng = random.Random(0)
    for _ in range(20):
        config = space.sample_config(rng)
        for gene, values in config.items():
            for i, value in enumerate(values):
                assert value in space.gene_choices(gene, i)
    assert space.gene_choices("d", 0) == space.depths(space.stages[0])
    with pytest.raises(ConfigError, match="not searched"):
        MaxoutSpace(in_features=77, n_classes=3).gene_choices("ks", 0)


def test_a_spec_builds_in_a_fresh_interpreter_that_imported_only_the_specs():
    code = (
        "import sys\n"
        "from hnas_edge.space.specs import AdapterSpec, FusionOpSpec, LinearSpec, MaxoutSpec\n"
        "assert 'torch' not in sys.modules, 'reading specs must not import torch'\n"
        "for spec in (LinearSpec(3, 4), MaxoutSpec(10, 8, 2, 2), AdapterSpec((8, 4, 4), 8, 4),\n"
        "             FusionOpSpec('SE1', 8, 4)):\n"
        "    module = spec.build()\n"
        "    assert not module.training, spec\n"
        "print('built')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "built"


def imports_of(path: Path) -> set[str]:
    """Every module of the package ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith("hnas_edge")}


def test_specs_import_nothing_of_the_package_and_space_has_no_import_circle():
    modules = {
        f"hnas_edge.space.{p.stem}" if p.stem != "__init__" else "hnas_edge.space": p
        for p in SPACE_DIR.glob("*.py")
    }
    graph = {name: imports_of(path) & set(modules) for name, path in modules.items()}
    assert imports_of(modules["hnas_edge.space.specs"]) == set()

    def visit(name: str, trail: tuple[str, ...]) -> None:
        assert name not in trail, " → ".join((*trail, name))
        for child in graph[name]:
            visit(child, (*trail, name))

    for name in graph:
        visit(name, ())
