"""The installed namespace: replaystore.{store,agent,analysis}, a light core, no top-level decoys.

A user's repository often has its own ``store.py``; before the namespace it broke ``import
analysis``. These tests run real interpreters in a folder holding such decoys, and read the
built wheel to check what would be installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DECOYS = {name: f"raise ImportError('the decoy {name}.py was imported')\n" for name in ("store", "agent", "analysis")}


def _run(code: str, cwd, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    env.pop("PYTHONPATH", None)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def decoy_dir(tmp_path):
    for name, body in DECOYS.items():
        (tmp_path / f"{name}.py").write_text(body)
    return tmp_path


def test_import_from_a_folder_with_decoy_modules(decoy_dir):
    """store.py/agent.py/analysis.py in the working folder do not change what replaystore gives."""
    r = _run("""
        import replaystore as rs
        import replaystore.store, replaystore.analysis
        assert rs.ReplayStore is replaystore.store.ReplayStore
        for name in ("Schema", "Column", "Sampler", "audit", "load_transitions", "errors"):
            getattr(rs, name)
        print(replaystore.store.__file__)
        print(replaystore.analysis.__file__)
    """, decoy_dir)
    assert r.returncode == 0, r.stderr
    store_file, analysis_file = r.stdout.split()
    assert store_file == os.path.join(ROOT, "store", "__init__.py")
    assert analysis_file == os.path.join(ROOT, "analysis", "__init__.py")


def test_core_works_without_torch(decoy_dir):
    """With torch and gymnasium unimportable: create, append, sample (numpy) and audit a store."""
    r = _run("""
        import sys
        sys.modules["torch"] = None; sys.modules["gymnasium"] = None   # import now raises ImportError
        import numpy as np
        import replaystore as rs
        schema = rs.Schema.transition(state_shape=(3,))
        with rs.ReplayStore.create("run.h5", schema, actors=("expert", "dqn"), window=1000) as s:
            n = 200
            s.extend({"actor": ["expert", "dqn"] * (n // 2), "state": np.random.rand(n, 3),
                      "next_state": np.random.rand(n, 3), "discrete_action": np.zeros(n, np.int32),
                      "continuous_action": np.zeros((n, 0)), "reward": np.ones(n), "done": np.arange(n) % 50 == 49})
        batch = rs.Sampler("run.h5", 32, seed=0).sample()
        assert type(batch["state"]).__name__ == "ndarray", type(batch["state"])
        try:
            rs.Sampler("run.h5", 32, seed=0, as_torch=True)
        except rs.errors.SamplerError as e:
            assert "replaystore[agent]" in str(e)
        else:
            raise SystemExit("as_torch=True without torch did not raise")
        report = rs.audit("run.h5")
        print(report.composition["fractions"]["expert"] if "fractions" in report.composition else "ok")
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
    """, decoy_dir)
    assert r.returncode == 0, r.stderr


def test_python_dash_m_is_the_command(decoy_dir):
    """`python -m replaystore --help` prints the same usage as the console script."""
    r = _run("import runpy, sys; sys.argv = ['replaystore', '--help']; runpy.run_module('replaystore', run_name='__main__')",
             decoy_dir)
    assert r.returncode == 0, r.stderr
    assert "usage: replaystore" in r.stdout
    m = subprocess.run([sys.executable, "-m", "replaystore", "--help"], cwd=decoy_dir, capture_output=True, text=True,
                       timeout=60)
    assert m.returncode == 0 and m.stdout == r.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                        ROOT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (path,) = [p for p in out.iterdir() if p.suffix == ".whl"]
    return zipfile.ZipFile(path)


def test_wheel_installs_only_the_namespace(wheel):
    """Every installed file sits under replaystore/ (or the dist-info): no top-level store/agent/analysis."""
    tops = {n.split("/")[0] for n in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"replaystore"}
    names = set(wheel.namelist())
    for sub in ("store", "agent", "analysis", "remote", "common", "notebooks"):
        assert f"replaystore/{sub}/__init__.py" in names


def test_wheel_ships_the_types_the_notebook_and_common(wheel):
    """py.typed (PEP 561), the forensic notebook (package data) and the common/ layer are in the wheel."""
    names = set(wheel.namelist())
    assert {"replaystore/py.typed", "replaystore/notebooks/forensics.ipynb", "replaystore/common/__init__.py",
            "replaystore/common/extras.py", "replaystore/common/telemetry.py"} <= names


def test_core_requirements_pull_no_torch(wheel):
    """The unconditional requirements are the light core; torch (a range) and gymnasium are in [agent]."""
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    reqs = [line.split(":", 1)[1].strip() for line in wheel.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:")]
    core = [r for r in reqs if "extra ==" not in r]
    core_names = {r.split(">")[0].split("=")[0].split("<")[0].split(";")[0].strip() for r in core}
    assert core_names == {"numpy", "h5py", "pandas", "matplotlib", "scipy", "tqdm"}
    agent = [r for r in reqs if "extra == \"agent\"" in r]
    torch_req = next(r for r in agent if r.startswith("torch"))
    spec = torch_req.split(";")[0]
    assert ">=" in spec and "==" not in spec, torch_req
    assert any(r.startswith("gymnasium") for r in agent)


def test_pyproject_lists_every_package():
    """Every folder with an ``__init__.py`` under a package folder is named in pyproject's ``packages``.

    setuptools still ships an unlisted subpackage's files as package data (with a warning), so the
    wheel alone would not show the omission; the list is what says which packages exist."""
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        cfg = tomllib.load(f)["tool"]["setuptools"]
    found = set()
    for pkg, folder in cfg["package-dir"].items():
        base = os.path.join(ROOT, folder)
        for d, subdirs, files in os.walk(base):
            subdirs[:] = [s for s in subdirs if os.path.isfile(os.path.join(d, s, "__init__.py"))]
            rel = os.path.relpath(d, base)
            found.add(pkg if rel == "." else pkg + "." + rel.replace(os.sep, "."))
    assert sorted(found - set(cfg["packages"])) == [], "add these to [tool.setuptools] packages in pyproject.toml"
    assert sorted(set(cfg["packages"]) - found) == [], "pyproject.toml lists packages that have no folder"
