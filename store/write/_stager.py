"""``RowStager``: rows on their way into the transitions table. It checks each appended row or
extended block and copies it into the table writer's stage (``_tablewriter.py``), numbering
episodes and steps from the done flags. The checks themselves come first: shape, dtype,
finiteness, required and unknown columns, each failure an error from ``errors`` that names the
column, what was received, what was expected and how to fix it (nothing here touches a file). It knows nothing of commits or files: ``StoreWriter``
(``_writer.py``) holds the lock and the commit policy, and asks ``add``/``add_block`` to stage
rows; they answer whether the policy's next commit is due.

A row-at-a-time API is judged against plain numpy assignment through a method of the same call
shape (benchmarks/bench_store.py), so the loop is planned once per open store (``_plan``): each
column's staging array and the kind of check it needs. Finiteness of several float array columns
is tested by one BLAS dot of the staging matrix's row (they share it) with small powers of two
(``_tablewriter.finite_weights``): it is finite exactly when every value is, and cannot overflow.
A bad value raises at the call that gave it; the row is only counted once every check passed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..format._actors import Actors
from ..format._schema import ACTOR, Column, Schema
from ._tablewriter import TableWriter, finite_weights
from ..errors import (DTypeError, MissingActorError, MissingColumnError, NonFiniteError, ShapeError,
                      UnknownColumnError)

# ------------------------------------------------------------------ checks on incoming values
_CAST_OK: dict[tuple, bool] = {}


def castable(src: np.dtype, dst: np.dtype) -> bool:
    """Same-kind casts only: float64 -> float32 is fine, float -> int or int -> bool is not.

    Any int -> int cast passes here (int64 -> uint8 included): ``check_int_range`` then checks
    the values, because numpy wraps an integer that does not fit without a word.
    """
    key = (src, dst)
    ok = _CAST_OK.get(key)
    if ok is None:
        ok = _CAST_OK[key] = bool(np.can_cast(src, dst, casting="same_kind")
                                  or (src.kind in "iu" and dst.kind in "iu")) and not (
            dst.kind == "b" and src.kind != "b")
    return ok


def check_int_range(where: str, col: Column, arr: np.ndarray) -> None:
    """Raise if integer values do not fit ``col``'s integer dtype (a cast would wrap them)."""
    if arr.size and arr.dtype.kind in "iu" and col.dtype.kind in "iu" and not np.can_cast(arr.dtype, col.dtype):
        info = np.iinfo(col.dtype)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < info.min or hi > info.max:
            bad = lo if lo < info.min else hi
            raise DTypeError(
                f"{where}: column {col.name!r} got value {bad}, outside the range of {col.dtype} "
                f"[{info.min}, {info.max}]; a cast would wrap it. Widen the column's dtype or fix the value"
            )


def dtype_error(where: str, col: Column, got) -> DTypeError:
    return DTypeError(
        f"{where}: column {col.name!r} got dtype {got}, which cannot be cast safely to {col.dtype}; "
        f"convert it first (e.g. np.asarray(value, dtype={col.dtype.name!r})) if that is what you mean"
    )


def shape_error(where: str, col: Column, got, expected) -> ShapeError:
    return ShapeError(
        f"{where}: column {col.name!r} got shape {tuple(got)}, expected {tuple(expected)}"
        + (" (a scalar)" if expected == () else "")
    )


def nonfinite_error(where: str, col: Column, row: int | None = None) -> NonFiniteError:
    at = "" if row is None else f" at block row {row}"
    return NonFiniteError(
        f"{where}: column {col.name!r} holds NaN or inf{at}; non-finite values are rejected. "
        "Fix the value, or create the store with allow_nonfinite=True in its schema if they are expected."
    )


def missing_actor_error(where: str, actors) -> MissingActorError:
    return MissingActorError(
        f"{where}: no actor given; every row needs actor= one of {list(actors)} "
        "(there is no default: the actor tag is what the store exists to keep)"
    )


def unknown_columns_error(where: str, schema_names, unknown) -> UnknownColumnError:
    return UnknownColumnError(
        f"{where}: unknown column(s) {sorted(unknown)}; the schema declares {list(schema_names)}. "
        "Add them to the schema at creation (Schema.transition(..., extra=[Column(...)]))"
    )


def check_names(where: str, schema: Schema, given, optional: tuple[str, ...], actor_given: bool,
                actors) -> None:
    """Raise for a missing actor, missing required columns or unknown extra columns."""
    if not actor_given and ACTOR in schema:
        raise missing_actor_error(where, actors)
    names = set(given)
    unknown = names - set(schema.names)
    if unknown:
        raise unknown_columns_error(where, schema.names, unknown)
    # a zero-width column (continuous_dim=0) holds no bytes: leaving it out is no loss
    missing = sorted(set(schema.names) - names - set(optional) - {ACTOR} - {c.name for c in schema if c.shape and
                                                                             not c.row_bytes})
    if missing:
        raise MissingColumnError(f"{where}: missing required column(s) {missing}")


def block_column(where: str, col: Column, value, n: int | None) -> np.ndarray:
    """Validate one column of a block; returns it as an array of the column's dtype."""
    arr = np.asarray(value)
    if arr.ndim == 0 or arr.shape[1:] != col.shape or (n is not None and arr.shape[0] != n):
        exp = (n if n is not None else "n", *col.shape)
        raise ShapeError(f"{where}: column {col.name!r} got shape {arr.shape}, expected {exp}")
    if arr.dtype != col.dtype:
        if arr.size and (arr.dtype == object or not castable(arr.dtype, col.dtype)):
            raise dtype_error(where, col, arr.dtype)
        check_int_range(where, col, arr)
        # an overflow to inf is rejected just below; a tiny value rounds, as any cast does
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            arr = arr.astype(col.dtype)
    if col.is_float and not col.allow_nonfinite and arr.size:
        bad = first_nonfinite_row(arr)
        if bad is not None:
            raise nonfinite_error(where, col, bad)
    return arr


def first_nonfinite_row(arr: np.ndarray) -> int | None:
    """The first row of a block holding NaN or inf, or None.

    numpy's own isfinite, not a BLAS product with zeros: that one was twice as fast on an idle box
    (40 against 84 us per 4 MiB) only because OpenBLAS ran it on both cores, and with the cores
    busy (a training process, torch's threads) its threads wait on each other: 17 ms at worst,
    13 ms typical in an earlier measurement, against 4.5 ms at worst for isfinite. With one BLAS
    thread it took 73 us."""
    ok = np.isfinite(arr)
    if ok.all():
        return None
    return int(np.flatnonzero(~ok.reshape(len(arr), -1).all(axis=1))[0])


def block_length(where: str, block: Mapping) -> int:
    if not isinstance(block, Mapping):
        raise TypeError(f"{where}: expected a mapping of column name to array, got {type(block).__name__}")
    lengths = {}
    for k, v in block.items():
        shape = np.shape(v)
        if not shape:
            raise ShapeError(f"{where}: column {k!r} is a scalar; a block needs one value per row")
        lengths[k] = shape[0]
    if len(set(lengths.values())) > 1:
        raise ShapeError(f"{where}: columns have different lengths {lengths}; every column needs the same rows")
    return next(iter(lengths.values()), 0)


# ------------------------------------------------------------------ one row, one block
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
    except (RuntimeWarning, FloatingPointError):  # see _tablewriter.finite_weights
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


def given_columns(state, next_state, discrete_action, continuous_action, reward, done, rest: dict) -> dict:
    """``append``'s keywords as one mapping of the columns given (the named ones left out are not)."""
    named = {"state": state, "next_state": next_state, "discrete_action": discrete_action,
             "continuous_action": continuous_action, "reward": reward, "done": done}
    return {**{k: v for k, v in named.items() if v is not _MISSING}, **rest}


def number_episodes(done: np.ndarray, next_episode: int, next_step: int) -> tuple:
    """Episode and step numbers of rows whose done flags are ``done``, continuing an episode
    ``next_episode`` at step ``next_step``; returns them and the (episode, step) that follows."""
    n = len(done)
    ends = np.flatnonzero(done)
    # the rows' episodes: [0, ends[0]], (ends[0], ends[1]], ..., the rest
    starts = np.zeros(len(ends) + 1, np.int64)
    starts[1:] = ends + 1
    lengths = np.diff(starts, append=n)
    episode = np.repeat(np.arange(next_episode, next_episode + len(starts), dtype=np.int64), lengths)
    step = np.arange(n, dtype=np.int64)
    step -= np.repeat(starts, lengths)
    step[:lengths[0]] += next_step
    after = (next_episode + len(ends), int(step[-1]) + 1 if lengths[-1] else 0) if n else (next_episode, next_step)
    return episode, step, after


class RowStager:
    """Checks rows and blocks of the transitions table and stages them in ``tw``.

    ``schema``: the table as stored (for a frames-once store, with frame ids: ``_frames_writer.py``
    turns stacks into ids before handing the block here). ``next_episode``/``next_step``: where
    the numbering continues (after the last committed row). The commit policy's thresholds
    (``due_rows``, ``due_time``) are set by the writer after each commit (``set_due``).
    """

    def __init__(self, tw: TableWriter, schema: Schema, actors: Actors, next_episode: int = 0, next_step: int = 0):
        self.tw = tw
        self.schema = schema
        self.actors = actors
        self.auto = tuple(schema.auto_columns)  # the columns the store fills when a caller leaves them out
        self.has_done = "done" in schema
        self.next_episode, self.next_step = int(next_episode), int(next_step)
        self.due_rows = 0        # the row count (written + staged) at which a commit is due
        self.due_time = 0.0      # the time.time() at which a commit is due
        # The general path's plan: the columns grouped by the check they need, so ``add_row``
        # runs one short loop per group.
        grouped = {name for _, _, names in tw.finite_groups for name in names}
        arrays, floats, ints, bools = [], [], [], []
        for c in schema:
            if c.name == ACTOR or c.name in self.auto:
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
        self.plan = (tuple(arrays), tuple(floats), tuple(ints), tuple(bools))
        # the dots write into kept 0-d arrays: no new scalar per call, and no numpy RuntimeWarning
        # for the NaN a bad value gives (the NonFiniteError says it)
        self.groups = tuple((m, z, [schema[n] for n in names], np.zeros((), m.dtype))
                            for m, z, names in tw.finite_groups)
        self.lookup = actors._lookup
        self.stage_actor = tw.stage[ACTOR]
        self.auto_stage = tuple(tw.stage[n] if n in self.auto else None for n in ("episode", "step", "time"))
        self.stage_done = tw.stage["done"] if self.has_done else None
        self.track = {"episode", "step", "done"} <= set(schema.names)
        # The bound-parameter path (``add``): Schema.transition's own columns, nothing else, no column
        # given by the caller that the store fills, and one float dtype for the three float arrays.
        # Elsewhere ``fast_types`` holds a dtype no array has, so ``add`` always takes the general path.
        self.fast = False
        self.fast_stage: tuple = ()
        self.fast_types: tuple = (None, (), (1,), 0, -1, 0.0)
        self.no_cont = None       # the continuous action a continuous_dim=0 append leaves out
        self.fast_lists: tuple = ()
        self.fast_arrays: tuple = ()
        self.deferred_from = -1   # first staged row whose scalars are still in fast_lists
        std = Schema.transition(schema["state"].shape, schema["continuous_action"].shape[0],
                                schema["discrete_action"].dtype.name,
                                state_dtype=schema["state"].dtype.name) if _looks_standard(schema) else None
        if std == schema and auto_all(self.auto) and len(self.groups) == 1 and \
                len(self.groups[0][2]) == (3 if schema["continuous_action"].row_bytes else 2):
            s = tw.stage
            matrix, zero, cols, out = self.groups[0]
            # one view per stage row and column, made once: ``view[...] = v`` costs 118 ns where
            # ``array[i] = v`` costs 153 (the index makes the view on every call)
            self.fast_stage = (list(s["state"]), list(s["next_state"]), list(s["continuous_action"]), list(matrix),
                               zero, cols, out)
            info = np.iinfo(schema["discrete_action"].dtype)
            self.no_cont = np.zeros(schema["continuous_action"].shape, schema["state"].dtype)
            self.fast_types = (schema["state"].dtype, schema["state"].shape, schema["continuous_action"].shape,
                               int(info.min), int(info.max), float(np.finfo(np.float32).max))
            # episode and step are numbered from the done flags when the lists reach the stage
            names = ("discrete_action", "reward", "done", "time", ACTOR)
            self.fast_lists = tuple([0] * tw.stage_rows for _ in names)
            self.fast_arrays = tuple(s[n] for n in names)
            self.fast = True
            tw.before_flush = self.fill_deferred

    def set_due(self, rows: int, at: float) -> None:
        """The commit policy: a commit is due once ``rows`` rows are accepted or at time ``at``."""
        self.due_rows, self.due_time = int(rows), float(at)

    def due(self, now: float) -> bool:
        return self.tw.rows >= self.due_rows or now >= self.due_time

    # ------------------------------------------------------------------ one row
    def add(self, actor, state, next_state, discrete_action, continuous_action, reward, done, rest: dict) -> bool:
        """Stage one row given as ``append``'s keywords; returns whether a commit is due.

        The same checks as the general loop (``add_row``), arranged for speed for Schema.transition's
        ten columns: the columns are bound as parameters, and the five scalars (actor, actions,
        reward, done, time) go into Python lists that the stage's arrays take in one slice assignment
        before a flush (a numpy scalar store costs twice a list store); episode and step are
        numbered from the done flags then, in one vectorized pass, instead of per row. Anything
        unusual (another schema or type, a bad value, a full stage, a value that is not an array)
        takes the general path, which raises the same errors at the same call.
        """
        tw = self.tw
        i = tw.n_staged
        f_dtype, f_shape, c_shape, d_lo, d_hi, rmax = self.fast_types
        t = reward.__class__
        try:  # a value that is no array has no dtype: the general path says what is wrong with it
            fast = not (rest or i == tw.stage_rows or state.dtype is not f_dtype or
                        state.shape != f_shape or next_state.dtype is not f_dtype or next_state.shape != f_shape or
                        continuous_action.dtype is not f_dtype or continuous_action.shape != c_shape or
                        discrete_action.__class__ is not int or not d_lo <= discrete_action <= d_hi or
                        (t is not float and t is not int) or not -rmax <= reward <= rmax or
                        done.__class__ is not bool)
        except AttributeError:  # a value that is no array, or a zero-width column left out
            if continuous_action is _MISSING and not c_shape[0]:
                return self.add(actor, state, next_state, discrete_action, self.no_cont, reward, done, rest)
            fast = False
        if not fast:
            return self.add_row(actor, given_columns(state, next_state, discrete_action, continuous_action, reward,
                                                     done, rest))
        code = self.lookup.get(actor) if actor.__class__ is str else None  # names: the common case
        if code is None:
            code = self.actor_code(actor)
        st_state, st_next, st_cont, rows, zero, cols, out = self.fast_stage
        st_state[i][...] = state
        st_next[i][...] = next_state
        st_cont[i][...] = continuous_action
        try:  # _finite_dot, inlined: a call costs 0.07 us of this path
            rows[i].dot(zero, out)
            ok = isfinite(out)
        except (RuntimeWarning, FloatingPointError):  # see _tablewriter.finite_weights
            ok = False
        if not ok:
            for c in cols:
                if not np.isfinite(tw.stage[c.name][i]).all():
                    raise nonfinite_error("append", c)
        now = _now()
        if self.deferred_from < 0:
            self.deferred_from = i
        l_disc, l_rew, l_done, l_time, l_actor = self.fast_lists
        l_disc[i] = discrete_action
        l_rew[i] = reward
        l_done[i] = done
        l_time[i] = now
        l_actor[i] = code
        tw.n_staged = i + 1
        return tw.rows_written + i + 1 >= self.due_rows or now >= self.due_time

    def add_row(self, actor, columns: dict) -> bool:
        """The general one-row path: one short loop per group of columns with the same checks.
        Returns whether a commit is due."""
        tw = self.tw
        self.fill_deferred()
        code = self.lookup.get(actor) if actor.__class__ is str else None  # names: the common case
        if code is None:
            code = self.actor_code(actor)
        if tw.n_staged == tw.stage_rows:
            tw.flush_stage()  # raises before this row is accepted if the disk is full
        i = tw.n_staged
        pop = columns.pop
        arrays, floats, ints, bools = self.plan
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
            st_ep, st_step, st_time = self.auto_stage
            if st_ep is not None:
                st_ep[i] = self.next_episode
            if st_step is not None:
                st_step[i] = self.next_step
            if st_time is not None:
                st_time[i] = now
        for matrix, zero, cols, out in self.groups:
            if not _finite_dot(matrix[i], zero, out):
                for c in cols:
                    if not np.isfinite(tw.stage[c.name][i]).all():
                        raise nonfinite_error("append", c)
        self.stage_actor[i] = code
        if self.track:
            stage = tw.stage
            if self.stage_done[i]:
                self.next_episode, self.next_step = int(stage["episode"][i]) + 1, 0
            else:
                self.next_episode, self.next_step = int(stage["episode"][i]), int(stage["step"][i]) + 1
        tw.n_staged = i + 1
        return tw.rows_written + i + 1 >= self.due_rows or now >= self.due_time

    def actor_code(self, actor) -> int:
        """The code of an actor that is not a name in the vocabulary: a code, or an error that says
        what was given (a bool or float is no code, even where it equals one)."""
        if actor is _MISSING:
            raise missing_actor_error("append", self.actors.names)
        return self.actors.code(actor)

    def fill_deferred(self) -> None:
        """Move the scalars the bound-parameter path kept in lists into the stage's arrays (before
        any flush, and before any other path writes the stage)."""
        lo = self.deferred_from
        if lo < 0:
            return
        hi = self.tw.n_staged
        for values, arr in zip(self.fast_lists, self.fast_arrays):
            arr[lo:hi] = values[lo:hi]
        stage = self.tw.stage
        episode, step, (self.next_episode, self.next_step) = number_episodes(
            stage["done"][lo:hi], self.next_episode, self.next_step)
        stage["episode"][lo:hi] = episode
        stage["step"][lo:hi] = step
        self.deferred_from = -1

    def _missing(self, name: str) -> MissingColumnError:
        return MissingColumnError(f"append: missing required column {name!r}; the schema declares "
                                  f"{list(self.schema.names)}")

    def _given_auto(self, columns: dict, i: int, now: float) -> None:
        """The rare call that gives episode, step or time itself (or an unknown column)."""
        unknown = set(columns) - set(self.auto)
        if unknown:
            raise unknown_columns_error("append", self.schema.names, unknown)
        fill = {"episode": self.next_episode, "step": self.next_step, "time": now}
        for name in self.auto:
            col = self.schema[name]
            v = columns.get(name, fill[name])
            st = self.tw.stage[name]
            if v.__class__ is (float if col.dtype.kind == "f" else int):
                st[i] = v
            else:
                _coerce_scalar(col, v, st, i)

    # ------------------------------------------------------------------ blocks
    def add_block(self, columns, where: str = "extend") -> int:
        """Stage a block (a mapping of column to one entry per row; ``actor`` names or codes). The
        whole block is checked before any of it is kept. Returns its row count."""
        self.fill_deferred()
        n = block_length(where, columns)
        check_names(where, self.schema, columns, self.auto, ACTOR in columns, self.actors.names)
        block = {}
        for c in self.schema:
            if c.name == ACTOR:
                block[ACTOR] = self.actors.codes(columns[ACTOR])
                if block[ACTOR].shape != (n,):
                    raise ShapeError(f"{where}: column 'actor' got shape {block[ACTOR].shape}, expected ({n},)")
            elif c.name in columns:
                block[c.name] = block_column(where, c, columns[c.name], n)
        self._fill_auto_block(block, n)
        self.tw.add_block(block, n)
        if n and ("episode" in self.auto or "step" in self.auto):
            last_done = bool(block["done"][-1]) if self.has_done else False
            ep, st = int(block["episode"][-1]), int(block["step"][-1])
            self.next_episode, self.next_step = (ep + 1, 0) if last_done else (ep, st + 1)
        return n

    def _fill_auto_block(self, block: dict, n: int) -> None:
        """Episode and step numbers that follow the done flags, continuing the last row's; one time."""
        fill_ep = "episode" in self.auto and "episode" not in block
        fill_step = "step" in self.auto and "step" not in block
        if fill_ep or fill_step:
            done = block["done"] if self.has_done else np.zeros(n, bool)
            episode, step, _ = number_episodes(done, self.next_episode, self.next_step)
            if fill_ep:
                block["episode"] = episode
            if fill_step:
                block["step"] = step
        if "time" in self.auto and "time" not in block:
            block["time"] = np.full(n, time.time())
