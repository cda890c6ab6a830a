"""Paired augmentation for pix2pix: one random crop and flip applied to input and target alike.

Only PIL, numpy and torch (no torchvision): the same preprocessing modes as the authors' code
(``resize_and_crop``, ``crop``, ``scale_width``, ``scale_width_and_crop``, ``none``), with all randomness
drawn from one seed so a sample is reproducible in any process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..constants import PREPROCESS_MODES, check_choice
from ..imaging import check_channels, convert_image

# Modes that cut a crop_size square out of a load_size image: crop_size may not exceed load_size.
CROP_AFTER_LOAD = ("resize_and_crop", "scale_width_and_crop")


@dataclass(frozen=True)
class TransformPlan:
    """What happens to one pair: resize to ``resize`` (w, h) or keep, cut ``crop`` (left, top, w, h) or keep, flip."""

    resize: tuple[int, int] | None
    crop: tuple[int, int, int, int] | None
    flip: bool


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer.")
    return int(value)


def _round_to_multiple(size: int, multiple: int) -> int:
    return max(multiple, int(round(size / multiple)) * multiple)


class PairedTransform:
    """PIL pair -> two float tensors ``(C, H, W)`` in [-1, 1], cropped and flipped together.

    ``train=True`` draws the crop position and flip from ``seed``; ``train=False`` is deterministic: no flip,
    ``resize_and_crop`` resizes straight to ``crop_size``, ``crop`` and ``scale_width_and_crop`` take the
    centre crop. ``input_nc``/``output_nc`` (1, 3 or 4) convert channels with ``imaging.convert_image``, so
    ``input_nc=1, output_nc=3`` turns any color dataset into a colorization task. ``size_multiple`` is the
    generator's ``size_multiple`` (256 for ``unet_256``, 4 for the ResNets): ``none`` and ``scale_width`` round
    the output sides to it, the crop modes require ``crop_size`` to be a multiple of it.
    """

    def __init__(
        self,
        load_size: int = 286,
        crop_size: int = 256,
        preprocess: str = "resize_and_crop",
        flip: bool = True,
        input_nc: int = 3,
        output_nc: int = 3,
        train: bool = True,
        size_multiple: int = 1,
    ) -> None:
        check_choice("preprocess", preprocess, PREPROCESS_MODES)
        self.load_size = _positive_int(load_size, "load_size")
        self.crop_size = _positive_int(crop_size, "crop_size")
        self.size_multiple = _positive_int(size_multiple, "size_multiple")
        check_channels(input_nc, "input_nc")
        check_channels(output_nc, "output_nc")
        if preprocess in CROP_AFTER_LOAD and crop_size > load_size:
            raise ValueError(
                f"crop_size={crop_size} is larger than load_size={load_size}: preprocess={preprocess!r} crops "
                f"crop_size out of the image resized to load_size. Use crop_size <= load_size."
            )
        if preprocess != "none" and "crop" in preprocess and crop_size % self.size_multiple:
            raise ValueError(
                f"crop_size={crop_size} is not a multiple of size_multiple={size_multiple} (what the generator "
                f"needs); use e.g. crop_size={_round_to_multiple(crop_size, self.size_multiple)}."
            )
        if preprocess == "scale_width" and load_size % self.size_multiple:
            raise ValueError(
                f"load_size={load_size} is not a multiple of size_multiple={size_multiple}; scale_width makes the "
                f"width load_size. Use e.g. load_size={_round_to_multiple(load_size, self.size_multiple)}."
            )
        self.preprocess = preprocess
        self.flip = bool(flip)
        self.input_nc = input_nc
        self.output_nc = output_nc
        self.train = bool(train)

    def __repr__(self) -> str:
        return (
            f"PairedTransform(load_size={self.load_size}, crop_size={self.crop_size}, preprocess={self.preprocess!r}, "
            f"flip={self.flip}, input_nc={self.input_nc}, output_nc={self.output_nc}, train={self.train}, "
            f"size_multiple={self.size_multiple})"
        )

    def check_size(self, size: tuple[int, int]) -> None:
        """Raise a ValueError when an image of ``size`` (w, h) cannot go through this transform."""
        width, height = size
        if self.preprocess == "crop" and (width < self.crop_size or height < self.crop_size):
            raise ValueError(
                f"image is {width}x{height}, smaller than crop_size={self.crop_size} (preprocess='crop' does not "
                f"resize). Use a smaller crop_size or preprocess='resize_and_crop', which resizes to load_size first."
            )

    def plan(self, size: tuple[int, int], seed: int | None) -> TransformPlan:
        """The resize, crop and flip for an image of ``size`` (w, h); random parts come from ``seed``."""
        self.check_size(size)
        rng = np.random.default_rng(seed)
        width, height = size
        load, crop, multiple = self.load_size, self.crop_size, self.size_multiple
        mode = self.preprocess
        resize: tuple[int, int] | None = None
        box: tuple[int, int, int, int] | None = None
        if mode == "resize_and_crop":
            resize = (load, load) if self.train else (crop, crop)
        elif mode in ("scale_width", "scale_width_and_crop"):
            # As the authors' __scale_width: the height follows the aspect ratio but never drops below crop_size.
            target = crop if (mode == "scale_width_and_crop" and not self.train) else load
            new_height = int(max(target * height / width, crop))
            if mode == "scale_width":
                new_height = _round_to_multiple(new_height, multiple)
            resize = (target, new_height)
        elif mode == "none":
            resize = (_round_to_multiple(width, multiple), _round_to_multiple(height, multiple))
        if "crop" in mode:
            inner_w, inner_h = resize or (width, height)
            if self.train:
                left = int(rng.integers(0, inner_w - crop + 1))
                top = int(rng.integers(0, inner_h - crop + 1))
            else:
                left, top = (inner_w - crop) // 2, (inner_h - crop) // 2
            box = (left, top, crop, crop)
            if (left, top, crop, crop) == (0, 0, inner_w, inner_h):
                box = None
        if resize == (width, height):
            resize = None
        flip = bool(self.train and self.flip and rng.random() < 0.5)
        return TransformPlan(resize=resize, crop=box, flip=flip)

    def apply(self, image: Image.Image, plan: TransformPlan, channels: int) -> torch.Tensor:
        """One image through ``plan`` -> float tensor ``(channels, H, W)`` in [-1, 1]."""
        image = convert_image(image, channels)
        if plan.resize is not None:
            image = image.resize(plan.resize, Image.BICUBIC)
        array = np.asarray(image)
        if array.ndim == 2:
            array = array[:, :, None]
        if plan.crop is not None:
            left, top, w, h = plan.crop
            array = array[top : top + h, left : left + w]
        if plan.flip:
            array = array[:, ::-1]
        # numpy, not torch ops: waking torch's intra-op threads costs far more than this small work on a busy CPU.
        chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)
        chw /= np.float32(127.5)
        chw -= np.float32(1.0)
        return torch.from_numpy(chw)

    def __call__(
        self, input_image: Image.Image, target_image: Image.Image, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A PIL pair of equal size -> ``(input (input_nc, H, W), target (output_nc, H, W))`` in [-1, 1]."""
        if input_image.size != target_image.size:
            (iw, ih), (tw, th) = input_image.size, target_image.size
            raise ValueError(f"input is {iw}x{ih} but target is {tw}x{th}: the two images of a pair must match.")
        plan = self.plan(input_image.size, seed)
        return self.apply(input_image, plan, self.input_nc), self.apply(target_image, plan, self.output_nc)
