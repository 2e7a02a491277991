"""replaystore: the command line over the ``store``, ``agent`` and ``analysis`` packages."""

__version__ = "0.1.0"
