"""notebooks/forensics.ipynb: committed without outputs, runs top to bottom on a recorded buffer."""

from __future__ import annotations

import json
import os
import sys

import nbformat
from analysis_helpers import recorded
from nbclient import NotebookClient

from replaystore.analysis import plots

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "notebooks", "forensics.ipynb")


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_notebook_is_committed_without_outputs():
    """No code cell carries outputs or an execution count in the committed notebook."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert [] == [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]


def _pin_kernel_to_this_interpreter(tmp_path, monkeypatch) -> None:
    # JUPYTER_PATH comes first in the kernelspec search, before a user's own 'python3' kernel.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (this interpreter)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))


def test_notebook_runs_on_the_incident(tmp_path, monkeypatch):
    """Executed with a real python3 kernel on incident.h5, every cell runs and the verdict names the incident."""
    _pin_kernel_to_this_interpreter(tmp_path, monkeypatch)
    monkeypatch.setenv("REPLAYSTORE_STORE", recorded("incident"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=120,
                   resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    text = _text(nb)
    assert "The incident's signature" in text
    assert "SINGLE_ACTOR" in text
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert [] == [o for o in outputs if o.get("output_type") == "error"]
    assert len(plots.FIGURES) == sum("image/png" in o.get("data", {}) for o in outputs)
