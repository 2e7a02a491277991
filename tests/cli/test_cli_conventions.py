"""The command line's conventions: defaults and exit codes in --help, --json, any-case choices,
progress off a terminal, a failed train start leaving nothing behind, compare's run-to-run defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from replaystore.cli import COMMANDS, EXIT_CODES, main

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
HEALTHY, INCIDENT = os.path.join(DATA, "healthy.h5"), os.path.join(DATA, "incident.h5")
HEALTHY_JSON = os.path.join(DATA, "healthy.report.json")
TINY_TRAIN = ["--set", "learning_starts=100", "--set", "batch_size=8", "--set", "hidden=[8]", "--eval-episodes", "0"]


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert 0 == e.value.code
    return capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_shows_exit_codes_and_defaults(capsys, command):
    """Each subcommand's --help carries the exit-status table, and every option with a default shows it."""
    import argparse

    from replaystore.cli import build_parser

    text = _help(capsys, command)
    assert EXIT_CODES in text
    sub = next(a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction))
    for action in sub.choices[command]._actions:
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
            flag = action.option_strings[-1]
            after = " ".join(text[text.index(flag):].split())
            assert f"(default: {action.default})" in after, flag


def test_top_level_help_and_train_sentence(capsys):
    """The top-level help lists the exit codes; train --help finishes its --env sentence."""
    assert "0  ok" in _help(capsys) and "2  usage error" in _help(capsys)
    text = " ".join(_help(capsys, "train").split())
    assert "with --resume, the env the store was recorded on)" in text
    assert "(default: 30000;" in text


def test_json_prints_exactly_one_document(tmp_path, capsys):
    """info, audit and compare with --json print one JSON document to stdout and nothing else there."""
    assert 0 == main(["info", HEALTHY, "--json"])
    assert 3072 == json.loads(capsys.readouterr().out)["rows"]
    assert 0 == main(["audit", HEALTHY, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert "replaystore-audit" in report["format"] and report["store"]["rows"] == 3072
    assert 1 == main(["compare", HEALTHY_JSON, INCIDENT, "--json"])
    out, err = capsys.readouterr()
    d = json.loads(out)
    assert d["ok"] is False and "anomalies[SINGLE_ACTOR]" in [m["metric"] for m in d["metrics"]]
    assert 2 == main(["audit", HEALTHY])  # neither --out nor --json: nothing to write
    assert "pass --out DIR" in capsys.readouterr().err


def test_fail_on_is_case_insensitive(tmp_path, capsys):
    """--fail-on ERROR is --fail-on error; an unknown level is a usage error (2)."""
    assert 1 == main(["audit", INCIDENT, "--json", "--fail-on", "ERROR"])
    assert json.loads(capsys.readouterr().out)["anomalies"]
    with pytest.raises(SystemExit) as e:
        main(["audit", INCIDENT, "--json", "--fail-on", "fatal"])
    assert 2 == e.value.code
    assert "invalid choice 'fatal'" in capsys.readouterr().err


def test_unreadable_input_is_status_2(tmp_path, capsys):
    """A missing store is exit 2 for info, audit, compare and tensorboard."""
    missing = str(tmp_path / "missing.h5")
    for argv in (["info", missing], ["audit", missing, "--json"], ["compare", HEALTHY_JSON, missing],
                 ["tensorboard", missing, "--out", str(tmp_path / "tb")]):
        assert 2 == main(argv), argv
        assert capsys.readouterr().err.startswith("error: ")


def test_train_off_a_terminal_prints_plain_progress_lines(tmp_path):
    """With stderr a pipe, train prints one progress line per 10% and no carriage-return bar."""
    out = tmp_path / "run.h5"
    r = subprocess.run([sys.executable, "-m", "replaystore", "train", "--steps", "300", "--out", str(out),
                        "--no-tensorboard", "--eval-episodes", "0", "--set", "learning_starts=1000"],
                       capture_output=True, text=True, timeout=300)
    assert 0 == r.returncode, r.stderr
    assert "\r" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("train CartPole-v1: ")]
    assert [f"train CartPole-v1: {p}% " for p in range(10, 101, 10)] == [x[:len(f"train CartPole-v1: {p}% ")]
                                                                        for x, p in zip(lines, range(10, 101, 10))]
    assert 10 == len(lines)
    assert not os.path.exists(tmp_path / "run.tb")


def test_failed_train_start_leaves_nothing_behind(tmp_path, capsys):
    """A start that fails after the store was created removes it: the same command then runs."""
    out = tmp_path / "run.h5"
    bad_tb = str(tmp_path / "file")
    open(bad_tb, "w").close()
    argv = ["train", "--steps", "150", "--out", str(out), "--quiet", *TINY_TRAIN]
    assert 2 == main([*argv, "--tensorboard", os.path.join(bad_tb, "tb")])
    assert "error: " in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["file"]
    assert 0 == main(argv)
    assert {"run.h5", "run.h5.commit", "run.ckpt", "run.tb"} <= set(os.listdir(tmp_path))


def test_failed_resume_keeps_the_users_store(tmp_path, capsys):
    """A resume that fails at its start leaves the existing store in place, rows intact."""
    from replaystore.store import ReplayStore

    out = tmp_path / "run.h5"
    assert 0 == main(["train", "--steps", "150", "--out", str(out), "--quiet", "--no-tensorboard", *TINY_TRAIN])
    assert 2 == main(["train", "--steps", "300", "--out", str(out), "--quiet", "--resume",
                      "--env", "HybridCartPole-v1"])
    assert "was trained on 'CartPole-v1'" in capsys.readouterr().err
    with ReplayStore.open(out) as r:
        assert 150 == len(r)


@pytest.mark.slow
def test_compare_of_two_seeds_passes_with_defaults_and_summarises(tmp_path, capsys):
    """Two demo runs of 6000 frames on different seeds (the measured setup): compare passes by default;
    --exact lists metrics, not elements."""
    stores = []
    for seed in (0, 1):
        stores.append(str(tmp_path / f"s{seed}.h5"))
        assert 0 == main(["train", "--steps", "6000", "--seed", str(seed), "--out", stores[-1], "--quiet",
                          "--no-tensorboard", "--eval-episodes", "0"])
    capsys.readouterr()
    assert 0 == main(["audit", stores[0], "--out", str(tmp_path / "a0"), "--no-plots"])
    capsys.readouterr()
    baseline = str(tmp_path / "a0" / "report.json")
    assert 0 == main(["compare", baseline, stores[1]])
    assert "no regression" in capsys.readouterr().out
    assert 1 == main(["compare", baseline, stores[1], "--exact", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert len(d["metrics"]) < len(d["differences"]) / 3
    assert 1 == main(["compare", baseline, stores[1], "--exact"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= 32 and f"{len(d['differences'])} difference(s)" in lines[0]


def test_compare_warns_about_a_tolerance_matching_nothing(capsys):
    """A --tolerance pattern that matches no value is a warning on stderr (the comparison still runs)."""
    assert 0 == main(["compare", HEALTHY_JSON, HEALTHY, "--tolerance", "compositon.*=0.1"])
    out, err = capsys.readouterr()
    assert "warning: tolerance pattern 'compositon.*' matches no value" in err and "no regression" in out
    assert "warning" not in out
