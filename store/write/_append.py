"""The one-row ``append``: plain code, one loop over the schema's columns, every check kept.

A row-at-a-time API is judged against plain numpy assignment through a method of the same call
shape (benchmarks/bench_store.py), so the loop is planned once per open store (``_plan``): each
column's staging array and the kind of check it needs. Finiteness of several float array columns
is tested by one BLAS dot of the staging matrix's row (they share it) with small powers of two
(``_validate.finite_weights``): it is finite exactly when every value is, and cannot overflow.
A bad value raises at the call that gave it; the row is only counted once every check passed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ._blocks import number_episodes
from ..format._schema import ACTOR, Column, Schema
from ._validate import (castable, check_int_range, dtype_error, finite_weights, missing_actor_error, nonfinite_error,
                        shape_error, unknown_columns_error)
from ..errors import DTypeError, MissingColumnError

class _Required:
    """The default of a keyword that must be given (``append(actor=...)``): shown as ``<required>``
    in ``help()``, and typed ``Any`` so a signature can say ``actor: str | int = _MISSING``."""

    def __repr__(self) -> str:
        return "<required>"


_MISSING: Any = _Required()
ndarray = np.ndarray
isfinite = math.isfinite
_now = time.time



def _finite_dot(row: np.ndarray, weights: np.ndarray, out: np.ndarray) -> bool:
    """True when ``row . weights`` is finite (so is every value of the row); False means "look closer"."""
    try:
        row.dot(weights, out)
        return isfinite(out)
    except (RuntimeWarning, FloatingPointError):  # see _validate.finite_weights
        return False


def _coerce_array(col: Column, v, stage, i):
    """Slow path for array columns given as lists, other dtypes or non-ndarray values."""
    arr = np.asarray(v)
    if arr.shape != col.shape:
        raise shape_error("append", col, arr.shape, col.shape)
    # an empty list has no dtype of its own (numpy says float64): nothing to cast
    if arr.size and (arr.dtype == object or not castable(arr.dtype, col.dtype)):
        raise dtype_error("append", col, arr.dtype)
    check_int_range("append", col, arr)
    # an overflow to inf is rejected by the finiteness check; a tiny value rounds, as any cast does
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
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
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            stage[i] = v
    except OverflowError as e:
        raise DTypeError(f"append: column {col.name!r} got {v!r}, which does not fit {col.dtype}") from e
    if kind == "f" and not col.allow_nonfinite and not math.isfinite(stage[i]):
        raise nonfinite_error("append", col)


def _looks_standard(schema) -> bool:
    names = ("state", "next_state", "discrete_action", "continuous_action", "reward", "done", ACTOR, "episode",
             "step", "time")
    return schema.names == names and schema["state"].dtype == schema["continuous_action"].dtype and \
        not any(c.allow_nonfinite for c in schema)


def auto_all(auto) -> bool:
    return tuple(auto) == ("episode", "step", "time")


class AppendMixin:
    """``append`` for ``StoreWriter`` (which provides the staging writer ``_tw`` and the commit policy)."""

    def _build_append_plan(self) -> None:
        """Group the columns by the check they need, so ``append`` runs one short loop per group."""
        tw = self._tw
        grouped = {name for _, _, names in tw.finite_groups for name in names}
        arrays, floats, ints, bools = [], [], [], []
        for c in self.schema:
            if c.name == ACTOR or c.name in self._auto:
                continue
            st = tw.stage[c.name]
            check = c.is_float and not c.allow_nonfinite
            if c.shape:
                zero = finite_weights(int(np.prod(c.shape)), c.dtype) if check and c.name not in grouped else None
                arrays.append((c.name, st, c.dtype, c.shape, c, zero, np.zeros((), c.dtype)))
            elif c.dtype.kind == "f":
                # |v| <= the dtype's max is False for NaN and inf and for a float64 that would overflow
                # float32, so one comparison replaces a cast, a read-back and isfinite (and its warning)
                floats.append((c.name, st, c, float(np.finfo(c.dtype).max) if check else math.inf, check))
            elif c.dtype.kind == "b":
                bools.append((c.name, st, c))
            else:
                ints.append((c.name, st, c))
        self._plan = (tuple(arrays), tuple(floats), tuple(ints), tuple(bools))
        # the dots write into kept 0-d arrays: no new scalar per call, and no numpy RuntimeWarning
        # for the NaN a bad value gives (the NonFiniteError says it)
        self._groups = tuple((m, z, [self.schema[n] for n in names], np.zeros((), m.dtype))
                             for m, z, names in tw.finite_groups)
        self._lookup = self.actors._lookup
        self._stage_actor = tw.stage[ACTOR]
        auto = self._auto
        self._auto_stage = tuple(tw.stage[n] if n in auto else None for n in ("episode", "step", "time"))
        self._stage_done = tw.stage["done"] if "done" in self.schema else None
        self._track = {"episode", "step", "done"} <= set(self.schema.names)
        # Schema.transition's own columns, nothing else, no column given by the caller that the
        # store fills, and one float dtype for the three float arrays: the bound-parameter path
        std = Schema.transition(self.schema["state"].shape, self.schema["continuous_action"].shape[0],
                                self.schema["discrete_action"].dtype.name,
                                state_dtype=self.schema["state"].dtype.name) if _looks_standard(self.schema) else None
        if std == self.schema and auto_all(self._auto) and len(self._groups) == 1 and \
                len(self._groups[0][2]) == (3 if self.schema["continuous_action"].row_bytes else 2):
            s = tw.stage
            matrix, zero, cols, out = self._groups[0]
            # one view per stage row and column, made once: ``view[...] = v`` costs 118 ns where
            # ``array[i] = v`` costs 153 (the index makes the view on every call)
            # the finiteness dot writes into the kept 0-d array: 0.1 us less than returning a new scalar
            self._fast_stage = (list(s["state"]), list(s["next_state"]), list(s["continuous_action"]), list(matrix),
                                zero, cols, out)
            info = np.iinfo(self.schema["discrete_action"].dtype)
            self._no_cont = np.zeros(self.schema["continuous_action"].shape, self.schema["state"].dtype)
            self._fast_types = (self.schema["state"].dtype, self.schema["state"].shape,
                                self.schema["continuous_action"].shape, int(info.min), int(info.max),
                                float(np.finfo(np.float32).max))
            # episode and step are numbered from the done flags when the lists reach the stage
            names = ("discrete_action", "reward", "done", "time", ACTOR)
            self._fast_lists = tuple([0] * tw.stage_rows for _ in names)
            self._fast_arrays = tuple(s[n] for n in names)
            tw.before_flush = self._fill_deferred
            self.append = self._append_transition

    def append(self, *, actor: str | int = _MISSING, **columns: Any) -> None:
        """Append one row. ``actor`` (a name or code from the vocabulary) is required.

        Values are validated (shape, safe dtype cast, finiteness) and copied into a staging block;
        rows become durable and visible at the next commit (automatic every ``commit_every`` rows
        or ``commit_seconds`` seconds, and at close). A bad value raises here, and the row is not kept.
        """
        with self._wlock:
            self._append_general(actor, columns)

    def _append_general(self, actor, columns: dict) -> None:
        """The general one-row path: one short loop per group of columns with the same checks."""
        tw = self._tw
        self._fill_deferred()
        if self._closed:
            self._check_writable("append")
        code = self._lookup.get(actor) if actor.__class__ is str else None  # names: the common case
        if code is None:
            code = self._actor_code(actor)
        if tw.n_staged == tw.stage_rows:
            tw.flush_stage()  # raises before this row is accepted if the disk is full
        i = tw.n_staged
        pop = columns.pop
        arrays, floats, ints, bools = self._plan
        for name, st, dtype, shape, col, zero, out in arrays:
            v = pop(name, _MISSING)
            if v.__class__ is ndarray and v.dtype is dtype and v.shape == shape:
                st[i] = v
            elif v is _MISSING:
                if col.row_bytes:  # a zero-width column (continuous_dim=0) may be left out
                    raise self._missing(name)
            else:
                _coerce_array(col, v, st, i)
            if zero is not None and not _finite_dot(st[i].reshape(-1), zero, out) and \
                    not np.isfinite(st[i]).all():
                raise nonfinite_error("append", col)
        for name, st, col, fmax, check in floats:
            v = pop(name, _MISSING)
            t = v.__class__
            if t is float or t is int:
                if not -fmax <= v <= fmax and check:
                    raise nonfinite_error("append", col)
                st[i] = v
            elif v is _MISSING:
                raise self._missing(name)
            else:
                _coerce_scalar(col, v, st, i)
        for name, st, col in ints:
            v = pop(name, _MISSING)
            if v.__class__ is int:
                try:
                    st[i] = v
                except OverflowError as e:
                    raise DTypeError(f"append: column {name!r} got {v!r}, which does not fit {col.dtype}") from e
            elif v is _MISSING:
                raise self._missing(name)
            else:
                _coerce_scalar(col, v, st, i)
        for name, st, col in bools:
            v = pop(name, _MISSING)
            if v.__class__ is bool:
                st[i] = v
            elif v is _MISSING:
                raise self._missing(name)
            else:
                _coerce_scalar(col, v, st, i)
        now = _now()
        if columns:
            self._given_auto(columns, i, now)
        else:
            st_ep, st_step, st_time = self._auto_stage
            if st_ep is not None:
                st_ep[i] = self._next_episode
            if st_step is not None:
                st_step[i] = self._next_step
            if st_time is not None:
                st_time[i] = now
        for matrix, zero, cols, out in self._groups:
            if not _finite_dot(matrix[i], zero, out):
                for c in cols:
                    if not np.isfinite(tw.stage[c.name][i]).all():
                        raise nonfinite_error("append", c)
        self._stage_actor[i] = code
        if self._track:
            stage = tw.stage
            if self._stage_done[i]:
                self._next_episode, self._next_step = int(stage["episode"][i]) + 1, 0
            else:
                self._next_episode, self._next_step = int(stage["episode"][i]), int(stage["step"][i]) + 1
        tw.n_staged = i + 1
        if tw.rows_written + i + 1 - self._committed_rows >= self.commit_every or \
                now - self._last_commit >= self.commit_seconds:
            self._commit_keeping("this row was accepted and stays staged")

    def _append_transition(self, *, actor=_MISSING, state=_MISSING, next_state=_MISSING, discrete_action=_MISSING,
                           continuous_action=_MISSING, reward=_MISSING, done=_MISSING, **rest) -> None:
        """``append`` for stores whose schema is ``Schema.transition``'s ten columns (the common case).

        The same checks as the general loop, arranged for speed: the columns are bound as
        parameters, and the five scalars (actor, actions, reward, done, time) go into Python lists
        that the stage's arrays take in one slice assignment before a flush (a numpy scalar store
        costs twice a list store); episode and step are numbered from the done flags then, in one
        vectorized pass, instead of per row. Anything unusual (another type, a bad value, a full
        stage, a value that is not an array) takes the general path, which raises the same errors
        at the same call.
        """
        # the writer's lock, taken without a with-statement: 92 ns against 144 (bench_store.py measures it)
        self._wlock_acquire()
        try:
            tw = self._tw
            i = tw.n_staged
            f_dtype, f_shape, c_shape, d_lo, d_hi, rmax = self._fast_types
            t = reward.__class__
            try:  # a value that is no array has no dtype: the general path says what is wrong with it
                fast = not (rest or self._closed or i == tw.stage_rows or state.dtype is not f_dtype or
                            state.shape != f_shape or next_state.dtype is not f_dtype or next_state.shape != f_shape or
                            continuous_action.dtype is not f_dtype or continuous_action.shape != c_shape or
                            discrete_action.__class__ is not int or not d_lo <= discrete_action <= d_hi or
                            (t is not float and t is not int) or not -rmax <= reward <= rmax or
                            done.__class__ is not bool)
            except AttributeError:  # a value that is no array, or a zero-width column left out
                if continuous_action is _MISSING and not c_shape[0]:
                    return self._append_transition(actor=actor, state=state, next_state=next_state,
                                                   discrete_action=discrete_action, continuous_action=self._no_cont,
                                                   reward=reward, done=done, **rest)
                fast = False
            if not fast:
                return self._append_general(actor, dict(rest, state=state, next_state=next_state,
                                                        discrete_action=discrete_action,
                                                        continuous_action=continuous_action, reward=reward, done=done))
            code = self._lookup.get(actor) if actor.__class__ is str else None  # names: the common case
            if code is None:
                code = self._actor_code(actor)
            st_state, st_next, st_cont, rows, zero, cols, out = self._fast_stage
            st_state[i][...] = state
            st_next[i][...] = next_state
            st_cont[i][...] = continuous_action
            try:  # _finite_dot, inlined: a call costs 0.07 us of this path
                rows[i].dot(zero, out)
                ok = isfinite(out)
            except (RuntimeWarning, FloatingPointError):  # see _validate.finite_weights
                ok = False
            if not ok:
                for c in cols:
                    if not np.isfinite(tw.stage[c.name][i]).all():
                        raise nonfinite_error("append", c)
            now = _now()
            if self._deferred_from < 0:
                self._deferred_from = i
            l_disc, l_rew, l_done, l_time, l_actor = self._fast_lists
            l_disc[i] = discrete_action
            l_rew[i] = reward
            l_done[i] = done
            l_time[i] = now
            l_actor[i] = code
            tw.n_staged = i + 1
            if i + 1 >= self._commit_at - tw.rows_written or now - self._last_commit >= self.commit_seconds:
                self._commit_keeping("this row was accepted and stays staged")
        finally:
            self._wlock_release()

    def _actor_code(self, actor) -> int:
        """The code of an actor that is not a name in the vocabulary: a code, or an error that says
        what was given (a bool or float is no code, even where it equals one)."""
        if actor is _MISSING:
            raise missing_actor_error("append", self.actors.names)
        return self.actors.code(actor)

    def _fill_deferred(self) -> None:
        """Move the scalars the transition path kept in lists into the stage's arrays (before any
        flush, and before any other path writes the stage)."""
        lo = self._deferred_from
        if lo < 0:
            return
        hi = self._tw.n_staged
        for values, arr in zip(self._fast_lists, self._fast_arrays):
            arr[lo:hi] = values[lo:hi]
        stage = self._tw.stage
        episode, step, (self._next_episode, self._next_step) = number_episodes(
            stage["done"][lo:hi], self._next_episode, self._next_step)
        stage["episode"][lo:hi] = episode
        stage["step"][lo:hi] = step
        self._deferred_from = -1

    def _missing(self, name: str) -> MissingColumnError:
        return MissingColumnError(f"append: missing required column {name!r}; the schema declares "
                                  f"{list(self.schema.names)}")

    def _given_auto(self, columns: dict, i: int, now: float) -> None:
        """The rare call that gives episode, step or time itself (or an unknown column)."""
        unknown = set(columns) - set(self._auto)
        if unknown:
            raise unknown_columns_error("append", self.schema.names, unknown)
        fill = {"episode": self._next_episode, "step": self._next_step, "time": now}
        for name in self._auto:
            col = self.schema[name]
            v = columns.get(name, fill[name])
            st = self._tw.stage[name]
            if v.__class__ is (float if col.dtype.kind == "f" else int):
                st[i] = v
            else:
                _coerce_scalar(col, v, st, i)
