"""Which files make the z-stack, and in which order: INPUT arguments → files → planes in z order.

`collect_inputs` expands files, folders and glob patterns into files; `order_planes` sorts per-plane
files by the plane number in their names (or by name, as given, or a regex) and checks the numbering.
Reads no file content.
"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Sequence
from functools import reduce
from pathlib import Path
from typing import Any

from zse.errors import ConfigError, InputError

#: File name endings taken from a folder (case-insensitive). Other files in a folder are ignored.
TIFF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".svs", ".btf", ".tf8", ".tf2", ".qptiff")


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand INPUT arguments (files, folders, glob patterns) into a list of files.

    A folder contributes its files whose names end in one of `TIFF_SUFFIXES` (hidden files and other
    files are ignored); a pattern with ``*``, ``?`` or ``[`` that is not an existing path is expanded
    with `glob`. Files given by name are kept even without a TIFF suffix (their content is checked later).
    Order: as given, each folder and pattern sorted by name. Raises `InputError` for a missing path, an
    empty folder or pattern, or a file given twice.
    """
    if not inputs:
        raise InputError("no INPUT given: give a folder of per-plane TIFFs, a glob pattern or TIFF files")
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(TIFF_SUFFIXES)
            )
            if not found:
                raise InputError(
                    f"folder {path} holds no TIFF files (names ending in {', '.join(TIFF_SUFFIXES)})"
                )
            files.extend(found)
        elif path.exists():
            files.append(path)
        elif any(ch in str(item) for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(str(item)) if Path(p).is_file())
            if not matched:
                raise InputError(f"no files match the pattern {item!s}")
            files.extend(matched)
        else:
            raise InputError(f"input {item!s} does not exist (give TIFF files, a folder of them or a glob)")
    seen: dict[Path, Path] = {}
    for f in files:
        key = f.resolve()
        if key in seen:
            raise InputError(f"file {f} is given twice (also as {seen[key]}); give each plane once")
        seen[key] = f
    return files


def _natural_tokens(name: str) -> list[str]:
    return re.split(r"(\d+)", name)


def _natural_key(path: Path) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t.lower() for t in _natural_tokens(path.name))


def _plane_numbers_auto(paths: Sequence[Path]) -> list[int]:
    """The number in the file names that tells the plane (the one numeric field that varies)."""
    tokens = [_natural_tokens(p.name) for p in paths]
    first = tokens[0]
    same_layout = all(
        len(t) == len(first) and all(a == b for a, b in zip(t[0::2], first[0::2], strict=True)) for t in tokens
    )
    example = f"e.g. --order 'z(\\d+)' for names like {paths[0].name}"
    if not same_layout:
        raise InputError(
            f"cannot find a plane number in the file names ({paths[0].name}, {paths[1].name}, ...: their "
            f"text differs); give --order name (natural name order), --order given, or a regex, {example}"
        )
    fields = range(1, len(first), 2)
    varying = [i for i in fields if len({int(t[i]) for t in tokens}) > 1]
    distinct = [i for i in varying if len({int(t[i]) for t in tokens}) == len(tokens)]
    if len(distinct) > 1:  # prefer the number after 'z', 'plane', 'layer', 'focus', 'slice'
        named = [i for i in distinct if re.search(r"(z|plane|layer|focus|slice)[_\-. ]*$", first[i - 1], re.I)]
        if len(named) == 1:
            distinct = named
    if len(distinct) == 1:
        return [int(t[distinct[0]]) for t in tokens]
    if not varying and len(fields):
        dup = _duplicates([int(t[fields[-1]]) for t in tokens], paths)
        raise InputError(f"plane numbers in the file names repeat ({dup}); give each plane once")
    if not varying:
        raise InputError(
            f"cannot find a plane number in the file names ({paths[0].name}, ...: no number differs "
            f"between them); give --order name, --order given, or a regex, {example}"
        )
    if not distinct:
        dup = _duplicates([int(t[varying[0]]) for t in tokens], paths)
        raise InputError(f"plane numbers in the file names repeat ({dup}); give each plane once")
    which = ", ".join(f"the number after {first[i - 1]!r}" for i in distinct)
    raise InputError(
        f"the plane number in the file names is ambiguous ({which} all differ between files); "
        f"give --order with a regex whose group is the plane number, {example}"
    )


def _duplicates(numbers: Sequence[int], paths: Sequence[Path]) -> str:
    byn: dict[int, list[str]] = {}
    for n, p in zip(numbers, paths, strict=True):
        byn.setdefault(n, []).append(p.name)
    dups = [f"{n}: {' and '.join(names)}" for n, names in byn.items() if len(names) > 1]
    return "; ".join(dups[:3])


def order_planes(paths: Sequence[Path], order: str = "number") -> tuple[list[Path], list[int] | None]:
    """Sort per-plane files into z order.

    `order`:
    - ``"number"`` (default): by the plane number in the file names, the one numeric field that differs
      between the names (with several, the one after ``z``/``plane``/``layer``/``focus``/``slice``);
    - ``"name"``: natural name order (``p2`` before ``p10``), no numbering check;
    - ``"given"``: as listed (folders and patterns sorted by name), no numbering check;
    - any other string: a regular expression searched in each file name whose first group is the plane
      number (e.g. ``'_z(\\d+)'``).

    With a plane number, numbers must be distinct and evenly spaced without gaps (step = their greatest
    common divisor, usually 1; the start is free). Returns the sorted paths and their plane numbers
    (None for ``name``/``given``). Raises `InputError` (repeated or missing planes, no number) or
    `ConfigError` (bad regex).
    """
    paths = list(paths)
    if order == "given":
        return paths, None
    if order == "name":
        return sorted(paths, key=_natural_key), None
    if len(paths) == 1:
        return paths, None
    if order == "number":
        numbers = _plane_numbers_auto(paths)
    else:
        try:
            rx = re.compile(order)
        except re.error as exc:
            raise ConfigError(
                f"--order {order!r} is not number, name, given or a valid regular expression ({exc})"
            ) from None
        if rx.groups < 1:
            raise ConfigError(f"--order regex {order!r} needs a group around the plane number, e.g. 'z(\\d+)'")
        numbers = []
        for p in paths:
            m = rx.search(p.name)
            if m is None or not (m.group(1) or "").isdigit():
                raise InputError(f"--order regex {order!r} finds no plane number in the file name {p.name}")
            numbers.append(int(m.group(1)))
    if len(set(numbers)) != len(numbers):
        raise InputError(f"plane numbers in the file names repeat ({_duplicates(numbers, paths)}); give each plane once")
    pairs = sorted(zip(numbers, paths, strict=True), key=lambda t: t[0])
    nums = [n for n, _ in pairs]
    step = reduce(math.gcd, (b - a for a, b in zip(nums, nums[1:], strict=False)))
    expected = range(nums[0], nums[-1] + 1, step)
    if len(expected) != len(nums):
        missing = sorted(set(expected) - set(nums))
        shown = ", ".join(str(m) for m in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise InputError(
            f"plane {'number' if len(missing) == 1 else 'numbers'} {shown} missing from the "
            f"{len(nums)} files numbered {nums[0]}..{nums[-1]} (step {step}); add the missing "
            f"{'file' if len(missing) == 1 else 'files'}, or give --order name to stack the files as they are"
        )
    return [p for _, p in pairs], nums
