"""The version of pyrobust: read by the package, the CLI, the run records and setup.py."""

__version__ = "0.1.0"
