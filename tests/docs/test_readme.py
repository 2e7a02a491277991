"""The README's Python example runs as written and prints what its comments say."""

import contextlib
import io
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_readme_example_runs(tmp_path, monkeypatch):
    """Every ```python block of README.md runs in a fresh folder; each print matches its # comment."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        expected = [m.group(1).strip() for m in re.finditer(r"^print\(.*#\s*(.+)$", block, flags=re.M)]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
        assert expected == out.getvalue().strip().splitlines()
