"""Frames once (store/read/_frames.py): stacks stored one frame per step read back bit for bit."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replaystore.store import FrameStack, ReplayStore, Sampler, Schema, errors
from replaystore.store.read._frames import FrameEncoder
from replaystore.store.tools._verify import verify

import frames_proc
from frames_helpers import rollout

ACTORS = ("expert", "dqn")


def write_both(tmp_path, rows, axis, split=(40, 52)):
    """The same rows into a plain store and a frames-once store (extend, one-row appends, reopen, extend)."""
    schema = Schema.transition(rows["state"].shape[1:], state_dtype="uint8")
    plain, framed = tmp_path / "plain.h5", tmp_path / "framed.h5"
    with ReplayStore.create(plain, schema, actors=ACTORS) as s:
        s.extend(rows)
    a, b = split
    with ReplayStore.create(framed, schema, actors=ACTORS, frames=FrameStack(4, axis=axis)) as s:
        s.extend({k: v[:a] for k, v in rows.items()})
        for i in range(a, b):
            s.append(**{k: v[i] for k, v in rows.items()})
    with ReplayStore.open(framed, "a") as s:  # a reopened writer stacks the same way
        s.extend({k: v[b:] for k, v in rows.items()})
    return plain, framed


@pytest.mark.parametrize("envs,axis,padding,channels", [(1, -1, "reset", 0), (3, 0, "zero", 0), (2, -1, "zero", 0),
                                                        (2, -1, "reset", 3), (1, 0, "zero", 3)])
def test_every_column_matches_the_plain_layout(tmp_path, envs, axis, padding, channels):
    """read, gather and the Sampler give every column of a frames-once store bit for bit as the plain
    layout of the same rollout (episode starts, truncation, interleaved environments, both paddings,
    and RGB frames concatenated along the stack axis as SB3's VecFrameStack gives them)."""
    rows = rollout(envs, 90 // envs, envs=envs, size=32, axis=axis, padding=padding, max_len=17, channels=channels)
    plain, framed = write_both(tmp_path, rows, axis)
    with ReplayStore.open(plain) as p, ReplayStore.open(framed) as f:
        assert p.schema == f.schema
        ra, rb = p.read(), f.read()
        assert sorted(ra) == sorted(rb)
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k], err_msg=k)
        idx = np.random.default_rng(1).integers(0, len(p), 70)
        ga, gb = p.gather(idx), f.gather(idx)
        for k in ga:
            np.testing.assert_array_equal(ga[k], gb[k], err_msg=k)
        with Sampler(p, 16, seed=3) as s1, Sampler(f, 16, seed=3) as s2:
            for _ in range(3):
                x, y = s1.sample(), s2.sample()
                for k in x:
                    np.testing.assert_array_equal(x[k], y[k], err_msg=k)
        # each step's new frame once, plus what episode starts need (padding frames dedupe)
        # (zero padding adds one zero frame per start; the reopened writer re-adds one stack per env)
        starts = envs + int(rows["done"].sum())
        assert len(f) < f.tables["frames"] <= len(f) + 2 * starts + 4 * envs


def test_stock_h5py_reads_frames_and_ids(tmp_path):
    """The manifest shows the frames and each row's frame ids to plain h5py, and they rebuild the state."""
    rows = rollout(5, 30, size=16)
    _, framed = write_both(tmp_path, rows, -1, split=(10, 12))
    with h5py.File(framed, "r") as f:
        frames = f["tables/frames/frame"][...]
        ids = f["transitions/state_frames"][...]
        n = len(rows["state"])
        np.testing.assert_array_equal(rows["state"], np.stack([frames[ids[:n, j]] for j in range(4)], axis=-1))


def test_verify_names_a_flipped_byte_in_a_frame(tmp_path):
    """A byte flipped in a stored frame is reported by verify, naming the frames table and its rows."""
    rows = rollout(7, 60, size=16)
    _, framed = write_both(tmp_path, rows, -1)
    with ReplayStore.open(framed) as s:
        assert verify(s) == []
        seg = s._views["frames"].segment(0)
        off = s._record.tables["frames"].offsets["frame"] + 3 * 256 + 17  # frame 3, byte 17
        path = seg.path
    with open(path, "r+b") as fh:
        fh.seek(off)
        b = fh.read(1)
        fh.seek(off)
        fh.write(bytes([b[0] ^ 0x10]))
    with ReplayStore.open(framed) as s:
        found = verify(s)
    assert [(x["table"], x["column"]) for x in found] == [("frames", "frame")]
    assert found[0]["rows"][0] <= 3 < found[0]["rows"][1]


def test_frame_stack_errors(tmp_path):
    """A depth, axis or column that does not fit the schema, or retention, is refused with how to fix it."""
    schema = Schema.transition((16, 16, 4), state_dtype="uint8")
    with pytest.raises(errors.SchemaError, match="positive int"):
        FrameStack(0)
    with pytest.raises(errors.SchemaError, match=r"holds 4: expected 3 .* or a multiple of 3"):
        ReplayStore.create(tmp_path / "a.h5", schema, actors=ACTORS, frames=FrameStack(3))
    with pytest.raises(errors.SchemaError, match="not in the schema"):
        ReplayStore.create(tmp_path / "b.h5", schema, actors=ACTORS, frames=FrameStack(4, columns=("obs",)))
    with pytest.raises(errors.SchemaError, match="retain=None"):
        ReplayStore.create(tmp_path / "c.h5", schema, actors=ACTORS, window=10, retain=20, frames=FrameStack(4))
    with pytest.raises(TypeError, match="FrameStack"):
        ReplayStore.create(tmp_path / "d.h5", schema, actors=ACTORS, frames=4)


def test_a_bad_row_keeps_nothing_and_later_rows_stay_exact(tmp_path):
    """A row refused for its shape leaves the store as it was; the rows after it read back exactly."""
    rows = rollout(9, 20, size=16)
    schema = Schema.transition((16, 16, 4), state_dtype="uint8")
    with ReplayStore.create(tmp_path / "f.h5", schema, actors=ACTORS, frames=FrameStack(4)) as s:
        s.extend({k: v[:10] for k, v in rows.items()})
        with pytest.raises(errors.ShapeError, match="state"):
            s.extend({**{k: v[10:12] for k, v in rows.items()}, "state": rows["state"][10:12, :8]})
        s.extend({k: v[10:] for k, v in rows.items()})
        s.commit()
        got = s.read()
    np.testing.assert_array_equal(rows["state"], got["state"])
    np.testing.assert_array_equal(rows["next_state"], got["next_state"])


def test_kill_9_keeps_every_committed_frame(tmp_path):
    """A frames-once writer killed at random moments (inside commits, across segment roll-overs of
    both tables) leaves every committed row with its frames, and appending resumes exactly."""
    path = tmp_path / "k.h5"
    rng = random.Random(4)
    script = os.path.join(os.path.dirname(__file__), "frames_proc.py")
    for trial in range(4):
        mode = "append" if path.exists() else "create"
        out = tmp_path / f"out{trial}.txt"
        with open(out, "w") as fh:
            p = subprocess.Popen([sys.executable, script, str(path), "--mode", mode, "--seed", str(trial)], stdout=fh)
        deadline = time.monotonic() + 60
        while (not out.read_text().strip() or len(out.read_text().split()) < 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        p.send_signal(signal.SIGKILL)
        p.wait()
        promised = int(out.read_text().split()[-1])
        with ReplayStore.open(path) as r:
            n = len(r)
            assert n >= promised, f"trial {trial}: {n} rows, {promised} were reported committed"
            want = frames_proc.rows(0, n)
            got = r.read(["state", "next_state", "reward"])
            for k in got:
                np.testing.assert_array_equal(want[k], got[k], err_msg=f"trial {trial}: {k}")
            assert verify(r) == []
    with ReplayStore.open(path) as r:
        assert r.tables["transitions"] > frames_proc.SEG_ROWS  # the kills crossed a roll-over


@st.composite
def stack_streams(draw):
    """Rows of (state, next_state) stacks as agents give them: envs interleaved, episodes that end
    or are cut, reset or zero padding, and frames from a tiny alphabet so equal frames recur."""
    depth = draw(st.integers(1, 4))
    axis = draw(st.sampled_from([0, -1, 1]))
    envs = draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["reset", "zero"]))
    alphabet = draw(st.integers(1, 4))
    n = draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    frame = lambda: rng.integers(0, alphabet, (2, 3), dtype=np.uint8)
    stacks, rows = [None] * envs, []
    for _ in range(n):
        e = int(rng.integers(0, envs))
        if stacks[e] is None:
            f0 = frame()
            stacks[e] = [f0 if padding == "reset" else np.zeros_like(f0)] * (depth - 1) + [f0]
        nxt = stacks[e][1:] + [frame()]
        if rng.random() < 0.05:  # an agent that hands over a stack of its own (not a shift)
            nxt = [frame() for _ in range(depth)]
        rows.append((np.stack(stacks[e], axis=axis), np.stack(nxt, axis=axis)))
        stacks[e] = None if rng.random() < 0.15 else nxt
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=4)))) if n > 1 else []
    return depth, axis, rows, cuts


@settings(max_examples=150, deadline=None)
@given(stack_streams())
def test_encoder_rebuilds_every_stack(stream):
    """Whatever the stacks, envs, padding and block boundaries, the ids the encoder gives rebuild
    every state and next_state exactly from the frames it asked to store."""
    depth, axis, rows, cuts = stream
    shape = rows[0][0].shape
    schema = Schema.transition(shape, state_dtype="uint8")
    enc = FrameEncoder(FrameStack(depth, axis=axis), schema, next_id=0)
    stored, ids = [], {"state": [], "next_state": []}
    for a, z in zip([0, *cuts], [*cuts, len(rows)]):
        block = {"state": np.stack([r[0] for r in rows[a:z]]), "next_state": np.stack([r[1] for r in rows[a:z]])}
        got, frames = enc.encode(block, z - a)
        stored.extend(frames)
        for c in ids:
            ids[c].append(got[c])
    frames = np.stack(stored)
    assert enc.next_id == len(frames)
    for c, i in (("state", 0), ("next_state", 1)):
        rebuilt = np.stack([np.stack([frames[k] for k in row], axis=axis) for row in np.concatenate(ids[c])])
        np.testing.assert_array_equal(np.stack([r[i] for r in rows]), rebuilt)


def test_parquet_export_and_summary_see_the_declared_columns(tmp_path):
    """The Parquet export of a frames-once store holds the same state/next_state values as the
    export of the plain layout (no frame ids), and its summary lists the declared columns."""
    import pyarrow.parquet as pq

    from replaystore.analysis import export_parquet

    rows = rollout(11, 25, size=8)
    plain, framed = write_both(tmp_path, rows, -1, split=(5, 9))
    tables = {}
    for name, path in (("plain", plain), ("framed", framed)):
        files = export_parquet(path, str(tmp_path / f"x_{name}"), progress=False)
        tables[name] = pq.read_table([f.path for f in files][0]).to_pydict()
    assert "state_frames" not in tables["framed"]
    for k in ("state", "next_state", "reward", "actor"):
        assert tables["plain"][k] == tables["framed"][k], k
    with ReplayStore.open(framed) as s:
        assert [c["name"] for c in s.summary()["columns"]][:2] == ["state", "next_state"]


def _damaged_frame_id(tmp_path, axis: int, column: str, high_byte: bytes) -> tuple[dict, str]:
    """A frames-once store (stack on ``axis``) whose row 2 names, in ``column``'s first id, a frame
    id whose highest byte is ``high_byte`` (0x40: past the frames; 0xff: negative): its rows and path."""
    rows = rollout(13, 20, size=8, axis=axis)
    _, framed = write_both(tmp_path, rows, axis, split=(5, 9))
    with ReplayStore.open(framed) as s:
        rec = s._record.tables["transitions"]
        path = s._views["transitions"].segment(0).path
        off = rec.offsets[column] + 2 * 4 * 8 + 7  # row 2, first id, its highest byte
    with open(path, "r+b") as fh:
        fh.seek(off)
        fh.write(high_byte)
    return rows, framed


def test_a_damaged_frame_id_is_refused_and_named_by_verify(tmp_path):
    """A frame id whose bytes were damaged is refused by read (not an IndexError deep in numpy, nor
    a wrong frame), and verify names the id column."""
    _, framed = _damaged_frame_id(tmp_path, -1, "state_frames", b"\x40")
    with ReplayStore.open(framed) as s:
        with pytest.raises(errors.DamagedStoreError, match="frame ids"):
            s.read(["state"])
        assert [(x["table"], x["column"]) for x in verify(s)] == [("transitions", "state_frames")]


@pytest.mark.parametrize("bad", [{"depth": "x", "axis": 0, "columns": ["state"], "schema": "[]"},
                                 {"depth": 4, "axis": 9, "columns": ["state"], "schema": None},
                                 {"depth": 4, "axis": -1, "columns": ["state"]}])
def test_a_damaged_frames_description_is_refused(bad):
    """A commit record whose frames-once description is damaged is a DamagedStoreError, never a
    raw KeyError or TypeError from deep inside."""
    from replaystore.store.read._frames import spec_of

    with pytest.raises(errors.DamagedStoreError, match="frames-once description is damaged"):
        spec_of({"frames": bad})


FULL_DISK = """
import resource, sys
import numpy as np
from replaystore.store import FrameStack, ReplayStore, errors
import frames_proc as fp
path, limit = sys.argv[1], int(sys.argv[2])
s = ReplayStore.create(path, fp.SCHEMA, actors=("dqn",), window=4096, commit_every=10**9, commit_seconds=3600.0,
                       segment_rows=fp.SEG_ROWS, frames=FrameStack(fp.DEPTH))
s.extend(fp.rows(0, 1000))
assert s.commit() == 1000
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))   # no new segment file may be made now
stop = 1000
for a in range(1000, 1600, 100):                             # across both tables' roll-over
    try:
        s.extend(fp.rows(a, a + 100))
        stop = a + 100
    except errors.StoreWriteError as e:
        print("extend refused", e.errno, flush=True)
        break
try:
    s.commit()
    print("commit went through", flush=True)
except errors.StoreWriteError as e:
    print("commit refused", e.errno, flush=True)
assert len(s) == 1000 or len(s) == stop, len(s)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))    # space is back
s.extend(fp.rows(stop, 2200))
assert s.commit() == 2200, len(s)
s.close()
print("ok", flush=True)
"""


def test_full_disk_at_a_roll_over_keeps_every_accepted_frame(tmp_path):
    """With the file size limit hit as both tables roll over to new segments, the store refuses
    (a StoreWriteError, errno 27) and, once space is back, keeps every accepted row with its frames."""
    path = tmp_path / "full.h5"
    here = os.path.dirname(__file__)
    out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {here!r})\n" + FULL_DISK,
                          str(path), "20000"], capture_output=True, text=True, timeout=120)
    assert 0 == out.returncode, out.stdout + out.stderr
    assert out.stdout.split() == ["commit", "refused", "27", "ok"], out.stdout  # extends stage, the commit refuses
    with ReplayStore.open(path) as r:
        assert 2200 == len(r) and r.tables["frames"] > 2 * frames_proc.SEG_ROWS  # two roll-overs
        got, want = r.read(["state", "next_state", "reward"]), frames_proc.rows(0, 2200)
        for k in got:
            np.testing.assert_array_equal(want[k], got[k], err_msg=k)
        assert verify(r) == []


@pytest.mark.parametrize("high_byte", [b"\x40", b"\xff"])  # an id past the frames, a negative id
def test_a_damaged_frame_id_is_refused_by_gather_and_the_sampler(tmp_path, high_byte):
    """With the stack on the first axis, gather and the Sampler take both stacked columns from the
    frames table in one call: a damaged id in either is still a DamagedStoreError naming the ids."""
    rows, framed = _damaged_frame_id(tmp_path, 0, "next_state_frames", high_byte)
    with ReplayStore.open(framed) as s:
        good = s.gather(np.array([0, 1, 3]))
        assert good["state"].tobytes() == rows["state"][[0, 1, 3]].tobytes()
        assert good["next_state"].tobytes() == rows["next_state"][[0, 1, 3]].tobytes()
        with pytest.raises(errors.DamagedStoreError, match="frame ids in"):
            s.gather(np.array([0, 2]))
        with Sampler(s, 64, seed=0) as sampler, pytest.raises(errors.DamagedStoreError, match="frame ids in"):
            sampler.sample()


@pytest.mark.parametrize("axis", [0, -1])
def test_batches_over_many_frame_segments_match_the_plain_layout(tmp_path, axis):
    """Frames spread over many segments (a batch's frame ids span more than the four the gather
    lists by range): the Sampler's batches, past the point where spans are made, and gathers in any
    order are bit for bit the plain layout's."""
    rows = rollout(2, 150, envs=2, size=12, axis=axis, padding="reset", max_len=23)
    schema = Schema.transition(rows["state"].shape[1:], state_dtype="uint8")
    plain, framed = tmp_path / "plain.h5", tmp_path / "framed.h5"
    for path, kw in ((plain, {}), (framed, {"frames": FrameStack(4, axis=axis)})):
        with ReplayStore.create(path, schema, actors=ACTORS, segment_rows=16, **kw) as s:
            s.extend(rows)
    with ReplayStore.open(plain) as p, ReplayStore.open(framed) as f:
        assert f.tables["frames"] > 8 * 16  # frames in more than eight segments
        idx = np.random.default_rng(2).permutation(len(p))[:120]
        ga, gb = p.gather(idx), f.gather(idx)
        for k in ga:
            np.testing.assert_array_equal(ga[k], gb[k], err_msg=k)
        with Sampler(p, 24, seed=5) as s1, Sampler(f, 24, seed=5) as s2:
            for _ in range(40):  # spans are made after 16 batches over several segments
                x, y = s1.sample(), s2.sample()
                for k in x:
                    np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.parametrize("axis,channels", [(0, 0), (-1, 0), (-1, 3)])
def test_gather_into_strided_out_arrays(tmp_path, axis, channels):
    """``gather(out=)`` into arrays no reshape can view (every other row of a larger one) fills them
    bit for bit, for stacks on the first axis, the last, and concatenated channels."""
    rows = rollout(4, 60, envs=2, size=16, axis=axis, channels=channels, max_len=11)
    plain, framed = write_both(tmp_path, rows, axis)
    idx = np.random.default_rng(0).integers(0, 120, 25)
    with ReplayStore.open(plain) as p, ReplayStore.open(framed) as f:
        want = p.gather(idx, ["state", "next_state"])
        big = {c: np.zeros((2 * len(idx), *want[c].shape[1:]), want[c].dtype) for c in want}
        out = {c: big[c][::2] for c in want}
        got = f.gather(idx, ["state", "next_state"], out=out)
        for c in want:
            assert got[c] is out[c]
            np.testing.assert_array_equal(want[c], out[c], err_msg=c)
            assert not big[c][1::2].any()  # the rows between were not written


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(["uint8", "int16", "float32", "float64", "bool", "uint64"]),
       depth=st.integers(1, 5), frame=st.lists(st.integers(1, 4), min_size=0, max_size=3),
       n=st.integers(0, 3), where=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_interleave_is_np_stack(dtype, depth, frame, n, where, seed):
    """The stacks written by interleave (words built by shifts where a stack fills one, strided
    copies elsewhere) equal np.stack of the frames on that axis, for any dtype, depth and axis."""
    from replaystore.store.read._frames import interleave

    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, depth, *frame, np.dtype(dtype).itemsize), dtype=np.uint8)
    frames = raw.view(dtype).reshape(n, depth, *frame) if np.dtype(dtype) != bool else raw[..., 0] % 2 == 1
    axis = 1 + where % (len(frame) + 1)  # a stack axis of the row, after the batch axis
    if axis == 1:
        axis = len(frame) + 1  # interleave is for axes other than the first: use the last
    want = np.stack([frames[:, j] for j in range(depth)], axis=axis)
    dst = np.empty_like(want)
    interleave(frames, dst, axis)
    assert want.tobytes() == dst.tobytes()


def test_a_run_of_frames_once_shards_matches_a_run_of_plain_ones(tmp_path):
    """Run.create(frames=...) makes every shard frames once (each shard's environments interleave);
    reopened, the run samples the same batches as a plain run of the same rows, and its record
    keeps the stack. A stack that does not fit the schema is refused before the folder exists."""
    from replaystore.store import Run

    shards = {f"w{k}": rollout(10 + k, 40, envs=2, size=16, axis=0, max_len=13) for k in range(2)}
    schema = Schema.transition((4, 16, 16), state_dtype="uint8")
    for name, kw in (("plain", {}), ("framed", {"frames": FrameStack(4, axis=0)})):
        run = Run.create(tmp_path / name, schema, actors=ACTORS, **kw)
        for shard, rows in shards.items():
            with run.create_shard(shard) as s:
                s.extend(rows)
    plain, framed = Run.open(tmp_path / "plain"), Run.open(tmp_path / "framed")
    assert framed.frames == FrameStack(4, axis=0) and plain.frames is None
    with framed.open_shard("w1") as s:
        assert s.tables["frames"] < 2 * len(s)  # frames once, not 8 a row
    with Sampler(plain, 32, seed=4) as a, Sampler(framed, 32, seed=4) as b:
        for _ in range(5):
            x, y = a.sample(), b.sample()
            for k in x:
                np.testing.assert_array_equal(x[k], y[k], err_msg=k)
    with pytest.raises(errors.SchemaError, match="axis -1 holds 16: expected 3"):
        Run.create(tmp_path / "bad", schema, actors=ACTORS, frames=FrameStack(3, axis=-1))
    assert not os.path.exists(tmp_path / "bad")


@pytest.mark.parametrize("bad", [{"depth": "x", "axis": 0, "columns": ["state"]}, [4], {"depth": 5, "axis": 0,
                                                                                          "columns": ["state"]}])
def test_a_damaged_stack_in_a_run_record_is_a_run_error(tmp_path, bad):
    """A run record is data: a stack that is not one, or does not fit the schema, is a RunError."""
    import json

    from replaystore.store import Run
    from replaystore.store.errors import RunError
    from replaystore.store.run._run import RECORD

    Run.create(tmp_path / "r", Schema.transition((4, 8, 8), state_dtype="uint8"), actors=ACTORS,
               frames=FrameStack(4, axis=0))
    p = tmp_path / "r" / RECORD
    rec = json.loads(p.read_text())
    rec["frames"] = bad
    p.write_text(json.dumps(rec))
    with pytest.raises(RunError, match="damaged"):
        Run.open(tmp_path / "r")


def test_a_frames_once_store_is_published_whole(tmp_path):
    """The frames table and the stack's description are in the record the store is published with
    (as a plain store is): a reader that opens it at any moment of creation, or after a creator killed
    just after publishing, sees the declared schema, never frame ids. Before, they came one commit later."""
    path, plain = tmp_path / "s.h5", tmp_path / "plain.h5"
    with ReplayStore.create(plain, Schema.transition((4, 8, 8), state_dtype="uint8"), actors=ACTORS) as p:
        with ReplayStore.open(plain) as r:
            plain_seq = r.commit_seq
    with ReplayStore.create(path, Schema.transition((4, 8, 8), state_dtype="uint8"), actors=ACTORS,
                            frames=FrameStack(4, axis=0)) as w:
        with ReplayStore.open(path) as r:
            assert plain_seq == r.commit_seq  # no commit after the one a plain store is created with
            assert ("state", "next_state") == r.schema.names[:2] and "frames" in r.tables
        assert ("state", "next_state") == w.schema.names[:2]
    code = f"""
import time
from replaystore.store import ReplayStore, errors
seen, t = set(), time.time()
while time.time() - t < 20 and len(seen) < 2:
    try:
        with ReplayStore.open({str(tmp_path / 'race.h5')!r}) as r:
            seen.add(r.schema.names[0])
            if len(r):
                break
    except errors.StoreNotFoundError:
        pass
print(sorted(seen))
"""
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    with ReplayStore.create(tmp_path / "race.h5", Schema.transition((4, 8, 8), state_dtype="uint8"), actors=ACTORS,
                            frames=FrameStack(4, axis=0)) as w:
        rows = rollout(1, 5, size=8, axis=0)
        time.sleep(0.2)
        w.extend(rows)
    out, _ = reader.communicate(timeout=60)
    assert "['state']" == out.strip()
