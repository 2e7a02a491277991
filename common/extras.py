"""Optional extras: which feature needs which ``pip install 'replaystore[EXTRA]'``, said in one line.

The core (the store, the sampler's numpy batches, the audit) needs only what ``pip install
replaystore`` installs. Everything else is an extra, and a feature that needs one checks for it
*before* it creates anything, so a missing extra costs one clear line and leaves no half-made
output behind:

>>> from replaystore.common.extras import EXTRAS, MissingExtraError
>>> sorted(EXTRAS)
['agent', 'archive', 'dask', 'notebook', 'parquet', 'ray', 'remote', 's3', 'tensorboard']
>>> str(MissingExtraError("replaystore train", "agent", "torch"))
"replaystore train needs the [agent] extra (torch is not installed): pip install 'replaystore[agent]'"

The check looks modules up (``importlib.util.find_spec``) without importing them, so asking is
cheap even for torch.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRAS", "MissingExtraError", "has_extra", "missing_modules", "require_extra"]

# extra -> the modules it must make importable (pyproject.toml's [project.optional-dependencies]
# installs them; a test checks the two agree)
EXTRAS: dict[str, tuple[str, ...]] = {
    "agent": ("torch", "gymnasium"),
    "tensorboard": ("tensorboard",),
    "parquet": ("pyarrow", "fsspec"),
    "s3": ("s3fs",),
    "ray": ("ray",),
    "dask": ("dask", "distributed"),
    "notebook": ("papermill", "nbformat", "nbclient", "ipykernel", "nbconvert"),
    "remote": ("pyarrow",),
    "archive": ("hdf5plugin", "numcodecs"),
}


class MissingExtraError(ImportError):
    """A feature needs an optional extra that is not installed. Also an ``ImportError``.

    ``feature`` (what was asked for), ``extra`` (the extra to install) and ``missing`` (the first
    module not found) are kept as attributes; the message says all three and the pip command.
    """

    def __init__(self, feature: str, extra: str, missing: str) -> None:
        self.feature, self.extra, self.missing = feature, extra, missing
        super().__init__(f"{feature} needs the [{extra}] extra ({missing} is not installed): "
                         f"pip install 'replaystore[{extra}]'", name=missing)

    def __reduce__(self) -> tuple[type[MissingExtraError], tuple[str, str, str]]:  # the three fields, so the error survives a trip through Ray or Dask
        return type(self), (self.feature, self.extra, self.missing)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import, or a module set to None
        return False


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (empty: the extra is installed)."""
    try:
        modules = EXTRAS[extra]
    except KeyError:
        raise ValueError(f"unknown extra {extra!r}; expected one of {sorted(EXTRAS)}") from None
    return [m for m in modules if not _importable(m)]


def has_extra(extra: str) -> bool:
    """True when every module of ``extra`` can be imported."""
    return not missing_modules(extra)


def require_extra(extra: str, feature: str) -> None:
    """Raise ``MissingExtraError`` naming ``extra`` when one of its modules is missing.

    ``feature`` names what needed it, as the user asked for it (``"replaystore export"``,
    ``"export_parquet()"``).
    """
    missing = missing_modules(extra)
    if missing:
        raise MissingExtraError(feature, extra, missing[0])


def from_import_error(e: ImportError, feature: str) -> ImportError:
    """``e`` as a ``MissingExtraError`` when the module it could not find belongs to an extra."""
    top = (getattr(e, "name", None) or "").split(".")[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            return MissingExtraError(feature, extra, top)
    return e
