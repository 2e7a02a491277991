"""``train(config, out_path)``: the acting/learning loop that writes a store, resumable."""

from __future__ import annotations

import logging
import math
import os
import time

import numpy as np
import torch

from replaystore.common.progress import progress
from replaystore.store import Column, FrameStack, ReplayStore, Schema, file_layer, store_files

from ._agent import Agent
from ._config import AgentConfig
from ._envs import EnvSpec, env_action, env_spec, frame_stack_depth, make_env
from ._evaluate import evaluate_expert, evaluate_greedy, evaluate_random
from ._nstep import TRUNCATED
from ._policy import ActorMixer, epsilon_at, load_expert
from .errors import CheckpointError, ConfigError

log = logging.getLogger("replaystore.agent")


def run_metadata(config: AgentConfig, spec: EnvSpec | None = None, frames: FrameStack | None = None) -> dict:
    """The run's declared settings, kept in the store's metadata (the audit reads ``expert_ratio``).

    With ``spec`` (as ``train`` passes it), also the layout chosen for the states: ``state_dtype``
    and ``frame_stack`` (the ``FrameStack`` as a dict when frames are stored once, else None).
    """
    from replaystore.common import __version__

    md = {"env_id": config.env_id, "seed": config.seed, "expert_ratio": config.expert_ratio,
          "config": config.to_dict(), "version": __version__}
    if spec is not None:
        md["state_dtype"] = spec.state_dtype
        md["frame_stack"] = frames.to_dict() if frames is not None else None
    return md


def store_schema(spec) -> Schema:
    """The agent's transitions: ``Schema.transition`` in the env's state dtype (``spec.state_dtype``,
    uint8 for images) plus the ``truncated`` column."""
    return Schema.transition(spec.state_shape, spec.continuous_dim, state_dtype=spec.state_dtype,
                             extra=(Column(TRUNCATED, np.dtype("bool")),))


def frame_stack(config: AgentConfig, env) -> FrameStack | None:
    """The ``FrameStack`` of a ``frames_once`` run (its depth is the env's ``FrameStackObservation``'s),
    None for a plain one; a ConfigError when the env's observations are not such stacks."""
    if not config.frames_once:
        return None
    depth = frame_stack_depth(env)
    if depth is None:
        raise ConfigError(
            f"frames_once=True but {config.env_id!r} observes {env.observation_space}, not stacks on the first axis "
            "made by gymnasium's FrameStackObservation: wrap the env (FrameStackObservation(env, 4)), or leave "
            "frames_once off (no --frames-once) to store whole observations")
    return FrameStack(depth, axis=0)


def default_checkpoint_dir(out_path) -> str:
    root, _ = os.path.splitext(os.path.abspath(os.fspath(out_path)))
    return root + ".ckpt"


def resolve_checkpoint(store_path, entry: dict) -> str:
    """The file of a checkpoint entry: its recorded path, or its path relative to the store if moved."""
    path = entry["path"]
    if not os.path.exists(path) and "relpath" in entry:
        moved = os.path.join(os.path.dirname(os.path.abspath(os.fspath(store_path))), entry["relpath"])
        if os.path.exists(moved):
            return moved
    if not os.path.exists(path):
        raise CheckpointError(f"the store's latest checkpoint {path} (step {entry['step']}) is missing; "
                              "restore the file or start a new store")
    return path


# The agent commits by row count only, never by the clock: a commit makes rows sampleable, so a
# time-based commit would let the machine's speed decide which rows a batch may draw, and the same
# seed would give another store (two demo runs of one seed differed by 4 episodes).
COMMIT_SECONDS = math.inf


def _open_for_resume(config: AgentConfig, out_path):
    store = ReplayStore.open(out_path, "a", commit_every=config.commit_every, commit_seconds=COMMIT_SECONDS)
    try:
        declared = store.metadata.get("env_id")
        if declared != config.env_id:
            raise ConfigError(f"--resume: {out_path} was recorded on env {declared!r}, not {config.env_id!r}; "
                              "resume with the same --env")
        framed = "frames" in store.tables  # the table a FrameStack store adds (store/read/_frames.py)
        if framed != config.frames_once:
            raise ConfigError(f"--resume: {out_path} stores {'frames once' if framed else 'whole stacks'}, but "
                              f"frames_once={config.frames_once}; resume with the store's layout "
                              f"(frames_once={framed})")
        if not store.checkpoints:
            raise CheckpointError(f"--resume: {out_path} records no checkpoint to resume from; start a new store")
        return store, resolve_checkpoint(out_path, store.checkpoints[-1])
    except BaseException:
        store.close()
        raise


def train(config: AgentConfig, out_path, *, resume: bool = False, progress: bool = True,
          checkpoint_dir=None, eval_episodes: int = 0, tensorboard=None) -> dict:
    """Act in ``config.env_id`` with the expert mixed in, learn from the store at ``out_path``.

    ``resume=True`` reopens an existing store, restores its latest checkpoint and keeps appending
    until the store holds ``config.total_steps`` frames. ``tensorboard``: a directory for a live
    TensorBoard view of the telemetry (None: none). A new run that fails before it has recorded
    a row removes the files it created, so the same command can be run again. Returns a
    JSON-able summary.
    """
    torch.set_num_threads(config.torch_threads)
    env = make_env(config.env_id)
    try:
        spec = env_spec(env)
        frames = frame_stack(config, env)
        expert = load_expert(config.expert, spec) if config.expert_ratio > 0 else None
    except BaseException:
        env.close()
        raise
    ckpt_dir = checkpoint_dir or default_checkpoint_dir(out_path)
    if resume:
        store, latest = _open_for_resume(config, out_path)
        created = []
    else:
        if os.path.exists(out_path):
            env.close()
            raise FileExistsError(f"{out_path} already exists; pass resume=True (--resume) to continue it, "
                                  "or choose another output path")
        created = [p for p in (out_path, ckpt_dir, tensorboard) if p is not None and not os.path.exists(p)]
        file_layer().makedirs(os.path.dirname(os.path.abspath(out_path)))
        try:
            store = ReplayStore.create(out_path, store_schema(spec), actors=config.actors, window=config.window,
                                       metadata=run_metadata(config, spec, frames), commit_every=config.commit_every,
                                       commit_seconds=COMMIT_SECONDS, frames=frames)
        except BaseException:
            env.close()
            raise
    t0 = time.monotonic()
    agent = None
    try:
        agent = Agent(config, store, spec, tensorboard=tensorboard)
        if resume:
            agent.load_checkpoint(latest)
            agent.frames = len(store)  # the store is the record of frames taken, checkpointed or not
            agent.start_new_episode()
            store.set_extra("resumes", store.get_extra("resumes", []) + [
                {"train_step": agent.train_steps, "frames": agent.frames, "time": time.time(),
                 "config": config.to_dict()}])
        rng = np.random.default_rng((config.seed, agent.frames))
        mixer = ActorMixer(agent.net, expert, spec, config.expert_ratio, config.expert_actor, config.dqn_actor, rng)
        returns = _run_frames(agent, env, spec, mixer, config, ckpt_dir, progress)
        last = store.checkpoints[-1]["step"] if store.checkpoints else -1
        ckpt = agent.save_checkpoint(agent.checkpoint_path(ckpt_dir)) if last != agent.train_steps \
            else store.checkpoints[-1]["path"]
        agent.close()
        composition = store.actor_composition(window=False)
    except BaseException:
        if agent is not None:
            agent.trainlog.close()
        _close_and_clean(store, created)
        raise
    finally:
        store.close()
        env.close()
    summary = {
        "store": os.path.abspath(out_path), "env_id": config.env_id, "frames": agent.frames,
        "train_steps": agent.train_steps, "episodes": len(returns),
        "train_return_last10": float(np.mean(returns[-10:])) if returns else None,
        "expert_ratio": config.expert_ratio,
        "expert_fraction": composition["fractions"].get(config.expert_actor),
        "composition": composition, "checkpoint": ckpt, "elapsed_s": time.monotonic() - t0,
    }
    if eval_episodes:
        r = evaluate_greedy(agent.net, config.env_id, eval_episodes, seed=10_000 + config.seed)
        summary["eval_greedy_returns"] = r
        summary["eval_greedy_mean"] = float(np.mean(r))
        # the two reference points, on the same episode seeds
        summary["eval_random_mean"] = float(np.mean(evaluate_random(config.env_id, eval_episodes, 10_000 + config.seed)))
        if expert is not None:
            summary["eval_expert_mean"] = float(np.mean(evaluate_expert(config.env_id, eval_episodes,
                                                                        10_000 + config.seed, expert=config.expert)))
    return summary


def _close_and_clean(store, created: list) -> None:
    """After a failed new run: remove what it created if the store holds no committed row.

    A run that recorded rows keeps them (nothing committed is ever lost); one that failed at its
    start (env, config, network) leaves nothing behind that would make the next run say
    "already exists".
    """
    if not created:
        return
    try:
        store.close()
        rows = len(ReplayStore.open(created[0], "r")) if os.path.exists(created[0]) else 0
    except Exception:  # a store that cannot be reopened is not one to keep half-made
        rows = 0
    if rows:
        return
    for path in created:
        for p in store_files(path):
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    file_layer().rmtree(p)
                else:
                    file_layer().remove(p)
            except OSError:  # best effort, as before: what is left is named by the next create's error
                pass


def _run_frames(agent: Agent, env, spec, mixer: ActorMixer, cfg: AgentConfig, ckpt_dir, show) -> list:
    returns: list[float] = []
    obs, _ = env.reset(seed=cfg.seed + agent.frames)
    ep_return, ep_len = 0.0, 0
    bar = progress(total=cfg.total_steps, initial=agent.frames, disable=not show, unit="frame",
                   desc=f"train {cfg.env_id}", mininterval=0.5)
    try:
        while agent.frames < cfg.total_steps:
            eps = epsilon_at(agent.frames, cfg.total_steps, cfg.eps_start, cfg.eps_end, cfg.eps_fraction)
            d, c, who = mixer.act(obs, eps)
            nobs, r, term, trunc, _ = env.step(env_action(spec, d, c))
            agent.step(obs, d, c, r, nobs, term or trunc, actor=who, truncated=bool(trunc and not term))
            ep_return += float(r)
            ep_len += 1
            if term or trunc:
                returns.append(ep_return)
                agent.trainlog.log_episode(agent.frames, ep_return, ep_len)
                ep_return, ep_len = 0.0, 0
                obs, _ = env.reset()
            else:
                obs = nobs
            if agent.frames >= cfg.learning_starts and agent.frames % cfg.train_every == 0:
                agent.train_step()
                if cfg.checkpoint_every and agent.train_steps % cfg.checkpoint_every == 0:
                    agent.save_checkpoint(agent.checkpoint_path(ckpt_dir))
            bar.update(1)
            if agent.frames % 1000 == 0 and returns:
                bar.set_postfix(eps=f"{eps:.2f}", ret10=f"{np.mean(returns[-10:]):.0f}", refresh=False)
    finally:
        bar.close()
    return returns
