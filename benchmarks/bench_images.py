"""Image observations: bytes per transition, write speed and sampling, frames once against the plain layout.

    python benchmarks/bench_images.py                                  # 100k frames-once rows, 16k plain
    python benchmarks/bench_images.py --rows 20000 --plain-rows 8192 --repeats 60   # quicker
    python benchmarks/bench_images.py --frames clean               # flat backgrounds, as rendered frames

Atari-like rollouts (84x84 grey frames stacked 4 deep, on the last axis or with ``--axis 0`` on
the first as gymnasium's FrameStackObservation does; episodes of 20-400 steps, reset padding;
``--frames noisy``, the default, on a field of per-pixel noise, a compressor's worst case, or
``--frames clean`` on a flat field, as a renderer or an Atari emulator draws them: see
``frames``). Prints, each against a reference measured in the same run:

- bytes on disk per transition of the frames-once store (blocks allocated, all files) against
  the 7,056-byte floor of one frame a step, and of the plain layout;
- rows/s written (``extend`` in blocks of 1,024 rows, committed) against ``np.save`` of the same
  new frames to a fresh file;
- ms per Sampler batch (uniform, every column, numpy) of 32 and 256 rows against the same rows
  gathered from in-RAM arrays (``arr[idx]`` per column): the plain store against its stacks in
  RAM, the frames-once store against in-RAM frames assembled into stacks by the same ids, and
  against in-RAM stacks. Target (issue 17): >= 0.9x.

Calls are interleaved in rounds (``bench_sampler.interleaved_medians``) so load on a shared
machine falls on every contender alike. The page cache is warmed first.

What makes the in-RAM reference fair: both sides run in one process, so they share malloc's
state (after the writes above freed 28 MB blocks, glibc serves a batch's arrays from its heap,
reused from batch to batch; a fresh process that freed nothing large maps and faults every
900 KB array anew, ~1 ms a 32-row batch on either side). Both allocate new output arrays per
batch. And every page either side reads has been touched in this process before timing: the
in-RAM arrays when they were read, the store's mappings by one untimed pass over its rows
(``touch``; with ``--first-pass`` that pass is skipped, and the store's timed batches also
fill its page tables: 5-27 minor faults a 32-row batch at first, ~0 once every row was read).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np

from bench_sampler import interleaved_medians, warm_page_cache
from replaystore.store import FrameStack, ReplayStore, Sampler, Schema, store_files

try:
    from replaystore.store.read._frames import interleave
except ImportError:  # a store from before it (an A/B run): one strided copy per depth, as it did

    def interleave(frames, dst, axis):
        dv = np.moveaxis(dst, axis, 1)
        for j in range(frames.shape[1]):
            dv[:, j] = frames[:, j]

DEPTH, SIZE, FLOOR = 4, 84, 84 * 84
ACTORS = ("expert", "dqn")


FRAME_KINDS = ("noisy", "clean")


def frames(n: int, seed: int, kind: str = "noisy") -> np.ndarray:
    """``n`` Atari-like frames: a paddle and a ball that move on a dark field.

    ``kind="noisy"`` (the default, what every figure before issue 17's codec branch used): the field
    is uniform noise 0..5 in every pixel, a worst case for a compressor (no two neighbouring bytes
    alike; LZ4 finds little without a bit shuffle). ``kind="clean"``: the same sprites on a flat
    field (0), what a renderer or an Atari emulator draws (ALE's frames have flat backgrounds).
    """
    if kind not in FRAME_KINDS:
        raise ValueError(f"frames(kind={kind!r}): expected one of {FRAME_KINDS}")
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 6, (n, SIZE, SIZE), dtype=np.uint8)  # drawn either way: the same rng stream after
    if kind == "clean":
        f[:] = 0
    t = np.arange(n)
    for k, (h, w, vy, vx) in enumerate(((4, 4, 3, 5), (3, 12, 0, 2))):
        y, x = (vy * t + 9 * k) % (SIZE - h), (vx * t) % (SIZE - w)
        for dy in range(h):
            f[t, y + dy, :] = np.where((np.arange(SIZE) >= x[:, None]) & (np.arange(SIZE) < x[:, None] + w), 180 + k * 40,
                                       f[t, y + dy, :])
    return f


def rollout_blocks(rows: int, block: int, seed: int = 0, axis: int = -1, kind: str = "noisy"):
    """Blocks of transitions as an agent with gymnasium's FrameStackObservation gives them, of
    ``frames(..., kind)``."""
    rng = np.random.default_rng(seed)
    stream = frames(rows + rows // 20 + 8, seed, kind)
    pos, left, stack = 0, 0, None
    done_at = []
    for start in range(0, rows, block):
        n = min(block, rows - start)
        state = np.empty((n, *stack_shape(axis)), np.uint8)
        nxt = np.empty_like(state)
        done = np.zeros(n, bool)
        for i in range(n):
            if stack is None:
                f0 = stream[pos]
                pos += 1
                stack = [f0] * DEPTH
                left = int(rng.integers(20, 400))
            new = stack[1:] + [stream[pos]]
            pos += 1
            left -= 1
            state[i] = np.stack(stack, axis=axis)
            nxt[i] = np.stack(new, axis=axis)
            done[i] = left == 0
            stack = None if done[i] else new
        done_at.append(done)
        yield {"state": state, "next_state": nxt, "done": done, "discrete_action": rng.integers(0, 6, n).astype(np.int32),
               "continuous_action": np.zeros((n, 0), np.float32), "reward": rng.normal(size=n).astype(np.float32),
               "actor": np.where(rng.random(n) < 0.25, "expert", "dqn")}


def disk_bytes(path: str) -> int:
    total = 0
    for p in store_files(path):
        paths = [os.path.join(r, f) for r, _, fs in os.walk(p) for f in fs] if os.path.isdir(p) else [p]
        total += sum(os.stat(q).st_blocks * 512 for q in paths if os.path.isfile(q))
    return total


def stack_shape(axis: int) -> tuple:
    return (DEPTH, SIZE, SIZE) if axis == 0 else (SIZE, SIZE, DEPTH)


def write(path: str, rows: int, framed: bool, axis: int, kind: str = "noisy") -> float:
    schema = Schema.transition(stack_shape(axis), state_dtype="uint8")
    kw = {"frames": FrameStack(DEPTH, axis=axis)} if framed else {}
    t = 0.0
    # the default window (1M): with window=rows the small columns would span window/4-row segments
    with ReplayStore.create(path, schema, actors=ACTORS, commit_every=1 << 30,
                            commit_seconds=3600.0, **kw) as s:
        for b in rollout_blocks(rows, 1024, axis=axis, kind=kind):
            a = time.perf_counter()
            s.extend(b)
            t += time.perf_counter() - a
        a = time.perf_counter()
        s.commit()
        t += time.perf_counter() - a
    return t


def np_save_seconds(folder: str, rows: int, kind: str = "noisy") -> float:
    """The reference for writing: the new frames of the same rollout, ``np.save``d to a fresh file."""
    new = np.concatenate([b["next_state"][:, -1] for b in rollout_blocks(rows, 1024, axis=0, kind=kind)])
    p = os.path.join(folder, "frames.npy")
    a = time.perf_counter()
    np.save(p, new)
    return time.perf_counter() - a


def in_ram(path: str) -> dict:
    with ReplayStore.open(path) as s:
        return s.read()


def ram_gather(arrays: dict, n: int, batch: int, seed: int):
    rng = np.random.default_rng(seed)

    def go():
        idx = np.sort(rng.integers(0, n, batch))
        return {k: a[idx] for k, a in arrays.items()}

    return go


def ram_frames_gather(path: str, n: int, batch: int, seed: int, axis: int):
    """In-RAM frames and ids (what SB3's optimize_memory_usage or Dopamine keeps), stacks assembled per batch."""
    with ReplayStore.open(path) as s:
        fr = s.read_table("frames")["frame"]
        small = s._views["transitions"]._t.read(None, 0, n)  # the stored table: frame ids, not stacks
    ids = {c: small.pop(f"{c}_frames") for c in ("state", "next_state")}
    rng = np.random.default_rng(seed)

    def go():
        idx = np.sort(rng.integers(0, n, batch))
        out = {k: a[idx] for k, a in small.items()}
        for c, i in ids.items():
            if axis == 0:  # the frames are the stack
                out[c] = fr[i[idx]]
                continue
            got = fr[i[idx]]
            dst = out[c] = np.empty((batch, SIZE, SIZE, DEPTH), fr.dtype)
            interleave(got, dst, 3)  # the fastest way measured: the store's own (store/read/_frames.py)
        return out

    return go


def touch(sampler: Sampler) -> None:
    """Read every row of the window once through the sampler's store, as a long training run does
    and as the in-RAM reference's pages were when they were read: blocks of rows strided across
    the whole window, so each block takes the same path as a batch (all segments at once)."""
    store = sampler.store
    lo, n = store.window_start(), len(store)
    step = max(1, (n - lo) // 256)
    for j in range(step):
        store.gather(np.arange(lo + j, n, step, dtype=np.int64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000, help="frames-once transitions")
    ap.add_argument("--plain-rows", type=int, default=16_384, help="plain-layout transitions (56 KB each)")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--axis", type=int, choices=(-1, 0), default=-1,
                    help="stack axis: -1 for (84, 84, 4), 0 for gymnasium's FrameStackObservation (4, 84, 84)")
    ap.add_argument("--frames", choices=FRAME_KINDS, default="noisy",
                    help="noisy: sprites on uniform noise 0..5 (a compressor's worst case, the figures before); "
                         "clean: the same sprites on a flat field, as rendered/Atari frames are")
    ap.add_argument("--first-pass", action="store_true",
                    help="skip the untimed pass over the store's rows (see touch): its page tables fill while timed")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {a.frames} frames")
    folder = tempfile.mkdtemp(prefix="bench_images_")
    try:
        fp, pp = os.path.join(folder, "framed.h5"), os.path.join(folder, "plain.h5")
        t_framed = write(fp, a.rows, True, a.axis, a.frames)
        t_save = np_save_seconds(folder, a.rows, a.frames)
        per = disk_bytes(fp) / a.rows
        print(f"frames once, {a.rows} rows: {per:,.0f} bytes/transition on disk = {per / FLOOR:.3f}x the "
              f"{FLOOR:,}-byte floor")
        print(f"write: {a.rows / t_framed:,.0f} rows/s; np.save of the same frames {a.rows / t_save:,.0f} rows/s "
              f"-> {t_save / t_framed:.2f}x")
        t_plain = write(pp, a.plain_rows, False, a.axis, a.frames)
        print(f"plain, {a.plain_rows} rows: {disk_bytes(pp) / a.plain_rows:,.0f} bytes/transition; write "
              f"{a.plain_rows / t_plain:,.0f} rows/s")
        warm_page_cache(fp)
        warm_page_cache(pp)
        plain_arrays = in_ram(pp)
        for batch in (32, 256):
            with Sampler(pp, batch, seed=1) as sp, Sampler(fp, batch, seed=1) as sf:
                if not a.first_pass:
                    touch(sp)
                    touch(sf)
                fns = {"plain: in-RAM stacks": ram_gather(plain_arrays, a.plain_rows, batch, 1),
                       "plain: store": sp.sample,
                       "frames once: in-RAM frames": ram_frames_gather(fp, a.rows, batch, 1, a.axis),
                       "frames once: store": sf.sample}
                med = interleaved_medians(fns, a.repeats, a.rounds)
            print(f"batch {batch}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in med.items()))
            print(f"  plain store / in-RAM stacks {med['plain: in-RAM stacks'] / med['plain: store']:.2f}x; "
                  f"frames once / in-RAM frames {med['frames once: in-RAM frames'] / med['frames once: store']:.2f}x; "
                  f"frames once / in-RAM stacks {med['plain: in-RAM stacks'] / med['frames once: store']:.2f}x")
        print(f"load average {os.getloadavg()[0]:.2f}; store pages touched before timing: {not a.first_pass}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
