"""Lay the repository's folders out as the wheel installs them, with symlinks: ``DEST/replaystore/``
holds a copy of the face's files and ``store``, ``agent``, ``analysis``, ``common``, ``notebooks``, ``remote`` as links.

Tools that read source without importing it (mypy, mkdocstrings' griffe) cannot follow the
editable install's import hook, which maps ``replaystore.store`` to ``store/``; pointed at this
layout they see the package exactly as a user's installed wheel gives it. Used by the docs build
(``docs/hooks.py``) and the typing test (``tests/packaging/test_typing.py``).

    python scripts/wheel_layout.py DEST
"""

from __future__ import annotations

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# pyproject.toml's [tool.setuptools.package-dir]: the subpackages kept in folders of their own
SUBPACKAGES = {"store": "store", "agent": "agent", "analysis": "analysis", "common": "common", "notebooks": "notebooks",
               "remote": "remote"}


def layout(dest: str) -> str:
    """Make (or refresh) the layout under ``dest``; returns ``dest``. Idempotent.

    The face's own files are copied (griffe resolves a linked ``__init__.py`` to its real folder,
    where ``store/`` is not a subfolder); the subpackages are linked.
    """
    pkg = os.path.join(dest, "replaystore")
    os.makedirs(pkg, exist_ok=True)
    face = os.path.join(ROOT, "replaystore")
    for name in os.listdir(face):
        src = os.path.join(face, name)
        if os.path.isfile(src):
            if os.path.islink(os.path.join(pkg, name)):
                os.remove(os.path.join(pkg, name))
            shutil.copyfile(src, os.path.join(pkg, name))
    for name, folder in SUBPACKAGES.items():
        link, target = os.path.join(pkg, name), os.path.join(ROOT, folder)
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python scripts/wheel_layout.py DEST")
    print(layout(sys.argv[1]))
