"""Training telemetry into the store, and the ``[BATCH]`` / ``[BUFFER]`` log lines.

``train_steps`` rows are staged here in blocks (``telemetry_block`` rows) and handed to the store
with ``extend_table``; they become durable at the store's next commit, like the transitions.
``train_samples`` rows (one per sampled transition, every K steps) go to the store at once.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from replaystore.store import TRAIN_SAMPLES, TRAIN_STEPS, train_samples_schema, train_steps_schema

from ._metrics import TrainMetrics

log = logging.getLogger("replaystore.agent")

_PER_ACTOR = ("batch_count", "td_abs_mean", "reward_mean", "q_mean", "grad_norm")


def display_order(actors: tuple[str, ...], dqn_actor: str) -> list[int]:
    """Codes in the order the log lines list them: the DQN first, then the vocabulary order."""
    first = [actors.index(dqn_actor)] if dqn_actor in actors else []
    return first + [i for i in range(len(actors)) if i not in first]


def _label(name: str, dqn_actor: str) -> str:
    return "DQN" if name == dqn_actor else name


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "n/a"


def batch_line(step: int, counts, actors, dqn_actor: str) -> str:
    """``[BATCH] Step 100: 6075 DQN (74.1%) / 2117 expert (25.9%)``"""
    total = int(np.sum(counts))
    parts = [f"{int(counts[i])} {_label(actors[i], dqn_actor)} ({_pct(int(counts[i]), total)})"
             for i in display_order(actors, dqn_actor)]
    return f"[BATCH] Step {step}: " + " / ".join(parts)


def buffer_line(step: int, composition: dict, dqn_actor: str) -> str:
    """``[BUFFER] Step 1000: 1000000 total, 740000 DQN (74.0%), 260000 expert (26.0%)``"""
    names = tuple(composition["counts"])
    total = int(composition["total"])
    parts = [f"{composition['counts'][names[i]]} {_label(names[i], dqn_actor)} "
             f"({_pct(composition['counts'][names[i]], total)})" for i in display_order(names, dqn_actor)]
    return f"[BUFFER] Step {step}: {total} total, " + ", ".join(parts)


class TrainLog:
    """Stages ``train_steps`` rows and writes ``train_samples`` blocks to a store open for appending."""

    def __init__(self, store, n_actors: int, block: int):
        self.store = store
        self.n_actors = n_actors
        store.create_table(TRAIN_STEPS, train_steps_schema(n_actors))
        store.create_table(TRAIN_SAMPLES, train_samples_schema())
        self.block = int(block)
        self._stage = {c.name: np.zeros((self.block, *c.shape), c.dtype) for c in train_steps_schema(n_actors)}
        self._n = 0

    def add_step(self, m: TrainMetrics) -> None:
        i = self._n
        s = self._stage
        s["step"][i] = m.step
        s["time"][i] = time.time()
        s["loss"][i] = m.loss
        for name in _PER_ACTOR:
            s[name][i] = getattr(m, name)
        self._n = i + 1
        if self._n == self.block:
            self.flush()

    def add_samples(self, step: int, rows: np.ndarray, codes: np.ndarray, td: np.ndarray, q: np.ndarray,
                    target: np.ndarray) -> None:
        n = len(rows)
        self.store.extend_table(TRAIN_SAMPLES, {
            "step": np.full(n, step, np.int64), "row": np.asarray(rows, np.int64),
            "actor": np.asarray(codes, np.uint8), "td_error": np.asarray(td, np.float32),
            "q": np.asarray(q, np.float32), "target": np.asarray(target, np.float32)})

    def flush(self) -> None:
        """Hand the staged ``train_steps`` rows to the store (durable at its next commit)."""
        if self._n:
            self.store.extend_table(TRAIN_STEPS, {k: v[:self._n] for k, v in self._stage.items()})
            self._n = 0
