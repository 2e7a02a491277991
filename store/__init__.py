"""replaystore's store: an RL replay buffer kept as HDF5 segments with a mandatory actor column.

Public names: ``Schema``, ``Column``, ``ReplayStore`` (with its two roles ``StoreReader`` and
``StoreWriter``), ``Actors``, ``Sampler``, ``errors``, ``FORMAT_VERSION``, ``verify``.
"""

from . import errors
from ._actors import Actors
from ._format import FORMAT_VERSION, TRANSITIONS
from ._schema import Column, Schema
from ._reader import StoreReader
from ._store import ReplayStore
from ._writer import StoreWriter
from ._sampler import Sampler
from ._telemetry import TRAIN_SAMPLES, TRAIN_STEPS, train_samples_schema, train_steps_schema

__all__ = ["Actors", "Column", "FORMAT_VERSION", "ReplayStore", "Sampler", "Schema", "StoreReader", "StoreWriter",
           "TRANSITIONS", "TRAIN_SAMPLES", "TRAIN_STEPS", "errors", "train_samples_schema", "train_steps_schema"]
