"""A segment's recorded checksums (store/format/_sums.py): read from its .sums file once sealed, checked by
``verify`` and by a reader's view alike."""

from __future__ import annotations

import shutil

import pytest

from replaystore.store import ReplayStore, errors, verify
from replaystore.store.format._sums import segment_findings

from store_helpers import closed_store


@pytest.fixture
def closed(store_path):
    """3,000 rows in 1,024-row segments: two sealed (with .sums files), one open."""
    return str(closed_store(store_path, 3000))


def test_sealed_segment_sums_match_its_bytes(closed):
    """Each sealed segment's bytes match the sums in its own .sums file: no finding."""
    with ReplayStore.open(closed) as r:
        t = r._record.tables["transitions"]
        view = r._views["transitions"]
        for k in (0, 1):
            assert segment_findings(closed + ".d", r.uuid, "transitions", t, k, view.segment(k)) == []


def test_a_sums_file_of_another_segment_is_refused(closed):
    """Segment 0's .sums copied over segment 1's: refused as another segment's, and verify reports it."""
    shutil.copyfile(f"{closed}.d/transitions-000000.sums", f"{closed}.d/transitions-000001.sums")
    with ReplayStore.open(closed) as r:
        t = r._record.tables["transitions"]
        seg = r._views["transitions"].segment(1)
        with pytest.raises(errors.DamagedStoreError, match="belongs to another segment or store"):
            segment_findings(closed + ".d", r.uuid, "transitions", t, 1, seg)
        found = verify(r)
    assert [(f["rows"], "belongs to another segment" in f["problem"]) for f in found] == [([1024, 2048], True)]
