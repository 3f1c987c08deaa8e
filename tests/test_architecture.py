"""The import rules of docs/architecture.md, read from the source: no import circles (type-checking
imports count), `streaming/` and `storage/` never import the packages above them, and in `server/`
only the apps import another wing's routes."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("server", "streaming", "storage")
WINGS = ("collab", "cluster", "auth", "suggest", "api", "middleware")
COMPOSITION_ROOTS = {"server.app", "server.cli"}  # they wire every wing together


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, ast.Module]:
    return {
        module_name(path): ast.parse(path.read_text(), str(path))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def imported(tree: ast.Module, known: set[str]) -> Iterator[str]:
    """The project modules a module imports, anywhere in it (also under TYPE_CHECKING)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from (name for name in [alias.name] if name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in known:
                yield node.module
            for alias in node.names:  # `from server.api import documents` imports a module
                name = f"{node.module}.{alias.name}"
                if name in known:
                    yield name


def graph() -> dict[str, set[str]]:
    trees = sources()
    known = set(trees)
    return {name: set(imported(tree, known)) - {name} for name, tree in trees.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for after in sorted(edges.get(node, ())):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def wing_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "server" and parts[1] in WINGS else None


def route_modules(trees: dict[str, ast.Module]) -> set[str]:
    """Modules that define the app's routes: a top-level `routes` list."""
    return {
        name
        for name, tree in trees.items()
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(target, ast.Name) and target.id == "routes"
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
    }


def test_there_are_no_import_circles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_streaming_and_storage_import_nothing_above_them() -> None:
    for module, imports in graph().items():
        if module.startswith("streaming"):
            assert not {i for i in imports if i.startswith(("server", "storage"))}, module
        if module.startswith("storage"):
            assert not {i for i in imports if i.startswith(("server", "streaming"))}, module


def test_only_the_apps_import_another_wings_routes() -> None:
    trees = sources()
    routes = route_modules(trees)
    assert {"server.api.documents", "server.auth.routes", "server.collab.socket"} <= routes
    wrong = []
    for module, imports in graph().items():
        if not module.startswith("server") or module in COMPOSITION_ROOTS:
            continue
        for target in imports & routes:
            if wing_of(target) is not None and wing_of(target) != wing_of(module):
                wrong.append(f"{module} imports {target}")
    assert wrong == []


def test_every_wing_is_a_package_with_a_one_line_docstring() -> None:
    for wing in WINGS:
        init = (ROOT / "server" / wing / "__init__.py").read_text()
        docstring = ast.get_docstring(ast.parse(init))
        assert docstring is not None and "\n" not in docstring, wing
        assert len(ast.parse(init).body) == 1, f"server/{wing}/__init__.py re-exports something"
