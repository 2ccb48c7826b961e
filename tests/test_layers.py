"""Imports point down only, and no module-level import cycle exists (issue 10).

Layers: 0 utilities (``cmkd_bounds.atomic``, the package root), 1 the mathematics, 2 data and models,
3 training, 4 the application. A module may import its own layer or lower ones, at module level or
inside a function alike.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATH = {"kinds", "names", "bound_report", "costs", "concentration", "wasserstein", "rates", "lipschitz", "complexity",
        "fewlabel",
        "label_kernel",
        "features", "settings", "theorem"}
DATA = {"names", "data", "datasets", "arrays", "synthetic", "protocols", "models"}
TRAINING = {"alignment", "adaptation", "methods", "batches", "config", "checkpoint", "run_folder", "loop",
            "distributed", "prepare"}


def layer(module: str) -> int:
    parts = module.split(".")
    if parts[0] == "cmkd_bounds":
        if len(parts) == 1 or parts[1] == "atomic":
            return 0
        if parts[1] in ("app", "__main__"):
            return 4
        if parts[1] in MATH:
            return 1
    if parts[0] == "training":
        if len(parts) == 1:
            return 2
        if parts[1] in DATA:
            return 2
        if parts[1] in TRAINING:
            return 3
    raise AssertionError(f"module {module} is in no layer: add it to tests/test_layers.py")


def modules():
    for pkg in ("cmkd_bounds", "training"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            rel = f.relative_to(ROOT).with_suffix("")
            name = ".".join(p for p in rel.parts if p != "__init__")
            yield name, f


def imports(path: Path, top_level_only: bool = False):
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def ours(name: str) -> bool:
    return name.split(".")[0] in ("cmkd_bounds", "training")


@pytest.mark.parametrize("name,path", list(modules()), ids=[n for n, _ in modules()])
def test_imports_point_down(name, path):
    for target in filter(ours, imports(path)):
        assert layer(target) <= layer(name), f"{name} (layer {layer(name)}) imports {target} (layer {layer(target)})"


def test_no_module_level_import_cycle():
    graph = {name: {t for t in imports(path, top_level_only=True) if ours(t)} for name, path in modules()}
    state = {}

    def visit(n, stack):
        state[n] = "open"
        for m in graph.get(n, ()):
            if state.get(m) == "open":
                raise AssertionError(" -> ".join([*stack, n, m]))
            if m not in state:
                visit(m, [*stack, n])
        state[n] = "done"

    for n in graph:
        if n not in state:
            visit(n, [])


def test_the_mathematics_imports_no_torch_at_module_level_where_the_cli_needs_it():
    """The command line builds its parser from costs and settings: they must stay cheap to import."""
    for mod in ("costs", "settings", "kinds"):
        assert "torch" not in set(imports(ROOT / "cmkd_bounds" / f"{mod}.py", top_level_only=True))
    assert "torch" not in set(imports(ROOT / "training" / "config.py", top_level_only=True))
