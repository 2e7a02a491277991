"""The public API is typed (py.typed): mypy --strict passes on the package face and the lower
layer (replaystore, replaystore.cli, replaystore.common), and on a user's program that calls the
public API, where it also catches that program's mistakes.

mypy cannot follow the editable install's import hook (replaystore.store lives in store/), so it
reads the package through ``scripts/wheel_layout.py``: the folders laid out as the wheel installs
them. pyproject.toml's [tool.mypy] holds the settings (strict; store/, analysis/ and agent/ are
checked where a user's code meets their signatures).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# checked strictly, line by line: the package face, its command line and the layer below the parts
STRICT = ("__init__.py", "cli.py", "progress.py", "common")

USER_PROGRAM = '''
"""A user's program, as the README writes one."""
from __future__ import annotations

from typing import assert_type

import numpy as np

import replaystore as rs
from replaystore import AuditReport, ReplayStore, Sampler, Schema, Telemetry
from replaystore.store import StoreReader, StoreWriter


def record(path: str) -> int:
    schema = Schema.transition(state_shape=(4,), continuous_dim=1)
    with ReplayStore.create(path, schema, actors=("expert", "dqn"), window=100_000,
                            metadata={"env_id": "CartPole-v1", "expert_ratio": 0.26}) as writer:
        assert_type(writer, StoreWriter)
        obs = np.zeros(4, np.float32)
        writer.append(actor="expert", state=obs, next_state=obs + 1, discrete_action=1,
                      continuous_action=np.array([0.3], np.float32), reward=1.0, done=False)
        n = 63
        writer.extend({"actor": ["dqn"] * n, "state": np.ones((n, 4)), "next_state": np.ones((n, 4)),
                       "discrete_action": np.zeros(n, np.int32), "continuous_action": np.zeros((n, 1)),
                       "reward": np.ones(n), "done": np.arange(n) % 20 == 19})
        writer.commit()
    reader = ReplayStore.open(path)
    assert_type(reader, StoreReader)
    assert_type(ReplayStore.open(path, "a"), StoreWriter)
    reader.refresh()
    sampler = Sampler(reader, 16, strategy="stratified", actor_fractions={"expert": 0.25, "dqn": 0.75}, seed=0)
    batch = sampler.sample()
    sampler.close()
    reader.close()
    tel = Telemetry(ReplayStore.open(path, "a"))
    tel.log_step(1, loss=0.5, actors=batch["actor"], td=[0.1] * 16, reward=batch["reward"], q=np.zeros(16), lr=3e-4)
    tel.log_step(2, loss=0.4, batch_count={"expert": 4, "dqn": 12}, td_abs_mean=[0.1, 0.2])
    tel.log_samples(2, batch["row"], batch["actor"], np.zeros(16), np.zeros(16), np.zeros(16))
    tel.close()
    assert_type(rs.audit(ReplayStore.open(path)), AuditReport)
    report = rs.audit(path)               # a path may be a store or a run folder
    assert_type(report, AuditReport | rs.analysis.RunAuditReport)
    if not isinstance(report, AuditReport):
        raise SystemExit(f"{path} is a run folder")
    try:
        import replaystore.agent
    except rs.MissingExtraError as e:
        print(e.extra)
    return len(report.codes()) + int(rs.__version__ != "")
'''

MISTAKES = '''
"""The same API called wrongly: each line below must be reported."""
from __future__ import annotations

from replaystore import ReplayStore, Schema, Telemetry
from replaystore.store import StoreWriter


def wrong(path: str) -> None:
    writer: StoreWriter = ReplayStore.open(path)                                  # MISTAKE: a reader, not a writer
    ReplayStore.create(path, Schema.transition((4,)), ("a",), window="big")      # MISTAKE: window is an int
    Telemetry(writer).log_step("7", loss=0.5)                                     # MISTAKE: step is an int
'''


def test_mypy_strict_on_the_public_api_and_a_users_program(tmp_path):
    """One mypy run: no error in the package face, the CLI, common/ or the user's program; exactly
    the marked lines of the mistaken program are errors."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        from wheel_layout import layout
    finally:
        sys.path.pop(0)
    layout(str(tmp_path / "site"))
    (tmp_path / "user_program.py").write_text(textwrap.dedent(USER_PROGRAM))
    (tmp_path / "user_mistakes.py").write_text(textwrap.dedent(MISTAKES))
    env = {**os.environ, "MYPYPATH": str(tmp_path / "site")}
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", os.path.join(ROOT, "pyproject.toml"),
                        "--cache-dir", str(tmp_path / "cache"), "--no-error-summary",
                        *(os.path.join("site", "replaystore", f) for f in STRICT), "user_program.py",
                        "user_mistakes.py"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    errors = [line for line in r.stdout.splitlines() if ": error:" in line]
    assert 1 == r.returncode, r.stdout + r.stderr
    marked = [i for i, line in enumerate(textwrap.dedent(MISTAKES).splitlines(), 1) if "# MISTAKE" in line]
    reported = sorted({int(m.group(1)) for e in errors if (m := re.match(r"user_mistakes\.py:(\d+):", e))})
    assert marked == reported, "\n".join(errors)
    assert [] == [e for e in errors if not e.startswith("user_mistakes.py:")]


def test_py_typed_ships_and_append_shows_a_readable_default():
    """py.typed is in the package; help() shows append's actor as required, not an object address."""
    import inspect

    import replaystore
    from replaystore.store import StoreWriter

    assert os.path.exists(os.path.join(os.path.dirname(replaystore.__file__), "py.typed"))
    sig = str(inspect.signature(StoreWriter.append))
    assert "actor: 'str | int' = <required>" in sig and "object at 0x" not in sig
