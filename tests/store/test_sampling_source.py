"""store.SampleSource: a source that is not one store (two stores end to end) gets every strategy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from replaystore.store import ReplayStore, SampleSource, Sampler, Schema

ACTORS = ("expert", "dqn")
SCHEMA = Schema.transition((3,))


def rows_block(start: int, stop: int, actor_codes) -> dict:
    """Rows whose every value is computed from their row id in the joined row space."""
    ids = np.arange(start, stop)
    n = len(ids)
    return {"actor": np.asarray(actor_codes, np.uint8), "state": np.repeat(ids[:, None], 3, 1).astype("f4"),
            "next_state": np.repeat(ids[:, None] + 1, 3, 1).astype("f4"), "discrete_action": (ids % 5).astype("i4"),
            "continuous_action": np.zeros((n, 0), "f4"), "reward": ids.astype("f4"), "done": ids % 40 == 39}


class TwoStores:
    """Stores ``a`` then ``b`` read end to end as one row space, as a run of shards would be.

    Only ``b`` grows. Implements the SampleSource members and nothing else (no uuid: priorities
    stay in memory), plus ``shard_of``.
    """

    def __init__(self, a: ReplayStore, b: ReplayStore, window: int):
        self.a, self.b, self.window = a, b, window
        self.path = f"{a.path} + {b.path}"
        self.schema, self.actors = a.schema, a.actors

    def __len__(self) -> int:
        return len(self.a) + len(self.b)

    @property
    def closed(self) -> bool:
        return self.a.closed or self.b.closed

    @property
    def commit_seq(self) -> int:
        return self.a.commit_seq + self.b.commit_seq

    def has_new_commits(self) -> bool:
        return self.a.has_new_commits() or self.b.has_new_commits()

    def refresh(self) -> int:
        self.a.refresh()
        self.b.refresh()
        return len(self)

    def window_start(self) -> int:
        return max(0, len(self) - self.window)

    def actor_counts(self, start: int = 0) -> np.ndarray:
        na = len(self.a)
        return self.a.actor_counts(min(start, na)) + self.b.actor_counts(max(0, start - na))

    def gather(self, rows, columns=None) -> dict:
        rows = np.asarray(rows, np.int64)
        in_b = rows >= len(self.a)
        got_a, got_b = self.a.gather(rows[~in_b], columns), self.b.gather(rows[in_b] - len(self.a), columns)
        out = {}
        for name, part in got_a.items():
            whole = np.empty((len(rows), *part.shape[1:]), part.dtype)
            whole[~in_b], whole[in_b] = part, got_b[name]
            out[name] = whole
        return out

    def shard_of(self, rows) -> np.ndarray:
        return (np.asarray(rows) >= len(self.a)).astype(np.int32)


@pytest.fixture
def joined(tmp_path):
    """Shard a: 600 rows, 1/4 expert; shard b (live writer): 400 rows, 3/4 expert; window 800."""
    with ReplayStore.create(tmp_path / "a.h5", SCHEMA, actors=ACTORS, window=1000, chunk_bytes=4096) as w:
        w.extend(rows_block(0, 600, np.arange(600) % 4 != 0))
    a = ReplayStore.open(tmp_path / "a.h5", "r")
    b = ReplayStore.create(tmp_path / "b.h5", SCHEMA, actors=ACTORS, window=1000, chunk_bytes=4096,
                           commit_every=10**9, commit_seconds=3600.0)
    b.extend(rows_block(600, 1000, np.arange(400) % 4 == 0))
    b.commit()
    src = TwoStores(a, b, window=800)
    yield src
    a.close()
    b.close()


def check_rows(batch: dict) -> None:
    r = np.asarray(batch["row"])
    assert (batch["state"] == r[:, None]).all() and (batch["next_state"][:, 0] == r + 1).all()
    assert (batch["reward"] == r).all() and (batch["discrete_action"] == r % 5).all()
    assert (batch["shard"] == (r >= 600)).all()
    codes = np.where(r < 600, r % 4 != 0, (r - 600) % 4 == 0).astype(np.uint8)
    assert np.array_equal(batch["actor"], codes)


def test_the_fake_source_satisfies_the_protocol(joined):
    """The two-store source is a SampleSource (the protocol's members are all there); an int is not."""
    assert isinstance(joined, SampleSource)
    assert not isinstance(3, SampleSource)


def test_uniform_over_two_stores_follows_the_joined_window(joined):
    """Uniform rows cover [200, 1000) across the shard boundary, values and shard ids as stored."""
    sm = Sampler(joined, 512, seed=0)
    seen = []
    for _ in range(20):
        b = sm.sample()
        check_rows(b)
        seen.append(b["row"])
    seen = np.concatenate(seen)
    assert sm.rows_in_window == (200, 1000)
    assert seen.min() >= 200 and seen.max() < 1000 and len(np.unique(seen)) > 750
    assert 0.45 < (seen >= 600).mean() < 0.55  # 400 of the 800 window rows live in shard b


def test_stratified_over_two_stores_keeps_exact_counts_as_b_grows(joined):
    """Exact per-actor counts from both shards; the per-actor index follows b's new commits."""
    sm = Sampler(joined, 40, strategy="stratified", actor_fractions={"expert": 0.1, "dqn": 0.9}, seed=1)
    b = sm.sample()
    check_rows(b)
    assert sm.last_actor_counts.tolist() == [4, 36]
    joined.b.extend(rows_block(1000, 1400, np.zeros(400)))  # 400 expert rows in b
    joined.b.commit()
    rows = np.concatenate([sm.sample()["row"] for _ in range(50)])
    assert sm.rows_in_window == (600, 1400)
    assert rows.min() >= 600 and set(range(1000, 1400)) & set(rows.tolist())
    assert sm.strategy.index.counts().tolist() == [700, 100]  # b: 300 + 400 expert, 100 dqn
    check_rows(sm.sample())


def test_prioritized_over_two_stores_uses_one_sum_tree(joined):
    """One tree spans both shards: priorities set across the boundary steer draws in both."""
    sm = Sampler(joined, 256, strategy="prioritized", seed=2)
    sm.sample()
    window = np.arange(200, 1000)
    sm.update_priorities(window, np.full(len(window), 1e-30))  # positive, never drawn in 40 batches in practice
    chosen = np.array([250, 599, 600, 999])
    pr = np.array([1.0, 2.0, 3.0, 4.0])
    sm.update_priorities(chosen, pr)
    counts = np.zeros(4, np.int64)
    for _ in range(40):
        b = sm.sample()
        check_rows(b)
        assert set(b["row"].tolist()) <= set(chosen.tolist())
        counts += np.array([(b["row"] == r).sum() for r in chosen])
    expected = pr ** 0.6 / (pr ** 0.6).sum() * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-4
    assert sm.strategy.tree.capacity == 1024  # one tree over the 800-row window, not one per shard
    np.testing.assert_array_equal(sm.priorities(chosen), pr)


# ---------------------------------------------------------------- a reader's record watch
def _store_with(path, n: int) -> ReplayStore:
    s = ReplayStore.create(path, SCHEMA, actors=ACTORS, window=10_000, commit_every=10**9, commit_seconds=3600.0)
    s.extend(rows_block(0, n, np.zeros(n, np.uint8)))
    s.commit()
    return s


def test_record_watch_changes_at_every_commit_and_new_record_file(tmp_path):
    """The probe is the same while nothing is committed and differs after each commit, including
    a commit by a new writer (which puts a new record file in place)."""
    from replaystore.store.sample._sampling_source import RecordWatch

    path = str(tmp_path / "run.h5")
    w = _store_with(path, 10)
    watch = RecordWatch(path)
    seen = [watch.probe()]
    assert seen[0] is not None and seen[0] == watch.probe()
    for stop in (11, 12, 13):  # two commits write the two slots in turn: both heads are watched
        w.extend(rows_block(stop - 1, stop, [1]))
        w.commit()
        seen.append(watch.probe())
    w.close()
    with ReplayStore.open(path, "a") as w2:
        w2.extend(rows_block(13, 14, [1]))
        w2.commit()
        seen.append(watch.probe())
    assert len(seen) == len({repr(p) for p in seen}), seen
    watch.close()


def test_record_watch_on_a_missing_or_special_record_says_check(tmp_path):
    """No record, or a FIFO in its place: None (the sampler then asks the store), never a hang."""
    import os

    from replaystore.store.sample._sampling_source import RecordWatch

    path = str(tmp_path / "run.h5")
    assert RecordWatch(path).probe() is None
    os.mkfifo(f"{path}.commit")
    assert RecordWatch(path).probe() is None


def test_reader_sampler_sees_each_commit_at_its_next_batch(tmp_path):
    """A sampler over a path sees every commit of a writer (another handle) at its next batch,
    a new writer's commits too, and draws only from the rows committed."""
    path = str(tmp_path / "run.h5")
    w = _store_with(path, 10)
    with Sampler(path, 64, seed=3) as sampler:
        for stop in range(11, 40):
            b = sampler.sample()
            assert (stop - 1, stop - 1) == (sampler.rows_in_window[1], len(sampler.store))
            assert b["row"].max() < stop - 1 and (b["reward"] == b["row"]).all()
            w.extend(rows_block(stop - 1, stop, [1]))
            w.commit()
        w.close()
        with ReplayStore.open(path, "a") as w2:
            w2.extend(rows_block(39, 1000, np.ones(961, np.uint8)))
            w2.commit()
            b = sampler.sample()
            assert 1000 == sampler.rows_in_window[1] and b["row"].max() >= 39


# ---------------------------------------------------------------- uniform draws ahead
def test_uniform_draws_ahead_only_while_the_window_holds(tmp_path):
    """Uniform batches are sorted, lie in the window they were drawn for, are the same for the same
    seed, cover the window evenly, and a commit's rows are drawn from the very next batch on."""
    path = str(tmp_path / "run.h5")
    w = _store_with(path, 100)
    with Sampler(w, 32, seed=7) as a, Sampler(w, 32, seed=7) as b:
        rows = []
        for _ in range(400):
            x, y = a.sample()["row"], b.sample()["row"]
            assert x.tolist() == y.tolist() and (np.diff(x) >= 0).all() and x.max() < 100
            rows.append(x)
        counts = np.bincount(np.concatenate(rows), minlength=100)
        assert stats.chisquare(counts).pvalue > 1e-4
        w.extend(rows_block(100, 10_000, np.zeros(9900, np.uint8)))
        w.commit()
        assert a.sample()["row"].max() >= 100  # not a batch left over from the old window
        new = np.concatenate([a.sample()["row"] for _ in range(50)])
        assert (new >= 100).mean() > 0.9
    w.close()


def test_record_watch_refuses_a_header_pointing_outside_the_file(tmp_path):
    """A record whose header gives a slot size past the file's end is never mapped that far (a
    touch past the end would be SIGBUS): the probe says check, and the reader decides."""
    import struct

    from replaystore.store.format import _record
    from replaystore.store.sample._sampling_source import RecordWatch

    path = str(tmp_path / "run.h5")
    _store_with(path, 10).close()
    rec = f"{path}.commit"
    with open(rec, "r+b") as fh:
        head = bytearray(fh.read(_record._HEADER.size))
        struct.pack_into("<I", head, 12, 1 << 30)  # the slot size field of the header
        fh.seek(0)
        fh.write(head)
    assert _record._HEADER.unpack_from(bytes(head))[2] == 1 << 30
    assert RecordWatch(path).probe() is None
