"""Sampler over a run: the same draws a single store holding the shards' concatenation gives."""

from __future__ import annotations

import numpy as np
import pytest

import writer_proc
from test_run import shard_proc

from replaystore.store import ReplayStore, Run, Sampler
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


def global_ids(batch) -> np.ndarray:
    """Row ids in the concatenation, from a run batch's (shard, row)."""
    offsets = np.cumsum([0, *SIZES.values()])[:-1]
    return offsets[batch["shard"]] + batch["row"]


@pytest.mark.parametrize("strategy", ["uniform", "stratified", "prioritized"])
def test_same_draws_as_one_store_over_the_concatenation(run, flat, strategy):
    """With one seed, a run sampler draws the very rows a single store's sampler draws (as a multiset)."""
    kw = {"actor_fractions": FRACTIONS} if strategy == "stratified" else {"alpha": 1.0} if strategy == "prioritized" else {}
    with Sampler(run, 64, strategy=strategy, seed=3, **kw) as rs, Sampler(flat, 64, strategy=strategy, seed=3, **kw) as fs:
        assert type(rs).__name__ == "RunSampler" and rs.shard_names == list(SIZES)
        for step in range(5):
            rb, fb = rs.sample(), fs.sample()
            if strategy == "prioritized":  # integer priorities: every sum is exact, so the trees agree bit for bit
                rs.update_priorities(rb["row"], (global_ids(rb) % 7 + 1).astype(float), shards=rb["shard"])
                fs.update_priorities(fb["row"], (fb["row"] % 7 + 1).astype(float))
            order_r, order_f = np.argsort(global_ids(rb), kind="stable"), np.argsort(fb["row"], kind="stable")
            assert global_ids(rb)[order_r].tolist() == fb["row"][order_f].tolist(), f"batch {step}"
            for c in ("row_id", "state", "actor", "weight"):
                assert np.array_equal(rb[c][order_r], fb[c][order_f]), f"column {c}, batch {step}"
            assert rs.last_actor_counts.tolist() == fs.last_actor_counts.tolist()


def test_rows_and_shards_describe_each_other(run):
    """Every batch row is the shard's committed row it names, and uniform reaches every shard."""
    with Sampler(run, 500, seed=0, columns=["row_id", "actor"]) as sm:
        b = sm.sample()
        for k, name in enumerate(sm.shard_names):
            m = b["shard"] == k
            base = 1000 * list(SIZES).index(name)
            assert m.any(), f"shard {name} never drawn"
            assert np.array_equal(b["row_id"][m], base + b["row"][m])
        assert sorted(b) == ["actor", "row", "row_id", "shard", "weight"]
        assert sm.last_actor_counts.sum() == 500


def test_stratified_counts_are_exact_across_shards(run):
    """Stratified batches hold exactly the largest-remainder count of each actor, from all shards."""
    with Sampler(run, 10, strategy="stratified", actor_fractions=FRACTIONS, seed=1) as sm:
        for _ in range(20):
            b = sm.sample()
            assert np.bincount(b["actor"], minlength=3).tolist() == [5, 3, 2]
            assert np.array_equal(b["actor"], writer_proc.rows_at(b["row_id"])["actor"])


def test_window_applies_per_shard(tmp_path):
    """Each shard contributes only its last `window` committed rows."""
    run = Run.create(tmp_path / "run", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=20)
    with run.create_shard("x", commit_seconds=3600.0) as s:
        write(s, 0, 50)
    with Sampler(run, 400, seed=0, columns=["row_id"]) as sm:
        ids = sm.sample()["row_id"]
    assert ids.min() >= 30 and ids.max() < 50


def test_follows_shards_that_grow_appear_and_lose_their_writer(run):
    """A live writer's new commits, a new shard, and a killed writer's committed rows are all sampled."""
    sm = Sampler(run, 2000, seed=0, columns=["row_id"])
    try:
        assert set(sm.sample()["shard"].tolist()) == {0, 1, 2}
        p = shard_proc(run, "d", 5000, 5040, "--hold")
        assert p.stdout.readline().strip() == "committed 40"
        b = sm.sample()
        assert sm.shard_names == [*SIZES, "d"] and (b["shard"] == 3).any()
        p.kill()
        p.wait()
        with run.create_shard("a", commit_seconds=3600.0) as s:  # shard "a" grows
            write(s, 37, 60)
        ids = sm.sample()["row_id"]
        assert ((ids >= 5000) & (ids < 5040)).any() and ((ids >= 37) & (ids < 60)).any()
        assert set(ids.tolist()) <= set(range(60)) | set(range(1000, 1005)) | set(range(2000, 2090)) | set(range(5000, 5040))
    finally:
        sm.close()


def test_priority_updates_address_shard_and_row(run):
    """update_priorities needs the shard of each row, and refuses rows outside that shard's window."""
    with Sampler(run, 8, strategy="prioritized", seed=0) as sm:
        b = sm.sample()
        with pytest.raises(SamplerError, match=r"pass shards=batch\['shard'\]"):
            sm.update_priorities(b["row"], np.ones(8))
        sm.update_priorities(b["row"], np.full(8, 5.0), shards=b["shard"])
        assert sm.priorities(b["row"], b["shard"]).tolist() == [5.0] * 8
        with pytest.raises(SamplerError, match="row 5 of shard 'b' is outside its window"):
            sm.update_priorities(np.array([5]), np.ones(1), shards=np.array([1]))
        # all mass on one row of shard c: every draw is that row
        sm.update_priorities(np.arange(37), np.zeros(37), shards=np.zeros(37, int))
        sm.update_priorities(np.arange(5), np.zeros(5), shards=np.ones(5, int))
        sm.update_priorities(np.arange(90), (np.arange(90) == 7).astype(float), shards=np.full(90, 2))
        b = sm.sample()
        assert b["shard"].tolist() == [2] * 8 and b["row"].tolist() == [7] * 8


def test_empty_run_and_bad_arguments(tmp_path):
    """A run without committed rows, and bad sampler arguments, get clear errors."""
    run = Run.create(tmp_path / "run", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=10)
    with Sampler(str(tmp_path / "run"), 4) as sm:  # a run folder's path works too
        with pytest.raises(EmptyWindowError, match="no shard of run .* has committed rows"):
            sm.sample()
    with pytest.raises(SamplerError, match="actor_fractions names actor 'nobody'"):
        Sampler(run, 4, strategy="stratified", actor_fractions={"nobody": 1.0})
    with pytest.raises(SamplerError, match="batch_size=0"):
        Sampler(run, 0)
