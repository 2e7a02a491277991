"""The actor vocabulary: names at the edges, uint8 codes in the file, one table between them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from replaystore.store import Actors, errors

from strategies import actor_vocabularies


@given(actor_vocabularies)
def test_codes_and_names_round_trip(names):
    """Code i is names[i]; code() of a name or of a code gives the code; name() gives the name back."""
    a = Actors(names)
    assert a.names == names and len(a) == len(names) and list(a) == list(names)
    for i, n in enumerate(names):
        assert a.code(n) == i
        assert a.code(i) == i and a.code(np.uint8(i)) == i and a.code(np.int64(i)) == i
        assert a.name(i) == n
    assert a.as_dict() == dict(enumerate(names))


@given(actor_vocabularies)
def test_json_round_trip(names):
    """Actors.from_json(to_json()) is the same vocabulary."""
    a = Actors(names)
    assert Actors.from_json(a.to_json()) == a


@given(actor_vocabularies, st.data())
def test_codes_of_a_block(names, data):
    """codes() maps a block of names, or of integer codes of any int dtype, to uint8 codes."""
    a = Actors(names)
    idx = np.array(data.draw(st.lists(st.integers(0, len(names) - 1), max_size=30)), dtype=np.int64)
    want = idx.astype(np.uint8)
    assert a.codes(np.array(names, dtype=object)[idx].astype(str) if len(idx) else np.array([], str)).tolist() == want.tolist()
    for dt in ("uint8", "int16", "int64", "uint64"):
        got = a.codes(idx.astype(dt))
        assert got.dtype == np.uint8 and got.tolist() == want.tolist()
    assert a.codes(np.array(names, dtype=object)[idx]).tolist() == want.tolist()


def test_codes_of_bytes_names():
    """Names given as bytes (e.g. read back from an HDF5 string dataset) map too."""
    a = Actors(("expert", "dqn"))
    assert a.codes(np.array([b"dqn", b"expert", b"dqn"])).tolist() == [1, 0, 1]


def test_codes_of_a_2d_block_keep_shape():
    """A 2-D block of names gives a 2-D block of codes."""
    a = Actors(("expert", "dqn"))
    assert a.codes(np.array([["dqn", "expert"], ["dqn", "dqn"]])).tolist() == [[1, 0], [1, 1]]


@pytest.mark.parametrize("names, match", [
    ((), r"actors=\(\): a store needs at least one actor name"),
    (("a", "b", "a"), r"actor names must be unique, got \('a', 'b', 'a'\)"),
    (("a", ""), r"actor name '' is invalid: expected a non-empty printable str"),
    (("a", None), r"actor name None is invalid"),
    (("a", 3), r"actor name 3 is invalid"),
    (("a", "tab\there"), r"actor name 'tab\\there' is invalid"),
    (tuple(f"a{i}" for i in range(256)), r"256 actors given; at most 255 fit a uint8 code"),
])
def test_bad_vocabularies(names, match):
    """Empty, duplicate, non-string, unprintable and too many names are refused, saying which."""
    with pytest.raises(errors.SchemaError, match=match):
        Actors(names)


def test_largest_vocabulary():
    """255 names fit; the last has code 254."""
    a = Actors(tuple(f"a{i}" for i in range(255)))
    assert a.code("a254") == 254 and a.codes(np.array([254])).tolist() == [254]


@pytest.mark.parametrize("actor, error, match", [
    ("ppo", errors.UnknownActorError, r"actor 'ppo' is not in the store's vocabulary \['expert', 'dqn'\]"),
    ("Expert", errors.UnknownActorError, r"actor 'Expert' is not in"),
    (2, errors.UnknownActorError, r"actor code 2 is not in the vocabulary \{0: 'expert', 1: 'dqn'\}; expected a code in \[0, 1\]"),
    (np.uint8(255), errors.UnknownActorError, r"actor code 255 is not in the vocabulary"),
    (-1, errors.UnknownActorError, r"actor code -1"),
    (None, errors.MissingActorError, r"actor=None: every row needs an actor tag, one of \['expert', 'dqn'\]"),
    (True, errors.UnknownActorError, r"actor=True: a bool is not an actor"),
    (np.False_, errors.UnknownActorError, r"a bool is not an actor"),
    (1.5, errors.UnknownActorError, r"actor=1.5: a float is not an actor code"),
    (1.0, errors.UnknownActorError, r"actor=1.0: a float is not an actor code"),
    (np.float32(0.0), errors.UnknownActorError, r"a float is not an actor code"),
    (b"dqn", errors.UnknownActorError, r"actor b'dqn' is not in"),
])
def test_code_of_unknown_actor(actor, error, match):
    """code() of something not in the vocabulary raises, naming it and the vocabulary."""
    with pytest.raises(error, match=match):
        Actors(("expert", "dqn")).code(actor)


@pytest.mark.parametrize("block, match", [
    (np.array(["expert", "ppo"]), r"actor 'ppo' is not in the store's vocabulary"),
    (np.array([0, 2]), r"actor code 2 is not in the vocabulary .*expected codes in \[0, 1\]"),
    (np.array([-1, 0]), r"actor code -1 is not in the vocabulary"),
    (np.array([0.0, 1.0]), r"actor column of dtype float64 given; expected names \(str\) or integer codes"),
    (np.array([True, False]), r"actor column of dtype bool given"),
    (np.array(["expert", None], dtype=object), r"actor=None: every row needs an actor tag, one of \['expert', 'dqn'\]"),
    (np.array(["expert", 1, "ppo"], dtype=object), r"actor 'ppo' is not in"),
])
def test_codes_of_a_bad_block(block, match):
    """codes() refuses a block with any unknown name or code, or of a non-integer, non-string dtype."""
    with pytest.raises((errors.UnknownActorError, errors.MissingActorError), match=match):
        Actors(("expert", "dqn")).codes(block)
