"""Figures of an audit report. Each function takes an ``AuditReport`` (or its ``to_dict()`` /
report.json contents) and returns a matplotlib ``Figure``; nothing is shown or saved here.
Panels without data are left out; a figure with no data at all has no axes, and ``all_figures``
and ``save_figures`` leave it out.

Plotting from the report, not from the store, keeps plots cheap on a 1M-row store and lets a
baseline's report.json be drawn again without its store.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

__all__ = ["actor_fractions_over_time", "batch_vs_buffer", "reward_histograms", "return_histograms",
           "td_error_histograms", "q_over_steps", "all_figures", "save_figures", "has_data"]


def _d(report) -> dict:
    return report if isinstance(report, dict) else report.to_dict()


def _fig(ncols: int = 1, width: float = 7.0, height: float = 3.6):
    """A figure with ``ncols`` panels side by side (none: an empty figure that says there is no data)."""
    # Fixed margins, not layout="constrained": its solver took a third of the drawing time of the
    # six figures (1M-row audit, measured here) for labels that fit these margins anyway.
    fig = Figure(figsize=(width if ncols != 1 else min(width, 7.0), height))
    if ncols:
        fig.subplots_adjust(left=0.09 if ncols == 1 else 0.07, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    axes = fig.subplots(1, ncols, squeeze=False)[0] if ncols else []
    return fig, axes


def has_data(fig: Figure) -> bool:
    return bool(fig.axes)


def actor_fractions_over_time(report) -> Figure:
    """Stacked share of each actor per bucket of rows, with the declared expert ratio if any."""
    d = _d(report)
    ot = d["composition"]["over_time"]
    if not ot["start"]:
        return _fig(0)[0]
    fig, (ax,) = _fig()
    x = np.array(ot["start"], float)
    ys = [np.nan_to_num(np.array(v, float)) for v in ot["fractions"].values()]
    unknown = np.array(ot["unknown_codes"], float) / np.maximum(1, np.array(ot["stop"]) - x)
    labels = list(ot["fractions"])
    if unknown.any():
        ys.append(unknown)
        labels.append("unknown code")
    ax.stackplot(x, *ys, labels=labels, step="post", alpha=0.85)
    ratio = d["store"]["metadata"].get("expert_ratio")
    if isinstance(ratio, (int, float)):
        ax.axhline(ratio, color="k", ls="--", lw=1, label=f"declared expert_ratio {ratio}")
    ax.set(xlabel="row", ylabel="fraction of rows", ylim=(0, 1), title=f"Actor share per {ot['bucket_rows']} rows")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def batch_vs_buffer(report) -> Figure:
    """Observed batch share per actor against the buffer's, overall (bars) and over training steps."""
    d = _d(report)
    b = d["batch_vs_buffer"]
    if b.get("status") != "ok":
        return _fig(0)[0]
    fig, (ax1, ax2) = _fig(2, 10.0)
    names = list(b["observed_fractions"])
    x = np.arange(len(names))
    ax1.bar(x - 0.2, [b["expected_fractions"][n] or 0 for n in names], 0.4, label="buffer (expected)")
    ax1.bar(x + 0.2, [b["observed_fractions"][n] or 0 for n in names], 0.4, label="batches (observed)")
    ax1.set_xticks(x, names)
    p = b["test"]["p_value"]
    ax1.set(ylabel="fraction", title=f"Batch vs buffer (chi-square p={p:.3g})" if p is not None else "Batch vs buffer")
    ax1.legend(fontsize=8)
    t = b["trend"]
    for n in names:
        line, = ax2.plot(t["step_start"], _f(t["observed"][n]), label=f"{n} batches")
        ax2.plot(t["step_start"], _f(t["expected"][n]), ls="--", color=line.get_color(), label=f"{n} buffer")
    # margins so that shares of exactly 0 or 1 (the incident) do not vanish into the frame
    ax2.set(xlabel="training step", ylabel="fraction", ylim=(-0.03, 1.03), title="Over training")
    ax2.legend(fontsize=8)
    return fig


def _f(v) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in v], float)


def _hist(ax, h: dict, title: str, xlabel: str) -> None:
    edges = np.array(h["edges"])
    for name, counts in h["counts"].items():
        c = np.array(counts, float)
        dens = c / max(1.0, c.sum())
        ax.stairs(dens, edges, label=f"{name} (n={int(c.sum())})", fill=False, lw=1.5)
    if h.get("log"):
        ax.set_xscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel="share of the actor's values")
    ax.legend(fontsize=8)


def reward_histograms(report) -> Figure:
    """Per-actor distribution of per-step rewards (each actor normalised to its own count)."""
    d = _d(report)
    if not d["store"]["rows"]:
        return _fig(0)[0]
    fig, (ax,) = _fig()
    _hist(ax, d["rewards"]["histogram"], "Reward per step, by actor", "reward")
    return fig


def _panels(panels: list, width: float = 5.0) -> Figure:
    """One panel per ``(has_data, draw(ax))`` that has data, side by side."""
    keep = [draw for ok, draw in panels if ok]
    fig, axes = _fig(len(keep), width * max(1, len(keep)))
    for ax, draw in zip(axes, keep):
        draw(ax)
    return fig


def return_histograms(report) -> Figure:
    """Credit per actor: the return-to-go of the frames each actor decided, and the mean episode
    return by each actor's share of the episode's frames (actors alternate inside episodes, so no
    episode belongs to one actor)."""
    e = _d(report)["episodes"]
    cr = e.get("credit")
    ok = cr is not None and bool(e.get("ended"))

    def by_share(ax):
        edges = np.array(cr["share_edges"])
        mid = (edges[:-1] + edges[1:]) / 2
        for name, v in cr["by_share"].items():
            ax.plot(mid, _f(v["mean_return"]), marker="o", label=name)
        ax.set(xlabel="actor's share of the episode's frames", ylabel="mean episode return",
               title="Episode return by actor share", xlim=(0, 1))
        ax.legend(fontsize=8)

    return _panels([
        (ok, lambda ax: _hist(ax, cr["return_to_go_histogram"], "Return-to-go of the frames each actor decided",
                              "return-to-go")),
        (ok, by_share),
    ])


def td_error_histograms(report) -> Figure:
    """Per-actor distribution of |TD error| from the per-sample telemetry, on log-spaced bins."""
    s = _d(report)["samples"]
    ok = s.get("status") == "ok"
    return _panels([
        (ok, lambda ax: _hist(ax, s["td_abs_histogram"], "|TD error| per sample, by actor", "|TD error|")),
        (ok, lambda ax: _hist(ax, s["q_histogram"], "Q per sample, by actor", "Q(s, a)")),
    ])


def q_over_steps(report) -> Figure:
    """Per-actor mean Q and mean |TD error| over training steps (batch-count weighted)."""
    d = _d(report)
    t = d["training"]
    if t.get("status") != "ok":
        return _fig(0)[0]
    fig, (ax1, ax2) = _fig(2, 10.0)
    tr = t["trend"]
    for n in tr["q_mean"]:
        ax1.plot(tr["step_start"], _f(tr["q_mean"][n]), marker=".", label=n)
        ax2.plot(tr["step_start"], _f(tr["td_abs_mean"][n]), marker=".", label=n)
    ax1.set(xlabel="training step", ylabel="mean Q", title="Q per actor over training")
    ax2.set(xlabel="training step", ylabel="mean |TD error|", title="|TD error| per actor over training")
    if np.nanmin(np.concatenate([_f(v) for v in tr["td_abs_mean"].values()] + [np.array([1.0])])) > 0:
        ax2.set_yscale("log")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    return fig


FIGURES = {
    "actor_fractions": actor_fractions_over_time,
    "batch_vs_buffer": batch_vs_buffer,
    "rewards": reward_histograms,
    "returns": return_histograms,
    "td_errors": td_error_histograms,
    "q_over_steps": q_over_steps,
}


def all_figures(report) -> dict[str, Figure]:
    """Every figure that has data to show (a report without telemetry has no TD/Q figures)."""
    d = _d(report)
    figs = {name: fn(d) for name, fn in FIGURES.items()}
    return {name: f for name, f in figs.items() if has_data(f)}


def save_figures(report, out_dir, dpi: int = 80) -> dict[str, str]:
    """Write every figure as ``<out_dir>/<name>.png``; returns ``{name: file name}``."""
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    for name, fig in all_figures(report).items():
        fn = f"{name}.png"
        fig.savefig(os.path.join(out_dir, fn), dpi=dpi)
        files[name] = fn
    return files
