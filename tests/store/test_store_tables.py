"""Tables kept beside the transitions (training telemetry): held to the same input checks."""

from __future__ import annotations

import numpy as np
import pytest

from replaystore.store import TRAIN_SAMPLES, errors, train_samples_schema

from store_helpers import DROP, assert_nothing_lost


def _samples(n: int, **changes) -> dict:
    b = {"step": np.arange(n), "row": np.arange(n), "actor": np.arange(n) % 3, "td_error": np.zeros(n, "f4"),
         "q": np.zeros(n, "f4"), "target": np.zeros(n, "f4")}
    b.update(changes)
    return {k: v for k, v in b.items() if v is not DROP}


@pytest.mark.parametrize("changes, error, match", [
    (dict(actor=DROP), errors.MissingActorError, r"extend_table\('train_samples'\): no actor given"),
    (dict(actor=np.array([0, 1, 3, 0])), errors.UnknownActorError, r"actor code 3 is not in the vocabulary"),
    (dict(actor=np.array(["expert", "ppo", "dqn", "dqn"])), errors.UnknownActorError, r"actor 'ppo' is not in"),
    (dict(row=DROP), errors.MissingColumnError, r"extend_table\('train_samples'\): missing required column\(s\) \['row'\]"),
    (dict(step=np.zeros(4)), errors.DTypeError, r"column 'step' got dtype float64, which cannot be cast safely to int64"),
    (dict(bogus=np.zeros(4)), errors.UnknownColumnError, r"unknown column\(s\) \['bogus'\]"),
])
def test_bad_telemetry_rows(writer_store, changes, error, match):
    """A telemetry table's actor column is held to the vocabulary like the transitions' (names or codes);
    bad blocks raise and keep nothing, in the table or the transitions."""
    s = writer_store
    s.create_table(TRAIN_SAMPLES, train_samples_schema())
    s.extend_table(TRAIN_SAMPLES, _samples(4, actor=np.array(["dqn", "random", "expert", "dqn"])))
    with pytest.raises(error, match=match):
        s.extend_table(TRAIN_SAMPLES, _samples(4, **changes))
    assert_nothing_lost(s)
    assert s.tables[TRAIN_SAMPLES] == 4
    assert s.read_table(TRAIN_SAMPLES)["actor"].tolist() == [1, 2, 0, 1]
