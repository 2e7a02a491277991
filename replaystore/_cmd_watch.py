"""``replaystore watch RUN [--interval 1] [--once]``: follow a store that another process is writing.

Every ``--interval`` seconds it picks up the writer's new commits (a reader never blocks the
writer) and redraws: rows and actor composition, rates (rows/s, commits/s) since the last frame,
the last training step's per-actor batch shares, |TD| and Q, and the anomalies of the audit's
checks (re-run every ``--audit-every`` seconds: an audit reads every committed row). On a
terminal the screen is redrawn in place; otherwise each frame is printed after the last one.
Ctrl-C ends it (exit 0); ``--fail-on`` makes it exit 1 as soon as such an anomaly shows.
"""

from __future__ import annotations

import json
import sys
import time

SEVERITIES = ("error", "warning", "info")
CLEAR = "\x1b[H\x1b[2J"  # cursor home + clear screen


def add_arguments(p) -> None:
    from .cli import choice

    p.add_argument("path", help="the store to follow (.h5), being written or not")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    p.add_argument("--once", action="store_true", help="draw one frame and exit")
    p.add_argument("--frames", type=int, default=None, help="exit after this many frames (default: until Ctrl-C)")
    p.add_argument("--audit-every", type=float, default=10.0, metavar="SECONDS",
                   help="re-run the audit's anomaly checks this often (0: never)")
    p.add_argument("--fail-on", type=choice(*SEVERITIES), default=None, metavar="{error,warning,info}",
                   help="exit with status 1 when an anomaly of this severity or worse shows (any case)")
    p.add_argument("--json", action="store_true", help="one JSON document per frame, one per line (JSON Lines)")


def snapshot(store, prev: dict | None, anomalies) -> dict:
    """What one frame shows, from a reader that has just refreshed."""
    from replaystore.store import TRAIN_STEPS

    now = time.time()
    comp = store.actor_composition(window=False)
    frame = {"path": store.path, "time": now, "rows": len(store), "commits": store.commit_seq,
             "writer": "live" if store.writer_state["live"] else ("died" if store.writer_state["died"] else "closed"),
             "actors": {n: {"count": c, "fraction": comp["fractions"][n]} for n, c in comp["counts"].items()},
             "tables": {k: v for k, v in store.tables.items() if k != "transitions"},
             "rows_per_s": None, "commits_per_s": None, "last_step": None, "anomalies": anomalies}
    if prev is not None and now > prev["time"]:
        dt = now - prev["time"]
        frame["rows_per_s"] = (frame["rows"] - prev["rows"]) / dt
        frame["commits_per_s"] = (frame["commits"] - prev["commits"]) / dt
    n_steps = store.tables.get(TRAIN_STEPS, 0)
    if n_steps:
        row = store.read_table(TRAIN_STEPS, start=n_steps - 1)
        count = row["batch_count"][0]
        total = int(count.sum())
        frame["last_step"] = {
            "step": int(row["step"][0]), "loss": float(row["loss"][0]),
            "per_actor": {a: {"batch_fraction": (int(count[i]) / total if total else None),
                              "td_abs_mean": _num(row["td_abs_mean"][0][i]), "q_mean": _num(row["q_mean"][0][i])}
                          for i, a in enumerate(store.actors.names)}}
    return frame


def _num(x) -> float | None:
    x = float(x)
    return None if x != x else x  # NaN (actor absent from the batch) as null


def render(f: dict) -> str:
    """The human frame."""
    rate = f"{f['rows_per_s']:,.0f} rows/s, {f['commits_per_s']:.1f} commits/s" if f["rows_per_s"] is not None \
        else "rates from the next frame on"
    lines = [f"replaystore watch  {f['path']}  ({time.strftime('%H:%M:%S', time.localtime(f['time']))}, "
             f"writer {f['writer']})",
             f"rows        {f['rows']:,} committed   commit #{f['commits']}   {rate}"]
    for i, (name, a) in enumerate(f["actors"].items()):
        lines.append(f"{'composition' if i == 0 else '':<12}{name:<10} {a['count']:>12,}  {a['fraction']:6.1%}")
    if f["tables"]:
        lines.append("tables      " + ", ".join(f"{k} {v:,}" for k, v in f["tables"].items()))
    s = f["last_step"]
    if s:
        lines.append(f"last step   {s['step']:,}  loss {s['loss']:.4g}")
        for name, a in s["per_actor"].items():
            frac = f"{a['batch_fraction']:6.1%}" if a["batch_fraction"] is not None else "   n/a"
            td = f"{a['td_abs_mean']:.4g}" if a["td_abs_mean"] is not None else "n/a"
            q = f"{a['q_mean']:.4g}" if a["q_mean"] is not None else "n/a"
            lines.append(f"  {name:<10} batch {frac}   |TD| {td:<10} Q {q}")
    else:
        lines.append("last step   (no training telemetry yet)")
    an = f["anomalies"]
    if an is None:
        lines.append("anomalies   (not checked)")
    elif not an:
        lines.append("anomalies   none")
    else:
        lines.append(f"anomalies   {len(an)}:")
        lines += [f"  {a['severity']:<8}{a['code']}: {a['message']}" for a in an[:8]]
        if len(an) > 8:
            lines.append(f"  ... and {len(an) - 8} more")
    return "\n".join(lines)


def _anomalies(path) -> list[dict]:
    from replaystore.analysis import audit

    order = {s: i for i, s in enumerate(SEVERITIES)}
    found = [a for a in audit(path).to_dict()["anomalies"]]
    return sorted(found, key=lambda a: order.get(a["severity"], 9))


def run(args) -> int:
    from replaystore.store import ReplayStore
    from replaystore.store.errors import StoreError

    from .progress import is_terminal

    if args.interval <= 0 or (args.frames is not None and args.frames < 1):
        print("error: --interval must be > 0 seconds and --frames >= 1", file=sys.stderr)
        return 2
    try:
        store = ReplayStore.open(args.path, "r")
    except (StoreError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tty = is_terminal(sys.stdout) and not args.json
    frames = 1 if args.once else args.frames
    prev, anomalies, last_audit, drawn = None, None, None, 0
    try:
        while True:
            store.refresh()
            if args.audit_every > 0 and (last_audit is None or time.monotonic() - last_audit >= args.audit_every):
                anomalies = _anomalies(args.path)
                last_audit = time.monotonic()
            frame = snapshot(store, prev, anomalies)
            if args.json:
                print(json.dumps(frame), flush=True)
            else:
                print((CLEAR if tty else ("\n" if drawn else "")) + render(frame), flush=True)
            drawn += 1
            if args.fail_on and anomalies:
                worst = [a for a in anomalies if SEVERITIES.index(a["severity"]) <= SEVERITIES.index(args.fail_on)]
                if worst:
                    print(f"failing: {len(worst)} anomaly(ies) of severity {args.fail_on} or worse", file=sys.stderr)
                    return 1
            if frames is not None and drawn >= frames:
                return 0
            prev = frame
            time.sleep(args.interval)
    except KeyboardInterrupt:  # the normal way to stop watching
        return 0
    except (StoreError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        store.close()
