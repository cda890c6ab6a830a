"""``Pix2Pix``: the one-line user object. Load a translator, call it on images, save and share it.

It holds the networks, an ``ImageProcessor`` (images in and out: ``processor.py``) and an ``OnnxEngine`` (which
graph runs on onnxruntime, fp32 or int8: ``precision.py``); a call is preprocess, generate, postprocess. What a
model folder holds, and how its networks are rebuilt: ``model_folder.py``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, snapshot_download
from PIL import Image
from torch import nn

from ..constants import (
    BACKENDS,
    DISCRIMINATOR_DIR,
    INT8_ONNX_NAME,
    PRECISIONS,
    SAMPLES_NAME,
    SIZE_MODES,
    WEIGHTS_NAME,
    check_choice,
)
from ..fileio import atomic_directory, write_bytes
from ..hub.model_card import render_model_card
from ..hub.model_info import ModelInfo
from ..images.reading import DEFAULT_MAX_PIXELS
from ..models import DISCRIMINATOR_CLASSES, GENERATOR_CLASSES, PatchDiscriminator
from .calibration import DEFAULT_NUM_CALIBRATION, CalibrationSource
from .generate import generate
from .model_folder import (
    check_model_folder,
    checked_extra_files,
    download_patterns,
    load_network,
    prepare_repo,
    upload,
    writable_folder,
    write_folder,
)
from .onnx_engine import PrebuiltGraph, onnxruntime_available
from .precision import OnnxEngine, check_device
from .processor import Batch, ImageLike, ImageProcessor
from .quantize import DEFAULT_MIN_PSNR_DB
from .style import style_code, style_dim

COMMIT_MESSAGE = "Upload pix2pix model"


class Pix2Pix:
    """A trained pix2pix translator: a generator, optionally its discriminator, and image handling.

    Call it on a PIL image, a numpy array (``(H, W)`` / ``(H, W, C)``, uint8 or float in [0, 1]), a tensor
    (``(C, H, W)`` / ``(N, C, H, W)`` in [-1, 1]) or a list of them; it returns the same kind and size (a PIL
    image upright per its EXIF orientation, as it is displayed). Floats and tensors outside their range, and
    animated images, are refused. Sides that are not multiples of the generator's ``size_multiple`` are handled
    by ``size_mode``: ``"pad"`` (reflect-pad, translate, crop back; default) or ``"resize"`` (resize to the
    nearest multiple and back). Images above ``max_pixels`` are refused (``images.reading.ImageTooLarge``) rather
    than exhausting memory; a PIL image not yet decoded (``Image.open``) is refused from its header.

    ``backend``: ``"auto"`` (default) runs the generator through onnxruntime on a CPU in float32, faster than eager
    torch on most CPUs (figures in docs/performance.md) with outputs equal within 1e-4 (exported on first use and
    again whenever the weights change), and through torch on other devices, in half precision or if the export
    fails; ``"onnxruntime"`` insists on it (errors are raised, also off the CPU); ``"torch"`` turns it off.
    ``dropout_at_test`` always runs in torch. A model loaded by ``from_pretrained`` answers its first calls in
    torch while its onnxruntime session is prepared in the background (the folder's ``model.onnx`` opened, or the
    weights exported), so the first image does not wait for it; ``onnx_engine.wait_until_ready()`` waits.

    Its parts: ``generator`` and ``discriminator``; ``info``, what the model does (direction, input and output,
    dataset: a ``ModelInfo``, saved as ``pix2pix.json``; empty when unknown); ``processor``, the ``ImageProcessor``
    that turns inputs into batches and outputs back; ``onnx_engine``, the ``OnnxEngine`` that knows which graph
    runs on onnxruntime (``engine`` names it).

    int8: ``from_pretrained(..., precision=...)`` runs a shipped ``model.int8.onnx`` where it measures faster than
    fp32 here; ``quantize(calibration)`` builds one; ``engine`` names it, with its PSNR from fp32 and its speed-up.

    Label-map models (pix2pixHD, SPADE; ``info.label_nc`` classes, ``info.instance``, ``contain_dontcare_label``):
    the input is a class-index map (a PIL image of mode ``L``, ``P`` (indices, not colours) or ``I;16``, or an
    ``(H, W)`` integer array), one-hot encoded by ``labels.encode_label_input`` (resized by nearest neighbour only);
    ``instance=ids`` adds an instance map's boundaries (else the class boundaries serve). An RGB image is taken only
    when every pixel is a ``labels.label_palette`` colour. Bad values are refused, named. Tensors: already one-hot.

    Multi-modal models (a SPADE generator with a style encoder: ``style_dim`` > 0): ``pix2pix(labels, style=image)``
    renders in that image's style (the encoder's mean), ``seed=n`` in a sampled one, neither in the zero code.
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
        self.batch_size = batch_size
        self.backend = backend
        self.info = ModelInfo() if info is None else info
        self.processor = ImageProcessor.for_generator(generator, self.info, max_pixels)
        self.onnx_engine = OnnxEngine(generator, backend, resolution=self.info.resolution)

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
        """Load a translator from a local folder or a Hub repo.

        Args:
            model_id: a folder written by ``save_pretrained``, or a Hub repo id. The architecture comes from its
                ``config.json`` (and ``discriminator/config.json``), the facts from ``pix2pix.json``.
            revision, cache_dir, token, local_files_only: as for ``huggingface_hub.snapshot_download``.
            device: where the networks go. Off the CPU they run in torch: ``backend="onnxruntime"`` and
                ``precision="int8"`` (CPU paths) raise there.
            load_discriminator: load ``discriminator/`` when the folder has one (to fine-tune).
            precision: the generator's on onnxruntime (CPU). ``"auto"``: the folder's ``model.int8.onnx`` when its
                stored quality report passed its gate, it records these weights and it ran faster than fp32 here
                (timed once per machine at the model's resolution, then remembered in the ONNX cache; else fp32;
                ``precision_note`` says why, also logged). ``"int8"`` insists (with a note where an earlier
                measurement here found it slower) and, when the folder has none, builds one from ``calibration``
                into the folder if it is a writable local one, else into the ONNX cache; it raises without either.
                ``"fp32"`` never uses int8.
            calibration: a folder of typical input images or a list of them (see ``quantize``).
            options: go to the constructor (``backend``, ``max_pixels``, ``size_mode``, ``batch_size``).

        Returns:
            The translator; a folder's ``model.onnx`` made from these weights runs instead of an export.
        """
        check_choice("precision", precision, PRECISIONS)
        check_device(options.get("backend", "auto"), precision, device)  # before any download
        folder, local = Path(model_id), Path(model_id).is_dir()
        if not local:
            patterns = download_patterns(options.get("backend", "auto"), device, precision, calibration)
            hub = {"revision": revision, "cache_dir": cache_dir, "token": token, "local_files_only": local_files_only}
            folder = Path(snapshot_download(str(model_id), allow_patterns=patterns, **hub))
        check_model_folder(folder, str(model_id))
        generator = load_network(folder, GENERATOR_CLASSES, "generator", "UNetGenerator", device)
        discriminator = None
        if load_discriminator and (folder / DISCRIMINATOR_DIR / WEIGHTS_NAME).is_file():
            discriminator = load_network(
                folder / DISCRIMINATOR_DIR, DISCRIMINATOR_CLASSES, "discriminator", "PatchDiscriminator", device
            )
        pix2pix = cls(generator, discriminator, info=ModelInfo.load(folder), **options)
        build_into = folder if local and writable_folder(folder) else None  # never into the Hugging Face cache
        calibration = pix2pix.processor.calibration_maps(calibration)  # a label-map model's maps, one-hot encoded
        pix2pix.onnx_engine.choose(folder, precision, calibration, build_into, pix2pix.max_pixels, defer=True)
        return pix2pix

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        card: str | None = None,
        sample_grid: Image.Image | None = None,
        info: ModelInfo | None = None,
        onnx: bool | None = None,
        extra_files: Mapping[str, str | os.PathLike] | None = None,
    ) -> Path:
        """Write the model folder (``model_folder.py`` shows its layout).

        Args:
            save_directory: the folder. It is assembled next to its destination and replaces it whole at the end
                (``fileio``): an interrupted save leaves the old folder, or none, never a half-written model.
            card: the README text; None renders one (``hub.model_card``).
            sample_grid: saved as ``samples.png``.
            info: written as ``pix2pix.json`` (default: this model's ``info``).
            onnx: add the generator's ONNX graphs, so that ``from_pretrained`` (a Space) runs them instead of
                exporting: ``model.onnx`` (fp32, exported now and checked against torch), and ``model.int8.onnx``
                when this model has an int8 graph of its current weights. None (default): where onnx and
                onnxruntime are installed.
            extra_files: more files, ``{path in the folder: local file}`` (e.g. the widget images a card names,
                ``samples/input.png``); a path one of the folder's own files takes is refused.

        Returns:
            The folder.
        """
        info = self.info if info is None else info
        onnx = onnxruntime_available() if onnx is None else onnx
        destination = Path(save_directory)
        extras = checked_extra_files(extra_files, onnx=onnx, sample_grid=sample_grid is not None)
        int8 = self.onnx_engine.current_int8() if onnx else None
        if card is None:
            card = render_model_card(self, info=info, sample_grid=SAMPLES_NAME if sample_grid is not None else None)
        with atomic_directory(destination) as staging:
            write_folder(staging, self.generator, self.discriminator, info, card, sample_grid, onnx)
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
        commit_message: str = COMMIT_MESSAGE,
        card: str | None = None,
        sample_grid: Image.Image | None = None,
        info: ModelInfo | None = None,
        onnx: bool | None = None,
        extra_files: Mapping[str, str | os.PathLike] | None = None,
    ) -> str:
        """Write the model folder once, into a temporary folder, and upload it to ``repo_id`` (``push_folder``).

        Args:
            repo_id: the repo, created if needed; ``token`` and ``private`` (None: the Hub's default) as for
                ``HfApi``.
            branch: commit there (created from main if missing); ``create_pr``: open a pull request instead.
            commit_message: the commit's title.
            card, sample_grid, info, onnx, extra_files: as for ``save_pretrained``; a card rendered here names
                ``repo_id`` in its usage snippet. Files the folder does not have (an earlier push's widget images,
                say) are deleted from the repo; ``.gitattributes`` is kept.

        Returns:
            The commit (or pull request) URL. A folder already written (a training run's) goes up with
            ``push_folder`` itself, without writing the model again.
        """
        api = HfApi(token=token)
        repo_id = prepare_repo(api, repo_id, private, branch)
        if card is None:  # the usage snippet loads the repo actually pushed to
            samples = SAMPLES_NAME if sample_grid is not None else None
            card = render_model_card(self, repo_id=repo_id, info=info, sample_grid=samples)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(
                Path(tmp) / "repo", card=card, sample_grid=sample_grid, info=info, onnx=onnx, extra_files=extra_files
            )
            return upload(api, folder, repo_id, branch, create_pr, commit_message)

    # ----- precision: the int8 graph --------------------------------------------------------------------
    def quantize(
        self,
        calibration: CalibrationSource,
        *,
        path: str | os.PathLike | None = None,
        num_calibration: int = DEFAULT_NUM_CALIBRATION,
        min_psnr_db: float = DEFAULT_MIN_PSNR_DB,
    ) -> dict[str, Any]:
        """Build the int8 graph of the generator's current weights; from then on it runs if it measures faster
        than fp32 here (else ``precision_note`` says why not), and ``save_pretrained(..., onnx=True)`` ships it.

        Args:
            calibration: a folder of typical input images or a list of them (``calibration.calibration_inputs``);
                for a label-map model, class-index maps (``processor.calibration_maps`` encodes them).
            path: where the graph goes (default: the ONNX cache, reused for the same weights and inputs).
            num_calibration: inputs used, spread evenly over ``calibration``; a quarter are held back for the gate.
            min_psnr_db: the gate: int8 outputs below this PSNR from fp32's raise ``QuantizationQualityError``
                (with the figure) and nothing is written.

        Returns:
            The graph's report (``psnr_db``, ``path``, ``bytes``, ...).
        """
        calibration = self.processor.calibration_maps(calibration, num_calibration)
        return self.onnx_engine.build_int8(
            calibration, path, max_pixels=self.max_pixels, count=num_calibration, min_psnr=min_psnr_db
        )

    @property
    def int8_graph(self) -> PrebuiltGraph | None:
        """The int8 graph made from these weights (its ``path`` and quality ``report``), whether in use or not."""
        return self.onnx_engine.int8

    @property
    def precision_note(self) -> str | None:
        """Why int8 is not used, or is used although slower here (one line, also logged); None otherwise."""
        return self.onnx_engine.note

    @property
    def engine(self) -> str:
        """What the next (deterministic) call runs on: ``"torch"``, ``"onnxruntime"`` (fp32), or with an int8 graph
        ``"onnxruntime int8 (<PSNR> dB vs fp32, <speed-up>x fp32's speed on this CPU)"`` (the worst held-out
        image's PSNR from fp32; the speed-up measured here)."""
        return self.onnx_engine.describe()

    @property
    def precision(self) -> str:
        """``"int8"`` when the next (deterministic) call runs the int8 graph, else ``"fp32"``."""
        return self.onnx_engine.precision

    # ----- what the model takes -----------------------------------------------------------------------
    @property
    def direction(self) -> str | None:
        """``"AtoB"`` or ``"BtoA"``: which side of the training pairs was the input; None when not recorded."""
        return self.info.direction

    @property
    def label_nc(self) -> int:
        """The classes of a label-map model's input (``info.label_nc``); 0 for a model that takes images."""
        return self.info.label_nc or 0

    @property
    def style_dim(self) -> int:
        """Length of the style code ``style=``/``seed=`` pick (a SPADE generator with an encoder); else 0."""
        return style_dim(self.generator)

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
    def max_pixels(self) -> int:
        """The largest image taken, in pixels (``images.reading.ImageTooLarge`` above it); settable."""
        return self.processor.max_pixels

    @max_pixels.setter
    def max_pixels(self, value: int) -> None:
        self.processor.max_pixels = value

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def to(self, device: str | torch.device) -> Pix2Pix:
        self.generator.to(device)
        if self.discriminator is not None:
            self.discriminator.to(device)
        return self

    # ----- inference ----------------------------------------------------------------------------------
    def __call__(
        self,
        images: ImageLike | Sequence[ImageLike],
        *,
        instance: ImageLike | Sequence[ImageLike | None] | None = None,
        style: ImageLike | None = None,
        seed: int | None = None,
        size_mode: str | None = None,
        dropout_at_test: bool = False,
    ) -> Any:
        """Translate one image or a list.

        Args:
            images: a PIL image, a numpy array, a ``(C, H, W)`` tensor, or a list of them (see the class).
            instance: for a label-map model recorded with instance maps, each input's instance-id map (one, or a
                list as long as ``images``; None: the class boundaries serve).
            style: for a SPADE model with a style encoder (``style_dim`` > 0), a style image of any size: the
                encoder's mean code for it. One style serves every image of the call.
            seed: or an integer: a code sampled from N(0, I) with this seed (same seed, same output). Neither: the
                zero code, the prior's mean. Other models refuse both.
            size_mode: ``"pad"`` or ``"resize"`` for this call (default: the model's ``size_mode``).
            dropout_at_test: keep dropout on and use batch statistics, as the paper does at test time (outputs
                then vary between calls); the default is the deterministic eval mode.

        Returns:
            The outputs: each the kind and size of its input, a list in order for a list.
        """
        code = style_code(self.generator, style, seed, self.max_pixels)
        many = isinstance(images, (list, tuple))
        inputs = list(images) if many else [images]
        instances = self.processor.instance_maps(instance, len(inputs), many)
        numpy = self.onnx_engine.active and not dropout_at_test  # onnxruntime takes numpy batches: no torch op
        prepared = self.processor.preprocess(inputs, instances, size_mode=self._size_mode(size_mode), numpy=numpy)
        outputs = [group.restore(self._generate(group.batch, dropout_at_test, code)) for group in prepared.groups]
        results = self.processor.postprocess(outputs, prepared)
        self.onnx_engine.start_preparing()  # once the answer is made: the first image shares no CPU (or GIL) with it
        return results if many else results[0]

    def translate_tensor(
        self,
        batch: torch.Tensor,
        *,
        style: Any = None,
        seed: int | None = None,
        size_mode: str | None = None,
        dropout_at_test: bool = False,
    ) -> torch.Tensor:
        """``(N, in_channels, H, W)`` in [-1, 1], any H, W -> ``(N, out_channels, H, W)``; style/seed as a call's."""
        code = style_code(self.generator, style, seed, self.max_pixels)
        group = self.processor.fit_batch(batch.to(self.device), self._size_mode(size_mode))
        output = torch.as_tensor(group.restore(self._generate(group.batch, dropout_at_test, code)))
        self.onnx_engine.start_preparing()
        return output

    def _size_mode(self, size_mode: str | None) -> str:
        mode = size_mode or self.size_mode
        check_choice("size_mode", mode, SIZE_MODES)
        return mode

    def _generate(self, batch: Batch, dropout_at_test: bool, code: torch.Tensor | None = None) -> Batch:
        return generate(self.generator, self.onnx_engine, batch, self.batch_size, dropout_at_test, code)


# ----- model folders and the Hub ------------------------------------------------------------------------------
def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    branch: str | None = None,
    create_pr: bool = False,
    commit_message: str = COMMIT_MESSAGE,
    allow_patterns: Sequence[str] | None = None,
) -> str:
    """Upload a model folder already written (``save_pretrained``'s, or a training run's output) as ``repo_id``.

    Args:
        folder: the folder; with ``allow_patterns`` (``fnmatch`` patterns), only its files that match them.
        repo_id: the repo, created if needed (``private``: None is the Hub's default); ``token`` as for ``HfApi``.
        branch: commit there (created from main if missing); ``create_pr``: open a pull request instead.

    Returns:
        The commit (or pull request) URL. The commit deletes the repo's files it does not upload (an old
        ``discriminator/``); ``.gitattributes`` is kept.
    """
    api = HfApi(token=token)
    repo_id = prepare_repo(api, repo_id, private, branch)
    return upload(api, Path(folder), repo_id, branch, create_pr, commit_message, allow_patterns)
