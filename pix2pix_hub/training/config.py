"""``TrainingConfig``: the one record of a training run's arguments.

The command line is generated from its fields (``add_arguments``/``config_from_args``), checkpoints store it as
``training_config.json``, and the model card prints it. Defaults are the paper's facades setup (Isola et al. 2017,
section 4 and the authors' code): unet_256 + 70x70 PatchGAN, batch norm, N(0, 0.02) init, vanilla GAN loss,
L1 weight 100, Adam 2e-4 (0.5, 0.999), batch 1, 286 -> 256 random crop + flip, 100 + 100 epochs (linear decay).
pix2pixHD's options (Wang et al. 2018; docs/high-resolution.md) are fields of the same record, named as its flags:
``--netG global|local``, ``--netD multiscale --num_D``, ``--lambda_feat``, ``--lambda_vgg``, ``--niter_fix_global``,
``--label_nc``, ``--instance``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, get_args, get_type_hints

from ..constants import (
    CHANNEL_COUNTS,
    DIRECTIONS,
    GAN_MODES,
    INIT_TYPES,
    LR_POLICIES,
    MIXED_PRECISION,
    NORMS,
    PREPROCESS_MODES,
    TRACKERS,
)
from ..data.streaming import stream_args_error
from ..inference.quantize import DEFAULT_MIN_PSNR_DB
from ..models.registry import (
    DISCRIMINATOR_PRESETS,
    GENERATOR_PRESETS,
    discriminator_class_of,
    generator_size_multiple,
    tiny_discriminator,
    tiny_generator,
)
from .errors import ConfigError

# Registered discriminators this loop does not train (none now: the multi-scale one trains with per-scale losses).
UNTRAINED_DISCRIMINATORS: tuple[str, ...] = ()
# The registry's names (importing ``models`` registers every preset): the ``--netG``/``--netD`` choices.
GENERATORS = tuple(GENERATOR_PRESETS)
DISCRIMINATORS = tuple(name for name in DISCRIMINATOR_PRESETS if name not in UNTRAINED_DISCRIMINATORS)
# Fields that define the networks' shapes: a checkpoint with other values cannot be resumed.
ARCHITECTURE_FIELDS = (
    "netG", "netD", "n_layers_D", "num_D", "norm", "ngf", "ndf", "input_nc", "output_nc", "label_nc", "instance",
    "no_dropout",
)  # fmt: skip
# --val_size unset: this many pairs, but at most a tenth of the data; fewer than AUTO_VAL_MIN: none held out.
AUTO_VAL_MAX = 16
AUTO_VAL_MIN = 2


def _arg(help: str, choices: tuple[str, ...] | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"help": help, "choices": choices, **kwargs}


@dataclass
class TrainingConfig:
    """Every argument of a training run; the paper's facades setup by default (see module docstring)."""

    # data
    dataset: str = field(
        default="huggan/facades",
        metadata=_arg("Hub dataset id, aligned A|B image folder, A/ B/ folders, save_to_disk folder or parquet file."),
    )
    split: str = field(default="train", metadata=_arg("Split of --dataset to train on (a subfolder for folders)."))
    validation_split: str | None = field(
        default=None, metadata=_arg("Split to validate on (e.g. 'val'); unset: hold out --val_size training pairs.")
    )
    val_size: float | None = field(
        default=None,
        metadata=_arg(
            "Pairs held out of the training split for validation: a count (>= 1) or a fraction; unset: "
            f"{AUTO_VAL_MAX} pairs but at most 10%% of the data, none (validate on training pairs) below "
            f"{AUTO_VAL_MIN * 10} pairs."
        ),
    )
    direction: str = field(default="AtoB", metadata=_arg("AtoB or BtoA (facades labels -> photo is BtoA).", DIRECTIONS))
    column_a: str = field(default="imageA", metadata=_arg("Dataset column holding the A images."))
    column_b: str = field(default="imageB", metadata=_arg("Dataset column holding the B images."))
    input_nc: int = field(default=3, metadata=_arg("Input channels: 1 (grayscale) or 3 (RGB)."))
    output_nc: int = field(default=3, metadata=_arg("Output channels: 1 (grayscale) or 3 (RGB)."))
    label_nc: int = field(
        default=0,
        metadata=_arg(
            "Inputs are class-index label maps (mode L or P PNGs) of this many classes, fed one-hot (pix2pixHD's "
            "--label_nc); 0: the input is an image (--input_nc)."
        ),
    )
    instance: bool = field(
        default=False,
        metadata=_arg(
            "Add each input's instance-id map (an I/ folder beside A/ and B/, or --column_instance) as a boundary "
            "channel (pix2pixHD's default; its --no_instance is this flag left off)."
        ),
    )
    column_instance: str = field(default="instance", metadata=_arg("Dataset column holding the instance maps."))
    preprocess: str = field(default="resize_and_crop", metadata=_arg("Training augmentation.", PREPROCESS_MODES))
    load_size: int = field(default=286, metadata=_arg("Resize images to this size before cropping."))
    crop_size: int = field(default=256, metadata=_arg("Random crop size: the training resolution."))
    no_flip: bool = field(default=False, metadata=_arg("Do not flip training pairs horizontally."))
    skip_bad_samples: bool = field(default=False, metadata=_arg("Skip and count unreadable pairs instead of failing."))
    max_train_samples: int | None = field(
        default=None, metadata=_arg("Train on the first N training pairs only (taken after the validation split).")
    )
    cache_dir: str | None = field(
        default=None, metadata=_arg("Where `datasets` caches Hub datasets (unset: its default, HF_DATASETS_CACHE).")
    )
    dataloader_num_workers: int = field(default=2, metadata=_arg("DataLoader worker processes per training process."))
    streaming: bool = field(
        default=False,
        metadata=_arg(
            "Read --dataset as a stream (Hub id, parquet files), nothing downloaded first; needs --max_train_steps."
        ),
    )
    shuffle_buffer: int = field(
        default=1000, metadata=_arg("--streaming: rows shuffled together per DataLoader worker (and the shard order).")
    )
    # networks
    netG: str = field(default="unet_256", metadata=_arg("Generator preset.", GENERATORS))
    netD: str = field(
        default="basic",
        metadata=_arg(
            "basic: 70x70 PatchGAN; n_layers: --n_layers_D; pixel: 1x1; image: whole image; multiscale: pix2pixHD's "
            "--num_D PatchGANs at halving scales.",
            DISCRIMINATORS,
        ),
    )
    n_layers_D: int = field(
        default=3, metadata=_arg("Discriminator depth when --netD n_layers; each scale's with --netD multiscale.")
    )
    num_D: int = field(default=2, metadata=_arg("Scales of --netD multiscale (pix2pixHD: 2, or 3 at 2048x1024)."))
    ngf: int = field(default=64, metadata=_arg("Generator filters in the first conv layer."))
    ndf: int = field(default=64, metadata=_arg("Discriminator filters in the first conv layer."))
    norm: str = field(default="batch", metadata=_arg("Normalisation layers.", NORMS))
    no_dropout: bool = field(default=False, metadata=_arg("No dropout in the generator."))
    init_type: str = field(default="normal", metadata=_arg("Weight initialisation.", INIT_TYPES))
    init_gain: float = field(default=0.02, metadata=_arg("Scale of the normal/xavier/orthogonal init."))
    init_from: str | None = field(
        default=None,
        metadata=_arg(
            "Fine-tune: start G (and D, when it has one) from this model (Hub id or folder, e.g. a converted one), "
            "with its architecture; architecture flags left at their defaults follow it."
        ),
    )
    # objective and optimisation
    gan_mode: str | None = field(
        default=None,
        metadata=_arg(
            "GAN objective; unset: lsgan with --netD multiscale (pix2pixHD's), vanilla otherwise (the paper's).",
            GAN_MODES,
        ),
    )
    lambda_l1: float = field(default=100.0, metadata=_arg("Weight of the L1 term in the generator loss."))
    lambda_gp: float = field(default=10.0, metadata=_arg("Gradient penalty weight (wgangp only)."))
    lambda_feat: float = field(
        default=10.0,
        metadata=_arg("Weight of pix2pixHD's feature-matching loss with --netD multiscale; 0 turns it off."),
    )
    lambda_vgg: float = field(
        default=0.0, metadata=_arg("Weight of pix2pixHD's VGG19 perceptual loss (it uses 10); needs --vgg_weights.")
    )
    vgg_weights: str | None = field(
        default=None,
        metadata=_arg(
            "VGG19 weights for --lambda_vgg: a .safetensors file of torchvision's vgg19 state dict, a folder "
            "holding model.safetensors, or a Hub repo id (e.g. timm/vgg19.tv_in1k)."
        ),
    )
    niter_fix_global: int = field(
        default=0,
        metadata=_arg("--netG local: train only the local enhancer (not its global generator) for the first N epochs."),
    )
    lr: float = field(default=2e-4, metadata=_arg("Adam learning rate of both networks."))
    beta1: float = field(default=0.5, metadata=_arg("Adam beta1."))
    beta2: float = field(default=0.999, metadata=_arg("Adam beta2."))
    batch_size: int = field(default=1, metadata=_arg("Pairs per process per step."))
    gradient_accumulation_steps: int = field(default=1, metadata=_arg("Micro-batches accumulated per update."))
    n_epochs: int = field(default=100, metadata=_arg("Epochs at the initial learning rate."))
    n_epochs_decay: int = field(default=100, metadata=_arg("Epochs of learning-rate decay after --n_epochs."))
    lr_policy: str = field(default="linear", metadata=_arg("Learning-rate schedule.", LR_POLICIES))
    lr_decay_iters: int = field(default=50, metadata=_arg("Epochs between x0.1 steps (--lr_policy step)."))
    max_train_steps: int | None = field(
        default=None, metadata=_arg("Stop after this many updates (overrides the epoch count).")
    )
    seed: int = field(default=0, metadata=_arg("Seed of weights, shuffling, augmentation and dropout."))
    mixed_precision: str | None = field(
        default=None,
        metadata=_arg(
            "no|fp16|bf16; unset: the launcher's choice (accelerate launch --mixed_precision).", MIXED_PRECISION
        ),
    )
    no_fused_adam: bool = field(default=False, metadata=_arg("Use torch's default Adam, not the fused kernel."))
    no_winograd: bool = field(default=False, metadata=_arg("Run every conv directly, none by Winograd (CPU)."))
    no_allocator_tuning: bool = field(
        default=False, metadata=_arg("Leave glibc's allocator as it is (read by the command line, not by train()).")
    )
    plain_eager: bool = field(
        default=False,
        metadata=_arg(
            "All of --no_fused_adam, --no_winograd and --no_allocator_tuning: the plain eager loop, same maths."
        ),
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=_arg(
            "Recompute both networks' activations in the backward pass instead of keeping them: less memory at "
            "high resolution for about one more forward pass per step; same results."
        ),
    )
    # output, checkpoints, logging
    output_dir: str = field(
        default="outputs/pix2pix", metadata=_arg("Model folder; also holds checkpoints/ and logs/.")
    )
    checkpointing_steps: int = field(default=500, metadata=_arg("Save a resumable state every N updates."))
    checkpoints_total_limit: int | None = field(default=3, metadata=_arg("Keep only the newest N checkpoints."))
    overwrite_output_dir: bool = field(
        default=False,
        metadata=_arg(
            "Start afresh in an --output_dir that holds another run (its checkpoints are deleted, its model "
            "files replaced at the end)."
        ),
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata=_arg("'latest' or a checkpoint folder to continue from.")
    )
    validation_steps: int = field(default=500, metadata=_arg("Validate (metrics + sample grid) every N updates."))
    num_validation_images: int = field(default=4, metadata=_arg("Rows of the input | output | target grid."))
    logging_steps: int = field(default=10, metadata=_arg("Log losses every N updates."))
    logging_dir: str | None = field(default=None, metadata=_arg("The tracker's log folder (unset: OUTPUT_DIR/logs)."))
    report_to: str = field(default="tensorboard", metadata=_arg("Experiment tracker (all work offline).", TRACKERS))
    tracker_project_name: str = field(default="pix2pix", metadata=_arg("Project/run name given to the tracker."))
    push_to_hub: bool = field(default=False, metadata=_arg("Upload the final model folder to --hub_model_id."))
    hub_model_id: str | None = field(default=None, metadata=_arg("Hub repo id, e.g. user/facades."))
    hub_private_repo: bool = field(default=False, metadata=_arg("Create the --hub_model_id repo as private."))
    license: str = field(
        default="other",
        metadata=_arg(
            "License in the model card (a Hub license id, e.g. mit, cc-by-4.0). A model inherits its data's terms; "
            "'other' adds a note saying so."
        ),
    )
    export_int8: bool = field(
        default=False,
        metadata=_arg(
            "Also write model.int8.onnx (static int8, calibrated on training inputs) into the model folder; "
            "refused, with the figure, when its outputs are below --int8_min_psnr from fp32's (needs the onnx extra)."
        ),
    )
    int8_min_psnr: float = field(
        default=DEFAULT_MIN_PSNR_DB, metadata=_arg("Quality gate of --export_int8: PSNR (dB) from the fp32 outputs.")
    )
    quick: bool = field(
        default=False, metadata=_arg("Small fast CPU run: unet_128 at 128x128, 400 steps (see docs/training.md).")
    )

    def __post_init__(self) -> None:
        # --gan_mode unset: the discriminator's own recipe. Resolved here, so the checkpoint and the card record
        # the objective used (and dataclasses.replace keeps it, as it keeps any value given).
        if self.gan_mode is None:
            self.gan_mode = default_gan_mode(self.netD)

    @property
    def multiscale(self) -> bool:
        """pix2pixHD's discriminator: per-scale GAN losses and, with ``lambda_feat``, feature matching."""
        return is_multiscale(self.netD)

    @property
    def feature_matching(self) -> bool:
        return self.multiscale and self.lambda_feat > 0

    def check(self) -> None:
        """Refuse inconsistent arguments before any data or model work; each error names the flags to change.

        With ``--init_from`` the architecture flags do not describe the networks until the model's are adopted
        (``base_model.adopt_architecture``), so ``check_shapes`` waits until then.
        """
        self._check_finite()
        self._check_choices()
        self._check_counts()
        self._check_high_resolution()
        if not self.init_from:
            self.check_shapes()

    def _check_finite(self) -> None:
        """No NaN or infinity in any number (``--lr nan`` would train to NaN weights without an error)."""
        for name, value in asdict(self).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--{name} {value} is not a finite number.")

    def _check_choices(self) -> None:
        """Every field with a list of accepted values holds one of them."""
        for name in ("netG", "netD", "norm", "gan_mode", "lr_policy", "direction", "preprocess", "init_type"):
            choices = fields_by_name()[name].metadata["choices"]
            if getattr(self, name) not in choices:
                raise ConfigError(
                    f"--{name} {getattr(self, name)!r} is not supported; choose one of {', '.join(choices)}."
                )
        if self.report_to not in TRACKERS:
            raise ConfigError(f"--report_to {self.report_to!r} is not supported; choose one of {', '.join(TRACKERS)}.")
        if self.mixed_precision is not None and self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"--mixed_precision must be one of {', '.join(MIXED_PRECISION)}.")
        for name in ("input_nc", "output_nc"):
            if getattr(self, name) not in CHANNEL_COUNTS:
                raise ConfigError(
                    f"--{name} {getattr(self, name)} is not supported; use 1 (grayscale), 3 (RGB) or 4 (RGBA)."
                )
        if self.push_to_hub and not self.hub_model_id:
            raise ConfigError("--push_to_hub needs --hub_model_id user/name.")

    def _check_counts(self) -> None:
        """Sizes, steps, epochs and the learning rate are in range."""
        positive = ("load_size", "crop_size", "batch_size", "gradient_accumulation_steps", "checkpointing_steps")
        for name in (*positive, "validation_steps", "logging_steps", "num_validation_images", "lr_decay_iters"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1; got {getattr(self, name)}.")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ConfigError(f"--max_train_samples must be at least 1 (unset: all); got {self.max_train_samples}.")
        for name in ("n_epochs", "n_epochs_decay", "dataloader_num_workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must be 0 or more; got {getattr(self, name)}.")
        if self.n_epochs + self.n_epochs_decay < 1 and self.max_train_steps is None:
            raise ConfigError(
                "--n_epochs + --n_epochs_decay is 0: nothing to train. Raise one or set --max_train_steps."
            )
        if self.max_train_steps is not None and self.max_train_steps < 1:
            raise ConfigError(f"--max_train_steps must be at least 1; got {self.max_train_steps}.")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ConfigError("--checkpoints_total_limit must be at least 1 (or unset to keep all checkpoints).")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive; got {self.lr}.")
        if self.val_size is not None and not self.val_size > 0:
            raise ConfigError("--val_size must be positive (a count or a fraction); leave it unset for the default.")
        if self.val_size is not None and self.val_size >= 1 and self.val_size != int(self.val_size):
            raise ConfigError(f"--val_size {self.val_size} must be a whole count (>= 1) or a fraction (< 1).")
        if self.streaming:
            message = stream_args_error(
                max_train_steps=self.max_train_steps,
                val_size=self.val_size,
                validation_split=self.validation_split,
                shuffle_buffer=self.shuffle_buffer,
            )
            if message:
                raise ConfigError(message)

    def _check_high_resolution(self) -> None:
        """pix2pixHD's options: weights, the VGG's weights, the global generator's fixed epochs, label maps."""
        for name in ("num_D",):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1; got {getattr(self, name)}.")
        for name in ("lambda_feat", "lambda_vgg", "niter_fix_global", "label_nc"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name} must be 0 or more; got {getattr(self, name)}.")
        if self.lambda_vgg > 0 and not self.vgg_weights:
            raise ConfigError(
                f"--lambda_vgg {self.lambda_vgg:g} needs --vgg_weights (a VGG19 .safetensors file, a folder or a Hub "
                "id such as timm/vgg19.tv_in1k; nothing is downloaded by itself), or --lambda_vgg 0."
            )
        if self.lambda_vgg > 0 and self.output_nc not in (1, 3):
            raise ConfigError(f"--lambda_vgg compares RGB or grey images; --output_nc {self.output_nc} is neither.")
        if self.niter_fix_global and self.netG != "local":
            raise ConfigError(
                f"--niter_fix_global {self.niter_fix_global} fixes the global generator inside --netG local; "
                f"--netG {self.netG} has none. Drop the flag or use --netG local."
            )

    def check_shapes(self) -> None:
        """The crop fits the resized image, and both networks fit the crop."""
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and self.crop_size > self.load_size:
            raise ConfigError(
                f"--crop_size {self.crop_size} is larger than --load_size {self.load_size}: the random crop must fit "
                "in the resized image. Lower --crop_size or raise --load_size."
            )
        multiple = generator_size_multiple(self.netG)
        if "crop" in self.preprocess and self.crop_size % multiple:
            fitting = max(multiple, self.crop_size // multiple * multiple)
            raise ConfigError(
                f"--netG {self.netG} halves the image {multiple.bit_length() - 1} times, so it needs sides divisible "
                f"by {multiple}; --crop_size {self.crop_size} is not. Use --crop_size {fitting} "
                f"or a shallower generator ({suggest_generator(self.crop_size)})."
            )
        if self.preprocess == "scale_width" and self.load_size % multiple:
            fitting = max(multiple, self.load_size // multiple * multiple)
            raise ConfigError(
                f"--preprocess scale_width makes the width --load_size {self.load_size}, and --netG {self.netG} "
                f"needs sides divisible by {multiple}. Use --load_size {fitting}."
            )
        discriminator = tiny_discriminator(self.netD, n_layers=self.n_layers_D, num_D=self.num_D)
        depth = discriminator.n_layers
        if "crop" in self.preprocess and min(discriminator.logit_sizes(self.crop_size, self.crop_size)[0]) < 1:
            raise ConfigError(
                f"--netD {self.netD} with {depth} layers is too deep for --crop_size {self.crop_size}: "
                "its output would be empty. Use a smaller --n_layers_D or a larger crop."
            )
        self._check_min_sizes()

    def _check_min_sizes(self) -> None:
        """The training images are large enough for the generator (pix2pixHD's need a bottleneck of 2x2) and for
        every scale of a multi-scale discriminator."""
        side = smallest_training_side(self)
        if side is None:
            return
        generator_min = tiny_generator(self.netG).min_size
        if side < generator_min:
            raise ConfigError(
                f"--netG {self.netG} needs images of at least {generator_min}px a side; training images here are "
                f"{side}px on their short side (--crop_size / --load_size). Raise them or use a smaller generator."
            )
        if self.multiscale:
            discriminator_min = tiny_discriminator(self.netD, n_layers=self.n_layers_D, num_D=self.num_D).min_size
            if side < discriminator_min:
                raise ConfigError(
                    f"--netD {self.netD} with --num_D {self.num_D} and --n_layers_D {self.n_layers_D} needs images "
                    f"of at least {discriminator_min}px a side (its coarsest scale sees them halved "
                    f"{self.num_D - 1} times); training images here are {side}px on their short side. Lower "
                    "--num_D or --n_layers_D, or raise --crop_size."
                )

    # The speed-ups, each with its own switch; --plain_eager turns them all off. Same maths either way.
    @property
    def fused_adam(self) -> bool:
        return not (self.no_fused_adam or self.plain_eager)

    @property
    def winograd(self) -> bool:
        return not (self.no_winograd or self.plain_eager)

    @property
    def allocator_tuning(self) -> bool:
        """Process-wide, so only entry points (``training.cli``) read it; ``train()`` never changes the process."""
        return not (self.no_allocator_tuning or self.plain_eager)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Rebuild from ``asdict`` output (a checkpoint's ``training_config.json``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown training arguments {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return cls(**values)


def default_gan_mode(net_d: str) -> str:
    """``--gan_mode`` left unset: LSGAN for pix2pixHD's multi-scale discriminator (its recipe), vanilla otherwise
    (the paper's)."""
    return "lsgan" if is_multiscale(net_d) else "vanilla"


def is_multiscale(net_d: str) -> bool:
    """Whether ``--netD net_d`` judges at several scales (pix2pixHD's: LSGAN and feature matching), as its class
    declares; an unknown name is not (``check`` refuses it)."""
    return net_d in DISCRIMINATOR_PRESETS and discriminator_class_of(net_d).multiscale


def smallest_training_side(config: TrainingConfig) -> int | None:
    """The short side of the training images, where the flags fix it: the crop; with ``scale_width`` at least
    ``min(load_size, crop_size)`` (the width is ``load_size``, the height never below ``crop_size``); None for
    ``none`` (each image's own size)."""
    if "crop" in config.preprocess:
        return config.crop_size
    if config.preprocess == "scale_width":
        return min(config.load_size, config.crop_size)
    return None


def fields_by_name() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in fields(TrainingConfig)}


def suggest_generator(crop_size: int) -> str:
    """The generator presets whose size multiple divides ``crop_size``, as a hint for an error message."""
    fitting = [name for name in GENERATORS if crop_size % generator_size_multiple(name) == 0]
    smallest = min(generator_size_multiple(name) for name in GENERATORS)
    return "e.g. " + " or ".join(fitting) if fitting else f"none of the presets fits; use a multiple of {smallest}"


def quick_overrides() -> dict[str, Any]:
    """``--quick``: a small unet_128 at 128x128 on facades (labels -> photo) that finishes in minutes on a CPU.

    It does not choose the data: ``--dataset`` does (``make demo`` passes the local facades pairs).
    """
    return {
        "direction": "BtoA",
        "netG": "unet_128",
        "ngf": 32,
        "ndf": 32,
        "load_size": 143,
        "crop_size": 128,
        "max_train_steps": 400,  # about one epoch of the 392 training pairs
        "val_size": 8,
        "validation_steps": 100,
        "checkpointing_steps": 200,
        "checkpoints_total_limit": 1,
        "logging_steps": 10,
        "dataloader_num_workers": 0,  # decoding a pair is cheap next to a CPU step: a worker would only compete
        "output_dir": "outputs/facades-quick",
        "overwrite_output_dir": True,  # the demo is meant to be run again and again
    }


# ----- command line -------------------------------------------------------------------------------------
def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; plain types unchanged."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    return args[0] if args else annotation


def _number(text: str) -> float:
    """``--val_size``: ``16`` is a count, ``0.1`` a fraction."""
    value = float(text)
    return int(value) if value >= 1 and value == int(value) else value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """One ``--name`` per ``TrainingConfig`` field; booleans are switches; defaults are the dataclass's."""
    hints = get_type_hints(TrainingConfig)
    for f in fields(TrainingConfig):
        kind = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(f"--{f.name}", action="store_true", help=help_text)
            continue
        convert = _number if f.name == "val_size" else kind
        default_note = " (default: %(default)s)"
        parser.add_argument(
            f"--{f.name}",
            type=convert,
            default=f.default,
            choices=f.metadata.get("choices"),
            metavar=None if f.metadata.get("choices") else f.name.upper(),
            help=help_text + default_note,
        )
    return parser


def training_parser() -> argparse.ArgumentParser:
    """The command line: one ``--name`` per ``TrainingConfig`` field (entry points may add their own flags)."""
    return add_arguments(argparse.ArgumentParser(description="Train pix2pix (run under `accelerate launch`)."))


def config_from_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> TrainingConfig:
    """Parse a command line into a checked ``TrainingConfig``; ``--quick`` swaps in ``quick_overrides`` defaults.

    Flags given explicitly always win over the ``--quick`` preset. ``parser`` (default ``training_parser()``) may
    hold flags of an entry point's own; they are not part of the config.
    """
    parser = training_parser() if parser is None else parser
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick_overrides())
        args = parser.parse_args(argv)
    config = TrainingConfig(**{f.name: getattr(args, f.name) for f in fields(TrainingConfig)})
    config.check()
    return config
