"""``Run``: one folder of shards, one ``ReplayStore`` per writing process, under one record.

Layout of a run folder::

    run.json               the record: format, version, uuid, schema, actors, window, metadata
    shards/<name>.h5       one store per writing process (plus its ``.commit`` record, segments)
    learner.h5             optional: a learner's training telemetry (``run.learner_path``)

The record is written once, atomically, at creation and never changes, so readers need no lock
and no file is ever written by two processes: each shard has its own writer (the store's own
lock refuses a second one). Shards are found by listing the folder, so a shard that a new worker
creates mid-run appears to every reader at its next look.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid as _uuid
from collections.abc import Mapping, Sequence

from ..format._actors import Actors
from ..files._fileio import UNCHANGED, fsync_dir, layer, write_atomic
from ..format._record import read_regular_file
from ..format._schema import Schema
from ..read._frames import FrameStack, physical_schemas
from ..read._store import ReplayStore
from ..files._untrusted import loads
from ..errors import DamagedStoreError, RunError, ShardMismatchError, StoreExistsError, StoreLockedError, StoreNotFoundError

RUN_FORMAT = "replaystore-run"
RUN_FORMAT_VERSION = 1
RECORD = "run.json"
_MAX_RECORD_BYTES = 16 << 20  # a run record is a few KB: more is not one
SHARDS = "shards"
LEARNER = "learner.h5"  # a learner's telemetry store beside the shards (no transitions; not a shard)
SHARD_SUFFIX = ".h5"
# A shard name becomes a file name: keep it to characters that mean the same on every filesystem.
_SHARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LOCK_RETRY_SECONDS = 1.0  # how long create_shard retries a shard whose HDF5 file another process holds


def _unfinished(path: str) -> bool:
    """Whether the folder ``path`` holds nothing, or only what a creator killed before publishing the
    record leaves (an empty shards folder, its unlinked record and its temporary): a run can still be
    created there."""
    for name in os.listdir(path):
        if name == SHARDS and os.path.isdir(os.path.join(path, SHARDS)) and not os.listdir(os.path.join(path, SHARDS)):
            continue
        if not (name.startswith(f".{RECORD}.") and name.endswith((".new", ".new.tmp"))):
            return False
    return True


class Run:
    """A run: many shards (one ``ReplayStore`` each) that share one schema, vocabulary and window.

    >>> import tempfile, os
    >>> import numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "run")
    >>> run = Run.create(p, Schema.transition((2,)), actors=("expert", "dqn"), window=1000)
    >>> with run.create_shard("worker-0") as s:
    ...     s.append(actor="dqn", state=np.zeros(2, "f4"), next_state=np.ones(2, "f4"),
    ...              discrete_action=1, continuous_action=np.zeros(0, "f4"), reward=1.0, done=False)
    >>> Run.open(p).shards(), Run.open(p).rows()
    (['worker-0'], {'worker-0': 1})

    The window applies to each shard: a sampler over the run draws from the last ``window``
    committed rows of every shard.
    """

    def __init__(self, path: str, record: dict):
        self.path = path
        if not all(isinstance(record[k], str) for k in ("uuid", "schema", "actors", "metadata", "created")) or \
                isinstance(record["window"], bool) or not isinstance(record["window"], int):
            raise TypeError("uuid, schema, actors, metadata and created must be strings, window an integer")
        self.uuid: str = record["uuid"]
        self.schema = Schema.from_json(record["schema"])
        self.actors = Actors.from_json(record["actors"])
        self.window = int(record["window"])
        self.metadata: dict = loads(record["metadata"], "the run's metadata")
        if not isinstance(self.metadata, dict):
            raise TypeError(f"metadata is a {type(self.metadata).__name__}, not a mapping")
        self.created: str = record["created"]
        frames = record.get("frames")  # absent in runs made before frames once: whole observations
        self.frames: FrameStack | None = None if frames is None else FrameStack.from_dict(frames)
        if self.frames is not None:
            physical_schemas(self.schema, self.frames)  # the record's stack fits its schema (a record is data)
        self.format_version = int(record["format_version"])
        self._schema_json = record["schema"]

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path, schema: Schema, actors: Sequence[str], window: int = 1_000_000,
               metadata: Mapping | None = None, frames: FrameStack | None = None) -> "Run":
        """Make a run folder at ``path`` (absent, or an empty folder) and write its record.

        ``actors``: the vocabulary, required (no default), as for ``ReplayStore.create``. Of
        processes creating one run at once, one makes it; the others get ``StoreExistsError``.
        ``frames``: every shard stores stacked observations one frame per step
        (``ReplayStore.create(..., frames=)``; each shard's own environments may interleave)."""
        path = os.fspath(path)
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be a store.Schema (e.g. Schema.transition((4,))), got {type(schema).__name__}")
        actors = Actors.coerce(actors)
        if isinstance(window, bool) or int(window) != window or int(window) <= 0:
            raise ValueError(f"window={window!r}: expected a positive number of rows (each shard's replay window)")
        try:
            meta = json.dumps(dict(metadata or {}))
        except TypeError as e:
            raise TypeError(f"metadata must be JSON-serializable (str, numbers, lists, dicts): {e}") from None
        if frames is not None:
            if not isinstance(frames, FrameStack):
                raise TypeError(f"frames must be a FrameStack (e.g. FrameStack(4, axis=0)), got {type(frames).__name__}")
            physical_schemas(schema, frames)  # refused here, before the folder exists
        if os.path.exists(path) and (not os.path.isdir(path) or not _unfinished(path)):
            raise StoreExistsError(f"{path} already exists and is not an empty folder; open it with Run.open(path) "
                                   "or choose a new path")
        layer().makedirs(os.path.join(path, SHARDS))
        record = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, "uuid": str(_uuid.uuid4()),
                  "schema": schema.to_json(), "actors": actors.to_json(), "window": int(window),
                  "metadata": meta, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if frames is not None:
            record["frames"] = frames.to_dict()
        # published by a link, which fails where a record exists: two creators racing both wrote
        # their own record, the second replacing the first after shards had taken its uuid
        tmp = os.path.join(path, f".{RECORD}.{record['uuid']}.new")
        write_atomic(tmp, json.dumps(record, indent=1).encode("utf-8"), True, "run record", then=UNCHANGED)
        try:
            layer().link(tmp, os.path.join(path, RECORD))
        except FileExistsError:
            raise StoreExistsError(f"{path} already holds a run (made by another process just now); open it with "
                                   "Run.open(path)") from None
        finally:
            layer().remove(tmp)
        fsync_dir(os.path.join(path, RECORD))
        fsync_dir(os.path.abspath(path))  # the run folder's own name, in its parent
        return cls(path, record)

    @classmethod
    def open(cls, path) -> "Run":
        """Read the run record at ``path``; the shards are opened one by one when asked for."""
        path = os.fspath(path)
        rec_path = os.path.join(path, RECORD)
        if not os.path.isdir(path):
            raise StoreNotFoundError(f"no run at {path}: not a folder (a run is a folder made by Run.create)")
        try:  # a regular file only (a FIFO there would hang open()), of bounded size and nesting
            got = read_regular_file(rec_path, "run record", limit=_MAX_RECORD_BYTES)
            if got is None:
                raise RunError(f"{path} is a folder but not a run: it has no {RECORD} (made by Run.create)")
            record = loads(got[0], f"run record {rec_path}")
        except DamagedStoreError as e:
            raise RunError(f"{e}; a run's record is written once, atomically, so the file was changed by "
                           "something else") from None
        if not isinstance(record, dict) or record.get("format") != RUN_FORMAT:
            got = record.get("format") if isinstance(record, dict) else type(record).__name__
            raise RunError(f"{rec_path} is not a replaystore run record (format {got!r}, expected {RUN_FORMAT!r})")
        version = record.get("format_version")
        if version != RUN_FORMAT_VERSION:
            raise RunError(f"{rec_path} has run format version {version!r}; this replaystore reads version "
                           f"{RUN_FORMAT_VERSION}. Upgrade replaystore to read newer runs.")
        missing = [k for k in ("uuid", "schema", "actors", "window", "metadata", "created") if k not in record]
        if missing:
            raise RunError(f"{rec_path} lacks {missing}; the record is damaged")
        try:
            return cls(path, record)
        except (TypeError, ValueError, KeyError) as e:  # StoreErrors (SchemaError, ...) are ValueErrors too
            raise RunError(f"{rec_path} is damaged: a field has the wrong type or value ({type(e).__name__}: {e})") from None

    @property
    def learner_path(self) -> str:
        """Where a learner that samples this run keeps its training telemetry (a store with no
        transitions, beside the shards; the run's audit reads its training section)."""
        return os.path.join(self.path, LEARNER)

    @staticmethod
    def is_run(path) -> bool:
        """True when ``path`` is a folder holding a run record (cheap: one stat)."""
        return os.path.isfile(os.path.join(os.fspath(path), RECORD))

    # ------------------------------------------------------------------ shards
    def shard_path(self, name: str) -> str:
        if not isinstance(name, str) or not _SHARD_NAME.fullmatch(name):
            raise ValueError(f"shard name {name!r}: expected 1-64 letters, digits, '_', '.' or '-' starting "
                             "with a letter or digit (it becomes a file name), e.g. 'worker-0'")
        return os.path.join(self.path, SHARDS, name + SHARD_SUFFIX)

    def shards(self) -> list[str]:
        """The names of the shards in the folder now, sorted (a shard appears once it is created)."""
        folder = os.path.join(self.path, SHARDS)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            raise RunError(f"{self.path}: its {SHARDS}/ folder is missing; the run was moved or damaged") from None
        return sorted(n[:-len(SHARD_SUFFIX)] for n in names
                      if n.endswith(SHARD_SUFFIX) and _SHARD_NAME.fullmatch(n[:-len(SHARD_SUFFIX)]))

    def create_shard(self, name: str, **options) -> ReplayStore:
        """A writing store for shard ``name``: created with the run's schema, actors and window,
        or, if it exists (a restarted worker), reopened for appending after its committed rows.

        ``options`` go to ``ReplayStore.create``/``open`` (``commit_every``, ``commit_seconds``,
        ``fsync``). A second live writer of the same shard gets the store's ``StoreLockedError``
        (after retrying for ``LOCK_RETRY_SECONDS``: a reader may hold a new shard's file briefly).
        """
        path = self.shard_path(name)
        open_opts = {k: v for k, v in options.items() if k not in ("chunk_bytes", "segment_rows", "retain")}
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while True:
            try:
                if not os.path.exists(path):
                    meta = dict(self.metadata, run={"uuid": self.uuid, "shard": name})
                    try:
                        framed = {} if self.frames is None else {"frames": self.frames}
                        return ReplayStore.create(path, self.schema, actors=self.actors.names, window=self.window,
                                                  metadata=meta, **framed, **options)
                    except FileExistsError:
                        pass  # another process created it first: open it, and its lock decides
                return self.open_shard(name, "a", **open_opts)
            except (StoreLockedError, StoreNotFoundError):  # (not found: another process is creating it)
                # A reader of a shard that has no commit record yet holds its HDF5 file for a moment
                # (seen: a learner listing the run as a worker made its shard); a live writer
                # holds it for good and is still refused once the retries are spent.
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def open_shard(self, name: str, mode: str = "r", **options) -> ReplayStore:
        """Open shard ``name`` (``"r"`` to read, also while its writer runs; ``"a"`` to append),
        refusing one whose schema, vocabulary, window or run differs from the run's record."""
        path = self.shard_path(name)
        if not os.path.exists(path):
            raise StoreNotFoundError(f"run {self.path} has no shard {name!r}; shards: {self.shards()}")
        store = ReplayStore.open(path, mode, **options)
        try:
            self.check_shard(store, name)
        except BaseException:
            store.close()
            raise
        return store

    def check_shard(self, store: ReplayStore, name: str) -> None:
        """Raise ``ShardMismatchError`` unless ``store`` matches the run's record."""
        where = f"shard {name!r} of run {self.path}"
        if store.schema.to_json() != self._schema_json:
            raise ShardMismatchError(
                f"{where} has columns {_describe(store.schema)}, but the run's schema is {_describe(self.schema)}; "
                "a shard must be written with the run's schema (make it with run.create_shard)")
        if store.actors.names != self.actors.names:
            raise ShardMismatchError(
                f"{where} has actor vocabulary {list(store.actors.names)}, but the run's is "
                f"{list(self.actors.names)}; codes would mean different actors. Make shards with run.create_shard")
        if int(store.window) != self.window:
            raise ShardMismatchError(f"{where} has window {store.window}, the run's record says {self.window}")
        owner = store.metadata.get("run", {}).get("uuid") if isinstance(store.metadata.get("run"), dict) else None
        if owner != self.uuid:
            raise ShardMismatchError(f"{where} belongs to run {owner!r}, not to this run ({self.uuid}); it was "
                                     "copied in from elsewhere. Move it out, or export and re-append its rows")

    def rows(self) -> dict[str, int]:
        """Committed rows per shard, read from each shard's commit record (0 for a shard whose
        writer is still making it and has published no commit yet)."""
        out = {}
        for name in self.shards():
            try:
                s = self.open_shard(name)
            except (StoreLockedError, StoreNotFoundError):  # (not found: another process is creating it)
                out[name] = 0
                continue
            with s:
                out[name] = len(s)
        return out

    def __repr__(self) -> str:
        return f"<Run {self.path!r}: {len(self.shards())} shards, actors {list(self.actors.names)}>"


def _describe(schema: Schema) -> str:
    return "[" + ", ".join(f"{c.name}:{c.dtype}{list(c.shape)}" for c in schema) + "]"
