"""Fixtures shared by the CLI, evaluation and dataset tests: one tiny, freshly initialised model folder."""

from pathlib import Path

import pytest
import torch

from pix2pix_hub import Pix2Pix, unet_128


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
