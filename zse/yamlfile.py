"""YAML for zse: the one reader of YAML files (training configurations, cluster profiles) and of YAML
values given on the command line (`zse train --set KEY=VALUE`).

Every failure is a `zse.errors.ConfigError` with a one-line message naming the file (or value) and
the problem: not UTF-8 (the byte and its offset), unreadable, not YAML (the parser's problem with its
line and column, 1-based), or not a mapping of settings (the type found).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from zse.errors import ConfigError, one_line


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML parse error: the problem and where (line, column, 1-based)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    what = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return one_line(f"{what}{where}", 200)


def parse_yaml_value(text: str, what: str) -> Any:
    """`text` parsed as one YAML value (`yaml.safe_load`); `what` names it in the error, e.g. "--set 'a=['".

    Raises:
        ConfigError: "<what>: the value is not valid YAML (<problem> at line L, column C)".
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what}: the value is not valid YAML ({yaml_problem(exc)})") from None


def load_yaml_mapping(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The mapping in the YAML file `path` (UTF-8; an empty document, or any false one, is {}).

    `what` names the file in messages, which read "<what> <path> ...", e.g. what="configuration" or
    what="--profile".

    Raises:
        ConfigError: not UTF-8 (byte and offset), unreadable, not valid YAML (line and column), or a
            document that is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not a UTF-8 text file (byte 0x{exc.object[exc.start]:02x} at offset "
                          f"{exc.start}); expected a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must be a mapping, got {type(data).__name__}")
    return data
