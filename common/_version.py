"""The package version, in one place: the face, the agent's run metadata and the export's
provenance read it from here (pyproject.toml repeats it for the build)."""

__version__ = "0.2.0"
