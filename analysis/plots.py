"""Figures of an audit report. Each function takes an ``AuditReport`` (or its ``to_dict()`` /
report.json contents) and returns a matplotlib ``Figure``; nothing is shown or saved here.

Plotting from the report, not from the store, keeps plots cheap on a 1M-row store and lets a
baseline's report.json be drawn again without its store.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure

__all__ = ["actor_fractions_over_time", "batch_vs_buffer", "reward_histograms", "return_histograms",
           "td_error_histograms", "q_over_steps", "all_figures", "save_figures"]


def _d(report) -> dict:
    return report if isinstance(report, dict) else report.to_dict()


def _empty(fig: Figure, text: str, *axes) -> Figure:
    """A note (e.g. "no telemetry") in place of a plot on each of ``axes``."""
    for ax in axes:
        ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=12, color="0.4")
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def _fig(ncols: int = 1, width: float = 7.0, height: float = 3.6):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def actor_fractions_over_time(report) -> Figure:
    """Stacked share of each actor per bucket of rows, with the declared expert ratio if any."""
    d = _d(report)
    ot = d["composition"]["over_time"]
    fig, (ax,) = _fig()
    if not ot["start"]:
        return _empty(fig, "no rows", ax)
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
    fig, (ax1, ax2) = _fig(2, 10.0)
    if b.get("status") != "ok":
        return _empty(fig, "no telemetry", ax1, ax2)
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
    fig, (ax,) = _fig()
    if not d["store"]["rows"]:
        return _empty(fig, "no rows", ax)
    _hist(ax, d["rewards"]["histogram"], "Reward per step, by actor", "reward")
    return fig


def _two_histograms(ok: bool, missing: str, left: tuple, right: tuple) -> Figure:
    """Two histogram panels side by side, each ``(histogram, title, xlabel)``; or two notes."""
    fig, axes = _fig(2, 10.0)
    if not ok:
        return _empty(fig, missing, *axes)
    for ax, (hist, title, xlabel) in zip(axes, (left, right)):
        _hist(ax, hist(), title, xlabel)
    return fig


def return_histograms(report) -> Figure:
    """Per-actor distribution of episode returns and lengths (episodes by majority actor)."""
    e = _d(report)["episodes"]
    return _two_histograms("return_histogram" in e and bool(e["ended"]), "no ended episodes",
                           (lambda: e["return_histogram"], "Episode return, by majority actor", "return"),
                           (lambda: e["length_histogram"], "Episode length, by majority actor", "steps"))


def td_error_histograms(report) -> Figure:
    """Per-actor distribution of |TD error| from the per-sample telemetry, on log-spaced bins."""
    s = _d(report)["samples"]
    return _two_histograms(s.get("status") == "ok", "no telemetry",
                           (lambda: s["td_abs_histogram"], "|TD error| per sample, by actor", "|TD error|"),
                           (lambda: s["q_histogram"], "Q per sample, by actor", "Q(s, a)"))


def q_over_steps(report) -> Figure:
    """Per-actor mean Q and mean |TD error| over training steps (batch-count weighted)."""
    d = _d(report)
    t = d["training"]
    fig, (ax1, ax2) = _fig(2, 10.0)
    if t.get("status") != "ok":
        return _empty(fig, "no telemetry", ax1, ax2)
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
    d = _d(report)
    return {name: fn(d) for name, fn in FIGURES.items()}


def save_figures(report, out_dir, dpi: int = 80) -> dict[str, str]:
    """Write every figure as ``<out_dir>/<name>.png``; returns ``{name: file name}``."""
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    for name, fig in all_figures(report).items():
        fn = f"{name}.png"
        fig.savefig(os.path.join(out_dir, fn), dpi=dpi)
        files[name] = fn
    return files
