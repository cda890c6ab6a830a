"""Validation during training: L1/PSNR/SSIM over the held-out pairs, and an input | output | target grid (a
label-map input drawn in its class colours, as pix2pixHD shows them).

The generator runs in eval mode (running batch-norm statistics, no dropout): what ``Pix2Pix`` users get.
Every process scores its share of the pairs; the sums are added across processes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..images.arrays import make_grid, tensor_to_image
from ..images.labels import labels_to_image
from ..images.metrics import image_metrics
from ..inference.generate import generator_mode

if TYPE_CHECKING:
    from accelerate import Accelerator

METRICS = ("l1", "psnr", "ssim")
IMAGE_CHANNELS = (1, 3, 4)
GRID_TAG = "val/samples"  # the tracker's name for the input | output | target grid
BATCH = 8


def _batches(dataset: Any, indices: list[int]):
    """``(inputs (N, C, H, W), targets (N, C, H, W))`` batches of ``dataset[i]`` items; bad (None) items dropped."""
    for start in range(0, len(indices), BATCH):
        items = [dataset[i] for i in indices[start : start + BATCH]]
        items = [item for item in items if item is not None]
        if items:
            yield torch.stack([item["input"] for item in items]), torch.stack([item["target"] for item in items])


def fp32_forward(model: nn.Module) -> Any:
    """``model``'s own forward, without the autocast wrapper Accelerate puts on a network it prepares under mixed
    precision (kept by ``unwrap_model``): validation scores the fp32 model that is saved."""
    return model.__dict__.get("_original_forward", model)


@torch.no_grad()
def translate(generator: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``(N, input_nc, H, W)`` -> ``(N, output_nc, H, W)`` in eval mode and fp32, restoring the previous mode after."""
    with generator_mode(generator):
        return fp32_forward(generator)(inputs).float()


@torch.no_grad()
def validation_metrics(generator: nn.Module, dataset: Any, accelerator: Accelerator) -> dict[str, float]:
    """Mean ``l1``, ``psnr``, ``ssim`` over every pair of ``dataset`` (a ``PairedDataset``), all processes together."""
    indices = list(range(accelerator.process_index, len(dataset), accelerator.num_processes))
    sums = torch.zeros(len(METRICS) + 1, dtype=torch.float64, device=accelerator.device)
    for inputs, targets in _batches(dataset, indices):
        outputs = translate(generator, inputs.to(accelerator.device))
        scores = image_metrics(outputs, targets.to(accelerator.device))
        for k, name in enumerate(METRICS):
            sums[k] += scores[name].double().sum()
        sums[-1] += inputs.shape[0]
    sums = accelerator.reduce(sums, reduction="sum") if accelerator.num_processes > 1 else sums
    count = max(float(sums[-1]), 1.0)
    return {name: float(sums[k]) / count for k, name in enumerate(METRICS)}


@torch.no_grad()
def widget_example(
    generator: nn.Module, dataset: Any, device: torch.device, label_nc: int = 0
) -> tuple[Image.Image, Image.Image] | None:
    """The first readable pair's input and the generator's output as images, for the model card's widget; None
    when the input is not an image (a label map: the model takes class indices, not a picture of them)."""
    if label_nc:
        return None
    for inputs, _ in _batches(dataset, list(range(min(BATCH, len(dataset))))):
        if inputs.shape[1] not in IMAGE_CHANNELS:
            return None
        output = translate(generator, inputs[:1].to(device)).cpu()
        return tensor_to_image(inputs[0]), tensor_to_image(output[0])
    return None


def log_grid(accelerator: Accelerator, grid: Image.Image, step: int) -> None:
    """The validation grid as an image summary in the trackers that take images (TensorBoard, W&B), tag
    ``val/samples``; the others get the metrics only."""
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({GRID_TAG: np.asarray(grid)[None]}, step=step, dataformats="NHWC")
        elif tracker.name == "wandb":
            tracker.log_images({GRID_TAG: [grid]}, step=step)


def input_image(inputs: torch.Tensor, label_nc: int = 0) -> Image.Image:
    """One model input ``(C, H, W)`` as a picture: an image in [-1, 1] as it is; with ``label_nc`` a one-hot label
    map (and maybe its instance channel) in ``label_palette`` colours."""
    return labels_to_image(inputs, label_nc) if label_nc else tensor_to_image(inputs)


@torch.no_grad()
def sample_grid(generator: nn.Module, dataset: Any, rows: int, device: torch.device, label_nc: int = 0) -> Image.Image:
    """The first ``rows`` pairs of ``dataset`` as a picture: one row per pair, input | output | target; inputs
    that are one-hot label maps (``label_nc`` classes) drawn in their class colours."""
    grid_rows = []
    for inputs, targets in _batches(dataset, list(range(min(rows, len(dataset))))):
        outputs = translate(generator, inputs.to(device)).cpu()
        for x, y, z in zip(inputs, outputs, targets):
            grid_rows.append([input_image(x, label_nc), tensor_to_image(y), tensor_to_image(z)])
    return make_grid(grid_rows)
