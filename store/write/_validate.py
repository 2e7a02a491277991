"""Checks on values entering the store: shape, dtype, finiteness, required and unknown columns.

Each failure raises an error from ``errors`` that names the column, what was received, what was
expected and how to fix it. Nothing here touches the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from ..files._untrusted import check_depth
from ..format._schema import ACTOR, Column, Schema
from ..errors import (DTypeError, MissingActorError, MissingColumnError, NonFiniteError, ShapeError,
                     UnknownColumnError)

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


def finite_weights(n: int, dtype) -> np.ndarray:
    """Weights ``w`` for a finiteness test of ``n`` floats by one dot product ``x . w``.

    ``w`` is ``2**-k`` with ``2**k >= n``: every finite product is exact or tiny and their sum
    cannot overflow, while ``inf * w`` stays inf and a NaN stays NaN, so the dot is finite
    exactly when every ``x`` is (zeros would do the same, but ``0 * inf`` raises numpy's
    "invalid value" warning, an error under ``-W error``, before the store could say what is
    wrong). Only a row holding both +inf and -inf still sets that flag; callers treat the
    warning, or a FloatingPointError under ``np.seterr(all="raise")``, as "look closer"."""
    k = max(0, (int(n) - 1).bit_length())
    return np.full(int(n), 2.0 ** -k, dtype)


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


def json_attr(value, what: str) -> str:
    """``value`` as the JSON the store keeps (metadata, extra, checkpoint info), or a TypeError."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise TypeError(f"{what} must be JSON-serializable (str, numbers, lists, dicts); {e}") from e
    return check_depth(text, what)  # a reader refuses deeper JSON as hostile: never write what cannot be read
