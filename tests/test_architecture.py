"""The floors of the code base, read from the import statements themselves (``ast``, lazy and type-only
imports included), so an arrow pointing up or an import circle fails here rather than in a review.

Floors, top to bottom: the CLI (``kalm.cli``) and ``benchmarks``; ``flows``; ``tasks`` (a plain step and its
cached task); the run layer (``kalm.run``); the domain libraries (``kalm``'s dedup, balance, mining,
evaluation, results and report, ``data_catalog``, ``training``); the ground helpers (``kalm.settings``,
``kalm.hashing``, ``kalm.runtime``, ``kalm.markdown``, ``kalm.progress``).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("kalm", "flows", "tasks", "data_catalog", "training", "benchmarks")
GROUND = ("kalm.settings", "kalm.hashing", "kalm.runtime", "kalm.markdown", "kalm.progress")
DOMAIN = ("kalm.dedup", "kalm.balance", "kalm.mining", "kalm.evaluation", "kalm.results", "kalm.report")
MAX_MODULE_LINES = 300
MAX_CLI_FUNCTION_LINES = 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _target(name: str) -> str | None:
    """The project module an imported name lives in (a submodule if one exists, else its package)."""
    while name:
        if name in modules():
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def imports() -> dict[str, set[str]]:
    """Every project module each module imports, at any depth of its code."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                    ).strip(".")
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for imported in names:
                target = _target(imported)
                if target is not None and target != name:
                    graph[name].add(target)
    return graph


def _in(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def arrows(source: tuple[str, ...], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in imports().items()
        if _in(module, *source) and not _in(module, *allowed)
        for target in targets
        if _in(target, *forbidden)
    )


def test_the_graph_is_read() -> None:
    """The rules below would pass vacuously on an empty graph: it must see known arrows."""
    graph = imports()
    assert "kalm.run.profile" in graph["flows._common"]
    assert "training.config" in graph["kalm.run.profile"]
    assert "kalm.evaluation.task_spec" in graph["kalm.dedup.decontaminate.index"]  # a relative-free import
    assert "flows.build_data" in graph["kalm.cli.pipeline"]  # a function-local import


def test_the_library_never_imports_tasks_flows_or_the_cli() -> None:
    library = ("kalm", "data_catalog", "training")
    assert arrows(library, ("flows", "tasks", "kalm.cli", "benchmarks"), allowed=("kalm.cli",)) == []


def test_training_imports_nothing_from_kalm() -> None:
    assert arrows(("training",), ("kalm", "flows", "tasks", "benchmarks")) == []


def test_steps_import_no_flow_and_flows_no_cli() -> None:
    assert arrows(("tasks",), ("flows", "kalm.cli", "benchmarks")) == []
    assert arrows(("flows",), ("kalm.cli", "benchmarks")) == []


def test_only_flows_the_cli_and_benchmarks_import_flows() -> None:
    assert arrows(PACKAGES, ("flows",), allowed=("flows", "kalm.cli", "benchmarks")) == []


def test_domain_libraries_import_no_run_layer() -> None:
    assert arrows((*DOMAIN, "data_catalog"), ("kalm.run",)) == []


def _beyond_ground(found: list[str]) -> list[str]:
    return [arrow for arrow in found if not _in(arrow.split(" -> ")[1], *GROUND)]


def test_ground_helpers_import_only_ground_helpers() -> None:
    assert _beyond_ground(arrows(GROUND, PACKAGES)) == []


def test_data_catalog_uses_only_itself_and_ground_helpers() -> None:
    assert (
        _beyond_ground(arrows(("data_catalog",), ("kalm", "flows", "tasks", "training", "benchmarks"))) == []
    )


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph, index, low, stack, on_stack, found = imports(), {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(modules()):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    assert cycles() == []


@pytest.mark.parametrize("package", ["kalm", "flows", "tasks", "data_catalog", "training", "benchmarks"])
def test_modules_stay_small_or_say_why(package: str) -> None:
    """Over the limit, a module's docstring must say why it is long ("long because …")."""
    long = []
    for name, path in modules().items():
        if not _in(name, package):
            continue
        text = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > MAX_MODULE_LINES and "long because" not in docstring:
            long.append(f"{name} ({text.count(chr(10))} lines)")
    assert long == []


def test_cli_functions_stay_short() -> None:
    long = []
    for name, path in modules().items():
        if not _in(name, "kalm.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.FunctionDef)
                and node.end_lineno - node.lineno + 1 > MAX_CLI_FUNCTION_LINES
            ):
                long.append(f"{name}.{node.name}")
    assert long == []
