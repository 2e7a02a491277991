"""Column declarations. The schema is declared once; store, agent and analysis import it."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import SchemaError

# Columns the store fills itself when the caller leaves them out (see Schema.transition).
AUTO_COLUMNS = ("episode", "step", "time")
ACTOR = "actor"
MAX_ROW_BYTES = 1 << 30  # one row of one column; more is a damaged or hostile schema, not a transition
MAX_DIMS = 32


@dataclass(frozen=True)
class Column:
    """One column: a name, a numpy dtype and a per-row shape (``()`` for scalars).

    ``allow_nonfinite`` lets NaN/inf through for a float column; by default they are rejected.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int, ...] = ()
    allow_nonfinite: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SchemaError(f"column name {self.name!r} is invalid: expected a Python identifier")
        try:
            dt = np.dtype(self.dtype)
        except (TypeError, ValueError) as e:
            raise SchemaError(f"column {self.name!r}: dtype {self.dtype!r} is not a numpy dtype") from e
        if dt.kind not in "biuf":
            raise SchemaError(
                f"column {self.name!r}: dtype {dt} is not supported; expected bool, int, uint or float "
                "(fixed-size numbers map directly onto the file's bytes)"
            )
        shape = tuple(int(s) for s in (self.shape if isinstance(self.shape, Iterable) else (self.shape,)))
        if any(s < 0 for s in shape):
            raise SchemaError(f"column {self.name!r}: shape {shape} has a negative dimension")
        # Python ints, not np.prod: a hostile schema's (2**32, 2**32) wraps int64 to 0 bytes per row
        nbytes = dt.itemsize
        for s in shape:
            nbytes *= s
        if len(shape) > MAX_DIMS or nbytes > MAX_ROW_BYTES:
            raise SchemaError(f"column {self.name!r}: shape {shape} of {dt} is {nbytes} bytes per row in {len(shape)} "
                              f"dimensions; a column holds at most {MAX_ROW_BYTES} bytes per row in {MAX_DIMS} "
                              "dimensions (keep bigger data in files of its own and store their ids)")
        object.__setattr__(self, "dtype", dt)
        object.__setattr__(self, "shape", shape)

    @functools.cached_property  # read at every commit and refresh; np.prod is slow for a tuple
    def row_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def is_float(self) -> bool:
        return self.dtype.kind == "f"

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype.str, "shape": list(self.shape),
                "allow_nonfinite": self.allow_nonfinite}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Column":
        """A column as ``to_dict`` wrote it (read from a file: every field's type is checked)."""
        if not isinstance(d, Mapping) or not isinstance(d.get("dtype"), str) or not isinstance(d.get("shape"), list) \
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in d["shape"]) \
                or not isinstance(d.get("allow_nonfinite", False), bool):
            raise SchemaError(f"column {d!r:.200}: expected {{'name': str, 'dtype': str, 'shape': [int, ...], "
                              "'allow_nonfinite': bool}, as Schema.to_json writes")
        return cls(d.get("name"), d["dtype"], tuple(d["shape"]), d.get("allow_nonfinite", False))


@dataclass(frozen=True)
class Schema:
    """An ordered set of columns.

    >>> s = Schema.transition(state_shape=(4,), continuous_dim=1)
    >>> s["state"].shape, s["actor"].dtype
    ((4,), dtype('uint8'))
    """

    columns: tuple[Column, ...]
    _by_name: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        cols = tuple(self.columns)
        names = [c.name for c in cols]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise SchemaError(f"duplicate column names {dup}")
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "_by_name", {c.name: c for c in cols})

    @classmethod
    def transition(
        cls,
        state_shape: int | tuple[int, ...],
        continuous_dim: int = 0,
        discrete_dtype: str = "int32",
        *,
        state_dtype: str = "float32",
        extra: Iterable[Column] = (),
        allow_nonfinite: bool = False,
    ) -> "Schema":
        """The standard transition columns, plus ``extra`` columns of the user's own.

        ``episode``, ``step`` and ``time`` are filled by the store when a caller leaves them out:
        the episode advances after a row with ``done``, ``step`` counts within the episode and
        ``time`` is the wall clock at append. A caller with interleaved environments passes its own.
        """
        shape = (state_shape,) if isinstance(state_shape, (int, np.integer)) else tuple(state_shape)
        if np.dtype(discrete_dtype).kind not in "iu":
            raise SchemaError(f"discrete_dtype={discrete_dtype!r}: expected an integer dtype such as 'int32'")
        if int(continuous_dim) < 0:
            raise SchemaError(f"continuous_dim={continuous_dim}: expected >= 0 (0 for discrete-only)")
        nf = allow_nonfinite
        base = (
            Column("state", np.dtype(state_dtype), shape, nf),
            Column("next_state", np.dtype(state_dtype), shape, nf),
            Column("discrete_action", np.dtype(discrete_dtype)),
            Column("continuous_action", np.dtype("float32"), (int(continuous_dim),), nf),
            Column("reward", np.dtype("float32"), (), nf),
            Column("done", np.dtype("bool")),
            Column(ACTOR, np.dtype("uint8")),
            Column("episode", np.dtype("int64")),
            Column("step", np.dtype("int64")),
            Column("time", np.dtype("float64")),
        )
        return cls(base + tuple(extra))

    def with_columns(self, *columns: Column) -> "Schema":
        return Schema(self.columns + tuple(columns))

    def __getitem__(self, name: str) -> Column:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __iter__(self):
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def auto_columns(self) -> tuple[str, ...]:
        """The columns the store fills when omitted (those of AUTO_COLUMNS that this schema has)."""
        return tuple(n for n in AUTO_COLUMNS if n in self._by_name)

    def to_json(self) -> str:
        return self._json

    @functools.cached_property  # written into the commit record for every table at every commit
    def _json(self) -> str:
        return json.dumps([c.to_dict() for c in self.columns])

    @classmethod
    def from_json(cls, text: str) -> "Schema":
        return _schema_from_json(text)


@functools.lru_cache(maxsize=256)
def _schema_from_json(text: str) -> Schema:
    # Schemas are immutable and parsed at every commit and refresh: parse each text once.
    from ..files._untrusted import loads

    cols = loads(text, "the schema")
    if not isinstance(cols, list):
        raise SchemaError(f"the schema is a {type(cols).__name__}; expected a list of columns, as Schema.to_json writes")
    return Schema(tuple(Column.from_dict(d) for d in cols))
