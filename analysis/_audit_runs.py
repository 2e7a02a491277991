"""Audit many runs (or stores) in parallel on Dask and compare them in one table.

One task per run: each audits its run (``audit``, shard by shard) and returns one flat row of
plain numbers and strings; the table has one row per run with, side by side, the actor shares,
per-actor reward and TD summaries, and the errors and warnings found (``shard:CODE``). Dask runs the tasks on a
``LocalCluster`` it starts and closes (a few threads in this process), or on the cluster whose
scheduler address is given.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

ENGINES = ("dask", "local")


def audit_summary_row(path, expected=None) -> dict:
    """The comparison row of one run (or store): shares, reward/TD per actor, findings."""
    from ._audit import audit
    from ._run_audit import RunAuditReport, _pool

    rep = audit(path, expected)
    row = {"run": os.path.abspath(os.fspath(path))}
    if isinstance(rep, RunAuditReport):
        p = rep.pooled
        row.update(shards=len(rep.run["shards"]), rows=p["rows"])
        shares, rewards, td = p["fractions"], p["rewards"], p["td"]
        found = [(a["shard"], a["code"], a["severity"]) for a in rep.anomalies]
        steps = p.get("training", {})
    else:
        names = rep.store["actors"]
        row.update(shards=1, rows=rep.store["rows"])
        shares = rep.composition["whole"]["fractions"]
        rewards = {a: _pool([rep.rewards["per_actor"][a]]) for a in names}
        td = {a: _pool([rep.samples["per_actor"][a]["td_error"]]) if rep.samples.get("status") == "ok"
              else {"mean": None, "std": None} for a in names}
        found = [(None, a.code, a.severity) for a in rep.anomalies]
        steps = rep.training
    for a, v in shares.items():
        row[f"share {a}"] = round(v, 4)
    for a in shares:
        row[f"reward mean {a}"] = _r(rewards[a]["mean"])
        row[f"reward std {a}"] = _r(rewards[a]["std"])
        row[f"td mean {a}"] = _r(td[a]["mean"])
        # the learner's per-step batch |TD| means (train_steps), where per-sample TD is not kept
        row[f"td abs mean {a}"] = (_r(steps["per_actor"][a].get("td_abs_mean"))
                                   if steps.get("status") == "ok" and a in steps.get("per_actor", {}) else None)
    row["errors"] = sum(1 for *_, s in found if s == "error")
    row["warnings"] = sum(1 for *_, s in found if s == "warning")
    # errors and warnings only (infos such as NO_TELEMETRY would fill every row), each once
    row["anomalies"] = "; ".join(dict.fromkeys(f"{sh}:{code}" if sh is not None else code
                                               for sh, code, sev in found if sev != "info")) or "-"
    return row


def audit_runs(paths: Sequence, *, engine: str = "dask", scheduler: str | None = None, n_workers: int = 2,
               expected=None):
    """Audit ``paths`` (runs or stores) in parallel and return one ``pandas.DataFrame`` row per run.

    ``engine="dask"`` starts a ``LocalCluster`` (``n_workers`` threads in this process, closed
    afterwards) unless ``scheduler`` gives the address of a running one; ``"local"`` audits one
    after another here.
    """
    import pandas as pd

    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: expected one of {list(ENGINES)}")
    if not paths:
        raise ValueError("audit_runs: no runs given; pass one or more run folders or store files")
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"audit_runs: {missing} do not exist; pass run folders or store files")
    if engine == "local":
        rows = [audit_summary_row(p, expected) for p in paths]
    else:
        rows = _on_dask(paths, scheduler, n_workers, expected)
    return pd.DataFrame(rows)


def _on_dask(paths, scheduler, n_workers, expected) -> list[dict]:
    from replaystore.common.extras import require_extra

    require_extra("dask", "engine='dask'")
    from distributed import Client, LocalCluster
    if scheduler:
        with Client(scheduler) as client:
            return client.gather(client.map(audit_summary_row, list(paths), expected=expected, pure=False))
    # Threads, not processes: audits read mapped files and spend their time in numpy; starting
    # worker processes would cost more than it saves on a small machine.
    with LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        return client.gather(client.map(audit_summary_row, list(paths), expected=expected, pure=False))


def write_comparison(table, out_dir: str) -> tuple[str, str]:
    """Write ``table`` as ``runs.csv`` and ``runs.md`` in ``out_dir``; returns both paths."""
    from ._run_audit import markdown_table

    os.makedirs(out_dir, exist_ok=True)
    csv, md = os.path.join(out_dir, "runs.csv"), os.path.join(out_dir, "runs.md")
    table.to_csv(csv, index=False)
    body = [["-" if v is None or v != v else v for v in r] for r in table.itertuples(index=False)]
    with open(md, "w", encoding="utf-8") as f:
        f.write(f"# Audit of {len(table)} runs\n\n" + markdown_table(list(table.columns), body) + "\n")
    return csv, md


def _r(x):
    return None if x is None else round(float(x), 4)
