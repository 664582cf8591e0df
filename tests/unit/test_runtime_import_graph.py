"""The agent's parts are composed, not mixed in, and the import graph shows it: no
module imports a module that imports it back (imports under TYPE_CHECKING and inside
functions count too), and the shared context imports no part."""

from __future__ import annotations

import ast
import graphlib
import inspect
from pathlib import Path

import fedorch
from fedorch.runtime import audit, key_changes, live_trust, membership
from fedorch.runtime.node_engine import engine

ROOT = Path(fedorch.__file__).parent
# What runtime/agent.py composes around the shared context, and the engine around it.
PARTS = (membership, audit, key_changes, live_trust, engine)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("fedorch", *parts))


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The fedorch modules `path` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` imports a.b, and a.b.c when c is a module.
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(n for n in names if n in modules)
    return found


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in ROOT.rglob("*.py") if "gen" not in p.parts}
    modules = set(paths)
    return {name: _imports(path, modules) - {name} for name, path in paths.items()}


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    graph = _graph()
    assert "fedorch.runtime.agent" in graph  # the walk found the tree
    assert "fedorch.runtime.membership" in graph["fedorch.runtime.agent"]
    back = sorted((a, b) for a, targets in graph.items() for b in targets
                  if a < b and a in graph.get(b, ()))
    assert back == []


def test_no_import_cycle_of_any_length() -> None:
    # Two-module cycles are caught above; a longer one (a package whose __init__ imports
    # a module that imports the package back through a third) is caught here.
    try:
        graphlib.TopologicalSorter(_graph()).prepare()
    except graphlib.CycleError as cycle:
        raise AssertionError(f"import cycle: {' -> '.join(cycle.args[1])}") from None


def test_the_context_imports_no_part() -> None:
    parts = {m.__name__ for m in PARTS} | {"fedorch.runtime.agent"}
    assert _graph()["fedorch.runtime.context"] & parts == set()


def test_no_part_class_inherits_from_another_class_of_the_project() -> None:
    for module in PARTS:
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            project_bases = [b.__qualname__ for b in cls.__mro__[1:]
                             if b.__module__.startswith("fedorch.")]
            assert project_bases == [], f"{module.__name__}.{name} inherits {project_bases}"
