"""Contract 2 and 3: rows survive a kill -9 of the writer, and reopening recovers by itself.

A real writer process (``writer_proc.py``) appends self-describing rows and prints the count
after every ``commit()`` returns; the test kills it with SIGKILL at a random moment and checks
the store with nothing but ``ReplayStore.open``.
"""

from __future__ import annotations

import random
import shutil
import time

import pytest

from replaystore.store import ReplayStore

import writer_proc
from store_helpers import append_writer_rows, check_writer_rows


def kill_and_check(spawn_writer, path, rng: random.Random, *, fsync: bool, trial: int,
                   left_dead: int | None, recover: bool) -> int | None:
    """One trial: start a writer (on a new store, or resuming one), kill it, verify, and resume.

    ``left_dead``: the row count a previous trial left behind without recovering it (the writer
    process's own 'a' open must recover it). With ``recover`` False this trial leaves its store
    dead in turn and returns the row count it saw; otherwise it returns None.
    """
    resume = path.exists()
    args = ["--mode", "append" if resume else "create", "--seed", str(rng.randrange(2**31)),
            "--commit-every", str(rng.choice([1, 16, 64, 500]))]
    w = spawn_writer(path, *(args + (["--fsync"] if fsync else [])))
    start = w.wait_ready()
    where = f"trial {trial} ({args}, fsync={fsync}): "
    if left_dead is not None:
        assert start == left_dead, f"{where}the writer's recovery kept {start} rows, {left_dead} were committed"
    early = ReplayStore.open(path, "r")  # held across the kill, the recovery and the new rows
    time.sleep(rng.uniform(0.0, 0.25))
    w.kill()
    promised = max(w.reported_commits(), default=start)
    where += f"promised {promised}: "

    # A reader needs no tool and no flag, and says the writer died.
    with ReplayStore.open(path, "r") as r:
        n = len(r)
        assert n >= promised, f"{where}store holds {n} rows, fewer than the {promised} the writer reported committed"
        check_writer_rows(r, 0, n, where)
        state = r.writer_state
        assert (state["live"], state["died"]) == (False, True), f"{where}writer_state {state}"
        if left_dead is not None:  # the writer process's own recovery is on record
            assert state["recovery"]["rows_kept"] == left_dead, f"{where}recovery {state['recovery']}"
    if not recover:
        early.close()
        return n

    # Appending recovers: exactly the committed rows are kept, and the recovery is on record.
    with ReplayStore.open(path, "a") as s:
        assert len(s) == n, f"{where}'a' open kept {len(s)} rows, the reader saw {n}"
        rec = s.writer_state["recovery"]
        assert rec is not None and rec["writer_died"] is True and rec["rows_kept"] == n, f"{where}recovery {rec}"
        append_writer_rows(s, n, n + 37)
        assert s.commit() == n + 37
        one = writer_proc.given(writer_proc.make_rows(n + 37, n + 38))
        s.append(**{k: v[0] for k, v in one.items()})
    for r in (ReplayStore.open(path, "r"), early):
        with r:
            assert r.refresh() == n + 38, where
            check_writer_rows(r, 0, n + 38, where)
            assert r.writer_state == {"live": False, "died": False, "recovery": rec}
            assert r.actor_counts().sum() == n + 38
    return None


def run_trials(spawn_writer, tmp_path, trials: int, seed: int, fsync_every: int) -> None:
    rng = random.Random(seed)
    path = None
    left_dead = None
    for t in range(trials):
        last = t == trials - 1
        if left_dead is None and (path is None or rng.random() < 0.5):
            path = tmp_path / f"run{t}.h5"  # else keep killing writers of the same store
        left_dead = kill_and_check(spawn_writer, path, rng, fsync=(t % fsync_every == fsync_every - 1), trial=t,
                                   left_dead=left_dead, recover=last or rng.random() < 0.7)


def test_kill_minus_nine_loses_no_committed_row(spawn_writer, tmp_path):
    """36 writers killed with SIGKILL at random moments (every 6th with fsync=True), inside appends,
    commits and segment roll-overs (1,024-row segments, commits of 1 to 400 rows): after each, the
    store opens 'r' and 'a' with no tool, holds every reported commit bit-identical, says the writer
    died, records what recovery kept, and takes new rows after the kept ones. With the 4 fsync
    trials below, 40 kills in the default suite."""
    run_trials(spawn_writer, tmp_path, trials=36, seed=20261125, fsync_every=6)


def test_kill_during_fsync_mode(spawn_writer, tmp_path):
    """Writers in fsync=True mode killed at random moments keep every reported commit."""
    run_trials(spawn_writer, tmp_path, trials=4, seed=7, fsync_every=1)


@pytest.mark.slow
def test_kill_minus_nine_many_trials(spawn_writer, tmp_path):
    """The same contract over 200 kills (every 5th with fsync=True)."""
    run_trials(spawn_writer, tmp_path, trials=200, seed=1, fsync_every=5)


def test_copy_of_a_killed_store(spawn_writer, tmp_path):
    """A store copied (file, .commit and segment folder) after its writer was killed opens from the
    copy, 'r' and 'a', with at least every reported commit, and the original is untouched."""
    path = tmp_path / "run.h5"
    w = spawn_writer(path, "--mode", "create", "--seed", "5", "--commit-every", "16")
    w.wait_ready()
    w.wait_for_commits(3000, poll=0.01)
    w.kill()
    promised = max(w.reported_commits())
    copy = tmp_path / "copy.h5"
    shutil.copyfile(path, copy)
    shutil.copyfile(f"{path}.commit", f"{copy}.commit")
    shutil.copytree(f"{path}.d", f"{copy}.d")
    with ReplayStore.open(copy, "r") as r:
        n = len(r)
        assert n >= promised
        check_writer_rows(r, 0, n)
    with ReplayStore.open(copy, "a") as s:
        assert len(s) == n
        append_writer_rows(s, n, n + 10)
    with ReplayStore.open(copy, "r") as r:
        check_writer_rows(r, 0, n + 10)
    with ReplayStore.open(path, "r") as r:  # the original is untouched by all this
        assert len(r) >= promised and r.writer_state["died"] is True


def test_kill_during_recovery(spawn_writer, tmp_path):
    """Writers killed while they start on a dead store (importing, opening 'a', recovering, first
    appends) never lose the rows committed before: recovery can itself be interrupted and redone."""
    rng = random.Random(99)
    path = tmp_path / "run.h5"
    w = spawn_writer(path, "--mode", "create", "--seed", "1", "--commit-every", "16")
    w.wait_ready()
    w.wait_for_commits(500, poll=0.005)
    w.kill()
    kept = max(w.reported_commits())
    for trial in range(8):
        w = spawn_writer(path, "--mode", "append", "--seed", str(trial), "--commit-every", "16")
        time.sleep(rng.uniform(0.0, 0.3))
        w.kill()
        kept = max([kept, *w.reported_commits()])
        with ReplayStore.open(path, "r") as r:
            n = len(r)
            assert n >= kept, f"trial {trial}: {n} rows, {kept} were committed"
            check_writer_rows(r, 0, n, f"trial {trial}: ")
        kept = n
    with ReplayStore.open(path, "a") as s:
        assert len(s) == kept
        append_writer_rows(s, kept, kept + 5)
    with ReplayStore.open(path, "r") as r:
        check_writer_rows(r, 0, kept + 5)
