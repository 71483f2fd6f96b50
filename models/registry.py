"""Model registry: a plain dict of names to factory builders, and `resolve()` for names and paths.

`resolve(spec)` accepts
- a registry name (`zse models` lists them),
- a path to a zse checkpoint (`.pt`, loaded with `torch.load(weights_only=True)` only),
- a path to an exported PyTorch program (`.pt2`, `torch.export.save`) mapping float32
  (N, 1, Z, Y, X) in [-1, 1] to the same shape, with a dynamic batch dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from zse.errors import ModelError

if TYPE_CHECKING:
    from zse.pipeline.infer import PredictorFactory

WEIGHTS_DIR = Path(__file__).parent / "weights"


def _identity(amp: str | None = None) -> PredictorFactory:
    from zse.models.baselines.identity import IdentityFactory

    return IdentityFactory()


def _rl_deconv(amp: str | None = None) -> PredictorFactory:
    from zse.models.baselines.rl_deconv import RLDeconvFactory

    return RLDeconvFactory()


def _unsharp(amp: str | None = None) -> PredictorFactory:
    from zse.models.baselines.unsharp import UnsharpFactory

    return UnsharpFactory()


def _bundled(filename: str) -> Callable[..., PredictorFactory]:
    def build(amp: str | None = None) -> PredictorFactory:
        from zse.models.checkpoint import CheckpointFactory

        path = WEIGHTS_DIR / filename
        if not path.exists():
            raise ModelError(f"the bundled weights {path} are missing from this installation")
        return CheckpointFactory(path, name=filename.removesuffix(".pt"), amp=amp)

    return build


# name -> (builder, one-line description). DEFAULT_MODEL (below) is the default.
REGISTRY: dict[str, tuple[Callable[..., PredictorFactory], str]] = {
    "unet3d-gan": (_bundled("unet3d-gan.pt"), "3D U-Net trained with physics (WFCON's recipe adapted): optical "
                   "sections from z-scans, trained on simulated pairs then real stacks (bundled; a CPU training, "
                   "see models/weights/README.md)"),
    "zse-gan": (_bundled("zse-gan.pt"), "ZSE-GAN generator G_S, seam-safe variant, trained on the Huron ROIs "
                "(bundled; a 38-minute CPU training, see models/weights/README.md)"),
    "zse-gan-warmup": (_bundled("zse-gan-warmup.pt"), "the same run's G_S at step 2000, the end of the cycle "
                       "warm-up (its cycle term had trained G_B only); sharpens more, see models/weights/README.md"),
    "cyclegan-2d": (_bundled("cyclegan-2d.pt"), "COMI's CycleGAN, a 2D ResNet on every plane (bundled; a 22-minute "
                    "CPU training without the VGG content term; invents texture on out-of-focus planes, see "
                    "models/weights/README.md)"),
    "dualgan-3d": (_bundled("dualgan-3d.pt"), "3D-dualHRGAN z super-resolution ×2 (29 → 58 planes at half the z step; "
                   "bundled; a 30-minute CPU training on simulator scans, loses to linear interpolation, see "
                   "benchmarks/results/zsr.md)"),
    "rl-deconv": (_rl_deconv, "3D Richardson–Lucy on optical density with a theoretical widefield PSF"),
    "unsharp": (_unsharp, "per-plane 2D unsharp mask (σ 2 px, amount 1): the plain-sharpening baseline"),
    "identity": (_identity, "returns the input unchanged (for checks)"),
}

BUNDLED = ("unet3d-gan", "zse-gan", "zse-gan-warmup", "cyclegan-2d", "dualgan-3d")
"""Registry names backed by a weights file in models/weights/ (`<name>.pt`)."""

DEFAULT_MODEL = "unet3d-gan"
"""The model docs/quality.md ranks best (its \"Ranking\" section)."""


def available() -> dict[str, str]:
    """Registry names whose model can be built here, with their descriptions."""
    out = {}
    for name, (_, desc) in REGISTRY.items():
        if name in BUNDLED and not (WEIGHTS_DIR / f"{name}.pt").exists():
            continue
        out[name] = desc
    return out


def best_model() -> str:
    """The best model this installation has: the default bundled model if present, else rl-deconv."""
    return DEFAULT_MODEL if DEFAULT_MODEL in available() else "rl-deconv"


def resolve(spec: str, amp: str | None = None) -> PredictorFactory:
    """A PredictorFactory (see zse.pipeline.infer) for a registry name or a model file path.

    amp: None (fp32) or "bf16" autocast, for trained networks (baselines ignore it).
    """
    if spec in REGISTRY:
        builder = REGISTRY[spec][0]
        return builder() if amp is None else builder(amp=amp)
    path = Path(spec)
    if path.suffix == ".pt2":
        if not path.is_file():
            raise ModelError(f"model file {path} not found")
        from zse.models.export import ExportedProgramFactory

        return ExportedProgramFactory(path, amp=amp)
    if path.exists():
        if not path.is_file():
            raise ModelError(f"model {path} is a directory; expected a zse checkpoint (.pt) or an exported program (.pt2)")
        from zse.models.checkpoint import CheckpointFactory

        return CheckpointFactory(path, amp=amp)
    raise ModelError(f"unknown model {spec!r}: neither a registry name ({', '.join(REGISTRY)}) nor an existing file")
