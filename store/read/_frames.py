"""Frames once: stacked image observations stored as one frame per step, stacks rebuilt on read.

A ``state`` of 4 stacked 84x84 frames shares three frames with the previous row's ``state`` and
with its own ``next_state``. Storing both stacks costs 8 frames a step where one is new (56 KB
against 7,056 bytes). Here the store keeps:

- a table ``frames`` with one column ``frame`` (one frame per row, the stack's dtype), and
- in the transitions table, for each stacked column ``c``, ``c_frames``: ``depth`` int64 row ids
  into ``frames``, oldest first, instead of the stack.

The writer sees the whole stacks the agent gives (``state`` and ``next_state``) and stores only
frames it has not seen: a ``next_state`` that is the ``state`` shifted by one frame adds its
newest frame; a ``state`` equal to a recent ``next_state`` (the previous step, of any interleaved
environment: a small cache keyed by sampled bytes, confirmed byte for byte) adds nothing; anything else
(an episode start, whatever padding the agent used) adds its frames, equal neighbours once.
So every stack reads back bit for bit as given, whatever the padding or truncation, with no
configuration. Frames and ids are committed by the same commit record as everything else, and
each frame is appended before the row that names it: a committed row's frames are committed.

Stock h5py reads both tables; ``state`` of row ``r`` is ``frames[state_frames[r]]`` stacked on
the stack axis. Dopamine's replay memory and SB3's ``optimize_memory_usage`` store a frame once
the same way; both rebuild from a circular array, this one from ids, so no row depends on an
episode boundary rule.
"""

from __future__ import annotations

import functools
import sys
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..files._watch import GATE
from ..format._format import TRANSITIONS
from ..format._schema import Column, Schema
from ..errors import DamagedStoreError, SchemaError

FRAMES_TABLE = "frames"
FRAME = "frame"
EXTRA_KEY = "frames"  # in the commit record's extra: the spec and the logical schema
_CACHE = 256  # recent stacks remembered; one per interleaved environment is enough
_FRAME_COLUMNS = [FRAME]


@dataclass(frozen=True)
class FrameStack:
    """Stacked observations stored one frame per step.

    ``depth``: frames per stack. ``axis``: the stack axis of the columns' shape (``-1`` for
    ``(84, 84, 4)``; ``0`` for gymnasium's ``FrameStackObservation``, ``(4, 84, 84)``).
    ``columns``: the columns that hold stacks of the same frames.

    The stack axis holds either ``depth`` frames stacked on it (a new axis: ``(84, 84)`` frames in
    ``(84, 84, 4)``) or ``depth`` frames of ``k`` channels each, concatenated along it, as
    Stable-Baselines3's ``VecFrameStack`` stacks RGB frames: ``(64, 64, 3)`` frames in
    ``(64, 64, 12)``, oldest first; the frames table then holds ``(64, 64, 3)`` frames.

    >>> FrameStack(4).frame_shape(Schema.transition((84, 84, 4), state_dtype="uint8"))
    (84, 84)
    >>> FrameStack(4).frame_shape(Schema.transition((64, 64, 12), state_dtype="uint8"))
    (64, 64, 3)
    """

    depth: int
    axis: int = -1
    columns: tuple[str, ...] = ("state", "next_state")

    def __post_init__(self):
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 1:
            raise SchemaError(f"FrameStack(depth={self.depth!r}): expected a positive int (frames per stack)")
        cols = (self.columns,) if isinstance(self.columns, str) else tuple(self.columns)
        if not cols:
            raise SchemaError("FrameStack(columns=()): name at least one stacked column, e.g. ('state', 'next_state')")
        object.__setattr__(self, "columns", cols)
        object.__setattr__(self, "depth", int(self.depth))

    def _axis(self, col: Column) -> int:
        nd = len(col.shape)
        if not -nd <= self.axis < nd:
            raise SchemaError(f"FrameStack(axis={self.axis}): column {col.name!r} has shape {col.shape}, which has "
                              f"no axis {self.axis}")
        return self.axis % nd

    def _channels(self, col: Column) -> int:
        """0 where the stack axis holds ``depth`` frames stacked on it; else the channels of each
        frame concatenated along it (the axis holds ``depth`` times as many)."""
        ax = self._axis(col)
        n = col.shape[ax]
        if n == self.depth:
            return 0
        if n < self.depth or n % self.depth:
            raise SchemaError(f"FrameStack(depth={self.depth}, axis={self.axis}): column {col.name!r} has shape "
                              f"{col.shape}, whose axis {self.axis} holds {n}: expected {self.depth} (frames "
                              f"stacked on that axis) or a multiple of {self.depth} (frames of several channels "
                              "concatenated along it); give the depth and axis of its stack")
        return n // self.depth

    def split_shape(self, col: Column) -> tuple[int, ...]:
        """The column's row shape with a concatenated stack axis split in two, ``(depth, channels)``,
        so that frame ``j`` is index ``j`` of the (unchanged) stack axis; the shape itself otherwise."""
        ax, ch = self._axis(col), self._channels(col)
        return col.shape[:ax] + (self.depth, ch) + col.shape[ax + 1:] if ch else col.shape

    def frame_shape(self, schema: Schema) -> tuple[int, ...]:
        shapes = set()
        for name in self.columns:
            if name not in schema:
                raise SchemaError(f"FrameStack(columns={list(self.columns)}): {name!r} is not in the schema "
                                  f"{list(schema.names)}")
            c = schema[name]
            ax, ch = self._axis(c), self._channels(c)
            shapes.add((c.shape[:ax] + ((ch,) if ch else ()) + c.shape[ax + 1:], c.dtype, ax))
        if len(shapes) != 1:
            raise SchemaError(f"FrameStack: columns {list(self.columns)} must stack frames of one shape, dtype and "
                              f"axis; got {sorted(map(str, shapes))}")
        return next(iter(shapes))[0]

    def to_dict(self) -> dict:
        return {"depth": self.depth, "axis": self.axis, "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "FrameStack":
        return cls(int(d["depth"]), int(d["axis"]), tuple(d["columns"]))


def ids_name(column: str) -> str:
    return f"{column}_frames"


def physical_schemas(schema: Schema, spec: FrameStack) -> tuple[Schema, Schema]:
    """The transitions table as stored (each stacked column replaced by its frame ids) and the frames table."""
    fshape = spec.frame_shape(schema)
    dtype = schema[spec.columns[0]].dtype
    clash = [ids_name(c) for c in spec.columns if ids_name(c) in schema]
    if clash:
        raise SchemaError(f"FrameStack: the schema already has column(s) {clash}, the names its frame ids take")
    cols = [Column(ids_name(c.name), np.dtype("int64"), (spec.depth,)) if c.name in spec.columns else c
            for c in schema]
    return Schema(tuple(cols)), Schema((Column(FRAME, dtype, fshape, schema[spec.columns[0]].allow_nonfinite),))


class FrameEncoder:
    """Turns stacks into frame ids, collecting the frames not stored yet (the writer's half).

    Per block, two vectorized comparisons decide most rows: is ``state[r]`` the previous row's
    ``next_state`` (one environment's steps in order), and is ``next_state[r]`` ``state[r]``
    shifted by one frame. Only the rows where either fails take the slow way: a lookup among
    recent stacks (interleaved environments) by a fingerprint of sampled bytes, confirmed byte
    for byte, and otherwise the stack's own frames. Per-row work measured 160 us in a first
    version that hashed every stack; the block tests cost about a memory pass over the stacks.
    """

    def __init__(self, spec: FrameStack, schema: Schema, next_id: int):
        self.spec = spec
        # concatenated stacks are seen with their stack axis split: (..., depth, channels, ...)
        self._split_shape = spec.split_shape(schema[spec.columns[0]])
        self.schema = Schema(tuple(Column(c.name, c.dtype, self._split_shape, c.allow_nonfinite)
                                   if c.name in spec.columns else c for c in schema))
        self.axis = spec._axis(schema[spec.columns[0]])
        self.next_id = int(next_id)  # the frames table's row count: the id the next new frame gets
        self._recent: OrderedDict = OrderedDict()  # fingerprint -> (stack, ids), most recent last
        self._last: tuple | None = None  # (stack, ids) of the last row's last stacked column

    def _split(self, block: np.ndarray) -> np.ndarray:
        """(n, *stack) -> a view (n, depth, *frame)."""
        return np.moveaxis(block, self.axis + 1, 1)

    @staticmethod
    def _print(stack: np.ndarray) -> bytes:
        flat = stack.reshape(-1)
        return flat[::max(1, len(flat) // 64)].tobytes() + flat[-64:].tobytes()

    def _remember(self, stack: np.ndarray, ids: tuple) -> None:
        key = self._print(stack)
        self._recent.pop(key, None)
        self._recent[key] = (stack, ids)
        if len(self._recent) > _CACHE:
            self._recent.popitem(last=False)

    def _lookup(self, stack: np.ndarray):
        got = self._recent.get(self._print(stack))
        if got is not None and np.array_equal(got[0], stack):
            return got[1]
        return None

    def encode(self, block: Mapping[str, np.ndarray], n: int) -> tuple[dict, np.ndarray]:
        """``({column_frames: (n, depth) int64}, new frames (m, *frame))`` for ``n`` rows of stacks."""
        cols = self.spec.columns
        block = {c: block[c].reshape(len(block[c]), *self._split_shape) for c in cols}
        ids = {c: np.empty((n, self.spec.depth), np.int64) for c in cols}
        if not n:
            fshape = self._split(block[cols[0]]).shape[2:]
            return ids, np.empty((0, *fshape), block[cols[0]].dtype)
        split = [self._split(block[c]) for c in cols]
        flat = [np.ascontiguousarray(block[c]).reshape(n, -1).view(np.uint8) for c in cols]
        # shifted[i][r]: column i of row r is column i-1 shifted by one new frame
        shifted = [None] + [self._shifted(flat[i], flat[i - 1]) for i in range(1, len(cols))]
        # follows[r]: the first column of row r is the last column of row r-1
        follows = np.zeros(n, bool)
        if n > 1:
            follows[1:] = ~(flat[0][1:] != flat[-1][:-1]).any(axis=1)
        new: list[np.ndarray] = []
        last = len(cols) - 1
        prev_last = self._last
        for r in range(n):
            prev_ids = None
            for i, c in enumerate(cols):
                fr = split[i][r]
                if i and shifted[i][r]:
                    new.append(fr[-1])
                    got = prev_ids[1:] + (self.next_id,)
                    self.next_id += 1
                elif i == 0 and r and follows[r]:
                    got = prev_last[1]
                else:
                    stack = block[c][r]
                    got = None
                    if i == 0 and r == 0 and prev_last is not None and np.array_equal(stack, prev_last[0]):
                        got = prev_last[1]
                    if got is None:
                        got = self._lookup(stack)
                    if got is None:  # an episode start (or a stack never seen): its frames, equal neighbours once
                        got = self._add_stack(fr, new)
                ids[c][r] = got
                prev_ids = got
            prev_last = (block[cols[last]][r], prev_ids)
            if r + 1 < n and not follows[r + 1]:  # another environment's row next: this one may come back
                self._remember(block[cols[last]][r].copy(), prev_ids)
        self._last = (prev_last[0].copy(), prev_last[1])
        self._remember(*self._last)
        frames = np.stack(new) if new else np.empty((0, *split[0].shape[2:]), split[0].dtype)
        return ids, frames

    def _shifted(self, later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
        """Per row: ``later``'s frames 0..d-2 are ``earlier``'s frames 1..d-1 (rows as flat bytes).

        In the flat bytes of a stack, frame ``j+1`` of an element sits ``inner`` bytes after frame
        ``j`` (``inner``: bytes of the axes after the stack axis), so the test is one contiguous
        comparison at that offset, masked to the bytes of frames 0..d-2. Comparing the moved-axis
        views instead took 230 ms per 1,024 rows of (84, 84, 4): a 3-element inner loop.
        """
        mask, inner = self._mask
        diff = later[:, :-inner] != earlier[:, inner:]
        diff &= mask
        return ~diff.any(axis=1)

    @functools.cached_property
    def _mask(self) -> tuple[np.ndarray, int]:
        col = self.schema[self.spec.columns[0]]
        item = col.dtype.itemsize
        inner = item * int(np.prod(col.shape[self.axis + 1:], dtype=np.int64))
        coord = np.broadcast_to(np.arange(col.shape[self.axis]).reshape((-1,) + (1,) * (len(col.shape) - self.axis - 1)),
                                col.shape)
        valid = np.repeat((coord < col.shape[self.axis] - 1).reshape(-1), item)
        return valid[:-inner], inner

    def _add_stack(self, fr: np.ndarray, new: list) -> tuple:
        out = []
        for j in range(len(fr)):
            if j and np.array_equal(fr[j], fr[j - 1]):
                out.append(out[-1])
            else:
                new.append(fr[j])
                out.append(self.next_id)
                self.next_id += 1
        return tuple(out)


class FramesView:
    """The transitions table as readers see it: stacked columns rebuilt from frame ids.

    Everything but ``schema``, ``read`` and ``gather`` is the stored table's (rows, segments...).
    """

    def __init__(self, table, frames, spec: FrameStack, schema: Schema):
        self._t, self._f, self.spec, self.schema = table, frames, spec, schema
        self.axis = spec._axis(schema[spec.columns[0]])
        self._fshape = spec.frame_shape(schema)
        self._split_shape = spec.split_shape(schema[spec.columns[0]])
        self._known: dict = {}  # columns asked -> (names, stored names)
        self._fast: dict = {}  # columns asked -> what _gather_new needs of them

    def __getattr__(self, name):
        return getattr(self._t, name)

    @property
    def stored(self):
        """The transitions table as stored: frame ids in place of stacks."""
        return self._t

    def _split(self, columns, where: str) -> tuple[list, list]:
        key = columns if columns is None or isinstance(columns, str) else tuple(columns)
        got = self._known.get(key)
        if got is None:  # a sampler asks for the same columns at every batch
            from ._views import _names

            names = _names(self.schema, columns, where, self.name)
            got = self._known[key] = (names, [ids_name(c) if c in self.spec.columns else c for c in names])
        return got

    def _assemble(self, names, got: dict, out: dict | None, where: str) -> dict:
        res = {}
        for c in names:
            if c not in self.spec.columns:
                if out is not None and c in out:
                    out[c][...] = got[c]
                    res[c] = out[c]
                else:
                    res[c] = got[c]
                continue
            ids = got[ids_name(c)]
            col = self.schema[c]
            dst = out[c] if out is not None else np.empty((len(ids), *col.shape), col.dtype)
            res[c] = self.fill(ids, dst, where)
        return res

    def _gather_new(self, columns, rows: np.ndarray, where: str, bounds=None, polled: bool = False) -> dict:
        """New arrays of ``columns`` at ``rows``, the stacks on the first axis: every stacked
        column's frame ids land in one buffer, all their frames come from the frames table in one
        call into one buffer (each column a contiguous slice of it), and the ids are checked once.
        Per 32-row batch of state and next_state this was ~15 us of Python and checks around
        ~95 us of copies, where the general path (per column, through dicts) took ~25."""
        key = columns if columns is None or isinstance(columns, str) else tuple(columns)
        plan = self._fast.get(key)
        if plan is None:
            names, stored = self._split(columns, where)
            stacked = [c for c in names if c in self.spec.columns]
            plain = [c for c in names if c not in self.spec.columns]
            col = self.schema[self.spec.columns[0]]
            alloc = [(self.schema[c].shape, self.schema[c].dtype) for c in plain]
            taken = [i for i, c in enumerate(plain) if self.schema[c].row_bytes]
            spot = {c: i for i, c in enumerate(plain + stacked)}
            plan = self._fast[key] = (names, [ids_name(c) for c in stacked] + [plain[i] for i in taken], taken,
                                      alloc, len(stacked), col.shape, self._fshape, col.dtype,
                                      [spot[c] for c in names])
        names, take_names, taken, alloc, n_stacked, shape, frame_shape, dtype, order = plan
        n = len(rows)
        depth = self.spec.depth
        ids = np.empty((n_stacked, n, depth), np.int64)
        flat = ids.reshape(-1)
        buf = np.empty((len(flat), *frame_shape), dtype)
        if n and not polled:  # once for both tables (files/_watch.py)
            GATE.poll()
        if n and len(taken) == len(alloc):  # every plain column has bytes: take makes their arrays
            arrays = self._t.take_into(take_names, [*ids, *[None] * len(taken)], rows, where, bounds, True)
            del arrays[:n_stacked]
        else:
            arrays = [np.empty((n, *sh), dt) for sh, dt in alloc]
            if n:
                self._t.take_into(take_names, [*ids, *[arrays[i] for i in taken]], rows, where, bounds, True)
        if n and n_stacked:
            self._f.take_into(_FRAME_COLUMNS, [buf], flat, where, self._check_ids(flat, where), True)
        per = n * depth
        arrays += [buf[i * per:(i + 1) * per].reshape(n, *shape) for i in range(n_stacked)]
        return dict(zip(names, [arrays[i] for i in order]))

    def _check_ids(self, ids: np.ndarray, where: str) -> tuple[int, int]:
        """Bounds ``(lo, max)`` of ``ids`` (int64) for the gather, or DamagedStoreError if any is not a
        committed frame.

        One reduction unless retention deleted old frames: as unsigned, a negative id is larger
        than any row count; with every frame from 0 kept, ``lo`` is 0 rather than the minimum
        (a second reduction, ~2 us): the gather then checks the segments below the batch's too,
        each a dictionary look-up while files/_watch.GATE reports no change."""
        if ids.dtype != np.int64:  # the stored table's schema comes from the record: data, not trusted
            ids = ids.astype(np.int64)
        top = int(ids.view(np.uint64).max())
        if top >= self._f.rows:
            lo, hi = int(ids.min()), int(ids.max())
            raise DamagedStoreError(f"{where}: frame ids in [{lo}, {hi}] but the frames table has {self._f.rows} "
                                    "committed frames: the store is damaged; run `replaystore verify`")
        if not self._f.first_row:
            return 0, top
        return int(ids.min()), top

    def fill(self, ids: np.ndarray, dst: np.ndarray, where: str) -> np.ndarray:
        """Stacks of frames ``ids`` ((n, depth)) written into ``dst`` ((n, *stack shape))."""
        n = len(ids)
        if not n:
            return dst
        bounds = self._check_ids(ids, where)
        depth = self.spec.depth
        if self.axis == 0:  # (depth, *frame): the gathered frames are the stacks, in place
            flat = _as_view(dst, (n * depth, *self._fshape))
            if flat is None:  # an out= array that no reshape can see so: through a buffer
                dst[...] = self.fill(ids, np.empty(dst.shape, dst.dtype), where)
                return dst
            self._f.gather([FRAME], ids.reshape(-1), where, out={FRAME: flat}, bounds=bounds)
            return dst
        split = _as_view(dst, (n, *self._split_shape))  # concatenated stacks: (..., depth, channels, ...)
        if split is None:
            dst[...] = self.fill(ids, np.empty(dst.shape, dst.dtype), where)
            return dst
        frames = self._f.gather([FRAME], ids.reshape(-1), where, bounds=bounds)[FRAME]
        interleave(frames.reshape(n, depth, *frames.shape[1:]), split, self.axis + 1)
        return dst

    def read(self, columns, lo: int, hi: int, where: str = "read") -> dict[str, np.ndarray]:
        names, stored = self._split(columns, where)
        return self._assemble(names, self._t.read(stored, lo, hi, where), None, where)

    def gather(self, columns, rows: np.ndarray, where: str = "gather", out=None,
               bounds: tuple[int, int] | None = None, polled: bool = False) -> dict[str, np.ndarray]:
        if out is None and self.axis == 0 and hasattr(self._t, "take_into"):
            return self._gather_new(columns, rows, where, bounds, polled)
        names, stored = self._split(columns, where)
        got = self._t.gather(stored, rows, where)
        return self._assemble(names, got, out, where)


_WORDS = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def interleave(frames: np.ndarray, dst: np.ndarray, axis: int) -> None:
    """Stacks ``(n, depth, *frame)`` written into ``dst`` with the stack on its ``axis`` (not 1).

    Frames interleave element by element there. On the last axis, where a stack's elements are
    side by side and fill a 2-, 4- or 8-byte word ((84, 84, 4) uint8: one uint32 an element),
    the words are built by shifts and ors over whole frames: 0.20 against 0.28 ms for 32 stacks.
    Otherwise one strided copy per depth (256 stacks of (84, 84, 4): 2.7 ms, against 8.3 for one
    copy of the moved-axis view and 0.53 to copy whole stacks). The in-RAM reference of
    ``benchmarks/bench_images.py`` assembles its stacks with this function too."""
    depth, item = frames.shape[1], frames.dtype.itemsize
    word = _WORDS.get(depth * item)
    if word is not None and axis == dst.ndim - 1 and dst.flags.c_contiguous and frames.dtype == dst.dtype:
        raw = frames.view(np.dtype(f"u{item}"))
        out = dst.view(word).reshape(dst.shape[:-1])
        bits = 8 * item
        shifts = [bits * j for j in range(depth)] if sys.byteorder == "little" else \
                 [bits * (depth - 1 - j) for j in range(depth)]
        np.copyto(out, raw[:, 0])
        if shifts[0]:
            np.left_shift(out, shifts[0], out=out)
        tmp = np.empty_like(out)
        for j in range(1, depth):
            np.copyto(tmp, raw[:, j])
            np.left_shift(tmp, shifts[j], out=tmp)
            np.bitwise_or(out, tmp, out=out)
        return
    dv = np.moveaxis(dst, axis, 1)
    for j in range(depth):
        dv[:, j] = frames[:, j]


def _as_view(a: np.ndarray, shape: tuple) -> np.ndarray | None:
    """``a`` seen with ``shape`` (no copy), or None where only a copy could (a strided ``out=``)."""
    v = a.reshape(shape)
    return v if v.size == 0 or np.may_share_memory(v, a) else None


def spec_of(extra: Mapping) -> tuple[FrameStack, Schema] | None:
    d = extra.get(EXTRA_KEY)
    if d is None:
        return None
    try:
        spec, schema = FrameStack.from_dict(d), Schema.from_json(d["schema"])
        physical_schemas(schema, spec)  # the declared schema fits the stack
    except Exception as e:  # a record is data: a damaged or hostile one is refused, named
        raise DamagedStoreError(f"the store's frames-once description is damaged ({type(e).__name__}: {e}); "
                                "restore the store's .commit record from a backup") from None
    return spec, schema


def use_frames(store, views: dict) -> None:
    """The reading hook (``ReplayStore._use_record``): wrap the transitions table of a frames-once
    store, so that both roles read (and a store's ``schema`` says) whole stacks. A writer's own
    stacks-to-ids half is ``write/_frames_writer.py``'s ``FramesStager``."""
    got = spec_of(store._extra)
    if got is None or TRANSITIONS not in views or FRAMES_TABLE not in views:
        return
    spec, schema = got
    views[TRANSITIONS] = FramesView(views[TRANSITIONS], views[FRAMES_TABLE], spec, schema)
    store.schema = schema
