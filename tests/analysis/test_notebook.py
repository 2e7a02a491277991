"""notebooks/forensics.ipynb: committed without outputs; executed with a real python3 kernel on the
recorded buffers, its tables hold the values this test computes independently from the raw columns."""

from __future__ import annotations

import json
import os
import sys

import nbformat
import numpy as np
import pytest
from analysis_helpers import recorded
from nbclient import NotebookClient

from replaystore.analysis import plots
from replaystore.store import ReplayStore

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "notebooks", "forensics.ipynb")
# Appended to the executed copy: the notebook's own tables, as JSON, for the asserts below.
DUMP = """
import json as _json
print("NOTEBOOK-TABLES " + _json.dumps({
    "composition": composition.astype(float).to_dict(orient="index"),
    "credit": credit.astype(float).to_dict(orient="index"),
    "finding": finding.to_dict(),
    "by_segment": {str(k): v for k, v in by_segment.astype(float).to_dict(orient="index").items()},
    "policy_finding": {"actor": policy_finding.actor, "rows": policy_finding.rows,
                       "severity": policy_finding.severity},
}))
"""


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


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run top to bottom on incident.h5 (sections 1-5) and negated.h5 (section 6)."""
    # JUPYTER_PATH comes first in the kernelspec search, before a user's own 'python3' kernel.
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (this interpreter)", "language": "python"}))
    env = {"JUPYTER_PATH": str(root), "REPLAYSTORE_STORE": recorded("incident"),
           "REPLAYSTORE_BUG_STORE": recorded("negated"), "MPLBACKEND": "Agg"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nb = nbformat.read(NOTEBOOK, as_version=4)
        nb.cells.append(nbformat.v4.new_code_cell(DUMP))
        NotebookClient(nb, kernel_name="python3", timeout=120,
                       resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    (line,) = [x for x in nb.cells[-1].outputs[0]["text"].splitlines() if x.startswith("NOTEBOOK-TABLES ")]
    return nb, json.loads(line.split(" ", 1)[1])


def _columns(name: str):
    with ReplayStore.open(recorded(name)) as s:
        return s.read(["actor", "episode", "reward", "done"]), s.window_start(), list(s.actors.names)


def test_notebook_runs_and_names_the_incident(executed):
    """Every cell runs without error, the verdict names the incident, and each figure with data is shown."""
    nb, _ = executed
    text = _text(nb)
    assert "The incident's signature" in text and "SINGLE_ACTOR" in text
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert [] == [o for o in outputs if o.get("output_type") == "error"]
    assert len(plots.FIGURES) == sum("image/png" in o.get("data", {}) for o in outputs)


def test_composition_table_matches_the_raw_codes(executed):
    """Rows, fractions and the window's rows and fractions per actor, from the codes (the 512.0 bug)."""
    _, tables = executed
    cols, ws, names = _columns("incident")
    codes = cols["actor"]
    whole = np.bincount(codes, minlength=len(names))
    window = np.bincount(codes[ws:], minlength=len(names))
    for i, a in enumerate(names):
        row = tables["composition"][a]
        assert (whole[i], window[i]) == (row["rows"], row["window rows"])
        assert np.isclose(whole[i] / len(codes), row["fraction"])
        assert np.isclose(window[i] / (len(codes) - ws), row["window fraction"])
    assert 1.0 == tables["composition"]["dqn"]["window fraction"]


def test_credit_table_matches_a_loop_over_episodes(executed):
    """Mean return-to-go per actor equals a plain loop over the episodes that ended."""
    _, tables = executed
    cols, _, names = _columns("incident")
    rtg = {a: [] for a in names}
    for e in np.unique(cols["episode"]):
        rows = np.flatnonzero(cols["episode"] == e)
        if not cols["done"][rows].any():
            continue
        togo = np.cumsum(cols["reward"][rows][::-1].astype(np.float64))[::-1]
        for r, g in zip(rows, togo):
            rtg[names[cols["actor"][r]]].append(g)
    assert len(rtg["dqn"]) == tables["credit"]["dqn"]["count"]
    assert np.isclose(np.mean(rtg["dqn"]), tables["credit"]["dqn"]["mean"], rtol=1e-5)
    assert 0 == tables["credit"]["expert"]["count"]


def test_walkthrough_finding_matches_the_rows_by_hand(executed):
    """Section 6: REWARD_SIGN on 'expert' over exactly the expert rows with negative rewards; the
    per-segment share of positive rewards matches numpy."""
    _, tables = executed
    cols, _, names = _columns("negated")
    f = tables["finding"]
    flipped = np.flatnonzero((cols["actor"] == 0) & (cols["reward"] < 0))
    assert ("expert", [int(flipped[0]), int(flipped[-1]) + 1]) == (f["actor"], f["rows"])
    assert np.unique(cols["episode"][flipped]).tolist() == f["episodes"]
    starts = sorted(int(k) for k in tables["by_segment"])
    seg_rows = starts[1]
    assert starts == list(range(0, len(cols["actor"]), seg_rows))
    for start, row in tables["by_segment"].items():
        sl = slice(int(start), int(start) + seg_rows)
        for i, a in enumerate(names):
            mine = cols["actor"][sl] == i
            expected = (cols["reward"][sl][mine] > 0).mean()
            assert np.isclose(expected, row[a]), (start, a)


def test_notebook_audits_another_environment_with_the_users_policy(executed):
    """Section 7: a MountainCar run whose tags were swapped in rows [1500, 2100), audited with a
    policy written in the notebook: TAG_POLICY on 'expert' inside the swapped stretch."""
    _, tables = executed
    f = tables["policy_finding"]
    assert ("expert", "error") == (f["actor"], f["severity"])
    assert 1500 <= f["rows"][0] < 1700 and 1900 < f["rows"][1] <= 2100
