"""``SampleToInsertRatio`` on its own: the two stages, both directions of holding, its settings."""

from __future__ import annotations

import threading

import pytest

from replaystore.remote import SampleToInsertRatio
from replaystore.remote.errors import RateLimitTimeout, ServerConfigError


def test_sampling_waits_for_the_minimum_size_then_follows_the_ratio():
    """Below the minimum size nothing may be sampled; above it, a learner that ran more than the
    error buffer ahead of the inserts is held, and inserts release it."""
    r = SampleToInsertRatio(samples_per_insert=2.0, min_size_to_sample=10, error_buffer=20)
    assert not r.can_sample(rows_now=9)
    r.inserted(10)
    assert r.can_sample(rows_now=10)
    r.sampled(40)                       # error 10 * 2 - 40 = -20: still allowed
    assert r.can_sample(rows_now=10)
    r.sampled(1)                        # -21: held
    assert not r.can_sample(rows_now=10)
    r.inserted(1)                       # -19
    assert r.can_sample(rows_now=11)


def test_inserts_wait_while_actors_are_ahead():
    """Actors more than the error buffer ahead of the learner are held until it samples."""
    r = SampleToInsertRatio(samples_per_insert=1.0, min_size_to_sample=1, error_buffer=5)
    r.inserted(5)
    assert r.can_insert()
    r.inserted(1)
    assert not r.can_insert()
    released = threading.Event()
    t = threading.Thread(target=lambda: r.wait_insert() and released.set())
    t.start()
    r.sampled(1)
    t.join(30)
    assert released.is_set() and not t.is_alive()


def test_a_held_sample_times_out_with_the_reason_or_stops_when_cancelled():
    """A sample held past its timeout raises RateLimitTimeout naming the counts; a cancelled
    call returns False instead of waiting on."""
    r = SampleToInsertRatio(samples_per_insert=1.0, min_size_to_sample=100)
    with pytest.raises(RateLimitTimeout, match="the run has 3 rows .sampling starts at 100."):
        r.wait_sample(lambda: 3, timeout=0.05)
    assert r.wait_sample(lambda: 3, timeout=None, cancelled=lambda: True) is False
    assert r.wait_sample(lambda: 100, timeout=None) is True


@pytest.mark.parametrize("kw, match", [({"samples_per_insert": 0}, "samples_per_insert=0"),
                                       ({"samples_per_insert": 1, "min_size_to_sample": 0}, "min_size_to_sample=0"),
                                       ({"samples_per_insert": 4, "error_buffer": 2}, "error_buffer=2")])
def test_settings_that_could_block_for_ever_are_refused(kw, match):
    """A ratio that is not positive, an empty minimum and a buffer below max(1, ratio) are refused."""
    with pytest.raises(ServerConfigError, match=match):
        SampleToInsertRatio(**kw)
