"""Side-by-side A|B files (the authors' format: A the left half, B the right half) as pairs of images.

``aligned_pairs(files)`` splits every file once and keeps the halves in an Arrow cache (``datasets``), keyed by the
files' names, sizes and modification times; ``split_halves`` splits one file (``data prepare`` uses it too). A file
that cannot be read or split becomes placeholder bytes that fail with the reason when decoded, so ``check_pairs``
names it and ``--skip_bad_samples`` skips it like any other bad pair.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from typing import Any

from PIL import Image, ImageOps

from ..images.arrays import convert_image
from ..images.reading import DECODE_ERRORS, bad_image_bytes

# Bump when the stored form of split A|B halves changes, so old caches are not reused.
ALIGNED_CACHE_VERSION = 2


def aligned_pairs(files: list[str], streaming: bool = False, cache_dir: str | None = None) -> Any:
    """Split each A|B file into two images, stored once as uncompressed TIFF in an Arrow cache.

    Uncompressed because it decodes faster than the JPEG or PNG it came from (every epoch decodes it again); the
    cache is keyed by the files' names, sizes and modification times, so edits are picked up.

    Args:
        files: the side-by-side files, absolute paths.
        streaming: split them as they are read instead, nothing cached.
        cache_dir: where ``datasets`` keeps the cache (unset: its default).

    Returns:
        A ``datasets.Dataset`` (an ``IterableDataset`` with ``streaming``) with columns ``imageA``/``imageB``.
    """
    import datasets

    features = datasets.Features({"imageA": datasets.Image(), "imageB": datasets.Image()})
    if streaming:
        return datasets.IterableDataset.from_generator(_aligned_rows, features=features, gen_kwargs={"files": files})
    stamps = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    key = json.dumps([ALIGNED_CACHE_VERSION, stamps]).encode()
    fingerprint = "pix2pix-aligned-" + hashlib.sha256(key).hexdigest()[:32]
    return datasets.Dataset.from_generator(
        _aligned_rows, features=features, gen_kwargs={"files": files}, cache_dir=cache_dir, fingerprint=fingerprint
    )


def _aligned_rows(files: list[str]):
    for file in files:
        left, right = split_aligned_file(file)
        # Not the bare file name: datasets would store a path to an existing file instead of the bytes.
        yield {
            "imageA": {"bytes": left, "path": f"{file} (left half)"},
            "imageB": {"bytes": right, "path": f"{file} (right half)"},
        }


def split_aligned_file(file: str) -> tuple[bytes, bytes]:
    """The left (A) and right (B) halves of a side-by-side file, as image bytes.

    Returns:
        ``(A bytes, B bytes)``. A file that cannot be read or split (corrupt, not an image, odd width) gives
        placeholder bytes that fail with the reason when decoded: ``check_pairs`` then names it,
        ``skip_bad_samples`` skips it.
    """
    try:
        left, right = split_halves(file)
        return _encode_tiff(left), _encode_tiff(right)
    except DECODE_ERRORS as error:
        reason = bad_image_bytes(str(error) if str(file) in str(error) else f"{file}: {error}")
        return reason, reason


def split_halves(file: str | os.PathLike) -> tuple[Image.Image, Image.Image]:
    """The left (A) and right (B) halves of a side-by-side file, upright (EXIF orientation applied).

    Raises what decoding raises (``DECODE_ERRORS``), and ValueError for an odd width.
    """
    with Image.open(file) as opened:
        opened.load()
        image = opened
        if image.getexif().get(Image.ExifTags.Base.Orientation) is not None:
            image = ImageOps.exif_transpose(image)
        width, height = image.size
        if width % 2:
            raise ValueError(
                f"{file} is {width}x{height}: a side-by-side A|B image needs an even width (A is the left "
                "half, B the right half). Fix the file or use A/ and B/ folders."
            )
        half = width // 2
        return image.crop((0, 0, half, height)), image.crop((half, 0, width, height))


def _encode_tiff(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="TIFF")
    except (OSError, KeyError, ValueError):
        # A mode TIFF cannot store: keep the channels the model could use.
        buffer = io.BytesIO()
        convert_image(image, 1 if len(image.getbands()) == 1 else 3).save(buffer, format="TIFF")
    return buffer.getvalue()
