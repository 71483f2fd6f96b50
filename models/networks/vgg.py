"""VGG-19 feature extractor for the perceptual loss (WFCON's ζ·VGG term), from a local weights file only.

zse never downloads weights. `load_vgg19_features(path, layer)` builds VGG-19's convolutional trunk in
plain torch (torchvision is not needed; its key names are kept) up to `layer` and loads
`features.N.weight` / `features.N.bias` from `path` with `torch.load(weights_only=True)`. The file may
hold a whole torchvision VGG-19 state_dict (classifier keys are ignored) or only the features; a missing
file, a pickle that would run code, or missing keys give a one-line `ModelError`.

`vgg_loss(features, a, b)`: mean absolute difference of the features of a and b, both (N, 1, Z, Y, X) in
[-1, 1]; every z plane is a grey image repeated to three channels and normalised with ImageNet's mean
and std, as VGG was trained.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from zse.errors import ModelError

# VGG-19 configuration "E": channels, "M" = max-pool
_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
# index (in torchvision's `features` Sequential) of the ReLU that ends each named layer
LAYER_END = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu3_4": 17}
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def vgg19_trunk(layer: str = "relu2_2") -> nn.Sequential:
    """VGG-19 `features` up to and including `layer` (torchvision layout and indices), random init."""
    if layer not in LAYER_END:
        raise ModelError(f"VGG layer {layer!r} is not supported; valid: {', '.join(LAYER_END)}")
    mods: list[nn.Module] = []
    c = 3
    for v in _CFG:
        if isinstance(v, str):  # "M"
            mods.append(nn.MaxPool2d(2, 2))
        else:
            mods += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
            c = v
        if len(mods) > LAYER_END[layer]:
            break
    return nn.Sequential(*mods[: LAYER_END[layer] + 1])


def load_vgg19_features(path: str | Path | None, layer: str = "relu2_2", setting: str = "physics.vgg_weights") -> nn.Sequential:
    """The frozen VGG-19 trunk up to `layer` with weights from the local file `path` (eval mode); `setting`
    names the config key that gave `path` in errors."""
    if not path:
        raise ModelError(f"the VGG perceptual loss needs a local VGG-19 weights file ({setting}); "
                         "zse never downloads weights: set the VGG term's weight to 0 or give the file")
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"VGG-19 weights file {p} not found ({setting}); zse never downloads weights: "
                         "give a local copy of torchvision's vgg19 state_dict, or set the VGG term's weight to 0")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"VGG-19 weights file {p} cannot be loaded safely ({type(exc).__name__}); "
                         "expected a plain state_dict saved with torch.save") from None
    if not isinstance(state, dict):
        raise ModelError(f"VGG-19 weights file {p} holds a {type(state).__name__}, expected a state_dict")
    net = vgg19_trunk(layer)
    want = net.state_dict()
    sub = {}
    for k in want:
        full = f"features.{k}"
        v = state.get(full, state.get(k))
        if v is None:
            raise ModelError(f"VGG-19 weights file {p} lacks '{full}'; expected torchvision's vgg19 key names")
        if tuple(v.shape) != tuple(want[k].shape):
            raise ModelError(f"VGG-19 weights file {p}: '{full}' has shape {tuple(v.shape)}, expected {tuple(want[k].shape)}")
        sub[k] = v.float()
    net.load_state_dict(sub)
    for q in net.parameters():
        q.requires_grad_(False)
    return net.eval()


def vgg_loss(features: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean |φ(a) − φ(b)| over the VGG features φ of every z plane of a, b (N, 1, Z, Y, X) in [-1, 1]."""
    def planes(v: torch.Tensor) -> torch.Tensor:
        n, _, z, h, w = v.shape
        g = (v.float().reshape(n * z, 1, h, w) + 1.0) / 2.0  # [0, 1]
        mean = torch.tensor(_MEAN, device=v.device).view(1, 3, 1, 1)
        std = torch.tensor(_STD, device=v.device).view(1, 3, 1, 1)
        return (g.expand(-1, 3, -1, -1) - mean) / std

    return (features(planes(a)) - features(planes(b))).abs().mean()


def vgg_loss_2d(features: nn.Module, a: torch.Tensor, b: torch.Tensor, norm: str = "l1") -> torch.Tensor:
    """`vgg_loss` for 2D planes a, b (N, 1, Y, X) in [-1, 1] (`cyclegan-2d`): mean |φ(a) − φ(b)|
    ("l1") or mean (φ(a) − φ(b))² ("mse", the COMI authors' code)."""
    if norm == "l1":
        return vgg_loss(features, a.unsqueeze(2), b.unsqueeze(2))
    mean = torch.tensor(_MEAN, device=a.device).view(1, 3, 1, 1)
    std = torch.tensor(_STD, device=a.device).view(1, 3, 1, 1)
    fa, fb = (features((((v.float() + 1.0) / 2.0).expand(-1, 3, -1, -1) - mean) / std) for v in (a, b))
    return ((fa - fb) ** 2).mean()
