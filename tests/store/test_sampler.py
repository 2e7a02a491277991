"""store.Sampler: window, strategies, priorities, determinism, no HDF5 per batch, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy import stats

from replaystore.store import Prioritized, ReplayStore, Sampler, SamplingStrategy, Schema, Stratified, Uniform
from replaystore.store.sample._sampler_index import ActorRows, largest_remainder
from replaystore.store.sample._sumtree import SumTree
from replaystore.store.errors import EmptyWindowError, SamplerError

from store_helpers import rss_kb

ACTORS = ("expert", "dqn", "random")
SCHEMA = Schema.transition((3,), continuous_dim=2, discrete_dtype="int16")
ROOT = Path(__file__).resolve().parents[2]


def rows_block(start: int, stop: int, actor) -> dict:
    """Self-describing rows: every value is computed from the row id."""
    ids = np.arange(start, stop)
    n = len(ids)
    return {
        "actor": np.broadcast_to(np.asarray(actor), (n,)).copy() if np.ndim(actor) == 0 else np.asarray(actor),
        "state": np.repeat(ids[:, None], 3, 1).astype("f4"),
        "next_state": np.repeat(ids[:, None] + 1, 3, 1).astype("f4"),
        "discrete_action": (ids % 7).astype("i2"),
        "continuous_action": np.stack([ids * 0.5, -ids], 1).astype("f4"),
        "reward": ids.astype("f4"),
        "done": ids % 50 == 49,
    }


def new_store(path, window: int = 1000, chunk_bytes: int = 4096) -> ReplayStore:
    return ReplayStore.create(path, SCHEMA, actors=ACTORS, window=window, commit_every=10**9,
                              commit_seconds=3600.0, chunk_bytes=chunk_bytes)


def append(store: ReplayStore, start: int, stop: int, actor, commit: bool = True) -> None:
    store.extend(rows_block(start, stop, actor))
    if commit:
        store.commit()


def pattern(start: int, stop: int) -> np.ndarray:
    """Actor codes for rows [start, stop): 1/8 expert, 5/8 dqn, 2/8 random, interleaved."""
    return np.array([0, 1, 1, 2, 1, 1, 2, 1], np.uint8)[np.arange(start, stop) % 8]


@pytest.fixture
def path(tmp_path) -> Path:
    return tmp_path / "run.h5"


@pytest.fixture
def filled(path):
    """A writable store of 3000 committed rows, window 1000: rows 0..1999 all 'random', then a mix."""
    s = new_store(path, window=1000)
    append(s, 0, 2000, 2)
    append(s, 2000, 3000, pattern(2000, 3000))
    yield s
    s.close()


def check_batch_matches_store(store: ReplayStore, batch: dict) -> None:
    rows = np.asarray(batch["row"])
    for col in SCHEMA.names:
        whole = store.read([col])[col]
        want = whole[rows]
        got = np.asarray(batch[col])
        assert want.dtype == got.dtype, col
        assert np.array_equal(want, got), f"column {col!r} differs from store.read"


# ---------------------------------------------------------------- uniform
def test_uniform_composition_follows_window_within_binomial_bounds(filled):
    """Actor counts over many uniform batches match the window's composition (5-sigma binomial)."""
    sampler = Sampler(filled, 256, seed=3, as_torch=False)
    total = np.zeros(len(ACTORS), np.int64)
    for _ in range(200):
        b = sampler.sample()
        assert np.array_equal(np.bincount(b["actor"], minlength=3), sampler.last_actor_counts)
        total += sampler.last_actor_counts
    comp = filled.actor_composition(window=True)
    assert comp["total"] == 1000
    draws = total.sum()
    for code, name in enumerate(ACTORS):
        p = comp["fractions"][name]
        sigma = np.sqrt(draws * p * (1 - p))
        assert abs(total[code] - draws * p) <= 5 * sigma + 1, (name, total[code], draws * p)
    # The whole store is mostly 'random'; the window is not: the sampler must follow the window.
    assert total[2] / draws < 0.3


def test_uniform_rows_stay_in_window_and_committed(filled):
    """Rows below the window or appended but not committed never appear; values equal store.read."""
    append(filled, 3000, 3500, pattern(3000, 3500), commit=False)  # written, not committed
    sampler = Sampler(filled, 512, seed=1, as_torch=False)
    seen = np.concatenate([sampler.sample()["row"] for _ in range(40)])
    assert seen.min() >= 2000 and seen.max() < 3000
    assert len(np.unique(seen)) > 900  # covers the window
    check_batch_matches_store(filled, sampler.sample())
    filled.commit()
    b = sampler.sample()  # the writer's commit is seen in its own process, no refresh call
    assert sampler.rows_in_window == (2500, 3500)
    assert b["row"].min() >= 2500 and b["row"].max() >= 3000
    check_batch_matches_store(filled, b)


@pytest.mark.parametrize("strategy", ["uniform", "stratified", "prioritized"])
def test_batches_come_sorted_and_aligned_across_segments(tmp_path, strategy):
    """Over a window of many segments, uniform batches come in ascending rows, stratified ascending
    within each actor's group, prioritized in ring-slot order; every column and the actor codes stay
    aligned with ``row`` (the store gathers them run by run)."""
    path = tmp_path / "segs.h5"
    with ReplayStore.create(path, SCHEMA, actors=ACTORS, window=3000, segment_rows=256, commit_every=10**9,
                            commit_seconds=3600.0) as s:
        append(s, 0, 3500, pattern(0, 3500))
        kw = {"actor_fractions": {"expert": 0.2, "dqn": 0.5, "random": 0.3}} if strategy == "stratified" else {}
        with Sampler(s, 700, strategy=strategy, seed=2, as_torch=False, **kw) as sm:
            for _ in range(3):
                b = sm.sample()
                rows = b["row"]
                assert rows.min() >= 500 and len(np.unique(rows >> 8)) >= 8  # spans many segments
                check_batch_matches_store(s, b)
                if strategy == "uniform":
                    assert (np.diff(rows) >= 0).all()
                elif strategy == "stratified":
                    assert (np.diff(b["actor"].astype(int)) >= 0).all()  # grouped by actor code
                    for a in range(len(ACTORS)):
                        assert (np.diff(rows[b["actor"] == a]) >= 0).all()
                else:
                    assert (np.diff(rows % 3000) >= 0).all()
                    sm.update_priorities(rows, (rows % 11 + 1).astype(float))


def test_torch_batch_dtypes_zero_copy_and_threads_untouched(filled):
    """as_torch gives one tensor per column with the schema's dtype, plus row/actor/weight."""
    threads = torch.get_num_threads()
    b = next(iter(Sampler(filled, 64, seed=0, as_torch=True)))
    assert torch.get_num_threads() == threads
    assert set(b) == set(SCHEMA.names) | {"row", "weight"}
    for c in SCHEMA:
        assert b[c.name].numpy().dtype == c.dtype, c.name
        assert tuple(b[c.name].shape) == (64, *c.shape), c.name
    assert b["row"].dtype == torch.int64 and b["actor"].dtype == torch.uint8
    assert b["weight"].dtype == torch.float32 and bool((b["weight"] == 1).all())
    check_batch_matches_store(filled, b)


def test_reader_sees_commits_of_another_handle(path):
    """A sampler over a path (its own reader) picks up a writer's later commits by itself."""
    w = new_store(path, window=100)
    append(w, 0, 50, 1)
    sampler = Sampler(path, 32, seed=0, as_torch=False)
    assert sampler.sample()["row"].max() < 50
    append(w, 50, 400, 0)
    b = sampler.sample()
    assert sampler.rows_in_window == (300, 400)
    assert b["row"].min() >= 300 and (b["actor"] == 0).all()
    check_batch_matches_store(sampler.store, b)
    sampler.close()
    assert sampler.store.closed
    w.close()


# ---------------------------------------------------------------- stratified
def test_stratified_exact_counts_largest_remainder(filled):
    """Every batch holds exactly the largest-remainder counts, and each row has the actor it claims."""
    s = Sampler(filled, 10, strategy="stratified", actor_fractions={"expert": 0.25, "dqn": 0.75},
                seed=0, as_torch=False)
    actor_col = filled.read(["actor"])["actor"]
    for _ in range(50):
        b = s.sample()
        assert s.last_actor_counts.tolist() == [3, 7, 0]
        assert np.bincount(b["actor"], minlength=3).tolist() == [3, 7, 0]
        assert np.array_equal(actor_col[b["row"]], b["actor"])
        assert b["row"].min() >= 2000
    thirds = Sampler(filled, 100, strategy="stratified", seed=0, as_torch=False,
                     actor_fractions={"expert": 1 / 3, "dqn": 1 / 3, "random": 1 / 3})
    check_batch_matches_store(filled, thirds.sample())
    assert thirds.last_actor_counts.tolist() == [34, 33, 33]


def test_stratified_follows_new_commits_and_sliding_window(path):
    """Per-actor lists grow with commits, drop rows that leave the window, and stay window-sized."""
    s = new_store(path, window=500)
    append(s, 0, 400, 1)
    sm = Sampler(s, 64, strategy="stratified", actor_fractions={"expert": 0.5, "dqn": 0.5}, seed=0,
                 as_torch=False)
    with pytest.raises(EmptyWindowError, match=r"\['expert'\].*no rows in the window \[0, 400\)"):
        sm.sample()
    append(s, 400, 450, 0)
    b = sm.sample()
    assert set(b["row"][b["actor"] == 0].tolist()) <= set(range(400, 450))
    for k in range(20):  # slide the window many times over
        append(s, 450 + 300 * k, 450 + 300 * (k + 1), pattern(0, 300))
        b = sm.sample()
        lo, n = sm.rows_in_window
        assert b["row"].min() >= lo and b["row"].max() < n
    check_batch_matches_store(s, b)
    assert sm.strategy.index.counts().sum() == 500
    assert sm.strategy.index.capacity() <= 4 * 500 + 3 * 4096  # memory follows the window, not the 6450 rows
    s.close()


# ---------------------------------------------------------------- prioritized
def prioritized_setup(path, n=64, alpha=0.6, beta=0.4, seed=5):
    s = new_store(path, window=n)
    append(s, 0, 2 * n, pattern(0, 2 * n))  # rows 0..n-1 have left the window
    sm = Sampler(s, 256, strategy="prioritized", alpha=alpha, beta=beta, seed=seed, as_torch=False)
    sm.sample()
    rows = np.arange(n, 2 * n)
    pr = np.random.default_rng(0).uniform(0.05, 4.0, n)
    sm.update_priorities(rows, pr)
    return s, sm, rows, pr


def test_prioritized_frequencies_follow_priorities(path):
    """Sampling frequencies match p_i^alpha / sum (chi-square), and clearly differ from uniform."""
    s, sm, rows, pr = prioritized_setup(path)
    counts = np.zeros(len(rows), np.int64)
    for _ in range(300):
        b = sm.sample()
        counts += np.bincount(b["row"] - rows[0], minlength=len(rows))
    expected = pr ** 0.6 / (pr ** 0.6).sum() * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-4
    assert stats.chisquare(counts).pvalue < 1e-12  # against uniform: the test can tell them apart
    s.close()


def test_importance_weights_match_formula(path):
    """w_i = (N * P(i))^-beta / max_j w_j over the batch, with P(i) = p_i^alpha / sum_k p_k^alpha."""
    s, sm, rows, pr = prioritized_setup(path, alpha=0.7, beta=0.5)
    b = sm.sample()
    p = pr[b["row"] - rows[0]] ** 0.7
    P = p / (pr ** 0.7).sum()
    w = (len(rows) * P) ** -0.5
    np.testing.assert_allclose(b["weight"], w / w.max(), rtol=1e-5)
    assert b["weight"].dtype == np.float32
    check_batch_matches_store(s, b)
    s.close()


def test_new_rows_get_max_priority_and_rows_leaving_window_are_replaced(path):
    """A committed row enters with the largest priority seen so far, in its ring slot."""
    s, sm, rows, pr = prioritized_setup(path)
    sm.update_priorities(np.array([rows[3]]), np.array([9.5]))
    append(s, 128, 140, 1)
    sm.sample()
    assert sm.rows_in_window == (76, 140)
    np.testing.assert_array_equal(sm.priorities(np.arange(128, 140)), np.full(12, 9.5))
    np.testing.assert_array_equal(sm.priorities(np.arange(76, 128)), pr[12:])
    assert sm.strategy.tree.capacity == 64  # the tree follows the window, not the 140 rows
    s.close()


def test_priorities_survive_close_and_reopen(path):
    """Priorities saved when the sampler closes load again in a reader and in a reopened writer; max priority too."""
    s, sm, rows, pr = prioritized_setup(path)
    sm.update_priorities(rows[:2], np.array([7.0, 0.25]))
    sm.close()
    s.close()
    want = np.concatenate([[7.0, 0.25], pr[2:]])
    with Sampler(path, 16, strategy="prioritized", seed=0, as_torch=False) as r:
        np.testing.assert_allclose(r.priorities(rows), want)
    w = ReplayStore.open(path, "a", commit_seconds=3600.0)
    sm2 = Sampler(w, 16, strategy="prioritized", seed=0, as_torch=False)
    np.testing.assert_allclose(sm2.priorities(rows), want)
    append(w, 128, 130, 0)
    np.testing.assert_allclose(sm2.priorities(np.array([128, 129])), [7.0, 7.0])
    sm2.update_priorities(np.array([129]), np.array([0.5]))
    w.close()
    sm2.close()  # the sampler saves at close, also after its store closed
    with Sampler(path, 16, strategy="prioritized", seed=0, as_torch=False) as r:
        np.testing.assert_allclose(r.priorities(np.array([128, 129])), [7.0, 0.5])


def test_one_prioritized_sampler_per_writable_store(path):
    """A second prioritized sampler on the same writer is refused until the first closes."""
    s = new_store(path)
    append(s, 0, 10, 0)
    first = Sampler(s, 4, strategy="prioritized", as_torch=False)
    with pytest.raises(SamplerError, match="already attached"):
        Sampler(s, 4, strategy="prioritized", as_torch=False)
    first.close()
    Sampler(s, 4, strategy="prioritized", as_torch=False).sample()
    s.close()


# ---------------------------------------------------------------- determinism and HDF5
@pytest.mark.parametrize("strategy", ["uniform", "stratified", "prioritized"])
def test_same_seed_same_batches(filled, path, strategy):
    """Two samplers with one seed over the same committed rows give identical batches."""
    kw = {"actor_fractions": {"expert": 0.2, "dqn": 0.5, "random": 0.3}} if strategy == "stratified" else {}

    def batches(seed, source):
        with Sampler(source, 128, strategy=strategy, seed=seed, as_torch=False, **kw) as sm:
            out = []
            for _ in range(4):
                b = sm.sample()
                out.append(b)
                if strategy == "prioritized":
                    sm.update_priorities(b["row"], (b["row"] % 13 + 1).astype(float))
            return out

    filled.commit()
    a, b, c = batches(7, path), batches(7, path), batches(8, path)
    for x, y in zip(a, b):
        for k in x:
            assert np.array_equal(x[k], y[k]), k
    assert not all(np.array_equal(x["row"], y["row"]) for x, y in zip(a, c))


@pytest.fixture
def no_hdf5(monkeypatch):
    """Make every h5py read or open raise, for as long as the test runs after it is requested."""

    def refuse(*a, **k):
        raise AssertionError("an HDF5 call happened while sampling")

    def arm():
        for name in ("__getitem__", "read_direct", "__array__"):
            monkeypatch.setattr(h5py.Dataset, name, refuse)
        monkeypatch.setattr(h5py.File, "__init__", refuse)
        monkeypatch.setattr(h5py.Group, "__getitem__", refuse)
        monkeypatch.setattr(h5py.h5f, "open", refuse)  # the low-level opens, too
        monkeypatch.setattr(h5py.h5d, "open", refuse)

    return arm


@pytest.mark.parametrize("mode", ["r", "a"])
def test_no_hdf5_call_per_batch(path, no_hdf5, monkeypatch, mode):
    """sample() and update_priorities() run with every h5py read refused, also after new commits."""
    s = new_store(path, window=300)
    append(s, 0, 200, pattern(0, 200))
    if mode == "r":
        s.close()
        s = ReplayStore.open(path, "r")
    samplers = [Sampler(s, 32, seed=0, as_torch=False),
                Sampler(s, 32, strategy="stratified", actor_fractions={"dqn": 0.5, "random": 0.5}, seed=0),
                Sampler(s, 32, strategy="prioritized", seed=0)]
    no_hdf5()
    for sm in samplers:
        b = sm.sample()
        if sm.strategy.name == "prioritized":
            sm.update_priorities(b["row"], torch.rand(32) + 0.1)
        sm.sample()
    monkeypatch.undo()
    if mode == "a":
        append(s, 200, 400, pattern(200, 400))
    else:
        w = ReplayStore.open(path, "a")
        append(w, 200, 400, pattern(200, 400))
        w.close()
    no_hdf5()
    for sm in samplers:
        b = sm.sample()
        assert int(b["row"].min()) >= 100 and int(b["row"].max()) >= 200
    monkeypatch.undo()
    s.close()


# ---------------------------------------------------------------- another process
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from replaystore.store import Sampler
    path, final, block = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sm = Sampler(path, 64, seed=0, as_torch=False)
    print("ready", flush=True)
    seen, bad, batches, last = [], 0, 0, -1
    while last < final:
        b = sm.sample()
        batches += 1
        lo, n = sm.rows_in_window
        r = b["row"]
        ok = ((r >= lo) & (r < n) & (b["state"] == r[:, None]).all(1) & (b["next_state"][:, 0] == r + 1)
              & (b["reward"] == r) & (b["discrete_action"] == r % 7) & (b["continuous_action"][:, 1] == -r))
        bad += int((~ok).sum())
        if n != last:
            seen.append(n)
            last = n
            print("saw", n, flush=True)
    print(json.dumps({"seen": seen, "bad": bad, "batches": batches}), flush=True)
""")


def test_sampler_in_another_process_sees_only_committed_rows(path, tmp_path):
    """A sampler process follows a live writer: only commit-boundary row counts, every value as written."""
    block, rounds = 300, 8
    s = new_store(path, window=1000)
    append(s, 0, block, pattern(0, block))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, str(script), str(path), str(block * rounds), str(block)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "ready"
        for k in range(1, rounds):
            assert child.stdout.readline().split()[0] == "saw"
            # Rows written to the file but not committed yet must stay invisible meanwhile.
            append(s, k * block, k * block + block // 2, pattern(0, block // 2), commit=False)
            s._tables["transitions"].flush_stage()
            append(s, k * block + block // 2, (k + 1) * block, pattern(0, block - block // 2))
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["bad"] == 0
    assert result["seen"] == [block * k for k in range(1, rounds + 1)]
    s.close()


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True, "8", None])
def test_bad_batch_size(filled, batch_size):
    """A batch size that is not a positive int is refused and named."""
    with pytest.raises(SamplerError, match=r"batch_size=.*expected a positive int"):
        Sampler(filled, batch_size)


@pytest.mark.parametrize("kwargs, match", [
    ({"strategy": "rank"}, r"strategy='rank' is unknown; expected one of \['uniform', 'stratified', 'prioritized'\]"),
    ({"strategy": "stratified"}, r"needs actor_fractions.*'expert': \.\.\."),
    ({"strategy": "stratified", "actor_fractions": {"expert": 0.5, "human": 0.5}},
     r"actor 'human', which is not in the store's vocabulary \['expert', 'dqn', 'random'\]"),
    ({"strategy": "stratified", "actor_fractions": {"expert": 0.5, "dqn": 0.4}}, r"sum to 0\.9; they must sum to 1"),
    ({"strategy": "stratified", "actor_fractions": {0: 0.5, 1: 0.5}}, r"key 0: expected actor names \(str\)"),
    ({"strategy": "stratified", "actor_fractions": {"expert": -0.5, "dqn": 1.5}}, r"actor_fractions\['expert'\]=-0\.5: expected a number in \[0, 1\]"),
    ({"actor_fractions": {"expert": 1.0}}, r"actor_fractions given with strategy='uniform'"),
    ({"strategy": "prioritized", "alpha": -1}, r"alpha=-1: expected a finite number >= 0"),
    ({"strategy": "prioritized", "beta": float("nan")}, r"beta=nan: expected a finite number >= 0"),
    ({"alpha": 0.5}, r"alpha given with strategy='uniform'; they apply to strategy='prioritized' only"),
    ({"strategy": Uniform(), "actor_fractions": {"expert": 1.0}}, r"actor_fractions given with the strategy object"),
    ({"strategy": 3}, r"strategy=3 is unknown"),
    ({"seed": -1}, r"seed=-1: expected None or a non-negative int"),
    ({"columns": ["state", "qvalue"]}, r"unknown or none"),
])
def test_bad_configuration(filled, kwargs, match):
    """Each invalid configuration raises a SamplerError (a ValueError) naming what was wrong."""
    with pytest.raises(SamplerError, match=match) as e:
        Sampler(filled, 8, **kwargs)
    assert isinstance(e.value, ValueError)


def test_bad_source(tmp_path):
    """A source that is neither a store nor a path is a TypeError; a missing path says so."""
    with pytest.raises(TypeError, match="source must be a ReplayStore or a path to one, got int"):
        Sampler(3, 8)
    with pytest.raises(FileNotFoundError, match="no store at"):
        Sampler(tmp_path / "missing.h5", 8)


def test_empty_store_raises_empty_window(path):
    """Sampling a store with no committed rows is an EmptyWindowError (a ValueError)."""
    s = new_store(path)
    append(s, 0, 10, 0, commit=False)
    with pytest.raises(EmptyWindowError, match="no committed rows yet"):
        Sampler(s, 8).sample()
    s.close()


@pytest.mark.parametrize("rows, priorities, match", [
    ([70, 71], [1.0, -0.5], r"priority -0\.5 for row 71 is not positive, not finite"),
    ([70, 71], [np.nan, 1.0], r"priority nan for row 70 is not positive, not finite"),
    ([70], [np.inf], r"priority inf for row 70 is not positive, not finite"),
    ([10, 70], [1.0, 1.0], r"row 10 is outside the window \[64, 128\)"),
    ([128], [1.0], r"row 128 is outside the window \[64, 128\)"),
    ([70.0], [1.0], r"rows must be a 1-D integer array"),
    ([70, 71], [1.0], r"same shape as rows \(2,\)"),
])
def test_bad_priorities(path, rows, priorities, match):
    """update_priorities refuses bad rows or priorities, and changes nothing."""
    s, sm, wrows, pr = prioritized_setup(path)
    with pytest.raises(SamplerError, match=match):
        sm.update_priorities(np.array(rows), np.array(priorities))
    np.testing.assert_array_equal(sm.priorities(wrows), pr)
    s.close()


def test_update_priorities_needs_prioritized(filled):
    """A uniform sampler has no priorities to update."""
    with pytest.raises(SamplerError, match="strategy is 'uniform', not 'prioritized'"):
        Sampler(filled, 8).update_priorities([1], [1.0])


@pytest.mark.parametrize("bad", [0.0, -0.0, 1e-46, -1.0, np.nan, np.inf, 1e39])
def test_priorities_must_be_positive_and_finite(path, bad):
    """Zero (never drawn: a silent hole), what float32 rounds to zero, negatives, NaN, inf and
    what float32 cannot hold are refused, saying what was given, and nothing is changed."""
    s, sm, rows, pr = prioritized_setup(path)
    before = sm.priorities(rows).copy()
    given = pr.astype(np.float64)
    given[3] = bad
    with pytest.raises(SamplerError, match=r"priority .* for row .* must be finite, in \[1.175494e-38"):
        sm.update_priorities(rows, given)
    np.testing.assert_array_equal(sm.priorities(rows), before)
    s.close()


def test_tiny_priorities_leave_a_row_almost_never_drawn(path):
    """The smallest accepted priority is kept (saved as float32, not rounded to zero)."""
    s, sm, rows, pr = prioritized_setup(path)
    sm.update_priorities(rows, np.full(len(rows), 1.2e-38))
    np.testing.assert_array_equal(sm.priorities(rows), np.full(len(rows), 1.2e-38))
    sm.sample()
    s.close()


# ---------------------------------------------------------------- memory
@pytest.mark.parametrize("strategy", ["uniform", "stratified", "prioritized"])
def test_anonymous_memory_does_not_follow_store_size(tmp_path, strategy):
    """Sampling an ~80 MB store adds far less private memory than the store holds (data stays mapped)."""
    schema = Schema.transition((256,))
    path = tmp_path / "big.h5"
    n = 40_000
    with ReplayStore.create(path, schema, actors=ACTORS, window=n, commit_every=10**9) as s:
        for start in range(0, n, 10_000):
            k = 10_000
            s.extend({"actor": pattern(start, start + k), "state": np.full((k, 256), 1, "f4"),
                      "next_state": np.full((k, 256), 2, "f4"), "discrete_action": np.zeros(k, "i4"),
                      "continuous_action": np.zeros((k, 0), "f4"), "reward": np.zeros(k, "f4"),
                      "done": np.zeros(k, bool)})
    store_mb = sum(os.path.getsize(p) for p in Path(f"{path}.d").glob("*.h5")) / 2**20  # format 2: segment files
    kw = {"actor_fractions": {"expert": 0.5, "dqn": 0.5}} if strategy == "stratified" else {}
    before = rss_kb("RssAnon")
    with Sampler(path, 256, strategy=strategy, seed=0, as_torch=False, **kw) as sm:
        for _ in range(50):
            b = sm.sample()
            assert (b["state"] == 1).all() and (b["next_state"] == 2).all()
        grown_mb = (rss_kb("RssAnon") - before) / 1024
    assert store_mb > 75
    assert grown_mb < 16, f"private memory grew {grown_mb:.1f} MB while sampling a {store_mb:.0f} MB store"


# ---------------------------------------------------------------- building blocks
@pytest.mark.parametrize("n_actors", [3, 20])
def test_actor_rows_match_a_rescan(n_actors):
    """Per-actor lists built block by block (scan and sort paths) equal a rescan of the window."""
    rng = np.random.default_rng(n_actors)
    codes = rng.integers(0, n_actors, 30_000).astype(np.uint8)
    idx = ActorRows(n_actors)
    at, window = 0, 7_000
    while at < len(codes):
        k = int(rng.integers(1, 3_000))
        idx.extend(codes[at:at + k], at)
        at = min(len(codes), at + k)
        lo = max(0, at - window)
        idx.trim(lo)
        for a in range(n_actors):
            assert np.array_equal(idx.rows(a), lo + np.flatnonzero(codes[lo:at] == a)), (a, lo, at)
    assert idx.capacity() <= 2 * (window + n_actors * 4096) + n_actors * 1024


def test_largest_remainder_sums_and_is_close():
    """Counts sum to the total, each within one of its quota, zero fractions get zero rows."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        f = rng.dirichlet(np.ones(5)) * (rng.random(5) > 0.3)
        if f.sum() == 0:
            continue
        f /= f.sum()
        total = int(rng.integers(1, 10_000))
        c = largest_remainder(f, total)
        assert c.sum() == total
        assert (np.abs(c - f * total) < 1).all()
        assert (c[f == 0] == 0).all()


def test_sum_tree_against_cumsum():
    """find() agrees with a search over the leaves' running sum, after repeated sets and a grow."""
    rng = np.random.default_rng(1)
    t = SumTree(1000)
    values = np.zeros(t.capacity)
    for _ in range(5):
        leaves = rng.integers(0, 1000, 400)
        v = rng.exponential(1.0, 400) * (rng.random(400) > 0.2)
        t.set(leaves, v)
        values[leaves] = v  # numpy's last-wins, as SumTree.set documents
        np.testing.assert_allclose(t.total, values.sum())
    t.grow(70_000)
    assert t.capacity == 1 << 17
    t.set_range(60_000, np.full(100, 2.0))
    values = np.concatenate([values, np.zeros(t.capacity - len(values))])
    values[60_000:60_100] = 2.0
    prefix = np.sort(rng.random(5000)) * values.sum()
    want = np.searchsorted(np.cumsum(values), prefix, side="right")
    got = t.find(prefix)
    close = np.isclose(np.cumsum(values)[np.minimum(want, len(values) - 1)], prefix)  # ties at edges
    assert np.array_equal(got[~close], want[~close])
    assert (values[got] > 0).all()


def test_numpy_by_default_and_a_clear_error_for_torch_without_torch(filled, monkeypatch):
    """The light core returns numpy; asking for tensors where torch is missing names the extra."""
    b = Sampler(filled, 8, seed=0).sample()
    assert all(isinstance(v, np.ndarray) for v in b.values())
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(SamplerError, match=r"torch is not installed.*replaystore\[agent\]"):
        Sampler(filled, 8, seed=0, as_torch=True)


# ---------------------------------------------------------------- strategies as objects
def test_strategy_names_any_case_and_objects_alike(filled):
    """A name in any case and the matching strategy object give the same batches for one seed."""
    fr = {"expert": 0.2, "dqn": 0.8}
    pairs = [({"strategy": "UNIFORM"}, {"strategy": Uniform()}),
             ({"strategy": "Stratified", "actor_fractions": fr}, {"strategy": Stratified(fr)}),
             ({"strategy": "prioritized", "alpha": 0.5, "beta": 0.3}, {"strategy": Prioritized(0.5, 0.3)})]
    for by_name, by_object in pairs:
        with Sampler(filled, 64, seed=4, **by_name) as a:
            x = a.sample()
        with Sampler(filled, 64, seed=4, **by_object) as b:  # one prioritized sampler per writer at a time
            y = b.sample()
        assert type(a.strategy) is type(b.strategy)
        assert np.array_equal(x["row"], y["row"]) and np.array_equal(x["weight"], y["weight"])


def test_a_strategy_object_serves_one_sampler(filled):
    """Binding one strategy object to a second sampler is refused (its state follows one window)."""
    st = Stratified({"expert": 0.5, "dqn": 0.5})
    Sampler(filled, 8, strategy=st)
    with pytest.raises(SamplerError, match="already serves a sampler over .*make a new strategy object"):
        Sampler(filled, 8, strategy=st)


def test_own_strategy_through_the_protocol(filled):
    """A user's SamplingStrategy (here: the newest rows only) plugs in; actor counts come from the rows."""

    class Newest(SamplingStrategy):
        name = "newest"

        def draw(self, rng, lo, n):
            from replaystore.store.sample._sampling_strategies import Draw
            return Draw(np.arange(n - self.batch_size, n, dtype=np.int64))

    sm = Sampler(filled, 16, strategy=Newest())
    b = sm.sample()
    assert b["row"].tolist() == list(range(2984, 3000))
    assert sm.last_actor_counts.tolist() == np.bincount(pattern(2984, 3000), minlength=3).tolist()
    check_batch_matches_store(filled, b)
    with pytest.raises(SamplerError, match="strategy is 'newest', not 'prioritized'"):
        sm.beta = 0.5


@pytest.mark.parametrize("leaves, draws", [(1, 5), (7, 64), (5000, 8192), (1 << 15, 1000), (70_000, 8192)])
def test_sum_tree_find_slices_equals_find(leaves, draws):
    """find_slices gives the leaves that find gives for the same sliced prefixes, zero leaves never."""
    rng = np.random.default_rng(leaves)
    t = SumTree(leaves)
    values = rng.exponential(1.0, leaves) * (rng.random(leaves) > 0.3)
    values[0] = 1.0
    t.set_range(0, values)
    offsets = rng.random(draws)
    got, total = t.find_slices(offsets)
    cums = t.top_cumsum()
    assert total == float(cums[-1])
    want = t.find((np.arange(draws) + offsets) * (total / draws), cums)
    assert np.array_equal(got, want)
    assert np.all(np.diff(got) >= 0)
    assert np.isclose(total, values.sum())


@pytest.mark.parametrize("leaves, changes", [(1, 3), (8, 20), (1000, 7), (1 << 14, 5000), (70_000, 8192)])
def test_sum_tree_set_keeps_every_node_the_sum_of_its_children(leaves, changes):
    """After sparse and dense sets (repeats included) every internal node equals left + right."""
    rng = np.random.default_rng(changes)
    t = SumTree(leaves)
    want = np.zeros(t.capacity)
    for _ in range(3):
        k = rng.integers(0, leaves, changes)
        v = rng.exponential(1.0, changes)
        t.set(k, v)
        want[k] = v
    assert np.array_equal(t.leaves, want)
    inner = np.arange(1, t.capacity)
    assert np.array_equal(t.tree[inner], t.tree[2 * inner] + t.tree[2 * inner + 1])
    np.testing.assert_allclose(t.total, want.sum())


def test_beta_anneals_between_batches(path):
    """Setting sampler.beta changes the next batch's weights: beta=0 gives ones, beta=1 the full correction."""
    s, sm, rows, pr = prioritized_setup(path, alpha=1.0, beta=0.4)
    sm.beta = 0.0
    assert (sm.sample()["weight"] == 1).all()
    sm.beta = 1.0
    b = sm.sample()
    p = pr[b["row"] - rows[0]]
    np.testing.assert_allclose(b["weight"], p.min() / p, rtol=1e-5)
    assert sm.beta == 1.0 and sm.strategy.beta == 1.0
    with pytest.raises(SamplerError, match=r"beta=-0\.1: expected a finite number >= 0"):
        sm.beta = -0.1
    s.close()
