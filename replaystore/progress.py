"""``replaystore.progress``: the progress helper, kept under its old public name.

It lives in ``replaystore.common.progress`` (below the agent and the analysis, which use it);
this module re-exports it so existing imports keep working.
"""

from replaystore.common.progress import PlainProgress, is_terminal, progress, write

__all__ = ["PlainProgress", "is_terminal", "progress", "write"]
