"""replaystore: an RL replay buffer kept as a persistent, auditable record.

The everyday names live here; the three parts are ``replaystore.store`` (the file, the writer,
the readers, the sampler), ``replaystore.agent`` (the demo hybrid DQN, needs the ``[agent]``
extra: torch and gymnasium) and ``replaystore.analysis`` (loaders, audit, plots, comparisons);
below them all, ``replaystore.common`` (version, optional extras, progress, ``Telemetry``).

>>> import replaystore as rs
>>> rs.ReplayStore is rs.store.ReplayStore and rs.audit is rs.analysis.audit
True

Names are imported on first use, so ``import replaystore`` stays cheap (the command line, a
reader in a notebook) and the audit's pandas is loaded only when an audit runs. Everything in
``__all__`` works with the core install alone; ``replaystore.agent`` needs the ``[agent]`` extra
and is therefore not in ``__all__`` (``from replaystore import *`` and ``help(replaystore)``
must not need torch): import it by name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from replaystore.common import __version__ as __version__

if TYPE_CHECKING:  # what a type checker sees of the lazily imported names below ("X as X": re-exported)
    from replaystore import analysis as analysis
    from replaystore import store as store
    from replaystore.analysis import AuditReport as AuditReport
    from replaystore.analysis import audit as audit
    from replaystore.analysis import compare as compare
    from replaystore.analysis import load_train_samples as load_train_samples
    from replaystore.analysis import load_train_steps as load_train_steps
    from replaystore.analysis import load_transitions as load_transitions
    from replaystore.common.extras import MissingExtraError as MissingExtraError
    from replaystore.common.telemetry import Telemetry as Telemetry
    from replaystore.common.telemetry import TelemetryError as TelemetryError
    from replaystore.store import FORMAT_VERSION as FORMAT_VERSION
    from replaystore.store import Actors as Actors
    from replaystore.store import Column as Column
    from replaystore.store import ReplayStore as ReplayStore
    from replaystore.store import Run as Run
    from replaystore.store import Sampler as Sampler
    from replaystore.store import Schema as Schema
    from replaystore.store import errors as errors

# public name -> (module, attribute or None for the module itself)
_EXPORTS = {
    "store": ("replaystore.store", None),
    "analysis": ("replaystore.analysis", None),
    "agent": ("replaystore.agent", None),
    "errors": ("replaystore.store.errors", None),
    "ReplayStore": ("replaystore.store", "ReplayStore"),
    "Schema": ("replaystore.store", "Schema"),
    "Column": ("replaystore.store", "Column"),
    "Actors": ("replaystore.store", "Actors"),
    "Sampler": ("replaystore.store", "Sampler"),
    "Run": ("replaystore.store", "Run"),
    "FORMAT_VERSION": ("replaystore.store", "FORMAT_VERSION"),
    "audit": ("replaystore.analysis", "audit"),
    "AuditReport": ("replaystore.analysis", "AuditReport"),
    "compare": ("replaystore.analysis", "compare"),
    "load_transitions": ("replaystore.analysis", "load_transitions"),
    "load_train_steps": ("replaystore.analysis", "load_train_steps"),
    "load_train_samples": ("replaystore.analysis", "load_train_samples"),
    "Telemetry": ("replaystore.common.telemetry", "Telemetry"),
    "TelemetryError": ("replaystore.common.telemetry", "TelemetryError"),
    "MissingExtraError": ("replaystore.common.extras", "MissingExtraError"),
}

# the agent needs torch: reachable as replaystore.agent, but not pulled in by `import *` or dir()
_NEEDS_EXTRA = {"agent"}

__all__ = ["__version__", *(n for n in _EXPORTS if n not in _NEEDS_EXTRA)]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'replaystore' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
