"""Contract 2 and 3: rows survive a kill -9 of the writer, and reopening recovers by itself.

A real writer process (``writer_proc.py``) appends self-describing rows and prints the count
after every ``commit()`` returns; the test kills it with SIGKILL at a random moment and checks
the store with nothing but ``ReplayStore.open``.
"""

from __future__ import annotations

import random
import time

import pytest

from store import ReplayStore

import writer_proc
from conftest import append_writer_rows, check_writer_rows


def kill_and_check(spawn_writer, path, rng: random.Random, *, fsync: bool, trial: int) -> int:
    """One trial: start a writer (on a new or a recovered store), kill it, verify and resume."""
    resume = path.exists()
    args = ["--mode", "append" if resume else "create", "--seed", str(rng.randrange(2**31)),
            "--commit-every", str(rng.choice([1, 16, 64, 500]))]
    w = spawn_writer(path, *(args + (["--fsync"] if fsync else [])))
    start = w.wait_ready()
    time.sleep(rng.uniform(0.0, 0.25))
    w.kill()
    promised = max(w.reported_commits(), default=start)
    where = f"trial {trial} (seed args {args}, promised {promised}): "

    # A reader needs no tool and no flag, and says the writer died.
    with ReplayStore.open(path, "r") as r:
        n = len(r)
        assert n >= promised, f"{where}store holds {n} rows, fewer than the {promised} the writer reported committed"
        check_writer_rows(r, 0, n, where)
        state = r.writer_state
        assert (state["live"], state["died"]) == (False, True), f"{where}writer_state {state}"

    # Appending recovers: exactly the committed rows are kept, and the recovery is on record.
    with ReplayStore.open(path, "a") as s:
        assert len(s) == n, f"{where}'a' open kept {len(s)} rows, the reader saw {n}"
        rec = s.writer_state["recovery"]
        assert rec is not None and rec["writer_died"] is True and rec["rows_kept"] == n, f"{where}recovery {rec}"
        append_writer_rows(s, n, n + 37)
        assert s.commit() == n + 37
        one = writer_proc.given(writer_proc.make_rows(n + 37, n + 38))
        s.append(**{k: v[0] for k, v in one.items()})
    with ReplayStore.open(path, "r") as r:
        assert len(r) == n + 38
        check_writer_rows(r, 0, n + 38, where)
        assert r.writer_state == {"live": False, "died": False, "recovery": rec}
        assert r.actor_counts().sum() == n + 38
    return n + 38


def run_trials(spawn_writer, tmp_path, trials: int, seed: int, fsync_every: int) -> None:
    rng = random.Random(seed)
    path = None
    for t in range(trials):
        if path is None or rng.random() < 0.5:  # new store, or keep killing writers of a recovered one
            path = tmp_path / f"run{t}.h5"
        kill_and_check(spawn_writer, path, rng, fsync=(t % fsync_every == fsync_every - 1), trial=t)


def test_kill_minus_nine_loses_no_committed_row(spawn_writer, tmp_path):
    """24 writers killed with SIGKILL at random moments (every 6th with fsync=True): after each,
    the store opens 'r' and 'a' with no tool, holds every reported commit bit-identical, says the
    writer died, records what recovery kept, and takes new rows after the kept ones."""
    run_trials(spawn_writer, tmp_path, trials=24, seed=20261125, fsync_every=6)


def test_kill_during_fsync_mode(spawn_writer, tmp_path):
    """Writers in fsync=True mode killed at random moments keep every reported commit."""
    run_trials(spawn_writer, tmp_path, trials=4, seed=7, fsync_every=1)


@pytest.mark.slow
def test_kill_minus_nine_many_trials(spawn_writer, tmp_path):
    """The same contract over 200 kills (every 5th with fsync=True)."""
    run_trials(spawn_writer, tmp_path, trials=200, seed=1, fsync_every=5)
