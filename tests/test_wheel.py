"""Training from an installed wheel, outside the repository: `pix2pix-hub train` and `python -m pix2pix_hub.train`,
in a new venv that sees this environment's packages (system Python, a venv, conda, uv) but not the checkout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fresh_wheel import REPO, assert_imported_from, build_wheel, offline_env, run, venv_with_this_environment
from PIL import Image

from pix2pix_hub import Pix2Pix


def aligned_pairs(folder: Path, count: int = 6, side: int = 64) -> Path:
    """``count`` side-by-side A|B JPEGs of random colours."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        pixels = rng.integers(0, 256, size=(side, 2 * side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.jpg")
    return folder


def test_a_new_venv_sees_this_environments_packages_but_not_the_checkout(tmp_path):
    python = venv_with_this_environment(tmp_path / "venv", cwd=tmp_path, env=offline_env())
    probe = (
        "import importlib.util, sys, torch; print(importlib.util.find_spec('pix2pix_hub')); print(*sys.path, sep='\\n')"
    )
    spec, *path = run(python, "-c", probe, cwd=tmp_path, env=offline_env()).splitlines()
    # The running environment may itself live in the checkout (.venv): only the source package must stay unseen.
    assert str(REPO / "pix2pix_hub") not in spec
    assert str(REPO) not in path, path


@pytest.mark.slow
def test_a_fresh_wheel_trains_from_outside_the_repository(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    venv, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    env = offline_env(HF_HOME=str(tmp_path / "hf"))
    # This environment's torch, accelerate and datasets are reused (no network); pix2pix-hub comes from the wheel only.
    python = venv_with_this_environment(venv, cwd=work, env=env)
    run(python, "-m", "pip", "install", "--no-deps", "--ignore-installed", wheel, cwd=work, env=env)
    assert_imported_from(python, venv, cwd=work, env=env)

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
