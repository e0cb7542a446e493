"""The packages depend one way: ``systolic`` <- ``sim`` <- ``sw_driver`` <- CLI, with no cycles.

Every import statement counts, including those inside functions, so a local import
cannot hide a cycle.
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Layers, lowest first: a module may import its own layer and those below it.
LAYERS = ["systolic", "sim", "sw_driver", "sw_driver.cli"]


def layer_of(module):
    """The layer a dotted module name belongs to (None for third-party modules)."""
    for layer in reversed(LAYERS):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path):
    """Dotted names of every module ``path`` imports, relative imports resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield target
            # ``from package import module`` imports the submodule too.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if (ROOT / candidate.replace(".", "/")).with_suffix(".py").exists():
                    yield candidate


def project_modules():
    for layer in ("systolic", "sim", "sw_driver"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            yield module_name(path), path


def module_graph():
    graph = {}
    for name, path in project_modules():
        graph[name] = sorted({target for target in imports_of(path)
                              if layer_of(target) is not None and target != name})
    return graph


def test_every_import_points_down_the_layers():
    wrong = []
    for name, targets in module_graph().items():
        own = LAYERS.index(layer_of(name))
        wrong += [f"{name} imports {target}" for target in targets
                  if LAYERS.index(layer_of(target)) > own]
    assert wrong == []


def test_package_graph_has_no_cycle():
    graph = module_graph()
    packages = {}
    for name, targets in graph.items():
        source = layer_of(name)
        packages.setdefault(source, set()).update(
            layer_of(target) for target in targets if layer_of(target) != source)
    visiting, done = set(), set()

    def visit(package, trail):
        assert package not in visiting, f"cycle: {' -> '.join(trail + [package])}"
        if package in done:
            return
        visiting.add(package)
        for target in sorted(packages.get(package, ())):
            visit(target, trail + [package])
        visiting.discard(package)
        done.add(package)

    for package in sorted(packages):
        visit(package, [])
    assert packages["systolic"] == set()
    assert packages["sim"] == {"systolic"}


@pytest.mark.parametrize("layer,above", [
    ("systolic", ["sim", "sw_driver"]),
    ("sim", ["sw_driver"]),
])
def test_importing_a_layer_loads_nothing_above_it(layer, above):
    script = (f"import sys, {layer}, {layer}.{'backends' if layer == 'sim' else 'flow.synthesis'}; "
              f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(above)!r}))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.strip()
    assert loaded == "[]"
