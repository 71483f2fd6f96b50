"""The bundled weights: present, small, self-describing, loadable through the registry, and recorded
truthfully (the checkpoint's training config is the preset the weights README names)."""

from __future__ import annotations

import torch
from click.testing import CliRunner

from zse.models.checkpoint import load_checkpoint
from zse.models.config import config_from_dict, load_config
from zse.models.registry import DEFAULT_MODEL, REGISTRY, WEIGHTS_DIR, available, resolve

BUNDLED = ["zse-gan", "zse-gan-warmup"]
PRESET = {"unet3d-gan": "unet3d-gan-cpu", "zse-gan": "zse-gan-cpu", "zse-gan-warmup": "zse-gan-cpu"}
MARGIN = {"unet3d-gan": 32, "zse-gan": 25, "zse-gan-warmup": 25}


def test_bundled_weights_are_registered_small_and_self_describing() -> None:
    # the default is the model docs/quality.md ranks best
    assert DEFAULT_MODEL == "unet3d-gan" and set(PRESET) <= set(available())
    for name, preset in PRESET.items():
        path = WEIGHTS_DIR / f"{name}.pt"
        assert path.stat().st_size < 10e6
        ck = load_checkpoint(path)
        for key in ("arch", "train_config", "normalisation", "tile", "margin_px", "zse_version", "step"):
            assert key in ck, (name, key)
        # trained with the preset models/weights/README.md names (fields added to the config since take
        # their defaults when the recorded config is read back)
        recorded = config_from_dict(ck["train_config"]).model_dump(mode="json")
        assert recorded == load_config(preset).model_dump(mode="json"), name
        assert ck["margin_px"] == MARGIN[name] and ck["kind"] == "inference"
    assert load_checkpoint(WEIGHTS_DIR / "zse-gan-warmup.pt")["step"] == 2000
    assert load_checkpoint(WEIGHTS_DIR / "unet3d-gan.pt")["step"] == 8740


def test_bundled_models_run_and_differ() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 1, 29, 32, 32) * 2 - 1
    outs = {}
    for name in BUNDLED:
        model = resolve(name).build("cpu")
        with torch.inference_mode():
            y = model(x)
        assert y.shape == x.shape and y.dtype == torch.float32 and y.abs().max() <= 1
        outs[name] = y
    # both change the input, the warm-up model more (models/weights/README.md)
    d = {n: (y - x).abs().mean().item() for n, y in outs.items()}
    assert 0 < d["zse-gan"] < d["zse-gan-warmup"], d


def test_zse_models_lists_the_registry() -> None:
    from zse.workflows.info import models

    res = CliRunner().invoke(models, [])
    assert res.exit_code == 0
    listed = [line.split()[0] for line in res.output.splitlines()]
    assert listed == list(REGISTRY)
