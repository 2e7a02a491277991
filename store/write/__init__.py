"""The writing role: StoreWriter, atomic creation, the one-row append, blocks, the table writer
and the checks on values entering the store.

Nothing is imported here: the public names are exported by ``replaystore.store``."""
