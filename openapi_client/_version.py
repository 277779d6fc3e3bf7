"""The package version, kept in one place (``setup.py`` reads it too)."""
from __future__ import annotations

__version__ = "1.0.0"
