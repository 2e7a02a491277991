"""Hypothesis strategies and data builders shared by the store tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from replaystore.store import Column, Schema

FLOAT_DTYPES = ("float16", "float32", "float64")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
UNSUPPORTED_DTYPES = ("complex64", "U8", "S4", "O", "datetime64[s]", "V8")

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True)
not_identifiers = st.sampled_from(["", "1abc", "has space", "dash-ed", "a.b", "é?", "x\n"])

actor_name = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S")), min_size=1, max_size=10)
actor_vocabularies = st.lists(actor_name, min_size=1, max_size=5, unique=True).map(tuple)

row_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)


@st.composite
def columns(draw, name=identifiers) -> Column:
    """A user column of any supported dtype and a small shape."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES + INT_DTYPES + ("bool",)))
    return Column(draw(name), np.dtype(dtype), draw(row_shapes), draw(st.booleans()))


@dataclass(frozen=True)
class StoreConfig:
    schema: Schema
    actors: tuple[str, ...]
    window: int
    commit_every: int
    chunk_bytes: int | None

    @property
    def nonfinite_ok(self) -> bool:
        return self.schema["reward"].allow_nonfinite


@st.composite
def store_configs(draw) -> StoreConfig:
    """A transition schema with user extra columns, a vocabulary, a window and a commit cadence.

    Windows and commit cadences are small so that the replay window and automatic commits matter
    within a few thousand rows.
    """
    state_shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=2).map(tuple))
    extra = [
        Column("priority", np.dtype(draw(st.sampled_from(FLOAT_DTYPES)))),
        Column("tags", np.dtype(draw(st.sampled_from(INT_DTYPES))), draw(st.sampled_from([(2,), (2, 3), (0,)]))),
    ]
    nonfinite = draw(st.booleans())
    extra = [Column(c.name, c.dtype, c.shape, nonfinite) for c in extra[: draw(st.integers(0, 2))]]
    schema = Schema.transition(
        state_shape=state_shape,
        continuous_dim=draw(st.sampled_from([0, 0, 1, 3])),
        discrete_dtype=draw(st.sampled_from(("int8", "int32", "int64", "uint8", "uint16"))),
        state_dtype=draw(st.sampled_from(FLOAT_DTYPES)),
        extra=extra,
        allow_nonfinite=nonfinite,
    )
    return StoreConfig(
        schema=schema,
        actors=draw(actor_vocabularies),
        window=draw(st.sampled_from([1, 7, 100, 1000, 5000, 10_000_000])),
        commit_every=draw(st.sampled_from([1, 5, 64, 1000, 100_000])),
        chunk_bytes=draw(st.sampled_from([None, 4096, 8192])),
    )


def column_values(col: Column, n: int, rng: np.random.Generator, nonfinite: bool = False) -> np.ndarray:
    """``n`` rows for ``col``, covering its range: extremes, -0.0, subnormals and, if asked, NaN/inf."""
    shape = (n, *col.shape)
    dt = col.dtype
    if dt.kind == "b":
        return rng.random(shape) < 0.2
    if dt.kind in "iu":
        info = np.iinfo(dt)
        out = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
        return out
    info = np.finfo(dt)
    out = (rng.standard_normal(shape) * 10.0).astype(dt)
    if out.size:
        special = np.array([0.0, -0.0, info.max, -info.max, info.smallest_subnormal, info.tiny], dt)
        if nonfinite and col.allow_nonfinite:
            special = np.concatenate([special, np.array([np.nan, np.inf, -np.inf], dt)])
        flat = out.reshape(-1)
        where = rng.random(flat.size) < 0.05
        flat[where] = rng.choice(special, size=int(where.sum()))
    return out


def random_block(schema: Schema, n: int, rng: np.random.Generator, nonfinite: bool = False,
                 give: frozenset = frozenset()) -> dict[str, np.ndarray]:
    """Values of every column a caller gives (auto columns only if named in ``give``), actor codes included."""
    out = {}
    for c in schema:
        if c.name in schema.auto_columns and c.name not in give:
            continue
        if c.name == "actor":
            continue
        if c.name == "episode" or c.name == "step":
            out[c.name] = rng.integers(0, 1000, size=n, dtype=np.int64)
        elif c.name == "time":
            out[c.name] = rng.uniform(0.0, 2.0e9, size=n)
        else:
            out[c.name] = column_values(c, n, rng, nonfinite)
    return out


block_sizes = st.one_of(st.integers(0, 40), st.integers(500, 3000))
# Mostly left to the store; sometimes the caller gives episode, step or time itself.
given_auto = st.one_of(st.just(frozenset()), st.frozensets(st.sampled_from(["episode", "step", "time"]), max_size=3))
seeds = st.integers(0, 2**32 - 1)
