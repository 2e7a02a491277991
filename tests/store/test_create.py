"""Creating a store is atomic (``store/write/_create.py``), with real racing processes: exactly one gets
a writer, the others ``StoreExistsError`` (a ``FileExistsError``), and no creator, even one
killed with SIGKILL mid-creation, leaves the name unusable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from replaystore.store import ReplayStore, Run, errors
from replaystore.store.write import _create

import writer_proc
from store_helpers import check_writer_rows

ENV = dict(os.environ, OMP_NUM_THREADS="1")
RACERS, TRIALS = 8, 3

# Each racer waits for trial t's go file, creates (or, as a shard, create_shard), prints what it
# got, and a winner holds its writer open until the test says every racer has answered.
RACER = """
import os, sys, time
from replaystore.store import ReplayStore, Run, errors
import writer_proc
from store_helpers import append_writer_rows
base, trials, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for t in range(trials):
    while not os.path.exists(f"{base}-go-{t}"):
        time.sleep(0.0005)
    try:
        if mode == "store":
            s = ReplayStore.create(f"{base}-{t}.h5", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                                   segment_rows=1024, chunk_bytes=4096)
        elif mode == "shard":
            s = Run.open(f"{base}-run-{t}").create_shard("w0", segment_rows=1024, chunk_bytes=4096)
        else:
            Run.create(f"{base}-newrun-{t}", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
            print(t, "writer", flush=True)
            continue
    except errors.StoreExistsError as e:
        print(t, "exists", isinstance(e, FileExistsError), flush=True)
        continue
    except errors.StoreLockedError:
        print(t, "locked", flush=True)
        continue
    append_writer_rows(s, 0, 10)
    print(t, "writer", flush=True)
    while not os.path.exists(f"{base}-release-{t}"):
        time.sleep(0.001)
    s.close()
"""


def _racers(base, mode: str) -> list[list[str]]:
    here = os.path.dirname(__file__)
    src = f"import sys; sys.path.insert(0, {here!r})\n" + textwrap.dedent(RACER)
    procs = [subprocess.Popen([sys.executable, "-c", src, base, str(TRIALS), mode], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(RACERS)]
    got = []
    for t in range(TRIALS):
        open(f"{base}-go-{t}", "w").close()
        got.append([p.stdout.readline().split(" ", 1)[-1].strip() for p in procs])
        open(f"{base}-release-{t}", "w").close()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert 0 == p.returncode, err[-2000:]
    return got


def test_racing_creators_exactly_one_writer_and_the_store_is_usable(tmp_path):
    """8 processes create one store at once, 3 times: exactly one gets a writer, the other 7 get
    StoreExistsError that is also a FileExistsError; the store then opens, holds the winner's rows
    and takes more."""
    base = str(tmp_path / "s")
    for t, answers in enumerate(_racers(base, "store")):
        assert (1, RACERS - 1) == (answers.count("writer"), answers.count("exists True")), answers
        with ReplayStore.open(f"{base}-{t}.h5", "a") as s:
            check_writer_rows(s, 0, 10)
            s.extend(writer_proc.given(writer_proc.make_rows(10, 20)))
        with ReplayStore.open(f"{base}-{t}.h5") as r:
            assert 20 == len(r)
    assert [] == [n for n in os.listdir(tmp_path) if ".creating-" in n]


def test_racing_shard_creators_exactly_one_writer(tmp_path):
    """8 processes run ``create_shard`` for one new shard at once: one writer; the others are told
    it is locked or exists (never a second writer, never an unusable shard)."""
    base = str(tmp_path / "s")
    for t in range(TRIALS):
        Run.create(f"{base}-run-{t}", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
    for t, answers in enumerate(_racers(base, "shard")):
        assert 1 == answers.count("writer") and all(a in ("writer", "locked", "exists True") for a in answers), answers
        with Run.open(f"{base}-run-{t}").open_shard("w0") as r:
            check_writer_rows(r, 0, 10)


def test_racing_run_creators_exactly_one_makes_the_run(tmp_path):
    """8 processes create one run folder at once: one makes it, the others get StoreExistsError
    (a FileExistsError), and the run record is the winner's (its shards open)."""
    base = str(tmp_path / "s")
    for t, answers in enumerate(_racers(base, "run")):
        assert (1, RACERS - 1) == (answers.count("writer"), answers.count("exists True")), answers
        run = Run.open(f"{base}-newrun-{t}")
        with run.create_shard("w0") as s:
            s.extend(writer_proc.given(writer_proc.make_rows(0, 3)))
        assert ["w0"] == run.shards()
        assert [] == [n for n in os.listdir(run.path) if n.endswith(".new")]


CREATOR = """
import sys
from replaystore.store import ReplayStore
import writer_proc
print("go", flush=True)
for i in range(10**6):
    ReplayStore.create(f"{sys.argv[1]}-{i}.h5", writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                       segment_rows=1024, chunk_bytes=4096).close()
"""


@pytest.mark.parametrize("delay", [0.0, 0.013, 0.031, 0.07])
def test_creator_killed_mid_creation_leaves_every_name_usable(tmp_path, delay):
    """A process creating stores one after another is SIGKILLed at some instruction of a create:
    every name it touched is then a whole store (opens, takes rows) or free (a create wins it), and
    the dead creator's private folder is gone after that create."""
    base = str(tmp_path / "s")
    here = os.path.dirname(__file__)
    src = f"import sys; sys.path.insert(0, {here!r})\n" + textwrap.dedent(CREATOR)
    proc = subprocess.Popen([sys.executable, "-c", src, base], stdout=subprocess.PIPE, env=ENV)
    proc.stdout.readline()
    time.sleep(0.05 + delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = sorted({int(n[2:].split(".")[0].split("-")[0]) for n in os.listdir(tmp_path) if n.startswith("s-")} |
                   {int(n.split(".")[1][2:].split("-")[0]) for n in os.listdir(tmp_path) if ".creating-" in n})
    assert names, os.listdir(tmp_path)
    for i in names:
        path = f"{base}-{i}.h5"
        if os.path.exists(path):
            s = ReplayStore.open(path, "a")
        else:
            s = ReplayStore.create(path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                                   segment_rows=1024, chunk_bytes=4096)
        with s:
            assert 0 == len(s)
            s.extend(writer_proc.given(writer_proc.make_rows(0, 5)))
        with ReplayStore.open(path) as r:
            check_writer_rows(r, 0, 5)
    left = [n for n in os.listdir(tmp_path) if ".creating-" in n]
    if left:  # only a creator killed before its claim lock existed: swept once CLAIM_GRACE old
        assert all(not os.path.exists(tmp_path / n / "claim.lock") for n in left), left
        time.sleep(_create.CLAIM_GRACE + 0.1)
        for n in left:
            ReplayStore.open(f"{base}-{int(n.split('.')[1][2:].split('-')[0])}.h5", "a").close()
    assert [] == [n for n in os.listdir(tmp_path) if ".creating-" in n]


def test_create_over_an_existing_store_is_a_store_error(store_path):
    """create() where a store exists raises StoreExistsError, which is both a StoreError and a
    FileExistsError, and says how to open it; the store is untouched."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000) as s:
        s.extend(writer_proc.given(writer_proc.make_rows(0, 3)))
    with pytest.raises(errors.StoreExistsError, match=r"already exists; open it with ReplayStore.open\(path, 'a'\)") as e:
        ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
    assert isinstance(e.value, FileExistsError) and isinstance(e.value, errors.StoreError)
    with ReplayStore.open(store_path) as r:
        check_writer_rows(r, 0, 3)


def test_folder_of_a_live_creator_is_not_taken(store_path):
    """A segment folder published but not yet finished by a live creator (its writer.lock held)
    is refused with StoreExistsError, not cleared; once that creator is gone it is cleared."""
    import fcntl

    folder = f"{store_path}.d"
    os.mkdir(folder)
    fd = os.open(os.path.join(folder, "writer.lock"), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(errors.StoreExistsError, match="is being created .* by another live process"):
            ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
    finally:
        os.close(fd)
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000) as s:
        assert 0 == len(s)


def test_folder_holding_rows_without_a_manifest_is_not_cleared(store_path):
    """A segment folder with more than an empty first segment (a store whose manifest was lost) is
    someone's rows: create refuses it and removes nothing."""
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                            segment_rows=1024, chunk_bytes=4096) as s:
        s.extend(writer_proc.given(writer_proc.make_rows(0, 2000)))
    os.remove(store_path)
    before = sorted(os.listdir(f"{store_path}.d")), open(f"{store_path}.commit", "rb").read()
    with pytest.raises(errors.StoreExistsError, match="holds rows"):
        ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
    assert before == (sorted(os.listdir(f"{store_path}.d")), open(f"{store_path}.commit", "rb").read())


def _dead_creator_leftovers(store_path, stage: str) -> None:
    """What a creator SIGKILLed between publishing its folder and its manifest leaves: the folder
    (empty first segment, unlocked writer.lock), maybe its record, and its private folder."""
    import shutil

    donor = store_path.parent / "donor" / store_path.name
    donor.parent.mkdir()
    ReplayStore.create(donor, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000, segment_rows=1024,
                       chunk_bytes=4096).close()
    os.rename(f"{donor}.d", f"{store_path}.d")
    if stage == "record":
        os.rename(f"{donor}.commit", f"{store_path}.commit")
    private = store_path.parent / f".{store_path.name}.creating-dead"
    private.mkdir()
    (private / "claim.lock").write_bytes(b"")
    os.rename(donor, private / store_path.name)
    shutil.rmtree(donor.parent)


@pytest.mark.parametrize("stage", ["folder", "record"])
def test_dead_creators_half_made_store_is_taken_over(store_path, stage):
    """A dead creator's published folder (and record) without a manifest does not open and does
    not block the name: create takes it over (its writer.lock is free), and removes the dead
    creator's private folder; the new store is whole."""
    _dead_creator_leftovers(store_path, stage)
    with pytest.raises(errors.StoreNotFoundError):
        ReplayStore.open(store_path)
    with ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000,
                            segment_rows=1024, chunk_bytes=4096) as s:
        s.extend(writer_proc.given(writer_proc.make_rows(0, 1500)))
    with ReplayStore.open(store_path) as r:
        check_writer_rows(r, 0, 1500)
    assert sorted(os.listdir(store_path.parent)) == sorted([store_path.name, f"{store_path.name}.commit",
                                                            f"{store_path.name}.d"])


def test_private_folder_of_a_live_creator_is_left_alone(store_path):
    """A private folder whose claim.lock is held (its creator is alive) survives another create of
    the same name; one whose lock is free is removed by it."""
    import fcntl

    live = store_path.parent / f".{store_path.name}.creating-live"
    live.mkdir()
    fd = os.open(live / "claim.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000).close()
        assert live.is_dir()
    finally:
        os.close(fd)
    with pytest.raises(errors.StoreExistsError):  # the name is taken, but the sweep ran first
        ReplayStore.create(store_path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=1000)
    assert not live.exists()


def test_dead_creators_folders_are_swept_by_open_and_create(tmp_path):
    """A creator killed after publishing leaves its private folder (claim.lock unlocked) beside a
    whole store: opening the store to append removes it. A folder with no claim lock yet is left
    alone while young (its creator may be between mkdir and lock) and removed once CLAIM_GRACE
    old; a folder whose claim lock is held is never touched."""
    path = tmp_path / "s.h5"
    ReplayStore.create(path, writer_proc.SCHEMA, actors=writer_proc.ACTORS, window=100).close()
    dead = tmp_path / ".s.h5.creating-0000dead"
    dead.mkdir()
    (dead / "claim.lock").write_bytes(b"")
    young = tmp_path / ".s.h5.creating-0000young"
    young.mkdir()
    (young / "claim.lock.new").write_bytes(b"")
    old = tmp_path / ".s.h5.creating-00000old"
    old.mkdir()
    (old / "claim.lock.new").write_bytes(b"")
    os.utime(old, (time.time() - 10, time.time() - 10))
    live = tmp_path / ".s.h5.creating-0000live"
    live.mkdir()
    fd = os.open(live / "claim.lock", os.O_CREAT | os.O_RDWR)
    import fcntl

    fcntl.flock(fd, fcntl.LOCK_EX)  # held by "another creator": this process's other fd cannot take it
    try:
        ReplayStore.open(path, "a").close()
        assert sorted(n for n in os.listdir(tmp_path) if ".creating-" in n) == \
            [".s.h5.creating-0000live", ".s.h5.creating-0000young"]
    finally:
        os.close(fd)
