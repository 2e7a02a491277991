"""The audit's entry point (analysis/_audit.py) and the direction of the analysis imports."""

from __future__ import annotations

import ast
import os

from analysis_helpers import recorded

from replaystore.analysis import AuditReport, RunAuditReport, audit

ANALYSIS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "analysis")


def imports_of(module: str) -> set[str]:
    """The analysis modules ``module`` imports, at the top or inside functions (``from ._x import``)."""
    with open(os.path.join(ANALYSIS, f"{module}.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module} if node.module else {a.name for a in node.names}
    return out


def test_the_analysis_modules_import_in_one_direction():
    """No cycle among the analysis modules, lazy imports included (was _compare <-> _report <-> _run_audit)."""
    modules = [f[:-3] for f in os.listdir(ANALYSIS) if f.endswith(".py") and f != "__init__.py"]
    graph = {m: imports_of(m) & set(modules) for m in modules}
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError(f"import cycle: {' -> '.join(path[path.index(m):] + [m])}")
        if m in done:
            return
        path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(modules):
        visit(m)
    assert "_compare" not in imports_of("_report") and "_run_audit" not in imports_of("_report")


def test_audit_sends_a_store_and_a_run_their_own_way(tmp_path):
    """A store file gets an AuditReport; a run folder a RunAuditReport."""
    from replaystore.store import Run, Schema

    assert isinstance(audit(recorded("healthy")), AuditReport)
    Run.create(tmp_path / "run", Schema.transition((4,)), actors=("expert", "dqn"), window=64)
    assert isinstance(audit(tmp_path / "run"), RunAuditReport)
