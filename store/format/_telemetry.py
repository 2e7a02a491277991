"""Schemas of the training log kept in the store beside the transitions.

The agent writes these tables and analysis reads them; both import the schemas from here.
Per-actor columns have one entry per actor code (shape ``(n_actors,)``), in vocabulary order.
Non-finite values are allowed: a NaN loss or TD error is evidence to keep, and a per-actor mean
over zero samples (or a gradient norm not measured at this step) is NaN.
"""

from __future__ import annotations

import numpy as np

from ._schema import Column, Schema

TRAIN_STEPS = "train_steps"
TRAIN_SAMPLES = "train_samples"


def train_steps_schema(n_actors: int) -> Schema:
    """One row per training step."""
    f32, a = np.dtype("float32"), (int(n_actors),)
    return Schema((
        Column("step", np.dtype("int64")),
        Column("time", np.dtype("float64")),
        Column("loss", f32, (), True),
        Column("batch_count", np.dtype("int32"), a),      # sampled rows per actor
        Column("td_abs_mean", f32, a, True),               # mean |TD error| per actor
        Column("reward_mean", f32, a, True),
        Column("q_mean", f32, a, True),
        Column("grad_norm", f32, a, True),                 # NaN unless measured at this step
    ))


def train_samples_schema() -> Schema:
    """One row per sampled transition, every K training steps."""
    f32 = np.dtype("float32")
    return Schema((
        Column("step", np.dtype("int64")),
        Column("row", np.dtype("int64")),                  # transition row id in the store
        Column("actor", np.dtype("uint8")),
        Column("td_error", f32, (), True),
        Column("q", f32, (), True),
        Column("target", f32, (), True),
    ))
