"""Errors a user can act on.

Every error zse raises for bad input, bad options or an unusable file derives from `ZseError`. The CLI
prints such an error as one line on stderr (no traceback) and exits with status 2. Messages say what
was given, what is valid, and where (path, array, block).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


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


def one_line(text: object, limit: int = 120) -> str:
    """`text` with its whitespace runs (newlines included) collapsed, cut to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def validation_message(exc: ValidationError, prefix: str = "") -> str:
    """One line for a pydantic error: every failing key (dotted, under `prefix`) with what was wrong and
    what was given. The one place zse turns validation errors (options, configs, cluster profiles,
    checkpoint architectures, simulator and baseline parameters) into text."""
    parts = []
    for err in exc.errors():
        loc = ".".join([prefix] * bool(prefix) + [str(e) for e in err["loc"]]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            parts.append(f"'{loc}': {one_line(msg, 240)} (given {one_line(repr(err.get('input')), 80)})")
    return "; ".join(parts)
