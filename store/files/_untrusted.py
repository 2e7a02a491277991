"""What a store's files say, read as data that may be hostile (DESIGN.md contract 9).

A store may come from anyone (a download, a colleague's disk), so what its files name is
checked before it is used:

- JSON (the commit record, the manifest's attributes, ``.sums``, a run's record) is parsed
  with a bounded nesting depth: Python's parser recurses once per level, and 100k levels of
  ``[`` raise a raw ``RecursionError`` (or exhaust the stack of code that walks the result).
- HDF5 datasets the store reads through h5py (compacted segments) must keep their bytes in
  their own file: HDF5 external storage, external links and virtual datasets can name any file
  on the machine (``/etc/passwd``, a FIFO that hangs the read), and filters other than the ones
  the store writes would load plugins. The shape and dtype are checked before any byte is read.
- Names that become paths (tables, from the record) are plain names: no separator, no ``..``.
"""

from __future__ import annotations

import json

import h5py
import numpy as np

from ..errors import DamagedStoreError

# Deeper than anything the store writes (its records nest 5 levels) with room for the user's own
# metadata and extra state; the writer refuses deeper values, so it never writes what it cannot read.
MAX_JSON_DEPTH = 64
# Lists and dicts in one document: an empty one costs ~60 bytes of memory for 2 bytes of text, so a
# 256 MB record of "[]," would take ~5 GB. The store's own records hold one list per segment.
MAX_JSON_CONTAINERS = 1 << 20

def json_shape(text: str) -> tuple[int, int]:
    """``(deepest nesting, number of lists and dicts)`` of JSON ``text`` (brackets inside strings
    not counted)."""
    opened = text.count("[") + text.count("{")
    if opened <= MAX_JSON_DEPTH:  # the usual case (a count costs ~1 us per KB): both are at most this
        return opened, opened
    return _scan(text)


def _scan(text: str) -> tuple[int, int]:
    # Vectorized (a regex removing the strings cost 4x the parse): a quote ends or starts a string
    # unless an odd run of backslashes precedes it; brackets count only outside strings.
    b = np.frombuffer(text.encode("utf-8", "replace"), np.uint8)
    at = np.arange(len(b))
    last_plain = np.maximum.accumulate(np.where(b != 92, at, -1))  # the last non-backslash at or before each
    quote = b == 34
    q = np.flatnonzero(quote)
    escaped = ((q - 1) - np.where(q > 0, last_plain[np.maximum(q - 1, 0)], -1)) % 2 == 1
    quote[q[escaped]] = False
    outside = (np.cumsum(quote) % 2) == 0
    opens = ((b == 91) | (b == 123)) & outside
    step = opens.astype(np.int64) - (((b == 93) | (b == 125)) & outside)
    return (int(np.cumsum(step).max()) if len(step) else 0), int(opens.sum())


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON ``text`` (brackets inside strings not counted)."""
    return json_shape(text)[0]


def loads(text, what: str):
    """``json.loads(text)`` for JSON read from a store's files: ``DamagedStoreError`` (a
    ``ValueError``), naming ``what``, for text that is not UTF-8, not JSON or nested deeper than
    ``MAX_JSON_DEPTH``; never a raw ``RecursionError``."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DamagedStoreError(f"{what} is damaged: not UTF-8 text ({e.reason} at byte {e.start})") from None
    elif not isinstance(text, str):
        raise DamagedStoreError(f"{what} is damaged: expected JSON text, found a {type(text).__name__}")
    depth, containers = json_shape(text)
    if depth > MAX_JSON_DEPTH:
        raise DamagedStoreError(f"{what} is damaged or hostile: its JSON nests {depth} levels deep, more than the "
                                f"{MAX_JSON_DEPTH} any replaystore file holds")
    if containers > MAX_JSON_CONTAINERS:
        raise DamagedStoreError(f"{what} is damaged or hostile: its JSON holds {containers} lists and objects, more "
                                f"than the {MAX_JSON_CONTAINERS} any replaystore file holds")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DamagedStoreError(f"{what} is damaged: not valid JSON ({e.msg} at byte {e.pos})") from None
    except RecursionError:  # unreachable after the depth check; kept so no raw error can escape
        raise DamagedStoreError(f"{what} is damaged: its JSON nests too deeply") from None


def check_depth(text: str, what: str) -> str:
    """``text`` (JSON the store is about to write), refused with a ``ValueError`` when a reader
    would refuse it as too deeply nested."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"{what} nests {depth} levels deep; a store keeps JSON of at most {MAX_JSON_DEPTH} levels "
                         "(so that a reader can tell a hostile file from a real one): flatten it")
    return text


def check_name(name, what: str) -> str:
    """A table name read from a file, which becomes part of a file name: a plain name only."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or "\0" in name or \
            name in (".", "..") or name.startswith(".") or len(name) > 255:
        raise DamagedStoreError(f"{what}: table name {name!r} is not a plain name (no '/', no leading '.'): "
                                "the file is damaged or hostile")
    return name


# The filters ``compact`` writes (and fletcher32, harmless): any other one makes HDF5 look for a plugin.
# 32001 (Blosc) is read only after hdf5plugin registered it (_codec.check_codec), so HDF5 never
# searches a plugin path for it.
_SAFE_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32, 32000, 32001}  # 32000: lzf
# Deflate expands at most 1032:1 (and lzf far less): a dataset claiming more bytes than that over what
# it stores would fill memory with fill values or a decompression bomb.
_MAX_RATIO = 1100


def own_group(f, name: str, path: str) -> h5py.Group:
    """Group ``name`` of ``f`` (a path), refused when it or a group above it is a link (to another
    file, which HDF5 would open)."""
    g = f
    for part in name.strip("/").split("/"):
        link = g.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink) or not isinstance(g[part], h5py.Group):
            raise DamagedStoreError(f"{path}: {name!r} is {type(link).__name__ if link is not None else 'missing'}, "
                                    "not a group of its own; a store's files never link elsewhere: it is damaged or "
                                    "hostile")
        g = g[part]
    return g


def own_dataset(f, name: str, path: str) -> h5py.Dataset:
    """Dataset ``name`` of ``f`` (at ``path``), checked before a byte is read: stored in this file
    (no external link, external storage or virtual sources), with only the filters ``compact``
    writes."""
    link = f.get(name, getlink=True)
    if link is None:
        raise DamagedStoreError(f"{path} has no dataset {name!r}: the file is damaged or not what the store made")
    if not isinstance(link, h5py.HardLink):
        raise DamagedStoreError(f"{path}: {name!r} is a {type(link).__name__} (to another file or place), not a "
                                "dataset of its own; a store's files never link elsewhere: it is damaged or hostile")
    d = f[name]
    if not isinstance(d, h5py.Dataset):
        raise DamagedStoreError(f"{path}: {name!r} is not a dataset: the file is damaged or not what the store made")
    if d.is_virtual:
        raise DamagedStoreError(f"{path}: dataset {name!r} is virtual (its bytes live in other files); a store's "
                                "segment keeps its own bytes: it is damaged or hostile")
    if d.external:
        raise DamagedStoreError(f"{path}: dataset {name!r} uses HDF5 external storage ({d.external[0][0]!r}, ...); "
                                "a store's segment keeps its own bytes: it is damaged or hostile")
    plist = d.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in _SAFE_FILTERS:
            raise DamagedStoreError(f"{path}: dataset {name!r} uses HDF5 filter {code}, not one compact writes "
                                    "(gzip, lzf, blosc, shuffle): it is damaged or hostile")
    return d


def local_dataset(f: h5py.File, name: str, shape: tuple, dtype, path: str, ratio: bool = True) -> h5py.Dataset:
    """``own_dataset(f, name, path)``, also of the ``shape`` and ``dtype`` the store expects, and
    (with ``ratio``) not claiming more bytes than any compression of what it stores gives. A caller
    that reads chunk by chunk, checking each one's size, into bounded memory passes ``ratio=False``
    (Blosc/Zstd compresses a zero frame further than deflate's 1032:1)."""
    d = own_dataset(f, name, path)
    if tuple(d.shape) != tuple(shape) or d.dtype != np.dtype(dtype):
        raise DamagedStoreError(f"{path}: dataset {name!r} is {d.dtype}{tuple(d.shape)}, expected "
                                f"{np.dtype(dtype)}{tuple(shape)}: the file is damaged or not this store's")
    want = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    if ratio and want > _MAX_RATIO * d.id.get_storage_size() + (1 << 20):
        raise DamagedStoreError(f"{path}: dataset {name!r} claims {want} bytes but stores {d.id.get_storage_size()}: "
                                "more than any compression gives; the file is damaged or hostile")
    return d
