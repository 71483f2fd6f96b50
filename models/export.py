"""Exported programs (`.pt2`, torch.export) of G_S, and the `ExportedProgramFactory` predictor.

`export_checkpoint(ckpt, out)` traces G_S (eval mode, float32) on a (2, 1, Z, Y, X) example with a
dynamic batch dimension (`torch.export.Dim`), and saves it with `torch.export.save` together with
a small JSON metadata file (`extra_files["zse.json"]`: model kind, margin_px, tile, normalisation,
zse version, source checksum). Z, Y, X are fixed to the checkpoint's tile (default 29 × 128 × 128).
The example inputs are not stored (an empty `data/sample_inputs/model.pt`), so zse's own archives hold
no pickle at all.

Loading: nothing in a `.pt2` can run code
-----------------------------------------
`torch.export.load` alone is not safe for a file from elsewhere (torch 2.13 says so): it unpickles the
sample inputs (`data/sample_inputs/model.pt`, `torch.load` falling back to `weights_only=False`),
every weight or constant marked `"use_pickle": true` (`weights_only=False`), custom and opaque objects
(`data/constants/custom_obj_*`, `opaque_obj_*`), and AOTInductor shared libraries (`data/aotinductor/`);
and the program's JSON carries code too: shape expressions (`expr_str`) go through `sympy.sympify`
(Python `eval`), `guards_code` is compiled into the module, node targets are looked up as attributes of
`torch`, `math` and `operator` (so `torch.os.system` would resolve), and names, fully qualified names
and `forward_arg_names` end up in generated Python source.

So `_load` never hands the file to torch. It reads the zip itself and builds a new archive in memory
from an allow-list, then calls `torch.export.load` on that copy:

- entries (below one root folder): `archive_format` ("pt2"), `archive_version` (torch's value),
  `byteorder`, `.data/version`, `.data/serialization_id`, `models/model.json`,
  `data/weights/model_weights_config.json` and `weight_<n>`, `data/constants/model_constants_config.json`
  and `tensor_<n>`, `data/sample_inputs/model.pt`, `extra/<name>`; stored (uncompressed), no duplicate
  names. Anything else (pickles, `.so`, other models, legacy `*.pt` weights) is refused.
- weights and constants: every entry `"use_pickle": false` with tensor metadata and a `weight_<n>` /
  `tensor_<n>` file (raw bytes that torch reads as a typed storage; no unpickling).
- sample inputs: must be plain data for `torch.load(weights_only=True)` (zse's checkpoint rule; a
  pickle that would import anything is refused), and the copy gets an empty record instead, which
  torch 2.13 reads as "no example inputs" (`ExportedProgramDeserializer.deserialize`).
- program JSON: `guards_code` empty, no custom objects or named-tuple definitions; node targets only
  `torch.ops.aten.<op>.<overload>` (not `save`, `from_file`) or a fixed set of `operator`/`math`/
  `torch.sym_*` functions; `expr_str` only sympy constructors, symbol names like `s77`, numbers,
  arithmetic and comparisons (checked token by token: no attribute access, subscripts or other
  names); every other string a plain token (letters, digits, `_ . + -`; operator string arguments any
  printable ASCII, which torch's code generator quotes). Node metadata (stack traces, module stacks)
  is dropped from the copy; inference does not use it.
- zse's metadata (`extra/zse.json`) is parsed here as JSON; torch never sees it.

This relies on torch 2.13's loader reading only those entries and fields (torch/export/__init__.py
`load`, torch/export/pt2_archive/_package.py `load_pt2`, torch/_export/serde/serialize.py). A later
torch that writes another layout is refused until this allow-list learns it (fail closed). A crafted
file can still make loading slow or memory-hungry (sympy arithmetic, large tensors); it cannot run code.
Weights holding NaN or ±inf are refused as for checkpoints.

Length (~450 lines): the allow-list checker of a `.pt2` is a security boundary and is kept whole, in
one file, to be read (and reviewed) top to bottom.
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import re
import tokenize
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch.export.pt2_archive import PT2ArchiveWriter
from torch.export.pt2_archive.constants import ARCHIVE_VERSION_VALUE

import zse
from zse.errors import ModelError
from zse.models.checkpoint import (
    bool_from_meta,
    build_g_s,
    check_finite,
    load_checkpoint,
    make_predictor,
    margin_from_meta,
    scale_from_meta,
    sha256_file,
)

META_NAME = "zse.json"


def export_checkpoint(ckpt: str | Path, out_pt2: str | Path, *, tile: tuple[int, int, int] | None = None,
                      max_batch: int = 1024) -> Path:
    """Export G_S of a zse checkpoint as a `.pt2` program with a dynamic batch dimension.

    Args:
        ckpt: zse checkpoint (training or inference kind).
        out_pt2: output path (conventionally ending in .pt2).
        tile: (Z, Y, X) the program accepts; default the checkpoint's tile (29, 128, 128).
    """
    ck = load_checkpoint(ckpt)
    g = build_g_s(ck, ckpt)
    t = ck.get("tile", {})
    z, yx = int(t.get("z", 29)), int(t.get("yx", 128))
    tile = tile or (z, yx, yx)
    example = torch.zeros((2, 1, *tile), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    try:
        ep = torch.export.export(g, (example,), dynamic_shapes={"x": {0: batch}})
    except Exception as exc:  # pragma: no cover - depends on torch internals
        raise ModelError(f"torch.export failed for {ckpt}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    scale = scale_from_meta(ck.get("scale_zyx"), ckpt)
    check_program_output(ep, tuple(tile), scale, ckpt)
    meta = {
        "format": "zse-exported-program",
        "model_kind": ck.get("model_kind"),
        "margin_px": ck.get("margin_px"),
        "translation_equivariant": ck.get("translation_equivariant"),
        "tile": list(tile),
        "scale_zyx": list(scale),
        "normalisation": ck.get("normalisation"),
        "zse_version": zse.__version__,
        "source_checksum": sha256_file(ckpt),
        "step": ck.get("step"),
    }
    out = Path(out_pt2)
    out.parent.mkdir(parents=True, exist_ok=True)
    ep.example_inputs = None  # no pickled sample inputs: the archive holds only JSON and raw tensors
    torch.export.save(ep, out, extra_files={META_NAME: json.dumps(meta)})
    return out


def read_metadata(path: str | Path) -> dict:
    """The zse metadata stored in a .pt2 (empty dict if absent). Checks the whole archive (no code runs)."""
    return _sanitised_archive(Path(path))[1]


# ---------------------------------------------------------------- safe loading (see the module docstring)

_FIXED_ENTRIES = frozenset({"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id",
                            "models/model.json", "data/weights/model_weights_config.json",
                            "data/constants/model_constants_config.json", "data/sample_inputs/model.pt"})
_ENTRY = re.compile(r"data/weights/weight_\d+|data/constants/tensor_\d+|extra/[A-Za-z0-9_.+-]+")
_TOKEN = re.compile(r"[A-Za-z0-9_.+-]*")
_PRINTABLE = re.compile(r"[ -~]*")
_ATEN_TARGET = re.compile(r"torch\.ops\.aten\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)")
_DENIED_ATEN = frozenset({"save", "from_file", "_print", "warn"})
_OTHER_TARGETS = frozenset(
    [f"_operator.{n}" for n in ("add", "sub", "mul", "floordiv", "truediv", "mod", "pow", "neg", "pos", "abs", "eq",
                                "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor", "not_", "invert", "getitem")]
    + [f"torch.{n}" for n in ("sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "sym_ite", "sym_sqrt",
                              "sym_sum", "_sym_sqrt")]
    + [f"math.{n}" for n in ("ceil", "floor", "trunc", "sqrt")])
_SYMPY_NAMES = frozenset({
    # constructors sympy's srepr writes, and the functions torch's deserializer passes to sympify
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "floor", "ceiling",
    "sqrt", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan",
    "Equality", "Unequality", "And", "Or", "Not", "Piecewise", "ExprCondPair", "true", "false", "oo", "zoo", "nan",
    "Infinity", "NegativeInfinity", "IntInfinity", "NegativeIntInfinity", "int_oo", "One", "Zero", "NegativeOne", "Half",
    "BooleanTrue", "BooleanFalse", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt",
    "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat",
    "Identity", "OpaqueUnaryFn_sqrt",
    # keyword arguments and literals
    "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "nonzero", "zero", "even",
    "odd", "commutative", "precision", "evaluate", "True", "False", "None"})
_SYMBOL_NAME = re.compile(r"[a-z]+\d+")
_EXPR_OPS = frozenset({"(", ")", ",", "+", "-", "*", "/", "//", "%", "**", "=", "<", ">", "<=", ">=", "==", "!=",
                       "&", "|", "~", "^"})
_MAX_EXPR = 4000


class _Refused(Exception):
    """Something in the archive that could run code or is outside the allowed layout (message: what)."""


class _Malformed(Exception):
    """The archive is not a readable torch.export program (message: what)."""


def _check_expr(expr: str) -> None:
    """Refuse a shape expression that is more than sympy constructors, symbols, numbers and arithmetic."""
    if len(expr) > _MAX_EXPR or "\n" in expr or "\r" in expr:
        raise _Refused(f"a shape expression (expr_str) of {len(expr)} characters or with line breaks")
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expr).readline))
    except (tokenize.TokenError, SyntaxError) as exc:
        raise _Refused(f"a shape expression (expr_str) that does not tokenize ({exc})") from None
    for tok in tokens:
        if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.NUMBER):
            continue
        ok = ((tok.type == tokenize.NAME and (tok.string in _SYMPY_NAMES or _SYMBOL_NAME.fullmatch(tok.string)))
              or (tok.type == tokenize.OP and tok.string in _EXPR_OPS)
              or (tok.type == tokenize.STRING and len(tok.string) >= 2 and tok.string[0] == tok.string[-1]
                  and tok.string[0] in "'\"" and _TOKEN.fullmatch(tok.string[1:-1])))
        if not ok:
            raise _Refused(f"code in a shape expression (expr_str {expr[:60]!r}: {tok.string[:30]!r} is not a sympy "
                           "constructor, symbol, number or operator); torch would evaluate it with sympify (eval)")


def _check_target(target: str) -> None:
    m = _ATEN_TARGET.fullmatch(target)
    if (m and m.group(1) not in _DENIED_ATEN) or target in _OTHER_TARGETS:
        return
    raise _Refused(f"a graph node calling {target[:80]!r}; only torch.ops.aten operators (not save, from_file) and "
                   "basic operator/math/torch.sym_* functions are loaded")


def _check_strings(obj: Any, key: str = "") -> None:
    """Walk the program JSON: every key and string value a plain token, except the fields torch treats as
    code or text (checked by their own rules)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str) or not _TOKEN.fullmatch(k):
                raise _Refused(f"a program key {str(k)[:60]!r} with characters other than letters, digits, '_.+-'")
            if k == "expr_str":
                if not isinstance(v, str):
                    raise _Malformed(f"expr_str {v!r} is not a string")
                _check_expr(v)
            elif k in ("target", "as_operator") and isinstance(v, str):
                _check_target(v)
            elif k in ("as_string", "as_strings"):
                for text in v if isinstance(v, list) else [v]:
                    if not isinstance(text, str) or not _PRINTABLE.fullmatch(text):
                        raise _Refused(f"a string argument {str(text)[:60]!r} with control or non-ASCII characters")
            elif k in ("in_spec", "out_spec", "context") and isinstance(v, str):
                try:
                    parsed = json.loads(v)
                except json.JSONDecodeError:
                    if not _TOKEN.fullmatch(v):
                        raise _Refused(f"a {k} {v[:60]!r} that is neither JSON nor a plain token") from None
                    continue
                _check_strings(parsed, k)
            elif k in ("custom_obj_values", "treespec_namedtuple_fields") and v:
                raise _Refused(f"{k} (custom objects or types, which torch would build from the file)")
            elif k in ("as_custom_obj", "as_graph"):
                raise _Refused(f"a {k} argument (custom objects or sub-graphs of higher-order operators)")
            else:
                _check_strings(v, k)
    elif isinstance(obj, list):
        for v in obj:
            _check_strings(v, key)
    elif isinstance(obj, str):
        if not _TOKEN.fullmatch(obj):
            raise _Refused(f"a string {obj[:60]!r} in '{key}' with characters other than letters, digits, '_.+-' "
                           "(torch puts names into generated Python source)")
    elif not (obj is None or isinstance(obj, (bool, int, float))):
        raise _Malformed(f"an unexpected JSON value in '{key}'")


def _check_program(program: Any) -> dict:
    """The program JSON with node metadata dropped, after the checks of the module docstring."""
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _Malformed("models/model.json is not a serialized ExportedProgram")
    if program.get("guards_code"):
        raise _Refused("guards_code (Python source that torch compiles into the module)")
    gm = program["graph_module"]
    graph = gm.get("graph")
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise _Malformed("models/model.json has no graph nodes")
    for node in graph["nodes"]:
        if not isinstance(node, dict):
            raise _Malformed("a graph node is not an object")
        node["metadata"] = {}
    gm["metadata"] = {}
    _check_strings(program)
    return program


def _check_payload_config(cfg: Any, kind: str, prefix: str, files: set[str]) -> dict:
    """A weights/constants config: every entry raw tensor data (`use_pickle` false) in a `<prefix><n>` file."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("config"), dict):
        raise _Malformed(f"data/{kind}s/model_{kind}s_config.json is not a payload config")
    for fqn, meta in cfg["config"].items():
        if not isinstance(meta, dict):
            raise _Malformed(f"{kind} '{fqn}' has no metadata")
        if meta.get("use_pickle") is not False:
            raise _Refused(f"{kind} '{str(fqn)[:80]}' marked as a pickle ('use_pickle': {meta.get('use_pickle')!r}), "
                           "which torch would load with torch.load(weights_only=False)")
        name = meta.get("path_name")
        if not isinstance(name, str) or not re.fullmatch(prefix + r"\d+", name):
            raise _Refused(f"{kind} '{str(fqn)[:80]}' stored as {str(name)[:60]!r}, not a raw tensor file {prefix}<n> "
                           "(custom and opaque objects are pickles)")
        if name not in files:
            raise _Malformed(f"{kind} '{fqn}' points to data/{kind}s/{name}, which the archive lacks")
        if not isinstance(meta.get("tensor_meta"), dict):
            raise _Malformed(f"{kind} '{fqn}' has no tensor metadata")
    _check_strings(cfg)
    return cfg


def _check_sample_inputs(data: bytes) -> None:
    """Sample inputs must be plain data for the safe unpickler (they are not used: the copy drops them)."""
    if not data:
        return
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "GLOBAL" in ln or "global" in ln), lines[-1] if lines else "")
        raise _Refused(f"sample inputs (data/sample_inputs/model.pt) that would import or run code when unpickled "
                       f"({detail[:160]})") from None
    except Exception as exc:
        raise _Malformed(f"sample inputs (data/sample_inputs/model.pt) unreadable: {type(exc).__name__}") from None


def _sanitised_archive(path: Path) -> tuple[io.BytesIO, dict]:
    """Check the archive at `path` against the allow-list and return (an in-memory copy holding only what
    passed, zse's metadata). Raises ModelError (one line, naming `path`)."""
    if not path.is_file():
        raise ModelError(f"exported program {path} not found")
    try:
        return _sanitise(path)
    except _Refused as exc:
        raise ModelError(f"{path} was refused: it holds {exc}; zse loads only plain torch.export programs (a JSON "
                         "graph and raw tensors), so that no code in a model file runs") from None
    except _Malformed as exc:
        raise ModelError(f"{path} cannot be loaded as a torch.export program (.pt2): {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ModelError(f"{path} cannot be loaded as a torch.export program (.pt2): {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}") from None


def _sanitise(path: Path) -> tuple[io.BytesIO, dict]:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if not names:
            raise _Malformed("empty zip archive")
        root = names[0].split("/", 1)[0]
        rels: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            head, _, rel = info.filename.partition("/")
            if head != root or not rel or info.is_dir():
                raise _Malformed(f"entry {info.filename[:80]!r} is not a file below the archive's root folder {root!r}")
            if rel in rels:
                raise _Refused(f"two entries named {rel!r}")
            rels[rel] = info
        if "archive_format" not in rels or zf.read(rels["archive_format"]) != b"pt2":
            raise _Malformed("no archive_format 'pt2' record (a torch.save file or another zip, not torch.export.save)")
        for rel, info in rels.items():
            if rel not in _FIXED_ENTRIES and not _ENTRY.fullmatch(rel):
                raise _Refused(f"{rel!r}, which is not part of a torch.export program's layout (pickles, shared "
                               "libraries, other models and legacy .pt weights are never loaded)")
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise _Malformed(f"entry {rel!r} is compressed or encrypted; torch.export.save stores entries plainly")
        version = zf.read(rels["archive_version"]).decode() if "archive_version" in rels else None
        if version != ARCHIVE_VERSION_VALUE:
            raise _Malformed(f"archive version {version!r}; this torch ({torch.__version__}) reads {ARCHIVE_VERSION_VALUE!r}")
        for required in ("models/model.json", "data/weights/model_weights_config.json",
                         "data/constants/model_constants_config.json"):
            if required not in rels:
                raise _Malformed(f"no {required}")

        def read_json(rel: str) -> Any:
            return json.loads(zf.read(rels[rel]).decode("utf-8"))

        files = {rel.rsplit("/", 1)[1] for rel in rels if rel.startswith("data/")}
        weights = _check_payload_config(read_json("data/weights/model_weights_config.json"), "weight", "weight_", files)
        constants = _check_payload_config(read_json("data/constants/model_constants_config.json"), "constant",
                                          "tensor_", files)
        program = _check_program(read_json("models/model.json"))
        if "data/sample_inputs/model.pt" in rels:
            _check_sample_inputs(zf.read(rels["data/sample_inputs/model.pt"]))
        meta: Any = {}
        if f"extra/{META_NAME}" in rels:
            try:
                meta = read_json(f"extra/{META_NAME}")
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _Malformed(f"its zse metadata (extra/{META_NAME}) is not JSON: {exc}") from None
            if not isinstance(meta, dict):
                raise _Malformed(f"its zse metadata (extra/{META_NAME}) is a {type(meta).__name__}, not an object")

        buf = io.BytesIO()
        with PT2ArchiveWriter(buf) as out:
            out.write_string("archive_format", "pt2")
            out.write_string("archive_version", ARCHIVE_VERSION_VALUE)
            out.write_string("models/model.json", json.dumps(program))
            out.write_string("data/weights/model_weights_config.json", json.dumps(weights))
            out.write_string("data/constants/model_constants_config.json", json.dumps(constants))
            for kind, cfg in (("weights", weights), ("constants", constants)):
                for name in sorted({m["path_name"] for m in cfg["config"].values()}):
                    out.write_bytes(f"data/{kind}/{name}", zf.read(rels[f"data/{kind}/{name}"]))
            out.write_bytes("data/sample_inputs/model.pt", b"")  # read by torch as "no example inputs"
    buf.seek(0)
    return buf, meta


@contextmanager
def _quiet_torch_export_logs() -> Iterator[None]:
    """torch.export.load logs a failed archive read with its traceback on stderr; zse reports one line."""
    loggers = [logging.getLogger(n) for n in ("torch.export", "torch._export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _load(path: str | Path) -> tuple[torch.export.ExportedProgram, dict]:
    """The program in `path` and its zse metadata, loaded from the checked in-memory copy (no code runs)."""
    path = Path(path)
    archive, meta = _sanitised_archive(path)
    try:
        with _quiet_torch_export_logs():
            ep = torch.export.load(archive)
    except Exception as exc:
        raise ModelError(f"{path} cannot be loaded as a torch.export program (.pt2): {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    check_finite({**ep.state_dict, **ep.constants}, path)
    return ep, meta


def check_program_signature(ep: torch.export.ExportedProgram, path: str | Path) -> tuple[int | None, int | None, int | None]:
    """Refuse a program that cannot take zse's batches: one input (N, 1, Z, Y, X) with a dynamic N.

    Returns the (Z, Y, X) the program accepts, None where the dimension is dynamic.
    """
    user = set(ep.graph_signature.user_inputs)
    shapes = [tuple(n.meta["val"].shape) for n in ep.graph.nodes
              if n.op == "placeholder" and n.name in user and hasattr(n.meta.get("val"), "shape")]
    if len(shapes) != 1 or len(shapes[0]) != 5:
        raise ModelError(f"{path}: the exported program takes inputs of shapes {shapes}; zse needs one float32 input "
                         "(N, 1, Z, Y, X)")
    if not isinstance(shapes[0][0], torch.SymInt):
        raise ModelError(f"{path}: the exported program has a fixed batch size {shapes[0][0]}; re-export it with a dynamic "
                         "batch dimension: torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))")
    return tuple(None if isinstance(d, torch.SymInt) else int(d) for d in shapes[0][2:])  # type: ignore[return-value]


def check_program_output(ep: torch.export.ExportedProgram, input_zyx: tuple[int | None, ...], scale: tuple[int, int, int],
                         path: str | Path) -> None:
    """Refuse a program whose output is not (N, 1, Z·sz, Y·sy, X·sx) for its (static) input (Z, Y, X)."""
    outs = [n for n in ep.graph.nodes if n.op == "output"]
    args = outs[0].args[0] if outs and outs[0].args else ()
    first = args[0] if isinstance(args, (tuple, list)) and args else None
    val = getattr(first, "meta", {}).get("val") if first is not None else None
    if val is None or not hasattr(val, "shape"):
        return  # no recorded shape to check against (older programs)
    shape = tuple(None if isinstance(d, torch.SymInt) else int(d) for d in val.shape)
    want = tuple(None if z is None else int(z) * int(s) for z, s in zip(input_zyx, scale, strict=True))
    if len(shape) != 5 or shape[1] != 1 or any(a is not None and b is not None and a != b for a, b in zip(shape[2:], want, strict=True)):
        raise ModelError(f"{path}: the program maps input shape (N, 1, {', '.join(map(str, input_zyx))}) to output shape "
                         f"{shape}; with scale_zyx {list(scale)} zse expects (N, 1, {', '.join(map(str, want))})")


class ExportedProgramFactory:
    """PredictorFactory (zse.pipeline.infer) for a `.pt2` exported program.

    Picklable. `margin_px` comes from the program's zse metadata (None if it has none). The program
    maps float32 (N, 1, Z, Y, X) in [-1, 1] to (N, 1, Z·sz, Y·sy, X·sx), `scale_zyx` from the metadata
    (absent: (1, 1, 1), the same shape).
    """

    def __init__(self, path: str | Path, name: str | None = None, amp: str | None = None) -> None:
        self.path = str(Path(path))
        ep, meta = _load(self.path)
        #: (Z, Y, X) the program accepts (None = any); `zse enhance` checks its tile against it
        self.input_zyx = check_program_signature(ep, self.path)
        self.core_px: int | None = None
        self.name = name or Path(path).name
        self.checksum = sha256_file(self.path)
        self.margin_px: int | None = margin_from_meta(meta.get("margin_px"), self.path)
        #: output size / input size per axis (z, y, x): the program maps (N, 1, Z, Y, X) to (N, 1, Z·sz, Y·sy, X·sx)
        self.scale_zyx: tuple[int, int, int] = scale_from_meta(meta.get("scale_zyx"), self.path)
        check_program_output(ep, self.input_zyx, self.scale_zyx, self.path)
        self.translation_equivariant = bool_from_meta(meta.get("translation_equivariant"), "translation_equivariant",
                                                      self.path)
        self.meta = meta
        if amp not in (None, "bf16"):
            raise ModelError(f"amp {amp!r} not supported; valid: None, 'bf16'")
        self.amp = amp

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
        ep, _ = _load(self.path)
        module = ep.module().to(device)
        return make_predictor(module, device, self.amp)
