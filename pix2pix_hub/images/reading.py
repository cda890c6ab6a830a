"""Reading images safely: the header before the pixels, one size limit, errors that name the file.

The one size rule of the package lives here (``check_max_pixels``, ``ImageTooLarge``, ``DEFAULT_MAX_PIXELS``), and
the one answer to "is this an image file?" (``image_extensions``). Shared by ``Pix2Pix`` (``inference.processor``),
the command line (``inference.batch``), ``inference.evaluation``, int8 calibration, ``data`` and the Space. Values
come from files on disk or from datasets rows stored undecoded (``{"bytes", "path"}`` dicts), so a bad image can be
named and a huge one refused before it is decoded. Imports PIL only; ``datasets`` is imported to fetch a remote
file of a streamed dataset, and nowhere else.
"""

from __future__ import annotations

import functools
import io
import os
import struct
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .arrays import convert_image, upright

# Errors PIL raises on corrupt, truncated or foreign files; anything else is a bug and propagates.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, Image.DecompressionBombError)
# Listed first when a message says which files were looked for (``describe_image_extensions``); any suffix PIL opens
# counts as an image.
USUAL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# The largest image taken anywhere unless a caller says otherwise (``Pix2Pix(max_pixels=...)``, ``--max_pixels``): it
# bounds the generator's memory.
DEFAULT_MAX_PIXELS = 4096 * 4096
# A source that cannot split a file into a pair (an aligned A|B image of odd width, say) stores this prefix and
# the reason instead of image bytes, so the row fails when decoded, with that reason, and can be skipped like any other.
BAD_IMAGE_PREFIX = b"pix2pix-hub unreadable image: "


class UnreadableImage(ValueError):
    """An image that cannot be decoded or is too large; the message names the file (or the dataset row)."""


class ImageTooLarge(UnreadableImage):
    """Above ``max_pixels`` (``check_max_pixels``), wherever an image comes in: ``Pix2Pix``, the command line, the
    ONNX and int8 paths, the Space. ``size`` and ``max_pixels`` let a front end (the Space) word its own advice."""

    def __init__(self, where: str, size: tuple[int, int], max_pixels: int) -> None:
        width, height = size
        self.size, self.max_pixels = size, max_pixels
        super().__init__(
            f"{where}: {width}x{height} is {megapixels(width * height)} megapixels, above the limit of "
            f"{megapixels(max_pixels)} (max_pixels={max_pixels}). Downscale it, or raise max_pixels (--max_pixels N) "
            "if you have the memory."
        )


def megapixels(pixels: int) -> str:
    """``pixels`` in millions, as a message shows them: one decimal, more for small images (``0.0101``)."""
    return f"{pixels / 1e6:.1f}" if pixels >= 100_000 else f"{pixels / 1e6:.3g}"


def check_still(image: Image.Image, where: str) -> None:
    """``UnreadableImage`` for an animated image (GIF, APNG, WebP, multi-page TIFF: more than one frame), read
    from its header. A camera's MPO JPEG (the photo, then a preview or depth map) is one picture: its first frame."""
    if getattr(image, "is_animated", False) and image.format != "MPO":
        raise UnreadableImage(
            f"{where}: an animated image ({image.n_frames} frames); only still images are translated. Translate its "
            "frames one by one (PIL.ImageSequence.Iterator) and put them back together."
        )


@functools.cache
def image_extensions() -> frozenset[str]:
    """Lower-case suffixes PIL can open (``.png``, ``.jpg``, ``.tif``, ...): what counts as an image file wherever
    files are searched (training pairs, folders to translate, calibration images)."""
    return frozenset(suffix for suffix, name in Image.registered_extensions().items() if name in Image.OPEN)


def describe_image_extensions() -> str:
    """``image_extensions`` for a message: the usual suffixes first, then how many more (``".png, .jpg, ... and 60
    more suffixes PIL opens"``)."""
    usual = [suffix for suffix in USUAL_SUFFIXES if suffix in image_extensions()]
    more = len(image_extensions()) - len(usual)
    return ", ".join(usual) + (f" and {more} more suffixes PIL opens" if more else "")


def check_max_pixels(size: tuple[int, int], max_pixels: int, where: str) -> None:
    """Raise ``ImageTooLarge`` when ``size`` (width, height) has more than ``max_pixels`` pixels."""
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLarge(where, size, max_pixels)


def bomb_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(width, height)`` stated by the header of a file ``Image.open`` refuses as a decompression bomb (more
    than twice ``Image.MAX_IMAGE_PIXELS``), read by the PIL plugin that accepts it, as ``Image.open`` does but
    without its size check; None when no plugin reads it."""
    Image.init()
    with open(path, "rb") as file:
        prefix = file.read(16)
        for format_id in Image.ID:
            factory, accept = Image.OPEN[format_id]
            accepted = not accept or accept(prefix)
            if not accepted or isinstance(accepted, str):
                continue
            file.seek(0)
            try:
                return factory(file, str(path)).size
            except DECODE_ERRORS + (TypeError,):
                continue
    return None


# ----- files --------------------------------------------------------------------------------------------------
def read_header(path: Path, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` from the file header, without decoding; ``UnreadableImage`` for non-images, animated
    images and huge images."""
    try:
        with Image.open(path) as image:
            size = image.size
            check_still(image, str(path))
    except UnidentifiedImageError:
        raise UnreadableImage(f"{path}: not an image file (PIL cannot identify its format).") from None
    except Image.DecompressionBombError as error:
        size = bomb_size(path)
        if size is None:
            raise UnreadableImage(f"{path}: refused, too large to decode safely ({error}).") from None
    except OSError as error:
        raise UnreadableImage(f"{path}: cannot read the file header ({error}).") from None
    check_max_pixels(size, max_pixels, str(path))
    return size


def load_image(path: Path, channels: int, max_pixels: int) -> Image.Image:
    """Decode ``path`` into a PIL image of ``channels`` channels, upright per EXIF (so outputs look like the
    inputs); 16-bit, CMYK, RGBA, palette and grayscale images are converted by ``arrays.convert_image``."""
    read_header(path, max_pixels)
    try:
        return convert_image(open_image(str(path)), channels)
    except DECODE_ERRORS as error:
        raise UnreadableImage(f"{path}: corrupt or truncated image ({error}).") from None


# ----- stored values (datasets rows) ----------------------------------------------------------------------------
def bad_image_bytes(reason: str) -> bytes:
    """Placeholder bytes for a row whose file could not be turned into an image; ``open_image`` raises ``reason``."""
    return BAD_IMAGE_PREFIX + reason.encode("utf-8", "replace")


def image_file(value: Any) -> str | None:
    """The file name stored with an image value, when there is one."""
    return value.get("path") if isinstance(value, dict) else getattr(value, "filename", None) or None


def open_image(value: Any) -> Image.Image:
    """Decode a stored image value (``{"bytes", "path"}`` dict, a path, or a PIL image) fully, upright per EXIF.

    Raises PIL's own errors (OSError, SyntaxError, ...) on corrupt data; ``ValueError`` for placeholders.
    """
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, str):
        value = {"bytes": None, "path": value}
    if not isinstance(value, dict) or (value.get("bytes") is None and not value.get("path")):
        raise ValueError(f"not an image: {type(value).__name__}")
    data = value.get("bytes")
    if data is not None and data.startswith(BAD_IMAGE_PREFIX):
        raise ValueError(data[len(BAD_IMAGE_PREFIX) :].decode("utf-8", "replace"))
    if data is None and "://" in value["path"] and not os.path.exists(value["path"]):
        import datasets  # only here: an optional extra, and seconds to import

        # A remote file of a streamed dataset (hf://, zip://...::https://): datasets knows how to fetch it.
        return datasets.Image().decode_example(value)
    image = Image.open(io.BytesIO(data) if data is not None else value["path"])
    image.load()  # decode now: truncated files fail here, not somewhere inside the transform
    return upright(image)  # the same upright view as datasets' Image feature gives


def decode_image(value: Any, max_pixels: int, where: str) -> Image.Image:
    """A PIL image from a dataset value, refused (``UnreadableImage``) when unreadable or above ``max_pixels``.

    Args:
        value: a PIL image, or a raw ``{"bytes", "path"}`` dict (``Image(decode=False)``), checked against
            ``max_pixels`` from its header before it is decoded.
        max_pixels: the size limit (``check_max_pixels``).
        where: names the value in errors (with its stored file name).

    Returns:
        The decoded image, upright per EXIF.
    """
    if isinstance(value, Image.Image):
        check_max_pixels(value.size, max_pixels, where)
        return value
    file = image_file(value)
    where = f"{where} ({file})" if file else where
    data = value.get("bytes") if isinstance(value, dict) else None
    try:
        if data is None or not data.startswith(BAD_IMAGE_PREFIX):  # a placeholder has no header to read
            with Image.open(io.BytesIO(data) if data is not None else file) as header:
                check_max_pixels(header.size, max_pixels, where)
        image = open_image(value)
    except UnreadableImage:
        raise
    except DECODE_ERRORS as error:
        raise UnreadableImage(f"{where}: cannot read the image: {error}") from None
    check_max_pixels(image.size, max_pixels, where)
    return image
