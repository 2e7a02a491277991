"""The store's one file layer (``store/files/_fileio.py``): links never followed out of the store, the
layer swapped by tests, and power cuts at every operation (``faultfs.py``) losing no commit that
returned with ``fsync=True`` and never tearing or refusing a store with ``fsync=False``."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from replaystore.store import FileLayer, ReplayStore, Sampler, Schema, file_layer, use_file_layer
from replaystore.store.errors import SamplerError, StoreError, StoreWriteError

from faultfs import Disk, RecordingLayer, coin, fingerprint, materialize, never
from store_helpers import assert_columns_equal

SCHEMA = Schema.transition((3,))
ACTORS = ("expert", "dqn")
SEG = 1024  # rows per segment: the workloads cross segment boundaries (creation, sealing)


def rows(start: int, stop: int) -> dict:
    """Rows whose every column says which row it is (any lost or mixed row shows)."""
    i = np.arange(start, stop)
    return {"actor": (i * 7 % 5 == 0).astype(np.uint8), "state": np.repeat(i[:, None], 3, 1).astype("f4"),
            "next_state": np.repeat(i[:, None] + 0.5, 3, 1).astype("f4"), "discrete_action": (i % 4).astype("i4"),
            "continuous_action": np.zeros((len(i), 0), "f4"), "reward": (i * 0.25).astype("f4"),
            "done": i % 9 == 8}


COLUMNS = ("actor", "state", "next_state", "discrete_action", "reward", "done")


# ---------------------------------------------------------------------- links
def test_symlinked_commit_tmp_never_overwrites_its_target(tmp_path):
    """A link planted at ``<store>.commit.tmp`` (to a victim outside the store) is removed, not
    written through: the victim keeps its bytes and the store commits and reopens with its rows."""
    path = tmp_path / "run.h5"
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious bytes")
    with ReplayStore.create(path, SCHEMA, actors=ACTORS, window=4096) as s:
        s.extend(rows(0, 10))
    os.symlink(victim, f"{path}.commit.tmp")
    with ReplayStore.open(path, "a") as s:  # opening writes a whole new record file through the .tmp name
        s.extend(rows(10, 20))
        assert 20 == s.commit()
    assert b"precious bytes" == victim.read_bytes()
    assert not os.path.lexists(f"{path}.commit.tmp")
    with ReplayStore.open(path) as r:
        assert_columns_equal(rows(0, 20), r.read(list(COLUMNS)), COLUMNS)


def test_symlinked_commit_record_is_replaced_not_followed(tmp_path):
    """A link at ``<store>.commit`` itself is never read or written through: the writer warns, takes
    the manifest's last clean close, and replaces the link with a record file of its own."""
    path = tmp_path / "run.h5"
    with ReplayStore.create(path, SCHEMA, actors=ACTORS, window=4096) as s:
        s.extend(rows(0, 10))
    victim = tmp_path / "victim.commit"
    os.replace(f"{path}.commit", victim)
    before = victim.read_bytes()
    os.symlink(victim, f"{path}.commit")
    with pytest.warns(RuntimeWarning, match="symbolic link"), ReplayStore.open(path, "a") as w:
        w.extend(rows(10, 12))
    assert before == victim.read_bytes()
    assert not os.path.islink(f"{path}.commit")
    with ReplayStore.open(path) as r:
        assert_columns_equal(rows(0, 12), r.read(list(COLUMNS)), COLUMNS)


def test_symlinked_priorities_never_overwrites_its_target(tmp_path):
    """A link at ``<store>.priorities`` makes a prioritized sampler over a writer refuse with a store
    error naming the link; the file it points to keeps every byte."""
    path = tmp_path / "run.h5"
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"x" * 10_000)
    with ReplayStore.create(path, SCHEMA, actors=ACTORS, window=4096) as s:
        s.extend(rows(0, 100))
    os.symlink(victim, f"{path}.priorities")
    with ReplayStore.open(path, "a") as w:
        with pytest.raises(SamplerError, match="symbolic link"):
            Sampler(w, 8, strategy="prioritized", seed=0)
    with pytest.warns(RuntimeWarning, match="symbolic link"), Sampler(path, 8, strategy="prioritized", seed=0) as r:
        assert (8,) == r.sample()["actor"].shape  # a reader starts at the maximum priority instead
    assert b"x" * 10_000 == victim.read_bytes()


@pytest.mark.parametrize("name", [".commit.tmp", ".manifest.tmp", ".d/transitions-000001.h5.tmp",
                                  ".d/transitions-000000.sums.tmp"])
def test_no_temporary_file_is_written_through_a_link(tmp_path, name):
    """Links planted at every temporary name a writer uses (the record and manifest beside the
    store, a new segment and a sealed segment's checksums in its folder) are replaced, never
    written through: the victim keeps its bytes and the rows are all there."""
    path = tmp_path / "run.h5"
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"v" * 5000)
    s = ReplayStore.create(path, SCHEMA, actors=ACTORS, window=4096, segment_rows=SEG, commit_seconds=3600)
    os.symlink(victim, f"{path}{name}")
    s.extend(rows(0, 1500))  # fills segment 0 (sealed: its .sums) and rolls over to segment 1
    s.commit()
    s.close()  # rewrites the manifest
    with ReplayStore.open(path, "a") as w:  # rewrites the record whole
        w.extend(rows(1500, 1600))
    assert b"v" * 5000 == victim.read_bytes()
    with ReplayStore.open(path) as r:
        assert_columns_equal(rows(0, 1600), r.read(list(COLUMNS)), COLUMNS)


def test_a_link_at_a_segment_is_refused_not_followed(tmp_path):
    """A link put where the next segment goes makes the roll-over fail with a store error (the
    rows stay staged) instead of writing rows into the file it points to."""
    path = tmp_path / "run.h5"
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"v" * 5000)
    with ReplayStore.create(path, SCHEMA, actors=ACTORS, window=4096, segment_rows=SEG, commit_seconds=3600) as s:
        os.symlink(victim, f"{path}.d/transitions-000001.h5")
        s.extend(rows(0, 1000))
        with pytest.raises(StoreWriteError, match="transitions-000001.h5"):
            s.extend(rows(1000, 1500))
            s.commit()
        os.remove(f"{path}.d/transitions-000001.h5")
        assert 1500 == s.commit()  # once the link is gone, the staged rows land
    assert b"v" * 5000 == victim.read_bytes()
    with ReplayStore.open(path) as r:
        assert_columns_equal(rows(0, 1500), r.read(list(COLUMNS)), COLUMNS)


def test_write_atomic_refuses_a_tmp_that_reappears(tmp_path):
    """The temporary file is made with O_EXCL after removing a leftover: a file put there in between
    (another process) fails the write with a store error, and the target keeps its old bytes."""

    class Racing(FileLayer):
        def remove(self, path):
            gone = super().remove(path)
            if path.endswith(".tmp"):
                with open(path, "wb") as f:
                    f.write(b"someone else's")
            return gone

    target = tmp_path / "f.json"
    target.write_bytes(b"old")
    with pytest.raises(StoreWriteError, match="writing the thing"):
        Racing().write_atomic(str(target), b"new", True, "thing")
    assert b"old" == target.read_bytes()


def test_use_file_layer_swaps_and_restores(tmp_path):
    """Every store write goes through the layer in force: a recording layer sees the commit's slot
    write and fsync, and the default layer is back afterwards."""
    default = file_layer()
    rec = RecordingLayer(tmp_path)
    with use_file_layer(rec):
        with ReplayStore.create(tmp_path / "s.h5", SCHEMA, actors=ACTORS, window=4096, fsync=True,
                                commit_seconds=3600) as s:
            s.extend(rows(0, 5))
            before = rec.mark()
            s.commit()
            ops = [op[0] for op in rec.log[before:]]
    assert default is file_layer()
    assert "write" in ops and "fsync" in ops and ops.index("fsync") > ops.index("write")
    with pytest.raises(TypeError, match="expected a FileLayer"):
        use_file_layer(object()).__enter__()


# ---------------------------------------------------------------------- power cuts
@pytest.mark.parametrize("fsync", [True, False])
def test_write_atomic_leaves_old_or_new_at_every_crash_point(tmp_path, fsync):
    """The one atomic replace (the record, manifest, .sums, run record, checkpoints): at every
    operation of replacing a file, a power cut (``fsync=True``; any unsynced pages kept or lost)
    or a crash (``fsync=False``; the last write torn) leaves the old bytes or the new, never a
    mix, an empty file or nothing; once it returned with ``fsync=True``, the new."""
    old, new = bytes(range(256)) * 40, b"new!" * 5000  # several pages each, different lengths
    rec = RecordingLayer(tmp_path)
    p = str(tmp_path / "f.bin")
    rec.write_atomic(p, old, True, "thing")
    start = rec.mark()
    rec.write_atomic(p, new, fsync, "thing")
    disk, rng, seen = Disk(rec.log), random.Random(0), set()
    for k in range(start, rec.mark() + 1):
        disk.advance(k)
        cuts = [disk.after_power_cut(never)] + [disk.after_power_cut(coin(rng)) for _ in range(20)] if fsync \
            else [disk.after_kill()] + [disk.after_kill(coin(rng)) for _ in range(20)]
        for files in cuts:
            got = files.get("f.bin")
            assert got in (old, new), f"crash point {k}: {None if got is None else len(got)} bytes, neither file"
            seen.add(got)
    assert new == got and {old, new} == seen


def test_a_rename_without_fsync_is_caught_by_the_power_cut(tmp_path):
    """The model is strict enough to catch the classic bug: renaming a file whose bytes were never
    fsynced over the old one can leave a file that is neither (here, empty or partial)."""

    class NoDataSync(RecordingLayer):
        def fsync(self, fd):
            pass  # the bytes never reach the disk; the folder's fsync still makes the rename durable

    rec = NoDataSync(tmp_path)
    p = str(tmp_path / "f.bin")
    rec.write_atomic(p, b"old" * 3000, True, "thing")
    rec.write_atomic(p, b"new" * 3000, True, "thing")
    disk = Disk(rec.log)
    disk.advance(rec.mark())
    assert disk.after_power_cut(never)["f.bin"] not in (b"old" * 3000, b"new" * 3000)


def test_folder_names_follow_their_parent_fsync(tmp_path):
    """The model's folders: a folder made, filled and renamed is on the disk after a power cut only
    once its new parent was synced, with the names it had at its own last sync; a hard link is a
    second name for the same bytes; before the parent's sync, nothing of it is left."""
    rec = RecordingLayer(tmp_path)
    rec.mkdir(str(tmp_path / "a"))
    rec.write_atomic(str(tmp_path / "a" / "x"), b"x" * 5000, True, "thing")  # syncs x and a's names
    rec.rename(str(tmp_path / "a"), str(tmp_path / "b"))
    rec.link(str(tmp_path / "b" / "x"), str(tmp_path / "y"))
    before = rec.mark()
    rec.fsync_dir(str(tmp_path / "y"))
    disk = Disk(rec.log)
    disk.advance(before)
    assert {} == disk.after_power_cut(never)
    assert {"b/": b"", "b/x": b"x" * 5000, "y": b"x" * 5000} == disk.after_kill()
    disk.advance(rec.mark())
    assert {"b/": b"", "b/x": b"x" * 5000, "y": b"x" * 5000} == disk.after_power_cut(never)


@pytest.mark.parametrize("fsync", [True, False])
def test_run_create_at_every_crash_point(tmp_path, fsync):
    """``Run.create`` under power cuts (every unsynced name lost) and kills: the run opens, or the
    folder holds no run and ``Run.create`` makes one there; once it returned, the run opens."""
    from replaystore.store import Run

    live = tmp_path / "live"
    live.mkdir()
    rec = RecordingLayer(live)
    with use_file_layer(rec):
        Run.create(live / "run", SCHEMA, actors=ACTORS, window=64)
    disk, seen = Disk(rec.log), 0
    for k in range(rec.mark() + 1):
        disk.advance(k)
        out = tmp_path / f"cut{k}"
        materialize(disk.after_power_cut(never) if fsync else disk.after_kill(), out)
        if os.path.exists(out / "run" / "run.json"):
            assert ACTORS == Run.open(out / "run").actors.names
            seen += 1
        else:
            assert k < rec.mark(), f"crash point {k}: Run.create had returned, no run.json"
            assert ACTORS == Run.create(out / "run", SCHEMA, actors=ACTORS, window=64).actors.names
        shutil.rmtree(out)
    assert seen >= 1


def run_workload(root: str, fsync: bool, steps: list[int], layer=RecordingLayer, retain: int | None = None):
    """Create a store under a recording layer and extend it by each of ``steps`` rows, committing
    after each (a step of 0 commits nothing new, None closes and reopens the writer); returns the log and the commits: (log index when
    it started, log index when it returned, rows)."""
    rec = layer(root)
    commits, n = [], 0
    with use_file_layer(rec):
        s = ReplayStore.create(os.path.join(root, "s.h5"), SCHEMA, actors=ACTORS, window=retain or 1 << 20,
                               commit_every=10**9, commit_seconds=1e9, fsync=fsync, segment_rows=SEG, retain=retain)
        created = rec.mark()
        commits.append((0, created, 0))
        for k in steps:
            start = rec.mark()
            if k is None:  # a writer session ends and another begins (the record replaced whole)
                s.close()
                s = ReplayStore.open(os.path.join(root, "s.h5"), "a", commit_every=10**9, commit_seconds=1e9,
                                     fsync=fsync)
                commits.append((start, rec.mark(), n))
                continue
            s.extend(rows(n, n + k))
            n += k
            start = rec.mark()
            assert n == s.commit()
            commits.append((start, rec.mark(), n))
        start = rec.mark()
        s.close()
        commits.append((start, rec.mark(), n))
    return rec.log, commits, created


class Opener:
    """Opens each distinct disk once (materialized in a fresh folder, in memory where /dev/shm is)
    and remembers what it held; ``writer=True`` also has a writer take it up again."""

    def __init__(self, tmp_path, total: int):
        self.tmp = tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp_path)
        self.seen, self.opened = {}, 0
        self.want = rows(0, total)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def rows_on(self, files: dict[str, bytes], writer: bool = False):
        """The rows of the store on this disk; None where there is no store at the name, after
        checking that the name is usable: a new store is created there (and holds a row)."""
        key = (fingerprint(files), writer)
        if key not in self.seen:
            self.seen[key] = self._open(files, writer)
        return self.seen[key]

    def _open(self, files, writer):
        self.opened += 1
        d = os.path.join(self.tmp, f"crash{self.opened}")
        materialize(files, d)
        p = os.path.join(d, "s.h5")
        try:
            if not os.path.exists(p):  # the manifest never became durable: the name must be free
                with ReplayStore.create(p, SCHEMA, actors=ACTORS, window=4096, segment_rows=SEG) as w:
                    w.extend(rows(0, 1))
                with ReplayStore.open(p) as r:
                    assert 1 == len(r)
                assert not [e for e in os.listdir(d) if e.startswith(".s.h5.creating-") and
                            os.path.exists(os.path.join(d, e, "claim.lock"))], "a dead creator's folder is left"
                return None
            with ReplayStore.open(p, "r") as r:
                n, lo = len(r), r.window_start()  # (rows before the window may be deleted: retain=)
                got = r.read(list(COLUMNS), start=lo)
                counts = r.actor_counts(start=lo)
            assert_columns_equal({c: self.want[c][lo:n] for c in COLUMNS}, got, COLUMNS,
                                 where=f"after a crash, rows [{lo}, {n}): ")
            expect = np.bincount(self.want["actor"][lo:n], minlength=len(counts))
            assert expect.tolist() == np.asarray(counts).tolist()
            if writer:
                with ReplayStore.open(p, "a", commit_seconds=1e9) as w:  # a writer takes it up again, same rows
                    assert n == len(w)
            return n
        finally:
            shutil.rmtree(d)


def check_crash_points(tmp_path, fsync: bool, steps: list[int], variants: int, seed: int, every: int = 1,
                       layer=RecordingLayer, retain: int | None = None):
    """Every crash point of the workload: the disk a power cut (``fsync=True``) or an in-order crash
    with a torn last write (``fsync=False``) leaves opens at a commit's rows, bit-identical, and with
    ``fsync=True`` at least at the last commit that returned. The crash points include the whole
    ``create()``: before it returned, the disk holds no store at the name (and a new one can be
    created there) or a store that opens. Returns (crash disks, stores opened, log)."""
    root = tmp_path / "live"
    root.mkdir()
    log, commits, created = run_workload(str(root), fsync, steps, layer, retain)
    opener = Opener(tmp_path, commits[-1][2])
    disk, rng, disks = Disk(log), random.Random(seed), 0
    try:
        for k in range(0, len(log) + 1, every):
            disk.advance(k)
            returned = max((n for _, end, n in commits if end <= k), default=0)
            possible = {n for start, _, n in commits if start <= k}
            cuts = ([disk.after_power_cut(never)] + [disk.after_power_cut(coin(rng)) for _ in range(variants)]) \
                if fsync else [disk.after_kill()] + [disk.after_kill(coin(rng)) for _ in range(variants)]
            for j, files in enumerate(cuts):
                disks += 1
                # a writer also takes up the first disk of every fourth point (each costs a manifest)
                n = opener.rows_on(files, writer=j == 0 and k % 4 == 0)
                if n is None:  # no store: only while create() had not returned (and a new one fitted there)
                    assert k < created, f"crash point {k}: no store at the name after create() returned"
                    continue
                assert n in possible, f"crash point {k}: {n} rows is no commit's count ({sorted(possible)})"
                if fsync:
                    assert n >= returned, f"crash point {k}: {n} rows, but the commit of {returned} had returned"
    finally:
        opener.close()
    return disks, opener.opened, log


def test_fsync_commits_survive_every_power_cut(tmp_path):
    """With ``fsync=True``, at every one of the workload's operations a power cut that loses every
    unsynced page, or a random part of them, and every unsynced rename, keeps every commit that
    returned, bit-identical with exact actor counts (a writer reopens it too)."""
    disks, opened, _ = check_crash_points(tmp_path, True, [5, 300, 800, 0, None, 1000, 1, 2100], variants=5, seed=1)
    assert disks >= 1000, disks
    assert opened >= 8, opened  # distinct disks really opened (the rest are the same bytes)


def test_without_fsync_a_crash_opens_at_an_earlier_commit(tmp_path):
    """With ``fsync=False``, a crash at any operation with the last write torn to random pages opens
    at some commit's rows, never torn and never refused."""
    disks, opened, _ = check_crash_points(tmp_path, False, [5, 300, 800, 0, None, 1000, 1, 2100], variants=3, seed=2)
    assert disks >= 500, disks
    assert opened >= 8, opened


def test_retention_deletes_survive_every_power_cut(tmp_path):
    """With retention deleting whole old segments after the record stops naming them, a power cut
    at any point (the unlink lost or kept) opens at a returned commit with its window intact."""
    disks, opened, log = check_crash_points(tmp_path, True, [1500, 1500, 1500, 1500], variants=2, seed=3,
                                            retain=2 * SEG)
    assert [op[1] for op in log if op[0] == "unlink" and op[1].endswith("0.h5")] == ["s.h5.d/transitions-000000.h5"]
    assert disks >= 300, disks
    assert opened >= 8, opened


def test_the_power_cut_check_catches_a_missing_fsync(tmp_path):
    """The check can fail: a layer whose segment fsyncs never reach the disk (as if the store
    skipped them) loses rows of commits that returned, and the check says so."""

    class RowsNeverSynced(RecordingLayer):
        def fsync(self, fd):
            names = [p for p, fid in self._names.items() if fid == self._fds.get(fd)]
            if names and names[0].startswith("s.h5.d/transitions-") and names[0].endswith(".h5"):
                return  # dropped: the rows written into a segment are never made durable
            super().fsync(fd)

    with pytest.raises(AssertionError, match="had returned|after a crash"):
        check_crash_points(tmp_path, True, [5, 300], variants=0, seed=0, layer=RowsNeverSynced)


def test_the_power_cut_check_catches_an_unsynced_segment_folder(tmp_path):
    """The check sees creation: a layer that never syncs the new store's segment folder (as if
    create() skipped it) leaves, after create() returned, a store whose first segment is gone."""

    class FolderNeverSynced(RecordingLayer):
        def fsync_dir(self, path):
            if os.path.basename(os.path.dirname(path)) != "s.h5.d":
                super().fsync_dir(path)

    with pytest.raises(StoreError, match="transitions-000000"):
        check_crash_points(tmp_path, True, [5, 300], variants=0, seed=0, layer=FolderNeverSynced)


def test_the_crash_check_catches_a_name_left_unusable(tmp_path, monkeypatch):
    """The check sees a crash in the middle of create(): without moving a dead creator's published
    but manifest-less folder aside, the next create() of the name is refused, and the check says so."""
    from replaystore.store.write import _create

    def refuse(path, target, aside):
        raise _create._exists(path)

    monkeypatch.setattr(_create, "_move_half_made", refuse)
    with pytest.raises(StoreError, match="already exists"):
        check_crash_points(tmp_path, False, [5], variants=0, seed=0)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.none() | st.integers(0, 1500), min_size=1, max_size=5), fsync=st.booleans(),
       seed=st.integers(0, 2**16))
def test_power_cuts_on_random_workloads(tmp_path_factory, steps, fsync, seed):
    """Hypothesis: any sequence of extends, commits and writer sessions, either fsync mode, a sample of crash points
    with random unsynced pages kept: the same promises."""
    tmp = tmp_path_factory.mktemp("cuts")
    check_crash_points(tmp, fsync, steps, variants=1, seed=seed, every=4)


@pytest.mark.parametrize("fsync", [True, False])
def test_priorities_survive_every_crash_point(tmp_path, fsync):
    """A prioritized sampler's ``.priorities`` file: at every operation, a power cut (``fsync=True``)
    or a crash with the last write torn (``fsync=False``) loads one of the saves exactly, or none
    before the first, never a damaged file; with ``fsync=True``, at least the last save that returned."""
    from replaystore.store.sample._sampling_priorities import PriorityFile

    rec, rng = RecordingLayer(tmp_path), np.random.default_rng(0)
    saves, marks = [], []
    with use_file_layer(rec):
        f = PriorityFile(str(tmp_path / "s.priorities"), "u-1", 3000, writable=True, fsync=fsync)
        assert f.load() is None
        made = rec.mark()
        for i in range(4):
            raw = (rng.random(3000) + 1).astype(np.float32).astype(np.float64)  # stored as float32
            f.save(raw, 3000 + i, float(raw.max()))
            saves.append(raw)
            marks.append(rec.mark())
        f.close()
    disk, crng, checked = Disk(rec.log), random.Random(1), 0
    out = tmp_path / "cut"
    for k in range(made, rec.mark() + 1):
        disk.advance(k)
        cuts = [disk.after_power_cut(never)] + [disk.after_power_cut(coin(crng)) for _ in range(4)] if fsync \
            else [disk.after_kill()] + [disk.after_kill(coin(crng)) for _ in range(4)]
        for files in cuts:
            shutil.rmtree(out, ignore_errors=True)
            materialize(files, out)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a damaged file warns: none may be
                got = PriorityFile(str(out / "s.priorities"), "u-1", 3000, writable=False).load()
            returned = sum(m <= k for m in marks)
            if got is None:
                assert not (fsync and returned), f"crash point {k}: save {returned} had returned, none loads"
            else:
                assert saves[got.seq - 1].tolist() == got.raw.tolist() and 3000 + got.seq - 1 == got.rows
                assert not fsync or got.seq >= returned, f"crash point {k}: save {got.seq} loads, {returned} returned"
            checked += 1
    assert 5 * (rec.mark() - made + 1) == checked
