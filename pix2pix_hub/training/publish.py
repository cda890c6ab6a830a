"""The end of a run (main process): the model card, the model folder in ``output_dir``, the Hub upload."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from accelerate import Accelerator
from PIL import Image

from .. import fileio
from ..constants import SAMPLES_NAME, WEIGHTS_NAME
from ..model_card import render_model_card
from ..model_info import ModelInfo
from ..pipeline import Pix2Pix
from .base_model import base_model_name
from .config import TrainingConfig


def model_info(config: TrainingConfig) -> ModelInfo:
    """What the trained model does: direction, dataset (named, never a local path), training resolution, and the
    model it was fine-tuned from (``--init_from``)."""
    base = base_model_name(config.init_from) if config.init_from else None
    return ModelInfo.for_training(config.dataset, config.direction, config.crop_size, base_model=base)


def render_card(
    pix2pix: Pix2Pix,
    config: TrainingConfig,
    accelerator: Accelerator,
    metrics: dict[str, float] | None = None,
    val_size: int | None = None,
) -> str:
    """The model card of a run's model (or checkpoint): the arguments, plus what the launcher decided
    (``mixed_precision`` None means "the launcher's") and the number of validation pairs actually used."""
    output_dir = Path(config.output_dir)
    training_config = {
        **asdict(config),
        "mixed_precision": accelerator.mixed_precision,
        "num_processes": accelerator.num_processes,
    }
    if val_size is not None and not config.validation_split:
        training_config["val_size"] = val_size
    return render_model_card(
        pix2pix,
        repo_id=config.hub_model_id or f"user/{output_dir.resolve().name}",
        training_config=training_config,
        metrics=metrics,
        sample_grid=SAMPLES_NAME if metrics else None,
    )


def save_model_folder(pix2pix: Pix2Pix, output_dir: Path, card: str, grid: Image.Image) -> None:
    """``save_pretrained`` into ``output_dir`` (with ``pix2pix.info`` as ``pix2pix.json``) without touching its
    checkpoints/, samples/ and logs/.

    ``Pix2Pix.save_pretrained`` replaces its destination folder whole, so the model is assembled in a temporary
    folder inside ``output_dir`` and its entries are moved in one by one (each move atomic), the weights last.
    """
    staging = fileio.make_directory(fileio.temporary_sibling(output_dir / "model"))
    try:
        folder = pix2pix.save_pretrained(staging / "model", card=card, sample_grid=grid)
        fileio.move_entries(folder, output_dir, last=(WEIGHTS_NAME,))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(
    pix2pix: Pix2Pix,
    config: TrainingConfig,
    accelerator: Accelerator,
    metrics: dict[str, float],
    grid: Image.Image,
    say: Callable[[str], None],
    val_size: int | None = None,
) -> None:
    """Main process, end of training: the model card, the model folder in ``output_dir``, the Hub upload.

    ``pix2pix.info`` (``model_info(config)``) says what the model does, in ``pix2pix.json`` and the card's YAML.
    """
    output_dir = Path(config.output_dir)
    card = render_card(pix2pix, config, accelerator, metrics, val_size)
    save_model_folder(pix2pix, output_dir, card, grid)
    say(f"Saved the model to {output_dir} (load it with Pix2Pix.from_pretrained({str(output_dir)!r})).")
    if config.push_to_hub:
        url = pix2pix.push_to_hub(config.hub_model_id, card=card, sample_grid=grid)
        say(f"Pushed to the Hub: {url}")
