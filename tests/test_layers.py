"""Imports point one way: each layer of ``signdigits`` may import only the layers below it.

Removing this test lets a convenience import (the producer reaching into the worker, the
settings reaching into the CLI) make the house circular again, after which no layer can
be changed, tested or installed without all the others.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first: the folders at the repository's top level, each installed as
# signdigits.<folder> (pyproject.toml). A layer may import those of a lower rank only,
# never a peer.
LAYERS: list[set[str]] = [
    {"config"},                       # settings
    {"files"},                        # which names are images, reading them safely
    {"serving", "db", "broker"},      # the model as served; SQL; the queue contract
    {"producer", "worker", "training"},
    {"web", "stack"},                 # the web app and HTTP API; the one-machine stack
    {"bench"},                        # the benchmarks
    {"cli"},                          # the `signdigits` command
    {"signdigits"},                   # the package itself: `python -m signdigits`
]
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
PACKAGE = "signdigits"


def _modules() -> list[Path]:
    return sorted(p for package in RANK for p in (ROOT / package).rglob("*.py"))


def _layer(module: str) -> str | None:
    """The layer an imported module belongs to (None: not ours)."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 and parts[1] in RANK else PACKAGE


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module this file imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] != PACKAGE:
        parts.insert(0, PACKAGE)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_package_has_a_layer():
    ours = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert ours == set(RANK), "give each top-level package a place in LAYERS"


def test_the_wheel_maps_every_layer_under_one_package():
    """pyproject.toml installs each layer as signdigits.<folder>, and nothing else."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapped = {name: folder for name, folder in config["package-dir"].items()}
    assert mapped == {PACKAGE if layer == PACKAGE else f"{PACKAGE}.{layer}": layer
                      for layer in RANK}
    assert all(name.split(".")[0] == PACKAGE for name in config["packages"])


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path):
    own = path.relative_to(ROOT).parts[0]
    upward = [
        f"{path.relative_to(ROOT)}:{line} imports {name} ({_layer(name)} is not below {own})"
        for line, name in _imports(path)
        if (layer := _layer(name)) is not None and layer != own and RANK[layer] >= RANK[own]
    ]
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_name_the_package(path: Path):
    """`import db` works from a checkout only: installed, every layer is signdigits.<layer>."""
    bare = [f"{path.relative_to(ROOT)}:{line} imports {name} (write signdigits.{name})"
            for line, name in _imports(path) if name.split(".")[0] in set(RANK) - {PACKAGE}]
    assert not bare, "\n".join(bare)


def test_no_module_cycles_inside_a_package():
    modules = {_module_name(p): p for p in _modules()}
    graph = {
        name: {m for _, m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    # A package's __init__ re-exporting its own modules is not a cycle worth refusing.
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(trail[trail.index(nxt):] + [node, nxt] if nxt in trail
                             else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*trail, node]):
                return True
        state[node] = 2
        return False

    for name in sorted(graph):
        if state.get(name) is None and visit(name, []):
            break
    assert not cycle, " -> ".join(cycle)


def test_the_check_sees_a_violation(tmp_path):
    """The scanner finds a function-level upward import: this test can fail."""
    sample = tmp_path / "x.py"
    sample.write_text("def f():\n    from signdigits.cli.app import app\n")
    assert (2, "signdigits.cli.app") in _imports(sample)
