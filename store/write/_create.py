"""Creating a store atomically: of processes racing to create one name, exactly one gets a writer,
the others get ``StoreExistsError``, and a creator killed at any instruction leaves the name usable.

Measured before: creators that each made the folder, the segment, the record and the manifest in
place left the name unusable ("its last clean close is damaged") in 2-4 of 18 trials, and two of
them sometimes both got a writer. Now a store is built whole under a private folder beside it,
``.<name>.creating-<random>/``, and published in three renames, the manifest last:

1. the segment folder, holding ``writer.lock`` (flocked by its creator until its writer closes),
   is renamed to ``<name>.d``. A directory cannot be renamed over a non-empty one, so this is
   the claim: one racer wins it;
2. the record is renamed to ``<name>.commit`` (replacing a stale one: no store owns it now);
3. the manifest is hard-linked to ``<name>``, which fails if the name exists. Only then is there
   a store: readers and ``open`` look for the manifest first.

A creator killed between 1 and 3 leaves a published folder with no manifest and an unlocked
``writer.lock``: the next creator takes that lock (a live creator still holds it), sees nothing
but the empty first segment, renames the folder away and claims the name. Private folders of
dead creators (their ``claim.lock`` is unlocked) are removed by the next create of that name,
as SQLite removes a hot journal's leftovers, after taking the lock that proves nobody uses them.

Every folder, rename, link and removal goes through the file layer, so the power-loss tests see
creation too. With ``fsync=True`` the private files are synced as they are built (the segment and
its folder's names, the record, the manifest) and the parent folder once all three names are in
it: a store whose ``create()`` returned survives a power cut, and one cut before that leaves no
name at all (or, without fsync, what a kill leaves: usable as above).
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import time
from collections.abc import Callable

from ..format import _record
from ..files._fileio import fsync_dir, layer
from ..format._format import TRANSITIONS, segment_dir, segment_name
from ..errors import DamagedStoreError, StoreExistsError

LOCK = "writer.lock"
CLAIM = "claim.lock"
_CREATING = ".creating-"
# a private folder without a claim lock this old is a dead creator's: a live one locks in microseconds
CLAIM_GRACE = 1.0


def create_published(path: str, build: Callable[[str], None], fsync: bool) -> int:
    """Run ``build(private_path)`` (which makes a whole store there) and publish the store at
    ``path``. Returns the fd of its ``writer.lock``, flocked: the caller's writer owns it."""
    parent, name = os.path.split(os.path.abspath(path))
    remove_dead_private_folders(path)
    if os.path.lexists(path):
        raise _exists(path)
    files = layer()
    stage = _private_folder(parent, f".{name}{_CREATING}")
    claim = lock = -1
    try:
        # locked under another name, then renamed: a sweeper that found claim.lock before its
        # creator locked it would take it for a dead creator's (seen once in 24 racing creates)
        claim = _locked(os.path.join(stage, CLAIM + ".new"), create=True)
        files.replace(os.path.join(stage, CLAIM + ".new"), os.path.join(stage, CLAIM))
        private = os.path.join(stage, name)
        files.mkdir(segment_dir(private))
        # made before the first segment, whose creation (with fsync) syncs the folder's names
        lock = _locked(os.path.join(segment_dir(private), LOCK), create=True)
        build(private)
        _claim_folder(path, segment_dir(private), stage)
        try:
            if os.path.lexists(path):
                raise _exists(path)
            files.replace(_record.record_path(private), _record.record_path(path))
            try:
                files.link(private, path)
            except FileExistsError:
                raise _exists(path) from None
        except BaseException:  # give the folder back, so the name stays free
            files.rename(segment_dir(path), os.path.join(stage, "unpublished.d"))
            raise
        if fsync:  # the folder, the record and the manifest: one sync makes the three names durable
            fsync_dir(path)
    except BaseException:
        if lock >= 0:
            files.close(lock)
        _remove(stage)
        if claim >= 0:
            files.close(claim)
        raise
    _remove(stage)
    files.close(claim)
    return lock


def _private_folder(parent: str, prefix: str) -> str:
    """A new folder ``<parent>/<prefix><random>`` made by this call (as ``tempfile.mkdtemp``)."""
    for _ in range(100):
        stage = os.path.join(parent, prefix + secrets.token_hex(4))
        try:
            layer().mkdir(stage, 0o700)
            return stage
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no free private folder name {prefix}* in {parent}")


def _remove(folder: str) -> None:
    """Remove a private folder, best effort: what is left is swept by the next create."""
    try:
        layer().rmtree(folder)
    except OSError:
        pass


def _exists(path: str) -> StoreExistsError:
    return StoreExistsError(f"{path} already exists; open it with ReplayStore.open(path, 'a') to append, or "
                            "remove it (the file, its .d folder and its .commit record) first")


def _locked(path: str, create: bool) -> int:
    """An fd of ``path`` holding its exclusive flock; ``BlockingIOError`` if another holds it."""
    files = layer()
    fd = files.create_new(path) if create else files.open_write(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        files.close(fd)
        raise
    return fd


def _claim_folder(path: str, folder: str, stage: str) -> None:
    """Rename ``folder`` to ``path``'s segment folder; a dead creator's half-made one is moved aside."""
    target = segment_dir(path)
    for _ in range(3):
        try:
            layer().rename(folder, target)
            return
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise
        _move_half_made(path, target, os.path.join(stage, "half-made.d"))
    raise _exists(path)


def _move_half_made(path: str, target: str, aside: str) -> None:
    """Move ``target`` to ``aside`` if it is what a creator killed before publishing its manifest
    left: no manifest, an unlocked (or no) ``writer.lock``, no file but the first segment, and no
    record of its own that counts rows. Anything else is someone's store: ``StoreExistsError``."""
    if os.path.lexists(path) or not os.path.isdir(target) or os.path.islink(target):
        raise _exists(path)
    fd = -1
    try:
        fd = _locked(os.path.join(target, LOCK), create=False)
    except FileNotFoundError:
        pass  # made by a version that locked later; its contents decide
    except BlockingIOError:
        raise StoreExistsError(f"{path} is being created (or its folder {target} written) by another live "
                               "process; open it with ReplayStore.open(path, 'a') once that is done") from None
    try:
        names = set(layer().listdir(target)) - {LOCK}
        first = segment_name(TRANSITIONS, 0)
        if any(n != first and not n.endswith(".tmp") for n in names) or _counts_rows(path):
            raise StoreExistsError(f"{target} already exists and holds rows (the segments of a store whose file "
                                   f"{path} is missing?); move or remove it first")
        layer().rename(target, aside)
    finally:
        if fd >= 0:
            layer().close(fd)
    _remove(aside)


def _counts_rows(path: str) -> bool:
    """Whether the record beside ``path`` counts rows (a damaged one may: keep what it guards)."""
    try:
        got = _record.read_record(path)
    except DamagedStoreError:
        return True
    return bool(got) and any(t.rows for t in got[0].tables.values())


def remove_dead_private_folders(path: str) -> None:
    """Remove private folders of creators of ``path`` that died (their claim lock is free).

    Called by every create of the name and every open for appending: a creator killed after
    publishing, before removing its emptied private folder, leaves one beside a whole store. A
    folder with no ``claim.lock`` yet is a creator killed in its first steps, or one alive between
    its ``mkdir`` and its lock (microseconds): it is removed once ``CLAIM_GRACE`` seconds old."""
    parent, name = os.path.split(os.path.abspath(path))
    prefix = f".{name}{_CREATING}"
    try:
        entries = [e for e in layer().listdir(parent) if e.startswith(prefix)]
    except OSError:
        return
    for e in entries:
        stage = os.path.join(parent, e)
        try:
            fd = _locked(os.path.join(stage, CLAIM), create=False)
        except FileNotFoundError:  # not claimed yet: dead once old enough (see above)
            try:
                if time.time() - os.stat(stage, follow_symlinks=False).st_mtime < CLAIM_GRACE:
                    continue
                fd = _locked(os.path.join(stage, CLAIM + ".new"), create=False)
            except FileNotFoundError:
                fd = -1  # killed between its mkdir and its lock file: nothing to lock
            except OSError:  # locked by its live creator
                continue
        except OSError:  # alive (locked), or being removed: leave it
            continue
        try:
            _remove(stage)
        finally:
            if fd >= 0:
                layer().close(fd)
