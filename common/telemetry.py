"""``Telemetry(store)``: training telemetry from any training loop, in the store beside the rows.

Two calls, in the spirit of TensorBoard's ``add_scalar``:

- ``log_step(step, loss=..., actors=..., td=..., reward=..., q=...)`` once per training step
  writes one ``train_steps`` row (per-actor batch counts, mean |TD|, reward and Q; gradient norms
  when measured);
- ``log_samples(step, rows, actors, td, q, target)`` for a batch's per-sample TD and Q writes
  ``train_samples`` rows (every K steps is enough).

These are the tables the demo agent writes (its ``TrainLog`` writes through this class), so a
custom loop gets every audit check the agent gets. Needs numpy only: torch tensors are accepted
(they are moved to the CPU), but torch is not imported.

>>> import numpy as np, replaystore as rs, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "run.h5")
>>> store = rs.ReplayStore.create(path, rs.Schema.transition((4,), 0), actors=("expert", "dqn"))
>>> tel = rs.Telemetry(store)
>>> tel.log_step(1, loss=0.5, actors=["dqn", "expert", "dqn"], td=[0.1, -0.4, 0.3], reward=[1, 1, 0],
...              q=[2.0, 3.0, 1.0])
>>> tel.close(); store.close()
>>> r = rs.ReplayStore.open(path)
>>> r.read_table("train_steps")["batch_count"].tolist(), r.read_table("train_steps")["td_abs_mean"].tolist()
([[1, 2]], [[0.4000000059604645, 0.20000000298023224]])
>>> r.close()
"""

from __future__ import annotations

import numbers
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from replaystore.store import TRAIN_SAMPLES, TRAIN_STEPS, Column, Schema, train_samples_schema, train_steps_schema
from replaystore.store.errors import ShapeError, StoreError

from . import tensorboard as _tb
from ._tables import PER_ACTOR, TRAIN_SCALARS
from .extras import require_extra

if TYPE_CHECKING:
    from replaystore.store import StoreWriter

    from .tensorboard import ScalarWriter

__all__ = ["PER_ACTOR", "TRAIN_SCALARS", "PerActor", "Telemetry", "TelemetryError", "Values", "as_numpy"]

# per-sample values (one per row of the batch) or names/codes: numpy arrays, sequences, or torch
# tensors (CPU or GPU; they implement __array__ and are moved to the CPU)
Values = npt.ArrayLike
# one value per actor: an array in vocabulary order, or {actor name: value}
PerActor = Union[npt.ArrayLike, Mapping[str, float]]


class TelemetryError(StoreError, ValueError):
    """A telemetry call got values it cannot record (both a per-sample and a per-actor form, ...)."""


def as_numpy(x: Any, what: str) -> np.ndarray:
    """``x`` as a numpy array; torch tensors (CPU or GPU) are detached and copied to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TelemetryError(f"{what}: cannot read {type(x).__name__} as an array ({e})") from None


class Telemetry:
    """Writes ``train_steps`` / ``train_samples`` to ``store`` (a ``ReplayStore`` open for appending).

    ``log_step`` rows are staged ``block`` at a time and handed to the store with
    ``extend_table``; like the transitions they become durable at the store's next commit
    (``flush()`` hands over a partial block; ``close()`` flushes, the store's own commit or close
    makes it durable). ``tensorboard``: a directory (or a ``ScalarWriter``) that also receives
    every logged step's scalars, for a live view in TensorBoard.
    """

    def __init__(self, store: StoreWriter, *, block: int = 256,
                 tensorboard: str | os.PathLike[str] | ScalarWriter | None = None) -> None:
        if int(block) < 1:
            raise TelemetryError(f"Telemetry(block={block!r}): expected a positive number of rows to stage")
        if isinstance(tensorboard, (str, os.PathLike)):  # before the store's tables are made
            require_extra("tensorboard", "Telemetry(tensorboard=...)")
        if store.actors is None:  # only a store being set up lacks one; an open store always has it
            raise TelemetryError(f"Telemetry({store!r}): the store has no actor vocabulary; open the store first")
        self.store = store
        self.vocabulary = store.actors
        self.actors = tuple(store.actors.names)
        n = len(self.actors)
        store.create_table(TRAIN_STEPS, train_steps_schema(n))
        store.create_table(TRAIN_SAMPLES, train_samples_schema())
        self.block = int(block)
        self._stage = {c.name: np.zeros((self.block, *c.shape), c.dtype) for c in train_steps_schema(n)}
        self._n = 0
        self._scalar_names: tuple[str, ...] | None = None
        self._scalars: list[tuple[int, tuple[float, ...]]] = []  # staged (step, values) rows of train_scalars
        if isinstance(tensorboard, (str, os.PathLike)):
            tensorboard = _tb.ScalarWriter(tensorboard, feature="Telemetry(tensorboard=...)")
        self.tensorboard: ScalarWriter | None = tensorboard

    # ------------------------------------------------------------------ one call per training step
    def log_step(self, step: int, *, loss: float | npt.ArrayLike, actors: Values | None = None,
                 td: Values | None = None, reward: Values | None = None, q: Values | None = None,
                 batch_count: PerActor | None = None, td_abs_mean: PerActor | None = None,
                 reward_mean: PerActor | None = None, q_mean: PerActor | None = None,
                 grad_norm: PerActor | None = None, **scalars: float) -> None:
        """Record training step ``step``.

        Per-sample form: ``actors`` (the batch's actor names or codes) with ``td``, ``reward``
        and ``q`` of the same length; the per-actor counts and means are computed here.
        Per-actor form: ``batch_count``, ``td_abs_mean``, ``reward_mean``, ``q_mean`` as arrays
        in vocabulary order or ``{actor name: value}``. ``grad_norm`` (per actor, when measured)
        is NaN otherwise. A mean over an actor with no sample in the batch is NaN.
        ``**scalars``: the loop's own numbers (``lr=3e-4, epsilon=0.1``) go to a ``train_scalars``
        table (and to TensorBoard under their names); every step must give the same names.
        """
        n = len(self.actors)
        given = {"batch_count": batch_count, "td_abs_mean": td_abs_mean, "reward_mean": reward_mean,
                 "q_mean": q_mean}
        if actors is not None:
            clash = [k for k, v in given.items() if v is not None]
            if clash:
                raise TelemetryError(f"log_step(step={step}): got both actors= (per-sample form) and {clash} "
                                     "(per-actor form); pass one form")
            given = self._per_actor_stats(step, actors, td, reward, q)
        elif td is not None or reward is not None or q is not None:
            raise TelemetryError(f"log_step(step={step}): td=/reward=/q= are per-sample values and need actors= "
                                 "(the batch's actor names or codes) to be split per actor")
        extra = self._check_scalars(step, scalars) if scalars or self._scalar_names else None
        if given["batch_count"] is None:
            raise TelemetryError(f"log_step(step={step}): the batch's actors are missing; pass actors=batch['actor'] "
                                 "(with td=, reward=, q=) or batch_count= per actor")
        i = self._n
        s = self._stage
        s["step"][i] = _int(step, "step")
        s["time"][i] = time.time()
        s["loss"][i] = _float(loss, f"log_step(step={step}): loss")
        count = self._per_actor(given["batch_count"], "batch_count", step, 0)
        if not (np.isfinite(count).all() and (count >= 0).all() and (count == np.round(count)).all()):
            raise TelemetryError(f"log_step(step={step}): batch_count={count.tolist()}: expected whole numbers "
                                 ">= 0 (rows of each actor in the batch)")
        s["batch_count"][i] = count
        for name in PER_ACTOR[1:-1]:
            s[name][i] = self._per_actor(given[name], name, step, np.nan)
        s["grad_norm"][i] = self._per_actor(grad_norm, "grad_norm", step, np.nan) if grad_norm is not None \
            else np.full(n, np.nan, np.float32)
        self._n = i + 1
        if self.tensorboard is not None:
            self.tensorboard.add_scalars({**_tb.step_scalars({k: v[i] for k, v in s.items()}, self.actors),
                                          **_tb.buffer_scalars(self.store.actor_counts(), self.actors),
                                          **dict(zip(self._scalar_names or (), extra or ()))}, int(step))
        if extra is not None:
            self._scalars.append((int(step), extra))
        if self._n == self.block:
            self.flush()

    def _check_scalars(self, step: int, scalars: dict[str, Any]) -> tuple[float, ...]:
        names = tuple(sorted(scalars))
        if self._scalar_names is None:
            clash = sorted(set(names) & {c.name for c in train_steps_schema(1)})
            if clash:
                raise TelemetryError(f"log_step(step={step}): scalars {clash} are train_steps columns; "
                                     "pass them as the named arguments (loss=, ...) or rename them")
            schema = Schema((Column("step", np.dtype("int64")),
                             *(Column(n, np.dtype("float32"), (), True) for n in names)))
            self.store.create_table(TRAIN_SCALARS, schema)  # on resume: the same names, or SchemaError
            self._scalar_names = names
        elif names != self._scalar_names:
            raise TelemetryError(f"log_step(step={step}): scalars {list(names)} but earlier steps gave "
                                 f"{list(self._scalar_names)}; give the same names at every step "
                                 "(NaN when not measured)")
        return tuple(_float(scalars[n], f"log_step(step={step}): {n}") for n in names)

    def _per_actor_stats(self, step: int, actors: Values, td: Values | None, reward: Values | None,
                         q: Values | None) -> dict[str, Any]:
        codes = self.vocabulary.codes(as_numpy(actors, "actors")).reshape(-1).astype(np.intp)
        n, out = len(self.actors), {}
        count = np.bincount(codes, minlength=n)
        out["batch_count"] = count.astype(np.int32)
        for key, values, absolute in (("td_abs_mean", td, True), ("reward_mean", reward, False),
                                      ("q_mean", q, False)):
            if values is None:
                out[key] = np.full(n, np.nan, np.float32)
                continue
            v = as_numpy(values, key).astype(np.float64).reshape(-1)
            if v.shape != codes.shape:
                raise ShapeError(f"log_step(step={step}): {key.split('_')[0]} has {v.size} values but actors has "
                                 f"{codes.size}; pass one value per sample of the batch")
            sums = np.bincount(codes, weights=np.abs(v) if absolute else v, minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 -> NaN: no sample of that actor
                out[key] = (sums / count).astype(np.float32)
        return out

    def _per_actor(self, value: PerActor | None, name: str, step: int, fill: float) -> np.ndarray:
        n = len(self.actors)
        if value is None:
            return np.full(n, fill, np.float64)
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(self.actors), key=str)
            if unknown:
                raise TelemetryError(f"log_step(step={step}): {name} names {unknown}, not in the vocabulary "
                                     f"{list(self.actors)}")
            return np.array([value.get(a, fill) for a in self.actors], dtype=np.float64)
        arr = as_numpy(value, name).reshape(-1)
        if arr.shape != (n,):
            raise ShapeError(f"log_step(step={step}): {name} has shape {arr.shape}, expected ({n},): one value per "
                             f"actor of {list(self.actors)} in that order (or a dict {{actor: value}})")
        return arr

    # ------------------------------------------------------------------ a batch's per-sample values
    def log_samples(self, step: int, rows: Values, actors: Values, td: Values, q: Values, target: Values) -> None:
        """Record a batch's per-sample TD error, Q and target at training step ``step``.

        ``rows``: the batch's row ids in the store (the sampler's ``batch["row"]``); ``actors``:
        their actor names or codes. The audit checks each row's actor against the store's.
        """
        rows = as_numpy(rows, "rows").reshape(-1)
        n = rows.size
        cols = {"actors": as_numpy(actors, "actors").reshape(-1), "td": as_numpy(td, "td").reshape(-1),
                "q": as_numpy(q, "q").reshape(-1), "target": as_numpy(target, "target").reshape(-1)}
        bad = {k: v.size for k, v in cols.items() if v.size != n}
        if bad:
            raise ShapeError(f"log_samples(step={step}): rows has {n} values but {bad}; pass one value per sample")
        self.store.extend_table(TRAIN_SAMPLES, {
            "step": np.full(n, _int(step, "step"), np.int64), "row": rows.astype(np.int64),
            "actor": self.vocabulary.codes(cols["actors"]), "td_error": cols["td"].astype(np.float32),
            "q": cols["q"].astype(np.float32), "target": cols["target"].astype(np.float32)})

    def log_episode(self, frames: int, ret: float, length: int) -> None:
        """An episode ended after ``frames`` recorded rows: its return and length go to TensorBoard
        (when attached). The store needs no call: its rows already hold rewards and ``done``."""
        if self.tensorboard is not None:
            self.tensorboard.add_scalars(_tb.episode_scalars(ret, length), int(frames))

    # ------------------------------------------------------------------ hand-over
    def flush(self) -> None:
        """Hand the staged ``train_steps`` rows to the store (durable at its next commit)."""
        if self._n:
            self.store.extend_table(TRAIN_STEPS, {k: v[:self._n] for k, v in self._stage.items()})
            self._n = 0
        if self._scalars and self._scalar_names is not None:
            cols = {"step": np.array([r[0] for r in self._scalars], np.int64)}
            cols.update({n: np.array([r[1][j] for r in self._scalars], np.float32)
                         for j, n in enumerate(self._scalar_names)})
            self.store.extend_table(TRAIN_SCALARS, cols)
            self._scalars = []
        if self.tensorboard is not None:
            self.tensorboard.flush()

    def close(self) -> None:
        """Flush; the store stays open (its commit or close makes the rows durable)."""
        self.flush()
        if self.tensorboard is not None:
            self.tensorboard.close()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _int(x: Any, what: str) -> int:
    if not isinstance(x, numbers.Integral) and hasattr(x, "item"):  # a 0-d numpy array or tensor
        x = as_numpy(x, what).item()
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TelemetryError(f"{what}={x!r}: expected an integer training step")
    return int(x)


def _float(x: Any, what: str) -> float:
    try:
        return float(as_numpy(x, what))
    except (TypeError, ValueError):
        raise TelemetryError(f"{what}={x!r}: expected a number (NaN is kept as evidence)") from None
