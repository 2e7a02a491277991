"""Every docstring example in the installed packages runs, under the names users import.

pytest's --doctest-modules would import ``store/format/_format.py`` as a top-level ``store`` package (the
repository's folder name), a second copy beside ``replaystore.store``; so the modules are found
through the installed namespace instead and their examples run here.
"""

from __future__ import annotations

import doctest
import importlib
import os
import pkgutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("replaystore", "replaystore.common", "replaystore.store", "replaystore.agent", "replaystore.analysis",
            "replaystore.remote")


def _modules() -> list[str]:
    names = []
    for pkg_name in PACKAGES:
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        # walk_packages descends into subpackages (store/ keeps its modules in folders by role)
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg_name}.")
                  if not m.name.endswith(".__main__")]
    return sorted(set(names))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name, monkeypatch):
    """The module's examples (paths in them are relative to the repository root) all pass."""
    monkeypatch.chdir(ROOT)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):  # each example sees the module's names, as with pytest
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples in {name} failed (see above)"
