"""RunSource: a run's shards as one growing row space, sampled by the ordinary Sampler."""

from __future__ import annotations

import numpy as np
import pytest

import writer_proc
from test_run import shard_proc

from replaystore.store import ReplayStore, Run, RunSource, Sampler, SampleSource
from replaystore.store.errors import EmptyWindowError, SamplerError

SIZES = {"a": 37, "b": 5, "c": 90}  # rows per shard; shard k holds writer_proc rows starting at 1000 * k
FRACTIONS = {"expert": 0.5, "dqn": 0.3, "random": 0.2}


def write(store, start: int, stop: int) -> None:
    store.extend(writer_proc.given(writer_proc.make_rows(start, stop)))
    store.commit()


@pytest.fixture
def run(tmp_path) -> Run:
    run = Run.create(tmp_path / "run", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
    for k, (name, n) in enumerate(SIZES.items()):
        with run.create_shard(name, commit_seconds=3600.0) as s:
            write(s, 1000 * k, 1000 * k + n)
    return run


@pytest.fixture
def flat(tmp_path):
    """One store holding the shards' rows one after another, in shard order."""
    s = ReplayStore.create(tmp_path / "flat.h5", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                           commit_seconds=3600.0)
    for k, n in enumerate(SIZES.values()):
        write(s, 1000 * k, 1000 * k + n)
    yield s
    s.close()


@pytest.mark.parametrize("strategy", ["uniform", "stratified", "prioritized"])
def test_same_draws_as_one_store_holding_the_rows(run, flat, strategy):
    """With one seed, a sampler over the run draws the very rows (and weights) one store's sampler draws
    (a run's batch comes shard by shard: the same rows with their columns aligned, maybe reordered)."""
    kw = {"actor_fractions": FRACTIONS} if strategy == "stratified" else {"alpha": 1.0} if strategy == "prioritized" else {}
    with Sampler(run, 64, strategy=strategy, seed=3, **kw) as rs, Sampler(flat, 64, strategy=strategy, seed=3, **kw) as fs:
        assert isinstance(rs.store, RunSource) and isinstance(rs.store, SampleSource)
        assert rs.store.shard_names == list(SIZES)
        for step in range(5):
            rb, fb = rs.sample(), fs.sample()
            orb, ofb = np.argsort(rb["row"], kind="stable"), np.argsort(fb["row"], kind="stable")
            assert rb["row"][orb].tolist() == fb["row"][ofb].tolist(), f"batch {step}"
            for c in ("row_id", "state", "actor", "weight", "shard"):
                if c in fb:
                    assert np.array_equal(rb[c][orb], fb[c][ofb]), f"column {c}, batch {step}"
            assert np.array_equal(rb["row_id"], rs.store.gather(rb["row"], ["row_id"])["row_id"])
            assert rs.last_actor_counts.tolist() == fs.last_actor_counts.tolist()
            if strategy == "prioritized":  # integer priorities: every sum is exact in both trees
                rs.update_priorities(rb["row"], (rb["row"] % 7 + 1).astype(float))
                fs.update_priorities(fb["row"], (fb["row"] % 7 + 1).astype(float))


def test_batches_name_each_rows_shard(run):
    """batch['shard'] and locate() give the shard and shard row each run-wide row came from."""
    with Sampler(run, 500, seed=0, columns=["row_id", "actor"]) as sm:
        b = sm.sample()
        src = sm.store
        shard, local = src.locate(b["row"])
        assert np.array_equal(shard, b["shard"])
        for k, name in enumerate(src.shard_names):
            m = b["shard"] == k
            assert m.any(), f"shard {name} never drawn"
            assert np.array_equal(b["row_id"][m], 1000 * list(SIZES).index(name) + local[m])
            assert np.array_equal(src.shard_store(k).gather(local[m], ["row_id"])["row_id"], b["row_id"][m])


def test_actor_counts_match_the_rows(run):
    """actor_counts(start) over the run-wide rows equals a count of the gathered actor codes."""
    with RunSource(run) as src:
        codes = src.gather(np.arange(len(src)), ["actor"])["actor"]
        for start in (0, 1, 36, 37, 40, 42, 100, 131, 132):
            assert src.actor_counts(start).tolist() == np.bincount(codes[start:], minlength=3).tolist(), start
        assert src.composition()["total"] == 132


def test_window_is_the_runs_latest_rows(tmp_path):
    """The run's window holds its latest `window` rows across shards (in the order they were seen)."""
    run = Run.create(tmp_path / "run", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=20)
    with run.create_shard("x", commit_seconds=3600.0) as s:
        write(s, 0, 50)
    with Sampler(run, 400, seed=0, columns=["row_id"]) as sm:
        ids = sm.sample()["row_id"]
    assert ids.min() >= 30 and ids.max() < 50


def test_follows_shards_that_grow_appear_and_lose_their_writer(run):
    """A live writer's new commits, a new shard, and a killed writer's committed rows are all sampled;
    rows already seen keep their run-wide ids."""
    sm = Sampler(run, 2000, seed=0, columns=["row_id"])
    try:
        first = sm.sample()
        before = dict(zip(first["row"].tolist(), first["row_id"].tolist()))
        p = shard_proc(run, "d", 5000, 5040, "--hold")
        assert p.stdout.readline().strip() == "committed 40"
        b = sm.sample()
        assert sm.store.shard_names == [*SIZES, "d"] and (b["shard"] == 3).any()
        p.kill()
        p.wait()
        with run.create_shard("a", commit_seconds=3600.0) as s:  # shard "a" grows after its neighbours
            write(s, 37, 60)
        b = sm.sample()
        ids = b["row_id"]
        assert ((ids >= 5000) & (ids < 5040)).any() and ((ids >= 37) & (ids < 60)).any()
        assert len(sm.store) == 132 + 40 + 23
        again = sm.store.gather(np.array(sorted(before)), ["row_id"])["row_id"]
        assert again.tolist() == [before[r] for r in sorted(before)]
    finally:
        sm.close()


def test_priority_updates_reach_one_shard_row(run):
    """Nearly all priority mass on one (shard, row): every draw is that row of that shard."""
    with Sampler(run, 8, strategy="prioritized", seed=0) as sm:
        sm.sample()
        src = sm.store
        pr = np.full(len(src), 1e-30)  # positive (zero is refused); ** alpha 0.6 ~ 1e-18 of the mass each
        target = int(np.flatnonzero((src.locate(np.arange(len(src)))[0] == 2) & (src.locate(np.arange(len(src)))[1] == 7))[0])
        pr[target] = 1.0
        sm.update_priorities(np.arange(len(src)), pr)
        b = sm.sample()
        assert b["shard"].tolist() == [2] * 8 and src.locate(b["row"])[1].tolist() == [7] * 8


def test_empty_run_and_bad_arguments(tmp_path):
    """A run without committed rows, and bad sampler arguments, get clear errors."""
    run = Run.create(tmp_path / "run", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=10)
    with Sampler(str(tmp_path / "run"), 4) as sm:  # a run folder's path works too
        with pytest.raises(EmptyWindowError):
            sm.sample()
    with pytest.raises(SamplerError, match="nobody"):
        Sampler(run, 4, strategy="stratified", actor_fractions={"nobody": 1.0})
    with RunSource(run) as src, pytest.raises(IndexError, match=r"row ids must lie in \[0, 0\)"):
        src.locate(np.array([0]))
