"""Shared fixtures: real-data location, markers for GPU/slow tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny convolutions run fastest and most predictably on one thread, even on a shared machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _huron_dir() -> Path:
    env = os.environ.get("ZSE_HURON_DIR")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data" / "zse-gan-huron"


@pytest.fixture(scope="session")
def huron_dir() -> Path:
    """The real ZSE-GAN Huron ROIs (trainB/*.npz, trainA2D/*.tif, trainA29/*.tif); skips if absent."""
    path = _huron_dir()
    if not (path / "trainB").is_dir():
        pytest.skip(f"real data not found at {path} (set ZSE_HURON_DIR or place ../shared beside the repo)")
    return path
