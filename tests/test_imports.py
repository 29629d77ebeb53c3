"""Import structure: every module imports on its own, imports only point left, no cycles.

The design's layering is ``privacy <- synthgen <- evaluation <- pipelines``: a package
may import the packages to its left and itself, never one to its right, and
``privacy`` may use only ``synthgen.core`` (the dependency-free errors, kinds and value
helpers). Inside synthgen the module-level import graph must be acyclic: a cycle works
only while something else happens to import its modules in the right order, and breaks
as an ImportError for the first user who imports them in another.

Three checks, from the most direct to the most precise:

- every module of the four packages is imported first, on its own, in a process where
  no project module has been imported yet (a cycle shows up there as an ImportError);
- every import statement (also those inside functions, which run later but still
  point somewhere) is checked against the layering, statically with ``ast``;
- the module-level graph inside synthgen is searched for cycles; the failure message
  prints the cycle.

Imports under ``if TYPE_CHECKING:`` never run, so none of the checks counts them.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Left to right: each package may import itself and the packages before it.
LAYERS = ("privacy", "synthgen", "evaluation", "pipelines")
CORE = "synthgen.core"

#: Module-level import edges inside synthgen that are known to form a cycle and are
#: being removed (importer, imported). Keep this empty; an entry needs a comment saying
#: who removes it, and the edge must still exist (a stale entry fails the test).
KNOWN_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()


# ----------------------------------------------------------------- finding modules
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


#: Alembic runs the catalog's migration scripts with its own context (``env.py`` reads
#: ``alembic.context.config``); they are scripts executed by Alembic, not modules.
SCRIPT_FOLDERS = ("migrations",)


def project_modules() -> dict[str, Path]:
    """Every module of the four packages (packages included) -> its file."""
    found: dict[str, Path] = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if any(part in SCRIPT_FOLDERS for part in path.relative_to(ROOT).parts):
                continue
            found[_module_name(path)] = path
    return found


MODULES = project_modules()


@dataclass(frozen=True)
class Import:
    """One imported project module: where the statement is and whether it runs on import."""

    importer: str
    target: str
    line: int
    module_level: bool  # False: inside a function body (runs when the function does)
    attribute: bool = False  # ``from pkg import name`` where ``name`` is not a module


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve_from(importer: str, node: ast.ImportFrom) -> str:
    """Absolute module named by a ``from ... import`` (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _statements(
    body: list[ast.stmt], module_level: bool
) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Import statements in ``body`` with whether they run when the module is imported."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, module_level
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _statements(node.orelse, module_level)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield from _statements(node.body, False)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                for child in getattr(node, field, None) or []:
                    inner = (
                        child.body
                        if isinstance(child, (ast.ExceptHandler, ast.match_case))
                        else [child]
                    )
                    yield from _statements(inner, module_level)


def imports_of(importer: str) -> list[Import]:
    """Project modules imported by ``importer`` (stdlib and third-party left out)."""
    tree = ast.parse(MODULES[importer].read_text(), filename=str(MODULES[importer]))
    out: list[Import] = []
    for node, module_level in _statements(tree.body, True):
        if isinstance(node, ast.Import):
            targets = [(alias.name, False) for alias in node.names]
        else:
            base = _resolve_from(importer, node)
            targets = [
                (f"{base}.{a.name}", False) if f"{base}.{a.name}" in MODULES else (base, True)
                for a in node.names
            ]
        for target, attribute in targets:
            if target.split(".")[0] in LAYERS:
                out.append(Import(importer, target, node.lineno, module_level, attribute))
    return out


def third_party_imports() -> list[str]:
    """Every module outside the project that a project module imports at module level."""
    names: set[str] = set()
    for path in MODULES.values():
        tree = ast.parse(path.read_text())
        for node, module_level in _statements(tree.body, True):
            if not module_level:
                continue
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif not node.level and node.module:
                names.add(node.module)
    return sorted(n for n in names if n.split(".")[0] not in LAYERS and n != "__future__")


# ----------------------------------------------------------------- direction
def allowed(importer: str, target: str) -> bool:
    """The layering rule (see the module docstring), for one project import."""
    if importer == CORE or importer.startswith(CORE + "."):
        return target == CORE or target.startswith(CORE + ".")
    layer, target_layer = importer.split(".")[0], target.split(".")[0]
    if layer == "privacy" and target_layer == "synthgen":
        return target == CORE or target.startswith(CORE + ".")
    return LAYERS.index(target_layer) <= LAYERS.index(layer)


def direction_violations(found: list[Import]) -> list[str]:
    return [
        f"{MODULES[i.importer].relative_to(ROOT)}:{i.line}: {i.importer} imports {i.target}"
        for i in found
        if not allowed(i.importer, i.target)
    ]


# ----------------------------------------------------------------- cycles
def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:k]) for k in range(1, len(parts))]


def import_graph(prefix: str = "synthgen") -> dict[str, set[str]]:
    """Module-level import edges between the modules under ``prefix``.

    Importing ``a.b.c`` runs ``a/__init__``, then ``a/b/__init__``, then ``a/b/c``, so an
    edge goes to the target and to each of its packages, except the importer's own
    packages: those are already being imported when the importer runs, and Python does
    not run them again. ``from pkg import name`` of a non-module ``name`` does need
    ``pkg`` to have finished, so that edge is kept even for the importer's own package.
    """
    graph: dict[str, set[str]] = {m: set() for m in MODULES if m.split(".")[0] == prefix}
    for importer in graph:
        own = {importer, *_ancestors(importer)}
        for i in imports_of(importer):
            if not i.module_level or i.target not in graph:
                continue
            needed = {*_ancestors(i.target), i.target} - own
            if i.attribute and i.target != importer:
                needed.add(i.target)
            graph[importer] |= {m for m in needed if m in graph}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


# ----------------------------------------------------------------- fresh imports
#: Runs in a new interpreter: imports the third-party modules once, then forks one
#: child per project module. Each child starts with no project module in sys.modules,
#: so it imports its module first, exactly as a fresh ``python -c "import m"`` would,
#: without paying torch's and sklearn's import time again for every module.
_FORK_DRIVER = r"""
import importlib, json, os, sys, traceback
job = json.load(sys.stdin)
for name in job["preload"]:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # the child that needs it reports the error
project = tuple(job["layers"])
leaked = sorted(m for m in sys.modules if m.split(".")[0] in project)
assert not leaked, f"third-party preloading imported project modules: {leaked}"
results, running, queue = {}, {}, list(job["modules"])
while queue or running:
    while queue and len(running) < job["jobs"]:
        name = queue.pop(0)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.dup2(2, 1)  # keep stdout for the results, whatever a module prints
            try:
                importlib.import_module(name)
                message = ""
            except BaseException:
                message = traceback.format_exc()[-4000:]
            os.write(write, message.encode())
            os._exit(0)
        os.close(write)
        running[pid] = (name, read)
    pid, status = os.wait()
    name, read = running.pop(pid)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    message = b"".join(chunks).decode()
    if status and not message:
        message = f"child exited with status {status}"
    results[name] = message
json.dump(results, sys.stdout)
"""


def _fresh_subprocess(module: str) -> str:
    """Import ``module`` in a brand-new interpreter; the error text, or "" on success."""
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return "" if done.returncode == 0 else done.stderr[-4000:]


def import_each_fresh(
    modules: list[str], jobs: int = 2, preload: list[str] | None = None
) -> dict[str, str]:
    """Import every module first and on its own; module -> error text ("" when it worked).

    ``preload``: third-party modules imported once before forking (default: all the
    project imports at module level).
    """
    if not hasattr(os, "fork"):  # no fork (Windows): one interpreter per module
        with ThreadPoolExecutor(jobs) as pool:
            return dict(zip(modules, pool.map(_fresh_subprocess, modules), strict=True))
    preload = third_party_imports() if preload is None else preload
    job = {"modules": modules, "preload": preload, "layers": LAYERS, "jobs": jobs}
    done = subprocess.run(
        [sys.executable, "-c", _FORK_DRIVER],
        cwd=ROOT,
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


# ----------------------------------------------------------------- the tests
def test_every_package_module_is_found():
    assert {"privacy", "synthgen", "evaluation", "pipelines"} <= set(MODULES)
    assert {"synthgen.core.values", "synthgen.transforms.layout", "pipelines.cli"} <= set(MODULES)
    assert "synthgen.backends.spans" not in MODULES  # moved to synthgen.transforms.layout


def test_every_module_imports_first_and_alone():
    results = import_each_fresh(sorted(MODULES), jobs=min(2, os.cpu_count() or 1))
    assert set(results) == set(MODULES)
    failed = {m: err for m, err in results.items() if err}
    assert not failed, "modules that fail when imported first:\n" + "\n".join(
        f"--- {m}\n{err}" for m, err in sorted(failed.items())
    )


def test_imports_point_only_left():
    found = [i for m in MODULES for i in imports_of(m)]
    assert any(i.importer.startswith("privacy") for i in found)  # the scan sees privacy
    violations = direction_violations(found)
    assert not violations, "imports against privacy <- synthgen <- evaluation <- pipelines:\n" + (
        "\n".join(violations)
    )


def test_synthgen_has_no_import_cycle():
    graph = import_graph()
    stale = {edge for edge in KNOWN_CYCLE_EDGES if edge[1] not in graph.get(edge[0], set())}
    assert not stale, f"KNOWN_CYCLE_EDGES lists edges that no longer exist: {sorted(stale)}"
    for importer, target in KNOWN_CYCLE_EDGES:
        graph[importer].discard(target)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in synthgen: " + " -> ".join(cycle)


def test_importing_privacy_loads_no_generator():
    code = (
        "import sys, privacy\n"
        "for name in privacy.__all__: getattr(privacy, name)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('synthgen.backends', "
        "'synthgen.diffusion', 'synthgen.transforms', 'synthgen.schema', 'evaluation', "
        "'pipelines')))\n"
        "assert not bad, bad\n"
        "assert 'synthgen.core.errors' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]


def test_importing_the_schema_loads_no_backend():
    code = (
        "import sys, synthgen.schema, synthgen.core\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('synthgen.backends', "
        "'synthgen.diffusion')))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-4000:]


# ----------------------------------------------------------------- the checkers themselves
def test_fresh_imports_report_a_failing_module():
    results = import_each_fresh(["synthgen.core", "synthgen.no_such_module"], preload=[])
    assert results["synthgen.core"] == ""
    assert "ModuleNotFoundError" in results["synthgen.no_such_module"]


def test_find_cycle_reports_the_path():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


@pytest.mark.parametrize(
    ("importer", "target", "ok"),
    [
        ("privacy.attacks", "synthgen.core.errors", True),
        ("privacy.attacks", "synthgen.schema", False),
        ("privacy.attacks", "synthgen", False),
        ("privacy.attacks", "evaluation.encoding", False),
        ("synthgen.core.values", "synthgen.errors", False),
        ("synthgen.core.values", "synthgen.core.kinds", True),
        ("synthgen.io", "privacy", True),
        ("synthgen.io", "evaluation", False),
        ("evaluation.core", "synthgen.backends", True),
        ("evaluation.core", "pipelines.cli", False),
        ("pipelines.cli", "evaluation", True),
    ],
)
def test_direction_rule(importer, target, ok):
    assert allowed(importer, target) is ok


def test_import_scan_resolves_packages_and_skips_type_checking():
    scanned = {(i.target, i.module_level, i.attribute) for i in imports_of("synthgen.errors")}
    assert scanned == {("synthgen.core.errors", True, True)}  # from-import of names
    # synthgen/__init__ imports its public names only for type checkers
    assert imports_of("synthgen") == []
    graph = import_graph()
    assert "synthgen.transforms.layout" in graph["synthgen.diffusion.multinomial"]
    assert "synthgen.transforms" in graph["synthgen.diffusion.multinomial"]
