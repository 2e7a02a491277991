"""The documentation site builds with warnings as errors (`mkdocs build --strict`), from the
README's sections, the design, every command's --help and the docstrings (mkdocstrings)."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_docs_build_strict(tmp_path):
    """A strict build succeeds, and its pages hold the README, the contracts, the CLI and the API."""
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", os.path.join(ROOT, "mkdocs.yml"),
                        "-d", str(site)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert 0 == r.returncode, r.stdout + r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    index = (site / "index.html").read_text()
    assert "Two commands" in index and "Installing it into your own project" in index
    assert "Commit = durable + visible" in (site / "design" / "index.html").read_text()
    cli = (site / "cli" / "index.html").read_text()
    assert cli.count("usage: replaystore ") >= 12 and "replaystore notebook" in cli
    api = (site / "api" / "index.html").read_text()
    for name in ("ReplayStore", "StoreWriter", "Sampler", "Telemetry", "log_step", "MissingExtraError", "AgentConfig"):
        assert name in api, name
    assert not (site / "hooks.py").exists()
