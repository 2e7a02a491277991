"""The store against a plain in-memory model: a Hypothesis state machine.

The model is a list of row blocks and a committed count. Rules append rows one by one, extend
blocks (small ones, and ones of thousands of rows that cross the actor prefix index's 4096-row
boundaries), commit, close and reopen for appending, open readers, refresh a long-lived reader,
and feed bad input. After each, what any handle can see is compared with the model: committed
rows bit-identical in every column, actor counts and compositions over the window and the whole
store, and the store-filled episode/step/time columns.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from replaystore.store import Column, ReplayStore, Schema, errors
from replaystore.store.format._format import PREFIX_EVERY

from store_helpers import same_bits
from strategies import StoreConfig, block_sizes, given_auto, random_block, seeds, store_configs


LOG = "log"


def log_schema(n_actors: int) -> Schema:
    """A telemetry-like table kept beside the transitions (committed with them)."""
    return Schema((Column("step", np.dtype("int64")), Column("loss", np.dtype("float32"), (), True),
                   Column("actor", np.dtype("uint8")), Column("per_actor", np.dtype("int32"), (n_actors,))))


class Model:
    """What the store should hold: every appended row, and how many of them are committed;
    likewise for a second table, small JSON extras and the checkpoint log."""

    def __init__(self, config: StoreConfig):
        self.config = config
        self.schema = config.schema
        self.blocks: list[dict[str, np.ndarray]] = []
        self._cat: dict[str, np.ndarray] | None = None
        self.total = 0
        self.committed = 0
        self.next_episode = 0
        self.next_step = 0
        self.log: list[dict[str, np.ndarray]] = []
        self.log_total = 0
        self.log_committed = 0
        self.extra: dict = {}
        self.extra_committed: dict = {}
        self.checkpoints: list[dict] = []
        self.new_commit = False  # a commit record was written since the long-lived reader refreshed

    def commit_all(self) -> None:
        """A commit covers every table and the JSON state, whatever triggered it."""
        self.new_commit = True
        self.committed = self.total
        self.log_committed = self.log_total
        self.extra_committed = json.loads(json.dumps(self.extra))

    def log_rows(self) -> dict[str, np.ndarray]:
        sch = log_schema(len(self.config.actors))
        return {c.name: np.concatenate([np.empty((0, *c.shape), c.dtype)] + [b[c.name] for b in self.log])
                for c in sch}

    def add(self, block: dict[str, np.ndarray], n: int, time_lo: float, time_hi: float, give) -> None:
        """Add rows as the store should keep them, filling auto columns as the store promises."""
        block = dict(block)
        episode = np.empty(n, np.int64)
        step = np.empty(n, np.int64)
        for j in range(n):
            ep = int(block["episode"][j]) if "episode" in give else self.next_episode
            stp = int(block["step"][j]) if "step" in give else self.next_step
            episode[j], step[j] = ep, stp
            if block["done"][j]:
                self.next_episode, self.next_step = ep + 1, 0
            else:
                self.next_episode, self.next_step = ep, stp + 1
        block["episode"], block["step"] = episode, step
        if "time" not in give:
            block["time"] = np.full(n, np.nan)
        block["time_lo"] = np.full(n, time_lo if "time" not in give else np.nan)
        block["time_hi"] = np.full(n, time_hi if "time" not in give else np.nan)
        self.blocks.append(block)
        self._cat = None
        self.total += n

    def auto_commit(self) -> None:
        if self.total - self.committed >= self.config.commit_every:
            self.commit_all()

    def rows(self) -> dict[str, np.ndarray]:
        if self._cat is None:
            names = list(self.schema.names) + ["time_lo", "time_hi"]
            empty = {c.name: np.empty((0, *c.shape), c.dtype) for c in self.schema}
            empty["time_lo"] = empty["time_hi"] = np.empty(0)
            self._cat = {k: np.concatenate([empty[k]] + [b[k] for b in self.blocks]) for k in names}
        return self._cat

    def counts(self, start: int, stop: int) -> list[int]:
        return np.bincount(self.rows()["actor"][start:stop], minlength=len(self.config.actors)).tolist()


def check_rows(model: Model, handle: ReplayStore, where: str) -> None:
    """Every committed row of ``handle`` equals the model's, bit for bit; time within its bracket.
    The second table, the JSON extras and the checkpoint log match what was committed too."""
    assert handle.tables == {"transitions": model.committed, LOG: model.log_committed}, where
    log = handle.read_table(LOG)
    for name, v in model.log_rows().items():
        assert same_bits(v[:model.log_committed], log[name]), f"{where}: table {LOG!r} column {name!r}"
    for key in set(model.extra) | set(model.extra_committed):
        assert handle.get_extra(key, "<absent>") == model.extra_committed.get(key, "<absent>"), f"{where}: extra {key!r}"
    got_ckpt = [{k: v for k, v in c.items() if k != "time"} for c in handle.checkpoints]
    assert got_ckpt == model.checkpoints, f"{where}: checkpoints"
    n = model.committed
    assert len(handle) == n, f"{where}: {len(handle)} rows visible, model has {n} committed"
    got = handle.read()
    want = model.rows()
    assert set(got) == set(model.schema.names)
    for c in model.schema:
        g = got[c.name]
        if c.name == "time":
            lo, hi, given = want["time_lo"][:n], want["time_hi"][:n], want["time"][:n]
            auto = ~np.isnan(lo)
            assert same_bits(given[~auto], g[~auto]), f"{where}: given time values differ"
            assert ((g[auto] >= lo[auto]) & (g[auto] <= hi[auto])).all(), f"{where}: auto time outside the append call"
            continue
        assert same_bits(want[c.name][:n], g), f"{where}: column {c.name!r} differs from the model"


def check_counts(model: Model, handle: ReplayStore, rng: np.random.Generator, where: str) -> None:
    """actor_counts and actor_composition equal counts over the model's committed rows."""
    n = model.committed
    names = model.config.actors
    assert handle.actor_counts().tolist() == model.counts(0, n), where
    starts = {0, n, max(0, n - 1), int(rng.integers(0, n + 1))}
    starts |= {b + d for b in range(0, n + 1, PREFIX_EVERY) for d in (-1, 0, 1) if 0 <= b + d <= n}
    for s in sorted(starts):
        assert handle.actor_counts(s).tolist() == model.counts(s, n), f"{where}: actor_counts({s})"
    w0 = max(0, n - model.config.window)
    assert handle.window_start() == w0
    for window, lo in ((True, w0), (False, 0)):
        comp = handle.actor_composition(window=window)
        counts = model.counts(lo, n)
        total = n - lo
        assert comp["total"] == total, f"{where}: composition(window={window}) total"
        assert comp["counts"] == dict(zip(names, counts)), f"{where}: composition(window={window}) counts"
        assert comp["fractions"] == {a: (c / total if total else 0.0) for a, c in zip(names, counts)}


class StoreMachine(RuleBasedStateMachine):
    """A writer, a long-lived reader, and the model they must agree with."""

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="store-model-"))
        self.path = self.dir / "run.h5"
        self.writer: ReplayStore | None = None
        self.reader: ReplayStore | None = None
        self.model: Model | None = None
        self.rng = np.random.default_rng(0)

    @initialize(config=store_configs(), metadata=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3))
    def create(self, config: StoreConfig, metadata):
        self.model = Model(config)
        self.writer = ReplayStore.create(self.path, config.schema, actors=config.actors, window=config.window,
                                         metadata=metadata, commit_every=config.commit_every,
                                         commit_seconds=3600.0, chunk_bytes=config.chunk_bytes)
        self.writer.create_table(LOG, log_schema(len(config.actors)))
        self.writer.commit()
        self.reader = ReplayStore.open(self.path, "r")
        self.model.new_commit = False
        assert self.reader.metadata == metadata
        assert self.reader.schema == config.schema
        assert self.reader.actors.names == config.actors
        assert self.reader.window == config.window

    def _block(self, n: int, seed: int, give) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        block = random_block(self.model.schema, n, rng, nonfinite=self.model.config.nonfinite_ok, give=give)
        block["actor"] = rng.integers(0, len(self.model.config.actors), size=n).astype(np.uint8)
        return block

    @rule(k=st.integers(1, 12), seed=seeds, give=given_auto, as_python=st.booleans(), by_name=st.booleans())
    def append_rows(self, k, seed, give, as_python, by_name):
        """One row per call; values as numpy scalars/arrays, or as Python numbers and lists."""
        block = self._block(k, seed, give)
        for j in range(k):
            row = {name: v[j] for name, v in block.items()}
            code = int(row.pop("actor"))
            actor = self.model.config.actors[code] if by_name else code
            if as_python:
                # numpy reads a list holding ints above 2**63 as float64 (lossy), which a uint64
                # column rightly refuses: give those as arrays
                row = {name: v if v.dtype == np.uint64 and v.shape else v.tolist() for name, v in row.items()}
            lo = time.time()
            self.writer.append(actor=actor, **row)
            hi = time.time()
            self.model.add({name: v[j:j + 1] for name, v in block.items()}, 1, lo, hi, give)
            self.model.auto_commit()
            assert len(self.writer) == self.model.committed

    @rule(n=block_sizes, seed=seeds, give=given_auto, actor_as=st.sampled_from(["names", "uint8", "int64"]))
    def extend_block(self, n, seed, give, actor_as):
        """A block; the actor column as names or integer codes."""
        block = self._block(n, seed, give)
        given = dict(block)
        if actor_as == "names":
            given["actor"] = np.array(self.model.config.actors)[block["actor"]] if n else np.array([], str)
        elif actor_as == "int64":
            given["actor"] = block["actor"].astype(np.int64)
        lo = time.time()
        assert self.writer.extend(given) == n
        hi = time.time()
        self.model.add(block, n, lo, hi, give)
        self.model.auto_commit()
        assert len(self.writer) == self.model.committed

    @rule()
    def commit(self):
        assert self.writer.commit() == self.model.total
        self.model.commit_all()

    @rule(n=st.integers(0, 60), seed=seeds, by_name=st.booleans())
    def extend_log(self, n, seed, by_name):
        """Rows of the second table: visible at the next commit, whatever triggers it."""
        rng = np.random.default_rng(seed)
        actors = self.model.config.actors
        block = {"step": rng.integers(-2**62, 2**62, n), "loss": rng.standard_normal(n).astype("f4"),
                 "actor": rng.integers(0, len(actors), n).astype(np.uint8),
                 "per_actor": rng.integers(-2**31, 2**31, (n, len(actors))).astype(np.int32)}
        if n:
            block["loss"][rng.random(n) < 0.2] = np.nan  # declared allow_nonfinite: kept as is
        given = dict(block, actor=np.array(actors)[block["actor"]] if by_name and n else block["actor"])
        assert self.writer.extend_table(LOG, given) == n
        self.model.log.append(block)
        self.model.log_total += n

    @rule(key=st.sampled_from(["a", "b"]), value=st.recursive(
        st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=6))
    def set_extra(self, key, value):
        """Small JSON state: visible at the next commit."""
        self.writer.set_extra(key, value)
        self.model.extra[key] = value

    @rule(step=st.integers(0, 10**9), info=st.dictionaries(st.sampled_from(["loss", "note"]), st.integers(0, 9), max_size=2))
    def record_checkpoint(self, step, info):
        """A checkpoint note commits everything at once."""
        self.writer.record_checkpoint(step, f"ckpt/{step}.pt", **info)
        self.model.checkpoints.append({"step": step, "path": f"ckpt/{step}.pt", **info})
        self.model.commit_all()

    @rule(read_between=st.booleans(), commit_every=st.sampled_from([None, 1, 50, 100_000]), recreate_table=st.booleans())
    def close_and_reopen(self, read_between, commit_every, recreate_table):
        """Close (which commits) and reopen for appending; auto columns continue where they were."""
        self.writer.close()
        self.model.commit_all()
        assert self.writer.closed
        if read_between:
            with ReplayStore.open(self.path, "r") as r:
                check_rows(self.model, r, "reader after close")
                assert r.writer_state == {"live": False, "died": False, "recovery": None}
        if commit_every is not None:
            self.model.config = StoreConfig(**{**self.model.config.__dict__, "commit_every": commit_every})
        self.writer = ReplayStore.open(self.path, "a", commit_every=self.model.config.commit_every,
                                       commit_seconds=3600.0)
        assert len(self.writer) == self.model.total
        if recreate_table:  # declaring an existing table again with its schema is a no-op
            self.writer.create_table(LOG, log_schema(len(self.model.config.actors)))

    @rule()
    def open_reader(self):
        """A new reader while the writer is open sees exactly the committed rows."""
        with ReplayStore.open(self.path, "r") as r:
            check_rows(self.model, r, "new reader")
            check_counts(self.model, r, self.rng, "new reader")
            assert r.writer_state["live"] is True

    @rule()
    def refresh_reader(self):
        """The reader opened at the start follows every commit since; has_new_commits() said whether there was one."""
        assert self.reader.has_new_commits() is self.model.new_commit
        self.model.new_commit = False
        assert self.reader.refresh() == self.model.committed
        assert self.reader.has_new_commits() is False
        check_rows(self.model, self.reader, "refreshed reader")
        check_counts(self.model, self.reader, self.rng, "refreshed reader")

    @rule(kind=st.sampled_from(["no_actor", "actor_none", "unknown_name", "unknown_code", "state_shape",
                                "float_action", "float_done", "nan_reward", "missing", "unknown_column",
                                "ragged_block"]))
    def bad_input(self, kind):
        """Bad input raises and loses nothing (the model is unchanged)."""
        row = {k: v[0] for k, v in self._block(1, 0, frozenset()).items()}
        row.pop("actor")
        actor = self.model.config.actors[0]
        expect = {"no_actor": errors.MissingActorError, "actor_none": errors.MissingActorError,
                  "unknown_name": errors.UnknownActorError, "unknown_code": errors.UnknownActorError,
                  "state_shape": errors.ShapeError, "float_action": errors.DTypeError,
                  "float_done": errors.DTypeError, "nan_reward": errors.NonFiniteError,
                  "missing": errors.MissingColumnError, "unknown_column": errors.UnknownColumnError,
                  "ragged_block": errors.ShapeError}[kind]
        if kind == "nan_reward" and self.model.config.nonfinite_ok:
            return
        with pytest.raises(expect):
            if kind == "ragged_block":
                block = {k: np.stack([v, v]) for k, v in row.items()}
                block["actor"] = np.array([actor])
                self.writer.extend(block)
                return
            if kind == "no_actor":
                self.writer.append(**row)
            if kind == "actor_none":
                actor = None
            elif kind == "unknown_name":
                actor = "".join(self.model.config.actors) + "?"
            elif kind == "unknown_code":
                actor = len(self.model.config.actors)
            elif kind == "state_shape":
                row["state"] = np.zeros((*row["state"].shape, 2), row["state"].dtype)
            elif kind == "float_action":
                row["discrete_action"] = 1.5
            elif kind == "float_done":
                row["done"] = np.float64(1.0)
            elif kind == "nan_reward":
                row["reward"] = float("nan")
            elif kind == "missing":
                del row["reward"]
            elif kind == "unknown_column":
                row["not_a_column"] = 1.0
            self.writer.append(actor=actor, **row)
        assert len(self.writer) == self.model.committed

    @invariant()
    def writer_sees_committed(self):
        if self.writer is not None:
            assert len(self.writer) == self.model.committed

    @precondition(lambda self: self.writer is not None and self.model.committed < 40_000)
    @rule()
    def writer_reads_committed(self):
        """The writer's own handle reads the committed rows too."""
        check_rows(self.model, self.writer, "writer")

    def teardown(self):
        try:
            if self.writer is not None:
                self.writer.close()
                self.model.commit_all()
                with ReplayStore.open(self.path, "r") as r:
                    check_rows(self.model, r, "reader after final close")
                    check_counts(self.model, r, self.rng, "reader after final close")
                assert self.reader.refresh() == self.model.total
                check_rows(self.model, self.reader, "long-lived reader after final close")
        finally:
            if self.reader is not None:
                self.reader.close()
            shutil.rmtree(self.dir, ignore_errors=True)


StoreMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestStoreAgainstModel = StoreMachine.TestCase
TestStoreAgainstModel.__doc__ = "Random sequences of store operations agree with the in-memory model."
