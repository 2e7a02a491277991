"""The one-row append's two paths (bound parameters for Schema.transition, the general loop)
interleave with each other and with extend, flushes and commits without mixing up any value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaystore.store import ReplayStore, Schema, errors

SCHEMA = Schema.transition((3,), continuous_dim=1)


def _row(i: int, kind: str) -> dict:
    """Row ``i`` with plain Python scalars (the fast path) or numpy scalars and lists (the general path)."""
    r = dict(state=np.full(3, i, "f4"), next_state=np.full(3, i + 0.5, "f4"), continuous_action=np.full(1, -i, "f4"),
             discrete_action=i % 7, reward=float(i) / 4, done=i % 5 == 4)
    if kind == "general":
        r.update(discrete_action=np.int64(i % 7), reward=np.float32(i / 4), done=np.bool_(i % 5 == 4),
                 state=[float(i)] * 3)
    return r


@pytest.mark.parametrize("seed", range(4))
def test_paths_interleave_exactly(tmp_path, seed):
    """Random runs of fast appends, general appends, small extends and commits: every row reads back
    as given, episodes and steps follow the done flags, and counts equal rows."""
    rng = np.random.default_rng(seed)
    path = tmp_path / "run.h5"
    n = 0
    with ReplayStore.create(path, SCHEMA, actors=("a", "b"), commit_every=10**9, commit_seconds=1e9) as s:
        assert s._stager.fast  # Schema.transition: the bound-parameter path is planned
        while n < 3000:
            what = rng.choice(["fast", "general", "extend", "commit"], p=[0.6, 0.2, 0.1, 0.1])
            if what == "extend":
                k = int(rng.integers(1, 40))
                rows = [_row(i, "fast") for i in range(n, n + k)]
                s.extend({c: np.array([r[c] for r in rows]) for c in rows[0]} | {"actor": np.arange(n, n + k) % 2})
                n += k
            elif what == "commit":
                assert s.commit() == n
            else:
                s.append(actor=("a", "b")[n % 2], **_row(n, what))
                n += 1
    with ReplayStore.open(path) as r:
        got = r.read()
    i = np.arange(n)
    np.testing.assert_array_equal(np.repeat(i[:, None], 3, 1).astype("f4"), got["state"])
    np.testing.assert_array_equal((i / 4).astype("f4"), got["reward"])
    np.testing.assert_array_equal(i % 7, got["discrete_action"])
    np.testing.assert_array_equal(i % 5 == 4, got["done"])
    np.testing.assert_array_equal(i % 2, got["actor"])
    np.testing.assert_array_equal(i // 5, got["episode"])
    np.testing.assert_array_equal(i % 5, got["step"])
    assert (np.diff(got["time"]) >= 0).all()


def test_bad_values_on_the_fast_path_raise_and_keep_nothing(tmp_path):
    """A NaN state, an out-of-range action or an unknown actor raises at that call; the row is not kept."""
    with ReplayStore.create(tmp_path / "run.h5", SCHEMA, actors=("a",)) as s:
        s.append(actor="a", **_row(0, "fast"))
        bad = _row(1, "fast")
        bad["next_state"] = np.array([1, np.nan, 1], "f4")
        with pytest.raises(errors.NonFiniteError, match="next_state"):
            s.append(actor="a", **bad)
        with pytest.raises(errors.DTypeError, match="discrete_action"):
            s.append(actor="a", **dict(_row(1, "fast"), discrete_action=2**40))
        with pytest.raises(errors.NonFiniteError, match="reward"):
            s.append(actor="a", **dict(_row(1, "fast"), reward=1e39))
        with pytest.raises(errors.UnknownActorError):
            s.append(actor="z", **_row(1, "fast"))
        s.append(actor="a", **_row(1, "fast"))
        assert s.commit() == 2
        np.testing.assert_array_equal([0, 1], s.read(["discrete_action"])["discrete_action"])


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["f2", "f4", "f8"]), st.integers(1, 40), st.sampled_from([(), (1,), (3,), (2, 5)]),
       st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from([np.nan, np.inf, -np.inf])), max_size=4),
       st.booleans())
def test_first_nonfinite_row_agrees_with_isfinite(dtype, n, shape, bad, huge):
    """The block check names the first row holding a NaN or inf, whatever the dtype and row shape,
    and passes huge finite values."""
    from replaystore.store.write._stager import first_nonfinite_row

    info = np.finfo(dtype)
    arr = np.random.default_rng(n).uniform(-1, 1, (n, *shape)).astype(dtype)
    if huge:
        arr *= info.max
    flat = arr.reshape(n, -1)
    for pos, value in bad:
        flat[pos % n, pos % flat.shape[1]] = value
    rows_bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    want = int(rows_bad[0]) if len(rows_bad) else None
    assert want == first_nonfinite_row(arr)


@pytest.mark.parametrize("path", ["fast", "general"])
@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "+inf and -inf"])
def test_nonfinite_is_a_store_error_under_strict_numpy_and_warnings(tmp_path, path, bad):
    """With warnings as errors and np.seterr(all="raise"), a bad value still raises NonFiniteError
    (no RuntimeWarning or FloatingPointError from the check itself), tiny and huge finite values are
    kept bit for bit, and the bad row is not kept."""
    import warnings

    with ReplayStore.create(tmp_path / "run.h5", SCHEMA, actors=("a", "b")) as s, warnings.catch_warnings(), \
            np.errstate(all="raise"):
        warnings.simplefilter("error")
        edge = _row(0, path)
        edge["state"] = np.array([1e-45, -3.4e38, 3.4e38], "f4") if path == "fast" else [1e-45, -3.4e38, 3.4e38]
        s.append(actor="a", **edge)
        row = _row(1, path)
        state = np.array([0.5, 1.0, 2.0], "f4")
        if bad == "+inf and -inf":
            state[0], state[2] = np.inf, -np.inf
        else:
            state[1] = float(bad)
        row["state"] = state if path == "fast" else state.tolist()
        with pytest.raises(errors.NonFiniteError, match="'state'"):
            s.append(actor="b", **row)
        s.append(actor="b", **_row(2, path))
        s.commit()
        got = s.read(["state"])["state"]
    assert len(got) == 2
    assert got[0].tobytes() == np.array([1e-45, -3.4e38, 3.4e38], "f4").tobytes()


def test_extend_nonfinite_is_a_store_error_under_strict_numpy_and_warnings(tmp_path):
    """extend's block check under warnings-as-errors and np.seterr(all="raise"): NonFiniteError naming the row."""
    import warnings

    block = {c: np.array([_row(i, "fast")[c] for i in range(50)]) for c in _row(0, "fast")}
    block["actor"] = np.zeros(50, np.uint8)
    block["next_state"] = block["next_state"].astype("f8")
    block["next_state"][37, 1] = np.inf
    with ReplayStore.create(tmp_path / "run.h5", SCHEMA, actors=("a", "b")) as s, warnings.catch_warnings(), \
            np.errstate(all="raise"):
        warnings.simplefilter("error")
        with pytest.raises(errors.NonFiniteError, match="'next_state' holds NaN or inf at block row 37"):
            s.extend(block)
        assert 0 == len(s)


@pytest.mark.parametrize("kind", ["fast", "general"])
def test_zero_width_continuous_action_may_be_left_out(tmp_path, kind):
    """With continuous_dim=0, append and extend take rows without continuous_action (both append
    paths), and still accept it given; rows read back as given, with a (n, 0) column. A store with
    continuous actions still refuses a row without them."""
    path = tmp_path / "run.h5"
    with ReplayStore.create(path, Schema.transition((3,)), actors=("a", "b"), commit_every=10**9) as s:
        for i in range(6):
            r = _row(i, kind)
            del r["continuous_action"]
            if i % 3 == 2:
                r["continuous_action"] = np.zeros(0, "f4")
            s.append(actor="a", **r)
        rows = [_row(i, "fast") for i in range(6, 10)]
        s.extend({c: np.array([r[c] for r in rows]) for c in rows[0] if c != "continuous_action"} | {"actor": [1] * 4})
    with ReplayStore.open(path) as r:
        got = r.read()
        assert np.array_equal(np.repeat(np.arange(10, dtype="f4"), 3).reshape(10, 3), got["state"])
        assert (10, 0) == got["continuous_action"].shape
        assert [6, 4] == r.actor_counts().tolist()
    with ReplayStore.create(tmp_path / "c.h5", SCHEMA, actors=("a",)) as s:
        r = _row(0, kind)
        del r["continuous_action"]
        with pytest.raises(errors.MissingColumnError, match="missing required column 'continuous_action'"):
            s.append(actor="a", **r)
        with pytest.raises(errors.MissingColumnError, match=r"missing required column\(s\) \['continuous_action'\]"):
            s.extend({c: np.array([v]) for c, v in r.items()} | {"actor": [0]})
        assert 0 == len(s) and 0 == s.commit()
