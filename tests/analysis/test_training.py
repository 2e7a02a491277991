"""Telemetry statistics: the batch-versus-buffer reconstruction and its chi-square test."""

from __future__ import annotations

import numpy as np

from replaystore.analysis import _training

NAMES = ("expert", "dqn")


def steps(counts, times) -> dict:
    counts = np.asarray(counts, np.int32)
    n = len(counts)
    nan = np.full((n, 2), np.nan, np.float32)
    return {"step": np.arange(n), "time": np.asarray(times, np.float64), "loss": np.zeros(n, np.float32),
            "batch_count": counts, "td_abs_mean": nan, "reward_mean": nan, "q_mean": nan, "grad_norm": nan}


def test_window_rebuilt_from_append_times():
    """Each step is compared with the window as it stood at its time: expert-only first, then mixed."""
    codes = np.array([0] * 10 + [1] * 10, np.uint8)
    times = np.arange(20, dtype=np.float64)
    b = _training.batch_vs_buffer(steps([[8, 0], [4, 4]], [9.5, 19.5]), NAMES, codes, times, window=20)
    assert {"expert": 12.0, "dqn": 4.0} == b["expected"]
    assert b["test"]["p_value"] > 0.99 and "append times" in b["method"]


def test_unordered_times_fall_back_to_the_final_window():
    """Row times out of order: the final replay window is the reference, and the method says so."""
    codes = np.array([0, 1, 1, 1], np.uint8)
    b = _training.batch_vs_buffer(steps([[1, 3]], [5.0]), NAMES, codes, np.array([3.0, 1.0, 2.0, 0.0]), window=4)
    assert "final replay window" in b["method"]
    assert {"expert": 0.25, "dqn": 0.75} == b["expected_fractions"]


def test_actor_drawn_that_the_buffer_lacks_fails_the_test():
    """Batches holding an actor absent from the buffer give p = 0 (not a division warning)."""
    codes = np.ones(10, np.uint8)
    b = _training.batch_vs_buffer(steps([[2, 6]], [100.0]), NAMES, codes, np.arange(10.0), window=10)
    assert (0.0, None) == (b["test"]["p_value"], b["test"]["statistic"])
    assert 0.25 == b["max_abs_diff"]


def test_no_telemetry():
    """No train_steps rows: every section says 'no telemetry'."""
    assert {"status": "no telemetry"} == _training.batch_vs_buffer(None, NAMES, np.zeros(0, np.uint8), np.zeros(0), 10)
    assert {"status": "no telemetry"} == _training.steps_section(None, NAMES)
    assert {"status": "no telemetry"} == _training.samples_section(None, NAMES, np.zeros(0, np.uint8))
