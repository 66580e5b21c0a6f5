"""The package's import rules (docs/internals.md, "Layers"): data flows one way, from the
model library to the device, and each package imports only from the layers below it.

Every import counts, the ones inside functions too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hnas_edge"

#: Lowest first. A module may import from its own layer and the ones before it, never after.
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(names.split())
    for names in (
        "__init__ errors checks io outputs accelerator cluster torch_state",
        "data",
        "space",
        "backend",
        "profiling",
        "train",
        "search",
        "export",
        "deploy",
        "ui",
        "quickstart",
        "cli",
    )
)


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    imported: str  # dotted module name (a package's __init__ for `from pkg import name`)
    names: tuple[str, ...]
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports() -> Iterator[Import]:
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "hnas_edge":
                        yield Import(importer, alias.name, (), node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "hnas_edge":
                    continue
                names = tuple(alias.name for alias in node.names)
                # `from pkg import module` depends on that module, not only on pkg
                submodules = [n for n in names if is_module(f"{source}.{n}")]
                for name in submodules:
                    yield Import(importer, f"{source}.{name}", (), node.lineno)
                others = tuple(n for n in names if n not in submodules)
                if others or not submodules:
                    yield Import(importer, source, others, node.lineno)


def top(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(dotted: str) -> int:
    for index, names in enumerate(LAYERS):
        if top(dotted) in names:
            return index
    raise AssertionError(f"{dotted} is in no layer: add its package to LAYERS and the docs")


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer(module_name(path))


def test_no_module_imports_from_a_higher_layer():
    upward = [
        f"{i.importer}:{i.line} imports {i.imported}"
        for i in imports()
        if layer(i.imported) > layer(i.importer)
    ]
    assert not upward, "\n".join(upward)


def test_nothing_private_is_imported_from_another_package():
    private = [
        f"{i.importer}:{i.line} imports {name} from {i.imported}"
        for i in imports()
        if top(i.imported) != top(i.importer)
        for name in i.names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not private, "\n".join(private)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_between_modules():
    edges: dict[str, set[str]] = {}
    for i in imports():
        if i.imported != i.importer:
            edges.setdefault(i.importer, set()).add(i.imported)
    assert cycles(edges) == []


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}}, []),
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_circle_finder_finds_circles(edges, expected):
    assert cycles(edges) == expected
