"""Compressed archive: compaction speed and memory, and sampling from compacted segments.

    python benchmarks/bench_archive.py                          # 8,192 plain image rows, 50k frames-once
    python benchmarks/bench_archive.py --rows 4096 --frames-rows 20000 --repeats 40   # quicker
    python benchmarks/bench_archive.py --rows 0 --cache-mib 512     # frames-once only, the archive in the cache
    python benchmarks/bench_archive.py --chunk-kib 32               # chunks of 32 KiB (the default since; 64 before)
    python benchmarks/bench_archive.py --frames clean --axis 0      # flat-field frames, stacks (4, 84, 84)

Atari-like image rows (84x84x4 uint8 stacks, or 4x84x84 with ``--axis 0``;
``bench_images.rollout_blocks``), of frames with per-pixel noise (``--frames noisy``, the default,
a compressor's worst case) or on a flat field (``--frames clean``, what rendered or Atari frames
look like; ``bench_images.frames``). In one run, each
against a reference measured in the same run:

- ``replaystore compact --sealed`` of the same plain store with ``gzip`` (what compact wrote
  before) and with ``blosc-lz4`` / ``blosc-zstd``: seconds, MB/s of raw rows, peak RSS of the
  compacting process (``wait4``), size on disk; the speed ratio against gzip (target >= 10x);
- how a compacted chunk is fetched: from the mapped file at offsets indexed once ("mapped"),
  ``read_direct_chunk`` + numcodecs ("direct"), a chunk-aligned slice through hdf5plugin's
  filter ("h5py"): MB/s of decompressed rows, every chunk of the archive read once;
- ms per Sampler batch (uniform, every column, numpy) of 32 and 256 rows from the compacted
  store (plain and frames-once) against the same store uncompressed (target >= 0.5x), measured
  once the chunk cache is in its steady state (full, or holding the whole archive), with the
  chunks decompressed per batch; the first batch after opening, and the decompressed chunks held
  (at most the cache budget, 128 MiB unless ``--cache-mib``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


from bench_images import ACTORS, DEPTH, FRAME_KINDS, disk_bytes, rollout_blocks, stack_shape
from bench_sampler import interleaved_medians, warm_page_cache
from replaystore.store import FrameStack, ReplayStore, Sampler, Schema, store_files
from replaystore.store.format import _codec

SEG_ROWS = {False: 1024, True: 8192}  # 57 MB plain segments; frames-once rows are ~150 bytes, frames 7 KB


FRAMES, AXIS = "noisy", -1  # --frames, --axis: the frames written and their stack axis in this run


def write(path: str, rows: int, framed: bool) -> None:
    """``rows`` image transitions, plain or frames-once, in segments that fill (so --sealed has work)."""
    schema = Schema.transition(stack_shape(AXIS), state_dtype="uint8")
    kw = {"frames": FrameStack(DEPTH, axis=AXIS)} if framed else {}
    with ReplayStore.create(path, schema, actors=ACTORS, commit_every=1 << 30, commit_seconds=3600.0,
                            segment_rows=SEG_ROWS[framed], **kw) as s:
        for b in rollout_blocks(rows, 1024, axis=AXIS, kind=FRAMES):
            s.extend(b)
from replaystore.store.read import _archive


def copy_store(src: str, dst: str) -> None:
    for p in store_files(src):
        q = p.replace(src, dst, 1)
        if os.path.isdir(p):
            shutil.copytree(p, q)
        elif os.path.exists(p):
            shutil.copyfile(p, q)


CHUNK_KIB = None  # --chunk-kib: the blosc chunk size compact targets in this run (None: _codec.CHUNK_BYTES)


def compact_in_child(path: str, codec: str) -> tuple[float, float, int]:
    """Seconds of ``replaystore compact --sealed --json`` in a process of its own (the command, and
    the compaction as it reports it: without interpreter start and imports) and its peak RSS."""
    # Peak RSS from the child's own VmHWM at exit: wait4's ru_maxrss keeps the parent's high-water
    # mark across fork and exec (Linux), which here is the store this script just wrote.
    hook = ("import atexit, runpy, sys; atexit.register(lambda: sys.stderr.write('VmHWM ' + "
            "open('/proc/self/status').read().split('VmHWM:')[1].split()[0] + chr(10))); "
            "sys.argv = ['replaystore'] + sys.argv[1:]; runpy.run_module('replaystore', run_name='__main__')")
    if CHUNK_KIB:
        hook = f"import replaystore.store.format._codec as c; c.CHUNK_BYTES = {CHUNK_KIB} << 10; " + hook
    a = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", hook, "compact", path, "--sealed", "--codec", codec, "--json"],
                          capture_output=True, text=True)
    wall = time.perf_counter() - a
    if proc.returncode:
        raise SystemExit(f"compact {codec} failed ({proc.returncode}): {proc.stderr}")
    hwm = int(proc.stderr.rsplit("VmHWM ", 1)[1].split()[0]) * 1024
    return wall, json.loads(proc.stdout)["seconds"], hwm


def raw_bytes(path: str) -> int:
    """Bytes of the rows in full segments (what --sealed compacts), every table."""
    with ReplayStore.open(path) as s:
        total = 0
        for name in s._record.tables:
            v = s._views[name]
            stored = getattr(v, "_t", v)
            full = (stored.rows >> stored.shift) << stored.shift
            total += full * sum(c.row_bytes for c in stored.schema)
        return total


def shuffles(path: str) -> str:
    """How the blosc chunks of ``path``'s compacted segments were shuffled, from each chunk's own
    header (byte 2: 0x1 byte shuffle, 0x4 bit shuffle, 0x2 stored as is): "bit 12%, none 88%"."""
    import h5py

    counts: dict = {}
    for p in store_files(path):
        if not os.path.isdir(p):
            continue
        for name in sorted(os.listdir(p)):
            if not name.endswith(".z.h5"):
                continue
            with open(os.path.join(p, name), "rb") as raw, h5py.File(os.path.join(p, name), "r") as f:
                def one(info):
                    raw.seek(info.byte_offset + 2)
                    flags = raw.read(1)[0]
                    kind = "copy" if flags & 2 else "bit" if flags & 4 else "byte" if flags & 1 else "none"
                    counts[kind] = counts.get(kind, 0) + 1
                for key in f:
                    d = f[key]
                    if d.chunks is not None and d.compression not in ("gzip", "lzf"):
                        d.id.chunk_iter(one)
    total = sum(counts.values()) or 1
    return ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(counts.items()))


def fetch_speed(path: str, mode: str) -> float:
    """MB/s of decompressed rows, every chunk of every compacted column read once through ``mode``."""
    _archive.CHUNK_READ = mode
    try:
        with ReplayStore.open(path) as s:
            cols = []
            for name in s._record.tables:
                v = s._views[name]
                v = getattr(v, "_t", v)
                for k in sorted(v._compacted):
                    seg = v.segment(k)
                    cols += [c for c in seg.arrays.values() if hasattr(c, "n_chunks")]  # not those mapped in place
            a = time.perf_counter()
            n = 0
            for col in cols:
                for j in range(col.n_chunks):
                    n += col.chunk(j).nbytes
            return n / (time.perf_counter() - a) / 1e6
    finally:
        _archive.CHUNK_READ = "mapped"


def sampler_fn(s, batch: int, seed: int):
    sm = Sampler(s, batch, seed=seed, as_torch=False)
    return sm, sm.sample


def warm_cache(fn) -> int:
    """Batches sampled (``fn``) until the chunk cache is in its steady state: 90% of its budget
    used, or no new chunk held for 50 batches (the archive fits). Measuring from a cold cache
    would count the first fill's misses and none of the evictions. Returns the batches taken."""
    budget, last, still = _archive.archive_cache_bytes(), -1, 0
    for n in range(1, 5001):
        fn()
        used = _archive._CACHE.used
        still = still + 1 if used == last else 0
        if used >= 0.9 * budget or still >= 50:
            return n
        last = used
    return n


def sample_compare(raw: str, packed: str, repeats: int, rounds: int, label: str) -> None:
    for p in (raw, packed):
        warm_page_cache(p)
    with ReplayStore.open(raw) as r, ReplayStore.open(packed) as z:
        sm = Sampler(z, 32, seed=9, as_torch=False)
        a = time.perf_counter()
        sm.sample()
        first = time.perf_counter() - a
        sm.close()
        for batch in (32, 256):
            samplers = {}
            fns = {}
            for key, s in (("raw", r), ("compacted", z)):
                samplers[key], fns[key] = sampler_fn(s, batch, 1)
            warm = warm_cache(fns["compacted"])
            loads = getattr(_archive._CACHE, "loads", None)
            med = interleaved_medians(fns, repeats, rounds)
            per = "" if loads is None else \
                f", {(_archive._CACHE.loads - loads) / (repeats // rounds * rounds + rounds):.1f} chunks decompressed a batch"
            for sm in samplers.values():
                sm.close()
            print(f"  {label} batch {batch:3d}: uncompressed {med['raw']:7.3f} ms, compacted "
                  f"{med['compacted']:7.3f} ms: {med['raw'] / med['compacted']:.2f}x (target >= 0.5x; cache warmed by "
                  f"{warm} batches{per})")
        used = _archive._CACHE.used
    print(f"  {label}: first batch after opening {first * 1e3:.1f} ms; decompressed chunks held: "
          f"{used / 2**20:.0f} MiB (budget {_archive.archive_cache_bytes() / 2**20:.0f} MiB, used {used / 2**20:.0f} MiB)")


def compare_codecs(d: str, args, codecs: list) -> None:
    """The plain store compacted with each codec, chunk fetches, and sampling from it."""
    plain = os.path.join(d, "plain.h5")
    write(plain, args.rows, False)
    raw, size = raw_bytes(plain), disk_bytes(plain)
    print(f"plain store: {args.rows} rows, {raw / 1e6:.0f} MB in full segments, {size / 1e6:.0f} MB on disk; blosc "
          f"chunks of {CHUNK_KIB or (_codec.CHUNK_BYTES >> 10)} KiB")
    secs = {}
    for codec in codecs:
        p = os.path.join(d, f"plain-{codec}.h5")
        copy_store(plain, p)  # a copy is dense where the original was sparse: sizes are against the copy
        size = disk_bytes(p)
        wall, t, rss = compact_in_child(p, codec)
        secs[codec] = (wall, t)
        vs = ""
        if "gzip" in secs and codec != "gzip":
            vs = f", {secs['gzip'][1] / t:.1f}x gzip's speed ({secs['gzip'][0] / wall:.1f}x by the command's wall time)"
        print(f"  compact {codec:10s}: {t:6.2f} s ({wall:.2f} s command), {raw / t / 1e6:6.0f} MB/s, peak RSS "
              f"{rss / 2**20:5.0f} MiB, {disk_bytes(p) / 1e6:5.0f} MB on disk ({disk_bytes(p) / size:.2f}x){vs}"
              + (f"; chunks shuffled: {shuffles(p)}" if codec.startswith("blosc") else ""))
    packed = os.path.join(d, f"plain-{codecs[-1] if 'blosc-lz4' not in codecs else 'blosc-lz4'}.h5")
    for mode in ("mapped", "direct", "h5py"):
        print(f"  chunk fetch {mode:6s}: {fetch_speed(packed, mode):6.0f} MB/s decompressed")
    sample_compare(plain, packed, args.repeats, args.rounds, "plain")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=8192, help="plain image transitions (56 KB each)")
    ap.add_argument("--frames-rows", type=int, default=50_000, help="frames-once transitions")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--codecs", default="gzip,blosc-lz4,blosc-zstd")
    ap.add_argument("--cache-mib", type=int, default=None, help="archive_cache_bytes for the sampling (default: the store's)")
    ap.add_argument("--chunk-kib", type=int, default=None,
                    help="blosc chunk size compact targets (default: _codec.CHUNK_BYTES, 32 KiB)")
    ap.add_argument("--frames", choices=FRAME_KINDS, default="noisy",
                    help="noisy (the default, as every figure before): sprites on per-pixel noise 0..5, a "
                         "compressor's worst case; clean: on a flat field, as rendered/Atari frames are")
    ap.add_argument("--axis", type=int, choices=(-1, 0), default=-1,
                    help="stack axis: -1 for (84, 84, 4) (the default), 0 for (4, 84, 84) as gymnasium stacks")
    args = ap.parse_args()
    global CHUNK_KIB, FRAMES, AXIS
    CHUNK_KIB, FRAMES, AXIS = args.chunk_kib, args.frames, args.axis
    print(f"{FRAMES} frames, stack axis {AXIS}; load average {os.getloadavg()[0]:.2f}")
    if args.cache_mib:
        _archive.archive_cache_bytes(args.cache_mib << 20)
    codecs = args.codecs.split(",")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        if args.rows:
            compare_codecs(d, args, codecs)
        if args.frames_rows:
            framed = os.path.join(d, "framed.h5")
            write(framed, args.frames_rows, True)
            fz = os.path.join(d, "framed-z.h5")
            copy_store(framed, fz)
            size = disk_bytes(fz)
            wall, t, rss = compact_in_child(fz, "blosc-lz4")
            print(f"frames-once store: {args.frames_rows} rows; compact blosc-lz4 {t:.2f} s ({wall:.2f} s command), peak RSS "
                  f"{rss / 2**20:.0f} MiB, {disk_bytes(fz) / size:.2f}x the size on disk; chunks shuffled: {shuffles(fz)}")
            sample_compare(framed, fz, args.repeats, args.rounds, "frames-once")


if __name__ == "__main__":
    main()
