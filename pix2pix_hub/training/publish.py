"""The end of a run (main process): the model card, the model folder in ``output_dir``, the int8 export, the Hub
upload."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from PIL import Image

from .. import fileio
from ..constants import INT8_ONNX_NAME, ONNX_NAME, SAMPLES_NAME, WEIGHTS_NAME
from ..hub.model_card import render_model_card, save_widget_images
from ..hub.model_info import ModelInfo
from ..inference.calibration import DEFAULT_NUM_CALIBRATION, spread_indices
from ..inference.pipeline import Pix2Pix, push_folder
from ..inference.quantize import QuantizationQualityError, quantize_generator
from .base_model import base_model_name
from .config import TrainingConfig

# Arguments that say how and where this run was carried out on its machine, not how the model was made: its
# folders and logs, its checkpoint and logging cadence, publishing choices (the card has its own license and repo
# sections), and switches of speed or memory that keep the same maths. The card's training table leaves them out
# (the command line block still shows them as typed); everything else there is what a reader needs to reproduce
# the model: the data, the networks, the objective and the optimisation.
LOCAL_RUN_OPTIONS = frozenset(
    {
        "output_dir",
        "overwrite_output_dir",
        "resume_from_checkpoint",
        "cache_dir",
        "logging_dir",
        "report_to",
        "tracker_project_name",
        "logging_steps",
        "checkpointing_steps",
        "checkpoints_total_limit",
        "validation_steps",
        "num_validation_images",
        "dataloader_num_workers",
        "push_to_hub",
        "hub_model_id",
        "hub_private_repo",
        "license",
        "export_int8",
        "int8_min_psnr",
        "quick",
        "no_fused_adam",
        "no_winograd",
        "no_allocator_tuning",
        "plain_eager",
        "gradient_checkpointing",
    }
)


@dataclass
class Published:
    """What the end of a run publishes besides the model: validation ``metrics`` and ``grid``, the number of
    validation pairs held out (``val_size``), the ``command`` line as typed, and a widget example (the first
    validation pair's input and the model's output), None where the input is not an image (label maps)."""

    metrics: dict[str, float]
    grid: Image.Image
    val_size: int | None = None
    command: Sequence[str] | None = None
    widget: tuple[Image.Image, Image.Image] | None = None


def model_info(config: TrainingConfig) -> ModelInfo:
    """What the trained model does: direction, dataset (named, never a local path), training resolution, the
    model it was fine-tuned from (``--init_from``), and for a label-map model its classes, instance maps and
    don't-care class (so the pipeline and the Space take class-index maps and build the same channels)."""
    base = base_model_name(config.init_from) if config.init_from else None
    return ModelInfo.for_training(
        config.dataset,
        config.direction,
        training_resolution(config),
        base_model=base,
        label_nc=config.label_nc,
        instance=config.instance,
        dontcare=config.contain_dontcare_label,
    )


def training_resolution(config: TrainingConfig) -> int:
    """The side recorded as the training resolution: the crop; with ``--preprocess scale_width`` the width the
    images are scaled to (``--load_size``: pix2pixHD's 1024 or 2048), as nothing is cropped."""
    return config.load_size if config.preprocess == "scale_width" else config.crop_size


def render_card(
    pix2pix: Pix2Pix,
    config: TrainingConfig,
    accelerator: Accelerator,
    metrics: dict[str, float] | None = None,
    val_size: int | None = None,
    command: Sequence[str] | None = None,
    widget_images: tuple[str, str] | None = None,
) -> str:
    """The model card of a run's model (or checkpoint): ``card_training_config``'s table, the ``--license``, the
    ``command`` line and the widget's example (paths inside the repo)."""
    output_dir = Path(config.output_dir)
    return render_model_card(
        pix2pix,
        repo_id=config.hub_model_id or f"user/{output_dir.resolve().name}",
        training_config=card_training_config(config, accelerator, val_size),
        metrics=metrics,
        sample_grid=SAMPLES_NAME if metrics else None,
        license=None if config.license == "other" else config.license,  # None: 'other' with the card's note
        command=command,
        widget_images=widget_images,
    )


def card_training_config(config: TrainingConfig, accelerator: Accelerator, val_size: int | None) -> dict[str, Any]:
    """The arguments a card shows: all but ``LOCAL_RUN_OPTIONS``, plus what the launcher decided
    (``mixed_precision``, where None meant "the launcher's", and ``num_processes``) and the number of validation
    pairs actually held out (``val_size``) when no validation split was named."""
    shown = {key: value for key, value in asdict(config).items() if key not in LOCAL_RUN_OPTIONS}
    shown |= {"mixed_precision": accelerator.mixed_precision, "num_processes": accelerator.num_processes}
    if val_size is not None and not config.validation_split:
        shown["val_size"] = val_size
    return shown


def save_model_folder(pix2pix: Pix2Pix, output_dir: Path, card: str, grid: Image.Image) -> list[str]:
    """``save_pretrained`` into ``output_dir`` without touching its checkpoints/, samples/ and logs/.

    ``Pix2Pix.save_pretrained`` replaces its destination folder whole, so the model is assembled in a temporary
    folder inside ``output_dir`` and its entries are moved in one by one (each move atomic), the weights last.

    Args:
        pix2pix: the model (``pix2pix.info`` becomes ``pix2pix.json``).
        output_dir: the run's folder.
        card: the model card (``render_card``).
        grid: the validation grid, saved as ``samples.png``.

    Returns:
        The names of the model's entries in ``output_dir`` (what a push uploads of it).
    """
    staging = fileio.make_directory(fileio.temporary_sibling(output_dir / "model"))
    try:
        folder = pix2pix.save_pretrained(staging / "model", card=card, sample_grid=grid)
        entries = sorted(entry.name for entry in folder.iterdir())
        fileio.move_entries(folder, output_dir, last=(WEIGHTS_NAME,))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entries


def publish(
    pix2pix: Pix2Pix,
    config: TrainingConfig,
    accelerator: Accelerator,
    published: Published,
    say: Callable[[str], None],
    calibration: Any = None,
) -> None:
    """Main process, end of training: the model card, the model folder in ``output_dir``, ``--export_int8``'s
    ``model.int8.onnx``, the Hub upload.

    The widget's images go straight into ``output_dir/samples/`` (moving a staged ``samples/`` in would replace
    the validation grids there).

    Args:
        pix2pix: the trained model; its ``info`` (``model_info(config)``) says what it does, in ``pix2pix.json``
            and the card's YAML.
        config: the run's arguments.
        accelerator: the run's accelerator (its mixed precision and process count go on the card).
        published: the validation metrics and grid, the command line and the widget example.
        say: prints a line to the user.
        calibration: a ``PairedDataset`` whose inputs ``--export_int8`` calibrates on.
    """
    output_dir = Path(config.output_dir)
    widget_images = save_widget_images(output_dir, *published.widget) if published.widget else None
    card = render_card(
        pix2pix, config, accelerator, published.metrics, published.val_size, published.command, widget_images
    )
    entries = save_model_folder(pix2pix, output_dir, card, published.grid)
    # An int8 file from an earlier run belongs to other weights; so does its model.onnx where none was written
    # now (``save_pretrained`` ships one where onnxruntime is installed: a fast first call).
    (output_dir / INT8_ONNX_NAME).unlink(missing_ok=True)
    if ONNX_NAME not in entries:
        (output_dir / ONNX_NAME).unlink(missing_ok=True)
    say(f"Saved the model to {output_dir} (load it with Pix2Pix.from_pretrained({str(output_dir)!r})).")
    if config.export_int8:
        export_int8(pix2pix, output_dir / INT8_ONNX_NAME, training_inputs(calibration), config.int8_min_psnr, say)
    if config.push_to_hub:
        private = True if config.hub_private_repo else None  # None: the Hub's default (public)
        # The folder just written goes up as it is (the model is not written again), without the run's own files.
        names = [*entries, *pushed_extras(output_dir, widget_images)]
        patterns = [f"{name}/*" if (output_dir / name).is_dir() else name for name in names]
        url = push_folder(output_dir, config.hub_model_id, private=private, allow_patterns=patterns)
        say(f"Pushed to the Hub: {url}")


def pushed_extras(output_dir: Path, widget_images: tuple[str, str] | None) -> dict[str, Path]:
    """What the push adds to the model's own files: the card widget's images (the card points at them) and the
    ``--export_int8`` file (so a Space serves int8 with no export at start)."""
    names = [*(widget_images or ()), INT8_ONNX_NAME]
    return {name: output_dir / name for name in names if (output_dir / name).is_file()}


def training_inputs(dataset: Any, count: int = DEFAULT_NUM_CALIBRATION) -> list[Any]:
    """Up to ``count`` model inputs ``(C, H, W)`` in [-1, 1], spread evenly over ``dataset`` (unreadable pairs
    skipped): what ``--export_int8`` calibrates on."""
    indices = spread_indices(len(dataset), count) if dataset is not None else []
    items = (dataset[index] for index in indices)
    return [item["input"].numpy() for item in items if item is not None]


def export_int8(
    pix2pix: Pix2Pix, path: Path, inputs: list[Any], min_psnr_db: float, say: Callable[[str], None]
) -> dict[str, Any] | None:
    """Write the int8 generator to ``path`` (``quantize.quantize_generator``) and return its report; when it fails
    the PSNR gate (or there are too few inputs), say why and write nothing: the fp32 model is saved either way."""
    if len(inputs) < 2:
        say(f"--export_int8 skipped: {len(inputs)} training input(s); calibration and its gate need at least 2.")
        return None
    try:
        report = quantize_generator(pix2pix.generator, path, inputs, min_psnr_db=min_psnr_db)
    except QuantizationQualityError as error:
        say(f"--export_int8 refused (the fp32 model is saved): {error}")
        return None
    say(
        f"Wrote {path}: int8 outputs {report['psnr_db']:.1f} dB PSNR from fp32's on the worst of "
        f"{report['held_out_inputs']} held-out training inputs (gate {min_psnr_db:g} dB)."
    )
    return report
