"""The audit on image observations: stacks of grey frames (Atari-like: sprites that move over a
background, noisy or flat as a renderer draws it), stored frames-once and plain, stacked on the first
or the last axis. Honest stores raise no error; a frame mix-up (stacks transposed, stored on another
axis, inverted; from the start or from mid-run) is STATE_DISTRIBUTION on the actor it happened to;
both layouts of the same rows give the same findings.

What remains on an honest image store: NO_TELEMETRY (info: these stores hold no training tables),
and the checks that need facts or policies are skipped (no env_id, no policy: see each report's
``checks``)."""

from __future__ import annotations

import numpy as np
import pytest

from replaystore.analysis import _context, _tags, audit
from replaystore.analysis._context import Context
from replaystore.store import FrameStack, ReplayStore, Schema

ACTORS = ("expert", "dqn")
DEPTH = 4
REMAINING = [("NO_TELEMETRY", "info")]


def frames(n: int, size: int, seed: int, noise: bool, wall: bool) -> np.ndarray:
    """``n`` frames: a ball and a paddle that move (their paths repeat every 36-80 frames), over a
    noisy field (values 0-5) or a flat one (0); ``wall``: two rows fixed at 100 on top."""
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 6, (n, size, size), dtype=np.uint8) if noise else np.zeros((n, size, size), np.uint8)
    if wall:
        f[:, :2] = 100
    t = np.arange(n)
    cols = np.arange(size)
    for k, (h, w, vy, vx) in enumerate(((max(2, size // 21),) * 2 + (3, 5), (3, max(4, size // 7), 0, 2))):
        y, x = (vy * t + 9 * k) % (size - h - 2) + 2, (vx * t) % (size - w)
        lit = (cols >= x[:, None]) & (cols < x[:, None] + w)
        for dy in range(h):
            f[t, y + dy] = np.where(lit, 180 + 40 * k, f[t, y + dy])
    return f


def rollout(rows: int, size: int, seed: int = 0, axis: int = -1, noise: bool = True, wall: bool = False,
            per_episode: bool = False) -> dict:
    """Transitions as an agent with a frame stack gives them: episodes of 20-400 steps that start on a
    stack of the first frame repeated; the actor drawn per row (a quarter 'expert') or per episode."""
    rng = np.random.default_rng(seed + 1)
    stream = frames(rows + rows // 10 + 8, size, seed, noise, wall)
    idx = np.empty((rows, DEPTH + 1), np.int64)
    done = np.zeros(rows, bool)
    episode = np.zeros(rows, np.int64)
    actor = np.zeros(rows, np.uint8)
    pos, left, ep, who = 0, 0, -1, 0
    stack = None
    for i in range(rows):
        if stack is None:
            stack, pos, ep = [pos] * DEPTH, pos + 1, ep + 1
            left, who = int(rng.integers(20, 400)), int(rng.random() >= 0.25)
        idx[i] = stack + [pos]
        stack, pos, left = stack[1:] + [pos], pos + 1, left - 1
        done[i], episode[i] = left == 0, ep
        actor[i] = who if per_episode else int(rng.random() >= 0.25)
        if done[i]:
            stack = None
    state, nxt = stream[idx[:, :DEPTH]], stream[idx[:, 1:]]
    if axis == -1:
        state, nxt = np.moveaxis(state, 1, -1), np.moveaxis(nxt, 1, -1)
    return {"state": np.ascontiguousarray(state), "next_state": np.ascontiguousarray(nxt), "done": done,
            "episode": episode, "actor": actor, "reward": rng.normal(size=rows).astype(np.float32),
            "discrete_action": rng.integers(0, 6, rows).astype(np.int32)}


def plant(cols: dict, kind: str, actor: str, start: int = 0, actors=ACTORS) -> np.ndarray:
    """One actor's stacks from row ``start`` on: ``transpose`` (height and width swapped),
    ``stack_axis`` (a (H, W, D) stack's bytes read as (D, H, W), or the reverse) or ``invert`` (255 - x)."""
    rows = np.flatnonzero(cols["actor"][start:] == actors.index(actor)) + start
    for c in ("state", "next_state"):
        x = cols[c][rows]
        first = x.shape[1] == DEPTH
        if kind == "transpose":
            x = np.swapaxes(x, -1, -2) if first else np.swapaxes(x, 1, 2)
        elif kind == "stack_axis":
            x = np.ascontiguousarray(np.moveaxis(x, 1, -1) if first else np.moveaxis(x, -1, 1)).reshape(x.shape)
        else:
            x = 255 - x
        cols[c][rows] = x
    return rows


def write(path, cols: dict, framed: bool, actors=ACTORS) -> str:
    shape = cols["state"].shape[1:]
    kw = {"frames": FrameStack(DEPTH, axis=0 if shape[0] == DEPTH else -1)} if framed else {}
    n = len(cols["actor"])
    with ReplayStore.create(path, Schema.transition(shape, state_dtype="uint8"), actors=actors, **kw) as s:
        for lo in range(0, n, 1000):
            b = {k: v[lo:lo + 1000] for k, v in cols.items() if k != "episode"}
            b["actor"] = np.asarray(actors)[b.pop("actor")]
            b["continuous_action"] = np.zeros((len(b["done"]), 0), np.float32)
            s.extend(b)
    return str(path)


def audits(tmp_path, cols: dict, name: str = "s", actors=ACTORS) -> list:
    """The findings of the frames-once and the plain store of ``cols``: asserted the same; returned once."""
    found = []
    for framed in (True, False):
        report = audit(write(tmp_path / f"{name}-{framed}.h5", cols, framed, actors))
        found.append([(a.code, a.severity, a.actor, a.rows, a.message, a.details) for a in report.anomalies])
    assert found[0] == found[1]
    return found[0]


def errors(found: list) -> list:
    return [f for f in found if f[1] == "error"]


def state_findings(found: list) -> list:
    """STATE_DISTRIBUTION findings; a planted change of one actor's stacks also breaks the chain from
    its rows to the other actor's (CHAIN_BROKEN on both: every stored next_state is right no more)."""
    assert {"STATE_DISTRIBUTION", "CHAIN_BROKEN"} >= {f[0] for f in errors(found)}
    return [f for f in found if f[0] == "STATE_DISTRIBUTION"]


@pytest.mark.parametrize("noise", [True, False], ids=["noisy", "flat"])
@pytest.mark.parametrize("axis", [0, -1])
def test_honest_image_stores_raise_no_error(tmp_path, noise, axis):
    """Actor tags drawn per row on 32x32x4 stacks: NO_TELEMETRY only, the same in both layouts."""
    found = audits(tmp_path, rollout(3000, 32, seed=1, axis=axis, noise=noise))
    assert REMAINING == [f[:2] for f in found]


def test_honest_atari_sized_frames_raise_no_error(tmp_path):
    """84x84x4 stacks, a quarter of the rows 'expert': a sprite lights each pixel in a few rows of a
    150-row segment, and 'expert' often sees none of them. That was STATE_DISTRIBUTION in every
    segment (of 28,224 pixels, some crossed 10x by chance); it is no error now."""
    found = audits(tmp_path, rollout(3000, 84, seed=0, axis=0))
    assert REMAINING == [f[:2] for f in found]


def test_actors_playing_whole_episodes_raise_no_error(tmp_path):
    """Tags drawn per episode: an actor's rows hang together (the test draws runs, not rows)."""
    found = audits(tmp_path, rollout(3000, 32, seed=2, per_episode=True))
    assert [] == errors(found)


@pytest.mark.parametrize("kind", ["transpose", "stack_axis", "invert"])
def test_frames_of_one_actor_in_another_layout_are_found(tmp_path, kind):
    """'expert''s stacks transposed, stored on the other stack axis or inverted from the first row:
    STATE_DISTRIBUTION on 'expert' over all of its rows, the same in both layouts."""
    cols = rollout(3000, 32, seed=3)
    rows = plant(cols, kind, "expert")
    (f,) = state_findings(audits(tmp_path, cols))
    assert ("error", "expert") == (f[1], f[2])
    assert [int(rows[0]), int(rows[-1]) + 1] == f[3]


@pytest.mark.parametrize("noise", [True, False], ids=["noisy", "flat"])
def test_frames_changing_mid_run_are_found_on_the_actor_that_changed(tmp_path, noise):
    """'dqn' (three quarters of the rows) transposed from row 1800: the finding names 'dqn' (its own
    states changed, 'expert''s did not) over its rows from there; a flat field with a wall on top."""
    cols = rollout(3000, 32, seed=4, noise=noise, wall=not noise)
    rows = plant(cols, "transpose", "dqn", start=1800)
    (f,) = state_findings(audits(tmp_path, cols))
    assert ("dqn", "own change") == (f[2], f[5]["named_by"])
    assert [int(rows[0]), int(rows[-1]) + 1] == f[3]


def test_of_three_actors_the_changed_one_is_named(tmp_path):
    """Three actors, 'random''s stacks transposed from row 1500: each actor is compared with the
    others pooled, so all three looked apart; the finding names 'random' alone, from there."""
    actors = ("expert", "dqn", "random")
    cols = rollout(3000, 32, seed=6)
    cols["actor"] = np.random.default_rng(6).integers(0, 3, 3000).astype(np.uint8)
    rows = plant(cols, "transpose", "random", start=1500, actors=actors)
    (f,) = state_findings(audits(tmp_path, cols, actors=actors))
    assert "random" == f[2] and [int(rows[0]), int(rows[-1]) + 1] == f[3]


def test_a_policy_sees_image_states_a_bounded_block_at_a_time(tmp_path, monkeypatch):
    """TAG_POLICY hands the policy at most _tags.BLOCK_BYTES of states at a time (65,536 rows of
    84x84x4 frames were 1.8 GB); an expert that takes its policy's action raises nothing."""
    def policy(states):
        seen.append(len(states))
        bright = np.asarray(states)[..., -1] > 100  # the latest frame of (H, W, D) stacks
        return ((bright.argmax(axis=-1).max(axis=-1) // 6) % 6).astype(np.int32)

    seen = []
    cols = rollout(2000, 32, seed=7)
    cols["discrete_action"] = np.where(cols["actor"] == 0, policy(cols["state"]), cols["discrete_action"])
    seen.clear()
    monkeypatch.setattr(_tags, "BLOCK_BYTES", 300 * 32 * 32 * DEPTH)
    report = audit(write(tmp_path / "p.h5", cols, True), policies={"expert": policy})
    assert REMAINING == [(a.code, a.severity) for a in report.anomalies]
    assert "ran" == report.checks["tag_policy"]["status"] and 300 == max(seen)


def test_run_sums_match_numpy(monkeypatch):
    """The per-segment sums over runs (consecutive rows of one segment, actor and episode) that the
    test's variance comes from, with runs that cross the row pass's sub-blocks."""
    cols = rollout(1500, 8, seed=5, per_episode=False)
    cols["actor"][700:900] = 0  # a long run
    monkeypatch.setattr(_context, "MOMENT_BYTES", 8 * 256 * 7)  # sub-blocks of 7 rows

    class Source:
        schema = Schema.transition(cols["state"].shape[1:], state_dtype="uint8")

        def read(self, names, lo, hi):
            return {k: cols[k][lo:hi] for k in names}

    ctx = Context(Source(), ACTORS, {}, {}, cols, None)
    rp = ctx.rows
    x = cols["state"].reshape(len(cols["actor"]), -1).astype(np.float64)
    key = np.stack([ctx.seg.astype(np.int64), cols["actor"], cols["episode"]], 1)
    start = np.r_[True, (key[1:] != key[:-1]).any(1)]
    run = np.cumsum(start) - 1
    t1, t2 = np.zeros((run[-1] + 1, x.shape[1])), np.zeros((run[-1] + 1, x.shape[1]))
    np.add.at(t1, run, x)
    np.add.at(t2, run, x * x)
    m, seg = np.bincount(run).astype(np.float64), ctx.seg[start]
    for k in range(ctx.nseg):
        a, b, n = t1[seg == k], t2[seg == k], m[seg == k]
        want = [(a * a).sum(0), (b * b).sum(0), (a * b).sum(0), n @ a, n @ b]
        np.testing.assert_allclose(rp.run_sums[k], want, rtol=1e-12)
        assert n @ n == rp.run_m2[k]
    assert run[-1] + 1 == rp.run_count.sum()
