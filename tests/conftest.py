"""Fixtures shared by the tests: one tiny, freshly initialised model folder; a private ONNX export cache."""

import os
from pathlib import Path

import pytest
import torch

from pix2pix_hub import Pix2Pix, unet_128


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped where torch sees no CUDA device (``pytest -m cuda`` selects them)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Exports land here (and in the subprocesses tests start), never in the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    previous = os.environ.get("PIX2PIX_HUB_CACHE")
    os.environ["PIX2PIX_HUB_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("PIX2PIX_HUB_CACHE", None)
    else:
        os.environ["PIX2PIX_HUB_CACHE"] = previous


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved unet_128 (ngf 8) model folder, seeded so its outputs are the same in every run."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "tiny"
    Pix2Pix(unet_128(ngf=8)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pix2pix(model_dir: Path) -> Pix2Pix:
    return Pix2Pix.from_pretrained(model_dir)
