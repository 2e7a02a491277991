"""Import circles: none may be added, and each one removed must leave the list below.

The graph is read from the source with ``ast`` (nothing is imported): every ``import`` and
``from ... import`` of a module, at the top or inside a function (a lazy import hides a circle,
it does not remove it), except those under ``if TYPE_CHECKING:``, which never run. The implicit
import of a module's parent package is left out, as pylint's cyclic-import does: otherwise every
module would sit in one circle with the ``__init__.py`` that exports it.

A circle is a strongly connected component of that graph. ``KNOWN`` lists the ones the house
still has (issue #15 asks for none); the test fails on a new one and on one that has gone, so the
list only shrinks. The failure message prints the current list, ready to paste.
"""

from __future__ import annotations

import ast
import os
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Circles left, by package (module names as installed). Keep sorted; the failure message prints them.
# Measured 2026-12-04 on the integration branch (after #9's format 2, frames, the file layer's first part).
KNOWN: dict[str, list[list[str]]] = {
    "replaystore": [],
    "replaystore.agent": [],
    "replaystore.analysis": [],
    "replaystore.remote": [],
    "replaystore.store": [],
}
# Circles between the packages themselves (an edge: some module of one imports a module of the other).
# None left: agent/ and analysis/ take telemetry, progress and the version from common/, below them.
KNOWN_BETWEEN: list[list[str]] = []


def _same(found: list[list[str]], known: list[list[str]]) -> bool:
    """Order-blind: scripts/restructure_store.py renames store modules in KNOWN without re-sorting."""
    return found == sorted(sorted(c) for c in known)


def _package_dirs() -> dict[str, str]:
    """Installed top packages -> their folders, from pyproject's [tool.setuptools.package-dir]."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        dirs = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {pkg: os.path.join(ROOT, folder) for pkg, folder in dirs.items()}


def _modules() -> dict[str, tuple[str, bool]]:
    """Every module -> (file, is_package), subpackages included; a folder maps to one package only."""
    dirs = _package_dirs()
    claimed = set(dirs.values())
    out = {}
    for pkg, folder in dirs.items():
        for d, subdirs, files in os.walk(folder):
            subdirs[:] = sorted(s for s in subdirs
                                if os.path.join(d, s) not in claimed and os.path.isfile(os.path.join(d, s, "__init__.py")))
            rel = os.path.relpath(d, folder)
            base = pkg if rel == "." else pkg + "." + rel.replace(os.sep, ".")
            for name in files:
                if name == "__init__.py":
                    out[base] = (os.path.join(d, name), True)
                elif name.endswith(".py"):
                    out[f"{base}.{name[:-3]}"] = (os.path.join(d, name), False)
    return out


def _type_checking_imports(tree: ast.AST) -> set[int]:
    """ids of import nodes under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
            if name == "TYPE_CHECKING":
                skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, (path, is_pkg) in mods.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        skip = _type_checking_imports(tree)
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    source = f"{base}.{node.module}" if node.module else base
                else:
                    source = node.module
                # ``from p import m`` imports the module p.m when there is one, else a name of p
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:  # ``import a.b.c`` of a name we do not own: its nearest module we do
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative), sorted."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return sorted(out)


def _owner(mod: str, tops: list[str]) -> str:
    """The top package a module belongs to (the longest package-dir name that prefixes it)."""
    return max((t for t in tops if mod == t or mod.startswith(t + ".")), key=len)


@pytest.mark.parametrize("package", sorted(KNOWN))
def test_no_new_import_circles(package):
    """Within one package, the circles are exactly the known ones: none new, none fixed but still listed."""
    graph, tops = _graph(), sorted(_package_dirs())
    inside = {m for m in graph if _owner(m, tops) == package}
    sub = {m: {t for t in graph[m] if t in inside} for m in inside}
    found = _circles(sub)
    assert _same(found, KNOWN[package]), f"import circles in {package} changed; now:\n    {package!r}: {found!r},"


def test_no_new_circles_between_packages():
    """Between the packages (replaystore's face, store, agent, analysis, remote) the circles are the known ones."""
    graph, tops = _graph(), sorted(_package_dirs())
    between: dict[str, set[str]] = {t: set() for t in tops}
    for m, targets in graph.items():
        for t in targets:
            a, b = _owner(m, tops), _owner(t, tops)
            if a != b:
                between[a].add(b)
    found = _circles(between)
    assert _same(found, KNOWN_BETWEEN), f"import circles between packages changed; now:\n    KNOWN_BETWEEN = {found!r}"


def test_the_checker_finds_a_circle():
    """The checker itself: a three-module circle and a two-module one are found, a chain is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "f"}, "f": set(), "g": {"a"}}
    assert _circles(graph) == [["a", "b", "c"], ["d", "e"]]
