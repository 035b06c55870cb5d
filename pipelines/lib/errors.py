"""The one error type of the reading library: a raw file that cannot be read at all."""

from __future__ import annotations


class IngestionError(Exception):
    """A raw file cannot be read at all. The message names the file (and line when known)."""
