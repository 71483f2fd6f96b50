"""Exported programs (`.pt2`, torch.export) of G_S, and the `ExportedProgramFactory` predictor.

`export_checkpoint(ckpt, out)` traces G_S (eval mode, float32) on a (2, 1, Z, Y, X) example with a
dynamic batch dimension (`torch.export.Dim`), and saves it with `torch.export.save` together with
a small JSON metadata file (`extra_files["zse.json"]`: model kind, margin_px, tile, normalisation,
zse version, source checksum). Z, Y, X are fixed to the checkpoint's tile (default 29 × 128 × 128).
Loading uses `torch.export.load` — no pickled Python code is run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

import zse
from zse.errors import ModelError
from zse.models.checkpoint import build_g_s, load_checkpoint, make_predictor, sha256_file

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
    g = build_g_s(ck)
    t = ck.get("tile", {})
    z, yx = int(t.get("z", 29)), int(t.get("yx", 128))
    tile = tile or (z, yx, yx)
    example = torch.zeros((2, 1, *tile), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    try:
        ep = torch.export.export(g, (example,), dynamic_shapes={"x": {0: batch}})
    except Exception as exc:  # pragma: no cover - depends on torch internals
        raise ModelError(f"torch.export failed for {ckpt}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    meta = {
        "format": "zse-exported-program",
        "model_kind": ck.get("model_kind"),
        "margin_px": ck.get("margin_px"),
        "translation_equivariant": ck.get("translation_equivariant"),
        "tile": list(tile),
        "normalisation": ck.get("normalisation"),
        "zse_version": zse.__version__,
        "source_checksum": sha256_file(ckpt),
        "step": ck.get("step"),
    }
    out = Path(out_pt2)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(ep, out, extra_files={META_NAME: json.dumps(meta)})
    return out


def read_metadata(path: str | Path) -> dict:
    """The zse metadata stored in a .pt2 (empty dict if absent). Loads the program (no code runs)."""
    _, meta = _load(path)
    return meta


def _load(path: str | Path) -> tuple[torch.export.ExportedProgram, dict]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"exported program {path} not found")
    extra = {META_NAME: ""}
    try:
        ep = torch.export.load(path, extra_files=extra)
    except Exception as exc:
        raise ModelError(f"{path} cannot be loaded as a torch.export program (.pt2): {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    try:
        meta = json.loads(extra[META_NAME]) if extra[META_NAME] else {}
    except json.JSONDecodeError:
        meta = {}
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


class ExportedProgramFactory:
    """PredictorFactory (zse.pipeline.infer) for a `.pt2` exported program.

    Picklable. `margin_px` comes from the program's zse metadata (None if it has none). The program
    maps float32 (N, 1, Z, Y, X) in [-1, 1] to the same shape.
    """

    def __init__(self, path: str | Path, name: str | None = None, amp: str | None = None) -> None:
        self.path = str(Path(path))
        ep, meta = _load(self.path)
        #: (Z, Y, X) the program accepts (None = any); `zse enhance` checks its tile against it
        self.input_zyx = check_program_signature(ep, self.path)
        self.name = name or Path(path).name
        self.checksum = sha256_file(self.path)
        m = meta.get("margin_px")
        self.margin_px: int | None = int(m) if m is not None else None
        self.translation_equivariant = bool(meta.get("translation_equivariant", False))
        self.meta = meta
        if amp not in (None, "bf16"):
            raise ModelError(f"amp {amp!r} not supported; valid: None, 'bf16'")
        self.amp = amp

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
        ep, _ = _load(self.path)
        module = ep.module().to(device)
        return make_predictor(module, device, self.amp)
