"""Helpers shared by the training tests: a tiny generated A|B dataset and an in-process ``train`` runner."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pix2pix_hub.training import TrainingConfig, TrainingResult, train

REPO_ROOT = Path(__file__).resolve().parents[1]
FACADES = (REPO_ROOT / ".." / "shared" / "data" / "facades" / "train").resolve()


def make_aligned_pairs(folder: Path, count: int = 10, size: int = 40, seed: int = 0) -> Path:
    """``count`` side-by-side files (``2 * size`` x ``size``): A random colour blocks, B = A with channels
    reversed and inverted, so the mapping is learnable."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        blocks = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        a = np.kron(blocks, np.ones((size // 4, size // 4, 1), dtype=np.uint8))
        b = 255 - a[:, :, ::-1]
        Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{i}.png")
    return folder


def tiny_config(data: Path, output_dir: Path, **overrides) -> TrainingConfig:
    """A config that trains in well under a second per step on a CPU: ResNet-6 with 4 filters on 32x32 crops."""
    config = TrainingConfig(
        dataset=str(data),
        netG="resnet_6blocks",
        ngf=4,
        ndf=4,
        load_size=36,
        crop_size=32,
        batch_size=2,
        val_size=2,
        max_train_steps=4,
        checkpointing_steps=2,
        validation_steps=1000,
        logging_steps=1,
        num_validation_images=2,
        dataloader_num_workers=0,
        report_to="none",
        output_dir=str(output_dir),
    )
    return replace(config, **overrides)


def reset_accelerate() -> None:
    """Accelerate keeps process-wide singletons; a test that trains twice in one process starts them afresh."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def run(config: TrainingConfig) -> TrainingResult:
    reset_accelerate()
    try:
        return train(config)
    finally:
        reset_accelerate()


def state_of(result: TrainingResult) -> dict[str, torch.Tensor]:
    """Generator and discriminator weights and buffers, by name."""
    pix2pix = result.pix2pix
    state = {f"G.{k}": v.detach().clone() for k, v in pix2pix.generator.state_dict().items()}
    state.update({f"D.{k}": v.detach().clone() for k, v in pix2pix.discriminator.state_dict().items()})
    return state


def assert_same_state(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    different = [name for name in first if not torch.equal(first[name], second[name])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
