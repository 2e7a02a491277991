"""Distributed acting: N environment workers, each writing its own shard of a run, and one learner.

As in Ape-X and the system this project descends from: every worker steps its own environment,
lets the expert or the current policy decide each frame, and appends the frame, tagged with who
decided it, to its own shard (``run.create_shard``: one writer per file, always). The learner, in
the calling process, samples across all shards (``Sampler(run)``), trains, and ships its weights
to the workers through ``policy.pt`` in the run folder, replaced atomically; workers reload it
every ``sync_every`` frames. A worker that dies (SIGKILL included) is started again, by Ray's
actor restarts or by this module's process supervisor: ``create_shard`` reopens its shard, which
recovers exactly the committed rows, and the worker goes on from there. It loses at most the rows
it had not committed.

The learner's telemetry (``train_steps``, ``[BATCH]``/``[BUFFER]`` lines) goes to ``learner.h5``
in the run folder, a store with no transitions; per-sample telemetry is off (its row ids would
need a shard). Each worker keeps ``workers/<name>.json``: pid, starts, and its metrics at the end.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time

import numpy as np
import torch

from replaystore.common.extras import require_extra
from replaystore.store import ReplayStore, Run, RunSource, Sampler, file_layer

from ._agent import Agent
from ._checkpoint import UNCHANGED, save_checkpoint, write_torch
from ._config import AgentConfig
from ._envs import env_action, env_spec, make_env
from ._learner import Batch, Learner
from ._loop import frame_stack, run_metadata, store_schema
from ._metrics import TrainMetrics, per_actor_stats
from ._network import HybridDQN
from ._nstep import TRUNCATED, NStepGatherer
from ._policy import ActorMixer, epsilon_at, load_expert
from ._trainlog import TrainLog, batch_line, buffer_line
from .errors import ConfigError

log = logging.getLogger("replaystore.agent")
ENGINES = ("mp", "ray")
WEIGHTS = "policy.pt"
WORKERS = "workers"


def worker_name(index: int) -> str:
    return f"worker-{index}"


# ---------------------------------------------------------------------------- the worker side
def worker_main(run_path: str, index: int, config: dict, frames: int, sync_every: int = 200) -> dict:
    """One worker's life: open (or reopen) its shard, act until it holds ``frames`` frames, close."""
    cfg = AgentConfig.from_dict(config)
    torch.set_num_threads(1)
    run = Run.open(run_path)
    name = worker_name(index)
    status = _read_status(run_path, name)
    starts = int(status.get("starts", 0)) + 1
    _write_status(run_path, name, {"pid": os.getpid(), "starts": starts, "state": "running"})
    t0 = time.monotonic()
    env = make_env(cfg.env_id)
    spec = env_spec(env)
    store = run.create_shard(name, commit_every=cfg.commit_every)
    try:
        agent = Agent(cfg, store, spec)
        first = agent.frames = len(store)  # a restarted worker goes on after its committed rows
        agent.start_new_episode()
        rng = np.random.default_rng((cfg.seed, index, first))
        expert = load_expert(cfg.expert, spec) if cfg.expert_ratio > 0 else None
        mixer = ActorMixer(agent.net, expert, spec, cfg.expert_ratio, cfg.expert_actor, cfg.dqn_actor, rng)
        obs, _ = env.reset(seed=cfg.seed + 7919 * index + first)
        version, returns, ep_return = -1, [], 0.0
        while agent.frames < frames:
            if agent.frames % sync_every == 0:
                version = load_weights(run_path, agent.net, version)
            eps = epsilon_at(agent.frames, frames, cfg.eps_start, cfg.eps_end, cfg.eps_fraction)
            d, c, who = mixer.act(obs, eps)
            nobs, r, term, trunc, _ = env.step(env_action(spec, d, c))
            agent.step(obs, d, c, r, nobs, term or trunc, actor=who, truncated=bool(trunc and not term))
            ep_return += float(r)
            if term or trunc:
                returns.append(ep_return)
                ep_return = 0.0
                obs, _ = env.reset()
            else:
                obs = nobs
        agent.close()
        comp = store.actor_composition(window=False)
    finally:
        store.close()
        env.close()
    seconds = time.monotonic() - t0
    metrics = {"worker": name, "pid": os.getpid(), "starts": starts, "state": "done", "frames": frames,
               "resumed_from": first, "episodes": len(returns),
               "return_last10": float(np.mean(returns[-10:])) if returns else None,
               "expert_fraction": comp["fractions"].get(cfg.expert_actor), "weights_version": version,
               "seconds": round(seconds, 3), "frames_per_s": round((frames - first) / max(seconds, 1e-9), 1)}
    _write_status(run_path, name, metrics)
    return metrics


def load_weights(run_path: str, net: HybridDQN, have: int) -> int:
    """Load the learner's latest weights into ``net`` if newer than version ``have``; returns the version."""
    path = os.path.join(run_path, WEIGHTS)
    try:
        d = torch.load(path, weights_only=True)
    except FileNotFoundError:
        return have
    if int(d["version"]) > have:
        net.load_state_dict(d["net"])
        return int(d["version"])
    return have


def publish_weights(run_path: str, net: HybridDQN, version: int) -> None:
    """Write the weights beside the run's shards, atomically (a worker never reads half a file)."""
    write_torch(os.path.join(run_path, WEIGHTS), {"version": int(version), "net": net.state_dict()}, "weights")


def _status_path(run_path: str, name: str) -> str:
    return os.path.join(run_path, WORKERS, f"{name}.json")


def _read_status(run_path: str, name: str) -> dict:
    try:
        with open(_status_path(run_path, name), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _write_status(run_path: str, name: str, status: dict) -> None:
    path = _status_path(run_path, name)
    file_layer().makedirs(os.path.dirname(path))
    file_layer().write_atomic(path, json.dumps(status).encode("utf-8"), True, "worker status",
                              tmp=f"{path}.tmp-{os.getpid()}", then=UNCHANGED)


def worker_status(run_path: str, index: int) -> dict:
    """What worker ``index`` last wrote about itself (pid, starts, state, metrics when done)."""
    return _read_status(os.fspath(run_path), worker_name(index))


# ---------------------------------------------------------------------------- engines
class _MPEngine:
    """Worker processes (spawned, so no torch state is forked) under a supervisor that restarts
    the dead ones, up to ``max_restarts`` times each."""

    def __init__(self, run_path, config, n, frames, max_restarts, sync_every):
        import multiprocessing as mp

        self._ctx = mp.get_context("spawn")
        self._args = [(run_path, i, config, frames, sync_every) for i in range(n)]
        self.max_restarts = max_restarts
        self.restarts = [0] * n
        self._procs = [self._start(i) for i in range(n)]
        self.results: dict[int, dict] = {}

    def _start(self, i):
        p = self._ctx.Process(target=worker_main, args=self._args[i], name=worker_name(i), daemon=True)
        p.start()
        return p

    def poll(self) -> bool:
        """Restart dead workers, collect finished ones; True when every worker is done."""
        for i, p in enumerate(self._procs):
            if i in self.results or p.is_alive():
                continue
            if p.exitcode == 0:
                self.results[i] = worker_status(self._args[i][0], i)
                continue
            if self.restarts[i] >= self.max_restarts:
                raise RuntimeError(f"{worker_name(i)} died (exit code {p.exitcode}) and was restarted "
                                   f"{self.restarts[i]} times already (max_restarts={self.max_restarts})")
            self.restarts[i] += 1
            log.warning("%s died (exit code %s); restarting it (restart %d)", worker_name(i), p.exitcode,
                        self.restarts[i])
            self._procs[i] = self._start(i)
        return len(self.results) == len(self._procs)

    def close(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.terminate()
            p.join()


class _RayWorker:
    """A Ray actor around ``worker_main``: Ray restarts it (``max_restarts``) and retries ``run``."""

    def __init__(self, run_path, index, config, frames, sync_every):
        self._args = (run_path, index, config, frames, sync_every)

    def run(self) -> dict:
        return worker_main(*self._args)


class _RayEngine:
    def __init__(self, run_path, config, n, frames, max_restarts, sync_every):
        import ray

        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:  # a caller's ray.init (a cluster, a test session) is used as it is
            ray.init(num_cpus=min(os.cpu_count() or 2, 3), include_dashboard=False, log_to_driver=False)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        cls = ray.remote(max_restarts=max_restarts, max_task_retries=max_restarts)(_RayWorker)
        # a share of the CPUs each, so all n are placed at once even when n exceeds the CPUs
        self._actors = [cls.options(num_cpus=min(1.0, cpus / n)).remote(run_path, i, config, frames, sync_every)
                        for i in range(n)]
        self._refs = {a.run.remote(): i for i, a in enumerate(self._actors)}
        self.run_path = run_path
        self.results: dict[int, dict] = {}
        self.n = n

    @property
    def restarts(self) -> list[int]:
        return [max(0, int(worker_status(self.run_path, i).get("starts", 1)) - 1) for i in range(self.n)]

    def poll(self) -> bool:
        if self._refs:
            done, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=0)
            for ref in done:
                i = self._refs.pop(ref)
                self.results[i] = self._ray.get(ref)  # raises when the actor died past its restarts
        return not self._refs

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        if self._started:
            self._ray.shutdown()


# ---------------------------------------------------------------------------- the learner side
class _RunLearner:
    """Samples across the run's shards and trains the network (the agent's Learner and telemetry)."""

    def __init__(self, cfg: AgentConfig, spec, run: Run, lstore: ReplayStore):
        self.cfg, self.actors = cfg, tuple(cfg.actors)
        torch.manual_seed(cfg.seed)
        self.net = HybridDQN(spec.state_shape, spec.n_discrete, spec.continuous_dim, cfg.hidden)
        self.learner = Learner(self.net, cfg, self.actors)
        self.trainlog = TrainLog(lstore, len(self.actors), cfg.telemetry_block)
        self.run, self.steps, self.sampler = run, 0, None
        self._nstep: dict[int, NStepGatherer] = {}
        self.has_truncated = TRUNCATED in run.schema

    def committed(self) -> int:
        if self.sampler is None:
            return sum(self.run.rows().values())
        return self.sampler.store.refresh()

    def ensure_sampler(self) -> None:
        if self.sampler is None:
            cfg = self.cfg
            kw = {"strategy": cfg.sampler_strategy, "seed": cfg.seed, "as_torch": False}
            if cfg.actor_fractions is not None:
                kw["actor_fractions"] = cfg.actor_fractions
            self.sampler = Sampler(self.run, cfg.batch_size, **kw)

    def step(self) -> TrainMetrics:
        cfg = self.cfg
        b = self.sampler.sample()
        src = self.sampler.store  # the run's RunSource: run-wide row ids -> (shard, row there)
        rows = b["row"]
        shard, local = src.locate(rows)
        codes = torch.from_numpy(b["actor"].astype(np.int64))
        reward = torch.from_numpy(b["reward"]).float()
        returns = np.empty(len(rows), np.float32)
        disc = np.empty(len(rows), np.float32)
        boot = np.empty_like(b["next_state"])
        for s in np.unique(shard).tolist():  # n-step windows stay inside the shard the row came from
            m = np.flatnonzero(shard == s)
            g = self._nstep.get(s)
            if g is None:
                g = self._nstep[s] = NStepGatherer(src.shard_store(s), cfg.n_step, cfg.gamma)
            G, boot_rows, d = g(local[m])
            returns[m], disc[m], boot[m] = G, d, g.next_states(boot_rows)
        batch = Batch(state=torch.from_numpy(b["state"]),  # stored dtype: the network scales uint8 pixels
                      discrete_action=torch.from_numpy(b["discrete_action"]).long(),
                      continuous_action=torch.from_numpy(b["continuous_action"]).float(), reward=reward,
                      codes=codes, returns=torch.from_numpy(returns), boot_state=torch.from_numpy(boot),
                      discount=torch.from_numpy(disc), weight=torch.from_numpy(b["weight"]).float())
        step = self.steps + 1
        out = self.learner.step(batch, cfg.grad_norm_every > 0 and step % cfg.grad_norm_every == 0)
        count, td_abs, rew, q = per_actor_stats(codes, out.td, reward, out.q, len(self.actors))
        m = TrainMetrics(step, out.loss, out.td_loss, out.awr_loss, self.actors, count, td_abs, rew, q, out.grad_norm)
        self.trainlog.add_step(m)
        if cfg.sampler_strategy == "prioritized":
            self.sampler.update_priorities(rows, out.td.abs().numpy() + 1e-6)
        if cfg.log_batch_every and step % cfg.log_batch_every == 0:
            log.info(batch_line(step, count, self.actors, cfg.dqn_actor))
        if cfg.log_buffer_every and step % cfg.log_buffer_every == 0:
            log.info(buffer_line(step, self.sampler.store.composition(), cfg.dqn_actor))
        self.steps = step
        return m


def train_distributed(config: AgentConfig, run_path, *, workers: int, engine: str = "mp", progress: bool = True,
                      max_restarts: int = 3, sync_every: int = 200, publish_every: int = 50,
                      eval_episodes: int = 0) -> dict:
    """Train with ``workers`` acting processes writing the shards of a new run at ``run_path``.

    The run holds ``config.total_steps`` frames in all (split evenly over the workers); the
    learner takes one training step per ``config.train_every`` committed frames after
    ``config.learning_starts``, and publishes its weights every ``publish_every`` steps.
    Returns a JSON-able summary with each worker's metrics and restarts.
    """
    from tqdm.auto import tqdm

    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r}: expected one of {list(ENGINES)} ('ray' needs the [ray] extra)")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r}: expected a positive number of acting processes")
    if engine == "ray":  # checked before the run folder is made; engine='mp' needs nothing more
        require_extra("ray", "engine='ray'")
    if config.samples_every:
        config = config.replace(samples_every=0)  # per-sample telemetry would need (shard, row) ids
    torch.set_num_threads(config.torch_threads)
    env = make_env(config.env_id)
    spec = env_spec(env)
    stack = frame_stack(config, env)  # every shard stores frames once (Run.create(frames=...))
    env.close()
    if config.expert_ratio > 0:  # each worker loads it; a name that does not load fails here, before the run exists
        load_expert(config.expert, spec)
    run_path = os.fspath(run_path)
    run = Run.create(run_path, store_schema(spec), actors=config.actors, window=config.window,
                     metadata={**run_metadata(config, spec, stack), "workers": workers, "engine": engine},
                     frames=stack)
    frames = math.ceil(config.total_steps / workers)
    lstore = ReplayStore.create(run.learner_path, store_schema(spec), actors=config.actors,
                                window=config.window, metadata={**run_metadata(config, spec), "role": "learner"})
    t0 = time.monotonic()
    learner = _RunLearner(config, spec, run, lstore)
    publish_weights(run_path, learner.net, 0)
    cls = _MPEngine if engine == "mp" else _RayEngine
    pool = cls(run_path, config.to_dict(), workers, frames, max_restarts, sync_every)
    bar = tqdm(total=frames * workers, disable=not progress, unit="frame", desc=f"train {workers} workers",
               mininterval=0.5)
    try:
        done = False
        while True:
            done = pool.poll() or done
            n = learner.committed()
            bar.update(n - bar.n)
            due = max(0, (n - config.learning_starts) // config.train_every)
            if learner.steps < due and n > 0:
                learner.ensure_sampler()
                for _ in range(min(due - learner.steps, 20)):
                    learner.step()
                    if learner.steps % publish_every == 0:
                        publish_weights(run_path, learner.net, learner.steps)
            elif done:
                break
            else:
                time.sleep(0.02)
        restarts = list(pool.restarts)
        results = [pool.results[i] for i in range(workers)]
    finally:
        bar.close()
        pool.close()
    publish_weights(run_path, learner.net, learner.steps)
    ckpt = os.path.join(run_path, "checkpoints", f"step_{learner.steps:08d}.pt")
    save_checkpoint(ckpt, learner.net, learner.learner.target, learner.learner.optimizer,
                    {"step": learner.steps, "frames": n, "config": config.to_dict(), "env_id": config.env_id,
                     "gamma": config.gamma, "n_step": config.n_step, "actors": list(config.actors)})
    learner.trainlog.flush()
    lstore.record_checkpoint(learner.steps, ckpt, frames=n, relpath=os.path.relpath(ckpt, run_path))
    if learner.sampler is not None:
        composition = learner.sampler.store.composition()
        learner.sampler.close()
    else:  # too few frames to train on: the shards still say who acted
        with RunSource(run) as src:
            composition = src.composition()
    lstore.close()
    elapsed = time.monotonic() - t0
    summary = {"run": os.path.abspath(run_path), "engine": engine, "workers": workers, "env_id": config.env_id,
               "frames": n, "train_steps": learner.steps, "restarts": restarts, "worker_metrics": results,
               "expert_ratio": config.expert_ratio, "composition": composition, "checkpoint": ckpt,
               "elapsed_s": elapsed, "frames_per_s": n / max(elapsed, 1e-9),
               "expert_fraction": composition["fractions"].get(config.expert_actor)}
    if eval_episodes:
        from ._evaluate import evaluate_greedy

        r = evaluate_greedy(learner.net, config.env_id, eval_episodes, seed=10_000 + config.seed)
        summary["eval_greedy_returns"], summary["eval_greedy_mean"] = r, float(np.mean(r))
    return summary
