"""replaystore's store: an RL replay buffer kept as HDF5 segments with a mandatory actor column.

Public names: ``Schema``, ``Column``, ``ReplayStore`` (with its two roles ``StoreReader`` and
``StoreWriter``), ``Actors``, ``errors``, ``FORMAT_VERSION``, ``verify``; sampling: ``Sampler``,
its strategies ``Uniform``, ``Stratified``, ``Prioritized`` (protocol ``SamplingStrategy``) and
``SampleSource``, what a sampler needs from a store; ``Run`` (a folder of shards, one store per
writing process) and ``RunSource`` (its shards as one sample source); ``FileLayer``, the one object
every file write goes through (``file_layer()`` the current one, ``use_file_layer`` to swap it);
``FrameStack`` (stacked image observations stored one frame per step:
``ReplayStore.create(..., frames=FrameStack(4))``); ``archive_cache_bytes`` (the memory budget of
decompressed chunks read from compacted segments, for the whole process).
"""

from . import errors
from ._actors import Actors
from ._archive import archive_cache_bytes
from ._fileio import FileLayer, layer as file_layer, use_layer as use_file_layer
from ._format import FORMAT_VERSION, TRANSITIONS, store_files
from ._frames import FrameStack
from ._schema import Column, Schema
from ._reader import StoreReader
from ._sampling_prioritized import Prioritized
from ._sampling_source import SampleSource
from ._sampling_strategies import SamplingStrategy, Stratified, Uniform
from ._store import ReplayStore
from ._writer import StoreWriter
from ._sampler import Sampler
from ._run import Run
from ._run_source import RunSource
from ._telemetry import TRAIN_SAMPLES, TRAIN_STEPS, train_samples_schema, train_steps_schema

__all__ = ["Actors", "Column", "FORMAT_VERSION", "FrameStack", "ReplayStore", "Sampler", "Schema", "StoreReader", "StoreWriter",
           "TRANSITIONS", "TRAIN_SAMPLES", "TRAIN_STEPS", "errors", "train_samples_schema", "train_steps_schema", "store_files",
           "Prioritized", "SampleSource", "SamplingStrategy", "Stratified", "Uniform", "Run", "RunSource",
           "FileLayer", "file_layer", "use_file_layer", "archive_cache_bytes"]
