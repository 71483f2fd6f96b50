"""Errors a user can act on.

Every error zse raises for bad input, bad options or an unusable file derives from `ZseError`. The CLI
prints such an error as one line on stderr (no traceback) and exits with status 2. Messages say what
was given, what is valid, and where (path, array, block).
"""

from __future__ import annotations


class ZseError(Exception):
    """Base class: an error the user can fix. Its message is shown as one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self):  # picklable across Dask workers with subclasses keeping their type
        return (type(self), (self.message,))


class InputError(ZseError):
    """The input (image, dataset, config file) is missing, malformed or unsupported."""


class OutputError(ZseError):
    """The output location cannot be used (exists without --overwrite, incompatible resume, ...)."""


class ModelError(ZseError):
    """A model name, checkpoint or exported program cannot be used."""


class ConfigError(ZseError):
    """An option or configuration value is invalid."""
