"""zse checkpoints: safe loading, inference checkpoints, and the `CheckpointFactory` predictor.

A checkpoint is a plain dict saved with `torch.save` (tensors, numbers, strings, lists, dicts only) and
is always read with `torch.load(weights_only=True)`: a pickle that would import or call anything is
refused with a `ModelError` before any of its code runs.

Keys (FORMAT "zse-checkpoint", VERSION 1):
    format, version, kind ("training" | "inference"), model_kind (e.g. "zse-gan"), arch (generator
    and discriminator config, JSON-like), config (the full training config; training only),
    normalisation, tile {"z", "yx"}, margin_px, translation_equivariant, zse_version, step,
    state {"g_s", ["g_b", "d_s", "d_b"]}, and for training checkpoints optim, sched, pools, rng.
An inference checkpoint (`export_generator`) keeps only G_S (fp32 or fp16) and the metadata.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from zse.errors import ModelError

FORMAT = "zse-checkpoint"
VERSION = 1
NORMALISATION = {"range": [-1.0, 1.0], "uint8": "v/127.5 - 1", "uint16": "v/32767.5 - 1"}


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """Write atomically (temp file + rename), so an interrupted save never leaves a broken file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a zse checkpoint with `torch.load(weights_only=True)`.

    Raises:
        ModelError: missing file, unsafe pickle (never executed), not a zse checkpoint (e.g. a bare
            state_dict), or an unsupported format version.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "GLOBAL" in ln or "global" in ln), None)
        if detail is None:  # not a refused import: a corrupt or foreign pickle
            detail = next((ln for ln in lines if ln.startswith("Unsupported")), lines[-1] if lines else "")
            raise ModelError(f"checkpoint {path} cannot be read by the safe loader ({detail}); expected a zse checkpoint") from None
        raise ModelError(
            f"checkpoint {path} was refused: it would import or run code when loaded ({detail}); only plain-data "
            f"zse checkpoints are loaded (torch.load weights_only=True)"
        ) from None
    except Exception as exc:  # zip/format errors, truncated files
        raise ModelError(f"checkpoint {path} cannot be read as a torch file ({type(exc).__name__}: {exc}); expected a zse checkpoint") from None
    if not isinstance(obj, dict):
        raise ModelError(f"checkpoint {path} holds a {type(obj).__name__}; expected a zse checkpoint dict (format '{FORMAT}')")
    if obj.get("format") != FORMAT:
        keys = ", ".join(sorted(str(k) for k in list(obj)[:6]))
        what = "a bare state_dict" if obj and all(isinstance(v, torch.Tensor) for v in obj.values()) else "a dict"
        raise ModelError(
            f"checkpoint {path} is {what} (keys: {keys}{', …' if len(obj) > 6 else ''}), not a zse checkpoint; "
            f"expected format '{FORMAT}' written by `zse train` or `export_generator`"
        )
    if obj.get("version") != VERSION:
        raise ModelError(f"checkpoint {path} has format version {obj.get('version')}; this zse reads version {VERSION}")
    for key in ("arch", "state", "model_kind"):
        if key not in obj:
            raise ModelError(f"checkpoint {path} lacks '{key}'; it is incomplete or corrupt")
    if "g_s" not in obj["state"]:
        raise ModelError(f"checkpoint {path} has no G_S weights (state.g_s)")
    return obj


def build_g_s(ckpt: dict[str, Any]) -> torch.nn.Module:
    """The enhancing network of a loaded checkpoint (ZSE-GAN's G_S, unet3d-gan's U-Net: both stored
    under state.g_s), float32, eval mode, on CPU."""
    from zse.models.config import ArchConfig
    from zse.models.networks import build_enhancer

    try:
        arch = ArchConfig.model_validate(ckpt["arch"])
    except Exception as exc:
        raise ModelError(f"checkpoint architecture is not understood by this zse: {exc}") from None
    g = build_enhancer(arch)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state"]["g_s"].items()}
    try:
        g.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"checkpoint weights do not match its architecture: {str(exc).splitlines()[0]}") from None
    return g.eval()


def export_generator(ckpt_path: str | Path, out: str | Path, *, dtype: str = "float32") -> Path:
    """Write an inference checkpoint: G_S weights (float32 or float16) and the metadata only.

    ~1.9 MB (fp32) for zse-gan, ~5.9 MB for zse-gan-paper. `CheckpointFactory` reads both kinds.
    """
    if dtype not in ("float32", "float16"):
        raise ModelError(f"export dtype {dtype!r} not supported; valid: float32, float16")
    ck = load_checkpoint(ckpt_path)
    tdtype = torch.float16 if dtype == "float16" else torch.float32
    state = {k: (v.to(tdtype) if v.is_floating_point() else v).contiguous() for k, v in ck["state"]["g_s"].items()}
    keep = ("format", "version", "model_kind", "arch", "normalisation", "tile", "margin_px", "translation_equivariant",
            "zse_version", "step")
    obj = {k: ck[k] for k in keep if k in ck}
    obj.update({"kind": "inference", "state": {"g_s": state}, "weights_dtype": dtype})
    if "config" in ck:
        obj["train_config"] = ck["config"]
    save_checkpoint(obj, out)
    return Path(out)


class CheckpointFactory:
    """PredictorFactory (zse.pipeline.infer) for a zse checkpoint (training or inference kind).

    Picklable (plain attributes only). `build(device)` loads G_S once and returns a predictor
    float32 (N, 1, Z, Y, X) in [-1, 1] → same shape, eval mode, under `torch.inference_mode`.
    `amp="bf16"` runs the network under bf16 autocast (output cast back to float32).
    """

    def __init__(self, path: str | Path, name: str | None = None, amp: str | None = None) -> None:
        self.path = str(Path(path))
        ck = load_checkpoint(self.path)
        self.name = name or Path(path).name
        self.checksum = sha256_file(self.path)
        m = ck.get("margin_px")
        self.margin_px: int | None = int(m) if m is not None else None
        self.translation_equivariant = bool(ck.get("translation_equivariant", False))
        self.model_kind = str(ck["model_kind"])
        self.tile = dict(ck.get("tile", {}))
        if amp not in (None, "bf16"):
            raise ModelError(f"amp {amp!r} not supported; valid: None, 'bf16'")
        self.amp = amp

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
        g = build_g_s(load_checkpoint(self.path)).to(device)
        return make_predictor(g, device, self.amp)


def make_predictor(module: Callable[[torch.Tensor], torch.Tensor], device: str, amp: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Wrap a module as a predictor: float32 in, float32 out, inference mode, optional bf16 autocast."""
    dev_type = torch.device(device).type

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if amp == "bf16":
                with torch.autocast(device_type=dev_type, dtype=torch.bfloat16):
                    out = module(batch)
            else:
                out = module(batch)
        return out.float()

    return predictor
