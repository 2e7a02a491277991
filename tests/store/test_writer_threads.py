"""One ``StoreWriter`` shared by threads (a socket server with a thread per game client): appends,
extends and commits from several threads interleave whole rows, counts stay exact, and a reader
and a sampler in the same process run beside them. The GIL's switch interval is made tiny so
threads switch inside the writer's methods, as they do under load."""

from __future__ import annotations

import random
import sys
import threading

import numpy as np
import pytest

from replaystore.store import ReplayStore, Sampler, Schema

ACTORS = ("expert", "dqn", "random")
SCHEMA = Schema.transition((3,), continuous_dim=2)  # the one-row fast path's schema
THREADS, ROWS = 4, 1500


def rows(thread: int, seqs: np.ndarray) -> dict:
    """Rows that say who wrote them (thread, sequence number) in every column, so a row mixed from
    two writes cannot pass ``check_whole``."""
    f = seqs.astype(np.float32)
    t = np.full(len(seqs), thread, np.float32)
    state = np.stack([t, f, f * np.float32(0.5)], axis=1)
    return {"state": state, "next_state": state + np.float32(1), "discrete_action": (seqs % 5).astype(np.int64),
            "continuous_action": np.stack([t, f], axis=1), "reward": f, "done": seqs % 7 == 6,
            "actor": np.full(len(seqs), thread % len(ACTORS), np.uint8)}


def check_whole(got: dict) -> tuple[np.ndarray, np.ndarray]:
    """Assert every row is one write's; returns each row's (thread, sequence number)."""
    thread, seq = got["state"][:, 0].astype(np.int64), got["state"][:, 1].astype(np.int64)
    expect = {}
    for t in np.unique(thread):
        sel = thread == t
        for k, v in rows(int(t), seq[sel]).items():
            expect.setdefault(k, np.empty((len(thread), *v.shape[1:]), v.dtype))[sel] = v
    for k, v in expect.items():
        assert np.array_equal(v, got[k].astype(v.dtype)), f"column {k!r}: a row mixes two writes"
    return thread, seq


def writer_thread(s, thread: int, errors: list) -> None:
    rng = random.Random(thread)
    seq = 0
    try:
        while seq < ROWS:
            r = rng.random()
            if r < 0.6:
                state = np.array([thread, seq, seq * 0.5], np.float32)
                s.append(actor=ACTORS[thread % len(ACTORS)], state=state, next_state=state + np.float32(1),
                         discrete_action=seq % 5, continuous_action=np.array([thread, seq], np.float32),
                         reward=float(seq), done=seq % 7 == 6)
                seq += 1
            elif r < 0.95:
                n = min(ROWS - seq, rng.choice([2, 17, 300, 1100]))  # 1100: a block written through
                s.extend(rows(thread, np.arange(seq, seq + n)))
                seq += n
            else:
                s.commit()
    except BaseException as e:  # reported by the test
        errors.append(e)


def reader_thread(path, s, stop: threading.Event, errors: list, seen: list) -> None:
    try:
        with ReplayStore.open(path) as r, Sampler(s, 64, seed=1, as_torch=False) as sampler:
            while not stop.is_set():
                n = r.refresh()
                if n:
                    check_whole(r.read(start=max(0, n - 200)))
                    assert r.actor_counts().sum() == n
                if len(s):
                    check_whole(sampler.sample())
                seen.append(n)
    except BaseException as e:
        errors.append(e)


def write_from_threads(store_path):
    """A writer (commits every 500 rows, 1,024-row segments) filled by THREADS writer threads while a
    reader thread reads it; returns once the writers are done, the reader still running:
    ``(writer, reader thread, its stop event, errors, row counts the reader saw)``."""
    s = ReplayStore.create(store_path, SCHEMA, actors=ACTORS, window=4096, commit_every=500, segment_rows=1024,
                           chunk_bytes=4096)
    errors, seen, stop = [], [], threading.Event()
    reader = threading.Thread(target=reader_thread, args=(str(store_path), s, stop, errors, seen))
    reader.start()
    writers = [threading.Thread(target=writer_thread, args=(s, t, errors)) for t in range(THREADS)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    return s, reader, stop, errors, seen


@pytest.fixture
def tiny_switch_interval():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_threads_sharing_a_writer_interleave_whole_rows(store_path, tiny_switch_interval):
    """4 threads append, extend and commit 1,500 rows each into one writer (commits every 500 rows,
    1,024-row segments) while a reader and a sampler read: every row is whole, each thread's rows
    appear once each and in its order, actor counts equal rows, and the store reopens."""
    s, reader, stop, errors, seen = write_from_threads(store_path)
    stop.set()  # before the close: a sampler over a writer that another thread closes is not covered here
    reader.join()
    s.close()
    assert [] == errors
    assert seen and max(seen) > 0  # the reader did read while the threads wrote
    with ReplayStore.open(store_path) as r:
        assert THREADS * ROWS == len(r)
        thread, seq = check_whole(r.read())
        for t in range(THREADS):
            assert np.array_equal(np.arange(ROWS), seq[thread == t]), f"thread {t}'s rows lost, repeated or reordered"
        assert [ROWS * sum(1 for t in range(THREADS) if t % 3 == a) for a in range(3)] == r.actor_counts().tolist()
        assert r.writer_state["died"] is False


def test_close_from_one_thread_while_others_append(store_path, tiny_switch_interval):
    """A thread that closes the writer while others append: each append either lands (and is
    committed by the close) or raises ClosedStoreError; nothing half-written, the store reopens."""
    from replaystore.store.errors import ClosedStoreError

    s = ReplayStore.create(store_path, SCHEMA, actors=ACTORS, window=4096, commit_every=10**6, segment_rows=1024,
                           chunk_bytes=4096)
    landed = [0] * THREADS
    failures = []

    def go(t):
        for seq in range(2000):
            try:
                s.extend(rows(t, np.array([seq])))
            except ClosedStoreError:
                return
            except BaseException as e:
                failures.append(e)
                return
            landed[t] += 1

    ts = [threading.Thread(target=go, args=(t,)) for t in range(THREADS)]
    for t in ts:
        t.start()
    while len(s) == 0 and sum(landed) < 500:
        pass
    s.close()
    for t in ts:
        t.join()
    assert [] == failures
    with ReplayStore.open(store_path) as r:
        assert sum(landed) == len(r)
        thread, seq = check_whole(r.read())
        for t in range(THREADS):
            assert np.array_equal(np.arange(landed[t]), seq[thread == t])


@pytest.mark.parametrize("trial", range(3))
def test_reader_and_sampler_over_a_writer_closed_under_them(store_path, tiny_switch_interval, trial):
    """The threads of the test above, with the writer closed while its sampler still reads: each
    batch is whole rows or ClosedStoreError, never one with unread (uninitialized) columns (before:
    3 of 8 runs returned such a batch)."""
    from replaystore.store.errors import ClosedStoreError

    s, reader, stop, errors, seen = write_from_threads(store_path)
    s.close()
    stop.set()
    reader.join()
    assert [] == [e for e in errors if not isinstance(e, ClosedStoreError)]
    with ReplayStore.open(store_path) as r:
        assert THREADS * ROWS == len(r)
