"""Run: a folder of shards under one record, each shard written by its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import writer_proc
from store_helpers import check_writer_rows

import replaystore
from replaystore.store import ReplayStore, Run, Schema
from replaystore.store.errors import RunError, ShardMismatchError, StoreLockedError, StoreNotFoundError

SHARD_SCRIPT = str(Path(__file__).with_name("shard_proc.py"))


def make_run(tmp_path, window=1000) -> Run:
    return Run.create(tmp_path / "run", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=window,
                      metadata={"env": "CartPole-v1"})


def shard_proc(run: Run, name: str, start: int, stop: int, *extra: str, out=None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, SHARD_SCRIPT, run.path, name, str(start), str(stop), *extra],
                            stdout=out or subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def test_record_pins_schema_actors_window_metadata(tmp_path):
    """Run.open reads back exactly what Run.create pinned, and the record is plain JSON."""
    run = make_run(tmp_path)
    again = Run.open(run.path)
    assert again.schema == writer_proc.SCHEMA
    assert again.actors.names == writer_proc.ACTORS
    assert (again.window, again.metadata, again.uuid) == (1000, {"env": "CartPole-v1"}, run.uuid)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (record["format"], record["format_version"]) == ("replaystore-run", 1)
    assert replaystore.Run is Run


def test_processes_write_their_own_shards(tmp_path):
    """Three processes write three shards at once; every shard holds exactly its writer's rows."""
    run = make_run(tmp_path)
    procs = [shard_proc(run, f"w{i}", 100 * i, 100 * i + 50 + i) for i in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert run.shards() == ["w0", "w1", "w2"]
    assert run.rows() == {"w0": 50, "w1": 51, "w2": 52}
    for i in range(3):
        with run.open_shard(f"w{i}") as s:
            got = s.read(["row_id"])["row_id"]
            assert got.tolist() == list(range(100 * i, 100 * i + 50 + i))
            assert s.metadata["run"] == {"uuid": run.uuid, "shard": f"w{i}"}


def test_second_writer_of_a_shard_is_refused(tmp_path):
    """While one process holds a shard, create_shard in another gets the store's lock error."""
    run = make_run(tmp_path)
    p = shard_proc(run, "w0", 0, 10, "--hold")
    try:
        assert p.stdout.readline().strip() == "committed 10"
        with pytest.raises(StoreLockedError, match="being written by process"):
            run.create_shard("w0")
        with run.open_shard("w0") as r:  # readers are welcome
            assert len(r) == 10
    finally:
        p.kill()
        p.wait()


def test_killed_shard_writer_resumes_after_committed_rows(tmp_path):
    """A worker killed with SIGKILL is rerun: create_shard reopens its shard after the committed rows."""
    run = make_run(tmp_path)
    p = shard_proc(run, "w0", 0, 30, "--hold")
    assert p.stdout.readline().strip() == "committed 30"
    p.kill()
    p.wait()
    p = shard_proc(run, "w0", 30, 45)
    out, err = p.communicate(timeout=120)
    assert out.strip() == "committed 45", err
    with run.open_shard("w0") as s:
        check_writer_rows(s, 0, 45)
        assert s.writer_state["recovery"]["writer_died"] is True


def test_shard_with_other_schema_is_refused(tmp_path):
    """A store dropped into shards/ with another schema is refused, naming both schemas."""
    run = make_run(tmp_path)
    ReplayStore.create(run.shard_path("odd"), Schema.transition((5,)), actors=writer_proc.ACTORS,
                       window=1000).close()
    with pytest.raises(ShardMismatchError, match=r"shard 'odd' .* has columns \[state:float32\[5\]"):
        run.open_shard("odd")


def test_shard_with_other_vocabulary_is_refused(tmp_path):
    """A shard whose actor codes mean other actors is refused, naming both vocabularies."""
    run = make_run(tmp_path)
    ReplayStore.create(run.shard_path("odd"), writer_proc.SCHEMA, actors=("dqn", "expert", "random"),
                       window=1000).close()
    with pytest.raises(ShardMismatchError, match=r"actor vocabulary \['dqn', 'expert', 'random'\]"):
        run.create_shard("odd")


def test_shard_of_another_run_is_refused(tmp_path):
    """A shard copied from another run with the same schema is refused: its run uuid differs."""
    run = make_run(tmp_path)
    other = Run.create(tmp_path / "other", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
    other.create_shard("w0").close()
    os.link(other.shard_path("w0"), run.shard_path("w0"))
    with pytest.raises(ShardMismatchError, match="belongs to run"):
        run.open_shard("w0")


def test_run_create_requires_actors(tmp_path):
    """Run.create has no default actor vocabulary (a default one is how the founding incident began):
    leaving it out is a TypeError naming it, and nothing is made."""
    with pytest.raises(TypeError, match="actors"):
        Run.create(tmp_path / "run", writer_proc.SCHEMA, window=1000)
    assert not (tmp_path / "run").exists()


def test_bad_names_paths_and_records(tmp_path):
    """Bad shard names, missing shards, non-run folders and unknown versions get clear errors."""
    run = make_run(tmp_path)
    with pytest.raises(ValueError, match=r"shard name '\.\./x'"):
        run.create_shard("../x")
    with pytest.raises(StoreNotFoundError, match="has no shard 'nope'"):
        run.open_shard("nope")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        make_run(tmp_path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="has no run.json"):
        Run.open(tmp_path / "plain")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    record["format_version"] = 99
    (tmp_path / "run" / "run.json").write_text(json.dumps(record))
    with pytest.raises(RunError, match="run format version 99"):
        Run.open(run.path)
    assert not Run.is_run(tmp_path / "plain") and Run.is_run(run.path)


def test_shards_appear_while_a_reader_watches(tmp_path):
    """A reader's run.shards() lists a shard as soon as a writer creates it, never a half-made one."""
    run = make_run(tmp_path)
    seen = Run.open(run.path)
    assert seen.shards() == []
    with run.create_shard("late", commit_seconds=3600.0) as s:
        assert seen.shards() == ["late"]
        s.extend(writer_proc.given(writer_proc.make_rows(0, 5)))
    assert seen.rows() == {"late": 5}
    assert not any(n.endswith(".creating") for n in os.listdir(tmp_path / "run" / "shards"))
