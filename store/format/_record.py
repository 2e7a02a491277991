"""The commit record: ``<store>.commit``, the only state a format-2 store changes after its
segments exist.

It holds what a reader needs without opening HDF5: each table's committed rows, segment size,
column byte offsets, the checksums of the rows in the last, still open segment, per-segment
actor counts, the writer's state, checkpoints and small extra state, as JSON. The file has two
slots; each commit writes the slot that does not hold the current record (seq, length, crc32,
JSON), with one ``pwrite`` (and ``fsync`` when asked). A reader takes the valid slot with the
higher seq, so a write torn by a kill, or read half-done, leaves the previous commit in force:
atomic without a rename per commit (renaming over a file cost about 1.3 ms on this ext4, which
writes the new file back before the rename; a slot write costs a few microseconds).
The writer updates it only after the rows it counts are written (and synced, with ``fsync=True``).

Reading it is defensive: a FIFO or device at its path, bytes that are not UTF-8, JSON that does
not parse or fields of the wrong type all raise ``DamagedStoreError``, never a raw error or a hang.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import struct
import uuid as _uuid
import zlib
from dataclasses import dataclass, field

from ._format import FORMAT_NAME, FORMAT_VERSION, N_CODES
# re-exported: the store's other modules take these from here
from ..files._fileio import fsync_dir, layer, read_regular_file, this_writer, write_atomic, write_error, writer_alive
from ..files._untrusted import check_name, loads
from ..errors import DamagedStoreError, FormatVersionError

__all__ = ["CommitRecord", "TableRecord", "RecordWriter", "check_version", "fsync_dir", "read_record",
           "read_record_json", "read_regular_file", "record_path", "record_signature", "this_writer", "write_atomic",
           "write_error", "write_record", "write_record_json", "writer_alive"]

SUFFIX = ".commit"


def record_path(path) -> str:
    return os.fspath(path) + SUFFIX


def check_version(version, where: str, newer_only: bool = False) -> None:
    if newer_only and not (isinstance(version, int) and version > FORMAT_VERSION):
        if version != FORMAT_VERSION:
            raise DamagedStoreError(f"{where} says format version {version!r}, not {FORMAT_VERSION}: damaged or foreign")
        return
    if version != FORMAT_VERSION:
        raise FormatVersionError(
            f"{where} was written in replaystore format version {version!r}; this replaystore reads "
            f"version {FORMAT_VERSION} (and opens version 1 read-only). Open it with a replaystore release "
            f"that knows version {version!r}."
        )


MAX_INT = (1 << 62) - 1  # every count, row and offset the store keeps fits int64 with room to add


def _int(v, name: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= MAX_INT:
        raise ValueError(f"{name}={v!r}: expected an integer in [{lo}, {MAX_INT}]")
    return v


def _uuid_text(v) -> str:
    if not isinstance(v, str):
        raise TypeError(f"uuid={v!r}: expected a uuid string")
    try:
        _uuid.UUID(v)  # segment identities are made from it
    except ValueError:
        raise ValueError(f"uuid={v!r:.60}: not a uuid") from None
    return v


def _counts(v, name: str) -> list[int]:
    if not isinstance(v, list) or len(v) > N_CODES:
        raise ValueError(f"{name}: expected a list of at most {N_CODES} counts")
    return [_int(x, name) for x in v]


@functools.lru_cache(maxsize=64)
def _legacy_kinds(schema_json: str, columns: tuple) -> tuple:
    from ._checksum import legacy_kind
    from ._schema import Schema

    schema = Schema.from_json(schema_json)
    return tuple((c, legacy_kind(schema[c])) for c in columns)


@dataclass
class TableRecord:
    """One table's committed state (format 2)."""

    schema_json: str
    rows: int
    segment_rows: int
    first_segment: int
    offsets: dict[str, int]          # byte offset of each stored column's dataset in every segment
    identity: int                    # byte offset of the segment's 32 identity bytes
    file_bytes: int                  # a segment file's length
    check_rows: dict[str, int]       # rows per checksummed block, per column
    tail_sums: dict[str, list]       # checksum of each block of the segment holding row ``rows`` (not yet sealed)
    segment_counts: dict[int, list[int]] = field(default_factory=dict)  # actor counts per retained segment
    compacted: list[int] = field(default_factory=list)  # segments rewritten compressed (``compact``)
    hashes: dict[str, str] = field(default_factory=dict)  # checksum kind per column (``_checksum.py``)

    @property
    def first_row(self) -> int:
        return self.first_segment * self.segment_rows

    def to_json(self) -> dict:
        return {"schema": self.schema_json, "rows": self.rows, "segment_rows": self.segment_rows,
                "first_segment": self.first_segment, "offsets": self.offsets, "identity": self.identity,
                "file_bytes": self.file_bytes, "check_rows": self.check_rows, "tail_sums": self.tail_sums,
                "segment_counts": {str(k): v for k, v in self.segment_counts.items()}, "compacted": self.compacted,
                **({"hashes": self.hashes} if self.hashes != self._legacy_hashes() else {})}

    def _legacy_hashes(self) -> dict[str, str]:
        """The kinds of a record that names none (so such stores keep records of the same form)."""
        return dict(_legacy_kinds(self.schema_json, tuple(self.check_rows)))

    @classmethod
    def from_json(cls, d: dict) -> "TableRecord":
        seg = _int(d["segment_rows"], "segment_rows", 1)
        if seg & (seg - 1):
            raise ValueError(f"segment_rows={seg}: expected a power of two")
        t = cls(str(d["schema"]), _int(d["rows"], "rows"), seg, _int(d["first_segment"], "first_segment"),
                {str(k): _int(v, "offset") for k, v in d["offsets"].items()}, _int(d["identity"], "identity"),
                _int(d["file_bytes"], "file_bytes"), {str(k): _int(v, "check_rows", 1) for k, v in d["check_rows"].items()},
                {str(k): list(v) for k, v in d["tail_sums"].items()},
                {int(k): _counts(v, "segment_counts") for k, v in d.get("segment_counts", {}).items()},
                [_int(k, "compacted") for k in d.get("compacted", [])])
        if t.first_row > t.rows:
            raise ValueError(f"first_segment={t.first_segment} starts past the {t.rows} committed rows")
        from ._schema import Schema

        schema = Schema.from_json(t.schema_json)
        if sorted(t.offsets) != sorted(c.name for c in schema if c.row_bytes):
            raise ValueError("its column offsets do not match its schema")
        ends = [t.offsets[c.name] + seg * c.row_bytes for c in schema if c.row_bytes] + [t.identity + 32]
        if max(ends) > t.file_bytes:
            raise ValueError(f"its columns end past the {t.file_bytes} bytes of a segment")
        local = t.rows - ((t.rows >> (seg.bit_length() - 1)) << (seg.bit_length() - 1))
        from ._checksum import fits, valid

        hashes = d.get("hashes")
        if hashes is None:
            t.hashes = t._legacy_hashes()
        elif not isinstance(hashes, dict) or sorted(hashes) != sorted(t.check_rows) or \
                not all(isinstance(v, str) and c in schema and fits(v, schema[c]) for c, v in hashes.items()):
            raise ValueError(f"its checksum kinds {hashes!r} do not name a known kind for each checksummed column")
        else:
            t.hashes = dict(hashes)
        for c, block in t.check_rows.items():
            if c not in t.offsets or not all(valid(t.hashes[c], x) for x in t.tail_sums.get(c, [])):
                raise ValueError(f"its checksums of column {c!r} are not checksums")
            if len(t.tail_sums.get(c, [])) != -(-local // block):
                # the checksums written with the rows say how many rows the last segment holds
                raise ValueError(f"its {t.rows} rows disagree with the checksums of column {c!r}")
        return t


@dataclass
class CommitRecord:
    uuid: str
    seq: int
    tables: dict[str, TableRecord]
    actor_counts: list[int]          # per uint8 code, trailing zeros dropped
    dropped_counts: list[int]        # actor counts of the rows retention deleted
    writer: dict                     # pid, host, state ('open' | 'closed')
    identity: dict = field(default_factory=dict)  # schema, actors, window, retain, metadata, created, chunk_bytes
    recovery: dict | None = None
    checkpoints: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "seq": self.seq, "uuid": self.uuid,
            "tables": {k: t.to_json() for k, t in self.tables.items()},
            "actor_counts": self.actor_counts, "dropped_counts": self.dropped_counts, "writer": self.writer,
            "identity": self.identity,
            "recovery": self.recovery, "checkpoints": self.checkpoints, "extra": self.extra,
        }, allow_nan=False)

    @classmethod
    def from_json(cls, d, where: str) -> "CommitRecord":
        if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
            raise DamagedStoreError(f"{where} is not a replaystore commit record (no 'format': {FORMAT_NAME!r})")
        check_version(d.get("format_version"), where, newer_only=True)
        try:
            r = cls(uuid=_uuid_text(d["uuid"]), seq=_int(d["seq"], "seq"),
                    tables={check_name(k, where): TableRecord.from_json(t) for k, t in d["tables"].items()},
                    actor_counts=_counts(d["actor_counts"], "actor_counts"),
                    dropped_counts=_counts(d.get("dropped_counts", []), "dropped_counts"),
                    writer=dict(d["writer"]), identity=dict(d["identity"]), recovery=d.get("recovery"),
                    checkpoints=list(d.get("checkpoints", [])), extra=dict(d.get("extra", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DamagedStoreError(f"{where} is damaged ({type(e).__name__}: {e}); the manifest's last clean "
                                    "close is used where it can be") from None
        from ._format import TRANSITIONS

        t = r.tables.get(TRANSITIONS)
        if t is None or sum(r.actor_counts) != t.rows:
            raise DamagedStoreError(f"{where} is damaged: its actor counts sum to {sum(r.actor_counts)}, "
                                    f"not to its {t.rows if t else 'missing'} transition rows")
        return r

    @property
    def rows(self) -> int:
        from ._format import TRANSITIONS

        return self.tables[TRANSITIONS].rows


MAGIC = b"RSCOMMIT"
_HEADER = struct.Struct("<8sII")   # magic, layout version, slot size
_SLOT = struct.Struct("<QII")      # seq, payload length, crc32 of the payload
_FIRST = 64                        # slot 0 starts here, slot 1 one slot size later


def _slot_size(n: int) -> int:
    return max(64 * 1024, -(-2 * (n + _SLOT.size) // 4096) * 4096)


def encode_slot(payload: bytes, seq: int) -> bytes:
    return _SLOT.pack(seq, len(payload), zlib.crc32(payload)) + payload


def record_file(payload: bytes, seq: int) -> bytes:
    """A whole record file holding ``payload`` (a record's JSON) in the slot ``seq`` selects."""
    size = _slot_size(len(payload))
    data = bytearray(_FIRST + 2 * size)
    data[:_HEADER.size] = _HEADER.pack(MAGIC, 1, size)
    at = _FIRST + (seq % 2) * size
    body = encode_slot(payload, seq)
    data[at:at + len(body)] = body
    return bytes(data)


def record_json(data: bytes, path: str):
    """The JSON of the newest valid slot of a record file's bytes (for readers and tools)."""
    if len(data) < _FIRST or data[:8] != MAGIC:
        raise DamagedStoreError(f"commit record {path} is damaged: not a replaystore record file (no header)")
    _, layout, size = _HEADER.unpack_from(data)
    if layout != 1 or size < _SLOT.size or len(data) < _FIRST + 2 * size:
        raise DamagedStoreError(f"commit record {path} is damaged: its header says layout {layout}, slots of "
                                f"{size} bytes, in {len(data)} bytes")
    best, problems = None, []
    for k in (0, 1):
        at = _FIRST + k * size
        seq, n, crc = _SLOT.unpack_from(data, at)
        payload = data[at + _SLOT.size:at + _SLOT.size + n]
        if n == 0 and seq == 0 and crc == 0:
            continue  # never written
        if n > size - _SLOT.size or zlib.crc32(payload) != crc:
            problems.append(f"slot {k} is torn or damaged")
            continue
        if best is None or seq > best[0]:
            best = (seq, payload)
    if best is None:
        raise DamagedStoreError(f"commit record {path} is damaged: no valid slot ({'; '.join(problems) or 'empty'})")
    return loads(best[1], f"commit record {path}")


def read_record(path) -> tuple[CommitRecord, tuple] | None:
    """The record beside ``path`` and its signature (to tell whether it changed), or None if absent."""
    p = record_path(path)
    got = read_regular_file(p, "commit record")
    if got is None:
        return None
    data, st = got
    d = record_json(data, p)
    return CommitRecord.from_json(d, f"commit record {p}"), _signature(st, data)


def _signature(st: os.stat_result, data: bytes) -> tuple:
    if len(data) < _FIRST:
        return (st.st_ino, st.st_size, data)
    size = _HEADER.unpack_from(data)[2]
    heads = tuple(data[at:at + _SLOT.size] for at in (_FIRST, _FIRST + size))
    return (st.st_ino, st.st_size, heads)


def record_signature(path) -> tuple | None:
    """The current record's signature: an open, fstat and three short reads (a few microseconds).
    The slot heads hold seq, length and crc, so every commit changes them."""
    try:
        fd = layer().open_read(record_path(path))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        head = os.pread(fd, _FIRST, 0)
        if len(head) < _FIRST or head[:8] != MAGIC:
            return (st.st_ino, st.st_size, head)
        size = _HEADER.unpack_from(head)[2]
        return (st.st_ino, st.st_size, (os.pread(fd, _SLOT.size, _FIRST), os.pread(fd, _SLOT.size, _FIRST + size)))
    except OSError:
        return None
    finally:
        layer().close(fd)


class RecordWriter:
    """The writer's side of the record file: the first commit writes a whole new file (renamed into
    place); later commits write one slot in place. A record outgrowing its slots gets a new file."""

    def __init__(self, path: str):
        self.path = record_path(path)
        self.fd = -1
        self.slot_size = 0
        self.ino = None

    def write(self, record: CommitRecord, fsync: bool) -> None:
        payload = record.to_json().encode("utf-8")
        if self.fd < 0 or len(payload) + _SLOT.size > self.slot_size or self._replaced():
            self._new_file(payload, record.seq, fsync)
            return
        at = _FIRST + (record.seq % 2) * self.slot_size
        files = layer()
        try:
            files.pwrite(self.fd, encode_slot(payload, record.seq), at)
            if fsync:
                files.fsync(self.fd)
        except OSError as e:
            raise write_error(f"writing the commit record {self.path}", e) from e

    def _replaced(self) -> bool:
        # someone put another file at the path (a restored backup): write a whole new one, never into theirs
        try:
            return os.lstat(self.path).st_ino != self.ino
        except OSError:
            return True

    def _new_file(self, payload: bytes, seq: int, fsync: bool) -> None:
        data = record_file(payload, seq)
        write_atomic(self.path, data, fsync, "commit record")
        self.close()
        try:
            self.fd = layer().open_write(self.path)
            self.ino = os.fstat(self.fd).st_ino
        except OSError as e:
            raise write_error(f"opening the commit record {self.path}", e) from e
        self.slot_size = _HEADER.unpack_from(data)[2]

    def close(self) -> None:
        if self.fd >= 0:
            layer().close(self.fd)
            self.fd = -1


def write_record(path, record: CommitRecord, fsync: bool) -> None:
    """Write ``record`` as a whole new record file (at create, and for tools and tests)."""
    write_atomic(record_path(path), record_file(record.to_json().encode("utf-8"), record.seq), fsync, "commit record")


def write_record_json(path, d: dict) -> None:
    """Write a record's JSON as given (tools and tests that edit records)."""
    write_atomic(record_path(path), record_file(json.dumps(d).encode("utf-8"), int(d.get("seq", 0))), False,
                 "commit record")


def read_record_json(path) -> dict:
    """A record's JSON as stored (tools and tests)."""
    p = record_path(path)
    got = read_regular_file(p, "commit record")
    if got is None:
        raise DamagedStoreError(f"no commit record at {p}")
    return record_json(got[0], p)


