"""Training telemetry into the store, and the ``[BATCH]`` / ``[BUFFER]`` log lines.

The tables are written by ``replaystore.Telemetry``, the same class a user's own training loop
calls: ``train_steps`` rows are staged in blocks (``telemetry_block`` rows) and handed to the store
with ``extend_table``, durable at the store's next commit like the transitions; ``train_samples``
rows (one per sampled transition, every K steps) go to the store at once.
"""

from __future__ import annotations

import logging

import numpy as np

from replaystore.common.telemetry import Telemetry

from ._metrics import TrainMetrics

log = logging.getLogger("replaystore.agent")

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


class TrainLog(Telemetry):
    """The agent's ``Telemetry``: one ``TrainMetrics`` per step in, the same tables any loop writes."""

    def __init__(self, store, n_actors: int, block: int, tensorboard=None):
        super().__init__(store, block=block, tensorboard=tensorboard)
        if n_actors != len(self.actors):
            raise ValueError(f"TrainLog: n_actors={n_actors} but the store's vocabulary has {len(self.actors)} actors")
        self.n_actors = n_actors

    def add_step(self, m: TrainMetrics) -> None:
        self.log_step(m.step, loss=m.loss, batch_count=m.batch_count, td_abs_mean=m.td_abs_mean,
                      reward_mean=m.reward_mean, q_mean=m.q_mean, grad_norm=m.grad_norm)

    def add_samples(self, step: int, rows: np.ndarray, codes: np.ndarray, td: np.ndarray, q: np.ndarray,
                    target: np.ndarray) -> None:
        self.log_samples(step, rows, codes, td, q, target)
