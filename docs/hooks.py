"""MkDocs hooks: the pages that are made from the repository rather than written twice.

- ``index.md``: the README's sections (links to files that are pages here are rewritten);
- ``benchmarks.md``: BENCHMARKS.md;
- ``cli.md``: every command's ``--help``, from the command line's own parsers;
- before the build, the package is laid out as the wheel installs it (``scripts/wheel_layout.py``),
  where mkdocstrings reads the docstrings.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# README/BENCHMARKS links -> the pages of this site
LINKS = {"docs/design.md": "design.md", "BENCHMARKS.md": "benchmarks.md"}


def _layout() -> str:
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        from wheel_layout import layout
    finally:
        sys.path.pop(0)
    return layout(os.path.join(ROOT, "build", "docs-src"))


# Made when mkdocs loads this hook, before any plugin's on_config: mkdocstrings drops a search path
# that does not exist yet when it configures itself, so a first build in a fresh clone found no
# replaystore.store (measured: the build failed once, then passed once the folder existed).
_SRC = _layout()


def on_config(config: Any) -> Any:
    src = _layout()  # refreshed: a page may have been added since the hook was loaded
    # griffe first tries a module name as a path relative to the working folder, where the
    # repository's replaystore/ (the face without store/, agent/, ...) would win over the layout;
    # mkdocs has made its own paths absolute by now, so the build runs from the layout's folder
    global _CWD
    _CWD = os.getcwd()
    os.chdir(src)
    return config


_CWD: str | None = None


def on_post_build(config: Any) -> None:
    if _CWD is not None:
        os.chdir(_CWD)


def on_build_error(error: Exception) -> None:
    on_post_build(None)


def _file(name: str) -> str:
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        text = f.read()
    for src, dst in LINKS.items():
        text = text.replace(f"]({src})", f"]({dst})")
    # links to repository files that are not pages (tests/data/, ...) become plain code
    return re.sub(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)",
                  lambda m: m.group(0) if m.group(2) in LINKS.values() else f"`{m.group(1)}`", text)


def _cli() -> str:
    from replaystore.cli import COMMANDS, build_parser

    out = ["# Command line", "",
           "`replaystore COMMAND [options]` (also `python -m replaystore`). Every command's `--help`, "
           "as the parsers print it:", ""]
    for name, (_, summary) in COMMANDS.items():
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            try:
                build_parser(name).parse_args([name, "--help"])
            except SystemExit:
                pass
        out += [f"## `replaystore {name}`", "", summary, "", "```text", text.getvalue().rstrip(), "```", ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    src = page.file.src_uri
    if src == "index.md":
        return _file("README.md")
    if src == "benchmarks.md":
        return _file("BENCHMARKS.md")
    if src == "cli.md":
        return _cli()
    return markdown
