"""What ``Pix2Pix`` does to images before its generator and after it (diffusers' ``VaeImageProcessor`` is the model).

    processor = ImageProcessor(in_channels=3, size_multiple=256, min_size=256)
    prepared = processor.preprocess(images, size_mode="pad")
    outputs = [group.restore(generator(group.batch)) for group in prepared.groups]
    results = processor.postprocess(outputs, prepared)   # each output as its input came: kind, size, order

Inputs: PIL images (upright per their EXIF orientation; animated ones and those above ``max_pixels`` refused from
the header, before decoding), uint8 arrays ``(H, W)`` / ``(H, W, C)``, float arrays in [0, 1], tensors
``(C, H, W)`` in [-1, 1]; for a label-map model, class-index maps and their instance maps
(``labels.encode_label_input``). Inputs of one size share a batch (``group_by_size``).

Size rules: the generator takes sides that are multiples of its ``size_multiple`` and at least its ``min_size``.
``size_mode="pad"`` reflect-pads around the centre (edge-pads a side too small to reflect) and crops back;
``"resize"`` resizes to the nearest multiples and back. ``pad_to_multiple`` is the padding in numpy, equal to the
torch one, for the path that never touches torch (onnxruntime on uint8 images) and for calibration inputs.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..hub.model_info import ModelInfo
from ..images.arrays import (
    check_range,
    convert_image,
    image_to_tensor,
    model_to_uint8,
    tensor_to_uint8,
    uint8_to_model,
    uint8_to_tensor,
    upright,
)
from ..images.labels import check_label_channels, encode_label_input, label_map_size
from ..images.reading import DEFAULT_MAX_PIXELS, check_max_pixels, check_still, open_image, read_header
from .calibration import DEFAULT_NUM_CALIBRATION, CalibrationSource, image_files, spread_evenly

ImageLike = Image.Image | np.ndarray | torch.Tensor
# (N, C, H, W) in [-1, 1]: a tensor, or a float32 array on the numpy path.
Batch = torch.Tensor | np.ndarray
logger = logging.getLogger(__name__)


# ----- size rules -------------------------------------------------------------------------------------------------
def pad_box(height: int, width: int, multiple: int, min_size: int = 1) -> tuple[int, int, int, int, bool]:
    """``(top, bottom, left, right, reflect)``: the centred padding that makes H and W multiples of ``multiple``
    and at least ``min_size``. ``reflect`` is False when a side is too small to reflect (replicate it instead)."""
    floor = max(multiple, min_size)
    pad_h = max(floor, height + -height % multiple) - height
    pad_w = max(floor, width + -width % multiple) - width
    top, left = pad_h // 2, pad_w // 2
    bottom, right = pad_h - top, pad_w - left
    return top, bottom, left, right, max(left, right) < width and max(top, bottom) < height


def resize_target(height: int, width: int, multiple: int, min_size: int = 1) -> tuple[int, int]:
    """``(H, W)`` that ``size_mode="resize"`` resizes to: the nearest multiples of ``multiple``, at least
    ``min_size``."""
    floor = max(multiple, min_size)
    return max(floor, round(height / multiple) * multiple), max(floor, round(width / multiple) * multiple)


def fit_to_multiple(
    batch: torch.Tensor, multiple: int, mode: str, min_size: int = 1, nearest: bool = False
) -> tuple[torch.Tensor, Callable[[Batch], Batch]]:
    """Pad or resize ``batch`` so H and W are multiples of ``multiple`` and at least ``min_size``.

    Args:
        batch: ``(N, C, H, W)``.
        multiple: the generator's ``size_multiple``.
        mode: ``"pad"`` or ``"resize"`` (see the module docstring).
        min_size: the generator's ``min_size``.
        nearest: resize by nearest neighbour (one-hot label maps; the output is still restored bilinearly).

    Returns:
        The fitted batch, and a function mapping the generator's output for it back to ``(H, W)``.
    """
    height, width = batch.shape[-2:]
    if mode == "resize":
        target = resize_target(height, width, multiple, min_size)
        if target == (height, width):
            return batch, keep
        if nearest:
            resized = F.interpolate(batch, size=target, mode="nearest-exact")
        else:
            resized = F.interpolate(batch, size=target, mode="bilinear", align_corners=False, antialias=True)
        return resized, lambda out: F.interpolate(out, size=(height, width), mode="bilinear", align_corners=False)
    top, bottom, left, right, reflect = pad_box(height, width, multiple, min_size)
    if not (top or bottom or left or right):
        return batch, keep
    padded = F.pad(batch, (left, right, top, bottom), mode="reflect" if reflect else "replicate")
    return padded, crop(top, left, height, width)


def pad_to_multiple(batch: np.ndarray, multiple: int, min_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``(N, C, H, W)`` -> the batch padded as ``fit_to_multiple`` pads tensors (reflect, or edge when too small to
    reflect), and the ``(top, left)`` offset of the original inside it."""
    top, bottom, left, right, reflect = pad_box(batch.shape[2], batch.shape[3], multiple, min_size)
    if top or bottom or left or right:
        pad = ((0, 0), (0, 0), (top, bottom), (left, right))
        batch = np.pad(batch, pad, mode="reflect" if reflect else "edge")
    return batch, (top, left)


def restore_size(output: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(C, h, w)`` -> ``(C, H, W)`` for ``size`` = (H, W), bilinearly as ``fit_to_multiple`` restores."""
    if tuple(output.shape[-2:]) == tuple(size):
        return output
    return F.interpolate(output[None], size=size, mode="bilinear", align_corners=False)[0]


def keep(output: Batch) -> Batch:
    """The restore step of a batch that needed no fitting."""
    return output


def crop(top: int, left: int, height: int, width: int) -> Callable[[Batch], Batch]:
    """The restore step of a padded batch: the ``height`` x ``width`` window at ``(top, left)`` (numpy or torch)."""
    return lambda output: output[..., top : top + height, left : left + width]


def group_by_size(sizes: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Indices of ``sizes`` grouped by equal size, each group in order, groups in order of first appearance."""
    groups: dict[tuple[int, int], list[int]] = {}
    for index, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(index)
    return list(groups.values())


# ----- what goes in, and how it comes back ----------------------------------------------------------------------
class Kind(enum.Enum):
    """The kind of an input, which its output takes."""

    PIL = "a PIL image"
    UINT8 = "a uint8 array (H, W[, C])"
    FLOAT = "a float array (H, W[, C]) in [0, 1]"
    TENSOR = "a tensor (C, H, W) in [-1, 1]"


@dataclass(frozen=True)
class OutputPlan:
    """How one output goes back: as its input's ``kind``, at its ``(H, W)`` ``size``, on its ``device`` (tensors)."""

    kind: Kind
    size: tuple[int, int]
    device: torch.device | None = None


@dataclass
class Group:
    """Inputs of one size: ``batch`` (stacked and fitted to the generator), their ``indices`` among the call's
    inputs, and ``restore``, which maps the generator's output for ``batch`` back to their size."""

    indices: list[int]
    batch: Batch
    restore: Callable[[Batch], Batch]


@dataclass
class Prepared:
    """``preprocess``'s result: the groups to run and one ``OutputPlan`` per input."""

    groups: list[Group]
    plans: list[OutputPlan]


def input_size(image: Any) -> tuple[int, int] | None:
    """``(width, height)`` of an input without converting it (a PIL image's from its header); None when its shape
    is not an image's (the conversion says what is wrong)."""
    if isinstance(image, Image.Image):
        return image.size
    shape = tuple(image.shape) if isinstance(image, (np.ndarray, torch.Tensor)) else ()
    if isinstance(image, torch.Tensor) and len(shape) >= 2:
        return shape[-1], shape[-2]
    return (shape[1], shape[0]) if len(shape) in (2, 3) else None


def finish(output: Batch, plan: OutputPlan) -> ImageLike:
    """One output ``(C, h, w)`` in [-1, 1] (numpy or torch) -> the kind, size and device ``plan`` says."""
    if tuple(output.shape[-2:]) != plan.size:
        output = restore_size(torch.as_tensor(output), plan.size)
    if plan.kind is Kind.TENSOR:
        return torch.as_tensor(output).to(plan.device)
    if plan.kind is Kind.FLOAT:
        array = torch.as_tensor(output).float().add(1).div(2).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        return array[:, :, 0] if array.shape[2] == 1 else array
    if isinstance(output, torch.Tensor):
        array = tensor_to_uint8(output)
    else:
        array = model_to_uint8(output)
        array = array[:, :, 0] if array.shape[2] == 1 else array
    return Image.fromarray(array) if plan.kind is Kind.PIL else array


class ImageProcessor:
    """Images in, model batches out, and back, for a generator taking ``in_channels`` channels at sides that are
    multiples of ``size_multiple`` and at least ``min_size``; inputs above ``max_pixels`` are refused
    (``images.reading.ImageTooLarge``). ``label_nc`` > 0: the inputs are class-index maps of that many classes
    (with ``instance``, plus instance maps; with ``dontcare``, one more class, the don't-care one, index ``label_nc``
    or 255), one-hot encoded here."""

    def __init__(
        self,
        *,
        in_channels: int,
        size_multiple: int,
        min_size: int,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        label_nc: int = 0,
        instance: bool = False,
        dontcare: bool = False,
    ) -> None:
        self.in_channels = in_channels
        self.size_multiple = size_multiple
        self.min_size = min_size
        self.max_pixels = max_pixels
        self.label_nc = label_nc
        self.instance = instance
        self.dontcare = dontcare

    # ----- in ---------------------------------------------------------------------------------------------------
    def preprocess(
        self,
        images: Sequence[ImageLike],
        instances: Sequence[ImageLike | None] | None = None,
        *,
        size_mode: str = "pad",
        numpy: bool = False,
    ) -> Prepared:
        """Check and convert ``images``, group them by size and fit each group to the generator.

        Args:
            images: the inputs (see the module docstring).
            instances: a label-map model's instance map per input (None entries: the class boundaries serve).
            size_mode: ``"pad"`` or ``"resize"``.
            numpy: when every input is a PIL image or uint8 array and ``size_mode`` is ``"pad"``, prepare them in
                numpy alone (float32 batches, not one torch op: for onnxruntime, whose threads torch's would slow).

        Returns:
            The groups to run through the generator and how each output goes back (``postprocess``).
        """
        images = [self._checked(image, self._where(index, len(images))) for index, image in enumerate(images)]
        if self.label_nc:
            return self._prepare_label_maps(images, instances or [None] * len(images), size_mode)
        if numpy and size_mode == "pad" and images:
            arrays = [self.uint8_array(image) for image in images]
            if all(array is not None for array in arrays):
                return self._prepare_uint8(images, arrays)
        tensors, plans = zip(*(self.to_tensor(image) for image in images)) if images else ((), ())
        return Prepared(self._fit_groups(list(tensors), size_mode), list(plans))

    def fit_batch(self, batch: torch.Tensor, size_mode: str, where: str = "the tensor") -> Group:
        """A ``(N, in_channels, H, W)`` batch in [-1, 1] of any H and W, checked and fitted to the generator."""
        if batch.ndim != 4 or batch.shape[1] != self.in_channels:
            raise ValueError(
                f"This model takes {self.in_channels}-channel images; got a tensor of shape {tuple(batch.shape)}."
            )
        check_max_pixels((batch.shape[-1], batch.shape[-2]), self.max_pixels, where)
        check_range(batch, -1.0, 1.0, "Tensors", "Scale images in [0, 1] with x * 2 - 1.")
        nearest = bool(self.label_nc)  # one-hot maps: interpolating would blend classes
        fitted, restore = fit_to_multiple(batch, self.size_multiple, size_mode, self.min_size, nearest)
        return Group(list(range(batch.shape[0])), fitted, restore)

    def instance_maps(self, instance: Any, count: int, many: bool) -> list[Any]:
        """A call's ``instance=`` as one entry (or None) per input; an error where the model takes none."""
        if instance is None:
            return [None] * count
        if not (self.label_nc and self.instance):
            raise ValueError(
                "instance= is for label-map models recorded with instance maps (info.instance); this one has none."
            )
        if not many:
            return [instance]
        if not isinstance(instance, (list, tuple)) or len(instance) != count:
            raise ValueError(f"instance= must be a list of {count} maps (or None) for a list of {count} label maps.")
        return list(instance)

    def uint8_array(self, image: ImageLike) -> np.ndarray | None:
        """A PIL image or uint8 array as uint8 ``(H, W, in_channels)``; None for other inputs (``to_tensor`` takes
        them, and names what is wrong)."""
        if isinstance(image, Image.Image):
            array = np.asarray(convert_image(image, self.in_channels), dtype=np.uint8)
        elif isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
            array = image
        else:
            return None
        array = array[:, :, None] if array.ndim == 2 else array
        return array if array.shape[2] == self.in_channels else None

    def to_tensor(self, image: ImageLike) -> tuple[torch.Tensor, OutputPlan]:
        """An image input -> ``(in_channels, H, W)`` in [-1, 1] (tensors as they are), and its output's plan."""
        if isinstance(image, Image.Image):
            return image_to_tensor(image, self.in_channels), OutputPlan(Kind.PIL, (image.height, image.width))
        if isinstance(image, torch.Tensor):
            if image.ndim != 3:
                raise ValueError(
                    f"Tensors must be (C, H, W) in a list, or call translate_tensor() with (N, C, H, W); "
                    f"got shape {tuple(image.shape)}."
                )
            return image, OutputPlan(Kind.TENSOR, tuple(image.shape[-2:]), image.device)
        if not isinstance(image, np.ndarray):
            raise TypeError(f"Cannot translate a {type(image).__name__}; pass a PIL image, numpy array or tensor.")
        array = image if image.ndim == 3 else image[:, :, None] if image.ndim == 2 else None
        if array is None or array.shape[2] != self.in_channels:
            raise ValueError(
                f"This model takes {self.in_channels}-channel images; got an array of shape {image.shape} "
                "(expected (H, W) or (H, W, C))."
            )
        size = image.shape[:2]
        if array.dtype == np.uint8:
            return uint8_to_tensor(array), OutputPlan(Kind.UINT8, size)
        check_range(array, 0.0, 1.0, "Float arrays", "Divide 8-bit values by 255, or pass a uint8 array.")
        tensor = torch.from_numpy(np.asarray(array, dtype=np.float32)).permute(2, 0, 1) * 2 - 1
        return tensor, OutputPlan(Kind.FLOAT, size)

    def encode_label_map(self, labels: ImageLike, instance: ImageLike | None, size_mode: str) -> torch.Tensor:
        """A class-index map (and its instance ids) -> the generator's one-hot input ``(label_nc [+ 1] [+ 1], h, w)``
        (``labels.encode_label_input``); under ``size_mode="resize"`` at the size the generator takes."""
        height, width = label_map_size(labels)
        size = None
        if size_mode == "resize":
            size = resize_target(height, width, self.size_multiple, self.min_size)
        return encode_label_input(labels, self.label_nc, self.instance, instance, size, dontcare=self.dontcare)

    @classmethod
    def for_generator(cls, generator: Any, info: ModelInfo, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageProcessor:
        """The processor of ``generator`` (its channels and size rules) for a model recorded as ``info`` (label maps:
        ``label_nc``, ``instance``, ``contain_dontcare_label``, checked against the generator's channels)."""
        labels = {"label_nc": info.label_nc or 0, "instance": bool(info.instance)}
        labels["dontcare"] = bool(info.contain_dontcare_label)
        check_label_channels(generator.in_channels, *labels.values())
        sizes = {"size_multiple": generator.size_multiple, "min_size": generator.min_size, "max_pixels": max_pixels}
        return cls(in_channels=generator.in_channels, **sizes, **labels)

    def calibration_maps(self, source: CalibrationSource | None, count: int = DEFAULT_NUM_CALIBRATION) -> Any:
        """What int8 calibration reads (``calibration.calibration_inputs``).

        Args:
            source: for a label-map model, class-index maps: a folder, or a list of maps, their files or encoded
                tensors; unreadable or bad maps are skipped with a warning, as unreadable images are.
            count: how many, spread evenly over ``source``.

        Returns:
            For a label-map model the maps as the generator's one-hot inputs ``(C, H, W)``; for other models (or
            None) ``source`` as it is.
        """
        if not self.label_nc or source is None:
            return source
        from_folder = isinstance(source, (str, os.PathLike))
        encoded = []
        for item in spread_evenly(image_files(Path(source)) if from_folder else list(source), count):
            try:
                if isinstance(item, (str, os.PathLike)):
                    read_header(Path(item), self.max_pixels)
                    item = open_image(str(item))
                encoded.append(item if isinstance(item, torch.Tensor) else self.encode_label_map(item, None, "pad"))
            except (OSError, ValueError) as error:
                logger.warning("calibration: skipped %s (%s)", item if from_folder else "a label map", error)
        return encoded

    # ----- out ----------------------------------------------------------------------------------------------------
    def postprocess(self, outputs: Sequence[Batch], prepared: Prepared) -> list[ImageLike]:
        """The generator's outputs for ``prepared.groups`` (each already restored by its group's ``restore``) ->
        one output per input, in the inputs' order, each of its input's kind and size."""
        results: list[Any] = [None] * len(prepared.plans)
        for group, output in zip(prepared.groups, outputs):
            for index, item in zip(group.indices, output):
                results[index] = finish(item, prepared.plans[index])
        return results

    # ----- inside -------------------------------------------------------------------------------------------------
    @staticmethod
    def _where(index: int, count: int) -> str:
        return "image" if count == 1 else f"images[{index}]"

    def _checked(self, image: ImageLike, where: str) -> ImageLike:
        """``image`` within ``max_pixels``, before any conversion; a PIL image checked from its header (a still
        one, not too large) before it is decoded, then turned upright."""
        if isinstance(image, Image.Image):
            check_still(image, where)
            check_max_pixels(image.size, self.max_pixels, where)
            return upright(image)
        size = input_size(image)
        if size is not None:
            check_max_pixels(size, self.max_pixels, where)
        return image

    def _fit_groups(self, tensors: list[torch.Tensor], size_mode: str) -> list[Group]:
        """``(C, H, W)`` tensors -> one fitted group per size."""
        groups = []
        for indices in group_by_size([tuple(tensor.shape[-2:]) for tensor in tensors]):
            group = self.fit_batch(torch.stack([tensors[i] for i in indices]), size_mode)
            groups.append(Group(indices, group.batch, group.restore))
        return groups

    def _prepare_uint8(self, images: list[ImageLike], arrays: list[np.ndarray]) -> Prepared:
        """The numpy path: uint8 ``(H, W, C)`` arrays -> padded float32 batches, in numpy alone."""
        plans = [
            OutputPlan(Kind.PIL if isinstance(image, Image.Image) else Kind.UINT8, array.shape[:2])
            for image, array in zip(images, arrays)
        ]
        groups = []
        for indices in group_by_size([array.shape[:2] for array in arrays]):
            height, width = arrays[indices[0]].shape[:2]
            stacked = uint8_to_model(np.stack([arrays[i] for i in indices]))
            batch, (top, left) = pad_to_multiple(stacked, self.size_multiple, self.min_size)
            groups.append(Group(indices, batch, crop(top, left, height, width)))
        return Prepared(groups, plans)

    def _prepare_label_maps(
        self, maps: list[ImageLike], instances: Sequence[ImageLike | None], size_mode: str
    ) -> Prepared:
        """A label-map model's inputs: class-index maps encoded (tensors taken as already one-hot), and grouped."""
        tensors, plans = [], []
        for labels, ids in zip(maps, instances):
            if isinstance(labels, torch.Tensor):
                tensor, plan = self.to_tensor(labels)
            else:
                ids = self._checked(ids, "instance map") if ids is not None else None
                tensor = self.encode_label_map(labels, ids, size_mode)
                kind = Kind.PIL if isinstance(labels, Image.Image) else Kind.UINT8
                plan = OutputPlan(kind, label_map_size(labels))
            tensors.append(tensor)
            plans.append(plan)
        return Prepared(self._fit_groups(tensors, size_mode), plans)
