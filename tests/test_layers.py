"""The floors of the house, read from the imports: who may import whom, no circles, no hidden imports.

| package         | may import (besides itself)                                   |
|-----------------|---------------------------------------------------------------|
| `schemas`       | —                                                             |
| `observability` | `schemas`                                                     |
| `db`            | `schemas`, `observability`                                    |
| `broker`        | `schemas`, `observability`                                    |
| `workers`       | `db`, `broker`, `schemas`, `observability`                    |
| `api`           | `db`, `broker`, `schemas`, `observability` (never `workers`)  |
| `segbase` (CLI) | everything above                                              |
| `bench`         | everything above, and of the tests only `tests.support`       |

docs/ARCHITECTURE.md shows the same table; this test is what keeps it true.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: dict[str, set[str]] = {
    "schemas": set(),
    "observability": {"schemas"},
    "db": {"schemas", "observability"},
    "broker": {"schemas", "observability"},
    "workers": {"db", "broker", "schemas", "observability"},
    "api": {"db", "broker", "schemas", "observability"},
    "segbase": {"api", "workers", "db", "broker", "schemas", "observability"},
    "bench": {"api", "workers", "db", "broker", "schemas", "observability", "segbase", "tests.support"},
}
PROJECT_PACKAGES = set(LAYERS) | {"tests"}


def python_files(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(node: ast.AST, path: Path) -> list[str]:
    """The project modules an import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module_name(path).split(".")
            if path.name != "__init__.py":
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            names = [".".join([*base, node.module] if node.module else base)]
        else:
            names = [node.module or ""]
        names = names + [f"{names[0]}.{alias.name}" for alias in node.names]
    else:
        return []
    return [name for name in names if name.split(".")[0] in PROJECT_PACKAGES]


def top_level_imports(tree: ast.Module) -> Iterator[ast.stmt]:
    """Module-level imports, including those under `if TYPE_CHECKING:` (they are part of the graph too)."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            for inner in node.body:
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    yield inner


def all_imports(tree: ast.Module) -> Iterator[ast.stmt]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node


def floor_of(module: str) -> str:
    return "tests.support" if module.startswith("tests.support") else module.split(".")[0]


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_a_package_imports_only_the_floors_below_it(package: str) -> None:
    wrong = []
    for path in python_files(package):
        for node in all_imports(ast.parse(path.read_text())):
            for module in imported_modules(node, path):
                floor = floor_of(module)
                if floor != package and floor not in LAYERS[package]:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {module}")
    assert not wrong, "imports against the floors:\n" + "\n".join(sorted(set(wrong)))


def test_function_level_imports_say_why() -> None:
    """An import inside a function hides an edge of the graph; each one carries a comment saying why it is late."""
    silent = []
    for package in [*LAYERS, "tests"]:
        for path in python_files(package):
            text = path.read_text()
            lines = text.splitlines()
            tree = ast.parse(text)
            top = {id(node) for node in top_level_imports(tree)}
            for node in all_imports(tree):
                if id(node) in top:
                    continue
                statement = lines[node.lineno - 1:node.end_lineno]
                above = lines[node.lineno - 2] if node.lineno > 1 else ""
                if not any("#" in line for line in [above, *statement]):
                    silent.append(f"{path.relative_to(ROOT)}:{node.lineno}: {statement[0].strip()}")
    assert not silent, "function-level imports without a comment saying why:\n" + "\n".join(silent)


def test_no_module_imports_itself_through_a_circle() -> None:
    graph: dict[str, set[str]] = {}
    modules = {module_name(path): path for package in [*LAYERS, "tests"] for path in python_files(package)}
    for name, path in modules.items():
        edges = graph.setdefault(name, set())
        for node in top_level_imports(ast.parse(path.read_text())):
            for module in imported_modules(node, path):
                # `from a.b import c` names a.b.c, which is a module only when that file exists.
                target = module if module in modules else module.rpartition(".")[0]
                if target in modules and target != name and not name.startswith(target + "."):
                    edges.add(target)
    circles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                circles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)
