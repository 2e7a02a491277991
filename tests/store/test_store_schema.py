"""Schema and Column: declared once, round-tripped through JSON, invalid declarations refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaystore.store import Column, Schema, errors

from strategies import UNSUPPORTED_DTYPES, columns, identifiers, not_identifiers, store_configs


@given(columns())
def test_column_json_round_trip(col):
    """Column.from_dict(to_dict()) gives back the same column."""
    assert Column.from_dict(col.to_dict()) == col


@settings(max_examples=50)
@given(store_configs())
def test_schema_json_round_trip(config):
    """Schema.from_json(to_json()) gives back the same columns, in order."""
    schema = config.schema
    back = Schema.from_json(schema.to_json())
    assert back == schema
    assert back.names == schema.names
    assert [back[n].dtype for n in back.names] == [schema[n].dtype for n in schema.names]


@given(st.lists(columns(), min_size=1, max_size=6, unique_by=lambda c: c.name))
def test_schema_of_user_columns(cols):
    """Any set of uniquely named columns makes a schema; lookup by name and membership work."""
    s = Schema(tuple(cols))
    assert len(s) == len(cols)
    for c in cols:
        assert c.name in s and s[c.name] is c
        assert c.row_bytes == int(np.prod(c.shape, dtype=np.int64)) * c.dtype.itemsize
    assert "not_there" not in s


def test_transition_columns():
    """Schema.transition declares the standard columns with the documented dtypes and shapes."""
    s = Schema.transition((4, 2), continuous_dim=3, discrete_dtype="int16")
    expected = {"state": ("float32", (4, 2)), "next_state": ("float32", (4, 2)), "discrete_action": ("int16", ()),
                "continuous_action": ("float32", (3,)), "reward": ("float32", ()), "done": ("bool", ()),
                "actor": ("uint8", ()), "episode": ("int64", ()), "step": ("int64", ()), "time": ("float64", ())}
    assert {c.name: (c.dtype.name, c.shape) for c in s} == expected
    assert s.auto_columns == ("episode", "step", "time")
    assert Schema.transition(5)["state"].shape == (5,)
    assert not any(c.allow_nonfinite for c in s)
    nf = Schema.transition(4, continuous_dim=1, allow_nonfinite=True)
    assert all(nf[n].allow_nonfinite for n in ("state", "next_state", "continuous_action", "reward"))


@given(not_identifiers)
def test_bad_column_name(name):
    """A column name that is not a Python identifier is refused with the name in the message."""
    with pytest.raises(errors.SchemaError, match=r"column name .* is invalid: expected a Python identifier"):
        Column(name, np.dtype("f4"))


@pytest.mark.parametrize("dtype", UNSUPPORTED_DTYPES)
def test_unsupported_dtype(dtype):
    """Strings, objects, complex, datetimes and raw bytes are refused; the message names the dtype."""
    with pytest.raises(errors.SchemaError, match=r"column 'x': dtype .* is not supported; expected bool, int, uint or float"):
        Column("x", np.dtype(dtype))


def test_not_a_dtype():
    """A dtype numpy does not know is refused, naming it."""
    with pytest.raises(errors.SchemaError, match=r"column 'x': dtype 'floaty' is not a numpy dtype"):
        Column("x", "floaty")


@given(identifiers, st.lists(st.integers(-5, 5), min_size=1, max_size=3).filter(lambda s: min(s) < 0))
def test_negative_shape(name, shape):
    """A negative dimension is refused with the shape in the message."""
    with pytest.raises(errors.SchemaError, match=rf"column '{name}': shape .* has a negative dimension"):
        Column(name, np.dtype("f4"), tuple(shape))


def test_duplicate_column_names():
    """Two columns of one name are refused, naming it; so is an extra column reusing a standard name."""
    with pytest.raises(errors.SchemaError, match=r"duplicate column names \['a'\]"):
        Schema((Column("a", np.dtype("f4")), Column("b", np.dtype("f4")), Column("a", np.dtype("i4"))))
    with pytest.raises(errors.SchemaError, match=r"duplicate column names \['reward'\]"):
        Schema.transition(3, extra=[Column("reward", np.dtype("f8"))])


@pytest.mark.parametrize("kwargs, match", [
    (dict(discrete_dtype="float32"), r"discrete_dtype='float32': expected an integer dtype such as 'int32'"),
    (dict(continuous_dim=-1), r"continuous_dim=-1: expected >= 0"),
    (dict(state_dtype="U4"), r"column 'state': dtype <U4 is not supported"),
])
def test_bad_transition_arguments(kwargs, match):
    """Bad Schema.transition arguments raise SchemaError (a ValueError) saying what was expected."""
    with pytest.raises(errors.SchemaError, match=match):
        Schema.transition(4, **kwargs)
    assert issubclass(errors.SchemaError, ValueError)


def test_lookup_of_unknown_column():
    """schema[name] of an unknown name raises KeyError."""
    with pytest.raises(KeyError, match="nope"):
        Schema.transition(4)["nope"]
