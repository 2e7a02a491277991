"""Which mapped files may have changed, for every file a process watches, in one system call.

A reader checks each sealed segment before it touches the segment's pages: an ``fstat`` (a file
that shrank under its mapping is SIGBUS; one modified since it was sealed is re-verified against
its checksums). That is ~1 us a segment a batch, and a batch of a large store touches many
segments (a 32-row image batch of a 100k-row frames-once store touches 4-5; of a 1M-row one,
~20). The kernel can say it instead: an inotify watch on each checked file, and one ``poll`` of
the process's inotify descriptor a batch tells whether any of them was written, truncated or had
its attributes (mtime) changed since it was last checked. Only the files named by an event are
checked again.

The gate only filters, it never replaces a check: a file with no watch, a watch that failed, a
queue that overflowed or a forked child's inherited descriptor all fall back to checking the
file. Two gaps of inotify are closed by a sweep: changes made on another machine (a network file
system gives no events) and writes through another process's shared mapping (mtime changes with
no event) are noticed within ``SWEEP_SECONDS``, as every watched file counts as changed then.

Linux only (inotify through libc); elsewhere every check runs, as before.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import threading
import time

# inotify(7)
IN_MODIFY, IN_ATTRIB, IN_IGNORED, IN_Q_OVERFLOW = 0x2, 0x4, 0x8000, 0x4000
_MASK = IN_MODIFY | IN_ATTRIB  # writes and truncation; mtime, links (a rename over the file), mode
_NONBLOCK, _CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (of the name that follows: none for files)
SWEEP_SECONDS = 0.1  # how stale a quiet answer may be for changes inotify does not report


class ChangeGate:
    """The process's inotify watches on files it has checked, and a counter per watch.

    ``watch(fd)`` returns a token for an open file (or None: no gate); ``stamp(token)`` is a
    value that changes whenever the file may have changed since. A caller checks a file, keeps
    the stamp taken *before* the check, and skips the next check while ``stamp`` is unchanged and
    ``poll()`` was called since: any write, truncation or attribute change the kernel saw after
    the stamp was taken makes it differ. ``stamp`` of None is never equal to a kept stamp.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._libc = None
        self._fd = -1
        self._poller = None
        self._pid = -1
        self._tick = 0
        self._gen = 0  # which inotify instance: a token is (gen << 32) | wd, so a forked child's
        # new instance, whose watch numbers start again at 1, never matches a token of its parent's
        self.stamps: dict[int, int] = {}  # token -> the tick of its last event (or of its watch)
        self._users: dict[int, int] = {}  # token -> how many open files hold it (same inode: same wd)
        self._sweep_at = 0
        self._broken = False

    # -- set up ---------------------------------------------------------------------------------
    def _start(self) -> bool:
        """The inotify descriptor of this process (a forked child makes its own), or False."""
        if self._fd >= 0 and self._pid == os.getpid():
            return True
        if self._broken:
            return False
        with self._lock:
            if self._fd >= 0 and self._pid == os.getpid():
                return True
            try:
                if self._libc is None:
                    # the process's own symbols (libc among them): find_library("c") runs ldconfig, ~2.5 ms
                    libc = ctypes.CDLL(None, use_errno=True)
                    libc.inotify_init1.argtypes = [ctypes.c_int]
                    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
                    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
                    self._libc = libc
                fd = self._libc.inotify_init1(_NONBLOCK | _CLOEXEC)
            except (OSError, AttributeError, TypeError):  # no libc inotify (not Linux; CDLL(None) on Windows)
                self._broken = True
                return False
            if fd < 0:  # EMFILE: the user's inotify instances are used up; check every file
                return False
            poller = select.epoll()  # epoll: poll(0) from several threads at once (a poll object refuses)
            poller.register(fd, select.EPOLLIN)
            self._fd, self._poller, self._pid = fd, poller, os.getpid()
            self._gen += 1
            self.stamps, self._users = {}, {}
            self._sweep_at = time.monotonic_ns() + int(SWEEP_SECONDS * 1e9)
            return True

    def _forked(self) -> None:
        """In a forked child: the inherited descriptor is the parent's queue; drop it (not closed
        under the parent's feet: it is ours to close, the parent keeps its own copy)."""
        if self._fd >= 0:
            for close in (self._poller.close, lambda: os.close(self._fd)):
                try:
                    close()
                except OSError:
                    pass
        self._fd, self._poller, self._pid = -1, None, -1
        self.stamps, self._users = {}, {}
        self._lock = threading.Lock()

    def watch(self, fd: int) -> int | None:
        """A token for the open file ``fd`` (its inotify watch, tagged with this instance), or None
        where there is no gate.
        Watched through ``/proc/self/fd``: the file we hold, even if its name now points elsewhere."""
        if not self._start():
            return None
        with self._lock:
            wd = self._libc.inotify_add_watch(self._fd, f"/proc/self/fd/{fd}".encode(), _MASK)
            if wd < 0:  # ENOSPC (max_user_watches) or a file system without inotify
                return None
            token = (self._gen << 32) | wd
            self._users[token] = self._users.get(token, 0) + 1
            if token not in self.stamps:
                self._tick += 1
                self.stamps[token] = self._tick
            return token

    def unwatch(self, token: int | None) -> None:
        if token is None or self._fd < 0 or token >> 32 != self._gen:  # none, or another instance's
            return
        with self._lock:
            n = self._users.get(token, 0) - 1
            if n > 0:
                self._users[token] = n
                return
            self._users.pop(token, None)
            if self.stamps.pop(token, None) is not None:
                self._libc.inotify_rm_watch(self._fd, token & 0xFFFFFFFF)  # EINVAL if the kernel dropped it

    # -- per batch ------------------------------------------------------------------------------
    def poll(self) -> None:
        """Read what the kernel queued since the last call (one ``poll`` when nothing was)."""
        poller = self._poller
        if poller is None:  # no gate yet, or a forked child's (reset by _forked): nothing to read
            return
        now = time.monotonic_ns()
        if now >= self._sweep_at:
            self._sweep(now)
        if poller.poll(0):
            self._drain()

    def _sweep(self, now: int) -> None:
        with self._lock:
            self._tick += 1
            tick = self._tick
            for wd in self.stamps:
                self.stamps[wd] = tick
            self._sweep_at = now + int(SWEEP_SECONDS * 1e9)

    def _drain(self) -> None:
        with self._lock:
            fd = self._fd
            while True:
                try:
                    buf = os.read(fd, 65536)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
                if not buf:
                    return
                self._tick += 1
                tick, at, stamps, gen = self._tick, 0, self.stamps, self._gen << 32
                while at + _EVENT.size <= len(buf):
                    wd, mask, _, n = _EVENT.unpack_from(buf, at)
                    at += _EVENT.size + n
                    token = gen | wd
                    if mask & IN_Q_OVERFLOW:  # events were lost: every file counts as changed
                        for w in stamps:
                            stamps[w] = tick
                    elif mask & IN_IGNORED:  # the watch is gone (file deleted): never quiet again
                        stamps.pop(token, None)
                    elif token in stamps:
                        stamps[token] = tick


GATE = ChangeGate()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=GATE._forked)
