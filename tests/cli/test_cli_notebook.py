"""`replaystore notebook STORE --out FILE`: the forensic notebook shipped with the package, run by
papermill on a store of the user's own."""

from __future__ import annotations

import json
import os

import numpy as np

from replaystore._cmd_notebook import notebook_path, select_cells
from replaystore.cli import main
from replaystore.store import ReplayStore, Schema


def _own_store(path: str) -> str:
    """A small run of the test's own: two actors, an expert share of a quarter, episodes of 25."""
    n = 400
    with ReplayStore.create(path, Schema.transition((4,)), actors=("expert", "dqn"), window=1000,
                            metadata={"expert_ratio": 0.25, "env_id": "MyEnv-v0"}) as s:
        rng = np.random.default_rng(0)
        state = rng.normal(size=(n + 1, 4))
        s.extend({"actor": ["expert" if i % 4 == 0 else "dqn" for i in range(n)], "state": state[:-1],
                  "next_state": state[1:], "discrete_action": rng.integers(0, 2, n).astype(np.int32),
                  "continuous_action": np.zeros((n, 0)), "reward": rng.normal(size=n),
                  "done": np.arange(n) % 25 == 24})
    return path


def test_the_notebook_is_shipped_with_parameters_and_tagged_sections():
    """The packaged notebook has a papermill `parameters` cell defining STORE, and the cells that
    need the repository's own example store are tagged so they can be left out."""
    with open(notebook_path(), encoding="utf-8") as f:
        nb = json.load(f)
    (params,) = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert "STORE = " in "".join(params["source"])
    n = len(nb["cells"])
    assert 4 == select_cells(nb, {"STORE": "x.h5"}) and n - 4 == len(nb["cells"])
    assert not any("analysis.audit(BUG_STORE)" in "".join(c["source"]) for c in nb["cells"])


def test_notebook_runs_on_a_store_of_ones_own(tmp_path, capsys):
    """The executed notebook holds the walk-through of the given store: its path injected as STORE,
    its composition and its audit, no cell in error, section 6 (the repository's example) left out."""
    store = _own_store(str(tmp_path / "mine.h5"))
    out = tmp_path / "report.ipynb"
    assert 0 == main(["notebook", store, "--out", str(out), "--json"]), capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    assert str(out) == printed["out"] and {"STORE": store} == printed["parameters"]
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = "\n".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                     for o in outputs)
    assert f"STORE = {store!r}".replace("'", '"') in "".join(
        "".join(c["source"]) for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))
    assert "declared expert_ratio: 0.25" in text and "MyEnv-v0" in text
    assert "## 6." not in json.dumps(nb["cells"])
    # a second run into the same file needs --overwrite; a wrong suffix or store is refused before a kernel starts
    assert 2 == main(["notebook", store, "--out", str(out)])
    assert "pass --overwrite" in capsys.readouterr().err
    assert 2 == main(["notebook", store, "--out", str(tmp_path / "report.pdf")])
    assert "expected a file ending in .ipynb or .html" in capsys.readouterr().err
    assert 2 == main(["notebook", str(tmp_path / "none.h5"), "--out", str(tmp_path / "r.html")])
    assert capsys.readouterr().err.startswith("error: ")
    assert ["mine.h5", "mine.h5.commit", "mine.h5.d", "report.ipynb"] == sorted(os.listdir(tmp_path))


def test_a_failing_cell_is_one_line_and_the_partial_notebook_is_kept(tmp_path, capsys):
    """Section 6 pointed at a store that does not exist: exit 2, one line naming the cell and the
    error, no report at --out, and the partly run notebook beside it for a look."""
    store = _own_store(str(tmp_path / "mine.h5"))
    out = tmp_path / "report.ipynb"
    assert 2 == main(["notebook", store, "--out", str(out), "--param", "BUG_STORE=/nonexistent/bug.h5"])
    err = capsys.readouterr().err
    assert 1 == len(err.splitlines()), err
    assert err.startswith("error: the notebook failed in cell "), err
    assert "StoreNotFoundError: no store at /nonexistent/bug.h5" in err
    assert not out.exists()
    failed = tmp_path / "report.failed.ipynb"
    assert str(failed) in err
    cells = json.loads(failed.read_text())["cells"]
    assert any(o["output_type"] == "error" for c in cells if c["cell_type"] == "code" for o in c["outputs"])
