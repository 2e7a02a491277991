"""The commit record: ``<store>.commit``, a small JSON file replaced atomically at every commit.

It is the only state a format-2 store changes after its segments exist. It holds what a reader
needs without opening HDF5: each table's committed rows, segment size, column byte offsets,
the checksums of the rows in the last, still open segment, per-segment actor counts, the
writer's state, checkpoints and small extra state. The writer replaces it only after the rows it
counts are written (and, with ``fsync=True``, synced), so every row it counts is on disk.

Reading it is defensive: a FIFO or device at its path, bytes that are not UTF-8, JSON that does
not parse or fields of the wrong type all raise ``DamagedStoreError``, never a raw error or a hang.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from dataclasses import dataclass, field

from ._format import FORMAT_NAME, FORMAT_VERSION, N_CODES
from .errors import DamagedStoreError, FormatVersionError, StoreWriteError

SUFFIX = ".commit"
MAX_RECORD_BYTES = 256 * 1024 * 1024


def record_path(path) -> str:
    return os.fspath(path) + SUFFIX


def read_regular_file(path: str, what: str, limit: int = MAX_RECORD_BYTES) -> tuple[bytes, os.stat_result] | None:
    """The bytes of a regular file, or None if absent. Never blocks: a FIFO is opened non-blocking
    and refused, like any other special file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DamagedStoreError(f"{what} {path} cannot be opened ({e.strerror}, errno {e.errno})") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DamagedStoreError(f"{what} {path} is not a regular file (mode {stat.filemode(st.st_mode)}); "
                                    "remove it: a store keeps only regular files there")
        if st.st_size > limit:
            raise DamagedStoreError(f"{what} {path} is {st.st_size} bytes, more than any {what} ({limit})")
        chunks, left = [], st.st_size
        while True:
            b = os.read(fd, max(left, 65536))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks), st
    finally:
        os.close(fd)


def parse_json(data: bytes, what: str, path: str):
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DamagedStoreError(f"{what} {path} is damaged: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise DamagedStoreError(f"{what} {path} is damaged: not valid JSON ({e.msg} at byte {e.pos})") from None


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


def _int(v, name: str, lo: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ValueError(f"{name}={v!r}: expected an integer >= {lo}")
    return v


def _counts(v, name: str) -> list[int]:
    if not isinstance(v, list) or len(v) > N_CODES:
        raise ValueError(f"{name}: expected a list of at most {N_CODES} counts")
    return [_int(x, name) for x in v]


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
    tail_sums: dict[str, list[int]]  # crc32 of each block of the segment holding row ``rows`` (not yet sealed)
    segment_counts: dict[int, list[int]] = field(default_factory=dict)  # actor counts per retained segment
    compacted: list[int] = field(default_factory=list)  # segments rewritten compressed (``compact``)

    @property
    def first_row(self) -> int:
        return self.first_segment * self.segment_rows

    def to_json(self) -> dict:
        return {"schema": self.schema_json, "rows": self.rows, "segment_rows": self.segment_rows,
                "first_segment": self.first_segment, "offsets": self.offsets, "identity": self.identity,
                "file_bytes": self.file_bytes, "check_rows": self.check_rows, "tail_sums": self.tail_sums,
                "segment_counts": {str(k): v for k, v in self.segment_counts.items()}, "compacted": self.compacted}

    @classmethod
    def from_json(cls, d: dict) -> "TableRecord":
        seg = _int(d["segment_rows"], "segment_rows", 1)
        if seg & (seg - 1):
            raise ValueError(f"segment_rows={seg}: expected a power of two")
        t = cls(str(d["schema"]), _int(d["rows"], "rows"), seg, _int(d["first_segment"], "first_segment"),
                {str(k): _int(v, "offset") for k, v in d["offsets"].items()}, _int(d["identity"], "identity"),
                _int(d["file_bytes"], "file_bytes"), {str(k): _int(v, "check_rows", 1) for k, v in d["check_rows"].items()},
                {str(k): [_int(x, "checksum") for x in v] for k, v in d["tail_sums"].items()},
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
        for c, block in t.check_rows.items():
            if len(t.tail_sums.get(c, [])) != -(-local // block) or c not in t.offsets:
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
            r = cls(uuid=str(d["uuid"]), seq=_int(d["seq"], "seq"),
                    tables={str(k): TableRecord.from_json(t) for k, t in d["tables"].items()},
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


def read_record(path) -> tuple[CommitRecord, tuple] | None:
    """The record beside ``path`` and its signature (to tell whether it changed), or None if absent."""
    p = record_path(path)
    got = read_regular_file(p, "commit record")
    if got is None:
        return None
    data, st = got
    return CommitRecord.from_json(parse_json(data, "commit record", p), f"commit record {p}"), _signature(st, data)


# A record's signature: (inode, mtime, size) from one fstat, plus its first bytes, which hold
# "seq". File timestamps tick with the kernel's coarse clock and inode numbers are reused at
# once, so two commits close together can share inode, mtime and size; the seq cannot.
_HEAD = 80


def _signature(st: os.stat_result, head: bytes) -> tuple:
    return (st.st_ino, st.st_mtime_ns, st.st_size, head[:_HEAD])


def record_signature(path) -> tuple | None:
    """The current record's signature: one open, fstat and short read (a few microseconds)."""
    try:
        fd = os.open(record_path(path), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return _signature(os.fstat(fd), os.read(fd, _HEAD))
    except OSError:
        return None
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes, fsync: bool, what: str) -> None:
    """Write to a temporary file and rename it over ``path``: readers see the old or the new one."""
    tmp = f"{path}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise write_error(f"writing the {what} {path}", e) from e


def fsync_dir(path: str) -> None:
    dfd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_error(doing: str, e: BaseException) -> StoreWriteError:
    no = getattr(e, "errno", None)
    hint = {28: "the disk is full", 27: "the file size limit (ulimit -f) was reached",
            122: "the disk quota is exceeded"}.get(no, "an I/O error")
    return StoreWriteError(no, f"{doing} failed: {hint} ({e}). Rows accepted so far stay staged: free space and "
                               "call commit() again, or close() to keep what is committed")


def write_record(path, record: CommitRecord, fsync: bool) -> None:
    write_atomic(record_path(path), record.to_json().encode("utf-8"), fsync, "commit record")


def this_writer(state: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "state": state}


def writer_alive(writer: dict) -> bool:
    """Whether the writer named in a record is still running (same host only; else assume alive)."""
    if writer.get("state") != "open":
        return False
    if writer.get("host") != socket.gethostname():
        return True
    try:
        pid = int(writer.get("pid", -1))
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    # A zombie (killed, not yet reaped by its parent) still answers kill(0): look at its state.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return True
