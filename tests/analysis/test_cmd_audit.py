"""`replaystore audit` and `replaystore compare` (replaystore/_cmd_audit.py, _cmd_compare.py)."""

from __future__ import annotations

import json
import os

import pytest
from analysis_helpers import golden, recorded

from replaystore.cli import main


def test_audit_writes_report_and_plots(tmp_path, capsys):
    """report.json, report.md and one PNG per plot are written; the summary is printed; exit 0."""
    out = tmp_path / "out"
    assert 0 == main(["audit", recorded("corrupt"), "--out", str(out)])
    files = set(os.listdir(out))
    assert {"report.json", "report.md", "actor_fractions.png", "batch_vs_buffer.png", "rewards.png",
            "returns.png", "td_errors.png", "q_over_steps.png"} == files
    d = json.loads((out / "report.json").read_text())
    assert "UNKNOWN_ACTOR_CODE" in [a["code"] for a in d["anomalies"]]
    assert "![rewards](rewards.png)" in (out / "report.md").read_text()
    assert "UNKNOWN_ACTOR_CODE" in capsys.readouterr().out


@pytest.mark.parametrize("name,level,code", [("incident", "error", 1), ("healthy", "error", 0),
                                             ("corrupt", "warning", 1)])
def test_fail_on_gates_the_exit_status(tmp_path, capsys, name, level, code):
    """--fail-on makes the exit status 1 when an anomaly of that severity or worse is found."""
    assert code == main(["audit", recorded(name), "--out", str(tmp_path), "--fail-on", level, "--no-plots"])
    if code:
        assert "failing:" in capsys.readouterr().err


def test_audit_expectations_from_the_command_line(tmp_path, capsys):
    """--expert-fraction and --expect feed audit(expected=...)."""
    assert 1 == main(["audit", recorded("healthy"), "--out", str(tmp_path), "--no-plots", "--fail-on", "error",
                      "--expert-fraction", "0.5", "0.02"])
    assert "EXPERT_FRACTION" in capsys.readouterr().out
    assert 2 == main(["audit", recorded("healthy"), "--out", str(tmp_path), "--expect", "{bad"])
    assert "error: --expect" in capsys.readouterr().err


def test_audit_bad_input_is_an_error_line_not_a_traceback(tmp_path, capsys):
    """A missing path and a non-store file print 'error: ...' and exit 2."""
    assert 2 == main(["audit", str(tmp_path / "missing.h5"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not exist" in err and "Traceback" not in err
    junk = tmp_path / "junk.h5"
    junk.write_text("x")
    assert 2 == main(["audit", str(junk), "--out", str(tmp_path)])
    assert "not an HDF5 file" in capsys.readouterr().err


def test_compare_exit_status(tmp_path, capsys):
    """compare exits 0 when the store matches the baseline, 1 on a regression, 2 on a bad baseline."""
    assert 0 == main(["compare", golden("healthy"), recorded("healthy")])
    assert "no regression" in capsys.readouterr().out
    out_json = tmp_path / "diff.json"
    assert 1 == main(["compare", golden("healthy"), recorded("incident"), "--json", str(out_json)])
    assert "new_anomaly: anomalies[SINGLE_ACTOR]" in capsys.readouterr().out
    assert json.loads(out_json.read_text())["ok"] is False
    d = json.loads(open(golden("healthy")).read())
    d["version"] = 7
    old = tmp_path / "old.json"
    old.write_text(json.dumps(d))
    assert 2 == main(["compare", str(old), recorded("healthy")])
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "version 7" in err


def test_compare_tolerance_options(tmp_path, capsys):
    """--tolerance PATTERN=VALUE loosens matching paths; a malformed one is an error."""
    d = json.loads(open(golden("healthy")).read())
    d["rewards"]["per_actor"]["dqn"]["mean"] += 0.01
    base = tmp_path / "b.json"
    base.write_text(json.dumps(d))
    assert 1 == main(["compare", str(base), golden("healthy")])
    capsys.readouterr()
    assert 0 == main(["compare", str(base), golden("healthy"), "--tolerance", "rewards.per_actor.*.mean=0.05"])
    assert 2 == main(["compare", str(base), golden("healthy"), "--tolerance", "nonsense"])
    assert "expected PATTERN=NUMBER" in capsys.readouterr().err


def test_audit_of_an_empty_store_says_so(tmp_path, capsys, empty_store):
    """An empty store is audited (exit 0) and the summary says there is nothing yet and no telemetry."""
    assert 0 == main(["audit", empty_store, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "EMPTY_STORE" in out and "no telemetry" in out


def test_compare_ignore_option(capsys):
    """--ignore PATTERN leaves paths out: the rest of the differences still count."""
    assert 1 == main(["compare", golden("healthy"), golden("healthy").replace("healthy", "corrupt"),
                      "--ignore", "store.*"])
    out = capsys.readouterr().out
    assert "store.metadata" not in out and "composition" in out


def test_audit_shows_the_evidence_and_the_skipped_checks(tmp_path, capsys):
    """On negated.h5 the terminal shows REWARD_SIGN with its measure, threshold, actor, rows and
    episodes, and which checks were skipped and why; report.md lists every check."""
    out = tmp_path / "out"
    assert 1 == main(["audit", recorded("negated"), "--out", str(out), "--no-plots", "--fail-on", "error"])
    text = capsys.readouterr().out
    d = json.loads((out / "report.json").read_text())
    (a,) = [a for a in d["anomalies"] if a["code"] == "REWARD_SIGN"]
    assert (f"evidence: share of positive non-zero rewards (at most, or at least 1 - it) 0, threshold 0.05; "
            f"actor 'expert', rows {a['rows']}, episodes {a['episodes'][:5]}") in text
    assert "checks: 16 ran, 1 skipped\n  skipped telemetry: no training telemetry" in text
    md = (out / "report.md").read_text()
    assert "| reward_currency | ran | REWARD_SIGN |" in md and "| telemetry | skipped |" in md


def test_audit_writes_no_blank_plot_for_a_store_without_telemetry(make_run, tmp_path):
    """A store with no training telemetry gets only the figures that have data: no empty TD/Q PNGs."""
    out = tmp_path / "out"
    assert main(["audit", make_run(train_steps=0), "--out", str(out)]) in (0, 1)
    files = set(os.listdir(out))
    assert {"report.json", "report.md", "actor_fractions.png", "rewards.png"} <= files
    assert not {"td_errors.png", "q_over_steps.png", "batch_vs_buffer.png"} & files
    assert "td_errors.png" not in (out / "report.md").read_text()
