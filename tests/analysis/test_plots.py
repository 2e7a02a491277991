"""Plots: each returns a Figure, also for reports without rows or telemetry."""

from __future__ import annotations

import pytest
from analysis_helpers import golden, recorded
from matplotlib.figure import Figure

from replaystore.analysis import AuditReport, audit, plots


@pytest.fixture(scope="module")
def corrupt_report():
    return AuditReport.load(golden("corrupt"))


def test_every_plot_is_a_figure_with_data(corrupt_report):
    """Each plot of a full report is a Figure with drawn data on its axes."""
    figs = plots.all_figures(corrupt_report)
    assert set(plots.FIGURES) == set(figs)
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        assert any(ax.lines or ax.patches or ax.collections for ax in fig.axes), name


def test_log_scale_for_td_errors(corrupt_report):
    """|TD error| histograms use a log x axis (their spread covers decades)."""
    fig = plots.td_error_histograms(corrupt_report)
    assert "log" == fig.axes[0].get_xscale()


def test_panels_without_data_are_left_out(empty_store, make_run):
    """No blank 'no telemetry' panels: figures without data have no axes and are not written."""
    empty = audit(empty_store)
    assert {} == plots.all_figures(empty)
    assert [] == plots.q_over_steps(empty).axes
    no_telemetry = audit(make_run(telemetry=False))
    figs = plots.all_figures(no_telemetry)
    assert {"actor_fractions", "rewards", "returns"} == set(figs)
    for name, fig in figs.items():
        assert all(ax.lines or ax.patches or ax.collections for ax in fig.axes), name
        assert not any(ax.texts for ax in fig.axes), name


def test_save_figures_writes_pngs(tmp_path):
    """save_figures writes one PNG per plot and returns their file names."""
    files = plots.save_figures(audit(recorded("incident")), tmp_path)
    assert {f"{n}.png" for n in plots.FIGURES} == set(files.values())
    assert all((tmp_path / f).stat().st_size > 1000 for f in files.values())
