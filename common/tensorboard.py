"""TensorBoard scalars of a run: written live by ``Telemetry`` and afterwards from any store.

Both ways go through the same functions (``step_scalars``, ``buffer_scalars``,
``episode_scalars``), so a run watched live and the same run exported later show the same tags:

- ``train/loss``; per actor ``batch/fraction/A``, ``batch/count/A``, ``td_abs_mean/A``,
  ``reward_mean/A``, ``q_mean/A`` (at steps whose batch held A) and ``grad_norm/A`` (at steps
  that measured it): x axis = training step;
- ``buffer/rows`` and ``buffer/fraction/A``: the store's composition when the step was taken;
- ``episode/return``, ``episode/length``: x axis = frames (rows) recorded when the episode ended;
- a loop's own scalars (``Telemetry.log_step(..., lr=...)``, table ``train_scalars``) by name.

The files are written with the ``tensorboard`` package's own event writer (no torch needed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from replaystore.store import TRAIN_STEPS

from ._tables import TRAIN_SCALARS
from .extras import MissingExtraError, require_extra


def _event_writer(feature: str) -> tuple[Any, Any, Any]:
    require_extra("tensorboard", feature)
    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:  # installed but broken (a protobuf mismatch, ...): say so, and which extra
        raise MissingExtraError(feature, "tensorboard", f"a working tensorboard ({e})") from None
    return Event, Summary, EventFileWriter


class ScalarWriter:
    """Scalars into a TensorBoard event file in ``logdir`` (created if missing).

    Needs the ``[tensorboard]`` extra; without it, ``MissingExtraError`` (an ``ImportError``)
    names it before ``logdir`` is created. ``feature`` names the caller in that message.
    """

    def __init__(self, logdir: str | os.PathLike[str], flush_secs: float = 2.0, *,
                 feature: str = "TensorBoard event files") -> None:
        self._Event, self._Summary, EventFileWriter = _event_writer(feature)
        self.logdir = os.fspath(logdir)
        os.makedirs(self.logdir, exist_ok=True)
        self._w = EventFileWriter(self.logdir, flush_secs=flush_secs)
        self.closed = False

    def add_scalars(self, scalars: Mapping[str, float], step: int, wall_time: float | None = None) -> None:
        """One event holding every ``tag: value`` of ``scalars`` at ``step``."""
        if not scalars:
            return
        import time

        values = [self._Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()]
        self._w.add_event(self._Event(wall_time=time.time() if wall_time is None else wall_time, step=int(step),
                                      summary=self._Summary(value=values)))

    def flush(self) -> None:
        if not self.closed:
            self._w.flush()

    def close(self) -> None:
        if not self.closed:
            self._w.close()
            self.closed = True

    def __enter__(self) -> ScalarWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def step_scalars(row: Mapping[str, Any], actors: Sequence[str]) -> dict[str, float]:
    """Tags of one ``train_steps`` row (a dict of that row's columns)."""
    out = {"train/loss": float(row["loss"])}
    count = np.asarray(row["batch_count"])
    total = int(count.sum())
    for i, a in enumerate(actors):
        out[f"batch/count/{a}"] = int(count[i])
        if total:
            out[f"batch/fraction/{a}"] = count[i] / total
        if count[i]:  # a mean over no sample is NaN by construction: leave it out of the plot
            for col in ("td_abs_mean", "reward_mean", "q_mean"):
                out[f"{col}/{a}"] = float(row[col][i])
        g = float(row["grad_norm"][i])
        if not math.isnan(g):
            out[f"grad_norm/{a}"] = g
    return out


def buffer_scalars(counts: npt.ArrayLike, actors: Sequence[str]) -> dict[str, float]:
    """``buffer/rows`` and the share of each actor, from per-actor row counts."""
    counts = np.asarray(counts)
    total = int(counts.sum())
    out: dict[str, float] = {"buffer/rows": total}
    if total:
        out.update({f"buffer/fraction/{a}": counts[i] / total for i, a in enumerate(actors)})
    return out


def episode_scalars(ret: float, length: int) -> dict[str, float]:
    return {"episode/return": float(ret), "episode/length": int(length)}


def episodes(reward: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(end_frame, return, length)`` of every finished episode, from the rows' reward and done."""
    ends = np.flatnonzero(done)
    cs = np.concatenate(([0.0], np.cumsum(reward, dtype=np.float64)))
    starts = np.concatenate(([0], ends[:-1] + 1))
    return ends + 1, cs[ends + 1] - cs[starts], ends + 1 - starts


def export(path: str | os.PathLike[str], out: str | os.PathLike[str], *, every: int = 1) -> dict[str, Any]:
    """Write the TensorBoard scalars of the store at ``path`` into ``out``; returns counts written.

    ``every``: keep one training step in ``every`` (episodes are all written). Needs the
    ``[tensorboard]`` extra (checked before anything is read or written).
    """
    from replaystore.store import ReplayStore

    if int(every) < 1:
        raise ValueError(f"every={every!r}: expected a positive number of training steps")
    require_extra("tensorboard", "replaystore tensorboard")
    with ReplayStore.open(path, "r") as s:
        actors = tuple(s.actors.names) if s.actors is not None else ()  # an open store always has one
        tr = s.read(["actor", "time", "reward", "done"])
        steps = s.read_table(TRAIN_STEPS) if TRAIN_STEPS in s.tables else None
        own = s.read_table(TRAIN_SCALARS) if TRAIN_SCALARS in s.tables else None
    n_steps = n_eps = 0
    with ScalarWriter(out) as w:
        if steps is not None and len(steps["step"]):
            # the buffer's composition when each step was taken: rows recorded up to its time
            codes = np.asarray(tr["actor"]).astype(np.intp)
            onehot_cum = np.zeros((len(codes) + 1, len(actors)), np.int64)
            valid = codes < len(actors)  # rows of unknown codes are the audit's business, not a plot's
            onehot_cum[1:][np.arange(len(codes))[valid], codes[valid]] = 1
            np.cumsum(onehot_cum, axis=0, out=onehot_cum)
            upto = np.searchsorted(tr["time"], steps["time"], side="right")
            for i in range(0, len(steps["step"]), int(every)):
                row = {k: v[i] for k, v in steps.items()}
                scalars = {**step_scalars(row, actors), **buffer_scalars(onehot_cum[upto[i]], actors)}
                w.add_scalars(scalars, int(row["step"]), wall_time=float(row["time"]))
                n_steps += 1
        if own is not None:
            names = [k for k in own if k != "step"]
            for i in range(0, len(own["step"]), int(every)):
                w.add_scalars({n: float(own[n][i]) for n in names}, int(own["step"][i]))
        ends, rets, lens = episodes(tr["reward"], tr["done"])
        for e, r, n in zip(ends.tolist(), rets.tolist(), lens.tolist()):
            w.add_scalars(episode_scalars(r, n), e, wall_time=float(tr["time"][e - 1]))
            n_eps += 1
    return {"steps": n_steps, "episodes": n_eps, "out": os.fspath(out)}
