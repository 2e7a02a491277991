"""Tables as readers see them: committed rows read or gathered from mapped bytes, never via HDF5.

``SegmentedTable`` (format 2) maps each segment file once and shares the mappings across
refreshes (a segment's bytes never move); once a table has served a few batches over several
segments, it also places each column's segments side by side in one address range
(``SegmentSpans``), so such a batch is one ``take`` per column, in any row order. ``MappedTable`` reads a format-1 file's chunks.
Both check the files before touching mapped pages: a file that shrank under a reader raises
``TruncatedStoreError`` instead of killing the process with SIGBUS.
"""

from __future__ import annotations

import os
import stat

import numpy as np

from ..format._format import compact_name, segment_dir, segment_name
from ..files._mapped import ColumnMap, MappedFile, SegmentSpans
from ..files._watch import GATE
from ..format._record import TableRecord
from ..format._schema import Schema
from ..format._segment import SegmentMap, identity_bytes
from ..errors import ChecksumError, ClosedStoreError, DamagedStoreError, RowsDeletedError, TruncatedStoreError


# Up to this many runs of one segment in a batch, the gather copies run by run into the output;
# beyond it, per segment with a scatter (many short runs cost a numpy call per run and column).
_MAX_RUNS = 64
# The key, in a table's shared segment cache (segment index -> SegmentMap), of its SegmentSpans:
# the cache outlives each view (one per refresh), and so must the spans. Never a segment index.
_SPANS = -1
# Spans are made once a table has served this many batches over several segments: the first
# batches of a reopened store go through the segments' own mappings, whose pages the kernel maps
# 2 MiB at a time, where a new range for each small column takes 4 KiB pages (a fresh process's
# first 256-row batch of a 1M-row store: 461 page faults against 980, 2.5 against 5-7 ms).
_SPANS_AFTER = 16


class _SpansPending:
    """What the cache holds at ``_SPANS`` until spans are made: the multi-segment batches so far."""

    __slots__ = ("count",)

    def __init__(self):
        self.count = 0

    def close(self) -> None:
        pass


def _names(schema: Schema, columns, where: str, table: str) -> list[str]:
    names = list(schema.names) if columns is None else ([columns] if isinstance(columns, str) else list(columns))
    unknown = [c for c in names if c not in schema]
    if unknown:
        raise KeyError(f"{where}: unknown column(s) {unknown}; {table!r} has {list(schema.names)}")
    return names


class SegmentedTable:
    """The committed rows of one format-2 table, across its segment files."""

    def __init__(self, store_path: str, store_uuid: str, name: str, rec: TableRecord, cache: dict,
                 frozen: bool = False):
        self.name = name
        self.rec = rec
        self.schema = Schema.from_json(rec.schema_json)
        self.rows = rec.rows
        self.first_row = rec.first_row
        self.seg_rows = rec.segment_rows
        self.shift = rec.segment_rows.bit_length() - 1
        self._folder = segment_dir(store_path)
        self._uuid = store_uuid
        self._cache = cache  # segment index -> SegmentMap, shared with the previous view of this table
        self._frozen = frozen  # the writer closed: no committed byte of any segment may change
        self._compacted = set(rec.compacted)
        self._cols = {c.name: (rec.offsets[c.name], (c.dtype, c.shape, rec.segment_rows))
                      for c in self.schema if c.row_bytes}
        self._plans: dict = {}  # columns asked -> what gather needs of them (see _plan)
        self._span_cols = (None, None, None, None)  # the last spans used, its columns' arrays and strides
        self._spannable = SegmentSpans.usable(self._cols, rec.segment_rows)
        # every committed row in one segment: a batch needs no look at which segments it touches
        last = (self.rows - 1) >> self.shift
        self._only = last if self.rows > self.first_row and self.first_row >> self.shift == last else None

    def segment(self, k: int) -> SegmentMap:
        s = self._cache.get(k)
        if k in self._compacted:
            if s is None:
                from ._archive import CompactSegment

                s = self._cache[k] = CompactSegment(os.path.join(self._folder, compact_name(self.name, k)),
                                                    identity_bytes(self._uuid, self.name, k), self.schema,
                                                    self.seg_rows)
            return s
        if s is None:
            s = SegmentMap(os.path.join(self._folder, segment_name(self.name, k)),
                           identity_bytes(self._uuid, self.name, k), self.rec.identity, self.rec.file_bytes, self._cols)
            self._cache[k] = s
        if s.sealed_mtime is None and (self._frozen or (k + 1) * self.seg_rows <= self.rows):
            s.seal()  # full and checksummed, or its writer closed: a change to it from now on is suspect
        return s

    def _checked(self, k: int, polled: bool = False) -> SegmentMap:
        """Segment ``k``, checked before its pages are touched: not shrunk, and if it was modified
        since it was sealed (a backup copied over it?), its committed rows still match their checksums.
        A sealed segment is checked again only when the kernel reported a change to it since its
        last check (``files/_watch.GATE``, polled here unless the caller ``polled`` for a batch)."""
        if not polled:
            GATE.poll()
        s = self.segment(k)
        stamp = GATE.stamps.get(s.wd)  # taken before the check: a change during it shows next time
        if stamp is not None and stamp == s.seen:
            return s
        if stamp is None and s.wd is not None:  # its watch was lost (a forked child, a dropped watch)
            GATE.unwatch(s.wd)
            s.wd = GATE.watch(s.fd)
            stamp = GATE.stamps.get(s.wd)
        try:
            intact = s.check()
        except OSError:
            if s.fd < 0:  # closed by another thread (a writer closed under a sampler): fstat(-1) is EBADF
                raise ClosedStoreError(f"gather: the store {self._folder} was closed while reading it") from None
            raise
        if not intact:
            from ..format._sums import segment_findings

            bad = segment_findings(self._folder, self._uuid, self.name, self.rec, k, s)
            if bad:
                raise ChecksumError(
                    f"segment {s.path} changed after its rows were committed, and rows {bad[0]['rows']} of column "
                    f"{bad[0]['column']!r} no longer match their checksums: was a file copied over it? Reopen the "
                    "store, and run `replaystore verify` on it")
            # still intact: a new writer appended to it (or its mtime was touched)
            s.sealed_mtime = None if (k + 1) * self.seg_rows > self.rows else os.fstat(s.fd).st_mtime_ns
        s.seen = stamp
        return s

    def check_files(self, checked: set) -> None:
        """Every segment file with committed rows exists and is as long as it was made (one stat each,
        for segments not checked before), so a truncated copy is refused at open, not at a read."""
        for k in range(self.rec.first_segment, ((self.rows - 1) >> self.shift) + 1):
            if k in checked or k in self._compacted:
                continue
            path = os.path.join(self._folder, segment_name(self.name, k))
            try:
                st = os.lstat(path)  # not through a symlink: its target lies outside the store
            except FileNotFoundError:
                raise TruncatedStoreError(f"segment {path} is missing: the store's commit record lists it. Restore "
                                          "the store's .d folder from a backup (all of it)") from None
            if not stat.S_ISREG(st.st_mode):
                raise DamagedStoreError(f"segment {path} is not a regular file (mode {stat.filemode(st.st_mode)}): a "
                                        "store keeps only regular files in its folder; replace it by the file itself")
            size = st.st_size
            if size < self.rec.file_bytes:
                raise TruncatedStoreError(f"segment {path} is {size} bytes, shorter than the {self.rec.file_bytes} it "
                                          "was created with: it was truncated or replaced")
            checked.add(k)

    def forget(self, k: int) -> None:
        s = self._cache.pop(k, None)
        if s is not None:
            s.close()
        self._drop_spans(lambda j: j == k)

    def forget_before(self, first_segment: int) -> None:
        for k in [k for k in self._cache if 0 <= k < first_segment]:
            self._cache.pop(k).close()
        self._drop_spans(lambda j: j < first_segment)

    def _drop_spans(self, gone) -> None:
        """Let go of the spans if they hold a segment that is going (a new one is made when needed):
        slots are never emptied in place, a reader in another thread may be copying from them."""
        sp = self._cache.get(_SPANS)
        if isinstance(sp, SegmentSpans) and any(seg is not None and gone(sp.first + i) for i, seg in enumerate(sp.held)):
            self._cache.pop(_SPANS).close()

    def _spans(self, ks, segs: dict) -> SegmentSpans | None:
        """The table's spans with segments ``ks`` placed in them, or None where they cannot serve
        (a compacted segment, or columns whose bytes do not fill whole pages)."""
        if not self._spannable:
            return None
        sp = self._cache.get(_SPANS)
        if type(sp) is SegmentSpans:  # the common case: every segment asked is in place
            held, first = sp.held, sp.first
            try:
                for k in ks:
                    if k < first or held[k - first] is not segs[k]:
                        break
                else:
                    return sp
            except IndexError:
                pass
        elif sp is None or type(sp) is _SpansPending:
            if sp is None:
                sp = self._cache[_SPANS] = _SpansPending()
            sp.count += 1
            if sp.count <= _SPANS_AFTER:
                return None
            sp = None
        if self._compacted and any(k in self._compacted for k in ks):
            return None
        lo, hi = min(ks), max(ks)
        if sp is None or not (sp.holds(lo) and sp.holds(hi)) or any(
                sp.held[k - sp.first] not in (None, segs[k]) for k in ks):
            self._cache.pop(_SPANS, _SpansPending()).close()
            first = min(lo, max(self.rec.first_segment, 0))
            last = max(hi, (self.rows - 1) >> self.shift)
            slots = max(16, 2 * (last - first + 1))
            try:
                sp = SegmentSpans(self._cols, self.seg_rows, first, slots)
            except (OSError, ValueError):  # too much address space with 2 MiB gaps: end to end, or not at all
                try:
                    sp = SegmentSpans(self._cols, self.seg_rows, first, slots, gaps=False)
                except (OSError, ValueError):
                    self._spannable = False
                    return None
            self._cache[_SPANS] = sp
        for k in ks:
            seg = segs[k]
            if sp.held[k - sp.first] is seg:
                continue
            fd = seg.fd
            try:
                if fd < 0:
                    raise OSError(9, "closed")
                sp.place(k, fd)
            except OSError as e:
                self._cache.pop(_SPANS, None)
                if seg.fd < 0 or not seg.arrays:
                    raise ClosedStoreError(f"gather: the store {self._folder} was closed while reading it") from None
                raise DamagedStoreError(f"gather: segment {seg.path} could not be mapped ({e})") from None
            if seg.fd != fd or not seg.arrays:  # closed (and its descriptor maybe reused) meanwhile
                self._cache.pop(_SPANS, None)
                raise ClosedStoreError(f"gather: the store {self._folder} was closed while reading it")
            sp.held[k - sp.first] = seg
        return sp

    def _deleted(self, where: str, lo: int) -> RowsDeletedError:
        return RowsDeletedError(f"{where}: row {lo} of {self.name!r} was deleted by retention; rows "
                                f"[{self.first_row}, {self.rows}) are kept (the store was created with retain=...)")

    def read(self, columns, lo: int, hi: int, where: str = "read") -> dict[str, np.ndarray]:
        names = _names(self.schema, columns, where, self.name)
        if lo < self.first_row and hi > lo:
            raise self._deleted(where, lo)
        out = {c: np.empty((hi - lo, *self.schema[c].shape), self.schema[c].dtype) for c in names}
        r = lo
        while r < hi:
            k = r >> self.shift
            stop = min(hi, (k + 1) << self.shift)
            seg = self._checked(k)
            base = k << self.shift
            for c in names:
                if c in seg.arrays:
                    out[c][r - lo:stop - lo] = seg.arrays[c][r - base:stop - base]
            r = stop
        return out

    def _plan(self, columns, where: str) -> tuple:
        """``(names, [(name, row shape, dtype)], names with bytes)`` for the columns asked, made
        once: a sampler asks for the same columns at every batch (the per-call name checks and
        schema look-ups were ~5 us of a 32-row image batch)."""
        key = columns if columns is None or isinstance(columns, str) else tuple(columns)
        plan = self._plans.get(key)
        if plan is None:
            names = _names(self.schema, columns, where, self.name)
            plan = (names, [(c, self.schema[c].shape, self.schema[c].dtype) for c in names],
                    [c for c in names if self.schema[c].row_bytes])
            if len(self._plans) < 64:  # a caller cycling through column lists keeps its checks per call
                self._plans[key] = plan
        return plan

    def gather(self, columns, rows: np.ndarray, where: str = "gather", out=None,
               bounds: tuple[int, int] | None = None, polled: bool = False) -> dict[str, np.ndarray]:
        """``bounds``: ``(min, max)`` of ``rows`` where the caller knows them (saves finding the
        segments a batch touches: 3.5 us for 256 rows). ``polled``: the caller polled
        ``files/_watch.GATE`` for this batch (a sampler does, before it looks at the record)."""
        names, alloc, stored = self._plan(columns, where)
        n = len(rows)
        if out is not None:
            if n:
                self.take_into(stored, [out[c] for c in stored], rows, where, bounds, polled)
            return out
        if not n or len(stored) != len(names):  # zero-width columns: allocated, nothing to copy
            out = {c: np.empty((n, *shape), dtype) for c, shape, dtype in alloc}
            if n:
                self.take_into(stored, [out[c] for c in stored], rows, where, bounds, polled)
            return out
        # new arrays made by take itself: 0.3 us a column less than np.empty and take(out=)
        return dict(zip(stored, self.take_into(stored, [None] * len(stored), rows, where, bounds, polled)))

    def _take_one(self, k: int, stored: list, dst: list, rows: np.ndarray, where: str, polled: bool) -> list:
        """``take_into`` for a batch whose rows all lie in segment ``k``: one take per column."""
        seg = self._checked(k, polled)
        local = rows - (k << self.shift) if k else rows
        arrays = self._open_arrays(seg, stored, where)
        return [arrays[c].take(local, 0, d, "clip") for c, d in zip(stored, dst)]

    def take_into(self, stored: list, dst: list, rows: np.ndarray, where: str = "gather",
                  bounds: tuple[int, int] | None = None, polled: bool = False) -> list:
        """Rows ``rows`` (committed, not empty) of the columns ``stored`` (each with bytes: see
        ``_plan``) copied into the arrays ``dst``, one per column, in order; an entry None asks for
        a new array. Returns the arrays, one per column."""
        n = len(rows)
        if self.first_row and (bounds[0] if bounds else int(rows.min())) < self.first_row:
            raise self._deleted(where, int(rows.min()))
        shift = self.shift
        if self._only is not None or (bounds is not None and bounds[0] >> shift == bounds[1] >> shift):
            k0 = self._only if self._only is not None else bounds[0] >> shift
            return self._take_one(k0, stored, dst, rows, where, polled)
        # np.take rather than fancy indexing: it copies whole rows per index and ran 1.6 ms against
        # 2.6 ms for fancy indexing (10 columns, 8192 rows of one segment, mapped, warm). mode="clip":
        # with out= the default mode="raise" copies through a buffer (so a bad index leaves out
        # untouched): 256 rows of 28 KB took 0.92 ms against 0.25 ms unbuffered, 3.7x. The rows were
        # checked by the caller, and local ids lie in [0, segment rows): clip never changes one.
        # The method, not np.take: its wrapper costs ~1 us a call, and a batch of 32 wide rows
        # over 4 segments makes 40 calls (55 -> ~20 us of overhead around 80 us of copying).
        seg_of = rows >> shift
        # the segments the batch touches (not np.unique: its first call imports numpy.ma, 17 ms)
        if bounds is not None and (bounds[1] >> shift) - (bounds[0] >> shift) < 4:
            ks = list(range(bounds[0] >> shift, (bounds[1] >> shift) + 1))  # any untouched one is checked too
        elif n <= 384:  # a set of the ids: 0.7 us for 32 rows, 3.5 for 256; min, max and bincount: 5 us
            ks = list(set(seg_of.tolist()))
        else:
            k0, k1 = int(seg_of.min()), int(seg_of.max())
            ks = [k0] if k0 == k1 else (np.flatnonzero(np.bincount(seg_of - k0)) + k0).tolist()
        if len(ks) == 1:  # one segment: one take per column
            k0 = ks[0]
            return self._take_one(k0, stored, dst, rows, where, polled)
        # each segment checked once per batch, before a page of it is touched
        if not polled:
            GATE.poll()
        segs = {k: self._checked(k, True) for k in ks}
        sp = self._spans(ks, segs)
        if sp is not None:  # one address range per column: one take per column, in any row order
            arrays = sp.arrays
            if not arrays and stored:
                raise ClosedStoreError(f"{where}: the store {self._folder} was closed while reading it")
            got = self._span_cols
            if got[0] is not sp or got[1] != stored:  # the same spans and columns batch after batch
                strides = sp.stride
                order = sorted({strides[c] for c in stored})
                got = self._span_cols = (sp, list(stored), order,
                                         [(arrays[c], order.index(strides[c])) for c in stored])
            index = [sp.index(rows, s) for s in got[2]]
            return [a.take(index[i], 0, d, "clip") for (a, i), d in zip(got[3], dst)]
        if any(d is None for d in dst):  # the paths below copy into slices of the output
            first = self._open_arrays(segs[ks[0]], stored, where)
            dst = [np.empty((n, *first[c].shape[1:]), first[c].dtype) if d is None else d for c, d in zip(stored, dst)]
        # Runs of consecutive batch positions whose rows lie in one segment. A sorted batch (the
        # sampler draws sorted rows) has one run per segment it touches.
        cuts = np.flatnonzero(seg_of[1:] != seg_of[:-1])
        if len(cuts) < _MAX_RUNS:
            # Each run's rows go straight to their slice of the output: one pass, no scatter
            # (measured at 1M rows over 8 segments: see BENCHMARKS.md, Sampler).
            starts = [0, *(cuts + 1).tolist()]
            for a, z in zip(starts, starts[1:] + [n]):
                k = int(seg_of[a])
                arrays = self._open_arrays(segs[k], stored, where)
                local = rows[a:z] - (k << shift)
                for c, d in zip(stored, dst):
                    arrays[c].take(local, 0, d[a:z], "clip")
            return dst
        # Rows in no useful order: per segment, gather its rows and scatter them into place (a mask
        # per segment is cheaper than sorting the batch: segment ids are a short run of integers)
        for k, seg in segs.items():
            sel = np.flatnonzero(seg_of == k)
            local = rows[sel] - (k << shift)
            arrays = self._open_arrays(seg, stored, where)
            for c, d in zip(stored, dst):
                d[sel] = np.take(arrays[c], local, axis=0)
        return dst

    def _open_arrays(self, seg, names, where: str) -> dict:
        """The segment's column arrays, taken once (they stay valid: each holds its mapping), or
        ClosedStoreError if it was closed meanwhile (a writer closed by another thread): a column
        left unread would return uninitialized memory as rows (seen in a threads test)."""
        arrays = seg.arrays
        if not arrays and names:
            raise ClosedStoreError(f"{where}: the store {self._folder} was closed while reading it")
        return arrays

    def close(self) -> None:
        for s in self._cache.values():
            s.close()
        self._cache.clear()


class MappedTable:
    """The committed rows of one format-1 table: chunks of one HDF5 file, mapped."""

    def __init__(self, name: str, schema: Schema, rows: int, maps: dict[str, ColumnMap], mf: MappedFile):
        self.name, self.schema, self.rows, self.first_row = name, schema, rows, 0
        self._maps, self._mf = maps, mf

    def read(self, columns, lo: int, hi: int, where: str = "read") -> dict[str, np.ndarray]:
        names = _names(self.schema, columns, where, self.name)
        self._mf.check()
        return {c: self._maps[c].read(self._mf, lo, hi) if c in self._maps else
                np.empty((hi - lo, *self.schema[c].shape), self.schema[c].dtype) for c in names}

    def gather(self, columns, rows: np.ndarray, where: str = "gather", out=None,
               bounds: tuple[int, int] | None = None, polled: bool = False) -> dict[str, np.ndarray]:
        names = _names(self.schema, columns, where, self.name)
        self._mf.check()
        got = {c: self._maps[c].gather(self._mf, rows) if c in self._maps else
               np.empty((len(rows), *self.schema[c].shape), self.schema[c].dtype) for c in names}
        if out is None:
            return got
        for c in names:
            out[c][...] = got[c]
        return out

    def close(self) -> None:
        self._mf.close()
