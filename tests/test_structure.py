"""The package's structure, drawn from its imports: layers, one direction, no circle; the module
map of docs/design.md lists exactly the package's modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "nobarriers"

#: the layers, lowest first: a module may import its own layer or lower ones only
LAYERS = [
    ["core"],
    ["models", "datasets"],
    ["settings"],
    ["nn"],
    ["formats"],
    ["engine"],
    ["report"],
    ["stages"],
    ["cli", "__init__"],
]  # fmt: skip


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph() -> nx.DiGraph:
    """Every import between the package's modules, function-level imports included."""
    mods = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for name, path in mods.items():
        package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
        if name == "__init__":
            package = []
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1]
                module = base + (node.module.split(".") if node.module else [])
                targets = [".".join(module)] + [".".join([*module, a.name]) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nobarriers"):
                module = node.module.split(".")[1:]
                targets = [".".join(module)] + [".".join([*module, a.name]) for a in node.names]
            for target in targets:
                if target in mods and target != name:
                    graph.add_edge(name, target)
    return graph


def layer_of(name: str) -> int:
    top = name.split(".")[0]
    for level, members in enumerate(LAYERS):
        if top in members:
            return level
    raise AssertionError(f"module {name} is in no layer of tests/test_structure.py")


def test_no_import_circle():
    cycles = list(nx.simple_cycles(import_graph()))
    assert not cycles, f"import circles: {cycles}"


def test_imports_never_climb_a_layer():
    climbing = [
        (a, b) for a, b in import_graph().edges if layer_of(b) > layer_of(a)
    ]  # fmt: skip
    assert not climbing, f"imports that climb to a higher layer: {climbing}"


def test_every_module_has_a_layer_and_the_graph_sees_the_real_imports():
    graph = import_graph()
    for name in graph.nodes:
        layer_of(name)
    # a plausible bug of this test itself: an import parser that sees nothing
    assert ("engine.autoneb", "engine.neb") in graph.edges
    assert ("stages.paths", "engine.autoneb") in graph.edges
    assert ("engine.model_energy", "nn.points") in graph.edges  # function-level imports count too


def test_design_module_map_lists_exactly_the_modules():
    text = (ROOT / "docs" / "design.md").read_text()
    section = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z_./]+)` \|", section, flags=re.M))
    names = {n.replace(".", "/") for n in modules()} - {"__init__"}
    documented = {n.removesuffix(".py").removesuffix("/") for n in listed}
    assert documented == names, (
        f"missing from docs/design.md: {sorted(names - documented)}; "
        f"listed but absent: {sorted(documented - names)}"
    )
