"""Runs: a folder of shards, one store per writing process, and its shards as one sample source.

Nothing is imported here: the public names are exported by ``replaystore.store``."""
