"""The package version, kept in one place (``setup.py`` reads it too)."""

__version__ = "1.0.0"
