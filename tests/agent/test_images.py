"""Image observations: uint8 states end to end, and a frames-once run equal to the plain one bit for bit."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from replaystore.agent import Agent, EnvSpec, HybridDQN, env_spec, make_env, store_schema, train
from replaystore.agent.errors import ConfigError, TransitionError
from replaystore.cli import main
from replaystore.store import TRAIN_SAMPLES, TRAIN_STEPS, FrameStack, ReplayStore, store_files

from agent_helpers import tiny_config
import image_helpers  # noqa: F401  (registers DotCatch-v0 and DotCatchFrame-v0)

IMAGE = EnvSpec((4, 12, 12), 3, 0, "uint8")
ENV = "image_helpers:DotCatch-v0"
EXPERT = "image_helpers:CatchExpert"
C0 = np.zeros(0, "f4")


def image_config(**kw):
    base = dict(env_id=ENV, expert=EXPERT, expert_ratio=0.3, total_steps=400, learning_starts=100, n_step=3,
                batch_size=16, hidden=(16,), samples_every=5, grad_norm_every=10, checkpoint_every=100)
    base.update(kw)
    return tiny_config(**base)


def image_agent(tmp_path) -> Agent:
    cfg = image_config()
    store = ReplayStore.create(tmp_path / "img.h5", store_schema(IMAGE), actors=cfg.actors,
                               commit_every=cfg.commit_every)
    return Agent(cfg, store, IMAGE)


def test_step_refuses_a_cast_that_loses_information(tmp_path):
    """Float observations into a uint8 store, or ints outside uint8, are a TransitionError naming both
    dtypes and the fix; nothing is stored."""
    a = image_agent(tmp_path)
    s = np.zeros((4, 12, 12), np.uint8)
    with pytest.raises(TransitionError, match=r"state.*float32.*store holds uint8.*state_dtype"):
        a.step(s.astype(np.float32) / 255, 0, C0, 0.0, s, False, actor="dqn")
    with pytest.raises(TransitionError, match=r"next_state.*int64.*outside.*uint8"):
        a.step(s, 0, C0, 0.0, np.full((4, 12, 12), 300), False, actor="dqn")
    a.store.commit()
    assert (0, 0) == (len(a.store), a.frames)
    a.step(s.astype(np.int64) + 7, 0, C0, 0.0, s, False, actor="dqn")  # ints that fit are taken as they are
    a.store.commit()
    got = a.store.read(["state"])["state"]
    assert (np.uint8, 7) == (got.dtype, int(got.max()))
    a.store.close()


def test_float64_observations_still_go_into_a_float32_store(tmp_path):
    """The cast CartPole needs (float64 -> float32) is safe and taken, as before."""
    from agent_helpers import make_agent

    a = make_agent(tmp_path)
    a.step(np.full(4, 0.1), 0, C0, 1.0, np.zeros(4), True, actor="dqn")
    a.store.commit()
    assert np.float32(0.1) == a.store.read(["state"])["state"][0, 0]
    a.store.close()


def test_network_scales_uint8_and_casts_other_integers():
    """uint8 states are pixels scaled by 1/255; other integer dtypes are cast to float as they are."""
    torch.manual_seed(0)
    net = HybridDQN((4, 12, 12), 3, 1, (16,))
    x = torch.randint(0, 256, (5, 4, 12, 12), dtype=torch.uint8)
    assert torch.equal(net(x.float() / 255)[0], net(x)[0])
    assert torch.equal(net(x.float() / 255)[1], net(x)[1])
    assert torch.equal(net(x.float())[0], net(x.to(torch.int16))[0])
    assert torch.equal(net(x.double())[0], net(x.float())[0])


def test_env_spec_reads_the_observation_dtype():
    """A uint8 Box is stored as uint8; CartPole's float observations as float32, as before."""
    assert "uint8" == env_spec(make_env(ENV)).state_dtype
    assert "float32" == env_spec(make_env("CartPole-v1")).state_dtype
    assert np.uint8 == store_schema(IMAGE)["state"].dtype


def _columns(path) -> dict:
    with ReplayStore.open(path) as r:
        cols = r.read()
        steps, samples = r.read_table(TRAIN_STEPS), r.read_table(TRAIN_SAMPLES)
        meta = r.metadata
        tables = r.tables
    return {"rows": cols, "steps": steps, "samples": samples, "meta": meta, "tables": tables}


def _disk_bytes(path) -> int:
    return sum(os.stat(os.path.join(root, f)).st_blocks * 512 if os.path.isdir(p) else 0
               for p in store_files(path) for root, _, files in os.walk(p) for f in files) + \
        sum(os.stat(p).st_blocks * 512 for p in store_files(path) if os.path.isfile(p))


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """The same seed trained twice, plain uint8 layout and frames once: ``(summaries, paths)``."""
    d = tmp_path_factory.mktemp("twin")
    plain, framed = d / "plain.h5", d / "framed.h5"
    a = train(image_config(), plain, progress=False)
    b = train(image_config(frames_once=True), framed, progress=False)
    return (a, b), (plain, framed)


def _same_columns(p: dict, f: dict) -> None:
    """Every column of both bit for bit, but ``time`` (the wall clock of each append or step)."""
    assert sorted(p) == sorted(f)
    for name in p:
        if name != "time":
            assert p[name].dtype == f[name].dtype, name
            assert p[name].tobytes() == f[name].tobytes(), name


def test_frames_once_run_equals_the_plain_run(twin):
    """One seed, two layouts: every column, the telemetry and the actors match bit for bit; frames once
    is smaller on disk and says so in its metadata."""
    (a, b), (plain, framed) = twin
    assert (400, 301) == (a["frames"], a["train_steps"])
    p, f = _columns(plain), _columns(framed)
    assert (400, 400, False) == (p["tables"]["transitions"], f["tables"]["transitions"], "frames" in p["tables"])
    assert 400 < f["tables"]["frames"] < 2 * 400  # one new frame a step, four at each episode start
    for part in ("rows", "steps", "samples"):
        _same_columns(p[part], f[part])
    rows = p["rows"]
    assert np.uint8 == rows["state"].dtype and (4, 12, 12) == rows["state"].shape[1:]
    # stacks of the same step overlap: next_state is state shifted by one frame within an episode
    cont = ~rows["done"]
    assert (rows["state"][:, 1:][cont] == rows["next_state"][:, :-1][cont]).all()
    assert rows["truncated"].any() and (rows["done"] & ~rows["truncated"]).any()  # both kinds of endings
    assert (p["steps"]["td_abs_mean"] > 0).any()
    assert (p["meta"]["state_dtype"], p["meta"]["frame_stack"]) == ("uint8", None)
    assert (f["meta"]["state_dtype"], f["meta"]["frame_stack"]) == ("uint8", FrameStack(4, axis=0).to_dict())
    assert (False, True) == (p["meta"]["config"]["frames_once"], f["meta"]["config"]["frames_once"])
    assert _disk_bytes(framed) < _disk_bytes(plain)
    assert a["composition"] == b["composition"]


def test_audit_and_export_see_the_same_rows(twin, tmp_path):
    """The audit finds the same things in both layouts; the Parquet export writes the same stacks."""
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    import replaystore as rs
    from replaystore.analysis import export_parquet

    _, paths = twin
    assert rs.audit(paths[0]).codes() == rs.audit(paths[1]).codes()
    tables = []
    for i, path in enumerate(paths):
        export_parquet(path, str(tmp_path / f"pq{i}"), progress=False)
        tables.append(pq.read_table(tmp_path / f"pq{i}").drop(["time"]))
    assert 400 == tables[0].num_rows
    assert tables[0].equals(tables[1])


def test_recompute_td_reads_both_layouts_alike(twin):
    """recompute_td under the last checkpoint gives the same frame on the plain and the frames-once store."""
    from replaystore.analysis import recompute_td

    _, (plain, framed) = twin
    with ReplayStore.open(plain) as r:
        step = r.checkpoints[-1]["step"]
    p = recompute_td(plain, step, progress=False)
    f = recompute_td(framed, step, progress=False)
    assert 400 == len(p) and np.isfinite(p["q"]).all()
    assert p.equals(f)


def test_resume_keeps_the_layout(tmp_path):
    """A resumed frames-once run goes on storing frames once and still equals the resumed plain run;
    resuming with the other layout is a ConfigError."""
    cfg = image_config(total_steps=200, learning_starts=50, checkpoint_every=50)
    paths = tmp_path / "plain.h5", tmp_path / "framed.h5"
    for path, once in zip(paths, (False, True)):
        train(cfg.replace(frames_once=once), path, progress=False)
        with pytest.raises(ConfigError, match=f"frames_once={not once}.*frames_once={once}"):
            train(cfg.replace(frames_once=not once, total_steps=300), path, resume=True, progress=False)
        train(cfg.replace(frames_once=once, total_steps=300), path, resume=True, progress=False)
    p, f = _columns(paths[0]), _columns(paths[1])
    assert (300, 300) == (p["tables"]["transitions"], f["tables"]["transitions"])
    assert 300 < f["tables"]["frames"] < 600
    for part in ("rows", "steps"):
        _same_columns(p[part], f[part])


def test_every_row_carries_the_actor_that_acted(tmp_path):
    """Rows tagged expert hold the expert's action for their state; the rest are the DQN's."""
    out = tmp_path / "run.h5"
    train(image_config(total_steps=200, learning_starts=50, frames_once=True), out, progress=False)
    expert = image_helpers.CatchExpert(IMAGE)
    with ReplayStore.open(out) as r:
        d = r.read(["state", "discrete_action", "actor"])
        code = r.actors.code("expert")
    is_expert = d["actor"] == code
    assert 0.15 < is_expert.mean() < 0.45
    wanted = np.array([expert(s)[0] for s in d["state"]])
    assert (wanted[is_expert] == d["discrete_action"][is_expert]).all()
    assert (wanted[~is_expert] != d["discrete_action"][~is_expert]).any()  # the DQN plays its own game


def test_frames_once_needs_stacked_observations(tmp_path):
    """An env whose observations are not FrameStackObservation stacks is a ConfigError naming the fix,
    and leaves no store behind."""
    for env in ("image_helpers:DotCatchFrame-v0", "CartPole-v1"):
        out = tmp_path / "x.h5"
        cfg = image_config(env_id=env, expert_ratio=0.0, frames_once=True)
        with pytest.raises(ConfigError, match="frames_once.*FrameStackObservation"):
            train(cfg, out, progress=False)
        assert not os.path.exists(out)


def test_expert_is_named_in_the_config(tmp_path):
    """An expert that is not 'module:name' or cannot be imported is a ConfigError before anything is written."""
    with pytest.raises(ConfigError, match="expert='CatchExpert'.*module:name"):
        image_config(expert="CatchExpert")
    with pytest.raises(ConfigError, match="image_helpers:NoSuchExpert"):
        train(image_config(expert="image_helpers:NoSuchExpert"), tmp_path / "x.h5", progress=False)
    assert not os.path.exists(tmp_path / "x.h5")


def test_frames_once_with_workers_stores_every_shard_frames_once(tmp_path):
    """A distributed run (two worker processes) with frames_once: each shard holds each frame once,
    its rows read back as whole stacks equal to the frames they were built from, and the learner trained."""
    from replaystore.agent import train_distributed
    from replaystore.store import Run

    cfg = image_config(frames_once=True, total_steps=240, learning_starts=60)
    summary = train_distributed(cfg, tmp_path / "run", workers=2, progress=False)
    run = Run.open(tmp_path / "run")
    assert run.frames == FrameStack(4, axis=0)
    assert summary["train_steps"] > 0
    for name in run.shards():
        with run.open_shard(name) as s:
            rows = s.read(["state", "next_state", "done"])
            assert len(s) >= 100 and s.tables["frames"] < 2 * len(s)
            # a row's next_state is its state shifted by one new frame
            np.testing.assert_array_equal(rows["state"][:, 1:], rows["next_state"][:, :-1])


def test_cli_frames_once_flag(tmp_path, capsys):
    """``replaystore train --frames-once --expert`` writes a frames-once store of the image env, and the
    evaluation at the end plays the named expert (which catches more dots than random play)."""
    import json

    out = tmp_path / "cli.h5"
    rc = main(["train", "--env", ENV, "--expert", EXPERT, "--steps", "150", "--expert-ratio", "0.3", "--frames-once",
               "--out", str(out), "--quiet", "--no-tensorboard", "--eval-episodes", "3", "--json",
               "--set", "learning_starts=100", "--set", "batch_size=8", "--set", "hidden=[8]"])
    captured = capsys.readouterr()
    assert 0 == rc, captured.err
    summary = json.loads(captured.out)
    assert summary["eval_expert_mean"] > summary["eval_random_mean"]
    with ReplayStore.open(out) as r:
        assert (FrameStack(4, axis=0).to_dict(), True, EXPERT) == (r.metadata["frame_stack"],
                                                                   r.metadata["config"]["frames_once"],
                                                                   r.metadata["config"]["expert"])
        assert "frames" in r.tables
    # a store is data: resuming imports neither the env module nor the expert its metadata names
    # unless the command names them again
    quiet = ["--quiet", "--no-tensorboard", "--eval-episodes", "0"]
    rc = main(["train", "--steps", "200", "--out", str(out), "--resume", "--expert", EXPERT, *quiet])
    assert 2 == rc
    assert f"pass --env {ENV}" in capsys.readouterr().err
    rc = main(["train", "--steps", "200", "--out", str(out), "--resume", "--env", ENV, *quiet])
    assert 2 == rc
    assert f"pass --expert {EXPERT}" in capsys.readouterr().err
    rc = main(["train", "--steps", "200", "--out", str(out), "--resume", "--env", ENV, "--expert", EXPERT, *quiet])
    assert 0 == rc, capsys.readouterr().err
    with ReplayStore.open(out) as r:
        assert 200 == len(r) and "frames" in r.tables
