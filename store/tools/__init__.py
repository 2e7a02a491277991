"""Whole-store operations built on the roles: verify, compact, convert, summary.

Nothing is imported here: the public names are exported by ``replaystore.store``."""
