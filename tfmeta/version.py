"""The tfmeta version string (read by setup.py and written into tfmeta.json)."""

__version__ = "0.1.0"
