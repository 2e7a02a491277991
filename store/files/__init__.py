"""The file layer: every open, write, fsync, rename and unlink of the store's files (LevelDB's Env).

Nothing is imported here: the public names are exported by ``replaystore.store``."""
