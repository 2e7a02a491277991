"""Writing blocks, tables, checkpoints and small state: the ``StoreWriter`` methods beside ``append``.

Each validates the whole block before any of it is kept, then hands it to a table writer
(``_tablewriter.py``); rows become durable and visible at the next commit.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Mapping

import numpy as np

from ..format._format import TRANSITIONS, segment_rows
from ..format._schema import ACTOR, Schema
from ._tablewriter import TableWriter
from ..files._untrusted import check_depth
from ._validate import block_column, block_length, check_names
from ..errors import SchemaError, ShapeError


def serialized(method):
    """Run ``method`` holding the writer's lock (``StoreWriter._wlock``, re-entrant: a method that
    commits calls ``commit``): threads sharing one writer interleave whole calls, never parts."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._wlock:
            return method(self, *args, **kwargs)
    return run


def json_attr(value, what: str) -> str:
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        raise TypeError(f"{what} must be JSON-serializable (str, numbers, lists, dicts); {e}") from e
    return check_depth(text, what)  # a reader refuses deeper JSON as hostile: never write what cannot be read


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


class BlocksMixin:
    """``extend``, tables, checkpoints and state for ``StoreWriter`` (which owns what they use)."""

    @serialized
    def extend(self, columns: Mapping) -> int:
        """Append a block of rows: a mapping of column name to an array with one entry per row.

        ``actor`` may hold names or codes. The whole block is validated before any of it is kept.
        Returns the number of rows added.
        """
        self._check_writable("extend")
        self._fill_deferred()
        n = block_length("extend", columns)
        check_names("extend", self.schema, columns, self._auto, ACTOR in columns, self.actors.names)
        block = {}
        for c in self.schema:
            if c.name == ACTOR:
                block[ACTOR] = self.actors.codes(columns[ACTOR])
                if block[ACTOR].shape != (n,):
                    raise ShapeError(f"extend: column 'actor' got shape {block[ACTOR].shape}, expected ({n},)")
            elif c.name in columns:
                block[c.name] = block_column("extend", c, columns[c.name], n)
        self._fill_auto_block(block, n)
        self._tw.add_block(block, n)
        if n and ("episode" in self._auto or "step" in self._auto):
            last_done = bool(block["done"][-1]) if self._has_done else False
            ep, st = int(block["episode"][-1]), int(block["step"][-1])
            self._next_episode, self._next_step = (ep + 1, 0) if last_done else (ep, st + 1)
        self._maybe_commit(time.time())
        return n

    def _maybe_commit(self, now: float) -> None:
        if self._tw.rows - self._committed_rows >= self.commit_every or now - self._last_commit >= self.commit_seconds:
            self._commit_keeping("this call's rows were accepted and stay staged")

    def _fill_auto_block(self, block: dict, n: int) -> None:
        """Episode and step numbers that follow the done flags, continuing the last row's; one time."""
        fill_ep = "episode" in self._auto and "episode" not in block
        fill_step = "step" in self._auto and "step" not in block
        if fill_ep or fill_step:
            done = block["done"] if self._has_done else np.zeros(n, bool)
            episode, step, _ = number_episodes(done, self._next_episode, self._next_step)
            if fill_ep:
                block["episode"] = episode
            if fill_step:
                block["step"] = step
        if "time" in self._auto and "time" not in block:
            block["time"] = np.full(n, time.time())

    # ------------------------------------------------------------------ tables (training telemetry)
    @serialized
    def create_table(self, name: str, schema: Schema, *, seg_rows: int | None = None) -> None:
        """Declare an append-only table (e.g. training telemetry); no-op if it exists with this schema.
        ``seg_rows``: rows per segment file (a power of two; default from the row size)."""
        self._check_writable("create_table")
        if not isinstance(name, str) or not name.isidentifier() or name == TRANSITIONS:
            raise ValueError(f"table name {name!r} is reserved or not an identifier")
        if name in self._tables:
            if self._tables[name].schema != schema:
                raise SchemaError(f"table {name!r} exists with another schema: {self._tables[name].schema.names}")
            return
        t = TableWriter(self._folder, self._manifest.uuid, name, schema, seg_rows or segment_rows(schema, None), self.chunk_bytes,
                        1024, self.fsync, False)
        t.before_open = self._check_place
        t.ensure_segment()
        self._tables[name] = t

    @serialized
    def extend_table(self, name: str, columns: Mapping) -> int:
        """Append a block of rows to table ``name``; visible at the next commit."""
        self._check_writable("extend_table")
        if name not in self._tables or name == TRANSITIONS:
            raise KeyError(f"no table {name!r}; create it first with create_table(name, schema)")
        t = self._tables[name]
        where = f"extend_table({name!r})"
        n = block_length(where, columns)
        check_names(where, t.schema, columns, (), ACTOR in columns, self.actors.names)
        if ACTOR in t.schema:  # a table's actor column holds vocabulary codes too (names accepted)
            columns = {**columns, ACTOR: self.actors.codes(columns[ACTOR])}
        t.add_block({c.name: block_column(where, c, columns[c.name], n) for c in t.schema if c.name in columns}, n)
        return n

    @serialized
    def record_checkpoint(self, step: int, path: str, **info) -> None:
        """Note a checkpoint in the store's log (durable now: this commits)."""
        self._check_writable("record_checkpoint")
        entry = {"step": int(step), "path": os.fspath(path), "time": time.time(), **info}
        json_attr(entry, "checkpoint info")
        self._new_checkpoints.append(entry)
        self.commit()

    @serialized
    def set_extra(self, key: str, value) -> None:
        """Small JSON state kept with the next commit (for other parts of the store)."""
        self._check_writable("set_extra")
        json_attr(value, f"extra[{key!r}]")
        self._new_extra[key] = value
