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
        L += _table(["severity", "code", "actor", "rows", "steps", "message"],
                    [[a["severity"], a["code"], a["actor"], a["rows"], a["steps"], a["message"]]
                     for a in sorted(d["anomalies"], key=lambda a: rank[a["severity"]])])
    else:
        L += ["None found.", ""]

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
    if "per_actor" in e:
        L += [f"Attribution: {e['attribution']}. Ended: {e['ended']}, not ended: {e['not_ended']}.", ""]
        L += _table(["actor", "episodes", "pure", "mixed", "mean return", "mean length", "pure mean return"],
                    [[a, v["episodes"], v["pure"], v["mixed"], v["returns"]["mean"], v["lengths"]["mean"],
                      v["pure_returns_mean"]] for a, v in e["per_actor"].items()])
        m = e["mixed"]
        L += [f"Mixed episodes: {m['episodes']}, mean return {_f(m['returns']['mean'])}, mean share of their "
              f"majority actor {_f(m['majority_share']['mean'])}.", ""]
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
