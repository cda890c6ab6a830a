"""VGG19's convolutional part in plain torch (no torchvision), for pix2pixHD's perceptual loss.

Layer indices and state-dict keys are torchvision's ``vgg19().features`` (``features.0.weight`` ... ), so a
torchvision checkpoint converted to safetensors, or timm's ``timm/vgg19.tv_in1k`` (the same torchvision weights,
the same ``features.*`` keys), loads as it is. Only the layers up to relu5_1 are built: the loss reads nothing
deeper, and the rest of a checkpoint (conv5_2..5_4, the classifier) is not read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from ..constants import PICKLE_SUFFIXES
from .hub import resolve_weights

# torchvision's configuration "E": output widths of the 3x3 convs, "M" a 2x2 max pool.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# Indices in ``features`` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1: the activations pix2pixHD compares.
FEATURE_LAYERS = (1, 6, 11, 20, 29)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    """``features`` of torchvision's VGG19 up to relu5_1 (indices 0-29), weights frozen.

    Input ``(N, 3, H, W)`` ImageNet-normalised RGB; output the five activations at ``FEATURE_LAYERS``:
    ``(N, 64, H, W)``, ``(N, 128, H/2, W/2)``, ``(N, 256, H/4, W/4)``, ``(N, 512, H/8, W/8)``,
    ``(N, 512, H/16, W/16)``.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 3
        for item in VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(width, item, 3, padding=1), nn.ReLU()]
                width = item
        self.features = nn.Sequential(*layers[: FEATURE_LAYERS[-1] + 1])
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in FEATURE_LAYERS:
                outputs.append(x)
        return outputs

    def load_safetensors(self, path: str | os.PathLike) -> VGG19Features:
        """Load this module's ``features.*`` tensors from a safetensors file; other keys are ignored, missing ones
        or other shapes are an error. Returns ``self``."""
        wanted = self.state_dict().keys()
        with safe_open(str(path), framework="pt") as weights:
            missing = sorted(set(wanted) - set(weights.keys()))
            if missing:
                raise ValueError(
                    f"{path} is not a VGG19 checkpoint with torchvision's key names: it lacks {', '.join(missing[:4])}"
                    f"{' ...' if len(missing) > 4 else ''} (expected features.0.weight ... features.28.bias)."
                )
            self.load_state_dict({key: weights.get_tensor(key) for key in wanted})
        return self


def load_vgg19(source: str | os.PathLike, **download_kwargs: Any) -> VGG19Features:
    """A frozen, eval-mode ``VGG19Features`` from a ``.safetensors`` file, a folder holding ``model.safetensors``,
    or a Hub repo id (its ``model.safetensors``, e.g. ``timm/vgg19.tv_in1k``; ``download_kwargs`` go to
    ``hf_hub_download``). Pickled checkpoints are refused, as everywhere in pix2pix_hub."""
    path = Path(source)
    if path.suffix in PICKLE_SUFFIXES:
        raise ValueError(
            f"{source} is a pickled checkpoint; pix2pix_hub reads safetensors only. Convert it once with "
            "`safetensors.torch.save_file(torch.load(path, weights_only=True), 'vgg19.safetensors')`."
        )
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"VGG19 weights {source} do not exist.")
        weights = str(path)
    else:
        weights = resolve_weights(str(source), **download_kwargs)
    return VGG19Features().load_safetensors(weights).eval()
