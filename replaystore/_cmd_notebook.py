"""``replaystore notebook STORE --out report.ipynb|report.html``: the forensic notebook on your run.

The notebook shipped with the package (``replaystore.notebooks``, ``forensics.ipynb``) is run by
papermill with ``STORE`` set to the given store, so a user gets the walk-through of their own
run: who filled the buffer and the batches, rewards and credit per actor, the telemetry, the
audit, its plots and its verdict. ``--out`` ending in ``.html`` is converted with nbconvert.

The notebook's cell tagged ``parameters`` holds its defaults (the incident store of the tests).
A cell tagged ``needs-NAME`` uses a store only the repository has (section 6's ``BUG_STORE``):
it runs only when ``--param NAME=VALUE`` gives that parameter, and is left out otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any

NOTEBOOK = "forensics.ipynb"
FORMATS = (".ipynb", ".html")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="the store (.h5) to walk through")
    p.add_argument("--out", required=True, metavar="FILE", help="the executed notebook: report.ipynb, or report.html")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="another notebook parameter (repeatable); VALUE as JSON, else a string, "
                        "e.g. --param BUG_STORE=tests/data/negated.h5")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds one cell may run")
    p.add_argument("--json", action="store_true", help='print {"out", "store", "parameters", "cells"} as JSON')
    p.epilog = ("for this command: 0 the notebook ran, 2 unreadable store, bad --out, a failing cell (the partly "
                "run notebook is kept beside --out) or a missing [notebook] extra\n\n" + (p.epilog or ""))


def notebook_path() -> str:
    """The shipped notebook's file (inside the installed package)."""
    from importlib.resources import files

    return str(files("replaystore.notebooks").joinpath(NOTEBOOK))


def _parameters(store: str, pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {"STORE": os.path.abspath(store)}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--param {pair!r}: expected NAME=VALUE with NAME a Python identifier")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = os.path.abspath(value) if os.path.exists(value) else value
    return params


def select_cells(nb: dict[str, Any], params: dict[str, Any]) -> int:
    """Drop the cells tagged ``needs-NAME`` whose parameter NAME is not given; returns how many."""
    keep = [c for c in nb["cells"]
            if all(t[len("needs-"):] in params for t in c.get("metadata", {}).get("tags", []) if t.startswith("needs-"))]
    dropped = len(nb["cells"]) - len(keep)
    nb["cells"] = keep
    return dropped


def run(args: argparse.Namespace) -> int:
    from replaystore.common.extras import require_extra

    require_extra("notebook", "replaystore notebook")  # before anything is written
    from replaystore.store import ReplayStore
    from replaystore.store.errors import StoreError

    out = os.path.abspath(args.out)
    ext = os.path.splitext(out)[1].lower()
    try:
        if ext not in FORMATS:
            raise ValueError(f"--out {args.out!r}: expected a file ending in {' or '.join(FORMATS)}")
        if os.path.exists(out) and not args.overwrite:
            raise FileExistsError(f"--out {args.out} exists; pass --overwrite to replace it")
        if not os.path.isdir(os.path.dirname(out)):
            raise FileNotFoundError(f"--out {args.out}: the folder {os.path.dirname(out)} does not exist")
        ReplayStore.open(args.path, "r").close()  # a missing or damaged store: one line, before any kernel starts
        params = _parameters(args.path, args.param)
    except (StoreError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(notebook_path(), encoding="utf-8") as f:
        nb = json.load(f)
    select_cells(nb, params)
    executed = _execute(nb, params, os.path.dirname(out), args.timeout, out)
    if executed is None:
        return 2
    if ext == ".html":
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(executed)
        _write(out, body)
    else:
        import nbformat

        _write(out, nbformat.writes(executed))
    if args.json:
        print(json.dumps({"out": out, "store": params["STORE"], "parameters": params, "cells": len(executed.cells)}))
    else:
        print(f"wrote {out}: the forensic notebook run on {params['STORE']} ({len(executed.cells)} cells)")
    return 0


def _execute(nb: dict[str, Any], params: dict[str, Any], cwd: str, timeout: float, out: str) -> Any:
    """The executed notebook (a NotebookNode), or None after printing where the failed one went."""
    import nbformat
    import papermill as pm

    with tempfile.TemporaryDirectory(prefix="replaystore-notebook-") as tmp:
        src, dst = os.path.join(tmp, NOTEBOOK), os.path.join(tmp, "out.ipynb")
        with open(src, "w", encoding="utf-8") as f:
            json.dump(nb, f)
        try:
            # kernel "python3" is this interpreter: jupyter_client runs a kernel whose command is
            # `python` with sys.executable, so the kernel sees the same replaystore
            pm.execute_notebook(src, dst, parameters=params, kernel_name="python3", cwd=cwd, progress_bar=False,
                                log_output=False, execution_timeout=timeout)
        except pm.PapermillExecutionError as e:
            failed = os.path.splitext(out)[0] + ".failed.ipynb"
            if os.path.exists(dst):
                os.replace(dst, failed)
                kept = f"; the partly run notebook is {failed}"
            else:
                kept = ""
            print(f"error: the notebook failed in cell {e.exec_count}: {e.ename}: {e.evalue}{kept}", file=sys.stderr)
            return None
        return nbformat.read(dst, as_version=4)


def _write(path: str, text: str) -> None:
    """Write whole or not at all: the file layer's one atomic replace (a temp file beside ``path``)."""
    from replaystore.store import file_layer

    file_layer().write_atomic(path, text.encode("utf-8"), False, "notebook", tmp=f"{path}.{os.getpid()}.tmp",
                              then="The file that was there before is unchanged")
