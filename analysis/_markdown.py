"""The audit report as Markdown, for people (report.json is for machines)."""

from __future__ import annotations


def _f(x, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.0f}" if 1e4 <= abs(x) < 1e15 else f"{x:.{digits}g}"
    return str(x)


def _table(header: list[str], rows: list[list]) -> list[str]:
    cell = lambda c: _f(c).replace("|", "\\|")  # noqa: E731  (a '|' inside a cell would end it)
    out = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return out + [""]


def _episodes(a) -> str | None:
    eps = a.get("episodes")
    if not eps:
        return None
    more = a["details"].get("episodes_count", len(eps)) - len(eps)
    return ", ".join(map(str, eps[:5])) + (f" (+{more + len(eps) - 5 if len(eps) > 5 else more} more)"
                                           if len(eps) > 5 or more > 0 else "")


def to_markdown(report, figures: dict[str, str] | None = None) -> str:
    """Markdown text of ``report`` (an AuditReport or its dict); ``figures`` maps plot names to
    image files written beside the report (see ``analysis.plots.save_figures``)."""
    d = report if isinstance(report, dict) else report.to_dict()
    figures = figures or {}
    s = d["store"]
    L = [f"# Audit of `{d['generated'].get('path', '?')}`", "",
         f"{s['rows']} committed rows; replay window {s['window']} rows (from row {s['window_start']}); "
         f"actors {s['actors']}; tables {s['tables']}; {s['checkpoints']} checkpoint(s).", "",
         f"Run metadata: `{s['metadata']}`", "", "## Anomalies", ""]
    if d["anomalies"]:
        rank = {"error": 0, "warning": 1, "info": 2}
        L += _table(["severity", "code", "actor", "rows", "episodes", "steps", "evidence", "threshold", "message"],
                    [[a["severity"], a["code"], a["actor"], a["rows"], _episodes(a), a["steps"],
                      a["details"].get("evidence"), a["details"].get("threshold"), a["message"]]
                     for a in sorted(d["anomalies"], key=lambda a: rank[a["severity"]])])
    else:
        L += ["None found.", ""]
    checks = d.get("checks", {})
    if checks:
        L += ["## Checks", "", "Which checks ran on this store, which were skipped and why (evidence in "
              "report.json under `checks`).", ""]
        L += _table(["check", "status", "findings or reason", "looks for"],
                    [[k, v["status"], ", ".join(v.get("findings", [])) or "none" if v["status"] == "ran"
                      else v.get("reason"), v["about"]] for k, v in checks.items()])

    def fig(name):
        if name in figures:
            L.extend([f"![{name}]({figures[name]})", ""])

    c = d["composition"]
    L += ["## Actor composition", "", d["notes"]["composition"], ""]
    L += _table(["actor", "rows (whole)", "fraction (whole)", "rows (window)", "fraction (window)"],
                [[a, c["whole"]["counts"][a], c["whole"]["fractions"][a], c["window"]["counts"][a],
                  c["window"]["fractions"][a]] for a in s["actors"]]
                + [["(unknown code)", c["whole"]["unknown_codes"], None, c["window"]["unknown_codes"], None]])
    fig("actor_fractions")
    L += ["## Rewards per actor", ""]
    L += _table(["actor", "count", "mean", "std", "min", "median", "max", "non-finite"],
                [[a, r["count"], r["mean"], r["std"], r["min"], r["quantiles"]["0.5"], r["max"], r["nonfinite"]]
                 for a, r in d["rewards"]["per_actor"].items()])
    fig("rewards")
    e = d["episodes"]
    L += ["## Episodes", ""]
    if "credit" in e:
        cr = e["credit"]
        L += [f"Ended: {e['ended']} (mean return {_f(e['returns']['mean'])}, mean length "
              f"{_f(e['lengths']['mean'])}), not ended: {e['not_ended']}. Credit per actor: {cr['method']}.", ""]
        L += _table(["actor", "frames", "mean return-to-go", "median return-to-go", "mean share of an episode"],
                    [[a, v["frames"], v["return_to_go"]["mean"], v["return_to_go"]["quantiles"]["0.5"],
                      cr["by_share"][a]["mean_share"]] for a, v in cr["per_actor"].items()])
        edges = cr["share_edges"]
        bins = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])]
        L += ["Mean episode return (episodes) by each actor's share of the episode's frames:", ""]
        L += _table(["actor"] + bins,
                    [[a] + [f"{_f(m)} ({k})" if k else "–" for m, k in zip(v["mean_return"], v["episodes"])]
                     for a, v in cr["by_share"].items()])
    else:
        L += [str(e.get("status")), ""]
    fig("returns")
    t = d["training"]
    L += ["## Training telemetry", ""]
    if t.get("status") == "ok":
        L += [f"{t['steps']['count']} training steps ({t['steps']['first']}..{t['steps']['last']}); "
              f"loss mean {_f(t['loss']['mean'])}, non-finite {t['loss']['nonfinite']}.", ""]
        L += _table(["actor", "batch rows", "batch fraction", "mean |TD|", "mean Q", "mean reward"],
                    [[a, v["batch_count"], v["batch_fraction"], v["td_abs_mean"], v["q_mean"], v["reward_mean"]]
                     for a, v in t["per_actor"].items()])
    else:
        L += ["No telemetry: the store holds no `train_steps` rows yet.", ""]
    sm = d["samples"]
    if sm.get("status") == "ok":
        L += [f"Per-sample telemetry: {sm['count']} samples.", ""]
        L += _table(["actor", "samples", "mean |TD|", "median |TD|", "p99 |TD|", "mean Q"],
                    [[a, v["td_abs"]["count"], v["td_abs"]["mean"], v["td_abs"]["quantiles"]["0.5"],
                      v["td_abs"]["quantiles"]["0.99"], v["q"]["mean"]] for a, v in sm["per_actor"].items()])
    fig("td_errors")
    fig("q_over_steps")
    b = d["batch_vs_buffer"]
    L += ["## Batch composition against the buffer", ""]
    if b.get("status") == "ok":
        L += [f"Expected shares: {b['method']}. {b['test']['name']}: statistic {_f(b['test']['statistic'])}, "
              f"p-value {_f(b['test']['p_value'])}; largest share difference {_f(b['max_abs_diff'])}.", ""]
        L += _table(["actor", "observed rows", "expected rows", "observed fraction", "expected fraction"],
                    [[a, b["observed"][a], b["expected"][a], b["observed_fractions"][a], b["expected_fractions"][a]]
                     for a in s["actors"]])
    else:
        L += ["No telemetry.", ""]
    fig("batch_vs_buffer")
    L += ["## Method notes", ""] + [f"- **{k}**: {v}" for k, v in d["notes"].items()] + [""]
    return "\n".join(L)
