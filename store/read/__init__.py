"""The reading role: ReplayStore (the API both roles share), StoreReader, the table views over
mapped bytes, and format-1 stores opened read-only.

Nothing is imported here: the public names are exported by ``replaystore.store``."""
