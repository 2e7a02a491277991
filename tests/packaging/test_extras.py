"""Extras that match features: the core alone imports, documents and star-imports; every command
that needs a missing extra names it in one line, exits 2 and creates nothing; pyproject's extras,
``replaystore.common.extras`` and requirements.txt agree.

"Missing" is made honest with a real interpreter whose import system refuses the extras' modules
(a meta-path finder that raises ImportError for them, as an absent package does), so nothing of
them can leak in through an import the code forgot. (A fresh venv with only the core installed
would be the full proof, but installing numpy, h5py, pandas, matplotlib and scipy into one takes
minutes on these machines; the hiding finder covers the same imports in about a second.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest

from replaystore.common.extras import EXTRAS, MissingExtraError, require_extra

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")
HEALTHY, INCIDENT = os.path.join(DATA, "healthy.h5"), os.path.join(DATA, "incident.h5")
EXTRA_MODULES = sorted({m for mods in EXTRAS.values() for m in mods})

HIDE = """
import sys
HIDDEN = set({hidden!r})
class _Absent:
    '''Every module of an extra is absent: importing it raises as if it were not installed.'''
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Absent())
"""


def _python(code: str, cwd, hidden=EXTRA_MODULES) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = HIDE.format(hidden=list(hidden)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


def _cli(argv: list[str], cwd, hidden=EXTRA_MODULES) -> subprocess.CompletedProcess:
    return _python(f"from replaystore.cli import main\nsys.argv = ['replaystore', *{argv!r}]\nsys.exit(main())",
                   cwd, hidden)


def test_the_core_alone_imports_documents_and_star_imports(tmp_path):
    """import replaystore, help(replaystore), `from replaystore import *` and every name of __all__
    work with no extra installed, beside a user's own store.py, common.py, ... that raise if imported;
    replaystore.agent says which extra it needs."""
    for decoy in ("store", "agent", "analysis", "common", "notebooks"):
        (tmp_path / f"{decoy}.py").write_text(f"raise ImportError('the decoy {decoy}.py was imported')\n")
    r = _python("""
        import pydoc
        import replaystore
        text = pydoc.render_doc(replaystore, renderer=pydoc.plaintext)
        assert "ReplayStore" in text and "Telemetry" in text, text[:2000]
        ns = {}
        exec("from replaystore import *", ns)
        assert ns["ReplayStore"] is replaystore.store.ReplayStore and "agent" not in ns
        for name in replaystore.__all__:
            getattr(replaystore, name)
        from replaystore.agent import AgentConfig      # the config needs no torch (train --help shows it)
        assert AgentConfig().total_steps > 0
        try:
            from replaystore.agent import train
        except ImportError as e:
            print(e)
        else:
            raise SystemExit("replaystore.agent.train imported without torch")
        hidden_loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN and sys.modules[m] is not None)
        assert not hidden_loaded, hidden_loaded
    """, tmp_path)
    assert 0 == r.returncode, r.stderr
    assert ("replaystore.agent.train needs the [agent] extra (torch is not installed): pip install "
            "'replaystore[agent]'") == r.stdout.strip()


@pytest.mark.parametrize("argv, extra", [
    (["train", "--out", "run.h5", "--steps", "100"], "agent"),
    (["demo", "--out", "demo"], "agent"),
    (["tensorboard", HEALTHY, "--out", "tb"], "tensorboard"),
    (["export", HEALTHY, "--format", "parquet", "--out", "pq"], "parquet"),
    (["notebook", HEALTHY, "--out", "report.ipynb"], "notebook"),
    (["audit", HEALTHY, INCIDENT, "--engine", "dask", "--out", "cmp"], "dask"),
])
def test_a_command_without_its_extra_says_which_in_one_line_and_creates_nothing(tmp_path, argv, extra):
    """No traceback: one `error:` line naming the extra and the pip command, exit 2, an empty folder."""
    r = _cli(argv, tmp_path)
    assert 2 == r.returncode, r.stderr
    assert "" == r.stdout
    assert 1 == len(r.stderr.splitlines()), r.stderr
    assert f"needs the [{extra}] extra" in r.stderr and f"pip install 'replaystore[{extra}]'" in r.stderr
    assert [] == os.listdir(tmp_path)


def test_functions_without_their_extra_raise_missing_extra_error(tmp_path):
    """The library's functions name their extra too: export_parquet, recompute_td, audit_runs(dask),
    Telemetry(tensorboard=...), each a MissingExtraError (an ImportError) raised before any output
    (the store the test makes for Telemetry is the folder's only content afterwards)."""
    r = _python(f"""
        import replaystore as rs
        from replaystore.analysis import audit_runs, export_parquet, recompute_td
        store = rs.ReplayStore.open({HEALTHY!r}, "r")
        calls = [(lambda: export_parquet(store, "pq"), "parquet"), (lambda: recompute_td(store, 1), "agent"),
                 (lambda: audit_runs([{HEALTHY!r}], engine="dask"), "dask")]
        for call, extra in calls:
            try:
                call()
            except rs.MissingExtraError as e:
                assert e.extra == extra, (e, extra)
                print(e)
            else:
                raise SystemExit(f"no MissingExtraError for [{{extra}}]")
        store.close()
        with rs.ReplayStore.create("own.h5", rs.Schema.transition((2,)), actors=("a", "b")) as own:
            try:
                rs.Telemetry(own, tensorboard="tb")
            except rs.MissingExtraError as e:
                print(e)
            assert "train_steps" not in own.tables, own.tables   # refused before it added its tables
    """, tmp_path)
    assert 0 == r.returncode, r.stderr
    assert ["export_parquet() needs the [parquet] extra", "recompute_td() needs the [agent] extra",
            "engine='dask' needs the [dask] extra", "Telemetry(tensorboard=...) needs the [tensorboard] extra"] == [
        line.split(" (")[0] for line in r.stdout.splitlines()]
    assert ["own.h5", "own.h5.commit", "own.h5.d"] == sorted(os.listdir(tmp_path))  # no pq/, no tb/


def test_train_with_ray_without_ray_names_the_ray_extra(tmp_path):
    """--engine ray with torch present but Ray absent: the [ray] extra, not [agent]."""
    r = _cli(["train", "--workers", "2", "--engine", "ray", "--out", "run"], tmp_path, hidden=["ray"])
    assert 2 == r.returncode and "needs the [ray] extra" in r.stderr, r.stderr
    assert [] == os.listdir(tmp_path)


def test_every_help_works_without_any_extra(tmp_path):
    """Every command's --help, even train's (its defaults come from AgentConfig), needs no extra."""
    r = _python("""
        import contextlib, io
        from replaystore.cli import COMMANDS, main
        for command in COMMANDS:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    main([command, "--help"])
                except SystemExit as e:
                    assert e.code == 0, (command, e.code)
            assert out.getvalue().startswith(f"usage: replaystore {command}"), (command, out.getvalue()[:200])
            print(command)
    """, tmp_path)
    assert 0 == r.returncode, r.stderr
    from replaystore.cli import COMMANDS

    assert list(COMMANDS) == r.stdout.split()


def test_train_without_tensorboard_skips_its_default_view_and_refuses_an_explicit_one(tmp_path):
    """With torch but no tensorboard: train runs and says in one line why there is no <store>.tb;
    an explicit --tensorboard DIR is refused before anything is created."""
    tiny = ["--steps", "60", "--quiet", "--eval-episodes", "0", "--set", "learning_starts=30", "--set", "batch_size=8",
            "--set", "hidden=[8]"]
    r = _cli(["train", "--out", "run.h5", "--tensorboard", "tb", *tiny], tmp_path, hidden=["tensorboard"])
    assert 2 == r.returncode and "replaystore train --tensorboard needs the [tensorboard] extra" in r.stderr
    assert [] == os.listdir(tmp_path)
    r = _cli(["train", "--out", "run.h5", *tiny], tmp_path, hidden=["tensorboard"])
    assert 0 == r.returncode, r.stderr
    assert "note: no TensorBoard files: the [tensorboard] extra is not installed" in r.stderr
    assert not (tmp_path / "run.tb").exists() and (tmp_path / "run.h5").exists()


def test_the_tensorboard_command_advises_only_what_exists(tmp_path):
    """Without tensorboard: the [tensorboard] extra, never [agent] and never a flag the command lacks."""
    r = _cli(["tensorboard", HEALTHY, "--out", "tb"], tmp_path, hidden=["tensorboard"])
    assert "[tensorboard]" in r.stderr and "[agent]" not in r.stderr and "--no-tensorboard" not in r.stderr


def test_missing_extra_error_is_an_import_error_with_its_fields():
    """MissingExtraError inherits ImportError and keeps what was asked for, the extra and the module."""
    with pytest.raises(ImportError, match=r"^f\(\) needs the \[agent\] extra \(torch is not installed\)"):
        raise MissingExtraError("f()", "agent", "torch")
    with pytest.raises(ValueError, match=r"unknown extra 'gpu'; expected one of \['agent'"):
        require_extra("gpu", "f()")
    e = MissingExtraError("f()", "dask", "distributed")
    assert ("f()", "dask", "distributed", "distributed") == (e.feature, e.extra, e.missing, e.name)


def _dist_name(req: str) -> str:
    return re.split(r"[\[<>=;! ]", req, maxsplit=1)[0].lower()


def test_pyproject_extras_install_what_the_features_import():
    """Each feature extra installs exactly the distributions of its modules; test tools are in none of them."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        dists = {_dist_name(r) for r in extras[extra] if not r.startswith("replaystore")}
        assert set(modules) <= dists | ({"fsspec"} if extra == "s3" else set()), (extra, dists)
        assert dists <= set(modules) | {"dask"}, (extra, dists)  # dask[dataframe] is dask's own extra
    test_only = {"pytest", "hypothesis", "moto", "duckdb", "mypy", "mkdocs", "mkdocstrings"}
    for extra in EXTRAS:
        assert not test_only & {_dist_name(r) for r in extras[extra]}, extra
    assert test_only <= {_dist_name(r) for r in extras["test"]}
    torch = next(r for r in extras["agent"] if r.startswith("torch"))
    assert ">=" in torch and "==" not in torch  # a range: a user's CUDA torch stays


def test_requirements_pin_every_extra_exactly():
    """requirements.txt pins (==) every distribution an extra names, torch to the 2.13.0 CPU wheel on disk."""
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        pins = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    assert all("==" in p for p in pins), pins
    pinned = {_dist_name(p) for p in pins}
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    wanted = {_dist_name(r) for rs in project["optional-dependencies"].values() for r in rs
              if not r.startswith("replaystore")} | {_dist_name(r) for r in project["dependencies"]}
    assert wanted <= pinned, wanted - pinned
    assert "torch==2.13.0" in pins
