"""replaystore's store: an RL replay buffer kept as a chunked HDF5 file with a mandatory actor column.

Public names: ``Schema``, ``Column``, ``ReplayStore``, ``Actors``, ``errors``, ``FORMAT_VERSION``;
sampling: ``Sampler``, its strategies ``Uniform``, ``Stratified``, ``Prioritized`` (protocol
``SamplingStrategy``) and ``SampleSource``, what a sampler needs from a store; ``Run`` (a folder
of shards, one store per writing process) and ``RunSource`` (its shards as one sample source).
"""

from . import errors
from ._actors import Actors
from ._format import FORMAT_VERSION, TRANSITIONS
from ._schema import Column, Schema
from ._sampler import Sampler
from ._sampling_prioritized import Prioritized
from ._sampling_source import SampleSource
from ._sampling_strategies import SamplingStrategy, Stratified, Uniform
from ._store import ReplayStore
from ._run import Run
from ._run_source import RunSource
from ._telemetry import TRAIN_SAMPLES, TRAIN_STEPS, train_samples_schema, train_steps_schema

__all__ = ["Actors", "Column", "FORMAT_VERSION", "ReplayStore", "Sampler", "Schema", "TRANSITIONS", "TRAIN_SAMPLES", "TRAIN_STEPS", "errors",
           "train_samples_schema", "train_steps_schema",
           "Prioritized", "SampleSource", "SamplingStrategy", "Stratified", "Uniform", "Run", "RunSource"]
