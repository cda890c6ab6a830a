"""The checks of a ``TrainingConfig`` (``TrainingConfig.check``): every inconsistent set of arguments is refused
before any data or model work, with a ``ConfigError`` that names the flags to change.

``check_config`` runs them all; ``check_shapes`` alone waits, with ``--init_from``, until the model's architecture
has been adopted (``base_model.adopt_architecture``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict
from typing import TYPE_CHECKING

from ..constants import CHANNEL_COUNTS, COMPILE_MODES, MIXED_PRECISION, TRACKERS
from ..data.streaming import stream_args_error
from ..models.registry import (
    GENERATOR_PRESETS,
    build_generator,
    generator_size_multiple,
    tiny_discriminator,
    tiny_generator,
)
from .errors import ConfigError
from .presets import DISCRIMINATOR_NORMS, UPSAMPLING_CHOICES, generator_options

if TYPE_CHECKING:
    from .config import TrainingConfig


def check_config(config: TrainingConfig) -> None:
    """Refuse inconsistent arguments; ``check_shapes`` too unless ``--init_from`` will set the architecture."""
    check_finite(config)
    check_choices(config)
    check_counts(config)
    check_high_resolution(config)
    check_semantic_synthesis(config)
    if config.compile and config.gan_mode == "wgangp":
        raise ConfigError(
            "--compile with --gan_mode wgangp: torch.compile has no double backward, which the gradient penalty "
            "needs. Drop --compile, or choose another --gan_mode."
        )
    check_compile_mode(config)
    if not config.init_from:
        check_shapes(config)


def check_compile_mode(config: TrainingConfig) -> None:
    """``--compile_mode`` is one of torch.compile's modes and comes with ``--compile`` (it changes nothing alone).
    ``reduce-overhead`` on a CPU is not refused: the device is known only at the start of training, which compiles
    as ``default`` there and says so (``speed.compile_networks``)."""
    if config.compile_mode not in COMPILE_MODES:
        raise ConfigError(
            f"--compile_mode {config.compile_mode!r} is not supported; choose one of {', '.join(COMPILE_MODES)}."
        )
    if config.compile_mode != "default" and not config.compile:
        raise ConfigError(f"--compile_mode {config.compile_mode} without --compile: add --compile, or drop the mode.")


def check_finite(config: TrainingConfig) -> None:
    """No NaN or infinity in any number (``--lr nan`` would train to NaN weights without an error)."""
    for name, value in asdict(config).items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"--{name} {value} is not a finite number.")


def check_choices(config: TrainingConfig) -> None:
    """Every field with a list of accepted values holds one of them."""
    by_name = {f.name: f for f in dataclasses.fields(config)}
    for name in ("netG", "netD", "norm", "gan_mode", "lr_policy", "direction", "preprocess", "init_type", "preset"):
        choices = by_name[name].metadata["choices"]
        if getattr(config, name) not in choices and not (name == "preset" and config.preset is None):
            raise ConfigError(
                f"--{name} {getattr(config, name)!r} is not supported; choose one of {', '.join(choices)}."
            )
    if config.report_to not in TRACKERS:
        raise ConfigError(f"--report_to {config.report_to!r} is not supported; choose one of {', '.join(TRACKERS)}.")
    if config.mixed_precision is not None and config.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"--mixed_precision must be one of {', '.join(MIXED_PRECISION)}.")
    for name in ("input_nc", "output_nc"):
        if getattr(config, name) not in CHANNEL_COUNTS:
            raise ConfigError(
                f"--{name} {getattr(config, name)} is not supported; use 1 (grayscale), 3 (RGB) or 4 (RGBA)."
            )
    if config.push_to_hub and not config.hub_model_id:
        raise ConfigError("--push_to_hub needs --hub_model_id user/name.")


def check_counts(config: TrainingConfig) -> None:
    """Sizes, steps, epochs and the learning rate are in range."""
    positive = ("load_size", "crop_size", "batch_size", "gradient_accumulation_steps", "checkpointing_steps")
    counts = ("validation_steps", "logging_steps", "num_validation_images", "lr_decay_iters", "ddp_timeout")
    for name in (*positive, *counts):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name} must be at least 1; got {getattr(config, name)}.")
    if config.max_train_samples is not None and config.max_train_samples < 1:
        raise ConfigError(f"--max_train_samples must be at least 1 (unset: all); got {config.max_train_samples}.")
    for name in ("n_epochs", "n_epochs_decay", "dataloader_num_workers"):
        if getattr(config, name) < 0:
            raise ConfigError(f"--{name} must be 0 or more; got {getattr(config, name)}.")
    if config.n_epochs + config.n_epochs_decay < 1 and config.max_train_steps is None:
        raise ConfigError("--n_epochs + --n_epochs_decay is 0: nothing to train. Raise one or set --max_train_steps.")
    if config.max_train_steps is not None and config.max_train_steps < 1:
        raise ConfigError(f"--max_train_steps must be at least 1; got {config.max_train_steps}.")
    if config.checkpoints_total_limit is not None and config.checkpoints_total_limit < 1:
        raise ConfigError("--checkpoints_total_limit must be at least 1 (or unset to keep all checkpoints).")
    if config.lr <= 0:
        raise ConfigError(f"--lr must be positive; got {config.lr}.")
    if config.val_size is not None and not config.val_size > 0:
        raise ConfigError("--val_size must be positive (a count or a fraction); leave it unset for the default.")
    if config.val_size is not None and config.val_size >= 1 and config.val_size != int(config.val_size):
        raise ConfigError(f"--val_size {config.val_size} must be a whole count (>= 1) or a fraction (< 1).")
    if config.streaming:
        message = stream_args_error(
            max_train_steps=config.max_train_steps,
            val_size=config.val_size,
            validation_split=config.validation_split,
            shuffle_buffer=config.shuffle_buffer,
        )
        if message:
            raise ConfigError(message)


def check_high_resolution(config: TrainingConfig) -> None:
    """pix2pixHD's options: weights, the VGG's weights, the global generator's fixed epochs, label maps."""
    for name in ("num_D",):
        if getattr(config, name) < 1:
            raise ConfigError(f"--{name} must be at least 1; got {getattr(config, name)}.")
    for name in ("lambda_feat", "lambda_vgg", "niter_fix_global", "label_nc"):
        if getattr(config, name) < 0:
            raise ConfigError(f"--{name} must be 0 or more; got {getattr(config, name)}.")
    if config.lambda_vgg > 0 and not config.vgg_weights:
        raise ConfigError(
            f"--lambda_vgg {config.lambda_vgg:g} needs --vgg_weights (a VGG19 .safetensors file, a folder or a Hub "
            "id such as timm/vgg19.tv_in1k; nothing is downloaded by itself), or --lambda_vgg 0."
        )
    if config.lambda_vgg > 0 and config.output_nc not in (1, 3):
        raise ConfigError(f"--lambda_vgg compares RGB or grey images; --output_nc {config.output_nc} is neither.")
    if config.niter_fix_global and config.netG != "local":
        raise ConfigError(
            f"--niter_fix_global {config.niter_fix_global} fixes the global generator inside --netG local; "
            f"--netG {config.netG} has none. Drop the flag or use --netG local."
        )


def check_semantic_synthesis(config: TrainingConfig) -> None:
    """SPADE's options (docs/semantic-synthesis.md): each only where it means something, no switch both on and
    off, counts in range."""
    for name, choices in (("norm_D", DISCRIMINATOR_NORMS), ("num_upsampling_layers", UPSAMPLING_CHOICES)):
        value = getattr(config, name)
        if value is not None and value not in choices:
            raise ConfigError(f"--{name} {value!r} is not supported; choose one of {', '.join(choices)}.")
    if min(config.z_dim, config.spade_hidden) < 1 or config.lambda_kl < 0:
        raise ConfigError(
            f"--z_dim and --spade_hidden must be at least 1, --lambda_kl 0 or more; got {config.z_dim}, "
            f"{config.spade_hidden}, {config.lambda_kl}."
        )
    spade_only = {"use_vae": config.use_vae, "num_upsampling_layers": config.num_upsampling_layers != "normal"}
    if not config.preset:  # a preset's own switches stay quiet when --netG names another generator
        spade_only["spectral_norm_G"] = config.spectral_norm_G
    for name, used in spade_only.items():
        if used and config.netG != "spade":
            raise ConfigError(f"--{name} is an option of --netG spade; --netG {config.netG} has none. Drop it.")
    for name in ("TTUR", "spectral_norm_G"):
        if getattr(config, name) and getattr(config, f"no_{name}") and not config.preset:
            raise ConfigError(f"--{name} and --no_{name} contradict each other: give one.")
    if config.use_vae and config.output_nc != 3:
        raise ConfigError(f"--use_vae encodes RGB targets into a style; --output_nc {config.output_nc} is not RGB.")
    if config.contain_dontcare_label and not config.label_nc:
        raise ConfigError(
            "--contain_dontcare_label adds a don't-care class to label maps; set --label_nc (the other classes)."
        )


def check_shapes(config: TrainingConfig) -> None:
    """The crop fits the resized image, and both networks fit the crop."""
    if config.preprocess in ("resize_and_crop", "scale_width_and_crop") and config.crop_size > config.load_size:
        raise ConfigError(
            f"--crop_size {config.crop_size} is larger than --load_size {config.load_size}: the random crop must fit "
            "in the resized image. Lower --crop_size or raise --load_size."
        )
    multiple = size_multiple(config)
    if "crop" in config.preprocess and config.crop_size % multiple:
        fitting = max(multiple, config.crop_size // multiple * multiple)
        raise ConfigError(
            f"--netG {config.netG} halves the image {multiple.bit_length() - 1} times, so it needs sides divisible "
            f"by {multiple}; --crop_size {config.crop_size} is not. Use --crop_size {fitting} "
            f"or a shallower generator ({suggest_generator(config.crop_size)})."
        )
    if config.preprocess == "scale_width" and config.load_size % multiple:
        fitting = max(multiple, config.load_size // multiple * multiple)
        raise ConfigError(
            f"--preprocess scale_width makes the width --load_size {config.load_size}, and --netG {config.netG} "
            f"needs sides divisible by {multiple}. Use --load_size {fitting}."
        )
    discriminator = tiny_discriminator(config.netD, n_layers=config.n_layers_D, num_D=config.num_D)
    depth = discriminator.n_layers
    if "crop" in config.preprocess and min(discriminator.logit_sizes(config.crop_size, config.crop_size)[0]) < 1:
        raise ConfigError(
            f"--netD {config.netD} with {depth} layers is too deep for --crop_size {config.crop_size}: "
            "its output would be empty. Use a smaller --n_layers_D or a larger crop."
        )
    check_min_sizes(config)


def check_min_sizes(config: TrainingConfig) -> None:
    """The training images are large enough for the generator (pix2pixHD's need a bottleneck of 2x2) and for
    every scale of a multi-scale discriminator."""
    side = smallest_training_side(config)
    if side is None:
        return
    generator_min = tiny_generator(config.netG).min_size
    if side < generator_min:
        raise ConfigError(
            f"--netG {config.netG} needs images of at least {generator_min}px a side; training images here are "
            f"{side}px on their short side (--crop_size / --load_size). Raise them or use a smaller generator."
        )
    if config.multiscale:
        discriminator_min = tiny_discriminator(config.netD, n_layers=config.n_layers_D, num_D=config.num_D).min_size
        if side < discriminator_min:
            raise ConfigError(
                f"--netD {config.netD} with --num_D {config.num_D} and --n_layers_D {config.n_layers_D} needs images "
                f"of at least {discriminator_min}px a side (its coarsest scale sees them halved "
                f"{config.num_D - 1} times); training images here are {side}px on their short side. Lower "
                "--num_D or --n_layers_D, or raise --crop_size."
            )


def smallest_training_side(config: TrainingConfig) -> int | None:
    """The short side of the training images, where the flags fix it: the crop; with ``scale_width`` at least
    ``min(load_size, crop_size)`` (the width is ``load_size``, the height never below ``crop_size``); None for
    ``none`` (each image's own size)."""
    if "crop" in config.preprocess:
        return config.crop_size
    if config.preprocess == "scale_width":
        return min(config.load_size, config.crop_size)
    return None


def size_multiple(config: TrainingConfig) -> int:
    """Sides the configured generator needs to divide: its preset's, or with SPADE's options (more upsamplings
    need more) a one-filter instance's."""
    options = generator_options(config)
    if not options:
        return generator_size_multiple(config.netG)
    return int(build_generator(config.netG, ngf=1, norm="none", **{**options, "use_vae": False}).size_multiple)


def suggest_generator(crop_size: int) -> str:
    """The generator presets whose size multiple divides ``crop_size``, as a hint for an error message."""
    fitting = [name for name in GENERATOR_PRESETS if crop_size % generator_size_multiple(name) == 0]
    smallest = min(generator_size_multiple(name) for name in GENERATOR_PRESETS)
    return "e.g. " + " or ".join(fitting) if fitting else f"none of the presets fits; use a multiple of {smallest}"
