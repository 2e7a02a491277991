"""``Agent``: records tagged transitions in the store and learns from the store's sampler."""

from __future__ import annotations

import logging
import operator
import os

import numpy as np
import torch

from ._checkpoint import read_checkpoint, save_checkpoint
from ._config import AgentConfig
from ._envs import EnvSpec
from ._learner import Batch, Learner
from ._metrics import TrainMetrics, per_actor_stats
from ._network import HybridDQN
from ._nstep import TRUNCATED, NStepGatherer
from ._trainlog import TrainLog, batch_line, buffer_line
from .errors import CheckpointError, ConfigError, TransitionError

log = logging.getLogger("replaystore.agent")


class Agent:
    """A hybrid DQN bound to a store open for appending (``ReplayStore.create`` or ``open(path, "a")``).

    ``step(...)`` appends one transition tagged with ``actor`` (keyword-only, required, in the
    store's vocabulary); ``train_step()`` samples a batch through ``store.Sampler`` and takes one
    gradient step, returning per-actor ``TrainMetrics`` and writing the training telemetry
    (through ``replaystore.Telemetry``; ``tensorboard=DIR`` also sends its scalars there, live).
    """

    def __init__(self, config: AgentConfig, store, spec: EnvSpec, *, tensorboard=None):
        if tuple(store.actors.names) != tuple(config.actors):
            raise ConfigError(f"config.actors={config.actors} but the store's vocabulary is "
                              f"{store.actors.names}; pass the store's vocabulary in the config")
        if store.schema["continuous_action"].shape != (spec.continuous_dim,):
            raise ConfigError(f"the store holds continuous actions of shape {store.schema['continuous_action'].shape}"
                              f" but the environment's are ({spec.continuous_dim},): a store of another env?")
        self.config = config
        self.store = store
        self.spec = spec
        self.actors = tuple(config.actors)
        torch.manual_seed(config.seed)
        self.net = HybridDQN(spec.state_shape, spec.n_discrete, spec.continuous_dim, config.hidden)
        self.learner = Learner(self.net, config, self.actors)
        # tensorboard: a directory that also receives the telemetry's scalars (a live view)
        self.trainlog = TrainLog(store, len(self.actors), config.telemetry_block, tensorboard=tensorboard)
        self.nstep = NStepGatherer(store, config.n_step, config.gamma) if config.n_step > 1 else None
        self._has_truncated = TRUNCATED in store.schema
        self._state_dtype = np.dtype(store.schema["state"].dtype)
        self.train_steps = 0
        self.frames = 0
        self._sampler = None
        self._new_episode: dict | None = None

    # ------------------------------------------------------------------ acting
    def step(self, state, discrete_action, continuous_action, reward, next_state, done, *, actor,
             truncated: bool = False) -> None:
        """Append one transition decided by ``actor``.

        ``done``: the episode ended with this transition (terminated or cut by a time limit);
        ``truncated``: it ended by a time limit only, so ``next_state`` is bootstrapped.
        """
        try:
            d = operator.index(discrete_action)
        except TypeError:
            raise TransitionError(f"step: discrete_action={discrete_action!r} ({type(discrete_action).__name__}) "
                                  "is not an integer; pass the index of the discrete action") from None
        if not 0 <= d < self.spec.n_discrete:
            raise TransitionError(f"step: discrete_action={discrete_action!r} is outside [0, {self.spec.n_discrete})")
        extra = self._new_episode or {}
        if self._has_truncated:
            extra = {**extra, TRUNCATED: bool(truncated)}
        elif truncated:
            raise TransitionError("step: truncated=True but this store has no 'truncated' column to record it")
        self.store.append(actor=actor, state=self._state("state", state),
                          next_state=self._state("next_state", next_state), discrete_action=d,
                          continuous_action=np.asarray(continuous_action, np.float32),
                          reward=float(reward), done=bool(done), **extra)
        self._new_episode = None
        self.frames += 1

    def _state(self, name: str, value) -> np.ndarray:
        """``value`` in the store's state dtype, or a TransitionError where the cast would lose information.

        Taken: float observations into a float32 store (CartPole's float64), integers into a float
        store, integers into an integer store when every value fits. Refused: floats into an integer
        store (a uint8 image store given normalised pixels), integers outside the store's range.
        """
        a = np.asarray(value)
        want = self._state_dtype
        if a.dtype == want:
            return a
        if want.kind == "f" and a.dtype.kind in "biuf":
            return a.astype(want)
        if want.kind in "iu" and a.dtype.kind in "biu":
            info = np.iinfo(want)
            if a.size == 0 or (int(a.min()) >= info.min and int(a.max()) <= info.max):
                return a.astype(want)
            raise TransitionError(
                f"step: {name} of dtype {a.dtype} holds values in [{int(a.min())}, {int(a.max())}], outside the "
                f"store's {want} range [{info.min}, {info.max}]; pass the environment's own {want} observations")
        raise TransitionError(
            f"step: {name} has dtype {a.dtype} but the store holds {want} states: the cast would lose information. "
            f"Pass the environment's {want} observations as they are (no normalising wrapper: the network scales "
            f"uint8 by 1/255 itself), or create the store with Schema.transition(..., state_dtype='float32')")

    def start_new_episode(self) -> None:
        """After a resume: number the next row as the first of a new episode (the last one was cut)."""
        n = len(self.store)
        if n == 0:
            return
        last = self.store.read(["episode", "done"], n - 1, n)
        if not bool(last["done"][0]):
            self._new_episode = {"episode": int(last["episode"][0]) + 1, "step": 0}

    # ------------------------------------------------------------------ learning
    def _get_sampler(self):
        if self._sampler is None:
            from replaystore.store import Sampler

            if self.store.commit() == 0:
                raise ConfigError("train_step: the store has no rows yet; step() some transitions first")
            cfg = self.config
            cols = ["state", "discrete_action", "continuous_action", "reward", "actor"]
            if self.nstep is None:  # one-step targets read the row's own next state; n-step ones gather it
                cols += ["next_state", "done"] + ([TRUNCATED] if self._has_truncated else [])
            kw = {"strategy": cfg.sampler_strategy, "seed": cfg.seed + self.train_steps, "as_torch": True,
                  "columns": cols}
            if cfg.actor_fractions is not None:
                kw["actor_fractions"] = cfg.actor_fractions
            self._sampler = Sampler(self.store, cfg.batch_size, **kw)
        return self._sampler

    def train_step(self) -> TrainMetrics:
        """Sample a batch, take one gradient step, record telemetry and log at the configured cadences."""
        cfg = self.config
        sampler = self._get_sampler()
        b = sampler.sample()
        rows = np.asarray(b["row"])
        codes = torch.as_tensor(np.asarray(b["actor"])).long()
        reward = torch.as_tensor(b["reward"]).float()
        if self.nstep is not None:
            G, boot_rows, disc = self.nstep(rows)
            returns = torch.from_numpy(G)
            boot_state = torch.from_numpy(self.nstep.next_states(boot_rows))
            discount = torch.from_numpy(disc)
        else:
            done = torch.as_tensor(b["done"]).bool()
            if self._has_truncated:
                done = done & ~torch.as_tensor(b[TRUNCATED]).bool()
            returns, boot_state = reward, torch.as_tensor(b["next_state"])
            discount = cfg.gamma * (~done).float()
        batch = Batch(
            state=torch.as_tensor(b["state"]),  # in the store's dtype: the network scales uint8 pixels itself
            discrete_action=torch.as_tensor(b["discrete_action"]).long(),
            continuous_action=torch.as_tensor(b["continuous_action"]).float(),
            reward=reward, codes=codes, returns=returns, boot_state=boot_state, discount=discount,
            weight=torch.as_tensor(b["weight"]).float(),
        )
        step = self.train_steps + 1
        measure = cfg.grad_norm_every > 0 and step % cfg.grad_norm_every == 0
        out = self.learner.step(batch, measure)
        count, td_abs, rew, q = per_actor_stats(codes, out.td, reward, out.q, len(self.actors))
        m = TrainMetrics(step, out.loss, out.td_loss, out.awr_loss, self.actors, count, td_abs, rew, q,
                         out.grad_norm)
        self.trainlog.add_step(m)
        if cfg.samples_every and step % cfg.samples_every == 0:
            self.trainlog.add_samples(step, rows, codes.numpy(), out.td.numpy(), out.q.numpy(), out.target.numpy())
        if cfg.sampler_strategy == "prioritized":
            sampler.update_priorities(rows, out.td.abs().numpy() + 1e-6)
        if cfg.log_batch_every and step % cfg.log_batch_every == 0:
            log.info(batch_line(step, count, self.actors, cfg.dqn_actor))
        if cfg.log_buffer_every and step % cfg.log_buffer_every == 0:
            log.info(buffer_line(step, self.store.actor_composition(window=False), cfg.dqn_actor))
        self.train_steps = step
        return m

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_path(self, directory) -> str:
        return os.path.join(os.fspath(directory), f"step_{self.train_steps:08d}.pt")

    def save_checkpoint(self, path, **meta) -> str:
        """Save model + target + optimizer, flush telemetry, and record the checkpoint in the store."""
        full = {"gamma": self.config.gamma, "n_step": self.config.n_step, "step": self.train_steps,
                "frames": self.frames, "config": self.config.to_dict(), "env_id": self.config.env_id,
                "actors": list(self.actors), **meta}
        path = save_checkpoint(path, self.net, self.learner.target, self.learner.optimizer, full)
        self.trainlog.flush()
        rel = os.path.relpath(path, os.path.dirname(os.path.abspath(self.store.path)))
        self.store.record_checkpoint(self.train_steps, path, frames=self.frames, relpath=rel)
        return path

    def load_checkpoint(self, path) -> dict:
        """Restore weights, target, optimizer and counters; returns the checkpoint's meta."""
        d = read_checkpoint(path)
        if d["spec"] != self.net.spec():
            raise CheckpointError(f"{path} holds a network {d['spec']}, this agent's is {self.net.spec()}")
        self.net.load_state_dict(d["net"])
        if d["target"]:
            self.learner.target.load_state_dict(d["target"])
        if d["optimizer"]:
            self.learner.optimizer.load_state_dict(d["optimizer"])
        torch.set_rng_state(d["torch_rng"])
        meta = d["meta"]
        self.train_steps = int(meta["step"])
        self.frames = int(meta.get("frames", 0))
        self.learner.updates = self.train_steps
        if self._sampler is not None:
            self._sampler.close()
            self._sampler = None
        return meta

    def close(self) -> None:
        """Hand staged telemetry to the store and commit (the store stays open; the caller closes it)."""
        self.trainlog.close()
        if self._sampler is not None:
            self._sampler.close()
            self._sampler = None
        self.store.commit()
