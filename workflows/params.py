"""Parsing command-line values: the one home of the text forms of shapes, triples and lists.

Each parser raises a one-line `ConfigError` naming the flag, what was given and what is valid.
"""

from __future__ import annotations

import math

from zse.errors import ConfigError

SHAPE_HINT = "Z,Y,X integers with Z >= 3 and Y, X >= 1, e.g. 29,1024,1024"


def parse_shape(value: str, flag: str = "--shape") -> tuple[int, int, int]:
    """`"Z,Y,X"` (or `"ZxYxX"`) → (Z, Y, X) voxels, Z ≥ 3 planes, Y, X ≥ 1."""
    try:
        parts = tuple(int(v) for v in value.replace("x", ",").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or parts[0] < 3 or parts[1] < 1 or parts[2] < 1:
        raise ConfigError(f"{flag} {value!r} is invalid; valid: {SHAPE_HINT}")
    return parts[0], parts[1], parts[2]


def parse_triple(text: str | None, flag: str, *, positive: bool) -> tuple[float, float, float] | None:
    """`"Z,Y,X"` (micrometres) → three finite floats (positive where `positive`); None stays None."""
    if text is None:
        return None
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    ok = len(values) == 3 and all(math.isfinite(v) and (v > 0 or not positive) for v in values)
    if not ok:
        kind = "positive numbers" if positive else "numbers"
        raise ConfigError(f"{flag} {text!r} is invalid; give three {kind} Z,Y,X in micrometres, e.g. {flag} 1.0,0.25,0.25")
    return (values[0], values[1], values[2])


def parse_list(value: str, flag: str) -> list[str]:
    """`"a,b,c"` → ["a", "b", "c"] (blanks dropped); an empty list is refused."""
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{flag} {value!r} is empty; give a comma-separated list")
    return items
