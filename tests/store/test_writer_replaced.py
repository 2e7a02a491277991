"""A writer whose store was removed and made again by another process (same path, another store)
notices before it writes anything there, refuses with StoreReplacedError, and leaves the new
store's files bit-identical."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from replaystore.store import ReplayStore, errors

import writer_proc
from store_helpers import append_writer_rows, check_writer_rows

ENV = dict(os.environ, OMP_NUM_THREADS="1")

OTHER = """
import sys
from replaystore.store import ReplayStore
import writer_proc
from store_helpers import append_writer_rows
with ReplayStore.create(sys.argv[1], writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                        segment_rows=1024, chunk_bytes=4096) as s:
    append_writer_rows(s, 0, 1500)
"""


def _files(path) -> dict:
    """Every file of the store at ``path`` (manifest, record, segment folder) with its bytes."""
    out = {}
    for p in (str(path), f"{path}.commit"):
        with open(p, "rb") as f:
            out[p] = f.read()
    for n in sorted(os.listdir(f"{path}.d")):
        with open(os.path.join(f"{path}.d", n), "rb") as f:
            out[n] = f.read()
    return out


def _remove(path) -> None:
    os.remove(path)
    os.remove(f"{path}.commit")
    shutil.rmtree(f"{path}.d")


@pytest.mark.parametrize("then", ["append", "extend through a new segment", "commit", "close"])
def test_writer_of_a_replaced_store_refuses_and_leaves_the_new_one_untouched(store_path, then):
    """Writer A holds 700 committed and 100 staged rows; another process removes the store and
    creates a new one (1,500 rows) at the path. A's next write that would touch the files raises
    StoreReplacedError (a StoreWriteError, errno ESTALE), again on retry, and close() too (which
    still releases the writer); the new
    store's files are bit-identical and its rows intact."""
    a = ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                           commit_every=10**9, commit_seconds=3600.0, segment_rows=1024, chunk_bytes=4096)
    append_writer_rows(a, 0, 700)
    a.commit()
    append_writer_rows(a, 700, 800)
    _remove(store_path)
    here = os.path.dirname(__file__)
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r})\n" + textwrap.dedent(OTHER),
                          str(store_path)], capture_output=True, text=True, timeout=60, env=ENV)
    assert 0 == out.returncode, out.stderr[-2000:]
    before = _files(store_path)
    for _ in range(1 if then == "close" else 2):
        with pytest.raises(errors.StoreReplacedError, match="was removed or replaced .* refuses to write") as e:
            if then == "append":  # one-row appends until the stage (1,024 rows) is flushed
                for i in range(800, 2000):
                    r = writer_proc.given(writer_proc.make_rows(i, i + 1))
                    a.append(**{k: v[0] for k, v in r.items()})
            elif then == "extend through a new segment":
                append_writer_rows(a, 800, 3000)
                a.commit()
            elif then == "commit":
                a.commit()
            else:
                a.close()
        assert isinstance(e.value, errors.StoreWriteError) and e.value.errno == 116
    if not a.closed:
        with pytest.raises(errors.StoreReplacedError):
            a.close()
    assert a.closed
    assert before == _files(store_path)
    with ReplayStore.open(store_path, "a") as b:
        assert 1500 == len(b)
        check_writer_rows(b, 0, 1500)


def test_writer_whose_store_was_removed_refuses(store_path):
    """A writer whose store was deleted (nothing made again) refuses to commit instead of writing a
    record, manifest or segment at the path; nothing appears there."""
    a = ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
    append_writer_rows(a, 0, 10)
    _remove(store_path)
    with pytest.raises(errors.StoreReplacedError, match="was removed or replaced"):
        a.commit()
    with pytest.raises(errors.StoreReplacedError):
        a.close()
    assert [] == os.listdir(store_path.parent)
