"""A short training run: composition, metadata, telemetry rows, checkpoints and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest

import replaystore
from replaystore.agent import train
from replaystore.agent.errors import CheckpointError, ConfigError
from replaystore.store import TRAIN_SAMPLES, TRAIN_STEPS, ReplayStore

from agent_helpers import tiny_config


def _binomial_ok(k, n, p, z=4.5):
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p))


def test_short_run_writes_the_expected_store(tmp_path):
    """Expert share within binomial bounds of expert_ratio; metadata; one telemetry row per step."""
    cfg = tiny_config(total_steps=800, learning_starts=200, expert_ratio=0.3, samples_every=25, grad_norm_every=50)
    out = tmp_path / "run.h5"
    s = train(cfg, out, progress=False)
    assert (800, 601) == (s["frames"], s["train_steps"])
    with ReplayStore.open(out) as r:
        assert 800 == len(r)
        counts = r.actor_counts()
        assert _binomial_ok(int(counts[r.actors.code("expert")]), 800, 0.3)
        md = r.metadata
        assert ("CartPole-v1", 0, 0.3, replaystore.__version__) == (md["env_id"], md["seed"], md["expert_ratio"],
                                                                     md["version"])
        assert cfg.to_dict() == md["config"]
        steps = r.read_table(TRAIN_STEPS)
        assert list(range(1, 602)) == steps["step"].tolist()
        assert (steps["batch_count"].sum(1) == 16).all()
        samples = r.read_table(TRAIN_SAMPLES)
        assert 24 * 16 == len(samples["step"])
        assert sorted(set(samples["step"].tolist())) == list(range(25, 601, 25))
        assert 12 == int((~np.isnan(steps["grad_norm"][:, 0])).sum())
        assert [601] == [c["step"] for c in r.checkpoints]
        ep = r.read(["episode", "done", "truncated"])
        assert not ep["truncated"].any()  # no episode reaches 500 frames this early


def test_resume_continues_the_same_store(tmp_path):
    """Resuming restores the latest checkpoint and appends to the same store, a new episode first."""
    out = tmp_path / "run.h5"
    first = train(tiny_config(total_steps=400), out, progress=False)
    with ReplayStore.open(out) as r:
        last_ep = int(r.read(["episode"], 399, 400)["episode"][0])
    second = train(tiny_config(total_steps=700), out, resume=True, progress=False)
    assert (201, 501) == (first["train_steps"], second["train_steps"])
    with ReplayStore.open(out) as r:
        assert 700 == len(r)
        ep = r.read(["episode", "step"], 400, 401)
        assert (last_ep + 1, 0) == (int(ep["episode"][0]), int(ep["step"][0]))
        assert [201, 501] == [c["step"] for c in r.checkpoints]
        assert list(range(1, 502)) == r.read_table(TRAIN_STEPS)["step"].tolist()
        assert [{"train_step": 201, "frames": 400}] == [{k: e[k] for k in ("train_step", "frames")}
                                                       for e in r.get_extra("resumes")]


def test_new_run_refuses_existing_store(tmp_path):
    """Training into an existing file without resume is refused, pointing at --resume."""
    out = tmp_path / "run.h5"
    train(tiny_config(total_steps=250), out, progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        train(tiny_config(total_steps=250), out, progress=False)


def test_resume_needs_same_env_and_a_checkpoint(tmp_path):
    """Resuming on another env, or a store without checkpoints, fails before anything is appended."""
    out = tmp_path / "run.h5"
    train(tiny_config(total_steps=250), out, progress=False)
    with pytest.raises(ConfigError, match="recorded on env 'CartPole-v1', not 'HybridCartPole-v1'"):
        train(tiny_config(total_steps=300, env_id="HybridCartPole-v1"), out, resume=True, progress=False)
    from replaystore.agent import store_schema
    from replaystore.agent._envs import EnvSpec

    bare = tmp_path / "bare.h5"
    ReplayStore.create(bare, store_schema(EnvSpec((4,), 2, 0)), actors=("expert", "dqn"), metadata={"env_id": "CartPole-v1"}).close()
    with pytest.raises(CheckpointError, match="records no checkpoint"):
        train(tiny_config(total_steps=300), bare, resume=True, progress=False)
    with ReplayStore.open(out) as r:
        assert 250 == len(r)


def test_hybrid_env_trains_the_continuous_head(tmp_path):
    """On HybridCartPole the AWR loss is positive and the continuous actions are stored with width 1."""
    cfg = tiny_config(total_steps=300, env_id="HybridCartPole-v1", log_batch_every=0, log_buffer_every=0)
    s = train(cfg, tmp_path / "h.h5", progress=False, eval_episodes=1)
    assert 1 == len(s["eval_greedy_returns"])
    with ReplayStore.open(tmp_path / "h.h5") as r:
        ca = r.read(["continuous_action"])["continuous_action"]
        assert (300, 1) == ca.shape
        assert (np.abs(ca) <= 1).all() and ca.std() > 0


def test_resume_after_moving_the_run_folder(tmp_path):
    """A run folder moved elsewhere resumes from its checkpoint found relative to the store."""
    import shutil

    train(tiny_config(total_steps=250), tmp_path / "a" / "run.h5", progress=False)
    shutil.move(tmp_path / "a", tmp_path / "b")
    s = train(tiny_config(total_steps=300), tmp_path / "b" / "run.h5", resume=True, progress=False)
    assert (300, 101) == (s["frames"], s["train_steps"])
    shutil.rmtree(tmp_path / "b" / "run.ckpt")
    with pytest.raises(CheckpointError, match=r"latest checkpoint .* \(step 101\) is missing"):
        train(tiny_config(total_steps=350), tmp_path / "b" / "run.h5", resume=True, progress=False)
