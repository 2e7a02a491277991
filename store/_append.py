"""The one-row ``append``: plain code, one loop over the schema's columns, every check kept.

A row-at-a-time API is judged against plain numpy assignment through a method of the same call
shape (benchmarks/bench_store.py), so the loop is planned once per open store (``_plan``): each
column's staging array and the kind of check it needs. Finiteness of several float array columns
is tested as ``isnan(row . zeros)`` over the staging matrix they share: ``0 * inf`` and
``0 * nan`` are NaN, every finite product is 0, so one BLAS dot answers it without overflow.
A bad value raises at the call that gave it; the row is only counted once every check passed.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ._schema import ACTOR, Column
from ._validate import (castable, check_int_range, dtype_error, missing_actor_error, nonfinite_error, shape_error,
                        unknown_columns_error)
from .errors import DTypeError, MissingColumnError, StoreWriteError

_MISSING = object()
# Values that are never actor codes, even where they compare equal to one (True == 1.0 == 1).
_NOT_CODES = frozenset({bool, np.bool_, float, np.float16, np.float32, np.float64, np.longdouble})

# Column kinds, decided once per column.
_ARRAY, _ARRAY_FINITE, _FLOAT, _FLOAT_ANY, _INT, _BOOL = range(6)


def _coerce_array(col: Column, v, stage, i):
    """Slow path for array columns given as lists, other dtypes or non-ndarray values."""
    arr = np.asarray(v)
    if arr.shape != col.shape:
        raise shape_error("append", col, arr.shape, col.shape)
    # an empty list has no dtype of its own (numpy says float64): nothing to cast
    if arr.size and (arr.dtype == object or not castable(arr.dtype, col.dtype)):
        raise dtype_error("append", col, arr.dtype)
    check_int_range("append", col, arr)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow to inf is rejected by the finiteness check
        stage[i] = arr


def _coerce_scalar(col: Column, v, stage, i):
    """Slow path for scalar columns given as numpy scalars, 0-d arrays or the wrong type."""
    kind = col.dtype.kind
    if isinstance(v, bool):
        if kind != "b":
            raise dtype_error("append", col, "bool")
    elif isinstance(v, int):
        if kind not in "iuf":
            raise DTypeError(f"append: column {col.name!r} got int {v!r}; expected a {col.dtype} "
                             f"(pass bool({v!r}) if that is what you mean)")
    elif isinstance(v, float):
        if kind != "f":
            raise dtype_error("append", col, "float")
    else:
        arr = np.asarray(v)
        if arr.shape != ():
            raise shape_error("append", col, arr.shape, ())
        if arr.dtype == object or not castable(arr.dtype, col.dtype):
            raise dtype_error("append", col, arr.dtype)
        check_int_range("append", col, arr)
        v = arr
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            stage[i] = v
    except OverflowError as e:
        raise DTypeError(f"append: column {col.name!r} got {v!r}, which does not fit {col.dtype}") from e
    if kind == "f" and not col.allow_nonfinite and not math.isfinite(stage[i]):
        raise nonfinite_error("append", col)


class AppendMixin:
    """``append`` for ``StoreWriter`` (which provides the staging writer ``_tw`` and the commit policy)."""

    def _build_append_plan(self) -> None:
        tw = self._tw
        grouped = {name for _, _, names in tw.finite_groups for name in names}
        plan = []
        for c in self.schema:
            if c.name == ACTOR:
                continue
            check = c.is_float and not c.allow_nonfinite
            if c.shape:
                kind = _ARRAY_FINITE if check and c.name not in grouped else _ARRAY
                zero = np.zeros(int(np.prod(c.shape)), c.dtype)
            else:
                kind = {"f": _FLOAT if check else _FLOAT_ANY, "i": _INT, "u": _INT, "b": _BOOL}[c.dtype.kind]
                zero = None
            auto = c.name if c.name in self._auto else None
            plan.append((c.name, tw.stage[c.name], kind, c, c.shape, c.dtype, zero, auto))
        self._plan = tuple(plan)
        self._groups = tuple((m, z, [self.schema[n] for n in names]) for m, z, names in tw.finite_groups)
        self._lookup = self.actors._lookup
        self._stage_actor = tw.stage[ACTOR]
        self._track = {"episode", "step", "done"} <= set(self.schema.names)
        self._narrow_float = {c.name for c in self.schema if c.is_float and c.dtype.itemsize < 8}

    def append(self, *, actor=_MISSING, **columns) -> None:
        """Append one row. ``actor`` (a name or code from the vocabulary) is required.

        Values are validated (shape, safe dtype cast, finiteness) and copied into a staging block;
        rows become durable and visible at the next commit (automatic every ``commit_every`` rows
        or ``commit_seconds`` seconds, and at close). A bad value raises here, and the row is not kept.
        """
        tw = self._tw
        if self._closed:
            self._check_writable("append")
        if actor.__class__ in _NOT_CODES:
            code = self.actors.code(actor)  # raises: a bool or float is no actor
        else:
            try:
                code = self._lookup[actor]
            except (KeyError, TypeError):
                if actor is _MISSING:
                    raise missing_actor_error("append", self.actors.names) from None
                code = self.actors.code(actor)
        if tw.n_staged == tw.stage_rows:
            tw.flush_stage()  # raises before this row is accepted if the disk is full
        i = tw.n_staged
        now = time.time()
        pop = columns.pop
        for name, st, kind, col, shape, dtype, zero, auto in self._plan:
            v = pop(name, _MISSING)
            if v is _MISSING:
                if auto is None:
                    raise MissingColumnError(f"append: missing required column {name!r}; the schema declares "
                                             f"{list(self.schema.names)}")
                v = self._next_episode if auto == "episode" else self._next_step if auto == "step" else now
            if kind <= _ARRAY_FINITE:
                if v.__class__ is np.ndarray and v.dtype is dtype and v.shape == shape:
                    st[i] = v
                else:
                    _coerce_array(col, v, st, i)
                if kind == _ARRAY_FINITE and math.isnan(st[i].reshape(-1).dot(zero)):
                    raise nonfinite_error("append", col)
                continue
            t = v.__class__
            if kind == _FLOAT or kind == _FLOAT_ANY:
                if t is float or t is int:
                    st[i] = v
                    if kind == _FLOAT and not math.isfinite(st[i] if name in self._narrow_float else v):
                        raise nonfinite_error("append", col)
                    continue
            elif kind == _INT:
                if t is int:
                    try:
                        st[i] = v
                    except OverflowError as e:
                        raise DTypeError(f"append: column {name!r} got {v!r}, which does not fit {dtype}") from e
                    continue
            elif t is bool:
                st[i] = v
                continue
            _coerce_scalar(col, v, st, i)
        if columns:
            raise unknown_columns_error("append", self.schema.names, columns)
        for matrix, zero, cols in self._groups:
            if math.isnan(matrix[i].dot(zero)):
                for c in cols:
                    if not np.isfinite(tw.stage[c.name][i]).all():
                        raise nonfinite_error("append", c)
        self._stage_actor[i] = code
        if self._track:
            if tw.stage["done"][i]:
                self._next_episode, self._next_step = int(tw.stage["episode"][i]) + 1, 0
            else:
                self._next_episode, self._next_step = int(tw.stage["episode"][i]), int(tw.stage["step"][i]) + 1
        tw.n_staged = i + 1
        if tw.rows_written + i + 1 - self._committed_rows >= self.commit_every or \
                now - self._last_commit >= self.commit_seconds:
            try:
                self.commit()
            except StoreWriteError as e:
                raise type(e)(e.errno, f"{e.strerror} (this row was accepted and stays staged)") from e
