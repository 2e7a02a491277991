"""Checksums and `replaystore verify`; format-1 stores open read-only and convert to format 2;
codes outside the vocabulary are counted, not a crash (issue 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from replaystore.store import ReplayStore, errors
from replaystore.store.tools._verify import verify

from store_helpers import append_writer_rows, closed_store

DATA = Path(__file__).resolve().parents[1] / "data"
CLI = [sys.executable, "-m", "replaystore"]


@pytest.fixture
def closed(store_path):
    """3,000 writer rows in 1,024-row segments (two full and checksummed in .sums files, one open)."""
    return closed_store(store_path, 3000)


def _flip(path, column: str, row: int, byte: int = 0) -> None:
    """Flip one bit of the committed bytes of ``row`` of ``column`` in its segment file."""
    with ReplayStore.open(path) as r:
        t = r._record.tables["transitions"]
        width = r.schema[column].row_bytes
    k, local = divmod(row, t.segment_rows)
    seg = f"{path}.d/transitions-{k:06d}.h5"
    at = t.offsets[column] + local * width + byte
    with open(seg, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x10]))


def test_verify_passes_an_intact_store(closed):
    """Every committed block matches its checksum: exit 0, and verify() finds nothing."""
    out = subprocess.run(CLI + ["verify", str(closed)], capture_output=True, text=True)
    assert 0 == out.returncode, out.stderr
    assert "ok: every committed row" in out.stdout and '"transitions": 3000' in out.stdout
    with ReplayStore.open(closed) as r:
        assert [] == verify(r)


@pytest.mark.parametrize("column, row", [("state", 5), ("actor", 1500), ("reward", 2999), ("row_id", 1024)])
def test_verify_names_the_rows_of_a_flipped_byte(closed, column, row):
    """One flipped bit in a sealed or open segment: exit 1, naming table, column and a row range holding the row."""
    _flip(closed, column, row)
    out = subprocess.run(CLI + ["verify", str(closed)], capture_output=True, text=True)
    assert 1 == out.returncode, out.stdout + out.stderr
    with ReplayStore.open(closed) as r:
        found = verify(r)
    assert 1 == len(found)
    f = found[0]
    assert ("transitions", column, "checksum mismatch") == (f["table"], f["column"], f["problem"])
    assert f["rows"][0] <= row < f["rows"][1] <= 3000
    assert f"table 'transitions' column '{column}' rows [{f['rows'][0]}, {f['rows'][1]})" in out.stdout


def test_new_tables_record_their_checksum_kinds(closed):
    """A new store names its kinds in the record: sum64-512 for whole-word rows, crc32 for the rest."""
    from replaystore.store.format._record import read_record_json

    hashes = read_record_json(closed)["tables"]["transitions"]["hashes"]
    with ReplayStore.open(closed) as r:
        for c in r.schema:
            if c.row_bytes:
                assert hashes[c.name] == ("sum64-512" if c.row_bytes % 8 == 0 else "crc32"), c.name


def test_a_store_of_the_older_checksum_kind_stays_verifiable(store_path, monkeypatch):
    """A store written with sum64 (before sum64-512; its record names no kinds) verifies, takes more rows
    in that same kind, and a flipped byte in it is still found."""
    from replaystore.store.format import _checksum
    from replaystore.store.format._record import read_record_json

    with monkeypatch.context() as m:
        m.setattr(_checksum, "kind", _checksum.legacy_kind)
        old = closed_store(store_path, 1500)
    assert "hashes" not in read_record_json(old)["tables"]["transitions"]
    with ReplayStore.open(old) as r:
        assert [] == verify(r)
    with ReplayStore.open(old, "a") as w:
        append_writer_rows(w, 1500, 2500)
    assert "hashes" not in read_record_json(old)["tables"]["transitions"]
    with ReplayStore.open(old) as r:
        assert 2500 == len(r) and [] == verify(r)
    _flip(old, "state", 2100)
    with ReplayStore.open(old) as r:
        found = verify(r)
    assert [("state", "checksum mismatch")] == [(f["column"], f["problem"]) for f in found]
    assert found[0]["rows"][0] <= 2100 < found[0]["rows"][1]


def test_verify_reports_a_missing_checksum_file(closed):
    """A full segment whose .sums file is gone is reported for its whole row range, not skipped."""
    os.remove(f"{closed}.d/transitions-000001.sums")
    with ReplayStore.open(closed) as r:
        found = verify(r)
    assert [[1024, 2048]] == [f["rows"] for f in found]
    assert "missing" in found[0]["problem"]


def test_verify_unreadable_store_exits_2(tmp_path):
    """A path that is no store: exit 2 and an error line, no traceback."""
    bad = tmp_path / "nope.h5"
    bad.write_bytes(b"not hdf5")
    out = subprocess.run(CLI + ["verify", str(bad)], capture_output=True, text=True)
    assert 2 == out.returncode and "error:" in out.stderr and "Traceback" not in out.stderr


def test_format1_store_opens_read_only_and_names_the_converter():
    """A recorded format-1 buffer reads as before; opening it to append names `replaystore convert`."""
    with ReplayStore.open(DATA / "healthy.h5") as r:
        assert (1, 3072) == (r.format_version, len(r))
        with h5py.File(DATA / "healthy.h5", "r") as f:
            np.testing.assert_array_equal(f["transitions/reward"][:3072], r.read(["reward"])["reward"])
    with pytest.raises(errors.FormatVersionError, match=r"format-1 store, which opens read-only.*replaystore convert"):
        ReplayStore.open(DATA / "healthy.h5", "a")


def test_unknown_actor_codes_are_counted_not_a_crash():
    """corrupt.h5 holds actor bytes outside its vocabulary: composition and info report them by code,
    with the numbers an independent count of the file's actor column gives."""
    with h5py.File(DATA / "corrupt.h5", "r") as f:
        rows = int(__import__("json").loads(f.attrs["committed"])["transitions"])
        codes = f["transitions/actor"][:rows]
        window = int(f.attrs["window"])
    n_actors = 2
    bad = {int(c): int((codes == c).sum()) for c in np.unique(codes[codes >= n_actors])}
    win = codes[rows - window:]
    win_bad = {int(c): int((win == c).sum()) for c in np.unique(win[win >= n_actors])}
    assert bad, "the fixture file lost its damaged codes"
    with ReplayStore.open(DATA / "corrupt.h5") as r:
        whole = r.actor_composition(window=False)
        inwin = r.actor_composition(window=True)
        assert {"count": sum(bad.values()), "codes": bad} == whole["unknown"]
        assert {"count": sum(win_bad.values()), "codes": win_bad} == inwin["unknown"]
        assert rows == whole["total"] and window == inwin["total"]
        assert {"expert": int((codes == 0).sum()), "dqn": int((codes == 1).sum())} == whole["counts"]
        assert {"expert": int((win == 0).sum()), "dqn": int((win == 1).sum())} == inwin["counts"]
        assert [int((codes[500:] == a).sum()) for a in range(n_actors)] == r.actor_counts(500).tolist()
    out = subprocess.run(CLI + ["info", str(DATA / "corrupt.h5"), "--json"], capture_output=True, text=True)
    assert 0 == out.returncode, out.stderr
    info = __import__("json").loads(out.stdout)
    assert {str(k): v for k, v in bad.items()} == info["unknown_actor_codes"]


def test_convert_copies_every_row_bit_for_bit(tmp_path):
    """convert writes a format-2 copy that audits the same and keeps damaged codes as evidence."""
    new = tmp_path / "c2.h5"
    out = subprocess.run(CLI + ["convert", str(DATA / "corrupt.h5"), str(new)], capture_output=True, text=True)
    assert 0 == out.returncode, out.stderr
    with ReplayStore.open(DATA / "corrupt.h5") as old, ReplayStore.open(new) as cp:
        assert (2, old.tables) == (cp.format_version, cp.tables)
        for name in old.tables:
            a, b = old.read_table(name), cp.read_table(name)
            assert all(a[c].tobytes() == b[c].tobytes() for c in a), name
        assert old.actor_composition(False) == cp.actor_composition(False)
        assert old.checkpoints == cp.checkpoints and old.metadata == cp.metadata
        assert [] == verify(cp)
    again = subprocess.run(CLI + ["convert", str(DATA / "corrupt.h5"), str(new)], capture_output=True, text=True)
    assert 2 == again.returncode and "already exists" in again.stderr


def test_converted_store_takes_rows(tmp_path):
    """A converted store opens for appending and continues after the copied rows."""
    new = tmp_path / "h2.h5"
    from replaystore.store.tools._convert import convert

    assert 3072 == convert(DATA / "healthy.h5", new)
    with ReplayStore.open(new, "a") as s:
        block = s.read(start=0, stop=10)
        s.extend({k: v for k, v in block.items() if k not in ("episode", "step", "time")})
    with ReplayStore.open(new) as r:
        assert 3082 == len(r)
        np.testing.assert_array_equal(r.read(["state"], 0, 10)["state"], r.read(["state"], 3072, 3082)["state"])


def test_rows_edited_behind_the_store_are_counted_and_verified(tmp_path):
    """A format-2 run damaged the way analysis's `corrupt` does it (h5py writes through the manifest,
    the .commit removed): composition counts the codes outside the vocabulary from the rows, with
    numbers from an independent count, and verify names the edited rows."""
    from replaystore.analysis._synthetic import RunSpec, corrupt, write_run

    path = tmp_path / "run.h5"
    write_run(path, RunSpec(rows=3000, window=1000, train_steps=0, telemetry=False))
    corrupt(path, bad_codes={10: 7, 2500: 9, 2501: 9})
    with h5py.File(path, "r") as f:
        codes = f["transitions/actor"][:]
    with ReplayStore.open(path) as r:
        whole, win = r.actor_composition(window=False), r.actor_composition(window=True)
        found = verify(r)
    assert {"count": 3, "codes": {7: 1, 9: 2}} == whole["unknown"]
    assert {"count": 2, "codes": {9: 2}} == win["unknown"]
    assert {"expert": int((codes == 0).sum()), "dqn": int((codes == 1).sum())} == whole["counts"]
    assert {"expert": int((codes[2000:] == 0).sum()), "dqn": int((codes[2000:] == 1).sum())} == win["counts"]
    edited = [f["rows"] for f in found if f["column"] == "actor"]
    assert any(a <= 10 < b for a, b in edited) and any(a <= 2500 < b for a, b in edited)


def test_convert_copies_a_frames_once_store_as_frames_once(tmp_path):
    """A frames-once store converts into a frames-once store: the same stacks read back, the same
    frame ids and frames as stored (not the stacks: the copy stays 8x smaller), and the copy takes
    new stacks frames-once. (Before, convert raised KeyError on such a store.)"""
    from replaystore.store import FrameStack, Schema, convert
    from frames_helpers import rollout

    src, dst = tmp_path / "f.h5", tmp_path / "f2.h5"
    rows = rollout(3, 60, envs=2, size=12, axis=0)
    with ReplayStore.create(src, Schema.transition((4, 12, 12), state_dtype="uint8"), actors=("expert", "dqn"),
                            frames=FrameStack(4, axis=0)) as w:
        w.extend(rows)
        w.record_checkpoint(1, "ckpt.pt")
    assert len(rows["done"]) == convert(src, dst)
    with ReplayStore.open(src) as a, ReplayStore.open(dst) as b:
        assert a.schema == b.schema and a.tables == b.tables and a.checkpoints == b.checkpoints
        for name in a.tables:
            x, y = a.read_stored(name), b.read_stored(name)
            assert sorted(x) == sorted(y) and all(x[c].tobytes() == y[c].tobytes() for c in x), name
        assert "state_frames" in b.stored_schema() and "state" not in b.stored_schema()
        np.testing.assert_array_equal(a.read(["state", "next_state"])["state"], b.read(["state"])["state"])
        assert [] == verify(b)
    more = rollout(4, 5, size=12, axis=0)
    with ReplayStore.open(dst, "a") as w:
        frames_before = w.tables["frames"]
        w.extend({k: v for k, v in more.items() if k != "time"})
        w.commit()
        assert 0 < w.tables["frames"] - frames_before <= 4 * 5  # stacks stored as frames, not as stacks
    with ReplayStore.open(dst) as r:
        np.testing.assert_array_equal(more["next_state"], r.read(["next_state"], -5)["next_state"])
