"""Which way the imports run: the package face (replaystore/: the everyday names and the command
line) imports the parts; the parts never import the face; common/ sits below agent/ and
analysis/; telemetry and tensorboard do not import each other in a circle.

Read from the source (every import statement, at any depth, of every module), so an import added
inside a function counts too.
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# folder -> the installed package it becomes
PACKAGES = {"store": "replaystore.store", "agent": "replaystore.agent", "analysis": "replaystore.analysis",
            "common": "replaystore.common", "replaystore": "replaystore"}
# what each part may import of the project (besides itself)
ALLOWED = {
    "replaystore.store": set(),
    "replaystore.common": {"replaystore.store"},
    "replaystore.agent": {"replaystore.store", "replaystore.common"},
    "replaystore.analysis": {"replaystore.store", "replaystore.common", "replaystore.agent"},
}


def _imports(folder: str) -> dict[str, set[str]]:
    """module name -> the project modules it imports (absolute names)."""
    package = PACKAGES[folder]
    out: dict[str, set[str]] = {}
    for name in sorted(os.listdir(os.path.join(ROOT, folder))):
        if not name.endswith(".py"):
            continue
        module = package if name == "__init__.py" else f"{package}.{name[:-3]}"
        with open(os.path.join(ROOT, folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = package.split(".")  # each folder is one flat package
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
        out[module] = {m for m in found if m == "replaystore" or m.startswith("replaystore.")}
    return out


def _part(module: str) -> str:
    for p in ("replaystore.store", "replaystore.common", "replaystore.agent", "replaystore.analysis"):
        if module == p or module.startswith(p + "."):
            return p
    return "replaystore"  # the face: replaystore itself, its cli and _cmd_* modules


@pytest.mark.parametrize("folder", ["store", "common", "agent", "analysis"])
def test_parts_never_import_the_face_or_a_part_above_them(folder):
    """A part's modules import only the parts below it (and never replaystore's face or CLI)."""
    part = PACKAGES[folder]
    bad = {}
    for module, targets in _imports(folder).items():
        # `from replaystore.store import X` names X as replaystore.store.X: judge by the part it lies in
        wrong = sorted(t for t in targets if _part(t) not in ALLOWED[part] | {part})
        if wrong:
            bad[module] = wrong
    assert {} == bad


def test_telemetry_and_tensorboard_are_not_a_circle():
    """common.telemetry uses common.tensorboard; tensorboard imports nothing of telemetry."""
    imports = _imports("common")
    assert "replaystore.common.tensorboard" in imports["replaystore.common.telemetry"]
    assert not {t for t in imports["replaystore.common.tensorboard"] if t.startswith("replaystore.common.telemetry")}


def test_the_face_imports_the_parts():
    """The face re-exports Telemetry and the version from common/ (the direction the parts can't take)."""
    face = _imports("replaystore")
    assert "replaystore.common" in face["replaystore"]
    assert any(t.startswith("replaystore.common.telemetry") for t in face["replaystore"])
