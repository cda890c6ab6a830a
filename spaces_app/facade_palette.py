"""The CMP facade label palette of the pix2pix facades images, and label maps drawn by code; for label-map models
(pix2pixHD: ``info.label_nc`` classes), class maps painted in ``labels.label_palette`` colours.

The colours (``pix2pix_hub.images.palettes.FACADE_CLASSES``, their one home) were sampled from the label halves (B,
right) of ``facades/train/*.jpg``, so a drawn map looks like what the model was trained on. Facade
label maps are ``(H, W, 3)`` uint8 RGB arrays; class maps are ``(H, W)`` integer arrays of class indices.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from pix2pix_hub.images.labels import colors_to_labels, label_palette
from pix2pix_hub.images.palettes import FACADE_CLASSES  # name -> RGB, in the order the brush offers them

OPAQUE = 128  # canvas pixels at least this opaque keep their painted class; the rest (erased) are class 0

PALETTE = np.array(list(FACADE_CLASSES.values()), dtype=np.uint8)  # (12, 3)


def to_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def legend_html() -> str:
    """A row of colour swatches with class names, shown next to the drawing canvas."""
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;margin:2px 10px 2px 0">'
        f'<span style="width:14px;height:14px;border:1px solid #888;margin-right:4px;background:{to_hex(rgb)}">'
        f"</span>{name}</span>"
        for name, rgb in FACADE_CLASSES.items()
    )
    return f'<div style="display:flex;flex-wrap:wrap">{items}</div>'


def snap_to_palette(image: np.ndarray, background: tuple[int, int, int] = FACADE_CLASSES["background"]) -> np.ndarray:
    """Map every pixel of a painted image to the nearest palette colour.

    Args:
        image: ``(H, W, 3|4)`` uint8 (or ``(H, W)``). Brush strokes are anti-aliased, so their edges hold blends
            that are no class at all.
        background: the colour of transparent pixels (erased, or never painted).

    Returns:
        ``(H, W, 3)`` uint8 in palette colours.
    """
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    rgb = image[:, :, :3].astype(np.float32)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:4].astype(np.float32) / 255.0
        rgb = rgb * alpha + np.array(background, dtype=np.float32) * (1.0 - alpha)
    distances = ((rgb[:, :, None, :] - PALETTE[None, None].astype(np.float32)) ** 2).sum(axis=3)
    return PALETTE[distances.argmin(axis=2)]


def draw_facade(seed: int, width: int = 256, height: int = 256) -> np.ndarray:
    """A plausible facade label map ``(height, width, 3)`` uint8: floors of windows, balconies, a door, a cornice.

    Deterministic for a given seed and size, so the app's examples are the same on every start.
    """
    rng = np.random.default_rng(seed)
    c = FACADE_CLASSES
    image = Image.new("RGB", (width, height), c["background"])
    draw = ImageDraw.Draw(image)

    def box(x0: float, y0: float, x1: float, y1: float, name: str) -> None:
        draw.rectangle([int(x0), int(y0), max(int(x0), int(x1) - 1), max(int(y0), int(y1) - 1)], fill=c[name])

    # The building fills most of the frame; a strip of sky above, sometimes a neighbour's edge at the sides.
    left = width * rng.uniform(0.0, 0.06)
    right = width * (1 - rng.uniform(0.0, 0.06))
    top = height * rng.uniform(0.04, 0.14)
    box(left, top, right, height, "wall")
    cornice_h = height * rng.uniform(0.03, 0.05)
    box(left, top, right, top + cornice_h, "cornice")

    floors = int(rng.integers(3, 6))
    columns = int(rng.integers(3, 6))
    ground_h = (height - top) * rng.uniform(0.18, 0.26)
    floor_h = (height - top - cornice_h - ground_h) / floors
    bay_w = (right - left) / columns
    has_shutters = rng.random() < 0.5
    for floor in range(floors):
        y = top + cornice_h + floor * floor_h
        box(left, y + floor_h - 3, right, y + floor_h, "trim")
        balcony = floor > 0 and rng.random() < 0.4
        for column in range(columns):
            x = left + column * bay_w
            wx0, wx1 = x + bay_w * 0.3, x + bay_w * 0.7
            wy0, wy1 = y + floor_h * 0.25, y + floor_h * 0.8
            box(wx0, wy0 - floor_h * 0.08, wx1, wy0, "window head")
            box(wx0, wy0, wx1, wy1, "window")
            box(wx0 - 2, wy1, wx1 + 2, wy1 + floor_h * 0.06, "window sill")
            if has_shutters:
                box(wx0 - bay_w * 0.12, wy0, wx0, wy1, "shutter")
                box(wx1, wy0, wx1 + bay_w * 0.12, wy1, "shutter")
            if balcony:
                box(x + bay_w * 0.2, wy1 - floor_h * 0.12, x + bay_w * 0.8, wy1 + floor_h * 0.08, "balcony")

    # Ground floor: shop fronts between columns, one door.
    ground = height - ground_h
    door_column = int(rng.integers(0, columns))
    for column in range(columns):
        x = left + column * bay_w
        box(x, ground, x + bay_w * 0.12, height, "column")
        if column == door_column:
            box(x + bay_w * 0.35, ground + ground_h * 0.2, x + bay_w * 0.65, height, "door")
        else:
            box(x + bay_w * 0.2, ground + ground_h * 0.25, x + bay_w * 0.9, height - ground_h * 0.1, "entrance / shop")
    return np.asarray(image, dtype=np.uint8).copy()


# ----- class maps (label-map models) -----------------------------------------------------------------------------
def class_colors(label_nc: int) -> list[str]:
    """The brush colours of a class map: class k's ``label_palette`` colour as ``#rrggbb``, in class order."""
    return [to_hex(tuple(int(v) for v in rgb)) for rgb in label_palette(label_nc)]


def class_legend_html(label_nc: int) -> str:
    """Swatches numbered by class (a label-map model records how many classes, not their names)."""
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;margin:2px 8px 2px 0">'
        f'<span style="width:14px;height:14px;border:1px solid #888;margin-right:3px;background:{colour}">'
        f"</span>{index}</span>"
        for index, colour in enumerate(class_colors(label_nc))
    )
    return f'<div style="display:flex;flex-wrap:wrap">{items}</div>'


def draw_class_map(seed: int, width: int, height: int, label_nc: int) -> np.ndarray:
    """A class map ``(height, width)`` int64 to start from: class 0 with rectangles of the other classes.

    Deterministic for a given seed, size and class count (the examples are the same on every start).
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), dtype=np.int64)
    if label_nc < 2:
        return labels
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = int(rng.integers(0, max(1, width - 8))), int(rng.integers(0, max(1, height - 8)))
        x1, y1 = x0 + int(rng.integers(8, max(9, width // 2))), y0 + int(rng.integers(8, max(9, height // 2)))
        labels[y0:y1, x0:x1] = int(rng.integers(1, label_nc))
    return labels


def class_map_image(labels: np.ndarray, label_nc: int) -> Image.Image:
    """A class map as a PNG-ready image that keeps its indices: mode P with the class colours as its palette (a
    browser shows colours, ``Pix2Pix`` reads indices), or a 16-bit grey image for more than 256 classes."""
    if label_nc > 256:
        return Image.fromarray(labels.astype(np.uint16))
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(label_palette(label_nc).tobytes())
    return image


def canvas_to_labels(image: np.ndarray, label_nc: int) -> np.ndarray:
    """A painted ``(H, W, 3|4)`` uint8 canvas -> ``(H, W)`` class indices: each pixel's nearest class colour
    (``colors_to_labels``: a brush's anti-aliased edges snap to a class); erased (transparent) pixels class 0."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    labels = colors_to_labels(image[:, :, :3], label_nc)
    if image.shape[2] == 4:
        labels[image[:, :, 3] < OPAQUE] = 0
    return labels
