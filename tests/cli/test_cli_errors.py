"""No traceback reaches the user: a closed output pipe ends quietly, an unexpected error is one
line naming the file that holds its traceback (``--debug`` prints it instead), and every command
that reports has ``--json``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from replaystore import cli
from replaystore.cli import EXIT_PIPE, EXIT_UNEXPECTED, main

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
HEALTHY, INCIDENT = os.path.join(DATA, "healthy.h5"), os.path.join(DATA, "incident.h5")


def _pipe_into_head(argv: list[str]) -> tuple[int, str, str]:
    """Run ``replaystore ARGV | head -1`` for real: the reader leaves after one line."""
    p = subprocess.Popen([sys.executable, "-m", "replaystore", *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = p.stdout.readline()
    p.stdout.close()  # what `head -1` does after its line
    err = p.stderr.read()
    return p.wait(timeout=120), first, err


@pytest.mark.parametrize("argv", [
    ["watch", HEALTHY, "--json", "--frames", "100000", "--interval", "0.001", "--audit-every", "0"],
    ["audit", INCIDENT, "--json"],
])
def test_a_closed_pipe_ends_quietly(argv):
    """`| head -1`: the first line arrives, then exit 141 (as `yes | head` reports) and nothing on stderr."""
    if argv[0] == "audit":  # one 40 kB document fits the pipe: make the reader leave before it is written
        argv = ["audit", INCIDENT, "--json", "--bucket-rows", "1"]
    rc, first, err = _pipe_into_head(argv)
    assert "" == err
    assert first.startswith("{")
    assert EXIT_PIPE == rc == 141


def test_an_unexpected_error_is_one_line_and_a_file(tmp_path, monkeypatch, capsys):
    """A bug inside a command: exit 3, one stderr line naming the error and the traceback's file;
    --debug prints the traceback itself (before or after the command name)."""
    import replaystore._cmd_info as info

    def broken(args):
        raise RuntimeError("the summary's table went missing\nsecond line")

    monkeypatch.setattr(info, "run", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert EXIT_UNEXPECTED == main(["info", HEALTHY])
    out, err = capsys.readouterr()
    assert "" == out and 1 == len(err.splitlines()), err
    assert err.startswith("error: unexpected RuntimeError: the summary's table went missing (traceback in ")
    assert err.rstrip().endswith("; rerun with --debug to print it)")
    (log,) = os.listdir(tmp_path)
    assert log.startswith("replaystore-info-") and str(tmp_path / log) in err
    text = (tmp_path / log).read_text()
    assert "Traceback (most recent call last)" in text and "second line" in text
    for argv in (["--debug", "info", HEALTHY], ["info", HEALTHY, "--debug"]):
        assert EXIT_UNEXPECTED == main(argv)
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "RuntimeError: the summary's table" in err


def test_debug_is_in_every_help(capsys):
    """--debug is offered by the top level and by each command."""
    for argv in ([], ["info"], ["verify"]):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        assert "--debug" in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_each_default_is_shown_once(capsys, command):
    """No `(default 128) (default: 128)`: an option's help says its default at most once."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for chunk in text.split("  --")[1:]:
        assert chunk.count("(default") <= 1, chunk


def _format2_copy(tmp_path) -> str:
    """A format-2 store with full segments (the test data are format 1: verify needs checksums)."""
    import numpy as np

    from replaystore.store import ReplayStore, Schema

    path = str(tmp_path / "f2.h5")
    with ReplayStore.create(path, Schema.transition((2,)), actors=("expert", "dqn"), window=64,
                            segment_rows=64) as s:
        n = 512
        s.extend({"actor": ["expert", "dqn"] * (n // 2), "state": np.zeros((n, 2)), "next_state": np.ones((n, 2)),
                  "discrete_action": np.zeros(n, np.int32), "continuous_action": np.zeros((n, 0)),
                  "reward": np.ones(n), "done": np.arange(n) % 16 == 15})
    return path


def test_verify_compact_export_and_convert_print_json(tmp_path, capsys):
    """verify, compact, export and convert --json print one JSON document to stdout and nothing else there."""
    copy = str(tmp_path / "copy.h5")
    assert 0 == main(["convert", HEALTHY, copy, "--json"])
    assert {"old": HEALTHY, "new": copy, "rows": 3072, "format_version": 2} == json.loads(capsys.readouterr().out)
    assert 0 == main(["verify", copy, "--json"])
    assert json.loads(capsys.readouterr().out)["ok"] is True
    path = _format2_copy(tmp_path)
    assert 0 == main(["verify", path, "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["ok"] is True and [] == d["damaged"] and 512 == d["rows"]["transitions"]
    assert 0 == main(["compact", path, "--json"])
    d = json.loads(capsys.readouterr().out)
    assert "blosc-lz4" == d["codec"] == d["filter"] and d["segments"] and all(isinstance(k, int) for k in d["segments"])
    assert 0 == main(["verify", path, "--json"])  # compacted segments still match their checksums
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert 0 == main(["export", path, "--format", "parquet", "--out", str(tmp_path / "pq"), "--json"])
    d = json.loads(capsys.readouterr().out)
    assert 512 == d["rows"] == sum(f["rows"] for f in d["files"]) and d["files"][0]["shard"] is None
    assert all(os.path.exists(f["path"]) for f in d["files"])
    shutil.rmtree(tmp_path / "pq")
