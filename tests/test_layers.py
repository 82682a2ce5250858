"""The package's rooms import one way: no circles, nothing below reaching up.

Every ``import`` statement counts, module level or inside a function: an
import moved into a function hides a circle from Python, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "haml_flows"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in (*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.c"))}
"""Every module of the package; a C extension (its source) imports nothing here."""


def _imported(module: str) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its text."""
    path = MODULES[module]
    if path.suffix != ".py":
        return set()
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([node.module] if node.module else [])])
            submodules = {f"{base}.{alias.name}" for alias in node.names}
            # `from package import module` imports the module, not the package's names
            names |= submodules if submodules <= set(MODULES) else {base, *submodules}
    found = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name.startswith("haml_flows") and name != module:
            found.add(name)
    return found


GRAPH = {module: _imported(module) for module in MODULES}


def _circles() -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in GRAPH[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return circles


def _in(module: str, *rooms: str) -> bool:
    return any(module == f"haml_flows.{r}" or module.startswith(f"haml_flows.{r}.")
               for r in rooms)


def test_the_walk_sees_the_package():
    assert "haml_flows.flows.haml" in GRAPH
    assert "haml_flows.engines.commands" in GRAPH["haml_flows.flows.haml"]
    # imports inside functions count too
    assert "haml_flows.engines.vasp" in GRAPH["haml_flows.flows.haml"]


def test_no_import_circles():
    assert _circles() == []


def test_only_the_command_line_imports_the_command_line():
    outside = {
        module: sorted(m for m in imported if _in(m, "cli"))
        for module, imported in GRAPH.items()
        if not _in(module, "cli")
    }
    assert {m: cli for m, cli in outside.items() if cli} == {}


@pytest.mark.parametrize("room", ["database", "mtp", "schemas", "settings"])
def test_lower_rooms_do_not_reach_up(room):
    reaching = {
        module: sorted(m for m in imported if _in(m, "screening", "flows", "cli"))
        for module, imported in GRAPH.items()
        if _in(module, room)
    }
    assert {m: up for m, up in reaching.items() if up} == {}


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("haml_flows.spec", {"haml_flows.distances"}),
        ("haml_flows.engines.commands", {"haml_flows.settings"}),
        ("haml_flows.settings", set()),
        ("haml_flows.schemas", set()),
    ],
)
def test_leaves_stay_leaves(module, allowed):
    assert GRAPH[module] <= allowed
