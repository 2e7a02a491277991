"""What is on disk: schema, actors, format constants, checksums, segments, the commit record and
the manifest. Reading and writing both build on it; it knows nothing about either role.

Nothing is imported here: the public names are exported by ``replaystore.store``."""
