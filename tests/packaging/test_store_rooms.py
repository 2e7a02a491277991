"""store/'s rooms import downwards only (README, "How it is built"): files < format < read < write
< sample < run < tools. A module-level import of a room above is refused; an import inside a
function (run only when called) is allowed only where ``LAZY_UP`` lists it, so the list only shrinks.
Imports under ``if TYPE_CHECKING:`` are names for annotations and are not counted."""

from __future__ import annotations

import ast
import os

ROOMS = ["files", "format", "read", "write", "sample", "run", "tools"]
STORE = os.path.join(os.path.dirname(__file__), "..", "..", "store")
# (module, room it reaches up to): each is a call that needs a whole-store tool or a run
LAZY_UP = {
    ("read/_store.py", "tools"),      # ReplayStore.summary() calls tools.summarize
    ("sample/_sampler.py", "run"),    # Sampler(run) samples a Run through its RunSource
}


def _upward(room: str, path: str):
    """``(module-level?, room)`` for each import of ``path`` that reaches a room above ``room``."""
    rank = {r: i for i, r in enumerate(ROOMS)}
    found = []

    def walk(node, top):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.ImportFrom) and child.level == 2 and child.module:
                target = child.module.split(".")[0]
                if target in rank and rank[target] > rank[room]:
                    found.append((top, target))
            walk(child, top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    with open(path) as f:
        walk(ast.parse(f.read()), True)
    return found


def test_rooms_import_downwards_only():
    top, lazy = [], set()
    for room in ROOMS:
        folder = os.path.join(STORE, room)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                for at_top, target in _upward(room, os.path.join(folder, name)):
                    (top.append if at_top else lazy.add)((f"{room}/{name}", target))
    assert top == [], f"module-level imports of a room above: {top}"
    assert lazy == LAZY_UP, f"lazy imports of a room above changed; now {sorted(lazy)}"
