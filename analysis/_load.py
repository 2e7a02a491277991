"""Loaders: a store's tables as pandas DataFrames, actors as Categoricals named by the vocabulary.

Every loader reads only the committed prefix through ``ReplayStore.open(path, "r")``, which maps
the file and never blocks a live writer. Array columns (``state``, ...) are read only when asked
for, so a 1M-row store loads its scalar columns in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Union

import numpy as np
import pandas as pd

from replaystore.store import TRAIN_SAMPLES, TRAIN_STEPS, ReplayStore, train_samples_schema, train_steps_schema

# what the loaders and the audit read: a store's path, or an open store (left open)
StoreSource = Union[str, "os.PathLike[str]", ReplayStore]

# The columns a transition frame holds unless the caller names others.
DEFAULT_COLUMNS = ("actor", "episode", "step", "reward", "done", "time")


@contextlib.contextmanager
def open_store(source: StoreSource) -> Iterator[ReplayStore]:
    """Yield a readable store: ``source`` is a path (opened read-only here and closed after) or an
    open ``ReplayStore`` (used as is, left open)."""
    if isinstance(source, ReplayStore):
        if source.closed:
            raise ValueError(f"{source!r} is closed; pass its path or an open store")
        yield source
        return
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"expected a store path (str or os.PathLike) or a ReplayStore, got {type(source).__name__}")
    s = ReplayStore.open(source, "r")
    try:
        yield s
    finally:
        s.close()


def actor_categorical(codes: np.ndarray, names) -> pd.Categorical:
    """Codes as a Categorical over ``names``; codes outside the vocabulary become missing (NaN),
    never another actor. The raw codes stay in the frame's ``actor_code`` column."""
    codes = np.asarray(codes)
    c = codes.astype(np.int16)
    c[c >= len(names)] = -1
    return pd.Categorical.from_codes(c, categories=list(names))


def _unknown_codes(codes: np.ndarray, n_actors: int) -> dict[int, int]:
    bad = codes[codes >= n_actors]
    if not bad.size:
        return {}
    vals, counts = np.unique(bad, return_counts=True)
    return {int(v): int(c) for v, c in zip(vals, counts)}


def _flatten(name: str, arr: np.ndarray) -> dict[str, np.ndarray]:
    """An array column of row shape ``(k, ...)`` as ``k*...`` scalar columns ``name_0``, ``name_1``, ..."""
    flat = arr.reshape(len(arr), -1)
    return {f"{name}_{i}": flat[:, i] for i in range(flat.shape[1])}


def _columns(raw: dict, columns, names, *, per_actor: bool = False) -> dict[str, object]:
    """Frame columns from raw arrays: ``actor`` as a Categorical plus its raw ``actor_code``,
    per-actor arrays (``per_actor``) as ``<column>_<actor>``, other arrays flattened, scalars as is."""
    data: dict[str, object] = {}
    for c in columns:
        v = raw[c.name]
        if c.name == "actor":
            data["actor"] = actor_categorical(v, names)
            data["actor_code"] = v
        elif per_actor and c.shape == (len(names),):
            data.update({f"{c.name}_{a}": v[:, i] for i, a in enumerate(names)})
        elif c.shape:
            data.update(_flatten(c.name, v))
        else:
            data[c.name] = v
    return data


def _load_table(path, table: str, default_schema, *, per_actor: bool) -> pd.DataFrame:
    """A telemetry table as a frame; empty, with ``attrs["table_present"] = False``, when absent."""
    with open_store(path) as s:
        names = s.actors.names
        present = table in s.tables
        schema = s.table_schema(table) if present else default_schema(len(names))
        raw = s.read_table(table) if present else {c.name: np.empty((0, *c.shape), c.dtype) for c in schema}
        df = pd.DataFrame(_columns(raw, schema, names, per_actor=per_actor), copy=False)
        df.attrs.update(_frame_attrs(s))
        df.attrs["table_present"] = present
        if "actor" in raw:
            df.attrs["unknown_actor_codes"] = _unknown_codes(raw["actor"], len(names))
        return df


def load_transitions(path: StoreSource, columns: Sequence[str] | None = None, *, start: int | None = None,
                     stop: int | None = None) -> pd.DataFrame:
    """Committed transition rows as a DataFrame.

    Columns: ``row`` (row id in the store), ``actor`` (Categorical over the store's vocabulary),
    ``actor_code`` (the raw uint8 code), then ``episode``, ``step``, ``reward``, ``done``, ``time``
    by default, or the ``columns`` named. Array columns such as ``state`` are read only when named,
    and come flattened as ``state_0``, ``state_1``, ... (one column per element, row-major).

    BEWARE: an actor code outside the vocabulary shows as a missing ``actor`` (NaN) with its code
    kept in ``actor_code``; ``df.attrs["unknown_actor_codes"]`` counts them (``audit`` flags them).

    >>> df = load_transitions("tests/data/healthy.h5")
    >>> df.groupby("actor", observed=False)["reward"].mean().astype(float).round(2).to_dict()
    {'expert': 1.01, 'dqn': 0.4}
    """
    with open_store(path) as s:
        schema = s.schema
        if columns is None:
            wanted = [c for c in DEFAULT_COLUMNS if c in schema]
        else:
            wanted = [columns] if isinstance(columns, str) else list(columns)
            unknown = [c for c in wanted if c not in schema]
            if unknown:
                raise KeyError(f"load_transitions: unknown column(s) {unknown}; the store has {list(schema.names)}")
        read = list(dict.fromkeys(["actor", *wanted]))
        lo, hi, _ = slice(start, stop).indices(len(s))
        hi = max(lo, hi)
        raw = s.read(read, lo, hi)
        names = s.actors.names
        data: dict[str, object] = {"row": np.arange(lo, hi, dtype=np.int64)}
        codes = raw["actor"]
        data.update(_columns(raw, [schema[c] for c in wanted], names))
        if "actor" not in data:
            data["actor_code"] = codes
        df = pd.DataFrame(data, copy=False)
        df.attrs.update(_frame_attrs(s))
        df.attrs["unknown_actor_codes"] = _unknown_codes(codes, len(names))
        return df


def _frame_attrs(s: ReplayStore) -> dict:
    return {"actors": list(s.actors.names), "window": s.window, "rows": len(s),
            "window_start": s.window_start(), "metadata": dict(s.metadata)}


def load_train_steps(path: StoreSource) -> pd.DataFrame:
    """The training log, one row per training step.

    Per-actor array columns are expanded into one column per actor, named ``<column>_<actor>``
    (``batch_count_expert``, ``batch_count_dqn``, ``td_abs_mean_dqn``, ...). A store whose training
    has not written telemetry yet gives an empty frame with these columns and
    ``df.attrs["table_present"] == False``.
    """
    return _load_table(path, TRAIN_STEPS, train_steps_schema, per_actor=True)


def load_train_samples(path: StoreSource) -> pd.DataFrame:
    """Per-sample training telemetry: ``step``, ``row``, ``actor`` (Categorical), ``actor_code``,
    ``td_error``, ``q``, ``target``. Empty (with ``attrs["table_present"] == False``) when the
    training has not written any."""
    return _load_table(path, TRAIN_SAMPLES, lambda n_actors: train_samples_schema(), per_actor=False)
