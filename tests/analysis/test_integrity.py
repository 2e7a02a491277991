"""Integrity checks on small CartPole runs: their thresholds, and what they leave alone."""

from __future__ import annotations

import numpy as np

from replaystore.analysis import _integrity


def codes(report) -> dict:
    out = {}
    for a in report.anomalies:
        out.setdefault(a.code, []).append(a)
    return out


def test_a_few_chain_breaks_are_tolerated(cartpole):
    """Fewer than MIN_BROKEN breaks (a resume cuts one) raise nothing; the evidence still counts them."""
    def two_breaks(cols):
        inside = np.flatnonzero(~cols["done"][:-1])
        cols["next_state"][inside[[10, 500]]] += 1.0

    report, _ = cartpole(two_breaks)
    assert "CHAIN_BROKEN" not in codes(report)
    ev = report.checks["transition_chain"]["evidence"]["per_actor"]
    assert 2 == sum(v["found"] for v in ev.values())


def test_rare_chain_breaks_are_a_warning(cartpole):
    """Breaks on under 1% of an actor's links are a warning; the rows and episodes are named."""
    def breaks(cols):
        dqn = np.flatnonzero((cols["actor"][:-1] == 1) & ~cols["done"][:-1])
        cols["next_state"][dqn[[100, 200, 300, 400]]] *= 2

    report, cols = cartpole(breaks, rows=3000)
    (a,) = codes(report)["CHAIN_BROKEN"]
    assert ("warning", "dqn") == (a.severity, a.actor)
    assert a.details["evidence"] < _integrity.CHAIN_ERROR_RATE and 4 == a.details["count"]
    dqn = np.flatnonzero((cols["actor"][:-1] == 1) & ~cols["done"][:-1])
    assert [int(dqn[100]), int(dqn[400]) + 1] == a.rows
    assert sorted({int(cols["episode"][dqn[k]]) for k in (100, 200, 300, 400)}) == a.episodes


def test_interleaved_episodes_skip_the_chain(cartpole):
    """Two environments writing one store alternate episode ids: the chain check says why it cannot run."""
    def interleave(cols):
        n = len(cols["done"]) // 2 * 2
        for k, v in cols.items():
            cols[k] = v[:n]
        cols["episode"] = np.where(np.arange(n) % 2 == 0, 0, 1).astype(np.int64)
        cols["done"][:] = False
        cols["step"] = np.arange(n) // 2

    report, _ = cartpole(interleave, meta={"env_id": "Other-v0"})
    entry = report.checks["transition_chain"]
    assert "skipped" == entry["status"] and "interleave" in entry["reason"]


def test_some_copies_are_not_a_finding(cartpole):
    """next_state == state on a few rows (a wall in a gridworld) stays under the threshold."""
    def few(cols):
        rows = np.flatnonzero(cols["actor"] == 0)[:20]
        cols["next_state"][rows] = cols["state"][rows]

    report, _ = cartpole(few)
    assert "NEXT_STATE_COPY" not in codes(report)
    assert 20 == report.checks["next_state_copy"]["evidence"]["per_actor"]["expert"]["copies"]


def test_short_repeats_are_not_a_block(cartpole):
    """Fifteen repeated rows stay under MIN_DUP_RUN; sixteen are a block."""
    def repeat(k):
        def change(cols):
            for c, v in cols.items():
                cols[c] = np.concatenate([v[:300], v[100:100 + k], v[300:]])
            cols["done"][299] = True  # the repeat starts an episode of its own
            from replaystore.analysis._cartpole import renumber
            renumber(cols)
        return change

    short, _ = cartpole(repeat(_integrity.MIN_DUP_RUN - 1))
    assert "DUPLICATE_BLOCK" not in codes(short)
    long, _ = cartpole(repeat(_integrity.MIN_DUP_RUN))
    (a,) = codes(long)["DUPLICATE_BLOCK"]
    assert ([300, 316], [100, 116]) == (a.rows, a.details["copy_of"])


def test_done_inside_an_episode(cartpole):
    """A done row followed by the same episode id is flagged at that row."""
    def done_mid(cols):
        cols["done"][50] = True  # the episode id goes on after it

    report, cols = cartpole(done_mid)
    a = codes(report)["DONE_MID_EPISODE"][0]
    assert [50, 51] == a.rows and [int(cols["episode"][50])] == a.episodes


def test_one_cut_episode_is_tolerated_more_are_not(cartpole):
    """Up to CUT_EPISODES episodes may end without done (a resume); more is DONE_MISSING. (An
    environment without known terminal states: CartPole's would flag the fallen poles themselves.)"""
    def cut(k):
        def change(cols):
            ends = np.flatnonzero(cols["done"][:-1])[:k]
            cols["done"][ends] = False
            cols["truncated"][ends] = False
        return change

    unknown = {"env_id": "Unknown-v0"}
    ok, _ = cartpole(cut(_integrity.CUT_EPISODES), expert_ratio=0.0, meta=unknown)
    assert "DONE_MISSING" not in codes(ok)
    bad, cols = cartpole(cut(_integrity.CUT_EPISODES + 1), expert_ratio=0.0, meta=unknown)
    (a,) = codes(bad)["DONE_MISSING"]
    assert _integrity.CUT_EPISODES + 1 == a.details["evidence"]


def test_truncated_without_done(cartpole):
    """truncated on a row that is not done: the learner would bootstrap across an episode boundary."""
    report, _ = cartpole(lambda cols: cols["truncated"].__setitem__(40, True))
    (a,) = [a for a in report.anomalies if a.code == "BOOTSTRAP_FLAGS"]
    assert ([40, 41], "truncated_not_done") == (a.rows, a.details["kind"])


def test_time_limit_end_stored_as_terminal(cartpole):
    """A 500-step episode whose end is not flagged truncated cuts the value of a state that did not fall."""
    def untruncate(cols):
        cols["truncated"][:] = False

    report, cols = cartpole(untruncate, rows=2000, expert_ratio=0.9)
    (a,) = [a for a in report.anomalies if a.code == "BOOTSTRAP_FLAGS"]
    assert "terminal_at_time_limit" == a.details["kind"]
    limits = np.flatnonzero(cols["done"] & (cols["step"] == 499))
    assert [int(limits[0]), int(limits[-1]) + 1] == a.rows


# ------------------------------------------------------------------ other environments (real gymnasium runs)


def test_natural_repeats_are_not_a_duplicate_block(gym_audits):
    """MountainCar's car stopped at the left wall is set to exactly (-1.2, 0); a deterministic expert then
    repeats whole stretches of rows exactly, episode after episode. They continue their own episode:
    counted as natural repeats, never DUPLICATE_BLOCK."""
    report, _ = gym_audits["mountaincar_pure_expert"]
    ev = report.checks["duplicate_rows"]["evidence"]
    assert "DUPLICATE_BLOCK" not in report.codes() and ev["natural_repeats"] >= 1 and ev["duplicate_rows"] >= 16


def test_a_block_appended_twice_is_still_caught(gym_audits):
    """64 rows appended a second time (same actors, same bookkeeping, the chain broken where the copy
    begins): DUPLICATE_BLOCK over exactly the copy, naming the actor holding most of its rows."""
    report, planted = gym_audits["mountaincar_appended_twice"]
    (a,) = [a for a in report.anomalies if a.code == "DUPLICATE_BLOCK"]
    assert [int(planted[0]), int(planted[-1]) + 1] == a.rows and "dqn" == a.actor


def test_time_limit_ends_stored_as_terminal_name_the_actor(gym_audits):
    """The learner's Pendulum episodes of exactly 200 steps stored done and not truncated: BOOTSTRAP_FLAGS
    on 'dqn' (the expert's time-limit ends stay truncated)."""
    report, planted = gym_audits["pendulum_limit_terminal"]
    (a,) = [a for a in report.anomalies if a.code == "BOOTSTRAP_FLAGS"]
    assert ("error", "dqn", "terminal_at_time_limit") == (a.severity, a.actor, a.details["kind"])
    assert [int(planted[0]), int(planted[-1]) + 1] == a.rows
    ends = report.checks["bootstrap_flags"]["evidence"]["time_limit_ends"]
    assert 0 == ends["expert"]["stored_terminal"] and ends["dqn"]["stored_terminal"] == planted.size
