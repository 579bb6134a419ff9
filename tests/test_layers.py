"""The house rules of docs/architecture.md, checked on the source: the data
path has no climb back, no import cycles, and the dataset readers pull in
nothing from dataset making."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mb2po_jax"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Project modules each module imports (at any depth of its code)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mb2po_jax"):
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    found.add(candidate if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                              or (PACKAGE.parent / Path(*candidate.split("."))).is_dir()
                              else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("mb2po_jax"))
        graph[name] = found - {name}
    return graph


def test_the_layer_table_holds() -> None:
    graph = _imports()
    forbidden = {
        "mb2po_jax.transitions": ("mb2po_jax",),
        "mb2po_jax.seeds": ("mb2po_jax",),
        "mb2po_jax.envs": ("mb2po_jax.data", "mb2po_jax.agents", "mb2po_jax.model"),
        "mb2po_jax.training": ("mb2po_jax.agents", "mb2po_jax.model", "mb2po_jax.data"),
        "mb2po_jax.agents": ("mb2po_jax.model", "mb2po_jax.mb2po", "mb2po_jax.data",
                             "mb2po_jax.runner"),
        "mb2po_jax.model": ("mb2po_jax.agents", "mb2po_jax.mb2po", "mb2po_jax.data",
                            "mb2po_jax.runner"),
        "mb2po_jax.mb2po": ("mb2po_jax.agents.awac", "mb2po_jax.agents.sac", "mb2po_jax.data",
                            "mb2po_jax.runner"),
    }
    violations = []
    for module, imported in graph.items():
        for layer, banned in forbidden.items():
            if module == layer or module.startswith(layer + "."):
                violations += [f"{module} imports {target}" for target in imported
                               if any(target == b or target.startswith(b + ".") for b in banned)
                               and not (layer not in ("mb2po_jax.transitions", "mb2po_jax.seeds")
                                        and target.startswith(layer))]
    assert not violations, violations


def test_no_import_cycles() -> None:
    graph = _imports()
    nodes = set(graph)

    def ancestors(module: str) -> set[str]:
        parts = module.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    def targets(module: str) -> set[str]:
        # Importing a.b.c first runs a.b's __init__ (unless the importer lives
        # inside a.b, which is then already initialising), so it counts too.
        found = set(graph[module])
        for target in graph[module]:
            found |= ancestors(target) - ancestors(module)
        return {t for t in found if t in nodes and t != module}

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in targets(module):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(nodes):
        if module not in state:
            visit(module)


def test_reading_datasets_imports_nothing_from_dataset_making() -> None:
    code = ("import sys, mb2po_jax.data; "
            "print(sorted(m for m in sys.modules if m.startswith('mb2po_jax')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    for heavy in ("mb2po_jax.data.generation", "mb2po_jax.datagen", "mb2po_jax.agents",
                  "mb2po_jax.model", "mb2po_jax.runner"):
        assert f"'{heavy}" not in loaded, loaded
