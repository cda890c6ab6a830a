"""Paired augmentation for pix2pix: one random crop and flip applied to input and target alike.

Only PIL, numpy and torch (no torchvision): the same preprocessing modes as the authors' code
(``resize_and_crop``, ``crop``, ``scale_width``, ``scale_width_and_crop``, ``none``), with all randomness
drawn from one seed so a sample is reproducible in any process. Label-map inputs (``label_nc``, pix2pixHD's) go
through the same plan with nearest-neighbour resizing and come out one-hot (``data/labels.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..constants import PREPROCESS_MODES, check_choice
from ..images.arrays import check_channels, convert_image
from ..images.labels import (
    LabelMapError,
    check_labels,
    index_array,
    input_channels,
    instance_edges,
    one_hot,
    resize_nearest,
)

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


def _cut(array: np.ndarray, plan: TransformPlan) -> np.ndarray:
    """``plan``'s crop and flip on an already resized ``(H, W, ...)`` array."""
    if plan.crop is not None:
        left, top, w, h = plan.crop
        array = array[top : top + h, left : left + w]
    return array[:, ::-1] if plan.flip else array


class PairedTransform:
    """PIL pair -> two float tensors ``(C, H, W)``, cropped and flipped together.

    ``train=True`` draws the crop position and flip from ``seed``; ``train=False`` is deterministic: no flip,
    ``resize_and_crop`` resizes straight to ``crop_size``, ``crop`` and ``scale_width_and_crop`` take the
    centre crop. ``input_nc``/``output_nc`` (1, 3 or 4) convert channels with ``imaging.convert_image``, so
    ``input_nc=1, output_nc=3`` turns any color dataset into a colorization task. ``size_multiple`` is the
    generator's ``size_multiple`` (256 for ``unet_256``, 4 for the ResNets): ``none`` and ``scale_width`` round
    the output sides to it, the crop modes require ``crop_size`` to be a multiple of it.

    Images come out in [-1, 1]. With ``label_nc > 0`` the input is a class-index map (mode L or P) and comes out
    one-hot, ``(label_nc, H, W)`` in {0, 1}; with ``instance`` an instance-id map (``instance_image``) adds its
    boundary map as one more channel; with ``dontcare`` the label map holds a don't-care class (index ``label_nc``
    or 255) with its own channel after the classes. ``input_channels`` is what the generator must take.
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
        label_nc: int = 0,
        instance: bool = False,
        dontcare: bool = False,
    ) -> None:
        check_choice("preprocess", preprocess, PREPROCESS_MODES)
        self.load_size = _positive_int(load_size, "load_size")
        self.crop_size = _positive_int(crop_size, "crop_size")
        self.size_multiple = _positive_int(size_multiple, "size_multiple")
        check_channels(input_nc, "input_nc")
        check_channels(output_nc, "output_nc")
        self.input_channels = input_channels(input_nc, label_nc, instance, dontcare)
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
        self.label_nc = int(label_nc)
        self.instance = bool(instance)
        self.dontcare = bool(dontcare)

    def __repr__(self) -> str:
        return (
            f"PairedTransform(load_size={self.load_size}, crop_size={self.crop_size}, preprocess={self.preprocess!r}, "
            f"flip={self.flip}, input_nc={self.input_nc}, output_nc={self.output_nc}, train={self.train}, "
            f"size_multiple={self.size_multiple}, label_nc={self.label_nc}, instance={self.instance}, "
            f"dontcare={self.dontcare})"
        )

    def check_size(self, size: tuple[int, int]) -> None:
        """Raise a ValueError when an image of ``size`` (w, h) cannot go through this transform."""
        width, height = size
        if self.preprocess == "crop" and (width < self.crop_size or height < self.crop_size):
            raise ValueError(
                f"image is {width}x{height}, smaller than crop_size={self.crop_size} (preprocess='crop' does not "
                f"resize). Use a smaller crop_size or preprocess='resize_and_crop', which resizes to load_size first."
            )

    def check_maps(self, input_image: Image.Image, instance_image: Image.Image | None) -> None:
        """What ``encode_input`` would refuse, without encoding (cheap enough to run over a whole dataset): with
        ``label_nc`` the input's class indices, with ``instance`` the instance map's presence, size and mode.
        Raises ``LabelMapError`` (its ``side`` says which file)."""
        if self.label_nc:
            check_labels(index_array(input_image), self.label_nc, dontcare=self.dontcare)
        if self.instance:
            self._check_instance(input_image, instance_image)
            index_array(instance_image, "instance map", "instance")

    def _check_instance(self, input_image: Image.Image, instance_image: Image.Image | None) -> None:
        if instance_image is None:
            raise LabelMapError(
                "instance=True needs an instance map for every pair: an I/ folder beside A/ and B/ (same file "
                "names) or an image column passed as load_pairs(column_instance=...).",
                "instance",
            )
        if instance_image.size != input_image.size:
            (iw, ih), (mw, mh) = instance_image.size, input_image.size
            raise LabelMapError(f"the instance map is {iw}x{ih} but the input is {mw}x{mh}.", "instance")

    def _resize(self, width: int, height: int) -> tuple[int, int] | None:
        """The (w, h) to resize an image of ``width`` x ``height`` to before cropping, or None to keep it."""
        load, crop, mode = self.load_size, self.crop_size, self.preprocess
        if mode == "resize_and_crop":
            return (load, load) if self.train else (crop, crop)
        if mode == "scale_width_and_crop" and not self.train and width > height:
            # A wide image scaled to width crop_size would be shorter than the crop: scale its height to it instead
            # (same centre crop, undistorted).
            return (int(crop * width / height), crop)
        if mode in ("scale_width", "scale_width_and_crop"):
            # As the authors' __scale_width: the height follows the aspect ratio but never drops below crop_size.
            target = crop if (mode == "scale_width_and_crop" and not self.train) else load
            new_height = int(max(target * height / width, crop))
            if mode == "scale_width":
                new_height = _round_to_multiple(new_height, self.size_multiple)
            return (target, new_height)
        if mode == "none":
            return (_round_to_multiple(width, self.size_multiple), _round_to_multiple(height, self.size_multiple))
        return None

    def plan(self, size: tuple[int, int], seed: int | None) -> TransformPlan:
        """The resize, crop and flip for an image of ``size`` (w, h); random parts come from ``seed``."""
        self.check_size(size)
        rng = np.random.default_rng(seed)
        resize = self._resize(*size)
        box: tuple[int, int, int, int] | None = None
        if "crop" in self.preprocess:
            crop = self.crop_size
            inner_w, inner_h = resize or size
            if self.train:
                left = int(rng.integers(0, inner_w - crop + 1))
                top = int(rng.integers(0, inner_h - crop + 1))
            else:
                left, top = (inner_w - crop) // 2, (inner_h - crop) // 2
            if (left, top, crop, crop) != (0, 0, inner_w, inner_h):
                box = (left, top, crop, crop)
        if resize == tuple(size):
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
        # numpy, not torch ops: waking torch's intra-op threads costs far more than this small work on a busy CPU.
        chw = np.ascontiguousarray(_cut(array, plan).transpose(2, 0, 1), dtype=np.float32)
        chw /= np.float32(127.5)
        chw -= np.float32(1.0)
        return torch.from_numpy(chw)

    def apply_indices(self, indices: np.ndarray, plan: TransformPlan) -> np.ndarray:
        """A class-index or instance-id map ``(H, W)`` through ``plan`` with nearest-neighbour resizing (never
        interpolated: every output value is an input value) -> ``(h, w)``."""
        if plan.resize is not None:
            indices = resize_nearest(indices, plan.resize)
        return _cut(indices, plan)

    def encode_input(
        self, input_image: Image.Image, plan: TransformPlan, instance_image: Image.Image | None
    ) -> torch.Tensor:
        """The generator's input ``(input_channels, H, W)``: the image in [-1, 1] or the one-hot label map, then
        the instance boundary map (pix2pixHD computes it after resizing and cropping, as here)."""
        if self.label_nc:
            labels = index_array(input_image)
            check_labels(labels, self.label_nc, dontcare=self.dontcare)
            encoded = one_hot(self.apply_indices(labels, plan), self.label_nc, self.dontcare)
        else:
            encoded = self.apply(input_image, plan, self.input_nc).numpy()
        if not self.instance:
            return torch.from_numpy(encoded)
        self._check_instance(input_image, instance_image)
        ids = self.apply_indices(index_array(instance_image, "instance map", "instance"), plan)
        return torch.from_numpy(np.concatenate([encoded, instance_edges(ids)[None]]))

    def __call__(
        self,
        input_image: Image.Image,
        target_image: Image.Image,
        seed: int | None = None,
        instance_image: Image.Image | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A PIL pair of equal size (and its instance map, with ``instance``) ->
        ``(input (input_channels, H, W), target (output_nc, H, W))``."""
        if input_image.size != target_image.size:
            (iw, ih), (tw, th) = input_image.size, target_image.size
            raise ValueError(f"input is {iw}x{ih} but target is {tw}x{th}: the two images of a pair must match.")
        plan = self.plan(input_image.size, seed)
        return self.encode_input(input_image, plan, instance_image), self.apply(target_image, plan, self.output_nc)
