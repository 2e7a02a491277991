"""The protocol alone: a raw ``pyarrow.flight`` client (``raw_client.py``) that imports nothing of ours."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import raw_client
from remote_helpers import ACTORS, HERE, Server, make_run

from replaystore.store import Run, Sampler


def test_a_raw_flight_client_writes_and_samples_with_only_the_protocol(tmp_path):
    """Rows sent by a client with no replaystore import land bit for bit in its shard with its
    actor names turned into codes; the commits it asked for are acknowledged; an unknown actor, a
    NaN, a foreign column, a missing column and floats for an integer column are refused with
    the store's error class and message; and a sampler
    session gives the batches a local Sampler with the same seed gives, bit for bit."""
    run = make_run(tmp_path / "run")
    server = Server(run.path)
    try:
        subprocess.run([sys.executable, str(HERE / "raw_client.py"), server.location, str(tmp_path)], check=True,
                       cwd=tmp_path, timeout=120)
    finally:
        assert server.stop() == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["imported_replaystore"] == []
    assert result["info"]["kind"] == "run" and result["info"]["actors"] == list(ACTORS)
    assert result["rows"] == {"shards": {"raw-0": 400}}
    assert [a["committed"] for a in result["acks"]] == [100, 100, 400]  # the second block asked for no commit
    assert [a["received"] for a in result["acks"]] == [100, 150, 400]
    errors = result["errors"]
    assert errors["unknown_actor"].startswith("UnknownActorError: ") and "cheater" in errors["unknown_actor"]
    assert errors["nan"].startswith("NonFiniteError: ") and "reward" in errors["nan"]
    assert errors["extra_column"].startswith("UnknownColumnError: ") and "bonus" in errors["extra_column"]
    assert errors["missing_column"].startswith("MissingColumnError: ") and "reward" in errors["missing_column"]
    assert errors["float_action"].startswith("DTypeError: ") and "discrete_action" in errors["float_action"]

    with Run.open(run.path).open_shard("raw-0") as s:
        assert len(s) == 400  # the refused batches left nothing
        got = s.read()
    blocks = [raw_client.make_rows(result["info"], a, n) for a, n in raw_client.BLOCKS]
    want = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    for name, v in want.items():
        if name == "actor":
            assert got["actor"].tolist() == [ACTORS.index(a) for a in v]
        else:
            assert got[name].tobytes() == v.tobytes(), name
    with pa.OSFile(str(tmp_path / "batches.arrow"), "rb") as fh:
        remote = pa.ipc.open_file(fh).read_all()
    with Sampler(run.path, 64, strategy="stratified", seed=3,
                 actor_fractions={ACTORS[0]: 0.5, ACTORS[1]: 0.5}) as local:
        batches = [local.sample() for _ in range(2)]
    for name in ("state", "reward", "actor", "row", "weight", "done", "shard"):
        col = remote.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            col = col.flatten()
        expected = np.concatenate([b[name] for b in batches])
        assert col.to_numpy(zero_copy_only=False).tobytes() == expected.reshape(-1).tobytes(), name
