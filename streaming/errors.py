"""Errors that callers of the engine can cause or see; each says what to change."""

from __future__ import annotations


class StreamingError(Exception):
    """Base class for the engine's domain errors."""


class InvalidRequest(StreamingError, ValueError):
    """A generation request has a field out of range; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ModelLoadError(StreamingError):
    """The configured model cannot be loaded; the message names the setting to change."""
