"""What the Space does besides drawing its page: settings, loading the model, checking uploads, translating.

Every failure a user can cause (no model, a non-image, a huge image) becomes a ``gr.Error`` with a message that
says what to do; nothing here lets an exception escape into the Gradio worker unexplained.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pix2pix_hub import ModelInfo, Pix2Pix
from pix2pix_hub.fileio import save_image
from pix2pix_hub.images.labels import INDEX_MODES, index_array, labels_to_image
from pix2pix_hub.images.reading import ImageTooLarge, UnreadableImage, bomb_size, check_max_pixels, check_still

LOGGER = logging.getLogger("pix2pix_space")
DEFAULT_MODEL_ID = "user/facades"
# What each (dataset, direction) pair means to a person, for models whose pix2pix.json does not name the sides.
KNOWN_DIRECTIONS = {
    ("facades", "BtoA"): "label map → photo (CMP facade labels to a building photo)",
    ("facades", "AtoB"): "photo → label map (a building photo to CMP facade labels)",
}


@dataclass(frozen=True)
class Settings:
    """The Space's knobs, all from environment variables so a Space's "Variables" tab can set them."""

    model_id: str = DEFAULT_MODEL_ID
    direction: str | None = None  # AtoB / BtoA; the model's pix2pix.json says when unset
    concurrency_limit: int = 1  # one CPU model: parallel calls only fight over the same cores
    queue_size: int = 100
    max_pixels: int = 2048 * 2048  # 64x a 256x256 image: many seconds on a small CPU (timings in docs/space.md)
    max_file_size: str = "10mb"
    # auto: the repo's model.int8.onnx (if it passed its quality gate) where the CPU has VNNI/AMX; int8 / fp32: force
    precision: str = "auto"

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            model_id=env.get("MODEL_ID") or DEFAULT_MODEL_ID,
            direction=env.get("DIRECTION") or None,
            concurrency_limit=int(env.get("CONCURRENCY_LIMIT", cls.concurrency_limit)),
            queue_size=int(env.get("QUEUE_SIZE", cls.queue_size)),
            max_pixels=int(env.get("MAX_PIXELS", cls.max_pixels)),
            max_file_size=env.get("MAX_FILE_SIZE", cls.max_file_size),
            precision=env.get("PRECISION") or cls.precision,
        )


@dataclass
class LoadedModel:
    """The translator, or the reason there is none; ``status`` is the Markdown shown at the top of the page."""

    model_id: str
    pix2pix: Pix2Pix | None
    status: str
    direction: str

    @property
    def label_nc(self) -> int:
        """The classes of a label-map model's input (its page paints classes); 0 for an image model or none."""
        return self.pix2pix.label_nc if self.pix2pix is not None else 0

    @property
    def style_dim(self) -> int:
        """The style code's length of a SPADE model with a style encoder (its page has a style control); else 0."""
        return self.pix2pix.style_dim if self.pix2pix is not None else 0


def load_model(settings: Settings) -> LoadedModel:
    """Load ``settings.model_id`` (local folder or Hub id); on any failure keep going and explain it in the page."""
    model_id = settings.model_id
    try:
        pix2pix = Pix2Pix.from_pretrained(
            model_id, load_discriminator=False, max_pixels=settings.max_pixels, precision=settings.precision
        )
    except Exception as error:  # noqa: BLE001 - any failure must leave a page that explains it
        LOGGER.warning("Could not load model %r: %s", model_id, error)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        status = (
            f"### ⚠️ Could not load the model `{model_id}`\n\n"
            f"{type(error).__name__}: {reason}\n\n"
            "Point the app at a model and restart it: `MODEL_ID=path/to/folder python spaces_app/app.py` "
            "(a folder written by `Pix2Pix.save_pretrained`, e.g. a training run's output), or "
            "`MODEL_ID=user/repo` for a Hub repo (needs the network, or the repo in the local Hugging Face cache)."
        )
        return LoadedModel(model_id, None, status, describe_direction(settings.direction, ModelInfo()))
    # A first call now: it runs torch and starts preparing the onnxruntime session in the background (opening the
    # repo's model.onnx, or exporting), which then runs while the page starts, not on the first visitor's time.
    side = max(pix2pix.size_multiple, pix2pix.generator.min_size)
    pix2pix.translate_tensor(torch.zeros(1, pix2pix.in_channels, side, side))
    direction = describe_direction(settings.direction, pix2pix.info)
    generator = type(pix2pix.generator).__name__
    params = sum(p.numel() for p in pix2pix.generator.parameters())
    status = (
        f"**Model:** `{model_id}` ({generator}, {params / 1e6:.1f} M parameters, "
        f"{pix2pix.in_channels} → {pix2pix.out_channels} channels) · **Direction:** {direction}"
    )
    if pix2pix.info.dataset:
        status += f" · **Trained on:** `{pix2pix.info.dataset}`"
    if pix2pix.label_nc:
        boundaries = ", instance boundaries from the classes" if pix2pix.info.instance else ""
        status += f" · **Input:** a class-index map, {pix2pix.label_nc} classes{boundaries}"
    if pix2pix.style_dim:
        status += f" · **Styles:** a style encoder ({pix2pix.style_dim}-d codes): a style photo or a seed"
    return LoadedModel(model_id, pix2pix, status + " · " + describe_engine(pix2pix), direction)


def describe_engine(pix2pix: Pix2Pix) -> str:
    """The engine part of the status line: ``**Engine:** onnxruntime int8 (49.8 dB vs fp32, 2.4x fp32's speed on this
    CPU)`` (the int8 graph's PSNR from the fp32 outputs, its speed-up measured here), and why a shipped int8 graph is
    not used, when it is not (what int8 measured against fp32 here, say)."""
    engine = f"**Engine:** {pix2pix.engine}"
    return f"{engine} ({pix2pix.precision_note})" if pix2pix.precision_note else engine


def describe_direction(override: str | None, info: ModelInfo) -> str:
    """The direction line of the page: ``override`` (the DIRECTION variable) or the model's own, with what its
    input and output are (``"BtoA: CMP facade labels → photo"``)."""
    direction = override or info.direction
    if direction is None:
        return "not recorded with the model (set DIRECTION=AtoB or BtoA to show it)"
    # input/output describe the model's own direction: an override to the other one swaps them.
    flipped = info.direction is not None and direction != info.direction
    source, target = (info.output, info.input) if flipped else (info.input, info.output)
    if source and target:
        return f"{direction}: {source} → {target}"
    name = "facades" if info.dataset is None or "facades" in info.dataset.lower() else info.dataset
    known = KNOWN_DIRECTIONS.get((name, direction))
    return f"{direction}: {known}" if known else f"{direction} ({'A → B' if direction == 'AtoB' else 'B → A'})"


def open_upload(path: str | None, max_pixels: int) -> Image.Image:
    """Open an uploaded file as an upright PIL image, refusing non-images and huge images before decoding."""
    if path is None:
        raise gr.Error("Upload an image first (PNG, JPEG or WebP).", title="No image")
    name = Path(path).name
    try:
        image = Image.open(path)  # reads the header only: the size is known before any pixel is decoded
    except Image.DecompressionBombError as error:  # so large that PIL will not even open it
        width, height = bomb_size(path) or (0, 0)
        check_size(width, height, max_pixels)
        raise gr.Error(f"{name} is too large to open ({error}). Downscale it.", title="Image too large") from error
    except (UnidentifiedImageError, OSError) as error:
        raise gr.Error(
            f"{name} is not an image this app can read. Upload a PNG, JPEG or WebP image.", title="Not an image"
        ) from error
    check_size(image.width, image.height, max_pixels)
    try:
        check_still(image, name)
    except UnreadableImage as error:
        raise gr.Error(str(error), title="Animated image") from error
    try:
        image.load()
        return ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001 - truncated files, bombs: tell the user, keep the worker
        raise gr.Error(f"{name} could not be decoded ({error}). Is the file complete?", title="Broken image") from error


def check_size(width: int, height: int, max_pixels: int) -> None:
    """The package's one size rule (``check_max_pixels``), its refusal in the Space's words."""
    try:
        check_max_pixels((width, height), max_pixels, "upload")
    except ImageTooLarge as error:
        raise too_large(error) from None


def too_large(error: ImageTooLarge) -> gr.Error:
    """An image above the limit (``ImageTooLarge``, from an upload or from ``Pix2Pix``) as the Space says it."""
    (width, height), max_pixels = error.size, error.max_pixels
    side = int(max_pixels**0.5)
    return gr.Error(
        f"The image is {width}x{height} pixels ({width * height / 1e6:.1f} MP); this Space translates images "
        f"up to {max_pixels / 1e6:.1f} MP (about {side}x{side}). Downscale it and try again.",
        title="Image too large",
    )


def translate_image(model: LoadedModel, image: Image.Image, **style: Image.Image | int) -> Image.Image:
    """Translate one PIL image; the output has the input's size. ``style``: a SPADE model's ``style=`` photo or
    ``seed=`` (``Pix2Pix.__call__``), none for the zero code."""
    if model.pix2pix is None:
        raise gr.Error(
            f"No model is loaded: `{model.model_id}` could not be loaded. Restart the app with "
            "MODEL_ID=path/to/folder (or a Hub repo id).",
            title="No model",
        )
    try:
        return model.pix2pix(image, **style)  # refuses an image above its max_pixels before any work
    except ImageTooLarge as error:
        raise too_large(error) from error
    except (ValueError, TypeError) as error:
        raise gr.Error(str(error), title="Cannot translate this image") from error
    except MemoryError as error:
        raise gr.Error("Out of memory on this image; try a smaller one.", title="Image too large") from error
    except Exception as error:  # noqa: BLE001 - log the details, show the user a message, keep the worker
        LOGGER.exception("Translation failed")
        raise gr.Error(f"Translation failed: {type(error).__name__}: {error}", title="Translation failed") from error


def translate_drawing(model: LoadedModel, label_map: np.ndarray) -> Image.Image:
    """Translate a snapped ``(H, W, 3)`` uint8 label map."""
    return translate_image(model, Image.fromarray(label_map))


def style_choice(model: LoadedModel, style_path: str | None, seed: str | None, max_pixels: int) -> dict:
    """The style options of a call from the page's style control: the uploaded photo when there is one, else the
    seed shown (digits), else none (the zero code); none for a model without a style encoder."""
    if not model.style_dim:
        return {}
    if style_path:
        return {"style": open_upload(style_path, max_pixels).convert("RGB")}
    seed = (seed or "").strip()
    if seed and not seed.isdigit():
        raise gr.Error(f"The style seed must be a whole number; got {seed!r}.", title="Bad seed")
    return {"seed": int(seed)} if seed else {}


def input_preview(model: LoadedModel, image: Image.Image) -> Image.Image:
    """The input as the comparison slider shows it: a label-map model's class-index map in its class colours
    (its indices would look black), any other image as RGB."""
    if model.label_nc and image.mode in INDEX_MODES:
        return labels_to_image(index_array(image), model.label_nc)
    return image.convert("RGB")


def output_folder() -> Path:
    """Where translated images are written: inside Gradio's upload folder, which Gradio serves as it is."""
    upload_folder = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    folder = Path(upload_folder).resolve() / "pix2pix_outputs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_png(image: Image.Image, folder: Path, max_age_s: float = 3600.0) -> str:
    """Write ``image`` to a new, uniquely named PNG in ``folder``, atomically (``fileio.save_image``), and prune
    outputs older than ``max_age_s`` seconds.

    Returning a PIL image would make Gradio cache it under a name derived from its bytes, rewriting that file in
    place: two requests with the same output (the same example, clicked twice) then race and one downloads a
    truncated file. One file per request cannot be read half-written.

    Returns:
        The PNG's path.
    """
    path = save_image(image, folder / f"{uuid.uuid4().hex}.png", "PNG")
    cutoff = time.time() - max_age_s
    for old in folder.glob("*.png"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except FileNotFoundError:
            pass  # another worker pruned it first
    return str(path)
