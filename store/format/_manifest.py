"""The manifest: the HDF5 file at the store's path, written whole and renamed into place.

It says what the store is (format, uuid, schema, actors, window, retention), whether a writer
session is open, and, after a clean close, that close's commit record: a restored old or a
foreign ``.commit`` can then never truncate rows a clean close committed. Its virtual datasets
(``/transitions/<col>``, ``/tables/<name>/<col>``) span the segments, so stock h5py reads the
store through this one file. It is rewritten (never edited in place) when a writer opens or
closes and when segments are added or deleted; a kill meanwhile leaves the old one intact.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field

import h5py

from ._format import (FORMAT_NAME, READ_ONLY_VERSIONS, FORMAT_VERSION, compact_name, group_path, segment_dir,
                      segment_name)
from ..files._fileio import replacing
from ..files._h5image import hdf5_file
from ._record import CommitRecord, check_version
from ._schema import Schema
from ..files._untrusted import loads
from ..errors import DamagedStoreError, NotAStoreError, StoreError, StoreNotFoundError, TruncatedStoreError


def _whole(v, name: str, lo: int, hi: int) -> int:
    """A JSON integer in ``[lo, hi]`` (HDF5 keeps these as int64; a float, a bool or 1e300 is damage)."""
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{name} is {v!r}, not an integer in [{lo}, {hi}]")
    return v


@dataclass
class Manifest:
    uuid: str
    schema_json: str
    actors_json: str
    window: int
    retain: int | None
    created: str
    metadata_json: str
    chunk_bytes: int
    session: dict = field(default_factory=lambda: {"state": "closed"})
    closed_record: str = ""  # the record JSON of the last clean close ("" before any)

    def identity(self) -> dict:
        """What the commit record repeats, so the store can be read (and the manifest rebuilt) without it."""
        return {"schema": self.schema_json, "actors": self.actors_json, "window": self.window, "retain": self.retain,
                "created": self.created, "metadata": self.metadata_json, "chunk_bytes": self.chunk_bytes}

    @classmethod
    def from_record(cls, rec: CommitRecord, path: str) -> "Manifest":
        i = rec.identity
        try:
            window = _whole(i["window"], "window", 1, 1 << 40)
            m = cls(rec.uuid, str(i["schema"]), str(i["actors"]), window,
                    None if i["retain"] is None else _whole(i["retain"], "retain", window, 1 << 62), str(i["created"]),
                    str(i["metadata"]), _whole(i["chunk_bytes"], "chunk_bytes", 0, 1 << 40),
                    {"state": "open" if rec.writer.get("state") == "open" else "closed"},
                    rec.to_json() if rec.writer.get("state") != "open" else "")
            Schema.from_json(m.schema_json)
        except (KeyError, TypeError, ValueError) as e:
            raise DamagedStoreError(f"{path}: the commit record's copy of the store's identity is damaged ({e})") from None
        return m

    def closed(self, path: str) -> CommitRecord | None:
        if not self.closed_record:
            return None
        d = loads(self.closed_record, f"{path}: the manifest's closed record")
        return CommitRecord.from_json(d, f"{path} (its last clean close)")


def check_regular(path: str) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise StoreNotFoundError(f"no store at {path}: the file does not exist") from None
    if stat.S_ISDIR(st.st_mode):
        raise NotAStoreError(f"{path} is a directory, not a replaystore file")
    if not stat.S_ISREG(st.st_mode):
        raise NotAStoreError(f"{path} is not a regular file (mode {stat.filemode(st.st_mode)}), not a replaystore store")
    return st


def read_version(path: str) -> tuple[int, h5py.File]:
    """Open the HDF5 file at ``path`` read-only and return its replaystore format version and the file."""
    st = check_regular(path)
    if not h5py.is_hdf5(path):
        raise NotAStoreError(
            f"{path} is not an HDF5 file ({st.st_size} bytes" + (", empty" if st.st_size == 0 else "")
            + "); a replaystore store is an HDF5 file made by ReplayStore.create, or the file was truncated "
            "before its header was written")
    try:
        try:
            f = h5py.File(path, "r")
        except OSError as e:  # another handle holds it with other locking flags: the manifest is never
            if "lock" not in str(e).lower():  # written in place, so reading it unlocked is safe
                raise
            f = h5py.File(path, "r", locking=False)
    except OSError as e:
        msg = str(e)
        if "truncat" in msg.lower() or "eof" in msg.lower() or "signature" in msg.lower():
            raise TruncatedStoreError(f"{path} could not be read as HDF5: it looks truncated ({msg})") from None
        raise NotAStoreError(f"{path} could not be opened as a replaystore store: {msg}") from None
    try:
        fmt = f.attrs.get("format")
        if fmt != FORMAT_NAME:
            raise NotAStoreError(f"{path} is an HDF5 file but not a replaystore store (root attribute 'format' "
                                 f"is {fmt!r}, expected {FORMAT_NAME!r})")
        version = f.attrs.get("format_version")
        try:
            version = int(version)
        except (TypeError, ValueError):
            pass
        if version not in READ_ONLY_VERSIONS:
            check_version(version, path)
        return version, f
    except StoreError:
        f.close()
        raise
    except Exception as e:  # h5py reading damaged attributes: KeyError, OSError, JSON...
        f.close()
        raise DamagedStoreError(f"{path}: its root attributes are damaged ({type(e).__name__}: {e})") from None
    except BaseException:
        f.close()
        raise


def read_manifest(f: h5py.File, path: str) -> Manifest:
    """The manifest of an open format-2 file (closed by the caller)."""
    a = f.attrs
    try:
        retain = int(a["retain"])
        m = Manifest(str(a["uuid"]), str(a["schema"]), str(a["actors"]), int(a["window"]),
                     None if retain < 0 else retain, str(a["created"]), str(a["metadata"]), int(a["chunk_bytes"]),
                     loads(a["session"], "its session"), str(a.get("closed_record", "")))
        if not isinstance(m.session, dict):
            raise ValueError("session is not a mapping")
        Schema.from_json(m.schema_json)
        return m
    except Exception as e:
        raise DamagedStoreError(f"{path}: the manifest's attributes are damaged ({type(e).__name__}: {e})") from None


def write_manifest(path: str, m: Manifest, tables: dict[str, tuple], fsync: bool) -> None:
    """Write the manifest for ``tables`` (name -> (schema, segment rows, first segment, committed rows,
    compacted segments))
    beside ``path`` and rename it over ``path``. Its virtual datasets have the committed length."""
    tmp = f"{path}.manifest.tmp"
    folder = os.path.basename(segment_dir(path))
    with replacing(tmp, path, fsync, f"writing the manifest {path}"):
        with hdf5_file(tmp) as f:
            a = f.attrs
            a["format"] = FORMAT_NAME
            a["format_version"] = FORMAT_VERSION
            a["uuid"] = m.uuid
            a["schema"] = m.schema_json
            a["actors"] = m.actors_json
            a["window"] = m.window
            a["retain"] = -1 if m.retain is None else m.retain
            a["created"] = m.created
            a["metadata"] = m.metadata_json
            a["chunk_bytes"] = m.chunk_bytes
            a["session"] = json.dumps(m.session)
            a["closed_record"] = m.closed_record
            a["written"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            a["note"] = ("rows live in the segment files of the folder beside this file; the virtual datasets "
                         "here span them. Rows past the committed count (see the .commit record) are unwritten")
            for name, (schema, seg_rows, first, rows, compacted) in tables.items():
                g = f.require_group(group_path(name))
                g.attrs["schema"] = schema.to_json()
                g.attrs["segment_rows"] = seg_rows
                g.attrs["first_row"] = first * seg_rows  # rows before it were deleted by retention (read as 0)
                for c in schema:
                    if not c.row_bytes:
                        continue
                    layout = h5py.VirtualLayout(shape=(rows, *c.shape), dtype=c.dtype)
                    for k in range(first, -(-rows // seg_rows)):
                        n = min(seg_rows, rows - k * seg_rows)
                        file = compact_name(name, k) if k in compacted else segment_name(name, k)
                        src = h5py.VirtualSource(f"{folder}/{file}", c.name,
                                                 shape=(seg_rows, *c.shape), dtype=c.dtype)
                        layout[k * seg_rows:k * seg_rows + n] = src if n == seg_rows else src[:n]  # (slicing copies)
                    g.create_virtual_dataset(c.name, layout, fillvalue=0)
