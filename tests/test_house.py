"""The shape of the installed package: no import cycle, dependencies point one way.

An `ast` walk over the installed `ledgerflow/` tree (the four layer packages are
symlinked into it, so the walk follows links), every import counted: top level,
inside functions, and under `if TYPE_CHECKING:` (a cycle hidden there is still a
cycle of ideas). Relative imports are resolved against the importing module.

Layers (the README's "Layout"): `domain` <- `eventstore` <- `projections`, `outbox` <- the
rest of `ledgerflow`. A layer may import its own modules and the layers below it,
nothing else of ours; and nothing imports the bare names `domain`, `eventstore`,
`projections` or `outbox`, which the distribution does not install.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

LAYERS = ("domain", "eventstore", "projections", "outbox")

ALLOWED: dict[str, tuple[str, ...]] = {
    "ledgerflow.domain": ("ledgerflow.domain",),
    "ledgerflow.eventstore": ("ledgerflow.domain", "ledgerflow.eventstore"),
    "ledgerflow.projections": ("ledgerflow.domain", "ledgerflow.eventstore",
                               "ledgerflow.projections"),
    "ledgerflow.outbox": ("ledgerflow.domain", "ledgerflow.eventstore", "ledgerflow.outbox"),
}
"""What of ours each layer may import (it and the layers below it)."""


@dataclass(frozen=True)
class Import:
    """One import statement's target, as written and as resolved."""

    module: str  # the importing module
    line: int
    written: str  # the absolute dotted name the statement names ("" if it left the tree)
    target: str  # the module of the tree it loads ("" when not ours)


def installed_tree(package: str = "ledgerflow") -> Path:
    """The directory the import system loads `package` from."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every `.py` under package directory `root`
    (symlinked subpackages included)."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if (Path(folder, d) / "__init__.py").is_file())
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder, name)
                parts = [root.name, *path.relative_to(root).with_suffix("").parts]
                if parts[-1] == "__init__":
                    parts.pop()
                found[".".join(parts)] = path
    return found


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute name `from ... import` refers to ("" if it climbs out of the tree)."""
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 >= len(base):
        return ""
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _ours(name: str, modules: Iterable[str]) -> str:
    """The longest module of the tree that `name` names or lies inside, else ""."""
    known = set(modules)
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str, path: Path, modules: Iterable[str]) -> list[Import]:
    """Every import in `module`'s source, wherever it stands (functions, TYPE_CHECKING)."""
    known = set(modules)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, node.lineno, a.name, _ours(a.name, known))
                      for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path.name == "__init__.py", node)
            for alias in node.names:
                # `from pkg import sub` loads pkg.sub; `from pkg import name`, pkg itself
                written = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                found.append(Import(module, node.lineno, written, _ours(written, known)))
    return found


def import_graph(files: Mapping[str, Path]) -> dict[str, dict[str, int]]:
    """module -> {module of the tree it imports: first line}. A submodule's import of
    one of its own packages is left out when it only names the package's submodules
    (Python loads the package first anyway); naming what the package's `__init__`
    defines counts, since that `__init__` may be half run."""
    edges: dict[str, dict[str, int]] = {name: {} for name in files}
    for name, path in files.items():
        for imp in imports_of(name, path, files):
            if imp.target and imp.target != name:
                edges[name].setdefault(imp.target, imp.line)
    return edges


def find_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One shortest cycle per strongly connected component of more than one node
    (or a node importing itself), as [a, b, ..., a]; sorted, so messages are stable."""
    graph = {node: sorted(set(targets)) for node, targets in edges.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(start: str) -> None:  # iterative Tarjan: no recursion limit to meet
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    at = stack.index(node)
                    component = set(stack[at:])
                    del stack[at:]
                    on_stack.difference_update(component)
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph.get(child, ()))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for node in sorted(graph):
        if node not in index:
            visit(node)
    cycles = [_shortest_cycle(graph, component) for component in components
              if len(component) > 1 or next(iter(component)) in graph.get(
                  next(iter(component)), ())]
    return sorted(cycles)


def _shortest_cycle(graph: Mapping[str, list[str]], component: set[str]) -> list[str]:
    """The shortest cycle through the component's first node (by name), by BFS."""
    start = min(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in graph.get(node, ()):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child in component and child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def describe(cycle: list[str], edges: Mapping[str, Mapping[str, int]]) -> str:
    steps = [f"{a} (line {edges[a][b]})" for a, b in pairwise(cycle)]
    return "import cycle: " + " -> ".join([*steps, cycle[-1]])


def layer_violations(files: Mapping[str, Path]) -> list[str]:
    """Imports of ours that point up (or sideways) from a layer package."""
    found = []
    for name, path in files.items():
        layer = next((lay for lay in ALLOWED if name == lay or name.startswith(lay + ".")),
                     None)
        if layer is None:
            continue
        for imp in imports_of(name, path, files):
            allowed = ALLOWED[layer]
            if imp.target and not any(imp.target == a or imp.target.startswith(a + ".")
                                      for a in allowed):
                found.append(f"{name} (line {imp.line}) imports {imp.target}; "
                             f"{layer} may import only {', '.join(allowed)}")
    return found


def bare_layer_imports(files: Mapping[str, Path]) -> list[str]:
    """Imports of the top-level names `domain`, `eventstore`, ... (not installed)."""
    return [f"{imp.module} (line {imp.line}) imports {imp.written}"
            for name, path in files.items() for imp in imports_of(name, path, files)
            if imp.written.split(".")[0] in LAYERS]


# -- the installed package ------------------------------------------------------

@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    found = module_files(installed_tree())
    # the walk must reach into the symlinked layers, or it proves nothing
    for expected in ("ledgerflow.domain.lifecycle", "ledgerflow.eventstore.store",
                     "ledgerflow.projections.rebuild", "ledgerflow.outbox._relay",
                     "ledgerflow.runtime.engine", "ledgerflow.cli", "ledgerflow.api"):
        assert expected in found, f"{expected} not found under {installed_tree()}"
    return found


def test_no_import_cycle_between_modules(files: dict[str, Path]) -> None:
    edges = import_graph(files)
    assert sum(map(len, edges.values())) > 100  # the graph is really there
    cycles = [describe(c, edges) for c in find_cycles(edges)]
    assert not cycles, "\n".join(cycles)


def test_layers_import_only_themselves_and_the_layers_below(files: dict[str, Path]) -> None:
    found = layer_violations(files)
    assert not found, "\n".join(found)


def test_no_module_imports_the_bare_layer_names(files: dict[str, Path]) -> None:
    found = bare_layer_imports(files)
    assert not found, "\n".join(found)


def test_the_tests_do_not_import_the_bare_layer_names() -> None:
    """A test that imports `outbox` passes in the repo and fails on an installed wheel."""
    found = bare_layer_imports(module_files(Path(__file__).parent))
    assert not found, "\n".join(found)


# -- the checks themselves can fail ---------------------------------------------

def test_cycle_finder_names_the_cycle_and_passes_a_tree() -> None:
    edges = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set(), "e": {"e"},
             "f": {"g"}, "g": set()}
    assert find_cycles(edges) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []
    long_chain = {f"m{i:04d}": {f"m{i + 1:04d}"} for i in range(3000)}
    long_chain["m3000"] = {"m0000"}
    assert len(find_cycles(long_chain)[0]) == 3002  # deep graphs need no recursion


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_cycle_hidden_under_type_checking_and_relative_imports_is_found(
        tmp_path: Path) -> None:
    _write(tmp_path / "pkg", {
        "__init__.py": "",
        "engine.py": "from pkg.runtime import executor\n",
        "runtime/__init__.py": "",
        "runtime/executor.py": ("from typing import TYPE_CHECKING\n"
                                "if TYPE_CHECKING:\n"
                                "    from ..engine import Engine\n"),
        "runtime/helpers.py": "from . import executor\n",
    })
    files = module_files(tmp_path / "pkg")
    edges = import_graph(files)
    cycles = find_cycles(edges)
    assert cycles == [["pkg.engine", "pkg.runtime.executor", "pkg.engine"]]
    assert describe(cycles[0], edges) == (
        "import cycle: pkg.engine (line 1) -> pkg.runtime.executor (line 3) -> pkg.engine")


def test_layer_and_bare_name_checks_report_offenders(tmp_path: Path) -> None:
    _write(tmp_path / "ledgerflow", {
        "__init__.py": "",
        "runtime.py": "",
        "domain/__init__.py": "",
        "domain/events.py": "def f() -> None:\n    from ledgerflow import runtime\n",
        "eventstore/__init__.py": "from ..outbox import writer\n",
        "outbox/__init__.py": "",
        "outbox/writer.py": "import outbox._schema\nfrom domain import events\n",
    })
    files = module_files(tmp_path / "ledgerflow")
    assert layer_violations(files) == [
        "ledgerflow.domain.events (line 2) imports ledgerflow.runtime; "
        "ledgerflow.domain may import only ledgerflow.domain",
        "ledgerflow.eventstore (line 1) imports ledgerflow.outbox.writer; ledgerflow.eventstore "
        "may import only ledgerflow.domain, ledgerflow.eventstore",
    ]
    assert bare_layer_imports(files) == [
        "ledgerflow.outbox.writer (line 1) imports outbox._schema",
        "ledgerflow.outbox.writer (line 2) imports domain",
    ]
