"""The forensic notebook, shipped with the package: ``replaystore notebook STORE --out report.ipynb``
runs ``forensics.ipynb`` on any store (``importlib.resources.files("replaystore.notebooks")``)."""
