"""What a run is built from: the accelerator, the networks, the optimizers and schedules, the checks.

Plain functions of a ``TrainingConfig``, so tests and benchmarks build exactly what ``train()`` builds. Everything
that can be wrong with the arguments or the output folder is found here, before the first step (the data is
``training.data``'s).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, broadcast_object_list
from torch import nn

from .. import fileio
from ..constants import (
    CARD_NAME,
    CONFIG_NAME,
    DISCRIMINATOR_DIR,
    INT8_ONNX_NAME,
    MODEL_INFO_NAME,
    SAMPLES_NAME,
    WEIGHTS_NAME,
)
from ..images.labels import input_channels
from ..inference.pipeline import Pix2Pix
from ..models.registry import build_discriminator, build_generator
from . import checkpoint
from .base_model import starts_from_global
from .config import TrainingConfig
from .errors import (
    ConfigError,
    MainProcessError,
    MissingPackageError,
    OutputDirError,
    OutputDirNotWritable,
)
from .losses import GANLoss, VGGLoss
from .presets import generator_options
from .step import StepParts

LOGS_DIR = "logs"
TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",)}
# What a finished run leaves in --output_dir: a new run would replace these, so it needs --overwrite_output_dir.
MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, MODEL_INFO_NAME, DISCRIMINATOR_DIR, SAMPLES_NAME, INT8_ONNX_NAME)


# ----- networks and optimisation ---------------------------------------------------------------------------------
def build_networks(config: TrainingConfig, base: Pix2Pix | None = None) -> tuple[nn.Module, nn.Module]:
    """The networks a run trains: Winograd convs on unless ``config`` turns them off, gradient checkpointing on
    with ``--gradient_checkpointing``.

    Args:
        config: names the generator preset and the conditional discriminator preset (generator input +
            ``output_nc`` channels), built from the registry.
        base: networks to start from instead (a checkpoint, ``--init_from``), with a new discriminator when it has
            none; a ``--netG local`` run from a global model gets a new local enhancer holding that model's
            generator (pix2pixHD's recipe).

    Returns:
        ``(generator, discriminator)``, not yet prepared.
    """
    common = {"norm": config.norm, "init_type": config.init_type, "init_gain": config.init_gain}
    in_channels = input_channels(config.input_nc, config.label_nc, config.instance, config.contain_dontcare_label)
    if base is not None and not starts_from_global(config, base.generator):
        generator = base.generator
    else:
        generator = build_generator(
            config.netG,
            in_channels=in_channels,
            out_channels=config.output_nc,
            ngf=config.ngf,
            **common,
            **(generator_options(config) or {"dropout": 0.0 if config.no_dropout else 0.5}),
        )
        if base is not None:
            generator.load_global(base.generator)
    discriminator = base.discriminator if base is not None else None
    if discriminator is None:
        discriminator = build_discriminator(
            config.netD,
            in_channels=in_channels + config.output_nc,
            ndf=config.ndf,
            n_layers=config.n_layers_D,
            num_D=config.num_D,
            **{**common, "norm": config.norm_D or config.norm},
        )
    for network in (generator, discriminator):
        if config.winograd:
            network.enable_winograd()
        else:
            network.disable_winograd()
        if config.gradient_checkpointing:
            network.enable_gradient_checkpointing()
    return generator, discriminator


def make_vgg_loss(config: TrainingConfig, device: torch.device) -> VGGLoss | None:
    """pix2pixHD's VGG19 perceptual loss on ``device`` with ``--lambda_vgg`` > 0 (weights from ``--vgg_weights``;
    frozen, never prepared or saved); None otherwise."""
    if config.lambda_vgg <= 0:
        return None
    try:
        return VGGLoss(config.vgg_weights).to(device)
    except (OSError, ValueError) as error:
        raise ConfigError(f"--vgg_weights {config.vgg_weights}: {error}") from error


def make_step_parts(
    config: TrainingConfig,
    generator: nn.Module,
    discriminator: nn.Module,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    device: torch.device,
) -> StepParts:
    """What ``train_step`` works with for ``config``: the (prepared) networks and optimizers, the GAN loss and the
    weights of every term (feature matching only with the multi-scale D, the VGG loss only with --lambda_vgg, the
    KL term and the style encoder only with --use_vae)."""
    return StepParts(
        generator, discriminator, optimizer_g, optimizer_d, GANLoss(config.gan_mode), config.lambda_l1,
        config.lambda_gp, lambda_feat=config.lambda_feat if config.feature_matching else 0.0,
        vgg_loss=make_vgg_loss(config, device), lambda_vgg=config.lambda_vgg,
        lambda_kl=config.lambda_kl if config.use_vae else None,
    )  # fmt: skip


def make_optimizers(
    config: TrainingConfig, generator: nn.Module, discriminator: nn.Module, device: torch.device
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """G's and D's Adam, built once both networks are on ``device`` (in channels_last memory format with
    ``--channels_last``): the fused kernel checks where its parameters are, and some torch versions refuse CPU
    parameters for a CUDA run's fused Adam.

    Args:
        config: the run's arguments (``channels_last``, the Adam settings, ``fused_adam``; with TTUR G's learning
            rate is half ``lr``, D's twice: ``TrainingConfig.learning_rates``).
        generator: G, moved to ``device`` here.
        discriminator: D, moved to ``device`` here.
        device: the accelerator's device.

    Returns:
        ``(optimizer_g, optimizer_d)``, not yet prepared.
    """
    for network in (generator, discriminator):
        network.to(device)
        if config.channels_last:
            network.to(memory_format=torch.channels_last)
    lr_g, lr_d = config.learning_rates
    return (
        make_adam(generator.parameters(), config, device, lr_g),
        make_adam(discriminator.parameters(), config, device, lr_d),
    )


def make_adam(params: Any, config: TrainingConfig, device: torch.device, lr: float | None = None) -> torch.optim.Adam:
    """Adam with the paper's betas at ``lr`` (None: ``--lr``); the fused kernel (same maths, one kernel for all
    tensors) where this torch has it for ``device``, unless ``config`` turns it off."""
    kwargs = {"lr": config.lr if lr is None else lr, "betas": (config.beta1, config.beta2)}
    if device.type in ("cuda", "cpu") and config.fused_adam:
        try:
            return torch.optim.Adam(params, fused=True, **kwargs)
        except (RuntimeError, TypeError):
            pass
    return torch.optim.Adam(params, **kwargs)


class LRFactor:
    """Learning-rate multiplier after ``step`` updates, by epoch (``step // updates_per_epoch``), as the authors:

    ``linear``: 1 for ``n_epochs``, then down by ``1 / (n_epochs_decay + 1)`` per epoch; ``step``: x0.1 every
    ``lr_decay_iters`` epochs; ``cosine``: half a cosine over all epochs; ``constant``: 1. A class, not a lambda,
    so ``LambdaLR.state_dict`` (and thus a checkpoint) carries it.
    """

    def __init__(self, config: TrainingConfig, updates_per_epoch: int) -> None:
        self.policy = config.lr_policy
        self.updates_per_epoch = max(1, updates_per_epoch)
        self.n_epochs = config.n_epochs
        self.n_epochs_decay = config.n_epochs_decay
        self.lr_decay_iters = config.lr_decay_iters

    def __call__(self, step: int) -> float:
        epoch = step // self.updates_per_epoch
        if self.policy == "linear":
            return max(0.0, 1.0 - max(0, epoch + 1 - self.n_epochs) / float(self.n_epochs_decay + 1))
        if self.policy == "step":
            return 0.1 ** (epoch // self.lr_decay_iters)
        if self.policy == "cosine":
            total = max(1, self.n_epochs + self.n_epochs_decay)
            return 0.5 * (1.0 + math.cos(math.pi * min(epoch, total) / total))
        return 1.0


def make_schedulers(config: TrainingConfig, optimizers: tuple, updates_per_epoch: int) -> tuple:
    """One ``LambdaLR(LRFactor)`` per (prepared) optimizer. Not prepared: Accelerate would step them once per
    process, and ours count updates."""
    return tuple(
        torch.optim.lr_scheduler.LambdaLR(optimizer.optimizer, LRFactor(config, updates_per_epoch))
        for optimizer in optimizers
    )


def make_accelerator(config: TrainingConfig) -> Accelerator:
    """The ``Accelerator``, its processes waiting ``--ddp_timeout`` seconds for each other. ``mixed_precision`` is
    passed only when given, so ``accelerate launch --mixed_precision`` (or its config file) decides otherwise; on a
    CPU that default is fp32."""
    # The other processes wait at a barrier while the main one alone loads the data, checkpoints and publishes:
    # longer than NCCL's default 10 minutes on a big dataset or a slow upload.
    kwargs: dict[str, Any] = {
        "kwargs_handlers": [InitProcessGroupKwargs(timeout=timedelta(seconds=config.ddp_timeout))]
    }
    if config.mixed_precision is not None:
        kwargs["mixed_precision"] = config.mixed_precision
    output_dir = Path(config.output_dir)
    return Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=None if config.report_to == "none" else config.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(logging_dir(config))),
        **kwargs,
    )


def logging_dir(config: TrainingConfig) -> Path:
    """The tracker's log folder: ``--logging_dir``, or ``output_dir/logs``."""
    return Path(config.logging_dir) if config.logging_dir else Path(config.output_dir) / LOGS_DIR


def tracker_config(config: TrainingConfig) -> dict[str, Any]:
    """The config as tracker hyper-parameters (TensorBoard takes only numbers, strings and booleans)."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else str(value)
        for key, value in asdict(config).items()
    }


# ----- checks before any work ------------------------------------------------------------------------------------
def check_tracker(report_to: str) -> None:
    """Refuse a ``--report_to`` whose package is not installed, saying what to install."""
    if report_to == "none":
        return
    if not any(importlib.util.find_spec(name) for name in TRACKER_PACKAGES[report_to]):
        raise MissingPackageError(
            f"--report_to {report_to} needs the {TRACKER_PACKAGES[report_to][0]} package: "
            f"pip install {TRACKER_PACKAGES[report_to][0]} (or pass --report_to none)."
        )


def check_int8_export(export_int8: bool) -> None:
    """Refuse ``--export_int8`` without onnx and onnxruntime before training, not after it."""
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if export_int8 and missing:
        raise MissingPackageError(
            f"--export_int8 needs {' and '.join(missing)}: pip install 'pix2pix-hub[onnx]' (or drop --export_int8)."
        )


def check_output_dir(path: Path) -> None:
    """Create ``path`` and prove a file can be written there, or say which path is the problem."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = fileio.write_bytes(fileio.temporary_sibling(path / "write-test"), b"")
        probe.unlink()
    except OSError as error:
        raise OutputDirNotWritable(
            f"--output_dir {path} cannot be written ({error.strerror or error}). Choose a folder you can write to."
        ) from error


def prepare_output_dir(config: TrainingConfig, resuming: bool) -> None:
    """Main process, before anything is built: a writable ``output_dir`` that a new run (not ``resuming`` from
    one of its checkpoints) will not mix with another run's checkpoints or silently replace another run's model
    files in, without what a killed run left half-written.

    Nothing of another run is deleted here: with ``--overwrite_output_dir`` its checkpoints are replaced when the
    new run saves its first one (``checkpoint.save_checkpoint(replace_old=True)``), its model files at the end.

    Args:
        config: the run's arguments (``output_dir``, ``overwrite_output_dir``, ``init_from``, ``dataset``).
        resuming: whether the run continues one of ``output_dir``'s checkpoints.
    """
    output_dir = Path(config.output_dir)
    check_output_dir(output_dir)
    if not resuming:
        existing = checkpoint.list_checkpoints(output_dir)
        model_files = sorted(name for name in MODEL_FILES if (output_dir / name).exists())
        if (existing or model_files) and not config.overwrite_output_dir:
            held = f"checkpoints ({existing[-1].name})" if existing else f"another model ({', '.join(model_files)})"
            raise OutputDirError(
                f"--output_dir {output_dir} already holds {held}; pass --resume_from_checkpoint latest to "
                "continue that run, --overwrite_output_dir to start afresh (replacing its checkpoints when this run "
                "saves its first, its model files at the end), or another --output_dir."
            )
        check_inputs_outside(config, checkpoint.checkpoints_dir(output_dir))
    checkpoint.remove_stale(output_dir)
    fileio.remove_temporaries(output_dir)


def check_inputs_outside(config: TrainingConfig, replaced: Path) -> None:
    """Refuse a local ``--init_from`` or ``--dataset`` inside ``replaced``, the ``checkpoints/`` folder a new run
    takes over (deleting what it held)."""
    for flag in ("init_from", "dataset"):
        value = getattr(config, flag)
        if value and Path(value).expanduser().exists():
            if fileio.overlap(fileio.resolved(value), fileio.resolved(replaced)) in ("is", "lies inside"):
                raise ConfigError(
                    f"--{flag} {value} is inside {replaced}, which a new run replaces at its first checkpoint "
                    "(--overwrite_output_dir would delete it): copy it elsewhere first, or choose another --output_dir."
                )


def on_main_then_everywhere(accelerator: Accelerator, check: Callable[[], None]) -> None:
    """Run ``check`` on the main process only (it may write) and raise its error in every process alike (the
    others raise a ``MainProcessError`` with the same message and exit code)."""
    message: list[Any] = [None]
    if accelerator.is_main_process:
        try:
            check()
        except Exception as error:  # noqa: BLE001 - re-raised below, in every process
            if accelerator.num_processes == 1:
                raise
            message = [(f"{type(error).__name__}: {error}", getattr(error, "exit_code", None))]
    if accelerator.num_processes > 1:
        broadcast_object_list(message)
        if message[0] is not None:
            raise MainProcessError(*message[0])
