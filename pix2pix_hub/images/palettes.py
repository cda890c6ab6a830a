"""Colour-coded label maps -> class-index maps, by nearest palette colour; the CMP facades palette's one home.

A palette is an ordered list of classes, each a name and an RGB colour; class ``k`` is the ``k``-th entry, so a
converted map holds ``0 .. K-1`` and trains with ``--label_nc K``. Each pixel takes the class of its nearest palette
colour (Euclidean distance in RGB, 0..255 per channel): JPEG noise and the colour smearing at class edges of a
compressed label map still land on a class. Pixels farther than ``FAR_DISTANCE`` from every palette colour are
counted (``ConversionReport``): many of them mean a wrong palette, or a map that is not colour-coded at all.

A palette file is JSON, either a list ``[{"name": "wall", "color": [0, 48, 254]}, ...]`` or an object
``{"wall": [0, 48, 254], ...}`` (class order = the order in the file). docs/data.md, "Colour-coded label maps".
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# The CMP facade classes (Tylecek and Sara 2013) in the colours of the pix2pix facades label maps, sampled from the
# label halves (B, right) of facades/train/*.jpg: for each class, the median of the pixels nearest to it (JPEG
# noise removed). Name -> RGB, in class order (the Space's brush offers them in this order too). "background" is
# what surrounds the building (sky, street).
FACADE_CLASSES: dict[str, tuple[int, int, int]] = {
    "wall": (0, 48, 254),
    "window": (5, 125, 255),
    "door": (174, 0, 1),
    "balcony": (192, 254, 65),
    "window sill": (113, 250, 156),
    "window head": (39, 251, 228),
    "shutter": (251, 239, 17),
    "cornice": (252, 81, 3),
    "trim": (254, 159, 7),
    "column": (239, 5, 9),
    "entrance / shop": (3, 206, 255),
    "background": (0, 0, 222),
}
# A pixel farther than this from every palette colour (RGB Euclidean distance; the facades colours lie at least 57
# apart) is counted as far: beyond JPEG noise on a flat region, so an edge smear, a wrong palette or a foreign colour.
FAR_DISTANCE = 40.0
MAX_CLASSES = 65536  # a 16-bit PNG holds the indices


class PaletteError(ValueError):
    """A palette that cannot be used (unknown name, unreadable or malformed file); the message names it."""


@dataclass(frozen=True)
class Palette:
    """``names[k]`` is class ``k``, drawn in ``colors[k]``; ``colors`` is ``(K, 3)`` uint8 RGB."""

    name: str
    names: tuple[str, ...]
    colors: np.ndarray

    @property
    def label_nc(self) -> int:
        return len(self.names)


FACADES = Palette("facades", tuple(FACADE_CLASSES), np.array(list(FACADE_CLASSES.values()), dtype=np.uint8))
BUILTIN_PALETTES = {"facades": FACADES}


def load_palette(spec: str | os.PathLike) -> Palette:
    """A built-in palette by name (``facades``) or a JSON palette file (see the module docstring).

    Raises ``PaletteError`` (one line naming the file and what to fix) for an unknown name or a bad file.
    """
    text = os.fspath(spec)
    if text in BUILTIN_PALETTES:
        return BUILTIN_PALETTES[text]
    path = Path(text).expanduser()
    if not path.is_file():
        known = ", ".join(BUILTIN_PALETTES)
        raise PaletteError(f"palette {text!r} is neither a built-in palette ({known}) nor a JSON file.")
    try:
        values = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as error:
        raise PaletteError(f"palette file {text}: not readable JSON ({' '.join(str(error).split())}).") from error
    return Palette(path.stem, *_parse_entries(values, text))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"class {repeated[0]!r} is listed twice")
    return dict(pairs)


def _parse_entries(values: Any, where: str) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, (K, 3) uint8 colours) of a decoded palette file; ``PaletteError`` naming ``where`` otherwise."""
    usage = 'a list of {"name": ..., "color": [r, g, b]} or an object {"name": [r, g, b], ...}'
    if isinstance(values, dict):
        entries = list(values.items())
    elif isinstance(values, list) and all(isinstance(v, dict) and set(v) == {"name", "color"} for v in values):
        entries = [(v["name"], v["color"]) for v in values]
    else:
        raise PaletteError(f"palette file {where}: expected {usage}.")
    if not 1 <= len(entries) <= MAX_CLASSES:
        raise PaletteError(f"palette file {where}: {len(entries)} classes; give 1 to {MAX_CLASSES}, as {usage}.")
    names, colors = [], []
    for name, color in entries:
        ok = isinstance(color, list) and len(color) == 3
        if not (isinstance(name, str) and ok and all(type(c) is int and 0 <= c <= 255 for c in color)):
            raise PaletteError(f"palette file {where}: class {name!r} has colour {color!r}; give [r, g, b] in 0..255.")
        names.append(name)
        colors.append(color)
    if len(set(names)) < len(names):
        raise PaletteError(f"palette file {where}: a class name is listed twice; each class needs its own name.")
    seen: dict[tuple[int, ...], str] = {}
    for name, color in zip(names, colors):
        if tuple(color) in seen:
            raise PaletteError(
                f"palette file {where}: classes {seen[tuple(color)]!r} and {name!r} share the colour {color}; "
                "a colour can stand for one class only."
            )
        seen[tuple(color)] = name
    return tuple(names), np.array(colors, dtype=np.uint8)


def nearest_classes(rgb: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's nearest palette colour (ties: the lower class).

    Distances are computed once per distinct colour of the image (a JPEG label map holds a few thousand), not once
    per pixel, in integers (exact).

    Args:
        rgb: ``(H, W, 3)`` uint8.
        colors: ``(K, 3)`` uint8, the palette.

    Returns:
        ``(H, W)`` int64 class indices and ``(H, W)`` float32 distances to the chosen colour.
    """
    pixels = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
    packed = (pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2]
    distinct, inverse = np.unique(packed, return_inverse=True)
    values = np.stack([distinct >> 16, (distinct >> 8) & 255, distinct & 255], axis=1)
    palette = np.asarray(colors, dtype=np.int32)
    classes = np.empty(len(values), dtype=np.int64)
    squared = np.empty(len(values), dtype=np.int64)
    step = max(1, 4_000_000 // max(1, len(palette)))  # bounded memory: chunk x classes distances at a time
    for start in range(0, len(values), step):
        chunk = np.zeros((len(values[start : start + step]), len(palette)), dtype=np.int32)
        for channel in range(3):  # one channel at a time: no (chunk, K, 3) temporary
            chunk += (values[start : start + step, channel, None] - palette[None, :, channel]) ** 2
        classes[start : start + step] = chunk.argmin(axis=1)
        squared[start : start + step] = chunk.min(axis=1)
    shape = np.shape(rgb)[:2]
    inverse = inverse.reshape(-1)
    return classes[inverse].reshape(shape), np.sqrt(squared[inverse]).astype(np.float32).reshape(shape)


@dataclass
class ConversionReport:
    """What a conversion found: pixels seen and far ones, the file with the largest far share, pixels per class."""

    palette: Palette
    far_distance: float
    files: int = 0
    pixels: int = 0
    far: int = 0
    worst_file: str | None = None
    worst_share: float = 0.0
    class_pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def add(self, where: str, classes: np.ndarray, distances: np.ndarray) -> None:
        """Count one converted map: ``classes`` and ``distances`` as ``nearest_classes`` returns them."""
        far = int((distances > self.far_distance).sum())
        counts = np.bincount(classes.reshape(-1), minlength=self.palette.label_nc)
        self.class_pixels = counts if not self.class_pixels.size else self.class_pixels + counts
        self.files += 1
        self.pixels += classes.size
        self.far += far
        share = far / max(1, classes.size)
        if self.worst_file is None or share > self.worst_share:
            self.worst_file, self.worst_share = where, share

    @property
    def far_share(self) -> float:
        return self.far / max(1, self.pixels)

    def classes_found(self) -> list[str]:
        return [name for name, count in zip(self.palette.names, self.class_pixels) if count]

    def summary(self) -> str:
        """One line: far pixels of all, their share, the threshold, and the worst file."""
        line = (
            f"{self.far} of {self.pixels} pixels ({100 * self.far_share:.2f}%) were more than {self.far_distance:g} "
            f"from every palette colour"
        )
        if self.worst_file is not None:
            line += f"; worst file {self.worst_file}: {100 * self.worst_share:.1f}% far"
        return line


class PaletteConversion:
    """Turns the colour-coded side of each pair into a class-index map and keeps a ``ConversionReport``.

    Args:
        palette: the classes and their colours.
        side: ``"A"`` or ``"B"``, which image of each pair is the colour-coded label map.
        far_distance: the distance beyond which a pixel counts as far from every palette colour.
    """

    def __init__(self, palette: Palette, side: str, far_distance: float = FAR_DISTANCE) -> None:
        if side not in ("A", "B"):
            raise ValueError(f"side={side!r} must be 'A' or 'B', the label map's side of each pair.")
        if not far_distance > 0:
            raise ValueError(f"far_distance={far_distance!r} must be positive (an RGB distance, 0..441).")
        self.palette, self.side, self.far_distance = palette, side, float(far_distance)
        self.report = ConversionReport(palette, self.far_distance)

    def convert(self, image: Image.Image, where: str) -> Image.Image:
        """A colour-coded ``image`` (any mode PIL converts to RGB) -> a single-channel class-index image: mode
        ``L`` (``I;16`` beyond 256 classes) holding ``0 .. K-1``, the same size. ``where`` names it in the report."""
        classes, distances = nearest_classes(np.asarray(image.convert("RGB")), self.palette.colors)
        self.report.add(where, classes, distances)
        if self.palette.label_nc > 256:
            return Image.fromarray(classes.astype(np.uint16))
        return Image.fromarray(classes.astype(np.uint8))  # 2-D uint8: mode L
