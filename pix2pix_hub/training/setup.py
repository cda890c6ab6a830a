"""What a run is built from: the accelerator, the networks, the optimizers and schedules, the data, the checks.

Plain functions of a ``TrainingConfig``, so tests and benchmarks build exactly what ``train()`` builds. Everything
that can be wrong with the arguments, the output folder or the data is found here, before the first step.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, broadcast_object_list
from torch import nn
from torch.utils.data import DataLoader, Sampler

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
from ..data import PairedDataset, PairedTransform, check_pairs, collate_pairs, load_pairs, split_pairs
from ..data.streaming import StreamingPairs, StreamLoader, first_rows, row_keys, take_validation
from ..images.labels import input_channels
from ..inference.pipeline import Pix2Pix
from ..models.registry import build_discriminator, build_generator
from ..performance import cpu_capabilities
from . import checkpoint
from .base_model import starts_from_global
from .config import AUTO_VAL_MAX, AUTO_VAL_MIN, TrainingConfig
from .errors import (
    ConfigError,
    DatasetError,
    MainProcessError,
    MissingDatasetError,
    MissingPackageError,
    OutputDirError,
    OutputDirNotWritable,
)
from .losses import GANLoss, VGGLoss
from .step import StepParts

LOGS_DIR = "logs"
TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",)}
# What a finished run leaves in --output_dir: a new run would replace these, so it needs --overwrite_output_dir.
MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, MODEL_INFO_NAME, DISCRIMINATOR_DIR, SAMPLES_NAME, INT8_ONNX_NAME)


# ----- networks and optimisation ---------------------------------------------------------------------------------
def build_networks(config: TrainingConfig, base: Pix2Pix | None = None) -> tuple[nn.Module, nn.Module]:
    """The generator preset and the conditional discriminator preset (generator input + ``output_nc`` channels)
    that ``config`` names, from the registry; or ``base``'s networks (a checkpoint, ``--init_from``), with a new
    discriminator when it has none. A ``--netG local`` run from a global model (``--init_from``) gets a new local
    enhancer holding that model's generator (pix2pixHD's recipe). Winograd convs on unless ``config`` turns them
    off; gradient checkpointing on with ``--gradient_checkpointing``."""
    common = {"norm": config.norm, "init_type": config.init_type, "init_gain": config.init_gain}
    in_channels = input_channels(config.input_nc, config.label_nc, config.instance)
    if base is not None and not starts_from_global(config, base.generator):
        generator = base.generator
    else:
        generator = build_generator(
            config.netG,
            in_channels=in_channels,
            out_channels=config.output_nc,
            ngf=config.ngf,
            dropout=0.0 if config.no_dropout else 0.5,
            **common,
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
            **common,
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
    weights of every term (feature matching only with the multi-scale D, the VGG loss only with --lambda_vgg)."""
    return StepParts(
        generator, discriminator, optimizer_g, optimizer_d, GANLoss(config.gan_mode), config.lambda_l1,
        config.lambda_gp, lambda_feat=config.lambda_feat if config.feature_matching else 0.0,
        vgg_loss=make_vgg_loss(config, device), lambda_vgg=config.lambda_vgg,
    )  # fmt: skip


def make_adam(params: Any, config: TrainingConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the paper's betas; the fused kernel (same maths, one kernel for all tensors) where this torch has
    it for ``device``, unless ``config`` turns it off."""
    kwargs = {"lr": config.lr, "betas": (config.beta1, config.beta2)}
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
    """The ``Accelerator``. ``mixed_precision`` is passed only when given, so ``accelerate launch
    --mixed_precision`` (or its config file) decides otherwise; on a CPU that default is fp32."""
    kwargs: dict[str, Any] = {}
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


def has_native_bf16(capabilities: dict[str, Any] | None = None) -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX): where bf16 autocast is faster than fp32.
    Elsewhere bf16 is emulated and slower."""
    capabilities = cpu_capabilities() if capabilities is None else capabilities
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def cpu_precision_note(precision: str, capabilities: dict[str, Any] | None = None) -> str:
    """One start-up line about precision on a CPU: whether it has native bf16, and what that means for ``precision``
    (Accelerate's ``mixed_precision``: ``no``, ``fp16`` or ``bf16``)."""
    native = has_native_bf16(capabilities)
    has = "has native bf16 (AVX-512 BF16 / AMX)" if native else "has no native bf16 (no AVX-512 BF16 or AMX)"
    if precision == "no":
        advice = "; --mixed_precision bf16 would likely train faster." if native else "; fp32 is the fast choice."
        return f"This CPU {has}{advice}"
    if precision == "bf16" and native:
        return f"This CPU {has}: training in bf16 autocast (weights, validation and the saved model stay fp32)."
    return f"Warning: this CPU {has}: {precision} is usually far slower here than fp32 (--mixed_precision no)."


def tracker_config(config: TrainingConfig) -> dict[str, Any]:
    """The config as tracker hyper-parameters (TensorBoard takes only numbers, strings and booleans)."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else str(value)
        for key, value in asdict(config).items()
    }


# ----- data ------------------------------------------------------------------------------------------------------
class EpochShuffler(Sampler[int]):
    """A permutation of ``range(size)`` drawn from ``(seed, epoch)`` only: identical in every process and after a
    resume, and it never touches the global RNG (which dropout uses and checkpoints restore)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


def held_out_count(val_size: float | None, total: int) -> int:
    """Pairs of ``total`` to hold out for validation: ``val_size`` pairs, or that fraction of them (at least 1, as
    ``split_pairs`` rounds); unset: ``AUTO_VAL_MAX`` but at most a tenth of them, and none (0: validate on the
    training pairs) when that would be fewer than ``AUTO_VAL_MIN``."""
    if val_size is None:
        count = min(AUTO_VAL_MAX, total // 10)
        return count if count >= AUTO_VAL_MIN else 0
    return max(1, int(round(total * val_size))) if val_size < 1 else int(val_size)


def make_transforms(config: TrainingConfig, size_multiple: int) -> tuple[PairedTransform, PairedTransform]:
    """``(train, validation)`` transforms: random crops and flips for training, deterministic for validation."""
    common = {"load_size": config.load_size, "crop_size": config.crop_size, "preprocess": config.preprocess}
    common.update(input_nc=config.input_nc, output_nc=config.output_nc, size_multiple=size_multiple)
    common.update(label_nc=config.label_nc, instance=config.instance)
    train = PairedTransform(flip=not config.no_flip, train=True, **common)
    return train, PairedTransform(flip=False, train=False, **common)


def load_datasets(
    config: TrainingConfig, size_multiple: int, say: Callable[[str], None] | None = None
) -> tuple[PairedDataset, PairedDataset]:
    """``(train, validation)`` ``PairedDataset``s; every pair is decoded once first (fail fast, rows named).
    ``say`` is told how the validation pairs were chosen when ``--val_size`` was left unset."""

    def pairs_of(split: str) -> Any:
        try:
            return load_pairs(
                config.dataset, split=split, direction=config.direction, column_a=config.column_a,
                column_b=config.column_b, cache_dir=config.cache_dir, column_instance=instance_column(config),
            )  # fmt: skip
        except FileNotFoundError as error:
            raise MissingDatasetError(f"--dataset {config.dataset}: {error}") from error

    pairs = pairs_of(config.split)
    if config.validation_split:
        train_pairs, val_pairs = pairs, pairs_of(config.validation_split)
    else:
        train_pairs, val_pairs = hold_out(pairs, config, say)
    if config.max_train_samples is not None and config.max_train_samples < len(train_pairs):
        # After the split, so the validation pairs are the same as in the full run (or, when validation uses the
        # training pairs, the pairs actually trained on).
        same = val_pairs is train_pairs
        train_pairs = train_pairs.select(range(config.max_train_samples))
        val_pairs = train_pairs if same else val_pairs
    train_transform, val_transform = make_transforms(config, size_multiple)
    if not config.skip_bad_samples:  # decoding, sizes, label values and instance maps, each bad file named
        check_pairs(train_pairs, transform=train_transform)
        check_pairs(val_pairs, transform=val_transform)
    train = PairedDataset(train_pairs, train_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples)
    val = PairedDataset(val_pairs, val_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples)
    return train, val


def instance_column(config: TrainingConfig) -> str | None:
    """The dataset column of the instance maps with ``--instance`` (an I/ folder's is ``instance``), else None."""
    return config.column_instance if config.instance else None


def hold_out(pairs: Any, config: TrainingConfig, say: Callable[[str], None] | None) -> tuple[Any, Any]:
    """``(train, validation)`` rows of ``pairs`` as ``--val_size`` asks; with none held out, both are all of it."""
    total = len(pairs)
    count = held_out_count(config.val_size, total)
    if count >= total:
        raise DatasetError(
            f"--val_size {config.val_size} leaves no training pairs: {config.dataset} has {total} pairs "
            f"in split {config.split!r}. Lower --val_size, or leave it unset to choose by the dataset's size."
        )
    if config.val_size is None and say is not None:
        if count:
            say(f"Holding out {count} of {total} pairs for validation (--val_size unset; pass it to choose).")
        else:
            say(
                f"Validating on the training pairs: {total} pairs are too few to hold some out (--val_size unset; "
                "pass --val_size or --validation_split to hold out pairs anyway)."
            )
    if count == 0:
        return pairs, pairs
    return split_pairs(pairs, val_size=count, seed=config.seed)


def load_stream_datasets(
    config: TrainingConfig, size_multiple: int, rank: int, world_size: int
) -> tuple[StreamingPairs, PairedDataset]:
    """``--streaming``: this process's share of the stream, and the validation pairs in memory: the first
    ``--val_size`` rows (unset: ``AUTO_VAL_MAX``) of ``--validation_split``, or of the stream itself (then never
    trained on, in any process)."""

    def stream_of(split: str) -> Any:
        try:
            return load_pairs(
                config.dataset, split=split, direction=config.direction, column_a=config.column_a,
                column_b=config.column_b, streaming=True, column_instance=instance_column(config),
            )  # fmt: skip
        except FileNotFoundError as error:
            raise MissingDatasetError(f"--dataset {config.dataset}: {error}") from error

    pairs = stream_of(config.split)
    count = AUTO_VAL_MAX if config.val_size is None else int(config.val_size)
    if config.validation_split:
        val_pairs, held_out = first_rows(stream_of(config.validation_split), count), frozenset()
    else:
        val_pairs = take_validation(pairs, count)
        held_out = row_keys(val_pairs)
    train_transform, val_transform = make_transforms(config, size_multiple)
    if not config.skip_bad_samples:
        check_pairs(val_pairs, transform=val_transform)  # the stream's own rows are checked as they come
    train = StreamingPairs(
        pairs, train_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples,
        shuffle_buffer=config.shuffle_buffer, rank=rank, world_size=world_size, exclude=held_out,
    )  # fmt: skip
    val = PairedDataset(val_pairs, val_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples)
    return train, val


def stream_updates_per_epoch(config: TrainingConfig) -> int:
    """``--streaming``: the learning-rate policy's epoch, ``--max_train_steps`` spread evenly over
    ``--n_epochs + --n_epochs_decay`` (a stream has no known length)."""
    return max(1, math.ceil(config.max_train_steps / max(1, config.n_epochs + config.n_epochs_decay)))


def make_stream_loader(config: TrainingConfig, dataset: StreamingPairs, device: torch.device) -> StreamLoader:
    """``--streaming``: batches of this process's share, on the CPU (the loop moves them); never prepared."""
    pin_memory = device.type == "cuda"
    return StreamLoader(
        dataset, batch_size=config.batch_size, num_workers=config.dataloader_num_workers, pin_memory=pin_memory
    )


def make_loader(config: TrainingConfig, dataset: PairedDataset, sampler: EpochShuffler, device: torch.device):
    """The training ``DataLoader`` (not yet prepared): ``sampler`` orders it, batches are ``collate_pairs``'s."""
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.dataloader_num_workers,
        collate_fn=collate_pairs,
        pin_memory=device.type == "cuda",
        # Its own generator: worker seeds must not consume the global RNG, or a resumed run would diverge.
        generator=torch.Generator().manual_seed(config.seed),
    )


def first_good_batch(dataset: PairedDataset | StreamingPairs) -> dict[str, torch.Tensor]:
    """A one-pair batch from the first decodable pair: stands in for a batch whose pairs were all skipped."""
    if isinstance(dataset, StreamingPairs):
        return dataset.first_good_batch()
    for index in range(len(dataset)):
        item = dataset[index]
        if item is not None:
            return collate_pairs([item])
    raise RuntimeError("Every training pair was skipped as unreadable; check the dataset.")


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
    files in, without what a killed run left half-written."""
    output_dir = Path(config.output_dir)
    check_output_dir(output_dir)
    if not resuming:
        existing = checkpoint.list_checkpoints(output_dir)
        model_files = sorted(name for name in MODEL_FILES if (output_dir / name).exists())
        if (existing or model_files) and not config.overwrite_output_dir:
            held = f"checkpoints ({existing[-1].name})" if existing else f"another model ({', '.join(model_files)})"
            raise OutputDirError(
                f"--output_dir {output_dir} already holds {held}; pass --resume_from_checkpoint latest to "
                "continue that run, --overwrite_output_dir to start afresh (deleting its checkpoints, replacing "
                "its model files at the end), or another --output_dir."
            )
        shutil.rmtree(checkpoint.checkpoints_dir(output_dir), ignore_errors=True)
    checkpoint.remove_stale(output_dir)
    fileio.remove_temporaries(output_dir)


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
