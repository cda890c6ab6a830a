"""``Pix2Pix``: the one-line user object. Load a translator, call it on images, save and share it.

Repo layout (one folder, readable by ``UNetGenerator.from_pretrained`` too):

    config.json, model.safetensors          the generator (its constructor arguments + weights)
    pix2pix.json                            the model's facts (direction, input/output, dataset): ModelInfo
    discriminator/config.json, .safetensors  the discriminator, when kept for fine-tuning
    README.md                               model card from model_card.md (the facts again in its YAML)
    samples.png                             a sample grid, when given
    model.onnx, model.int8.onnx             optional: the generator as fp32 and int8 ONNX graphs, each recording the
                                            weights it was made from (so a Space starts without exporting)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import HfApi, snapshot_download
from PIL import Image
from torch import nn

from ..constants import (
    BACKENDS,
    CARD_NAME,
    CONFIG_NAME,
    DISCRIMINATOR_DIR,
    INT8_ONNX_NAME,
    MODEL_INFO_NAME,
    ONNX_NAME,
    PICKLE_SUFFIXES,
    PRECISIONS,
    SAMPLES_NAME,
    SIZE_MODES,
    WEIGHTS_NAME,
    check_choice,
)
from ..fileio import atomic_directory, save_image, write_bytes, write_text

# Re-exported for modules that still import it from here (training); it lives in fileio.
from ..fileio import replace_directory as replace_directory
from ..hub.model_card import render_model_card
from ..hub.model_info import ModelInfo
from ..images.arrays import (
    check_range,
    convert_image,
    image_to_tensor,
    pad_box,
    tensor_to_image,
    tensor_to_uint8,
    uint8_to_tensor,
    upright,
)
from ..images.labels import check_label_channels, encode_label_input, label_map_size
from ..images.reading import check_still
from ..models import DISCRIMINATOR_CLASSES, GENERATOR_CLASSES, PatchDiscriminator
from ..models.hub import WeightsNotFoundError, pickle_refusal, read_config
from .calibration import DEFAULT_NUM_CALIBRATION, CalibrationSource
from .onnx_engine import OnnxGenerator, PrebuiltGraph, cpu_generator, export_for_shipping
from .precision import OnnxEngine, onnx_patterns
from .quantize import DEFAULT_MIN_PSNR_DB

ImageLike = Image.Image | np.ndarray | torch.Tensor
DEFAULT_MAX_PIXELS = 4096 * 4096
# Only these files are ever fetched from a Hub repo, in any folder (fnmatch's * crosses "/"): pickles are never
# even downloaded. The ONNX graphs are added by name, and only when they may be run (``download_patterns``).
ALLOWED_PATTERNS = ["*.json", "*.safetensors", "*.md", "*.png"]


class Pix2Pix:
    """A trained pix2pix translator: a generator, optionally its discriminator, and image handling.

    Call it on a PIL image, a numpy array (``(H, W)`` / ``(H, W, C)``, uint8 or float in [0, 1]), a tensor
    (``(C, H, W)`` / ``(N, C, H, W)`` in [-1, 1]) or a list of them; it returns the same kind and size (a PIL
    image upright per its EXIF orientation, as it is displayed). Floats and tensors outside their range, and
    animated images, are refused. Sides that are not multiples of the generator's ``size_multiple`` are handled
    by ``size_mode``: ``"pad"`` (reflect-pad, translate, crop back; default) or ``"resize"`` (resize to the
    nearest multiple and back). Images above ``max_pixels`` are refused rather than exhausting memory; a PIL
    image not yet decoded (``Image.open``) is refused from its header, before decoding.

    ``backend``: ``"auto"`` (default) runs the generator through onnxruntime on a CPU, faster than eager torch on
    most CPUs (figures in docs/performance.md) with outputs equal within 1e-4 (exported on first use and again
    whenever the weights change), and through torch on other devices or if the export fails; ``"onnxruntime"``
    insists on it (errors are raised); ``"torch"`` turns it off. ``dropout_at_test`` always runs in torch.

    ``info``: what the model does (direction, input and output, dataset; a ``ModelInfo``), saved as
    ``pix2pix.json`` and read back by ``from_pretrained``; empty when unknown.

    int8: ``from_pretrained(..., precision=...)`` runs a shipped ``model.int8.onnx`` where the CPU makes it faster,
    and ``quantize(calibration)`` builds one; ``engine`` then reads e.g. ``"onnxruntime int8 (49.8 dB vs fp32, 2.7x)"``.

    Label-map models (pix2pixHD; ``info.label_nc`` classes, ``info.instance``): the input is a class-index map, a
    PIL image of mode ``L``, ``P`` (its indices, not its colours) or ``I;16``, or an ``(H, W)`` integer array,
    one-hot encoded by ``labels.encode_label_input`` (resized by nearest neighbour only). With ``info.instance``,
    ``pix2pix(labels, instance=ids)`` adds an instance-id map's boundaries; without one the class boundaries serve.
    An RGB image is taken only when every pixel is exactly a colour of ``labels.label_palette`` (a picture made by
    ``labels_to_image``), read back by ``colors_to_labels``; any other RGB image is refused (a class-index map is
    expected). Values ``>= label_nc`` are refused, naming them. Tensors are taken as already encoded (one-hot).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: PatchDiscriminator | None = None,
        *,
        size_mode: str = "pad",
        max_pixels: int = DEFAULT_MAX_PIXELS,
        batch_size: int = 8,
        backend: str = "auto",
        info: ModelInfo | None = None,
    ) -> None:
        check_choice("size_mode", size_mode, SIZE_MODES)
        check_choice("backend", backend, BACKENDS)
        self.generator = generator
        self.discriminator = discriminator
        self.size_mode = size_mode
        self.max_pixels = max_pixels
        self.batch_size = batch_size
        self.backend = backend
        self.info = ModelInfo() if info is None else info
        check_label_channels(generator.in_channels, self.info.label_nc, self.info.instance)
        self._engine = OnnxEngine(generator, backend)  # fp32 or int8 on onnxruntime, and why (precision.py)

    # ----- loading and saving -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        model_id: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        device: str | torch.device = "cpu",
        load_discriminator: bool = True,
        precision: str = "auto",
        calibration: CalibrationSource | None = None,
        **options: Any,
    ) -> Pix2Pix:
        """Load from a local folder or a Hub repo id; the architecture comes from ``config.json`` (and
        ``discriminator/config.json``), the facts from ``pix2pix.json``. ``options`` go to the constructor.

        ``precision`` of the generator on onnxruntime (CPU): ``"auto"`` (default) runs the folder's
        ``model.int8.onnx`` when its stored quality report passed its gate and this CPU has VNNI or AMX (else fp32,
        and ``precision_note`` says why, also logged); ``"int8"`` insists (also on a CPU where int8 is not faster,
        with a note) and, when the folder has no int8 graph, builds one from ``calibration`` (a folder of input
        images or a list of them; see ``quantize``) into the model folder if it is a writable local one, else into
        the ONNX cache, and raises without either; ``"fp32"`` never uses int8. A folder's ``model.onnx`` made from
        these weights is run instead of exporting them.
        """
        check_choice("precision", precision, PRECISIONS)
        folder = Path(model_id)
        local = folder.is_dir()
        if not local:
            patterns = download_patterns(options.get("backend", "auto"), device, precision, calibration)
            folder = Path(
                snapshot_download(
                    str(model_id),
                    revision=revision,
                    cache_dir=cache_dir,
                    token=token,
                    local_files_only=local_files_only,
                    allow_patterns=patterns,
                )
            )
        if not (folder / CONFIG_NAME).is_file():
            pickles = [p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES)]
            if pickles:
                raise WeightsNotFoundError(pickle_refusal(str(model_id), pickles))
            raise FileNotFoundError(
                f"{model_id} has no {CONFIG_NAME}: it is not a folder written by save_pretrained()."
            )
        info = ModelInfo.load(folder)
        generator = load_network(folder, GENERATOR_CLASSES, "generator", "UNetGenerator", device)
        discriminator = None
        if load_discriminator and (folder / DISCRIMINATOR_DIR / WEIGHTS_NAME).is_file():
            discriminator = load_network(
                folder / DISCRIMINATOR_DIR, DISCRIMINATOR_CLASSES, "discriminator", "PatchDiscriminator", device
            )
        pix2pix = cls(generator, discriminator, info=info, **options)
        build_into = folder if local and writable_folder(folder) else None  # never into the Hugging Face cache
        pix2pix._engine.choose(folder, precision, calibration, build_into, pix2pix.max_pixels)
        return pix2pix

    # ----- precision: the int8 graph --------------------------------------------------------------------
    def quantize(
        self,
        calibration: CalibrationSource,
        *,
        path: str | os.PathLike | None = None,
        num_calibration: int = DEFAULT_NUM_CALIBRATION,
        min_psnr_db: float = DEFAULT_MIN_PSNR_DB,
    ) -> dict[str, Any]:
        """Build the int8 graph of the generator's current weights and return its report (``psnr_db``...).

        ``calibration``: a folder of typical input images or a list of them (``calibration.calibration_inputs``),
        of which ``num_calibration`` spread evenly are used, a quarter held back for the quality gate: below
        ``min_psnr_db`` dB PSNR from the fp32 outputs a ``QuantizationQualityError`` carries the figure and nothing
        is written. The graph goes to ``path`` (default: the ONNX cache, reused for the same weights and inputs);
        from then on it runs where the CPU makes int8 faster (else ``precision_note`` says why not), and
        ``save_pretrained(..., onnx=True)`` ships it.
        """
        return self._engine.build_int8(
            calibration, path, max_pixels=self.max_pixels, count=num_calibration, min_psnr=min_psnr_db
        )

    @property
    def int8_graph(self) -> PrebuiltGraph | None:
        """The int8 graph made from these weights (its ``path`` and quality ``report``), whether in use or not."""
        return self._engine.int8

    @property
    def precision_note(self) -> str | None:
        """Why int8 is not used, or is used although slow (one line, also logged); None otherwise."""
        return self._engine.note

    @property
    def _onnx(self) -> OnnxGenerator | None:
        """What a deterministic call runs on onnxruntime (None: torch)."""
        return self._engine.runner

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        card: str | None = None,
        sample_grid: Image.Image | None = None,
        info: ModelInfo | None = None,
        onnx: bool = False,
        extra_files: Mapping[str, str | os.PathLike] | None = None,
    ) -> Path:
        """Write the repo folder (see module docstring). ``card`` is the README text; one is rendered if None.
        ``info`` (default: this model's ``info``) is written as ``pix2pix.json``.

        ``onnx=True`` adds the generator's ONNX graphs, so that ``from_pretrained`` (a Space) runs them instead of
        exporting at start: ``model.onnx`` (fp32, exported now and checked against torch) and ``model.int8.onnx``
        when this model has an int8 graph of its current weights (shipped with it, or built by ``quantize``).
        ``extra_files``: more files to include, ``{path in the folder: local file}`` (e.g. the widget images a
        card names, ``samples/input.png``); a path one of the folder's own files takes is refused.

        The folder is assembled next to its destination and replaces it whole at the end (``fileio``), so an
        interrupted save leaves the old folder, or none, never a half-written model.
        """
        info = self.info if info is None else info
        destination = Path(save_directory)
        extras = checked_extra_files(extra_files, onnx=onnx, sample_grid=sample_grid is not None)
        int8 = self._engine.current_int8() if onnx else None
        with atomic_directory(destination) as staging:
            self.generator.save_pretrained(staging)
            info.save(staging)
            if self.discriminator is not None:
                self.discriminator.save_pretrained(staging / DISCRIMINATOR_DIR)
                # The mixin writes a generic card there; the model's card is the one at the top.
                (staging / DISCRIMINATOR_DIR / CARD_NAME).unlink(missing_ok=True)
            if sample_grid is not None:
                save_image(sample_grid, staging / SAMPLES_NAME)
            if card is None:
                samples = SAMPLES_NAME if sample_grid is not None else None
                card = render_model_card(self, info=info, sample_grid=samples)
            write_text(staging / CARD_NAME, card)
            if onnx:
                with cpu_generator(self.generator) as generator:
                    export_for_shipping(generator, staging / ONNX_NAME)
            if int8 is not None:
                write_bytes(staging / INT8_ONNX_NAME, int8.path.read_bytes())
            for name, source in extras.items():
                write_bytes(staging / name, source.read_bytes())
        return destination

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool | None = None,
        branch: str | None = None,
        create_pr: bool = False,
        commit_message: str = "Upload pix2pix model",
        card: str | None = None,
        sample_grid: Image.Image | None = None,
        info: ModelInfo | None = None,
        onnx: bool = False,
        extra_files: Mapping[str, str | os.PathLike] | None = None,
    ) -> str:
        """Create ``repo_id`` if needed and upload the folder ``save_pretrained`` writes, in one commit that also
        deletes the files of an earlier push the new folder does not have (e.g. an old ``discriminator/``);
        ``.gitattributes`` is kept. ``branch``: commit there (created from main if missing); ``create_pr``: open a
        pull request instead of committing. ``onnx`` and ``extra_files`` as for ``save_pretrained``: the ONNX
        graphs, and files such as the widget images the card shows (``samples/input.png``), which would otherwise
        be deleted from the repo. Returns the commit (or pull request) URL.
        """
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
        if branch is not None:
            api.create_branch(repo_id=repo_id, branch=branch, exist_ok=True)
        if card is None:  # the usage snippet loads the repo actually pushed to
            card = render_model_card(
                self, repo_id=repo_id, info=info, sample_grid=SAMPLES_NAME if sample_grid is not None else None
            )
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(
                Path(tmp) / "repo", card=card, sample_grid=sample_grid, info=info, onnx=onnx, extra_files=extra_files
            )
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                commit_message=commit_message,
                revision=branch,
                create_pr=create_pr,
                delete_patterns="*",
            )
        return str(getattr(commit, "pr_url", None) or getattr(commit, "commit_url", commit))

    @property
    def direction(self) -> str | None:
        """``"AtoB"`` or ``"BtoA"``: which side of the training pairs was the input; None when not recorded."""
        return self.info.direction

    # ----- inference ----------------------------------------------------------------------------------
    @property
    def in_channels(self) -> int:
        return self.generator.in_channels

    @property
    def out_channels(self) -> int:
        return self.generator.out_channels

    @property
    def size_multiple(self) -> int:
        return self.generator.size_multiple

    @property
    def label_nc(self) -> int:
        """The classes of a label-map model's input (``info.label_nc``); 0 for a model that takes images."""
        return self.info.label_nc or 0

    @property
    def engine(self) -> str:
        """What the next (deterministic) call runs on: ``"torch"``, ``"onnxruntime"`` (fp32), or with an int8 graph
        ``"onnxruntime int8 (49.8 dB vs fp32, 2.7x)"`` (the worst held-out image's PSNR from the fp32 outputs)."""
        return self._engine.describe()

    @property
    def precision(self) -> str:
        """``"int8"`` when the next (deterministic) call runs the int8 graph, else ``"fp32"``."""
        return self._engine.precision

    @property
    def _runs_onnx(self) -> bool:
        return self._engine.active

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device: str | torch.device) -> Pix2Pix:
        self.generator.to(device)
        if self.discriminator is not None:
            self.discriminator.to(device)
        return self

    def __call__(
        self,
        images: ImageLike | Sequence[ImageLike],
        *,
        instance: ImageLike | Sequence[ImageLike | None] | None = None,
        size_mode: str | None = None,
        dropout_at_test: bool = False,
    ) -> Any:
        """Translate one image or a list; returns the same kind, size and (for lists) order.

        ``instance``: for a label-map model recorded with instance maps, the instance-id map of each input (one,
        or a list as long as ``images``; None: the class boundaries serve).
        ``dropout_at_test=True`` keeps dropout on and uses batch statistics, as the paper does at test time
        (outputs then vary between calls); the default is the deterministic eval mode.
        """
        many = isinstance(images, (list, tuple))
        images = list(images) if many else [images]
        instances = self._instance_maps(instance, len(images), many)
        if self.label_nc:
            outputs = self._translate_label_maps(images, instances, size_mode, dropout_at_test)
        else:
            outputs = self._translate_many(images, size_mode, dropout_at_test)
        return outputs if many else outputs[0]

    def _instance_maps(self, instance: Any, count: int, many: bool) -> list[Any]:
        """``instance`` as one entry (or None) per image; an error where the model takes none."""
        if instance is None:
            return [None] * count
        if not (self.label_nc and self.info.instance):
            raise ValueError(
                "instance= is for label-map models recorded with instance maps (info.instance); this one has none."
            )
        if not many:
            return [instance]
        if not isinstance(instance, (list, tuple)) or len(instance) != count:
            raise ValueError(f"instance= must be a list of {count} maps (or None) for a list of {count} label maps.")
        return list(instance)

    def translate_tensor(
        self, batch: torch.Tensor, *, size_mode: str | None = None, dropout_at_test: bool = False
    ) -> torch.Tensor:
        """``(N, in_channels, H, W)`` in [-1, 1], any H and W -> ``(N, out_channels, H, W)`` in [-1, 1]."""
        mode = size_mode or self.size_mode
        check_choice("size_mode", mode, SIZE_MODES)
        if batch.ndim != 4 or batch.shape[1] != self.in_channels:
            raise ValueError(
                f"This model takes {self.in_channels}-channel images; got a tensor of shape {tuple(batch.shape)}."
            )
        height, width = batch.shape[-2:]
        self._check_size(height, width)
        check_range(batch, -1.0, 1.0, "Tensors", "Scale images in [0, 1] with x * 2 - 1.")
        nearest = bool(self.label_nc)  # one-hot maps: interpolating would blend classes
        fitted, restore = fit_to_multiple(batch.to(self.device), self.size_multiple, mode, self._min_size, nearest)
        if self._runs_onnx and not dropout_at_test:
            onnx = self._onnx
            outputs = self._on_onnxruntime(lambda: [onnx(chunk) for chunk in fitted.split(self.batch_size)])
            if outputs is not None:
                return restore(outputs[0] if len(outputs) == 1 else torch.cat(outputs))
        with torch.inference_mode(), generator_mode(self.generator, dropout_at_test):
            outputs = [self.generator(chunk) for chunk in fitted.split(self.batch_size)]
        return restore(torch.cat(outputs))

    @property
    def _min_size(self) -> int:
        return getattr(self.generator, "min_size", self.size_multiple)

    def _check_size(self, height: int, width: int) -> None:
        if height * width > self.max_pixels:
            raise ValueError(
                f"Image of {width}x{height} pixels is larger than max_pixels={self.max_pixels}; "
                "downscale it or raise max_pixels if you have the memory."
            )

    def _on_onnxruntime(self, run: Callable[[], Any]) -> Any:
        """``run()``; if onnxruntime fails under ``backend="auto"``, warn, switch to torch for good and return None."""
        try:
            return run()
        except Exception as error:  # noqa: BLE001 - "auto" falls back to torch, which runs any generator
            if self.backend != "auto":
                raise
            warnings.warn(f"onnxruntime could not run this generator ({error}); using torch.", stacklevel=3)
            self._engine.fall_back()
            return None

    def _translate_many(self, images: list[ImageLike], size_mode: str | None, dropout_at_test: bool) -> list:
        images = [self._upright(image) for image in images]
        if self._runs_onnx and not dropout_at_test and (size_mode or self.size_mode) == "pad":
            arrays = [self._to_uint8(image) for image in images]
            if images and all(array is not None for array in arrays):
                onnx = self._onnx
                for array in arrays:
                    self._check_size(*array.shape[:2])
                outputs = self._on_onnxruntime(
                    lambda: onnx.translate_uint8(arrays, self.size_multiple, self._min_size, self.batch_size)
                )
                if outputs is not None:
                    outputs = [output[:, :, 0] if output.shape[2] == 1 else output for output in outputs]
                    return [Image.fromarray(o) if isinstance(i, Image.Image) else o for o, i in zip(outputs, images)]
        tensors, kinds = zip(*(self._to_tensor(image) for image in images)) if images else ((), ())
        outputs = self._translate_tensors(list(tensors), size_mode, dropout_at_test)
        return [self._from_tensor(output, kind, image) for output, kind, image in zip(outputs, kinds, images)]

    def _translate_tensors(
        self, tensors: list[torch.Tensor], size_mode: str | None, dropout_at_test: bool
    ) -> list[torch.Tensor]:
        """``(C, H, W)`` inputs of any sizes -> their outputs, in order; same-size inputs share batches."""
        outputs: list[torch.Tensor] = [torch.empty(0)] * len(tensors)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, tensor in enumerate(tensors):
            by_size.setdefault(tuple(tensor.shape[-2:]), []).append(index)
        for indices in by_size.values():
            batch = torch.stack([tensors[i] for i in indices])
            result = self.translate_tensor(batch, size_mode=size_mode, dropout_at_test=dropout_at_test)
            for i, output in zip(indices, result):
                outputs[i] = output
        return outputs

    def _translate_label_maps(
        self, maps: list[ImageLike], instances: list[Any], size_mode: str | None, dropout_at_test: bool
    ) -> list:
        """A label-map model's calls: class-index maps (and instance maps) encoded, translated, at their sizes."""
        maps = [self._upright(labels) for labels in maps]
        mode = size_mode or self.size_mode
        check_choice("size_mode", mode, SIZE_MODES)
        tensors, sizes, kinds = [], [], []
        for labels, ids in zip(maps, instances):
            if isinstance(labels, torch.Tensor):  # already one-hot: translate_tensor checks and fits it
                tensor, kind = self._to_tensor(labels)
            else:
                tensor = self._encode_label_map(labels, None if ids is None else self._upright(ids), mode)
                kind = "pil" if isinstance(labels, Image.Image) else "uint8"
            tensors.append(tensor)
            kinds.append(kind)
            sizes.append(tuple(labels.shape[-2:]) if kind == "tensor" else label_map_size(labels))
        outputs = self._translate_tensors(tensors, mode, dropout_at_test)
        outputs = [restore_size(output, size) for output, size in zip(outputs, sizes)]
        return [self._from_tensor(output, kind, labels) for output, kind, labels in zip(outputs, kinds, maps)]

    def _encode_label_map(self, labels: ImageLike, instance: ImageLike | None, mode: str) -> torch.Tensor:
        """A class-index map (and its instance ids) -> the generator's one-hot input ``(label_nc [+ 1], h, w)``
        (``labels.encode_label_input``); under ``size_mode="resize"`` at the size the generator takes."""
        height, width = label_map_size(labels)
        self._check_size(height, width)  # before anything is converted or encoded
        size = resize_target(height, width, self.size_multiple, self._min_size) if mode == "resize" else None
        return encode_label_input(labels, self.label_nc, bool(self.info.instance), instance, size)

    def _upright(self, image: ImageLike) -> ImageLike:
        """A PIL image turned upright per its EXIF orientation, after its header is checked: animated images and
        images above ``max_pixels`` are refused before anything is decoded. Other kinds are returned as they are."""
        if not isinstance(image, Image.Image):
            return image
        check_still(image, "image")
        self._check_size(image.height, image.width)
        return upright(image)

    def _to_uint8(self, image: ImageLike) -> np.ndarray | None:
        """A PIL image or uint8 array as uint8 ``(H, W, in_channels)``; None for inputs the torch path handles."""
        if isinstance(image, Image.Image):
            array = np.asarray(convert_image(image, self.in_channels), dtype=np.uint8)
        elif isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
            array = image
        else:
            return None
        array = array[:, :, None] if array.ndim == 2 else array
        return array if array.shape[2] == self.in_channels else None  # the torch path raises the clear error

    def _to_tensor(self, image: ImageLike) -> tuple[torch.Tensor, str]:
        if isinstance(image, Image.Image):
            return image_to_tensor(image, self.in_channels), "pil"
        if isinstance(image, np.ndarray):
            array = image if image.ndim == 3 else image[:, :, None] if image.ndim == 2 else None
            if array is None or array.shape[2] != self.in_channels:
                raise ValueError(
                    f"This model takes {self.in_channels}-channel images; got an array of shape {image.shape} "
                    "(expected (H, W) or (H, W, C))."
                )
            if array.dtype == np.uint8:
                return uint8_to_tensor(array), "uint8"
            check_range(array, 0.0, 1.0, "Float arrays", "Divide 8-bit values by 255, or pass a uint8 array.")
            return torch.from_numpy(np.asarray(array, dtype=np.float32)).permute(2, 0, 1) * 2 - 1, "float"
        if isinstance(image, torch.Tensor):
            if image.ndim == 3:
                return image, "tensor"
            raise ValueError(
                f"Tensors must be (C, H, W) in a list, or call translate_tensor() with (N, C, H, W); "
                f"got shape {tuple(image.shape)}."
            )
        raise TypeError(f"Cannot translate a {type(image).__name__}; pass a PIL image, numpy array or tensor.")

    def _from_tensor(self, output: torch.Tensor, kind: str, original: ImageLike) -> ImageLike:
        if kind == "pil":
            return tensor_to_image(output)
        if kind == "uint8":
            return tensor_to_uint8(output)
        if kind == "float":
            array = output.float().add(1).div(2).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            return array[:, :, 0] if array.shape[2] == 1 else array
        return output.to(original.device)


def fit_to_multiple(batch: torch.Tensor, multiple: int, mode: str, min_size: int = 1, nearest: bool = False):
    """Pad or resize ``batch`` so H and W are multiples of ``multiple`` and at least ``min_size``.

    ``nearest`` resizes by nearest neighbour (one-hot label maps; the output is still restored bilinearly).
    Returns the fitted batch and a function that maps the generator's output back to the original size.
    """
    height, width = batch.shape[-2:]
    if mode == "resize":
        target = resize_target(height, width, multiple, min_size)
        if target == (height, width):
            return batch, lambda out: out
        if nearest:
            resized = F.interpolate(batch, size=target, mode="nearest-exact")
        else:
            resized = F.interpolate(batch, size=target, mode="bilinear", align_corners=False, antialias=True)
        return resized, lambda out: F.interpolate(out, size=(height, width), mode="bilinear", align_corners=False)
    top, bottom, left, right, reflect = pad_box(height, width, multiple, min_size)
    if not (top or bottom or left or right):
        return batch, lambda out: out
    padded = F.pad(batch, (left, right, top, bottom), mode="reflect" if reflect else "replicate")
    return padded, lambda out: out[..., top : top + height, left : left + width]


def resize_target(height: int, width: int, multiple: int, min_size: int = 1) -> tuple[int, int]:
    """``(H, W)`` that ``size_mode="resize"`` resizes to: the nearest multiples of ``multiple``, at least
    ``min_size``."""
    floor = max(multiple, min_size)
    return max(floor, round(height / multiple) * multiple), max(floor, round(width / multiple) * multiple)


def restore_size(output: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(C, h, w)`` -> ``(C, H, W)`` for ``size`` = (H, W), bilinearly as ``fit_to_multiple`` restores."""
    if tuple(output.shape[-2:]) == tuple(size):
        return output
    return F.interpolate(output[None], size=size, mode="bilinear", align_corners=False)[0]


@contextlib.contextmanager
def generator_mode(generator: nn.Module, dropout_at_test: bool) -> Iterator[None]:
    """Eval mode by default; with ``dropout_at_test`` train mode whose batch norms leave their stats untouched."""
    was_training = generator.training
    if not dropout_at_test:
        generator.eval()
        try:
            yield
        finally:
            generator.train(was_training)
        return
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    generator.train()
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, tracked) in zip(norms, saved):
            norm.momentum = momentum
            if tracked is not None:
                norm.num_batches_tracked.copy_(tracked)
        generator.train(was_training)


def load_network(
    folder: Path, classes: dict[str, type], kind: str, default: str, device: str | torch.device
) -> nn.Module:
    """Rebuild the network ``folder/config.json`` describes (its ``_class_name``, ``default`` for older folders)
    from the registry's ``classes``, with its weights on ``device``."""
    config_path = folder / CONFIG_NAME
    class_name = read_config(config_path).get("_class_name", default)
    if class_name not in classes:
        raise ValueError(f"{config_path} describes a {class_name!r}; a {kind} is one of {', '.join(classes)}.")
    return classes[class_name].from_pretrained(folder, map_location=str(device))


def download_patterns(
    backend: str, device: str | torch.device, precision: str, calibration: CalibrationSource | None
) -> list[str]:
    """What ``from_pretrained`` fetches from a Hub repo: ``ALLOWED_PATTERNS``, plus the ONNX graphs by name where
    they may run (``precision.onnx_patterns``)."""
    return [*ALLOWED_PATTERNS, *onnx_patterns(backend, device, precision, calibration)]


def checked_extra_files(
    extra_files: Mapping[str, str | os.PathLike] | None, *, onnx: bool, sample_grid: bool
) -> dict[str, Path]:
    """``extra_files`` (``{path in the folder: local file}``) checked before anything is written: each path
    relative and inside the folder, not one of the folder's own files, not a pickle; each source an existing file."""
    reserved = {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, MODEL_INFO_NAME}
    reserved |= {SAMPLES_NAME} if sample_grid else set()
    reserved |= {ONNX_NAME, INT8_ONNX_NAME} if onnx else set()
    checked = {}
    for name, source in (extra_files or {}).items():
        relative = PurePosixPath(str(name).replace("\\", "/"))
        outside = relative.is_absolute() or not relative.parts or ".." in relative.parts
        if outside or str(relative) in reserved or relative.parts[0] == DISCRIMINATOR_DIR:
            raise ValueError(f"extra_files: {name!r} is not a free path inside the model folder.")
        if relative.name.lower().endswith(PICKLE_SUFFIXES):
            raise ValueError(f"extra_files: {name!r} is a pickle; model folders never hold one.")
        if not Path(source).is_file():
            raise FileNotFoundError(f"extra_files: {source} (for {name}) is not a file.")
        checked[str(relative)] = Path(source)
    return checked


def writable_folder(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (where a built int8 graph goes, else into the cache)."""
    return os.access(folder, os.W_OK)
