"""A store is data (DESIGN.md contract 9): hostile files, built with h5py and json, never make the
store read another file's bytes, hang, recurse without bound, exhaust memory or write outside it.
Every refusal is a store error naming the file and the reason."""

from __future__ import annotations

import json
import os
import re
import threading

import h5py
import numpy as np
import pytest
from hypothesis import example, HealthCheck, given, settings, strategies as st

from replaystore.store import ReplayStore, errors
from replaystore.store.tools._compact import compact
from replaystore.store.tools._verify import verify
from replaystore.store.format._format import compact_name, segment_dir, segment_name
from replaystore.store.format._record import read_record_json, write_record_json

import writer_proc
from store_helpers import append_writer_rows, check_writer_rows, closed_store

SECRET = np.arange(1024 * 3, dtype=np.float32).reshape(1024, 3) + np.float32(1e6)  # another file's bytes


@pytest.fixture
def compacted(tmp_path):
    """A closed store of 2,500 rows in 1,024-row segments whose segment 0 is compacted (gzip)."""
    p = closed_store(tmp_path / "run.h5", 2500)
    assert [0] == compact(p)
    return p


def _rewrite_compacted(store, make_state):
    """Rebuild compacted segment 0 of ``store`` with h5py: every dataset copied from the real one
    except ``state``, which ``make_state(file, folder)`` makes instead."""
    folder = segment_dir(store)
    path = os.path.join(folder, compact_name("transitions", 0))
    with h5py.File(path, "r") as f:
        data = {k: f[k][:] for k in f}
        attrs = dict(f.attrs)
    os.remove(path)
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs)
        for k, v in data.items():
            if k != "state":
                f.create_dataset(k, data=v)
        make_state(f, folder)
    return path


def _secret_file(folder) -> str:
    """A raw file outside the store holding SECRET's bytes."""
    p = os.path.join(os.path.dirname(folder), "secret.bin")
    SECRET.tofile(p)
    return p


def _external_storage(f, folder):
    f.create_dataset("state", shape=SECRET.shape, dtype="f4", external=[(_secret_file(folder), 0, SECRET.nbytes)])


def _external_link(f, folder):
    other = os.path.join(os.path.dirname(folder), "other.h5")
    with h5py.File(other, "w") as o:
        o.create_dataset("state", data=SECRET)
    f["state"] = h5py.ExternalLink(other, "state")


def _virtual(f, folder):
    other = os.path.join(os.path.dirname(folder), "other.h5")
    with h5py.File(other, "w") as o:
        o.create_dataset("state", data=SECRET)
    layout = h5py.VirtualLayout(shape=SECRET.shape, dtype="f4")
    layout[:] = h5py.VirtualSource(other, "state", shape=SECRET.shape)
    f.create_virtual_dataset("state", layout)


def _external_fifo(f, folder):
    fifo = os.path.join(os.path.dirname(folder), "fifo")
    os.mkfifo(fifo)
    f.create_dataset("state", shape=SECRET.shape, dtype="f4", external=[(fifo, 0, SECRET.nbytes)])


def _huge(f, folder):
    # a chunked dataset with no chunk written: 4 TiB of fill values for a 1,024-row segment
    f.create_dataset("state", shape=(1 << 40, 3), dtype="f4", chunks=(1024, 3))


HOSTILE = {"external storage": (_external_storage, "external storage"),
           "external link": (_external_link, "ExternalLink"),
           "virtual dataset": (_virtual, "virtual"),
           "external FIFO": (_external_fifo, "external storage"),
           "huge shape": (_huge, r"float32\(1099511627776, 3\), expected")}


def _within(seconds, fn):
    """``fn()``'s outcome, failing the test (not hanging it) if it does not return in time."""
    out = {}

    def go():
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test below
            out["error"] = e

    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s: it hangs"
    if "error" in out:
        raise out["error"]
    return out["value"]


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_compacted_segment_that_reaches_outside_is_refused(compacted, kind):
    """A compacted segment whose ``state`` dataset reads another file (external storage, an external
    link, a virtual dataset, a FIFO) or claims a huge shape: read, gather and verify all refuse it
    with a store error naming the file and the reason, and never return the other file's bytes."""
    make, reason = HOSTILE[kind]
    path = _rewrite_compacted(compacted, make)
    with ReplayStore.open(compacted) as r:
        for call in (lambda: r.read(["state"], 0, 10), lambda: r.gather(np.array([1, 5]), ["state"])):
            with pytest.raises(errors.DamagedStoreError, match=reason) as e:
                _within(20, call)
            assert path in str(e.value)
        check_writer_rows(r, 1024, 2500)  # rows of the other segments are still read
        found = _within(20, lambda: verify(r))
    assert [[0, 1024]] == [f["rows"] for f in found]
    assert path in found[0]["problem"]
    assert re.search(reason, found[0]["problem"])


def test_raw_segment_with_a_linked_identity_does_not_leak_into_compact(compacted):
    """compact copies a raw segment's identity from what it checked in the mapped bytes, never from
    the segment's HDF5 dataset, which a hostile segment can point at another file."""
    with ReplayStore.open(compacted, "a") as s:
        append_writer_rows(s, 2500, 3100)  # segment 1 is now full and before the window
    folder = segment_dir(compacted)
    seg = os.path.join(folder, segment_name("transitions", 1))
    with h5py.File(seg, "r+") as f:
        ident = f["identity"][:]
        f.move("identity", "kept")  # its bytes stay where the record says they are
        other = os.path.join(os.path.dirname(folder), "ident.h5")
        with h5py.File(other, "w") as o:
            o.create_dataset("identity", data=np.zeros_like(ident))
        f["identity"] = h5py.ExternalLink(other, "identity")
    # the mapped identity bytes are unchanged, so the store opens;
    # compaction must write the identity the store expects, not the linked zeros
    assert [1] == compact(compacted)
    with h5py.File(os.path.join(folder, compact_name("transitions", 1)), "r") as f:
        assert bytes(f["identity"][:]) == bytes(ident)
    with ReplayStore.open(compacted) as r:
        check_writer_rows(r, 0, 3100)


# ---------------------------------------------------------------------------------------- JSON
DEEP = "[" * 100_000 + "]" * 100_000


def _fresh_copy(pristine_dir, tmp_root) -> str:
    """A copy of the store in ``pristine_dir`` in a new folder under ``tmp_root``; returns its path."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(dir=tmp_root)
    for name in os.listdir(pristine_dir):
        src = os.path.join(pristine_dir, name)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, os.path.join(d, name))
    return os.path.join(d, "run.h5")


def _use(path) -> None:
    """Everything a user does with a store: open, read, gather, verify, open for append."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with ReplayStore.open(path) as r:
            r.read(None, 0, len(r))
            r.gather(np.arange(0, len(r), 97))
            verify(r)
            r.summary()
        with ReplayStore.open(path, "a") as w:
            append_writer_rows(w, len(w), len(w) + 3)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A closed 2,500-row store (two full segments, the first compacted) and its folder."""
    d = tmp_path_factory.mktemp("pristine")
    p = closed_store(str(d / "run.h5"), 2500)
    compact(p)
    return str(d)


def _set_field(doc, path, value):
    """``doc`` with the value at ``path`` (keys and indexes) replaced by ``value``."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _set_field(doc[head], rest, value)}
    out = list(doc)
    out[head] = _set_field(doc[head], rest, value)
    return out


def _paths(doc, prefix=()):
    """Every path into the JSON tree ``doc``."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:4]):
            yield from _paths(v, (*prefix, i))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.sampled_from([2**60, -1, 0, 1.5, 1e308])
    | st.text(max_size=8) | st.sampled_from(["../../etc", "/abs", "x" * 300]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6) | st.just("DEEP")
mutations = st.tuples(st.integers(0, 10**6), json_values)


def _mutated(doc, choice, value):
    """``doc`` with its ``choice``-th field (or the whole) replaced by ``value``; the value "DEEP" becomes
    100k levels of nesting in ``_dumps`` (json cannot build that)."""
    paths = list(_paths(doc))
    return _set_field(doc, paths[choice % len(paths)], value)


def _dumps(doc) -> str:
    """JSON text of ``doc``, with "DEEP" spliced in as 100k levels of nesting."""
    return json.dumps(doc).replace('"DEEP"', DEEP)


def _only_store_errors(path):
    """``_use(path)`` succeeds or raises a store error (anything else fails the test)."""
    try:
        _use(path)
    except errors.StoreError:
        pass



@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mutations)
# found by replaying every field with a few values (fields: 115 paths of the pristine record):
# a segment's counts [] (float to numpy), segment_counts {} (KeyError), a count 2**63 (OverflowError),
# identity.retain 1e300 (h5py's TypeError when the manifest was rebuilt)
@example(m=(73, []))
@example(m=(72, {}))
@example(m=(74, 2**63))
@example(m=(108, 1e300))
def test_mutated_commit_record_gives_only_store_errors(pristine, tmp_path, m):
    """Any field of the commit record replaced by any JSON value (huge numbers, wrong types, path
    tricks in table names, 100k levels of nesting), with a valid checksum: only store errors."""
    from replaystore.store.format._record import record_file

    path = _fresh_copy(pristine, tmp_path)
    doc = read_record_json(path)
    bad = _dumps(_mutated(doc, *m)).encode()
    with open(path + ".commit", "wb") as f:
        f.write(record_file(bad, int(doc["seq"])))
    os.remove(path)  # no manifest to fall back on: the record alone is read
    _only_store_errors(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attr=st.sampled_from(["session", "closed_record", "schema", "actors", "metadata", "uuid", "window"]),
       m=mutations)
def test_mutated_manifest_attributes_give_only_store_errors(pristine, tmp_path, attr, m):
    """Any JSON attribute of the manifest mutated (or replaced by 100k levels of nesting): the store
    opens (from the intact record) or refuses with a store error."""
    path = _fresh_copy(pristine, tmp_path)
    with h5py.File(path, "r+") as f:
        old = f.attrs[attr]
        try:
            doc = json.loads(old)
            f.attrs[attr] = _dumps(_mutated(doc, *m))
        except (TypeError, ValueError):  # not JSON (uuid, window): replaced by the value's text
            f.attrs[attr] = _dumps(m[1])
    _only_store_errors(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mutations)
def test_mutated_sums_file_gives_only_store_errors(pristine, tmp_path, m):
    """A full segment's ``.sums`` file mutated: verify reports it (or the store refuses), never raw."""
    path = _fresh_copy(pristine, tmp_path)
    sums = os.path.join(segment_dir(path), "transitions-000001.sums")
    doc = json.loads(open(sums).read())
    with open(sums, "w") as f:
        f.write(_dumps(_mutated(doc, *m)))
    _only_store_errors(path)


@pytest.mark.parametrize("where", ["record", "manifest", "sums"])
def test_deep_json_is_a_store_error_in_the_cli(pristine, tmp_path, capsys, where):
    """100k levels of nesting where the store reads JSON: `replaystore info`, `verify` and `audit` print
    one line and exit 2, or (the manifest rebuilt from the record) succeed; never a traceback."""
    from replaystore.cli import main
    from replaystore.store.format._record import record_file

    path = _fresh_copy(pristine, tmp_path)
    if where == "record":
        with open(path + ".commit", "wb") as f:
            f.write(record_file(DEEP.encode(), 5))
        os.remove(path)
    elif where == "manifest":
        with h5py.File(path, "r+") as f:
            f.attrs["session"] = DEEP
        os.remove(path + ".commit")
    else:
        with open(os.path.join(segment_dir(path), "transitions-000001.sums"), "w") as f:
            f.write(DEEP)
    for cmd in (["info", path], ["verify", path], ["audit", path, "--out", str(tmp_path / "audit")]):
        code = main(cmd)
        got = capsys.readouterr()
        assert "Traceback" not in got.err + got.out
        if where != "sums":  # the store cannot be opened: one line, exit 2
            assert (2, 1) == (code, len(got.err.strip().splitlines())), (cmd, got.err)
            assert "nests 100000 levels deep" in got.err, got.err
        elif cmd[0] == "verify":  # the store opens; verify names the damaged checksum file
            assert 1 == code, got
            assert "nests 100000 levels deep" in got.out + got.err


def test_damaged_uuid_in_the_manifest_is_rebuilt_or_refused(pristine, tmp_path):
    """One damaged character in the manifest's uuid: never a raw ValueError. With the record intact
    the store opens from it."""
    path = _fresh_copy(pristine, tmp_path)
    with h5py.File(path, "r+") as f:
        u = str(f.attrs["uuid"])
        f.attrs["uuid"] = u[:5] + "z" + u[6:]
    with pytest.warns(RuntimeWarning, match="not a uuid"):
        with ReplayStore.open(path) as r:
            check_writer_rows(r, 0, 2500)
    os.remove(path + ".commit")
    with pytest.raises(errors.DamagedStoreError, match="not a uuid"):
        ReplayStore.open(path)


# ----------------------------------------------------------------------------- paths and links
def test_table_name_with_dotdot_in_the_record_is_refused(pristine, tmp_path):
    """A record naming a table ``../../x`` would read (and a writer write) segments outside the store."""
    path = _fresh_copy(pristine, tmp_path)
    doc = read_record_json(path)
    doc["tables"]["../../evil"] = doc["tables"]["transitions"]
    write_record_json(path, doc)
    os.remove(path)
    with pytest.raises(errors.DamagedStoreError, match=r"table name '\.\./\.\./evil' is not a plain name"):
        ReplayStore.open(path)


def test_symlinked_segment_folder_or_segment_is_refused(pristine, tmp_path):
    """A store whose segment folder, or one of whose segments, is a symlink reads files outside it: refused."""
    path = _fresh_copy(pristine, tmp_path)
    folder = segment_dir(path)
    os.rename(folder, folder + ".elsewhere")
    os.symlink(folder + ".elsewhere", folder)
    for mode in ("r", "a"):
        with pytest.raises(errors.DamagedStoreError, match=r"run\.h5\.d is a symbolic link"):
            ReplayStore.open(path, mode)
    os.remove(folder)
    os.rename(folder + ".elsewhere", folder)
    seg = os.path.join(folder, segment_name("transitions", 1))
    os.rename(seg, str(tmp_path / "outside.h5"))
    os.symlink(str(tmp_path / "outside.h5"), seg)
    for mode in ("r", "a"):
        with pytest.raises(errors.DamagedStoreError, match=r"transitions-000001\.h5 is not a regular file"):
            ReplayStore.open(path, mode)


def test_schema_with_a_huge_shape_is_refused(pristine, tmp_path):
    """A record whose schema claims (2**32, 2**32) floats per row (int64 wraps that to 0 bytes) is
    refused before any array is made."""
    path = _fresh_copy(pristine, tmp_path)
    doc = read_record_json(path)
    cols = json.loads(doc["tables"]["transitions"]["schema"])
    cols[0]["shape"] = [2**32, 2**32]
    doc["tables"]["transitions"]["schema"] = json.dumps(cols)
    write_record_json(path, doc)
    os.remove(path)
    with pytest.raises(errors.DamagedStoreError, match=r"bytes per row"):
        ReplayStore.open(path)


# ------------------------------------------------------------------------------ memory and size
@pytest.mark.parametrize("change, match", [
    (lambda d: d["tables"]["transitions"].update(rows=2**60), "damaged"),
    (lambda d: d["tables"]["transitions"].update(segment_rows=2**60, file_bytes=2**62), "damaged"),
    (lambda d: d["tables"]["transitions"].update(file_bytes=2**62), r"file_bytes=4611686018427387904: expected an integer"),
    (lambda d: d["tables"]["transitions"].update(file_bytes=2**61), "shorter than the 2305843009213693952"),
    (lambda d: d["tables"]["transitions"].update(first_segment=2**40, rows=2**50), "damaged"),
    (lambda d: d["identity"].update(window=2**62), r"window is 4611686018427387904, not an integer in \[1, 1099511627776\]"),
    (lambda d: d["identity"].update(retain=1e300), r"retain is 1e\+300, not an integer"),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_record_claiming_huge_sizes_is_refused(pristine, tmp_path, change, match):
    """A record (standing in for a missing manifest) that claims 2**60 rows, 2**60-row segments,
    2**62-byte files or a 2**62-row window is refused at open with a store error, before anything
    of that size is allocated, mapped or made (a priority file is sized by the window)."""
    path = _fresh_copy(pristine, tmp_path)
    doc = read_record_json(path)
    change(doc)
    write_record_json(path, doc)
    os.remove(path)
    with pytest.raises(errors.StoreError, match=match):
        ReplayStore.open(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=mutations)
def test_mutated_run_record_gives_only_run_errors(tmp_path, m):
    """Any field of a run's ``run.json`` replaced by any JSON value (wrong types, 100k levels of
    nesting): ``Run.open`` returns a run or raises a ``RunError``, never a raw error."""
    import tempfile

    from replaystore.store import Run

    d = tempfile.mkdtemp(dir=tmp_path)
    Run.create(os.path.join(d, "run"), writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=100)
    rec = os.path.join(d, "run", "run.json")
    doc = json.loads(open(rec).read())
    with open(rec, "w") as f:
        f.write(_dumps(_mutated(doc, *m)))
    try:
        Run.open(os.path.join(d, "run"))
    except errors.RunError:
        pass


def test_fifo_as_run_record_does_not_hang(tmp_path):
    """A FIFO at a run's record path is refused, not opened (which would wait for a writer forever)."""
    from replaystore.store import Run

    Run.create(tmp_path / "run", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=100)
    os.remove(tmp_path / "run" / "run.json")
    os.mkfifo(tmp_path / "run" / "run.json")
    with pytest.raises(errors.RunError, match="not a regular file"):
        _within(20, lambda: Run.open(tmp_path / "run"))


def test_json_of_millions_of_empty_lists_is_refused_before_parsing():
    """Two million ``[]`` (4 MB of text, ~130 MB once parsed) in a store's JSON are refused by count."""
    from replaystore.store.files._untrusted import loads

    with pytest.raises(errors.DamagedStoreError, match=r"commit record x is damaged or hostile: .* 2000001 lists"):
        loads("[" + ",".join(["[]"] * 2_000_000) + "]", "commit record x")
    assert [[1, "[[["]] * 3 == loads(json.dumps([[1, "[[["]] * 3), "a record")  # brackets in strings don't count


@pytest.mark.parametrize("kind", ["external link", "external FIFO", "virtual dataset"])
def test_format1_store_whose_column_reaches_outside_is_refused(tmp_path, kind):
    """A format-1 store (read through h5py's chunk index) whose ``state`` column is an external link,
    external storage on a FIFO or a virtual dataset: refused at open, without hanging."""
    import shutil

    path = str(tmp_path / "v1.h5")
    shutil.copy(os.path.join(os.path.dirname(__file__), "..", "data", "healthy.h5"), path)
    with h5py.File(path, "r+") as f:
        f.move("transitions/state", "transitions/kept")
        make = {"external link": _external_link, "external FIFO": _external_fifo, "virtual dataset": _virtual}[kind]
        make(f["transitions"], str(tmp_path / "x.d"))
    reason = {"external link": "ExternalLink", "external FIFO": "external storage", "virtual dataset": "virtual"}[kind]
    with pytest.raises(errors.DamagedStoreError, match=rf"'state' .*{reason}|{reason}.*'state'|'state' is a {reason}"):
        _within(20, lambda: ReplayStore.open(path))


def test_manifest_whose_datasets_point_elsewhere_is_never_read_through(pristine, tmp_path):
    """The store reads only the manifest's attributes, never its datasets: a manifest whose virtual
    ``state`` points at another file, and whose ``index`` is an external link to a FIFO, changes no
    row a reader or writer returns, hangs nothing, and the writer's rebuilt manifest drops them."""
    path = _fresh_copy(pristine, tmp_path)
    folder = segment_dir(path)
    with h5py.File(path, "r+") as f:
        del f["transitions/state"]
        _virtual(f["transitions"], folder)
        os.mkfifo(os.path.join(os.path.dirname(folder), "fifo2"))
        f["elsewhere"] = h5py.ExternalLink(os.path.join(os.path.dirname(folder), "fifo2"), "x")
    with ReplayStore.open(path) as r:
        _within(20, lambda: check_writer_rows(r, 0, 2500))
    with ReplayStore.open(path, "a") as w:
        append_writer_rows(w, 2500, 2510)
    with h5py.File(path, "r") as f:
        assert "elsewhere" not in f and f["transitions/state"].virtual_sources()[0].file_name.startswith("run.h5.d/")


def _depth_and_count(o) -> tuple[int, int]:
    """Nesting depth and number of lists and dicts of a parsed JSON value (recursive: small values)."""
    if isinstance(o, (list, dict)):
        inner = [_depth_and_count(v) for v in (o.values() if isinstance(o, dict) else o)]
        return 1 + max([d for d, _ in inner], default=0), 1 + sum(c for _, c in inner)
    return 0, 0


tricky_text = st.text(st.sampled_from('ab"\\[]{}'), max_size=6)
tricky_json = st.recursive(st.none() | st.integers() | tricky_text,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
                           max_leaves=40)


@settings(max_examples=300, deadline=None)
@given(value=tricky_json, ascii_only=st.booleans())
def test_json_shape_scan_matches_the_parsed_value(value, ascii_only):
    """The vectorized scan's depth and container count equal the parsed value's, whatever quotes,
    backslashes and brackets its strings hold."""
    from replaystore.store.files._untrusted import _scan

    assert _depth_and_count(value) == _scan(json.dumps(value, ensure_ascii=ascii_only))


@pytest.mark.parametrize("uuid", ["not-a-uuid", 12, None])
def test_record_whose_uuid_is_not_one_is_refused(pristine, tmp_path, uuid):
    """A commit record standing in for a missing manifest, whose uuid is damaged (found by the
    Hypothesis test above): a store error, not the raw ValueError of making segment identities."""
    path = _fresh_copy(pristine, tmp_path)
    doc = read_record_json(path)
    doc["uuid"] = uuid
    write_record_json(path, doc)
    os.remove(path)
    with pytest.raises(errors.DamagedStoreError, match=r"commit record .* is damaged .*uuid"):
        ReplayStore.open(path)
