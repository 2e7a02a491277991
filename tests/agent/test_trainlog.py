"""The [BATCH] / [BUFFER] log lines and the telemetry tables written to the store."""

from __future__ import annotations

import logging

import numpy as np

from replaystore.agent._trainlog import batch_line, buffer_line
from replaystore.store import TRAIN_SAMPLES, TRAIN_STEPS

from agent_helpers import fill, make_agent


def test_batch_line_exact_form():
    """The team's format: DQN first, counts and one-decimal percentages of this batch.

    (The issue's example line shows 74.1% / 25.9% beside 6075 / 2117, which are 74.2% / 25.8% of
    8192: the line prints the batch's own shares, so the counts and percentages always agree.)
    """
    assert "[BATCH] Step 100: 6075 DQN (74.2%) / 2117 expert (25.8%)" == \
        batch_line(100, np.array([2117, 6075]), ("expert", "dqn"), "dqn")


def test_buffer_line_exact_form():
    """The buffer line lists the total, then each actor with its share."""
    comp = {"total": 1_000_000, "counts": {"expert": 260_000, "dqn": 740_000}, "fractions": {}}
    assert "[BUFFER] Step 1000: 1000000 total, 740000 DQN (74.0%), 260000 expert (26.0%)" == \
        buffer_line(1000, comp, "dqn")


def test_other_vocabularies_list_every_actor():
    """With three actors every one is listed, the DQN first, then in vocabulary order."""
    assert "[BATCH] Step 5: 2 DQN (20.0%) / 3 human (30.0%) / 5 script (50.0%)" == \
        batch_line(5, np.array([3, 5, 2]), ("human", "script", "dqn"), "dqn")
    comp = {"total": 10, "counts": {"human": 3, "script": 5, "dqn": 2}, "fractions": {}}
    assert "[BUFFER] Step 5: 10 total, 2 DQN (20.0%), 3 human (30.0%), 5 script (50.0%)" == buffer_line(5, comp, "dqn")


def test_lines_appear_at_their_cadence_with_the_right_numbers(tmp_path, caplog):
    """[BATCH] every 5 steps with that step's counts, [BUFFER] every 10 with the store's counts."""
    a = make_agent(tmp_path, log_batch_every=5, log_buffer_every=10)
    fill(a, 200, expert_every=4)
    caplog.set_level(logging.INFO, logger="replaystore.agent")
    metrics = [a.train_step() for _ in range(20)]
    lines = [r.getMessage() for r in caplog.records if r.name == "replaystore.agent"]
    expected = []
    for m in metrics:
        if m.step % 5 == 0:
            e, d = m.batch_n_expert, m.batch_n_dqn
            expected.append(f"[BATCH] Step {m.step}: {d} DQN ({100 * d / 16:.1f}%) / {e} expert ({100 * e / 16:.1f}%)")
        if m.step % 10 == 0:
            expected.append(f"[BUFFER] Step {m.step}: 200 total, 150 DQN (75.0%), 50 expert (25.0%)")
    assert expected == lines
    assert 6 == len(lines)
    a.store.close()


def test_telemetry_rows(tmp_path):
    """One train_steps row per step, one train_samples row per sample every K steps, grad norms every K."""
    a = make_agent(tmp_path, samples_every=10, grad_norm_every=10, telemetry_block=10, batch_size=16)
    fill(a, 200)
    metrics = [a.train_step() for _ in range(25)]
    a.close()
    steps = a.store.read_table(TRAIN_STEPS)
    assert list(range(1, 26)) == steps["step"].tolist()
    assert np.stack([m.batch_count for m in metrics]).tolist() == steps["batch_count"].tolist()
    assert np.allclose(np.stack([m.td_abs_mean for m in metrics]), steps["td_abs_mean"], equal_nan=True)
    measured = ~np.isnan(steps["grad_norm"]).any(axis=1)
    assert [10, 20] == steps["step"][measured].tolist()
    samples = a.store.read_table(TRAIN_SAMPLES)
    assert [10] * 16 + [20] * 16 == samples["step"].tolist()
    codes = a.store.read(["actor"])["actor"]
    assert codes[samples["row"]].tolist() == samples["actor"].tolist()
    assert np.allclose(samples["target"] - samples["q"], samples["td_error"], atol=1e-5)
    a.store.close()
