"""Training from an installed wheel, outside the repository: `pix2pix-hub train` and `python -m pix2pix_hub.train`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_space_build import build_wheel, offline_env, run

from pix2pix_hub import Pix2Pix


def aligned_pairs(folder: Path, count: int = 6, side: int = 64) -> Path:
    """``count`` side-by-side A|B JPEGs of random colours."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, size=(side, 2 * side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.jpg")
    return folder


@pytest.mark.slow
def test_a_fresh_wheel_trains_from_outside_the_repository(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    venv, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    env = offline_env(HF_HOME=str(tmp_path / "hf"))
    # The installed torch, accelerate and datasets are reused (no network); pix2pix-hub comes from the wheel only.
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv, cwd=work, env=env)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--no-deps", "--ignore-installed", wheel, cwd=work, env=env)
    where = run(python, "-c", "import pix2pix_hub; print(pix2pix_hub.__file__)", cwd=work, env=env)
    assert where.strip().startswith(str(venv)), where

    data = aligned_pairs(work / "pairs")
    common = ["--dataset", str(data), "--netG", "unet_128", "--ngf", "8", "--ndf", "8", "--load_size", "128"]
    common += ["--crop_size", "128", "--val_size", "2", "--max_train_steps", "5", "--report_to", "none"]
    common += ["--dataloader_num_workers", "0", "--checkpointing_steps", "5", "--validation_steps", "5"]
    run(venv / "bin" / "pix2pix-hub", "train", *common, "--output_dir", "by-command", cwd=work, env=env)
    run(python, "-m", "pix2pix_hub.train", *common, "--output_dir", "by-module", cwd=work, env=env)
    for name in ("by-command", "by-module"):
        pix2pix = Pix2Pix.from_pretrained(work / name, backend="torch")
        assert pix2pix.generator.config["ngf"] == 8
        assert (work / name / "checkpoints" / "checkpoint-5").is_dir()
