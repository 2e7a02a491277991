"""Modules under tests/ have unique file names: pytest imports test modules and their helpers by
basename (rootdir mode, no packages), so two ``test_images.py`` in two folders stopped the whole
suite at collection."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_module_name_under_tests_is_unique():
    seen = defaultdict(list)
    for p in TESTS.rglob("*.py"):
        if p.name not in ("conftest.py", "__init__.py"):
            seen[p.name].append(str(p.relative_to(TESTS)))
    clashes = {name: where for name, where in seen.items() if len(where) > 1}
    assert not clashes, f"module names used in more than one folder (rename one of each): {clashes}"
