"""zse checkpoints: safe loading, inference checkpoints, and the `CheckpointFactory` predictor.

A checkpoint is a plain dict saved with `torch.save` (tensors, numbers, strings, lists, dicts only) and
is always read with `torch.load(weights_only=True)`: a pickle that would import or call anything is
refused with a `ModelError` before any of its code runs.

Keys (FORMAT "zse-checkpoint", VERSION 1):
    format, version, kind ("training" | "inference"), model_kind (e.g. "zse-gan"), arch (generator
    and discriminator config, JSON-like), config (the full training config; training only),
    normalisation, tile {"z", "yx"}, margin_px, scale_zyx (optional, [z, y, x] output/input size; absent =
    [1, 1, 1]), translation_equivariant, zse_version, step,
    state {"g_s", ["g_b", "d_s", "d_b"]}, and for training checkpoints optim, sched, pools, rng.
An inference checkpoint (`export_generator`) keeps only G_S (fp32 or fp16) and the metadata.

`load_checkpoint` also checks what a hostile or damaged file could get wrong, each as a one-line
`ModelError` naming the file: the metadata types (`margin_px` a whole number ≥ 0 or absent,
`translation_equivariant` a bool, `tile` positive ints), `state` a dict of networks each a dict of
tensors, and every floating-point weight finite (a diverged training's NaN weights would otherwise
write a black image). `build_g_s` names what differs when the weights do not fit the architecture.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Mapping
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
    state = obj["state"]
    if not isinstance(state, dict) or "g_s" not in state:
        raise ModelError(f"checkpoint {path} has no G_S weights (state.g_s)")
    for net, sd in state.items():
        if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
            raise ModelError(f"checkpoint {path}: state.{net} is a {type(sd).__name__} that is not a dict of named tensors; "
                             "the file is damaged or not written by zse")
        check_finite(sd, path, prefix=f"{net}.")
    margin_from_meta(obj.get("margin_px"), path)
    scale_from_meta(obj.get("scale_zyx"), path)
    bool_from_meta(obj.get("translation_equivariant"), "translation_equivariant", path)
    tile = obj.get("tile", {})
    if not isinstance(tile, dict) or not all(_is_count(tile.get(k, 1)) and tile.get(k, 1) > 0 for k in ("z", "yx")):
        raise ModelError(f"checkpoint {path}: tile {tile!r} is not {{'z': int, 'yx': int}} with positive sizes")
    return obj


def _is_count(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def margin_from_meta(value: object, path: str | Path) -> int | None:
    """A model file's `margin_px` (receptive radius in y, x, pixels): None if absent, else an int ≥ 0.

    Raises:
        ModelError: any other value (a string, a negative or fractional number, a bool, a list, …).
    """
    if value is None:
        return None
    if not _is_count(value) or int(value) < 0:  # type: ignore[call-overload]
        raise ModelError(f"{path}: margin_px {value!r} in the model's metadata is not a whole number of pixels >= 0; "
                         "expected the model's receptive radius in y and x (an int) or no margin_px")
    return int(value)  # type: ignore[call-overload]


def scale_from_meta(value: object, path: str | Path) -> tuple[int, int, int]:
    """A model file's `scale_zyx` (output size / input size per axis z, y, x; a z super-resolution model
    gives e.g. [2, 1, 1]): (1, 1, 1) if absent, else three whole numbers 1..8.

    Raises:
        ModelError: any other value.
    """
    if value is None:
        return (1, 1, 1)
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(_is_count(v) and 1 <= int(v) <= 8 for v in value)):
        raise ModelError(f"{path}: scale_zyx {value!r} in the model's metadata is not three whole numbers 1..8 "
                         "(output size / input size in z, y, x)")
    return (int(value[0]), int(value[1]), int(value[2]))


def bool_from_meta(value: object, key: str, path: str | Path) -> bool:
    """A boolean metadata value of a model file (absent = False); anything but true/false is refused."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ModelError(f"{path}: {key} {value!r} in the model's metadata is not true or false")
    return value


def check_finite(tensors: Mapping[str, torch.Tensor], path: str | Path, prefix: str = "") -> None:
    """Refuse weights holding NaN or ±inf, naming the first such tensor (`prefix` + its name) and the file."""
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            n_nan = int(torch.isnan(t).sum())
            n_inf = int(torch.isinf(t).sum())
            raise ModelError(f"{path}: weight tensor '{prefix}{name}' holds {n_nan} NaN and {n_inf} infinite values "
                             f"(of {t.numel()}); the training diverged or the file is damaged, so it would write a "
                             "blank image")


def build_g_s(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> torch.nn.Module:
    """The enhancing network of a loaded checkpoint (ZSE-GAN's G_S, unet3d-gan's U-Net: both stored
    under state.g_s), float32, eval mode, on CPU. `path` names the file in errors.

    Raises:
        ModelError: an architecture this zse does not know (one line, from the config's validation), or
            weights that do not fit it (missing / unexpected tensor names, or the first wrong shape).
    """
    from pydantic import ValidationError

    from zse.errors import validation_message
    from zse.models.config import ArchConfig
    from zse.models.networks import build_enhancer

    try:
        arch = ArchConfig.model_validate(ckpt["arch"])
    except ValidationError as exc:
        raise ModelError(f"{path}: its architecture is not understood by this zse: "
                         f"{validation_message(exc, prefix='arch')}") from None
    g = build_enhancer(arch)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state"]["g_s"].items()}
    _check_state_fits(g, state, path, arch.kind)
    try:
        g.load_state_dict(state)
    except RuntimeError as exc:  # pragma: no cover - _check_state_fits catches names and shapes first
        raise ModelError(f"{path}: its weights do not match its architecture: {' '.join(str(exc).split())}") from None
    return g.eval()


def _check_state_fits(g: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, kind: str) -> None:
    """One line saying how `state` differs from `g`'s parameters and buffers (names first, then shapes)."""
    want = g.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]

    def first(names: list[str]) -> str:
        return ", ".join(names[:3]) + (", …" if len(names) > 3 else "")

    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({first(unexpected)})")
        raise ModelError(f"{path}: its weights do not match its architecture (arch.kind {kind!r}, {len(want)} tensors): "
                         f"{'; '.join(parts)}; the file's arch section does not describe these weights")
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in want.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k, got, need = wrong[0]
        raise ModelError(f"{path}: its weights do not match its architecture (arch.kind {kind!r}): {len(wrong)} tensors have "
                         f"the wrong shape, first '{k}': {got} in the file, {need} for the architecture")


def export_generator(ckpt_path: str | Path, out: str | Path, *, dtype: str = "float32") -> Path:
    """Write an inference checkpoint: G_S weights (float32 or float16) and the metadata only.

    ~1.9 MB (fp32) for zse-gan, ~5.9 MB for zse-gan-paper. `CheckpointFactory` reads both kinds.
    """
    if dtype not in ("float32", "float16"):
        raise ModelError(f"export dtype {dtype!r} not supported; valid: float32, float16")
    ck = load_checkpoint(ckpt_path)
    tdtype = torch.float16 if dtype == "float16" else torch.float32
    state = {k: (v.to(tdtype) if v.is_floating_point() else v).contiguous() for k, v in ck["state"]["g_s"].items()}
    keep = ("format", "version", "model_kind", "arch", "normalisation", "tile", "margin_px", "scale_zyx",
            "translation_equivariant", "zse_version", "step")
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
        build_g_s(ck, self.path)  # refuse an unknown architecture or unfitting weights now, not in a worker
        self.name = name or Path(path).name
        self.checksum = sha256_file(self.path)
        self.margin_px: int | None = margin_from_meta(ck.get("margin_px"), self.path)
        self.translation_equivariant = bool_from_meta(ck.get("translation_equivariant"), "translation_equivariant", self.path)
        self.scale_zyx: tuple[int, int, int] = scale_from_meta(ck.get("scale_zyx"), self.path)
        self.input_zyx: tuple[int | None, int | None, int | None] | None = None
        self.core_px: int | None = None
        self.model_kind = str(ck["model_kind"])
        self.tile = dict(ck.get("tile", {}))
        if amp not in (None, "bf16"):
            raise ModelError(f"amp {amp!r} not supported; valid: None, 'bf16'")
        self.amp = amp

    def build(self, device: str) -> Callable[[torch.Tensor], torch.Tensor]:
        g = build_g_s(load_checkpoint(self.path), self.path).to(device)
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
