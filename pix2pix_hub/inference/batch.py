"""Translating many images: plan the jobs (files, folders, dataset rows), read, translate in batches, write.

    plan = file_jobs(Path("photos"), Path("out"), max_pixels=pix2pix.max_pixels)   # or dataset_jobs(pairs, out)
    result = translate_jobs(pix2pix, plan, batch_size=8, warn=print)
    result.written, result.bad    # images written; "name: reason" for each input skipped

One input that cannot be read, translated or written is skipped with a warning and listed in ``result.bad``; the
rest are still written. ``pix2pix-hub translate`` is this module behind an argument parser.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..data.checks import raw_rows
from ..fileio import save_image
from ..images.arrays import convert_image
from ..images.reading import (
    DECODE_ERRORS,
    UnreadableImage,
    decode_image,
    describe_image_extensions,
    image_extensions,
    load_image,
    open_image,
    read_header,
)
from .calibration import spread_indices
from .pipeline import Pix2Pix

logger = logging.getLogger(__name__)

# Images smaller than this on a side are translated, but almost all of what the model sees is padding.
TINY_SIDE = 16
Box = tuple[int, int, int, int]
T = TypeVar("T")


class NoImagesFound(FileNotFoundError):
    """A folder with nothing to translate."""


class OutputConflict(ValueError):
    """Outputs that would replace an input, or that two inputs would both be written to; raised while planning,
    before anything is written."""


@dataclass
class Job:
    """One image to translate: its name in messages, where the output goes, and how to read the input."""

    name: str
    output: Path
    read: Callable[[int | None, int], Image.Image]  # (channels or None: as stored, max_pixels) -> the decoded input
    size: tuple[int, int] = (0, 0)  # (width, height) when known before decoding
    instance: Path | None = None  # its instance-id map, for a label-map model that takes them


@dataclass
class Plan:
    """The jobs, the inputs refused while planning (``"name: reason"``) and the count of non-image files ignored."""

    jobs: list[Job]
    bad: list[str] = field(default_factory=list)
    ignored: int = 0


@dataclass
class TranslationResult:
    """What ``translate_jobs`` did: images written, and ``"name: reason"`` for every input skipped."""

    written: int = 0
    bad: list[str] = field(default_factory=list)

    def skip(self, message: str, warn: Callable[[str], None]) -> None:
        self.bad.append(message)
        warn(f"skipped {message}")


# ----- planning -------------------------------------------------------------------------------------------------
def find_images(folder: Path, exclude: Path | None) -> tuple[list[Path], int]:
    """Files under ``folder`` (recursively, sorted) with an image suffix, and the count of other files ignored."""
    extensions = image_extensions()
    found, ignored = [], 0
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        # Skip hidden folders and the output folder, so a second run does not translate its own outputs.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (root_path / d).resolve() != exclude)
        for name in sorted(files):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in extensions:
                found.append(root_path / name)
            else:
                ignored += 1
    return found, ignored


def file_jobs(
    source: Path, output: Path, *, ext: str | None = None, max_pixels: int, instances: Path | None = None
) -> Plan:
    """Jobs for an image file or a folder (searched recursively), sorted by size so same-size images fill batches.

    Args:
        source: an image file or a folder; outputs keep the inputs' relative names.
        output: the output folder, or for one input a file name with an image suffix.
        ext: the outputs' suffix (default: each input's).
        max_pixels: inputs above it go to ``plan.bad`` (read from their headers now).
        instances: a folder of instance-id maps under the inputs' relative names (or, for one input, the map's
            file), for a label-map model that takes them; an input without one goes to ``plan.bad``.

    Returns:
        The plan: its jobs, the inputs refused (non-images, images too large) and the count of files ignored.

    Raises:
        OutputConflict: before anything is read or written, for an ``output`` that is the input folder, an output
            that is one of the inputs, or two inputs with the same output name (``scan.jpg`` and ``scan.png``
            under ``--ext png``).
        NoImagesFound: a folder without images.
    """
    suffix = f".{ext.lstrip('.')}" if ext else None
    ignored = 0
    if source.is_file():
        targets = {source: output if output.suffix.lower() in image_extensions() else output / source.name}
    else:
        if output.resolve() == source.resolve():
            raise OutputConflict(f"OUTPUT {output} is the input folder: the outputs would replace the inputs.")
        paths, ignored = find_images(source, output.resolve())
        if not paths:
            looked_for = describe_image_extensions()
            raise NoImagesFound(f"No images found under {source} (looked for {looked_for}).")
        targets = {path: output / path.relative_to(source) for path in paths}
    targets = {path: target.with_suffix(suffix) if suffix else target for path, target in targets.items()}
    check_targets(targets)
    plan = Plan([], ignored=ignored)
    for path, target in targets.items():
        instance = None if instances is None else instance_path(instances, source, path)
        try:
            size = read_header(path, max_pixels)
            if instance is not None and not instance.is_file():
                raise UnreadableImage(f"{path}: no instance map {instance}.")
        except UnreadableImage as error:
            plan.bad.append(str(error))
            continue
        plan.jobs.append(Job(str(path), target, partial(load_input, path), size, instance))
    plan.jobs.sort(key=lambda job: (job.size, job.name))
    return plan


def instance_path(instances: Path, source: Path, path: Path) -> Path:
    """Where the instance map of the input ``path`` (under ``source``) is: the same relative name in the folder
    ``instances``, or for one input file the file ``instances`` itself."""
    if source.is_file():
        return instances / source.name if instances.is_dir() else instances
    return instances / path.relative_to(source)


def check_targets(targets: dict[Path, Path]) -> None:
    """``OutputConflict`` when an output (``targets``: input -> output) is one of the inputs, or is the output of
    more than one input; the message lists them."""
    inputs = {file_identity(path) for path in targets}
    for path, target in targets.items():
        if target.exists() and file_identity(target) in inputs:
            raise OutputConflict(f"The output {target} would replace the input {path}; choose another OUTPUT.")
    sources: dict[Path, list[Path]] = {}
    for path, target in targets.items():
        sources.setdefault(target.resolve(), []).append(path)
    shared = [(target, paths) for target, paths in sources.items() if len(paths) > 1]
    if shared:
        listed = "; ".join(f"{target} <- {', '.join(map(str, paths))}" for target, paths in shared[:5])
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        raise OutputConflict(
            f"{len(shared)} output(s) would be written from more than one input (the same output name): {listed}"
            f"{more}. Rename those inputs, or leave out --ext."
        )


def file_identity(path: Path) -> tuple[int, int]:
    """``(device, inode)``: equal for two names of the same file (a symlink, a hard link, ``a/../b``)."""
    status = path.stat()
    return status.st_dev, status.st_ino


def dataset_jobs(pairs: Any, output: Path, *, ext: str | None = None, source: str | None = None) -> Plan:
    """One job per row of ``pairs``, translating its ``input``; rows are read undecoded, so errors name the file.

    Args:
        pairs: ``data.load_pairs`` output.
        output: the folder of the outputs, ``00000.png`` onwards (the suffix ``ext`` when given).
        source: the dataset as given; when it is a local folder, ``output`` may not be it (``OutputConflict``).

    Returns:
        The plan.
    """
    if source is not None and Path(source).is_dir() and output.resolve() == Path(source).resolve():
        raise OutputConflict(f"OUTPUT {output} is the dataset folder: the outputs would be mixed into the dataset.")
    rows = raw_rows(pairs)
    suffix = f".{ext.lstrip('.')}" if ext else ".png"
    jobs = [
        Job(f"row {index}", output / f"{index:05d}{suffix}", partial(load_row, rows, index))
        for index in range(len(rows))
    ]
    return Plan(jobs)


def load_input(path: Path, channels: int | None, max_pixels: int) -> Image.Image:
    """``reading.load_image``: ``path`` decoded, upright, as ``channels`` channels; with ``channels`` None as stored
    (a label-map model's class-index map keeps its indices: mode L, P or I;16, never converted to colours)."""
    if channels is not None:
        return load_image(path, channels, max_pixels)
    read_header(path, max_pixels)
    try:
        return open_image(str(path))
    except DECODE_ERRORS as error:
        raise UnreadableImage(f"{path}: corrupt or truncated image ({error}).") from None


def load_row(rows: Any, index: int, channels: int | None, max_pixels: int) -> Image.Image:
    """The ``input`` image of row ``index``, decoded, as ``channels`` channels (None: as stored, see
    ``load_input``)."""
    image = decode_image(rows[index]["input"], max_pixels, f"row {index}")
    return image if channels is None else convert_image(image, channels)


def dataset_calibration_images(pairs: Any, count: int, channels: int | None, max_pixels: int) -> list[Image.Image]:
    """The ``input`` images of up to ``count`` rows of ``pairs`` (``data.load_pairs`` output), spread evenly over
    it, as ``channels``-channel PIL images (None: as stored, a label-map model's class-index maps): calibration
    inputs for ``Pix2Pix.quantize``. Unreadable rows are skipped."""
    rows = raw_rows(pairs)
    images = []
    for index in spread_indices(len(rows), count):
        try:
            images.append(load_row(rows, index, channels, max_pixels))
        except UnreadableImage as error:
            logger.warning("calibration: skipped %s", error)
    return images


# ----- translating ----------------------------------------------------------------------------------------------
def pad_tiny(image: Image.Image) -> tuple[Image.Image, Box | None]:
    """Edge-replicate an image with a side under ``TINY_SIDE`` up to it; returns the image and the crop box that
    undoes it (None when untouched). Why: a ResNet generator (size_multiple 4) fails on inputs under 8x8, whose
    bottleneck is too small for its reflection padding, and the pipeline passes them through."""
    width, height = image.size
    if min(width, height) >= TINY_SIDE:
        return image, None
    new_width, new_height = max(width, TINY_SIDE), max(height, TINY_SIDE)
    left, top = (new_width - width) // 2, (new_height - height) // 2
    array = np.asarray(image)
    padding = ((top, new_height - height - top), (left, new_width - width - left)) + ((0, 0),) * (array.ndim - 2)
    return Image.fromarray(np.pad(array, padding, mode="edge")), (left, top, left + width, top + height)


def translate_with_retry(
    pix2pix: Pix2Pix, images: Sequence[Any], instances: Sequence[Any] | None = None, **options: Any
) -> list[Any]:
    """``pix2pix(images, **options)``; if the batch fails, each image alone, so that one image the model cannot
    take does not cost the others. Each output is the translated image or, for an image that failed alone, the
    exception. ``instances``: each image's instance map (``pix2pix(..., instance=...)``), or None."""
    if not images:
        return []
    together = options if instances is None else {**options, "instance": list(instances)}
    try:
        return pix2pix(list(images), **together)
    except Exception:  # noqa: BLE001 - retried one by one below, where the failing image is found
        pass
    outputs: list[Any] = []
    for index, image in enumerate(images):
        alone = options if instances is None else {**options, "instance": instances[index]}
        try:
            outputs.append(pix2pix(image, **alone))
        except Exception as error:  # noqa: BLE001 - reported per image by the caller
            outputs.append(error)
    return outputs


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` consecutive items (the last one shorter), drawn lazily from ``items``."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def progress_bar(total: int, enabled: bool, unit: str = "img") -> tqdm:
    """A tqdm bar on stderr; a silent one when not ``enabled``."""
    return tqdm(total=total, unit=unit, disable=not enabled, dynamic_ncols=True)


def translate_jobs(
    pix2pix: Pix2Pix,
    plan: Plan,
    *,
    batch_size: int = 8,
    size_mode: str | None = None,
    dropout_at_test: bool = False,
    progress: bool = False,
    warn: Callable[[str], None] = logger.warning,
    style: Mapping[str, Any] | None = None,
) -> TranslationResult:
    """Read, translate and write every job of ``plan``; one input that fails does not stop the others.

    Args:
        pix2pix: the translator; ``size_mode`` and ``dropout_at_test`` go to its calls.
        style: a SPADE model's style for every call, ``{"style": image}`` or ``{"seed": n}`` (None or empty: the
            zero code).
        plan: ``file_jobs`` or ``dataset_jobs`` output.
        batch_size: images per call.
        progress: show a bar on stderr.
        warn: told of each input skipped (unreadable, failed, unwritable) as it happens, and of images under
            ``TINY_SIDE`` pixels a side (edge-padded, translated and cropped back).

    Returns:
        What was written, and every input skipped with its reason.
    """
    result = TranslationResult()
    for message in plan.bad:
        result.skip(message, warn)
    bar = progress_bar(len(plan.jobs), progress)
    for chunk in batches(plan.jobs, batch_size):
        ready = read_inputs(chunk, pix2pix, result, warn)
        images = [image for _, image, _, _ in ready]
        instances = [ids for _, _, ids, _ in ready]
        instances = instances if any(ids is not None for ids in instances) else None
        options = {"size_mode": size_mode, "dropout_at_test": dropout_at_test, **(style or {})}
        outputs = translate_with_retry(pix2pix, images, instances, **options)
        for (job, _, _, box), output in zip(ready, outputs):
            if isinstance(output, Exception):
                result.skip(f"{job.name}: translation failed ({type(output).__name__}: {output})", warn)
            else:
                write_output(job, output if box is None else output.crop(box), result, warn)
        bar.update(len(chunk))
    bar.close()
    return result


def read_inputs(
    jobs: Sequence[Job], pix2pix: Pix2Pix, result: TranslationResult, warn: Callable[[str], None]
) -> list[tuple[Job, Image.Image, Image.Image | None, Box | None]]:
    """``(job, image ready for the model, its instance map or None, crop box that undoes tiny-image padding)``
    for the jobs that read."""
    ready = []
    # A label-map model's class-index map is read as it is stored (a stand-in for Pix2Pix may lack label_nc).
    channels = None if getattr(pix2pix, "label_nc", 0) else pix2pix.in_channels
    for job in jobs:
        try:
            image = job.read(channels, pix2pix.max_pixels)
            ids = None if job.instance is None else load_input(job.instance, None, pix2pix.max_pixels)
        except UnreadableImage as error:
            result.skip(str(error), warn)
            continue
        padded, box = pad_tiny(image)
        ids = None if ids is None else pad_tiny(ids)[0]
        if box is not None:
            warn(
                f"{job.name} is only {image.width}x{image.height}: it is edge-padded to at least {TINY_SIDE} "
                "pixels a side, translated and cropped back; the model sees almost nothing but padding."
            )
        ready.append((job, padded, ids, box))
    return ready


def write_output(job: Job, image: Image.Image, result: TranslationResult, warn: Callable[[str], None]) -> None:
    try:
        save_image(image, job.output)
    except OSError as error:
        result.skip(f"{job.name}: cannot write {job.output} ({error})", warn)
        return
    result.written += 1
