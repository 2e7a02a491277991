"""The one-row ``append`` fast path, generated once per open store for its schema.

A row-at-a-time API is judged against plain numpy assignment (DESIGN.md; benchmarks/bench_store.py):
a generic loop over columns with per-call dict lookups costs several times that. Like
``dataclasses`` generating ``__init__``, we generate straight-line code for the store's own
columns, with every check kept: actor, required and unknown columns, shape, safe dtype cast and
finiteness. Finiteness of a float row is tested as ``isnan(row . zeros)``: ``0 * inf`` and
``0 * nan`` are NaN, every finite product is 0, so one BLAS dot answers it without overflow.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ._schema import ACTOR, Column
from ._validate import (castable, check_int_range, dtype_error, missing_actor_error, nonfinite_error, shape_error,
                        unknown_columns_error)
from .errors import DTypeError, MissingColumnError

_MISSING = object()

# A row with NaN/inf makes the finiteness dot (and a float64 -> float32 cast that overflows) emit
# numpy RuntimeWarnings just before we raise NonFiniteError for it. The error says it all; these
# warnings are ignored for the generated code only (np.errstate per row would cost more than the row).
GENERATED_MODULE = "replaystore.store._rowappend_generated"
warnings.filterwarnings("ignore", category=RuntimeWarning, module=GENERATED_MODULE.replace(".", r"\."))


def _missing(schema_names, name):
    return MissingColumnError(f"append: missing required column {name!r}; the schema declares {list(schema_names)}")


def _coerce_array(col: Column, v, stage, i):
    """Slow path for array columns given as lists or other non-ndarray values."""
    arr = np.asarray(v)
    if arr.shape != col.shape:
        raise shape_error("append", col, arr.shape, col.shape)
    # an empty list has no dtype of its own (numpy says float64): nothing to cast
    if arr.size and (arr.dtype == object or not castable(arr.dtype, col.dtype)):
        raise dtype_error("append", col, arr.dtype)
    check_int_range("append", col, arr)
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
        stage[i] = v
    except OverflowError as e:
        raise DTypeError(f"append: column {col.name!r} got {v!r}, which does not fit {col.dtype}") from e
    if kind == "f" and not col.allow_nonfinite and not math.isfinite(stage[i]):
        raise nonfinite_error("append", col)


def _nonfinite_in(columns, stage, i):
    """Raise for the first of ``columns`` whose staged row ``i`` holds NaN or inf."""
    for col in columns:
        if not np.isfinite(stage[col.name][i]).all():
            raise nonfinite_error("append", col)


def build_append(store, tw):
    """Return ``append(*, actor, **columns)`` bound to ``store`` and its transitions writer ``tw``."""
    schema = store.schema
    auto = set(schema.auto_columns)
    ns = {"__name__": GENERATED_MODULE, "np": np, "math": math, "_M": _MISSING, "_isnan": math.isnan, "_isfinite": math.isfinite,
          "_time": time.time, "ndarray": np.ndarray, "_castok": castable, "_intrange": check_int_range,
          "NOT_CODES": frozenset({bool, np.bool_, float, np.float16, np.float32, np.float64, np.longdouble}), "_shape": shape_error,
          "_dtype": dtype_error, "_nonfinite": nonfinite_error, "_missing": _missing, "_unknown": unknown_columns_error, "_no_actor": missing_actor_error,
          "_ca": _coerce_array, "_cs": _coerce_scalar, "NAMES": schema.names, 
          "LOOKUP": store.actors._lookup, "ACTORS": store.actors, "store": store, "tw": tw,
          "OverflowError": OverflowError, "DTypeError": DTypeError}
    params, body = [], []
    # columns staged side by side: one dot per group checks them all, after they are staged
    grouped = {name for _, _, names in tw.finite_groups for name in names}
    for k, c in enumerate(schema):
        if c.name == ACTOR:
            continue
        ns[f"C{k}"], ns[f"D{k}"], ns[f"S{k}"], ns[f"ST{k}"] = c, c.dtype, c.shape, tw.stage[c.name]
        params.append(f"{c.name}=_M")
        n = c.name
        if n in auto:
            fill = {"episode": "store._next_episode", "step": "store._next_step", "time": "now"}[n]
            body.append(f"if {n} is _M: {n} = {fill}")
            body.append(f"ST{k}[i] = {n}")
            continue
        body.append(f"if {n} is _M: raise _missing(NAMES, {n!r})")
        check = c.is_float and not c.allow_nonfinite
        if c.shape:
            ns[f"Z{k}"] = np.zeros(int(np.prod(c.shape)), c.dtype)
            flat = "" if len(c.shape) == 1 else ".reshape(-1)"
            body += [
                "try:",
                f"    if {n}.shape != S{k}: raise _shape('append', C{k}, {n}.shape, S{k})",
                f"    if {n}.dtype is not D{k} and not _castok({n}.dtype, D{k}): raise _dtype('append', C{k}, {n}.dtype)",
                *([f"    if {n}.dtype is not D{k}: _intrange('append', C{k}, {n})"] if c.dtype.kind in "iu" else []),
                f"    ST{k}[i] = {n}",
                "except AttributeError:",
                f"    _ca(C{k}, {n}, ST{k}, i)",
            ]
            if check and c.name not in grouped:
                # check the stored (cast) row: a float64 value can overflow float32
                body.append(f"if _isnan(({n} if {n}.__class__ is ndarray and {n}.dtype is D{k} else ST{k}[i]){flat}.dot(Z{k})): "
                            f"raise _nonfinite('append', C{k})")
        else:
            fast = {"f": "float or t is int", "i": "int", "u": "int", "b": "bool"}[c.dtype.kind]
            body += [
                f"t = {n}.__class__",
                f"if t is {fast}:",
                "    try:",
                f"        ST{k}[i] = {n}",
                "    except OverflowError as e:",
                f"        raise DTypeError('append: column {n} got ' + repr({n}) + ', which does not fit {c.dtype}') from e",
            ]
            if check:
                # a Python float can overflow a narrower float column: check the stored value there
                stored = n if c.dtype.itemsize >= 8 else f"ST{k}[i]"
                body.append(f"    if not _isfinite({stored}): raise _nonfinite('append', C{k})")
            body += ["else:", f"    _cs(C{k}, {n}, ST{k}, i)"]
    for g, (matrix, zeros, names) in enumerate(tw.finite_groups):
        ns[f"G{g}"], ns[f"GZ{g}"], ns[f"GC{g}"] = matrix, zeros, [schema[n] for n in names]
        body.append(f"if _isnan(G{g}[i].dot(GZ{g})): _nonfinite_in(GC{g}, tw.stage, i)")
    ns["_nonfinite_in"] = _nonfinite_in
    ns["KA"] = list(schema.names).index(ACTOR)
    ns["STA"] = tw.stage[ACTOR]
    track = ""
    if {"episode", "step", "done"} <= set(schema.names):
        track = ("if done: store._next_episode = episode + 1; store._next_step = 0\n"
                 "    else: store._next_episode = episode; store._next_step = step + 1")
    src = f"""
def append(*, actor=_M, {', '.join(params)}, **extra):
    if store._tw is None: store._check_writable('append')
    if extra: raise _unknown('append', NAMES, extra)
    if actor.__class__ in NOT_CODES: code = ACTORS.code(actor)  # raises: True == 1.0 == 1 in LOOKUP
    else:
        try: code = LOOKUP[actor]
        except (KeyError, TypeError):
            if actor is _M: raise _no_actor('append', ACTORS.names)
            code = ACTORS.code(actor)
    i = tw.n_staged
    now = _time()
    {chr(10).join('    ' + line for line in body).lstrip()}
    STA[i] = code
    {track}
    tw.n_staged = i + 1
    if i + 1 == tw.stage_rows: tw.flush_stage()
    if tw.rows_written + tw.n_staged - store._committed_rows >= store.commit_every or now - store._last_commit >= store.commit_seconds:
        store.commit()
"""
    exec(compile(src, f"<replaystore append for {len(schema)} columns>", "exec"), ns)
    fn = ns["append"]
    fn.__source__ = src  # for debugging: print(store.append.__source__)
    fn.__doc__ = "Append one row (generated for this store's schema; see ReplayStore.append)."
    return fn
