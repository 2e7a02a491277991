"""replaystore: an RL replay buffer kept as a persistent, auditable record.

The everyday names live here; the three parts are ``replaystore.store`` (the file, the writer,
the readers, the sampler), ``replaystore.agent`` (the demo hybrid DQN, needs the ``[agent]``
extra: torch and gymnasium) and ``replaystore.analysis`` (loaders, audit, plots, comparisons).

>>> import replaystore as rs
>>> rs.ReplayStore is rs.store.ReplayStore and rs.audit is rs.analysis.audit
True

Names are imported on first use, so ``import replaystore`` stays cheap (the command line, a
reader in a notebook) and the audit's pandas is loaded only when an audit runs.
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

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
    "Telemetry": ("replaystore._telemetry", "Telemetry"),
    "TelemetryError": ("replaystore._telemetry", "TelemetryError"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'replaystore' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
