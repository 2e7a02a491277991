#!/usr/bin/env python3
"""Move store/'s flat modules into folders by role and rewrite every import of them (issue #15, item 1).

Run once, from anywhere, after the branches that still edit store/ files are merged:

    python scripts/restructure_store.py [REPO_ROOT]        # default: this script's repository

It is idempotent: a second run finds nothing to move or rewrite and says so. What it does:

1. ``git mv store/<m>.py store/<room>/<m>.py`` for every module in ``MAPPING`` still at the top, and
   writes each room's ``__init__.py`` (a docstring only: importing one room imports nothing else).
   A flat module that is not in ``MAPPING`` is reported and left where it is (exit status 1): add
   it to ``MAPPING`` and run again.
2. Rewrites imports across the repository:
   - inside store/, every relative import (``from ._x import y``, ``from . import _x``,
     ``from .errors import E``), resolved against where the module was and re-expressed from
     where it is now (``from ..format._record import y``);
   - everywhere (``*.py``, ``*.ipynb``, ``*.md``, ``*.toml``, ``*.txt``, ``*.cfg``), dotted names
     ``replaystore.store._x`` (imports, monkeypatch targets, ``import_module`` strings) and
     ``from replaystore.store import _x, _y`` (split by room when the names live in different rooms);
   - file paths ``store/_x.py`` in comments and docs.
3. Adds the rooms to ``[tool.setuptools] packages`` in pyproject.toml.

Every change is printed. Nothing here imports the project: it reads and writes text, so it works
on a tree whose imports are, for the moment, broken.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
import subprocess
import sys

# ---------------------------------------------------------------------------------------------
# The one table. Rooms, lowest first: a room imports only rooms above it in this list (the
# exceptions that remain are listed by tests/packaging/test_import_cycles.py).
ROOMS = {
    "files": "The file layer: every open, write, fsync, rename and unlink of the store's files (LevelDB's Env).",
    "format": "What is on disk: schema, actors, format constants, checksums, segments, the commit record and\n"
              "the manifest. Reading and writing both build on it; it knows nothing about either role.",
    "read": "The reading role: ReplayStore (the API both roles share), StoreReader, the table views over\n"
            "mapped bytes, and format-1 stores opened read-only.",
    "write": "The writing role: StoreWriter, atomic creation, the one-row append, blocks, the table writer\n"
             "and the checks on values entering the store.",
    "sample": "Sampling: the Sampler, its strategies (uniform, stratified, prioritized), the SampleSource\n"
              "protocol, the sum tree and the priorities file.",
    "run": "Runs: a folder of shards, one store per writing process, and its shards as one sample source.",
    "tools": "Whole-store operations built on the roles: verify, compact, convert, summary.",
}

MAPPING = {
    # files: below everything except errors
    "_fileio": "files",
    "_h5image": "files",
    "_mapped": "files",
    "_untrusted": "files",      # branch hostile: bounded JSON, HDF5 datasets kept in their own file (imports errors only)
    # format
    "_schema": "format",
    "_actors": "format",
    "_format": "format",
    "_checksum": "format",
    "_sums": "format",
    "_segment": "format",
    "_record": "format",
    "_manifest": "format",
    "_telemetry": "format",
    "_frames": "read",         # FrameStack and the reading hook that rebuilds stacks (installs the writer half too)
    # read
    "_store": "read",
    "_reader": "read",
    "_views": "read",
    "_v1": "read",
    # write
    "_writer": "write",
    "_create": "write",
    "_append": "write",
    "_blocks": "write",
    "_tablewriter": "write",
    "_validate": "write",
    "_frames_writer": "write",
    # sample
    "_sampler": "sample",
    "_sampler_index": "sample",
    "_sampling_source": "sample",
    "_sampling_strategies": "sample",
    "_sampling_prioritized": "sample",
    "_sampling_priorities": "sample",
    "_sumtree": "sample",
    # run
    "_run": "run",
    "_run_source": "run",
    # tools
    "_verify": "tools",
    "_compact": "tools",
    "_convert": "tools",
    "_summary": "tools",
    # NEW MODULES from branches merged later go here, e.g. "_trust": "format", "_jsonsafe": "files".
}

# Stay at store/'s top: the package face and the public errors module (``replaystore.store.errors``).
TOP = {"__init__", "errors"}

STORE = "store"                 # the folder, relative to the repository root
PKG = "replaystore.store"       # its installed name
TEXT_SUFFIXES = (".py", ".ipynb", ".md", ".toml", ".txt", ".cfg", ".ini", ".rst")
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist"}
SELF = os.path.abspath(__file__)


def say(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# 1. moving
def check_mapping() -> None:
    bad = {m: r for m, r in MAPPING.items() if r not in ROOMS}
    if bad:
        raise SystemExit(f"MAPPING names rooms not in ROOMS: {bad}; add them to ROOMS or fix the names")


def move_modules(root: str) -> tuple[int, list[str]]:
    store = os.path.join(root, STORE)
    moved = 0
    for room, doc in ROOMS.items():
        folder = os.path.join(store, room)
        init = os.path.join(folder, "__init__.py")
        if not os.path.exists(init):
            os.makedirs(folder, exist_ok=True)
            with open(init, "w") as f:
                f.write(f'"""{doc}\n\nNothing is imported here: the public names are exported by ``replaystore.store``."""\n')
            subprocess.run(["git", "add", init], cwd=root, check=True)
            say(f"created {os.path.relpath(init, root)}")
    for mod, room in sorted(MAPPING.items()):
        src = os.path.join(store, f"{mod}.py")
        dst = os.path.join(store, room, f"{mod}.py")
        if os.path.exists(src) and os.path.exists(dst):
            raise SystemExit(f"both {src} and {dst} exist: merge them by hand, then run again")
        if os.path.exists(src):
            tracked = subprocess.run(["git", "ls-files", "--error-unmatch", src], cwd=root,
                                     capture_output=True).returncode == 0
            cmd = ["git", "mv", src, dst] if tracked else ["mv", src, dst]
            subprocess.run(cmd, cwd=root, check=True)
            moved += 1
            say(f"moved store/{mod}.py -> store/{room}/{mod}.py")
    unmapped = sorted(n[:-3] for n in os.listdir(store)
                      if n.endswith(".py") and n[:-3] not in TOP and n[:-3] not in MAPPING)
    return moved, unmapped


# ---------------------------------------------------------------------------------------------
# 2a. relative imports inside store/
def _exists(root: str, dotted: list[str]) -> bool:
    """Whether store-relative module parts (e.g. ["format", "_record"]) name a module or package."""
    base = os.path.join(root, STORE, *dotted)
    return os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py"))


def _map_flat(parts: list[str]) -> list[str] | None:
    """A store-relative path as the flat layout named it, in the new layout (None: not a moved module)."""
    if parts and parts[0] in MAPPING:
        return [MAPPING[parts[0]], *parts]
    return None


def _resolve(root: str, pkg: list[str], level: int, module: str | None) -> list[str] | None:
    """Store-relative target parts of ``from <level dots><module> import``, or None when it leaves store/."""
    if level - 1 > len(pkg):
        return None
    base = pkg[: len(pkg) - (level - 1)]
    return base + (module.split(".") if module else [])


def _relative(pkg: list[str], target: list[str]) -> str:
    """``from`` text reaching store-relative ``target`` from package ``pkg`` (both store-relative)."""
    common = 0
    while common < min(len(pkg), len(target)) and pkg[common] == target[common]:
        common += 1
    return "." * (len(pkg) - common + 1) + ".".join(target[common:])


def _where(root: str, pkg: list[str], target: list[str]) -> list[str]:
    """The target as it exists now: unchanged if it exists, else the flat name mapped to its room."""
    if _exists(root, target) or not target:
        return target
    flat = target[len(pkg):] if target[: len(pkg)] == pkg else None
    # a module written relative to store/'s top (``.x`` in a flat file, ``..x`` from a room)
    for candidate in (flat, target):
        if candidate:
            if _exists(root, candidate):  # a module that stays at store/'s top (errors)
                return candidate
            mapped = _map_flat(candidate)
            if mapped and _exists(root, mapped):
                return mapped
    return target


def rewrite_store_relative(root: str, path: str) -> list[str]:
    rel = os.path.relpath(path, os.path.join(root, STORE))
    pkg = os.path.dirname(rel).split(os.sep) if os.path.dirname(rel) else []
    with open(path) as f:
        src = f.read()
    tree = ast.parse(src, path)
    lines = src.splitlines(keepends=True)
    edits = []  # (lineno, old_line_text, new_line_text) whole-line replacements, applied bottom-up
    notes = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        target = _resolve(root, pkg, node.level, node.module)
        if target is None:
            continue
        if node.module is None:
            # ``from . import a, b``: each name is a module (maybe moved) or an attribute of the package
            groups: dict[tuple, list[str]] = {}
            for alias in node.names:
                where = target
                if not _exists(root, target + [alias.name]) and target[: len(pkg)] == pkg:
                    flat = target[len(pkg):] + [alias.name]  # written for the flat layout
                    mapped = flat if _exists(root, flat) else _map_flat(flat)
                    if mapped and _exists(root, mapped):
                        where = mapped[:-1]
                text = alias.name + (f" as {alias.asname}" if alias.asname else "")
                groups.setdefault(tuple(where), []).append(text)
            froms = [(_relative(pkg, list(w)), names) for w, names in groups.items()]
            if len(froms) == 1 and froms[0][0] == "." * node.level:
                continue
        else:
            froms = [(_relative(pkg, _where(root, pkg, target)), None)]
            if froms[0][0] == "." * node.level + node.module:
                continue
        if node.end_lineno != node.lineno and len(froms) > 1:
            raise SystemExit(f"{path}:{node.lineno}: a multi-line `from . import` spanning rooms; split it by hand")
        line = lines[node.lineno - 1]
        head = re.compile(r"from\s+\.+[\w.]*\s+import\s+")
        m = head.match(line, node.col_offset)
        if not m:
            raise SystemExit(f"{path}:{node.lineno}: cannot find the import text to rewrite: {line!r}")
        if len(froms) == 1:
            new = line[: m.start()] + f"from {froms[0][0]} import " + line[m.end():]
        else:
            indent = line[: node.col_offset]
            rest = line[node.end_col_offset:] if node.end_lineno == node.lineno else "\n"
            parts = [f"from {f} import {', '.join(names)}" for f, names in froms]
            new = indent + ("\n" + indent).join(parts) + rest
        edits.append((node.lineno, line, new))
        notes.append(f"  {os.path.relpath(path, root)}:{node.lineno}: {line.strip()}  ->  {new.strip()}")
    for lineno, _old, new in sorted(edits, reverse=True):
        lines[lineno - 1] = new
    if edits:
        with open(path, "w") as f:
            f.write("".join(lines))
    return notes


# ---------------------------------------------------------------------------------------------
# 2b. absolute names and file paths anywhere
DOTTED = re.compile(r"replaystore\.store\.(_\w+)")
FROM_PKG = re.compile(r"^(?P<indent>[ \t]*)from replaystore\.store import (?P<names>[^()\n#]+?)(?P<tail>[ \t]*(#.*)?)$",
                      re.MULTILINE)
PAREN_FROM_PKG = re.compile(r"from replaystore\.store import \(([^)]*)\)")
PATHS = re.compile(r"(?<![\w/.])store/(_\w+)\.py")


def _dotted(m: re.Match) -> str:
    mod = m.group(1)
    return f"{PKG}.{MAPPING[mod]}.{mod}" if mod in MAPPING else m.group(0)


def _from_pkg(m: re.Match) -> str:
    names = [n.strip() for n in m.group("names").split(",") if n.strip()]
    if not any(n.split(" as ")[0].strip() in MAPPING for n in names):
        return m.group(0)
    groups: dict[str, list[str]] = {}
    for n in names:
        mod = n.split(" as ")[0].strip()
        groups.setdefault(f"{PKG}.{MAPPING[mod]}" if mod in MAPPING else PKG, []).append(n)
    out = [f"{m.group('indent')}from {pkg} import {', '.join(ns)}" for pkg, ns in groups.items()]
    out[0] += m.group("tail")
    return "\n".join(out)


def _paths(m: re.Match) -> str:
    mod = m.group(1)
    return f"store/{MAPPING[mod]}/{mod}.py" if mod in MAPPING else m.group(0)


def rewrite_text(text: str) -> str:
    text = FROM_PKG.sub(_from_pkg, text)
    text = DOTTED.sub(_dotted, text)
    return PATHS.sub(_paths, text)


def rewrite_notebook(text: str) -> str:
    """Rewrite code and markdown cells of a notebook, keeping its JSON layout byte for byte elsewhere."""
    nb = json.loads(text)
    changed = False
    for cell in nb.get("cells", []):
        src = cell.get("source", [])
        joined = "".join(src) if isinstance(src, list) else src
        new = rewrite_text(joined)
        if new != joined:
            cell["source"] = new.splitlines(keepends=True) if isinstance(src, list) else new
            changed = True
    if not changed:
        return text
    indent = 1 if text.startswith("{\n \"") else 2
    return json.dumps(nb, indent=indent, ensure_ascii=False) + ("\n" if text.endswith("\n") else "")


def repo_files(root: str):
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith(".venv"))
        for name in sorted(files):
            if name.endswith(TEXT_SUFFIXES):
                yield os.path.join(d, name)


def rewrite_everywhere(root: str) -> int:
    changed = 0
    for path in repo_files(root):
        if os.path.abspath(path) == SELF:
            continue
        with open(path, encoding="utf-8") as f:
            try:
                text = f.read()
            except UnicodeDecodeError:
                continue
        new = rewrite_notebook(text) if path.endswith(".ipynb") else rewrite_text(text)
        for m in PAREN_FROM_PKG.finditer(new):  # ``from replaystore.store import (`` over lines: by hand
            if any(n.split(" as ")[0].strip() in MAPPING for n in m.group(1).replace("\n", " ").split(",")):
                say(f"REWRITE BY HAND: {os.path.relpath(path, root)}: a parenthesized `from replaystore.store import (...)`"
                    " names store modules that moved")
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            changed += 1
            n = sum(1 for d in difflib.unified_diff(text.splitlines(), new.splitlines(), lineterm="", n=0)
                    if d.startswith("+") and not d.startswith("+++"))
            say(f"rewrote names/paths in {os.path.relpath(path, root)} ({n} line(s))")
    return changed


# ---------------------------------------------------------------------------------------------
# 3. pyproject.toml
def update_pyproject(root: str) -> bool:
    path = os.path.join(root, "pyproject.toml")
    with open(path) as f:
        text = f.read()
    m = re.search(r"^packages\s*=\s*\[(?P<body>[^\]]*)\]", text, re.MULTILINE)
    if not m:
        raise SystemExit("pyproject.toml: no `packages = [...]` under [tool.setuptools]; list the store rooms by hand")
    listed = re.findall(r'"([^"]+)"', m.group("body"))
    missing = [f"{PKG}.{room}" for room in ROOMS if f"{PKG}.{room}" not in listed]
    if not missing:
        return False
    at = listed.index(PKG) + 1 if PKG in listed else len(listed)
    for i, name in enumerate(missing):
        listed.insert(at + i, name)
    body = ", ".join(f'"{n}"' for n in listed)
    new = text[: m.start()] + f"packages = [{body}]" + text[m.end():]
    with open(path, "w") as f:
        f.write(new)
    say(f"pyproject.toml: added {', '.join(missing)} to [tool.setuptools] packages")
    return True


# ---------------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    root = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(SELF), ".."))
    if not os.path.isdir(os.path.join(root, STORE)):
        raise SystemExit(f"{root}: no {STORE}/ folder; pass the repository root")
    check_mapping()
    moved, unmapped = move_modules(root)
    notes = []
    for path in repo_files(os.path.join(root, STORE)):
        if path.endswith(".py"):
            notes += rewrite_store_relative(root, path)
    if notes:
        say(f"rewrote {len(notes)} relative import(s) in store/:")
        for n in notes:
            say(n)
    texts = rewrite_everywhere(root)
    toml = update_pyproject(root)
    if moved or notes or texts or toml:
        say(f"done: {moved} module(s) moved, {len(notes)} relative import(s) and {texts} file(s) rewritten"
            + (", pyproject.toml updated" if toml else ""))
    else:
        say("nothing to do: store/ is already laid out by room")
    if unmapped:
        say(f"NOT MOVED (not in MAPPING; add each to MAPPING in {os.path.relpath(SELF, root)} and run again): "
            + ", ".join(f"store/{m}.py" for m in unmapped))
        return 1
    if toml:
        say("reinstall (pyproject changed): .venv/bin/pip install --no-deps --no-build-isolation -e .  (or ./scripts/test)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
