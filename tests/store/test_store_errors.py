"""Contract 6: bad input gets a clear error and loses nothing.

Each bad call must raise the error class from ``store.errors`` with a message that says what was
received and what was expected; afterwards the store still holds every committed row,
bit-identical, and takes the next valid row.
"""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from replaystore.store import ReplayStore, Schema, errors
from replaystore.store.format._record import read_record_json, record_path, write_record_json

import writer_proc
from store_helpers import COMMITTED, DROP, append_writer_rows, assert_nothing_lost, block, closed_store, row

# --------------------------------------------------------------------------- append(), one row
BAD_ROWS = {
    "actor None": (dict(actor=None), errors.MissingActorError,
                   r"actor=None: every row needs an actor tag, one of \['expert', 'dqn', 'random'\]"),
    "unknown actor name": (dict(actor="ppo"), errors.UnknownActorError,
                           r"actor 'ppo' is not in the store's vocabulary \['expert', 'dqn', 'random'\]"),
    "unknown actor code": (dict(actor=3), errors.UnknownActorError,
                           r"actor code 3 is not in the vocabulary .*expected a code in \[0, 2\]"),
    "negative actor code": (dict(actor=-1), errors.UnknownActorError, r"actor code -1 .*\[0, 2\]"),
    "uint8 actor code out of range": (dict(actor=np.uint8(200)), errors.UnknownActorError, r"actor code 200 .*\[0, 2\]"),
    "bool actor": (dict(actor=True), errors.UnknownActorError, r"actor=True: a bool is not an actor; expected a name"),
    "numpy bool actor": (dict(actor=np.True_), errors.UnknownActorError, r"actor=np.True_: a bool is not an actor"),
    "float actor": (dict(actor=1.0), errors.UnknownActorError, r"actor=1.0: a float is not an actor code; expected a name"),
    "numpy float actor": (dict(actor=np.float64(0.0)), errors.UnknownActorError, r"a float is not an actor code"),
    "numpy float32 actor": (dict(actor=np.float32(2.0)), errors.UnknownActorError, r"a float is not an actor code"),
    "state too long": (dict(state=np.zeros(4, "f4")), errors.ShapeError,
                       r"column 'state' got shape \(4,\), expected \(3,\)"),
    "state as scalar": (dict(state=np.float32(1.0)), errors.ShapeError, r"column 'state' got shape \(\), expected \(3,\)"),
    "state as list too short": (dict(state=[1.0, 2.0]), errors.ShapeError, r"column 'state' got shape \(2,\), expected \(3,\)"),
    "reward as vector": (dict(reward=np.zeros(2, "f4")), errors.ShapeError,
                         r"column 'reward' got shape \(2,\), expected \(\) \(a scalar\)"),
    "continuous action too wide": (dict(continuous_action=np.zeros(3, "f4")), errors.ShapeError,
                                   r"'continuous_action' got shape \(3,\), expected \(2,\)"),
    "float discrete action": (dict(discrete_action=1.5), errors.DTypeError,
                              r"column 'discrete_action' got dtype float, which cannot be cast safely to int32"),
    "numpy float discrete action": (dict(discrete_action=np.float64(1.0)), errors.DTypeError,
                                    r"'discrete_action' got dtype float.* cannot be cast safely to int32"),
    "int64 discrete action too big": (dict(discrete_action=np.int64(2**40)), errors.DTypeError,
                                      r"'discrete_action' got value 1099511627776, outside the range of int32"),
    "python int discrete action too big": (dict(discrete_action=2**40), errors.DTypeError,
                                           r"column '?discrete_action'? got 1099511627776, which does not fit int32"),
    "float done": (dict(done=0.5), errors.DTypeError, r"column 'done' got dtype float, which cannot be cast safely to bool"),
    "numpy float done": (dict(done=np.float64(1.0)), errors.DTypeError, r"'done' got dtype float.* to bool"),
    "int done": (dict(done=1), errors.DTypeError, r"column 'done' got int 1; expected a bool"),
    "bool reward": (dict(reward=True), errors.DTypeError, r"column 'reward' got dtype bool, which cannot be cast safely to float32"),
    "string reward": (dict(reward="1.0"), errors.DTypeError, r"column 'reward' got dtype <U3, which cannot be cast"),
    "float row id": (dict(row_id=np.array(1.0)), errors.DTypeError, r"column 'row_id' got dtype float64, .* int64"),
    "missing reward": (dict(reward=DROP), errors.MissingColumnError, r"missing required column 'reward'"),
    "missing extra column": (dict(row_id=DROP), errors.MissingColumnError, r"missing required column 'row_id'"),
    "unknown column": (dict(bogus=1.0), errors.UnknownColumnError,
                       r"unknown column\(s\) \['bogus'\]; the schema declares \['state', "),
}
for col, value in [(c, v) for c in ("state", "next_state", "continuous_action", "reward")
                   for v in (np.nan, np.inf, -np.inf)]:
    shape = writer_proc.SCHEMA[col].shape
    bad = np.full(shape, value, "f4") if shape else value
    BAD_ROWS[f"{value} in {col}"] = (dict({col: bad}), errors.NonFiniteError,
                                     rf"column '{col}' holds NaN or inf; non-finite values are rejected")
BAD_ROWS["float64 reward overflowing float32"] = (dict(reward=1e300), errors.NonFiniteError, r"'reward' holds NaN or inf")
BAD_ROWS["float64 state overflowing float32"] = (dict(state=np.array([1.0, 1e300, 0.0])), errors.NonFiniteError,
                                                 r"'state' holds NaN or inf")


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_raises_and_loses_nothing(writer_store, case):
    """Each bad append raises its error class with a message naming what was given and expected,
    and the store keeps every committed row and takes the next valid row."""
    changes, error, match = BAD_ROWS[case]
    s = writer_store
    append_writer_rows(s, COMMITTED, COMMITTED + 5)  # staged, not committed: kept too
    with pytest.raises(error, match=match):
        s.append(**row(COMMITTED + 5, **changes))
    assert_nothing_lost(s, COMMITTED + 5)


def test_append_without_actor_keyword(writer_store):
    """append() with no actor keyword at all raises MissingActorError (a TypeError) naming the vocabulary."""
    with pytest.raises(errors.MissingActorError, match=r"no actor given; every row needs actor= one of "
                                                       r"\['expert', 'dqn', 'random'\]"):
        writer_store.append(**row(COMMITTED, actor=DROP))
    assert issubclass(errors.MissingActorError, TypeError)
    assert_nothing_lost(writer_store)


def test_nonfinite_allowed_when_declared(store_path):
    """With Schema.transition(..., allow_nonfinite=True), NaN and inf are kept bit-identically."""
    schema = Schema.transition((2,), continuous_dim=1, allow_nonfinite=True)
    nan = np.array([np.nan, -np.inf], "f4")
    with ReplayStore.create(store_path, schema, actors=("a",)) as s:
        s.append(actor="a", state=nan, next_state=np.array([np.inf, 0.0], "f4"), discrete_action=0,
                 continuous_action=np.array([np.nan], "f4"), reward=float("inf"), done=False)
        s.extend({"actor": np.array(["a", "a"]), "state": np.stack([nan, nan]), "next_state": np.zeros((2, 2), "f4"),
                  "discrete_action": np.zeros(2, "i4"), "continuous_action": np.full((2, 1), -np.inf, "f4"),
                  "reward": np.array([np.nan, 1.0], "f4"), "done": np.zeros(2, bool)})
    with ReplayStore.open(store_path) as r:
        got = r.read()
    assert got["state"].tobytes() == np.stack([nan, nan, nan]).tobytes()
    assert got["continuous_action"][:, 0].tobytes() == np.array([np.nan, -np.inf, -np.inf], "f4").tobytes()
    assert got["reward"].tobytes() == np.array([np.inf, np.nan, 1.0], "f4").tobytes()


# --------------------------------------------------------------------------- extend(), a block
def _bad_reward(i):
    r = block(0, 10)["reward"].copy()
    r[i] = np.nan
    return r


BAD_BLOCKS = {
    "ragged columns": (dict(reward=np.zeros(9, "f4")), errors.ShapeError,
                       r"columns have different lengths \{.*'reward': 9.*\}; every column needs the same rows"),
    "no actor": (dict(actor=DROP), errors.MissingActorError, r"extend: no actor given; every row needs actor="),
    "unknown actor name": (dict(actor=np.array(["expert"] * 9 + ["ppo"])), errors.UnknownActorError,
                           r"actor 'ppo' is not in the store's vocabulary \['expert', 'dqn', 'random'\]"),
    "actor None among names": (dict(actor=["expert"] * 9 + [None]), errors.MissingActorError,
                               r"actor=None: every row needs an actor tag, one of \['expert', 'dqn', 'random'\]"),
    "actor code out of range": (dict(actor=np.arange(10)), errors.UnknownActorError,
                                r"actor code 3 is not in the vocabulary .* expected codes in \[0, 2\]"),
    "actor as floats": (dict(actor=np.zeros(10)), errors.UnknownActorError,
                        r"actor column of dtype float64 given; expected names \(str\) or integer codes"),
    "actor as bools": (dict(actor=np.zeros(10, bool)), errors.UnknownActorError, r"actor column of dtype bool given"),
    "actor 2-d": (dict(actor=np.zeros((10, 2), np.uint8)), errors.ShapeError,
                  r"column 'actor' got shape \(10, 2\), expected \(10,\)"),
    "state wrong width": (dict(state=np.zeros((10, 4), "f4")), errors.ShapeError,
                          r"extend: column 'state' got shape \(10, 4\), expected \(10, 3\)"),
    "scalar column": (dict(reward=np.float32(1.0)), errors.ShapeError,
                      r"column 'reward' is a scalar; a block needs one value per row"),
    "float discrete actions": (dict(discrete_action=np.ones(10)), errors.DTypeError,
                               r"extend: column 'discrete_action' got dtype float64, which cannot be cast safely to int32"),
    "discrete action overflow": (dict(discrete_action=np.full(10, 2**33)), errors.DTypeError,
                                 r"'discrete_action' got value 8589934592, outside the range of int32"),
    "float done": (dict(done=np.zeros(10, "f4")), errors.DTypeError, r"column 'done' got dtype float32, .* bool"),
    "int done": (dict(done=np.zeros(10, "i8")), errors.DTypeError, r"column 'done' got dtype int64, .* bool"),
    "object column": (dict(reward=np.array([None] * 10)), errors.DTypeError, r"column 'reward' got dtype object"),
    "NaN reward at row 7": (dict(reward=_bad_reward(7)), errors.NonFiniteError,
                            r"column 'reward' holds NaN or inf at block row 7; non-finite values are rejected"),
    "inf in state": (dict(state=np.full((10, 3), np.inf, "f4")), errors.NonFiniteError, r"'state' holds NaN or inf at block row 0"),
    "float64 overflowing float32": (dict(next_state=np.full((10, 3), 1e300)), errors.NonFiniteError,
                                    r"'next_state' holds NaN or inf"),
    "missing column": (dict(done=DROP), errors.MissingColumnError, r"extend: missing required column\(s\) \['done'\]"),
    "unknown column": (dict(bogus=np.zeros(10)), errors.UnknownColumnError,
                       r"extend: unknown column\(s\) \['bogus'\]; the schema declares"),
}


@pytest.mark.parametrize("case", sorted(BAD_BLOCKS))
def test_bad_block_raises_and_keeps_none_of_it(writer_store, case):
    """A bad block raises before any of its rows is kept, with a clear message; nothing committed is lost."""
    changes, error, match = BAD_BLOCKS[case]
    with pytest.raises(error, match=match):
        writer_store.extend(block(COMMITTED, COMMITTED + 10, **changes))
    assert_nothing_lost(writer_store)


def test_extend_needs_a_mapping(writer_store):
    """extend() of a list of rows says it needs a mapping of column name to array."""
    with pytest.raises(TypeError, match=r"extend: expected a mapping of column name to array, got list"):
        writer_store.extend([row(COMMITTED)])
    assert_nothing_lost(writer_store)


# --------------------------------------------------------------------------- the store's state
def test_writes_on_read_only_store(writer_store):
    """append, extend and commit on a store opened 'r' raise ReadOnlyError saying to open it with 'a'."""
    writer_store.close()
    with ReplayStore.open(writer_store.path, "r") as r:
        with pytest.raises(errors.ReadOnlyError, match=r"append: the store .* is open read-only; open it with mode='a'"):
            r.append(**row(COMMITTED))
        with pytest.raises(errors.ReadOnlyError, match=r"extend: the store .* is open read-only"):
            r.extend(block(COMMITTED, COMMITTED + 2))
        with pytest.raises(errors.ReadOnlyError, match=r"commit: the store .* is open read-only"):
            r.commit()
        assert len(r) == COMMITTED
    with ReplayStore.open(writer_store.path, "a") as s:
        assert_nothing_lost(s)


def test_writes_on_closed_store(writer_store):
    """Every call on a closed store raises ClosedStoreError; closing twice is harmless."""
    s = writer_store
    s.close()
    s.close()
    with pytest.raises(errors.ClosedStoreError, match=r"append: the store .* is closed; reopen it with ReplayStore.open"):
        s.append(**row(COMMITTED))
    with pytest.raises(errors.ClosedStoreError, match=r"extend: the store .* is closed"):
        s.extend(block(COMMITTED, COMMITTED + 2))
    with pytest.raises(errors.ClosedStoreError, match=r"commit: the store .* is closed"):
        s.commit()
    with pytest.raises(errors.ClosedStoreError, match=r"read: the store .* is closed"):
        s.read()
    r = ReplayStore.open(s.path, "r")
    r.close()
    with pytest.raises(errors.ClosedStoreError, match=r"refresh: the store .* is closed"):
        r.refresh()
    with ReplayStore.open(s.path, "a") as s2:
        assert_nothing_lost(s2)


def test_second_writer_is_refused(writer_store):
    """Opening 'a' while a writer lives raises StoreLockedError naming that writer; readers are fine."""
    with pytest.raises(errors.StoreLockedError, match=rf"is being written by process {os.getpid()} .*one writer at a time"):
        ReplayStore.open(writer_store.path, "a")
    with ReplayStore.open(writer_store.path, "r") as r:
        assert len(r) == COMMITTED
    assert_nothing_lost(writer_store)


def test_bad_mode(writer_store):
    """An unknown open mode names the modes there are."""
    with pytest.raises(ValueError, match=r"mode='w': expected 'r' \(read\) or 'a' \(append\)"):
        ReplayStore.open(writer_store.path, "w")
    assert_nothing_lost(writer_store)


# --------------------------------------------------------------------------- opening files
def test_open_missing_path(tmp_path):
    """A path that does not exist raises StoreNotFoundError (a FileNotFoundError), in both modes."""
    for mode in ("r", "a"):
        with pytest.raises(errors.StoreNotFoundError, match=r"no store at .*nope\.h5: the file does not exist"):
            ReplayStore.open(tmp_path / "nope.h5", mode)
    assert issubclass(errors.StoreNotFoundError, FileNotFoundError)


@pytest.mark.parametrize("content", [b"state,reward\n1,2\n" * 100, b""], ids=["text", "empty"])
def test_open_file_that_is_not_hdf5(tmp_path, content):
    """A text file, or an empty one, is not a store: NotAStoreError says it is not HDF5 and its size."""
    p = tmp_path / "notes.h5"
    p.write_bytes(content)
    for mode in ("r", "a"):
        with pytest.raises(errors.NotAStoreError, match=rf"is not an HDF5 file \({len(content)} bytes"):
            ReplayStore.open(p, mode)
    assert p.read_bytes() == content, "a failed open changed the file"


def test_open_directory(tmp_path):
    """A directory is not a store."""
    with pytest.raises(errors.NotAStoreError, match=r"is a directory, not a replaystore file"):
        ReplayStore.open(tmp_path, "r")


def test_open_foreign_hdf5(tmp_path):
    """An HDF5 file made by someone else raises NotAStoreError naming the 'format' attribute found."""
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.arange(10)
        f.attrs["format"] = "somebody-else"
    for mode in ("r", "a"):
        with pytest.raises(errors.NotAStoreError, match=r"is an HDF5 file but not a replaystore store \(root attribute "
                                                        r"'format' is 'somebody-else', expected 'replaystore'\)"):
            ReplayStore.open(p, mode)
    with h5py.File(p, "r") as f:
        assert f["data"][:].tolist() == list(range(10))


def _set_version(path, h5_version=None, record_version=None):
    if h5_version is not None:
        with h5py.File(path, "r+") as f:
            f.attrs["format_version"] = h5_version
    if record_version is not None:
        d = read_record_json(path)
        d["format_version"] = record_version
        write_record_json(path, d)


@pytest.mark.parametrize("where", ["both", "h5 only, no record", "record only"])
def test_open_newer_format_version(writer_store, where):
    """A store written in format version 3 raises FormatVersionError naming both versions, in both modes."""
    writer_store.close()
    p = writer_store.path
    if where == "both":
        _set_version(p, 3, 3)
    elif where == "record only":
        _set_version(p, None, 3)
    else:
        _set_version(p, 3, None)
        os.remove(record_path(p))
    for mode in ("r", "a"):
        with pytest.raises(errors.FormatVersionError,
                           match=r"written in replaystore format version 3; this replaystore reads version 2"):
            ReplayStore.open(p, mode)
    _set_version(p, 2, None if where == "h5 only, no record" else 2)
    with ReplayStore.open(p, "a") as s:  # nothing was changed by the refused opens
        assert_nothing_lost(s)


@pytest.fixture
def big_closed_store(store_path):
    """A closed store of several segments whose rows fill most of each segment file."""
    return closed_store(store_path, 20_000, segment_rows=4096)


def _segment(path, k: int = 2) -> str:
    return os.path.join(str(path) + ".d", f"transitions-{k:06d}.h5")


@pytest.mark.parametrize("with_record", [True, False], ids=["with .commit", "without .commit"])
def test_open_truncated_store(big_closed_store, with_record):
    """A store with a segment cut to half its size raises TruncatedStoreError (an OSError) in both modes."""
    p = big_closed_store
    if not with_record:
        os.remove(record_path(p))
    seg = _segment(p)
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.truncate(size // 2)
    for mode in ("r", "a"):
        with pytest.raises(errors.TruncatedStoreError, match=r"truncated"):
            ReplayStore.open(p, mode)
    assert os.path.getsize(seg) == size // 2, "a failed open changed the file"
    assert issubclass(errors.TruncatedStoreError, OSError)


def test_truncated_store_message_names_sizes(big_closed_store):
    """The message names the segment, how long it is and how long it was made."""
    p = big_closed_store
    seg = _segment(p)
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(errors.TruncatedStoreError,
                       match=rf"segment .*transitions-000002.h5 is {size // 2} bytes, shorter than the {size} it "
                             r"was created with: it was truncated or replaced"):
        ReplayStore.open(p, "r")


# --------------------------------------------------------------------------- create()
def test_create_on_existing_path(writer_store):
    """create() on an existing store raises FileExistsError telling to open it with 'a'; the store is untouched."""
    with pytest.raises(FileExistsError, match=r"already exists; open it with ReplayStore.open\(path, 'a'\) to append"):
        ReplayStore.create(writer_store.path, writer_proc.SCHEMA, actors=writer_proc.ACTORS)
    assert_nothing_lost(writer_store)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(window=0), ValueError, r"window=0: expected a positive number of rows"),
    (dict(commit_every=0), ValueError, r"commit_every=0: expected a positive number of rows"),
    (dict(commit_seconds=0), ValueError, r"commit_seconds=0: expected a positive number of seconds"),
    (dict(metadata={"seed": object()}), TypeError, r"metadata must be JSON-serializable"),
    (dict(metadata={"x": float("nan")}), TypeError, r"metadata must be JSON-serializable"),
    (dict(actors=()), errors.SchemaError, r"actors=\(\): a store needs at least one actor name"),
    (dict(actors=("a", "a")), errors.SchemaError, r"actor names must be unique, got \('a', 'a'\)"),
    (dict(chunk_bytes=5000), ValueError, r"chunk_bytes=5000: expected a power of two >= 4096"),
    (dict(schema={"state": "f4"}), TypeError, r"schema must be a store.Schema .* got dict"),
    (dict(schema=Schema(())), errors.SchemaError, r"the schema needs an 'actor' column of dtype uint8"),
])
def test_create_bad_arguments(store_path, kwargs, error, match):
    """Bad create() arguments raise before any file is made."""
    args = dict(schema=writer_proc.SCHEMA, actors=writer_proc.ACTORS)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ReplayStore.create(store_path, **args)
    assert not store_path.exists()
