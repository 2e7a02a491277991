"""replaystore's store: an RL replay buffer kept as HDF5 segments with a mandatory actor column.

Public names: ``Schema``, ``Column``, ``ReplayStore`` (with its two roles ``StoreReader`` and
``StoreWriter``), ``Actors``, ``errors``, ``FORMAT_VERSION``; sampling: ``Sampler``,
its strategies ``Uniform``, ``Stratified``, ``Prioritized`` (protocol ``SamplingStrategy``) and
``SampleSource``, what a sampler needs from a store; ``Run`` (a folder of shards, one store per
writing process) and ``RunSource`` (its shards as one sample source); ``FileLayer``, the one object
every file write goes through (``file_layer()`` the current one, ``use_file_layer`` to swap it);
``FrameStack`` (stacked image observations stored one frame per step:
``ReplayStore.create(..., frames=FrameStack(4))``); ``archive_cache_bytes`` (the memory budget of
decompressed chunks read from compacted segments, for the whole process); whole-store tools: ``verify`` (re-read every
committed byte against its checksums; ``format_findings`` prints the result), ``compact`` and
``compact_tables`` (codecs ``CODECS``, default ``DEFAULT_CODEC``),
``convert`` and ``summarize`` (``format_summary`` prints it). Everything else is private.

The rooms. The folders show the architecture; a room imports only rooms above it in this list
(none import upwards; ``tests/packaging/test_import_cycles.py`` fails on any circle), and each room's
``__init__.py`` is empty, so importing one imports nothing else:

- ``files/``  the file layer (``_fileio``: every open, write, fsync, rename, unlink; ``_h5image``:
  HDF5 files built in memory; ``_mapped``: memory maps; ``_untrusted``: what a store's files say,
  read as data that may be hostile). LevelDB's ``Env``: one seam a test swaps.
- ``format/`` what is on disk and nothing about who reads or writes it: schema, actors, format
  constants, checksums, segments, the commit record, the manifest, telemetry schemas.
  LevelDB's ``table/`` + ``db/log_format``, zarr's ``core/metadata``: the format is its own room.
- ``read/``   the reading role: ``ReplayStore`` (the API both roles share; ``open``/``create`` hand
  out the roles installed below, so the base never imports its subclasses), ``StoreReader``,
  the table views over mapped bytes, frames-once stacks rebuilt on read, format 1 read-only.
- ``write/``  the writing role: ``StoreWriter`` (lock, files, commit policy) and the collaborators
  it is built from: atomic creation, the ``RowStager`` (checks and stages appended rows and
  blocks), the ``FramesStager`` (stacks to frame ids), the table writer, the checks on values. It builds on ``read/`` (a writer reads what it wrote).
- ``sample/`` the ``Sampler`` and what it draws with: strategies, prioritized replay and its
  priorities file, the sum tree, the ``SampleSource`` protocol. Dopamine's
  ``replay_memory/samplers.py`` + ``sum_tree.py``: a sampler returns rows, never calls HDF5.
- ``run/``    many stores as one: ``Run`` (shards) and ``RunSource``.
- ``tools/``  whole-store operations on top of the roles: verify, compact, convert, summary
  (SQLite's shell tools and LevelDB's ``RepairDB`` sit outside the engine the same way).

Why these lines: SQLite and LevelDB both put the OS below the format and the format below the
engine (``os_unix.c`` < pager/btree < vdbe; ``Env`` < ``table/`` < ``db/``); zarr v3 keeps
storage, metadata and the array API in separate packages; Dopamine splits its replay memory into
record types, sampling distributions and the sum tree. Reading sits below writing because a
writer reopens and recovers through the same trust logic a reader uses (``_reader.use_trusted``).
"""

from . import errors
from .format._actors import Actors
from .files._fileio import FileLayer, layer as file_layer, use_layer as use_file_layer
from .format._format import FORMAT_VERSION, TRANSITIONS, store_files
from .read._archive import archive_cache_bytes
from .read._frames import FrameStack
from .format._schema import Column, Schema
from .read._reader import StoreReader
from .sample._sampling_prioritized import Prioritized
from .sample._sampling_source import SampleSource
from .sample._sampling_strategies import SamplingStrategy, Stratified, Uniform
from .read._store import ReplayStore, use_roles
from .write._writer import StoreWriter
from .sample._sampler import Sampler
from .run._run import Run
from .run._run_source import RunSource
from .format._telemetry import TRAIN_SAMPLES, TRAIN_STEPS, train_samples_schema, train_steps_schema
from .tools._verify import format_findings, verify
from .tools._compact import compact, compact_tables
from .format._codec import CODECS, DEFAULT_CODEC
from .tools._convert import convert
from .tools._summary import format_summary, summarize

# ReplayStore.open/create return the roles, which subclass it: handed in here so _store never imports them.
use_roles(reader=StoreReader, writer=StoreWriter, create_framed=StoreWriter._create_framed)
del use_roles

__all__ = ["Actors", "Column", "FORMAT_VERSION", "FrameStack", "ReplayStore", "Sampler", "Schema", "StoreReader", "StoreWriter",
           "TRANSITIONS", "TRAIN_SAMPLES", "TRAIN_STEPS", "errors", "train_samples_schema", "train_steps_schema", "store_files",
           "Prioritized", "SampleSource", "SamplingStrategy", "Stratified", "Uniform", "Run", "RunSource",
           "FileLayer", "file_layer", "use_file_layer", "verify", "format_findings", "compact", "convert", "summarize",
           "format_summary", "archive_cache_bytes", "compact_tables", "CODECS", "DEFAULT_CODEC"]
