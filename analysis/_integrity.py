"""Integrity of the transitions themselves: the state chain inside episodes, next states that are
copies of states, duplicated blocks of rows, episode bookkeeping and bootstrapping flags. Each
check takes the audit's ``Context`` and returns ``(anomalies, evidence)``."""

from __future__ import annotations

import numpy as np

from ._anomalies import Anomaly
from ._context import Context, Skip, evidence
from ._stats import code_counts

CHAIN_ERROR_RATE = 0.01   # an actor's share of broken links from which a break is an error
MIN_BROKEN = 3            # broken links before any finding (a resumed run may cut one episode)
RESET_RATE = 0.5          # share of episode ends whose next_state is the next episode's reset state
COPY_RATE = 0.5           # share of an actor's rows with next_state == state
MIN_COPIES = 10
MIN_DUP_RUN = 16          # consecutive rows repeating earlier consecutive rows, from which a block is reported
PARTS = 16                # the hashes are searched for repeats in this many parts (a power of 2)
MAX_BLOCKS = 100          # duplicate blocks confirmed and reported one by one
CUT_EPISODES = 2          # episodes that end without done (a resume cuts one): tolerated
STEP_ERRORS = 2           # step numbering breaks tolerated (resumes) before an error
DONE_RATE = 0.5           # an actor whose rows end episodes this often: no environment ends every other step
MIN_DONE_ROWS = 20


def _per_actor(ctx: Context, bad: np.ndarray, base: np.ndarray, codes: np.ndarray) -> dict:
    return {x: {"checked": int((base & (codes == i)).sum()), "found": int((bad & (codes == i)).sum())}
            for i, x in enumerate(ctx.names)}


def transition_chain(ctx: Context):
    """next_state[t] == state[t + 1] for consecutive rows of one episode, per actor of row t."""
    lay = ctx.layout
    if lay.interleaved:
        raise Skip("episodes interleave (several environments write one store): consecutive rows are not "
                   "consecutive steps, so the chain cannot be followed row by row")
    bad = ctx.rows.chain_bad & lay.pair_ok
    codes = ctx.codes[:-1]
    ev = {"per_actor": _per_actor(ctx, bad, lay.pair_ok, codes), "threshold_rate": CHAIN_ERROR_RATE,
          "threshold_count": MIN_BROKEN}
    out = []
    for i, x in enumerate(ctx.names):
        rows = np.flatnonzero(bad & (codes == i))
        checked = ev["per_actor"][x]["checked"]
        rate = rows.size / max(1, checked)
        ev["per_actor"][x]["rate"] = rate
        if rows.size < MIN_BROKEN:
            continue
        w = ctx.where(rows)
        out.append(Anomaly(
            "CHAIN_BROKEN", "error" if rate >= CHAIN_ERROR_RATE else "warning",
            f"{rows.size} of {checked} rows of {x!r} ({rate:.2%}) store a next_state that is not the state of the "
            f"episode's next row (threshold {CHAIN_ERROR_RATE:.0%}), in {w['episodes_count']} episode(s) of rows "
            f"{w['rows']}: the writer stored the wrong observation", actor=x, rows=w["rows"],
            episodes=w["episodes"],
            details=evidence("share of the actor's in-episode links broken (at least)",
                             rate, CHAIN_ERROR_RATE, **w)))
    out += _reset_as_next_state(ctx, ev)
    return out, ev


def _reset_as_next_state(ctx: Context, ev: dict) -> list:
    """The last row of an episode whose next_state is the next episode's first state: the terminal
    observation was replaced by the reset one (an auto-resetting vector env read the wrong field)."""
    done = ctx.cols["done"].astype(bool)
    ends = np.flatnonzero(done[:-1] & (ctx.cols["episode"][1:] != ctx.cols["episode"][:-1]))
    # rows whose next_state copies their own state are NEXT_STATE_COPY's, not these
    same = ends[~ctx.rows.chain_bad[ends] & ~ctx.rows.copy[ends]]
    ev["episode_ends"], ev["ends_with_the_next_reset_state"] = int(ends.size), int(same.size)
    rate = same.size / max(1, ends.size)
    if same.size < MIN_BROKEN or rate < RESET_RATE:
        return []
    w = ctx.where(same)
    return [Anomaly(
        "NEXT_STATE_RESET", "error" if ctx.env is not None and ctx.env.random_reset else "warning",
        f"{same.size} of {ends.size} episode ends ({rate:.0%}; threshold {RESET_RATE:.0%}) store as next_state the "
        f"first state of the next episode, rows {w['rows']}: the terminal observation was replaced by the reset "
        "one, so the learner bootstraps (or stops) from the wrong state", actor=_main_actor(ctx, same),
        rows=w["rows"], episodes=w["episodes"],
        details=evidence("share of episode ends whose next_state is the next reset state (at least)", rate,
                         RESET_RATE, **w))]


def next_state_copy(ctx: Context):
    """Rows whose next_state equals their state, per actor."""
    copy = ctx.rows.copy
    ev = {"per_actor": {}, "threshold_rate": COPY_RATE}
    out = []
    for i, x in enumerate(ctx.names):
        mine = ctx.codes == i
        rows = np.flatnonzero(copy & mine)
        rate = rows.size / max(1, int(mine.sum()))
        ev["per_actor"][x] = {"rows": int(mine.sum()), "copies": int(rows.size), "rate": rate}
        if rows.size >= MIN_COPIES and rate >= COPY_RATE:
            w = ctx.where(rows)
            out.append(Anomaly(
                "NEXT_STATE_COPY", "error",
                f"{rows.size} of the {int(mine.sum())} rows of {x!r} ({rate:.1%}) store next_state identical to "
                f"state (threshold {COPY_RATE:.0%}) in rows {w['rows']}: the writer copied the state instead of "
                "the observation after the action", actor=x, rows=w["rows"], episodes=w["episodes"],
                details=evidence("share of the actor's rows with next_state == state (at least)",
                                 rate, COPY_RATE, **w)))
    return out, ev


def duplicate_rows(ctx: Context):
    """Blocks of consecutive rows that repeat earlier consecutive rows (a batch appended twice).

    A block appended twice repeats everything: the states, actions and rewards, and also the actor
    tags and the episode bookkeeping (the done pattern, how episode ids advance), and the state
    chain breaks where the copy begins. Trajectories repeat naturally too (MountainCar's
    car stopped at the left wall is set to exactly (-1.2, 0), and near-deterministic play then
    repeats 17-38 rows exactly); those carry other actors or continue their own episode into the
    repeat, so they are counted in the evidence, not reported."""
    keyed = list(ctx.rows.keyed)
    rows_d, partner_d = _repeated_rows(ctx, ctx.rows.hash)
    order = np.argsort(rows_d, kind="stable")
    rows_d, partner_d = rows_d[order], partner_d[order]
    cont = np.zeros(rows_d.size, bool)
    cont[1:] = (rows_d[1:] == rows_d[:-1] + 1) & (partner_d[1:] == partner_d[:-1] + 1)
    first = ~cont
    starts, partners = rows_d[first], partner_d[first]
    last = np.r_[first[1:], True] if rows_d.size else first
    ends = rows_d[last] + 1  # one past each run's last row
    long = (ends - starts) >= MIN_DUP_RUN
    ev = {"duplicate_rows": int(rows_d.size), "threshold_run": MIN_DUP_RUN, "blocks": [], "natural_repeats": 0,
          "keyed_on": ["state", "next_state", *keyed]}
    out = []
    severity = "error" if ctx.env is None or ctx.env.random_reset is not False else "warning"
    ev["candidate_blocks"] = int(long.sum())
    # each candidate is confirmed on its whole rows; past MAX_BLOCKS the count says how many more
    for a, b, p in zip(starts[long][:MAX_BLOCKS].tolist(), ends[long][:MAX_BLOCKS].tolist(),
                       partners[long][:MAX_BLOCKS].tolist()):
        if not _same_rows(ctx, np.arange(a, b), np.arange(p, p + (b - a))):
            continue  # a hash collision on the first state elements; the full rows differ
        if not _same_bookkeeping(ctx, a, b, p):
            ev["natural_repeats"] += 1
            continue
        w = ctx.where(np.arange(a, b))
        counts = np.bincount(np.minimum(ctx.codes[a:b], ctx.A), minlength=ctx.A + 1)
        main = ctx.names[int(counts[:ctx.A].argmax())]
        block = {"rows": [a, b], "copy_of": [p, p + (b - a)], "episodes": w["episodes"],
                 "actors": {x: int(c) for x, c in zip(ctx.names, counts)}}
        ev["blocks"].append(block)
        out.append(Anomaly(
            "DUPLICATE_BLOCK", severity,
            f"rows {[a, b]} ({b - a} rows, {w['episodes_count']} episode(s)) repeat rows {[p, p + (b - a)]} "
            f"exactly, with the same actors and episode bookkeeping (threshold {MIN_DUP_RUN} consecutive rows): "
            "a block was appended twice", actor=main, rows=[a, b], episodes=w["episodes"],
            details=evidence("consecutive rows repeated (at least)",
                             b - a, MIN_DUP_RUN, **block)))
    return out, ev


def _repeated_rows(ctx: Context, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row whose hash (the row pass's) an earlier row has, and that earliest row. The hash values
    that repeat are found part by part (``PARTS`` ranges of the top bits, one sorted part at a time,
    chunk by chunk), so no temporary is as long as the store; only the rows holding a repeated value
    are then sorted by (hash, row)."""
    top = np.uint64(64 - PARTS.bit_length() + 1)
    repeated = []
    for part in range(PARTS):
        v = np.sort(np.concatenate([h[lo:hi][(h[lo:hi] >> top) == part] for lo, hi in ctx.chunks()] or [h[:0]]))
        repeated.append(np.unique(v[1:][v[1:] == v[:-1]]))
    v = np.concatenate(repeated)  # sorted: the parts are ranges of values, in order
    if not v.size:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    rows = []
    for lo, hi in ctx.chunks():  # searchsorted's positions are 8 bytes a row: chunk by chunk
        x = h[lo:hi]
        p = np.minimum(np.searchsorted(v, x), v.size - 1)
        rows.append(np.flatnonzero(v[p] == x) + lo)
    rows = np.concatenate(rows)
    o = np.argsort(h[rows], kind="stable")  # a stable sort keeps rows of one hash in row order
    rows, hs = rows[o], h[rows[o]]
    first = np.r_[True, hs[1:] != hs[:-1]]
    partner = rows[first][np.cumsum(first) - 1]
    return rows[~first], partner[~first]


def _same_rows(ctx: Context, rows: np.ndarray, other: np.ndarray) -> bool:
    cols = [c for c in ("state", "next_state", "discrete_action", "continuous_action", "reward", "done")
            if ctx.has(c)]
    x, y = ctx.store.gather(rows, cols), ctx.store.gather(other, cols)
    return all(np.array_equal(x[c], y[c], equal_nan=x[c].dtype.kind == "f") for c in cols)


def _same_bookkeeping(ctx: Context, a: int, b: int, p: int) -> bool:
    """The copy ``[a, b)`` of ``[p, p + b - a)`` carries the same actors, done pattern and episode
    structure, and does not simply continue the episode of the row before it (a natural repeat
    does: the chain flows into it)."""
    L = b - a
    if not np.array_equal(ctx.codes[a:b], ctx.codes[p:p + L]):
        return False
    if "episode" in ctx.cols:
        ep = ctx.cols["episode"]
        if not np.array_equal(ep[a:b] - ep[a], ep[p:p + L] - ep[p]):
            return False
        if a > 0 and ep[a - 1] == ep[a] and not ctx.rows.chain_bad[a - 1] and not ctx.cols["done"][a - 1]:
            return False  # the episode flows into the repeat: the trajectory came back to the same states
    return True


def episode_bookkeeping(ctx: Context):
    """done where episodes end (and nowhere else), episode ids not reused, steps counting up from 0."""
    lay = ctx.layout
    ep, done, n = ctx.cols["episode"], ctx.cols["done"].astype(bool), ctx.n
    out = []
    # done inside an episode: the next row carries the same id
    mid = np.flatnonzero(done[:-1] & (ep[1:] == ep[:-1]))
    # an episode that ends without done: a new id follows a row without done
    cut = np.flatnonzero(~done[:-1] & (ep[1:] != ep[:-1])) if not lay.interleaved else np.zeros(0, np.intp)
    ids, lengths = (np.unique(ep, return_counts=True) if lay.interleaved or len(lay.ids) > 1 and
                    np.any(np.diff(lay.ids) <= 0) else (lay.ids, lay.stop - lay.start))
    limit = ctx.env.max_steps if ctx.env is not None else None
    too_long = np.flatnonzero(lengths > limit) if limit else np.zeros(0, np.intp)
    ev = {"episodes": int(ids.size), "done_rows": int(done.sum()), "done_inside_episode": int(mid.size),
          "ended_without_done": int(cut.size), "longest_episode": int(lengths.max()), "time_limit": limit}
    if mid.size:
        w = ctx.where(mid)
        out.append(Anomaly("DONE_MID_EPISODE", "error",
                           f"{mid.size} row(s) set done but the next row continues the same episode id, rows "
                           f"{w['rows']}", actor=_main_actor(ctx, mid), rows=w["rows"], episodes=w["episodes"],
                           details=evidence("done rows inside an episode (more than)", int(mid.size), 0, **w)))
    if cut.size > CUT_EPISODES:
        w = ctx.where(cut)
        out.append(Anomaly("DONE_MISSING", "error",
                           f"{cut.size} episode(s) end without a done row (a new episode id follows; threshold "
                           f"{CUT_EPISODES}, the cuts a resume makes), rows {w['rows']}: done flags were dropped",
                           actor=_main_actor(ctx, cut), rows=w["rows"], episodes=w["episodes"],
                           details=evidence("episodes ending without done (more than)",
                                            int(cut.size), CUT_EPISODES, **w)))
    if too_long.size:
        rows = np.flatnonzero(np.isin(ep, ids[too_long]))
        w = ctx.where(rows)
        out.append(Anomaly("DONE_MISSING", "error",
                           f"{too_long.size} episode(s) run longer than {ctx.env.env_id or 'the environment'}'s time limit of {limit} "
                           f"steps (longest {int(lengths.max())} rows, {int(done.sum())} done row(s) in the store): "
                           "done is never set where the environment ended the episode",
                           actor=_main_actor(ctx, rows), rows=w["rows"], episodes=w["episodes"],
                           details=evidence("longest episode in steps (more than the time limit)",
                                            int(lengths.max()), limit, **w)))
    elif limit is None and not done.any() and n >= 10_000:
        out.append(Anomaly("DONE_MISSING", "warning", f"none of the {n} rows sets done", rows=[0, n],
                           details=evidence("done rows (at least)", 0, 1)))
    out += _done_rate(ctx, done, ev)
    out += _reused(ctx, lay, done, ev)
    if ctx.has("step"):
        out += _steps(ctx, lay, ev)
    return out, ev


def _done_rate(ctx: Context, done: np.ndarray, ev: dict) -> list:
    """An actor whose rows end an episode most of the time: done set where no episode ended."""
    out = []
    # chunked counts: bincount of the codes casts them to 8 bytes a row
    rows, dones = code_counts(ctx.codes, ctx.A)[:ctx.A], code_counts(ctx.codes[done], ctx.A)[:ctx.A]
    rate = dones / np.maximum(1, rows)
    ev["done_rate"] = {x: float(rate[i]) for i, x in enumerate(ctx.names)}
    for i, x in enumerate(ctx.names):
        if rows[i] < MIN_DONE_ROWS or rate[i] < DONE_RATE:
            continue
        # localize: the segments where this actor's rows set done that often
        mine = ctx.codes == i
        seg_rows = np.bincount(ctx.seg[mine], minlength=ctx.nseg)
        seg_rate = np.bincount(ctx.seg[mine & done], minlength=ctx.nseg) / np.maximum(1, seg_rows)
        segs = np.flatnonzero(seg_rate >= DONE_RATE)
        sel = ctx.actor_rows(i, segs[0], segs[-1], done)
        w = ctx.where(sel)
        out.append(Anomaly(
            "DONE_RATE", "error",
            f"{rate[i]:.1%} of the rows of {x!r} set done (threshold {DONE_RATE:.0%}; the other actors' rates "
            f"{ {y: round(float(rate[j]), 4) for j, y in enumerate(ctx.names) if j != i} }): done is set where no "
            "episode ended", actor=x, rows=w["rows"], episodes=w["episodes"],
            details=evidence("share of the actor's rows setting done (at least)", float(rate[i]), DONE_RATE,
                             segments=segs.tolist(), segment_rows=ctx.seg_rows, **w)))
    return out


def _main_actor(ctx: Context, rows: np.ndarray) -> str | None:
    c = np.bincount(np.minimum(ctx.codes[rows], ctx.A), minlength=ctx.A + 1)[:ctx.A]
    return ctx.names[int(c.argmax())] if c.sum() else None


def _reused(ctx: Context, lay, done, ev) -> list:
    """Runs of an episode id that come after a run of the same id ended with done."""
    order = np.argsort(lay.ids, kind="stable")
    same = lay.ids[order][1:] == lay.ids[order][:-1]
    ended = done[lay.stop - 1][order][:-1]
    later = order[1:][same & ended]
    ev["reused_ids"] = int(np.unique(lay.ids[later]).size)
    if not later.size:
        return []
    rows = np.concatenate([np.arange(lay.start[r], lay.stop[r]) for r in later[:1000]])
    w = ctx.where(rows)
    return [Anomaly("EPISODE_REUSED", "error",
                    f"{ev['reused_ids']} episode id(s) reappear after their episode ended with done (first at row "
                    f"{int(lay.start[later].min())}): rows of a later episode carry an old id",
                    actor=_main_actor(ctx, rows), rows=w["rows"], episodes=w["episodes"],
                    details=evidence("episode ids reused (more than)", ev["reused_ids"], 0, **w))]


def _steps(ctx: Context, lay, ev) -> list:
    """Inside an episode each step is the previous one + 1; an episode's first row is step 0."""
    step = ctx.cols["step"]
    ep, bad = ctx.cols["episode"], np.zeros(ctx.n, bool)
    for lo, hi in ctx.chunks():  # chunk by chunk: ``step + 1`` is 8 bytes a row
        lo = max(lo, 1)
        bad[lo:hi] = (ep[lo:hi] == ep[lo - 1:hi - 1]) & (step[lo:hi] != step[lo - 1:hi - 1] + 1)
    order = np.argsort(lay.ids, kind="stable")
    first_run = np.ones(len(order), bool)
    first_run[1:] = lay.ids[order][1:] != lay.ids[order][:-1]
    starts = lay.start[order]
    bad[starts[first_run]] |= step[starts[first_run]] != 0
    # a later run of an interleaved episode continues its previous run's count
    prev_last = lay.stop[order][:-1] - 1
    cont = starts[1:][~first_run[1:]]
    bad[cont] |= step[cont] != step[prev_last[~first_run[1:]]] + 1
    rows = np.flatnonzero(bad)
    ev["step_breaks"] = int(rows.size)
    if rows.size <= STEP_ERRORS:
        return []
    w = ctx.where(rows)
    return [Anomaly("STEP_SEQUENCE", "error",
                    f"{rows.size} row(s) break the step count (0, 1, 2, ... inside each episode; threshold "
                    f"{STEP_ERRORS}), rows {w['rows']}", actor=_main_actor(ctx, rows), rows=w["rows"],
                    episodes=w["episodes"],
                    details=evidence("rows breaking the step count (more than)",
                                     int(rows.size), STEP_ERRORS, **w))]


TIME_LIMIT_RATE = 0.5   # share of an actor's episodes ending at the time limit that are stored as terminal
MIN_LIMIT_ENDS = 3


def _time_limit_ends(ctx: Context, done: np.ndarray, trunc: np.ndarray, ev: dict) -> list:
    """Episodes of exactly the time limit that end terminal (done, not truncated): a time-limit end
    stored as a terminal one, so the learner cuts their value to zero. Judged per actor of the last
    row, since one actor's code path usually stores its ends apart from the others'."""
    limit = ctx.env.max_steps if ctx.env is not None else None
    if not limit:
        ev["time_limit"] = "no time limit known (max_episode_steps in the registry, the env block or --env-facts)"
        return []
    if "step" in ctx.cols:
        ends = np.flatnonzero(done & (ctx.cols["step"] == limit - 1))
    elif not ctx.layout.interleaved:
        lay = ctx.layout
        ends = (lay.stop - 1)[(lay.stop - lay.start == limit) & done[lay.stop - 1]]
    else:
        ev["time_limit"] = "episodes interleave and there is no step column: episode lengths are unknown"
        return []
    terminal = ends[~trunc[ends]]
    per = {x: {"limit_ends": int((ctx.codes[ends] == i).sum()), "stored_terminal": int((ctx.codes[terminal] == i).sum())}
           for i, x in enumerate(ctx.names)}
    ev["time_limit"], ev["time_limit_ends"] = limit, per
    out = []
    for i, x in enumerate(ctx.names):
        k, t = per[x]["limit_ends"], per[x]["stored_terminal"]
        if t < MIN_LIMIT_ENDS or t / k < TIME_LIMIT_RATE:
            continue
        rows = terminal[ctx.codes[terminal] == i]
        w = ctx.where(rows)
        others = {y: v for y, v in per.items() if y != x}
        out.append(Anomaly(
            "BOOTSTRAP_FLAGS", "error",
            f"{t} of the {k} episodes whose last row is {x!r}'s run exactly the time limit of {limit} steps and end "
            f"terminal (done, not truncated), rows {w['rows']} (other actors: {others}): time-limit ends stored as "
            "terminal, so the learner cuts their value to zero", actor=x, rows=w["rows"], episodes=w["episodes"],
            details=evidence("share of the actor's time-limit ends stored as terminal (at least)", t / k,
                             TIME_LIMIT_RATE, kind="terminal_at_time_limit", **w)))
    return out


def bootstrap_flags(ctx: Context):
    """``truncated`` implies ``done``; where the environment's terminal states are known, a terminal
    next state ends with done and not truncated, and a time-limit end is truncated, not terminal."""
    done = ctx.cols["done"].astype(bool)
    trunc = ctx.cols.get("truncated")
    env = ctx.env
    if trunc is None and (env is None or env.terminal is None):
        raise Skip("no truncated column and no known terminal states for this environment")
    out, ev = [], {}
    if trunc is not None and (env is None or env.terminal is None):
        out += _time_limit_ends(ctx, done, trunc.astype(bool), ev)
    if trunc is not None:
        trunc = trunc.astype(bool)
        stray = np.flatnonzero(trunc & ~done)
        ev["truncated_without_done"] = int(stray.size)
        if stray.size:
            w = ctx.where(stray)
            out.append(Anomaly("BOOTSTRAP_FLAGS", "error",
                               f"{stray.size} row(s) are truncated but not done, rows {w['rows']}: the learner "
                               "bootstraps across an episode boundary", actor=_main_actor(ctx, stray),
                               rows=w["rows"], episodes=w["episodes"],
                               details=evidence("truncated rows without done (more than)",
                                                int(stray.size), 0, kind="truncated_not_done", **w)))
    if env is not None and env.terminal is not None and ctx.rows.width == env.state_dim:
        side = np.empty(ctx.n, np.int8)  # +1 surely terminal, -1 surely not, 0 at a bound
        for lo, hi, head in ctx.head_blocks("next_state"):
            side[lo:hi] = env.terminal(head)
        term_all, inside = side > 0, side < 0
        # a terminal next state on a row without done: the episode ended and nobody said so
        missing = np.flatnonzero(term_all & ~done)
        ev["terminal_without_done"] = int(missing.size)
        if missing.size:
            w = ctx.where(missing)
            out.append(Anomaly(
                "DONE_MISSING", "error",
                f"{missing.size} row(s) reach a terminal state of {env.env_id} (pole fallen or cart out) without done, "
                f"rows {w['rows']}: the learner bootstraps past the end of the episode",
                actor=_main_actor(ctx, missing), rows=w["rows"], episodes=w["episodes"],
                details=evidence("terminal next states without done (more than)", int(missing.size), 0,
                                 kind="terminal_not_done", **w)))
        ends = np.flatnonzero(done)
        term = term_all[ends]
        flagged_trunc = trunc[ends] if trunc is not None else np.zeros(ends.size, bool)
        # terminal next state, but flagged as a time-limit end: the learner bootstraps from a fallen pole
        wrong_trunc = ends[term & flagged_trunc]
        # not terminal, flagged terminal: a time-limit end whose value is cut to zero
        wrong_term = ends[inside[ends] & ~flagged_trunc]
        ev.update(done_rows=int(ends.size), terminal_next_states=int(term.sum()),
                  truncated_at_terminal=int(wrong_trunc.size), terminal_flag_at_time_limit=int(wrong_term.size))
        for rows, kind, what, sev in (
                (wrong_trunc, "truncated_at_terminal", "are flagged truncated although their next state is "
                 "terminal: the learner bootstraps from a fallen pole", "error"),
                (wrong_term, "terminal_at_time_limit", "end with done and no truncated flag although their next "
                 "state is not terminal (time-limit ends): the learner cuts their value to zero",
                 "error" if trunc is not None else "warning")):
            if rows.size:
                w = ctx.where(rows)
                out.append(Anomaly("BOOTSTRAP_FLAGS", sev, f"{rows.size} done row(s) {what}, rows {w['rows']}",
                                   actor=_main_actor(ctx, rows), rows=w["rows"], episodes=w["episodes"],
                                   details=evidence("done rows with inconsistent flags (more than)",
                                                    int(rows.size), 0, kind=kind, **w)))
    return out, ev
