"""What the parts share, below all of them: the version, the optional extras, progress lines and
the training telemetry (``Telemetry``, TensorBoard scalars).

``replaystore.agent`` and ``replaystore.analysis`` import these from here, and the package face
(``replaystore``, which also holds the command line) re-exports them; nothing here imports the
face, the agent or the analysis, so there is no import circle between the parts and the face.
Only light modules are imported eagerly; ``telemetry`` and ``tensorboard`` load on use.
"""

from ._version import __version__
from .extras import EXTRAS, MissingExtraError, has_extra, require_extra
from .progress import is_terminal, progress, write

__all__ = ["EXTRAS", "MissingExtraError", "__version__", "has_extra", "is_terminal", "progress", "require_extra",
           "write"]
