"""HDF5 files built in memory and written with plain OS calls.

HDF5 must never see a failing write: with the file size limit or the disk reached while it
wrote a segment, h5py raised, then crashed the process (SIGSEGV, "Can't decrement id ref
count") when the half-written file's ids were released, and the writer's staged rows died with
it (measured: a limit 1 to 2,000 bytes short of a new segment). So HDF5 writes into a
``SparseImage`` (only the bytes it writes are kept: a segment's row space is allocated but never
written, so a 256 MB segment costs its ~20 KB of metadata in memory), and ``write_image`` puts
them in the file with ``ftruncate`` and ``pwrite``, whose errors carry the real errno (27, 28).
"""

from __future__ import annotations

from contextlib import contextmanager

import h5py

from ._fileio import layer


class SparseImage:
    """A file-like object for h5py's ``fileobj`` driver that keeps only written byte ranges."""

    def __init__(self):
        self.pieces: list[tuple[int, bytes]] = []  # (offset, bytes) in write order: later ones win
        self.size = 0
        self._pos = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else self.size + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, data) -> int:
        b = bytes(data)
        self.pieces.append((self._pos, b))
        self._pos += len(b)
        self.size = max(self.size, self._pos)
        return len(b)

    def read(self, n: int = -1) -> bytes:
        end = self.size if n is None or n < 0 else min(self.size, self._pos + n)
        out = bytearray(max(0, end - self._pos))
        for off, b in self.pieces:  # HDF5 reads back little (its own metadata): a scan is enough
            lo, hi = max(off, self._pos), min(off + len(b), end)
            if lo < hi:
                out[lo - self._pos:hi - self._pos] = b[lo - off:hi - off]
        self._pos += len(out)
        return bytes(out)

    def readinto(self, buf) -> int:
        got = self.read(len(buf))
        memoryview(buf).cast("B")[:len(got)] = got
        return len(got)

    def truncate(self, size: int | None = None) -> int:
        self.size = self._pos if size is None else int(size)
        self.pieces = [(o, b[:max(0, self.size - o)]) for o, b in self.pieces if o < self.size]
        return self.size

    def flush(self) -> None:
        pass

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True


@contextmanager
def hdf5_file(path: str, **kwargs):
    """``h5py.File(path, "w", **kwargs)`` built in memory and written to ``path`` (which must not
    exist) when the block ends. An OS error there is an ``OSError`` with its errno, and HDF5 has
    already closed the in-memory file, so nothing of it is left to crash later."""
    image = SparseImage()
    f = h5py.File(image, "w", **kwargs)
    try:
        yield f
    finally:
        f.close()
    write_image(path, image)


def write_image(path: str, image: SparseImage) -> None:
    """Write ``image`` to a new file at ``path`` through the file layer (a leftover or a planted
    link there is removed first; the power-loss tests see every byte)."""
    fs = layer()
    fd = fs.create_new(path)
    try:
        fs.truncate(fd, image.size)  # the unwritten row space stays a hole: no disk blocks
        for off, b in image.pieces:
            fs.pwrite(fd, b, off)
    finally:
        fs.close(fd)
