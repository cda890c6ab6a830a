"""The pix2pix training loop on Accelerate: devices, DDP, mixed precision, gradient accumulation, checkpoints.

``train(config)`` runs one ``TrainingConfig`` end to end in every process that ``accelerate launch`` (or
torchrun) started; the main process alone writes files, logs and prints. ``train_step`` is one optimisation step
of D then G, kept apart so it can be optimised on its own.

Output folder::

    output_dir/config.json, model.safetensors, discriminator/, README.md, samples.png   the model (save_pretrained)
    output_dir/checkpoints/checkpoint-<step>/                                          resumable states
    output_dir/samples/step-<step>.png                                                 validation grids
    output_dir/logs/                                                                   tracker logs
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ..model_card import render_model_card
from ..models import PatchDiscriminator, build_generator
from ..models.winograd import use_winograd
from ..performance import rss_mb, tune_allocator
from ..pipeline import Pix2Pix, replace_directory
from . import checkpoint as ckpt
from .config import TrainingConfig
from .losses import GANLoss, gradient_penalty, l1_loss
from .sync_norm import sync_batchnorm
from .validation import evaluate, sample_grid, save_png

if TYPE_CHECKING:
    from accelerate import Accelerator

SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",)}


@dataclass
class TrainingResult:
    """What ``train`` leaves behind: the saved folder, the trained ``Pix2Pix`` (unwrapped, on its device), metrics."""

    output_dir: Path
    pix2pix: Pix2Pix
    global_step: int
    metrics: dict[str, float]
    num_processes: int
    process_index: int
    skipped_samples: int


@dataclass
class StepParts:
    """Everything ``train_step`` touches. ``generator``/``discriminator`` are the prepared (maybe DDP) modules."""

    generator: nn.Module
    discriminator: nn.Module
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer
    gan_loss: GANLoss
    lambda_l1: float
    lambda_gp: float


# ----- one step -------------------------------------------------------------------------------------------------
def train_step(batch: dict[str, torch.Tensor], parts: StepParts, accelerator: Accelerator) -> dict[str, torch.Tensor]:
    """One pix2pix update of D, then G, on ``batch`` (``input``/``target``: ``(N, C, H, W)`` in [-1, 1]).

    As the authors' ``optimize_parameters``: G(x) once; D learns on (x, y) real and (x, G(x)) detached fake,
    loss halved; then G learns to fool the frozen D plus ``lambda_l1`` * L1(G(x), y). Under gradient accumulation
    the optimizer steps only on sync micro-batches (Accelerate's wrapped optimizers skip the others).
    Returns detached scalar losses (no host sync here).
    """
    real_a, real_b = batch["input"], batch["target"]
    generator, discriminator = parts.generator, parts.discriminator
    # G's step calls D's inner module: D's weights get no grads there, so DDP must not expect them.
    frozen_d = accelerator.unwrap_model(discriminator)
    losses: dict[str, torch.Tensor] = {}
    with accelerator.accumulate(generator, discriminator):
        with accelerator.autocast():
            fake_b = generator(real_a)

        frozen_d.requires_grad_(True)
        with accelerator.autocast():
            fake_pairs = torch.cat([real_a, fake_b.detach()], dim=1)
            real_pairs = torch.cat([real_a, real_b], dim=1)
            d_real, d_fake = parts.gan_loss.discriminator_terms(discriminator(real_pairs), discriminator(fake_pairs))
            loss_d = 0.5 * (d_real + d_fake)
            if parts.gan_loss.mode == "wgangp":
                penalty = gradient_penalty(discriminator, real_pairs, fake_pairs)
                loss_d = loss_d + parts.lambda_gp * penalty
                losses["loss_D_gp"] = penalty.detach()
        accelerator.backward(loss_d)
        parts.optimizer_d.step()
        parts.optimizer_d.zero_grad(set_to_none=True)

        frozen_d.requires_grad_(False)
        with accelerator.autocast():
            g_gan = parts.gan_loss.generator_loss(frozen_d(torch.cat([real_a, fake_b], dim=1)))
            g_l1 = l1_loss(fake_b, real_b)
            loss_g = g_gan + parts.lambda_l1 * g_l1
        accelerator.backward(loss_g)
        parts.optimizer_g.step()
        parts.optimizer_g.zero_grad(set_to_none=True)
        frozen_d.requires_grad_(True)

    losses.update(loss_G_GAN=g_gan.detach(), loss_G_L1=g_l1.detach(), loss_D_real=d_real.detach())
    losses["loss_D_fake"] = d_fake.detach()
    return losses


# ----- building blocks ------------------------------------------------------------------------------------------
def build_networks(config: TrainingConfig) -> tuple[nn.Module, PatchDiscriminator]:
    """The generator preset and the conditional PatchGAN (``input_nc + output_nc`` channels) ``config`` names."""
    generator = build_generator(
        config.netG,
        in_channels=config.input_nc,
        out_channels=config.output_nc,
        ngf=config.ngf,
        norm=config.norm,
        dropout=0.0 if config.no_dropout else 0.5,
        init_type=config.init_type,
        init_gain=config.init_gain,
    )
    discriminator = PatchDiscriminator(
        in_channels=config.input_nc + config.output_nc,
        ndf=config.ndf,
        n_layers=config.d_layers,
        norm=config.norm,
        whole_image=config.netD == "image",
        init_type=config.init_type,
        init_gain=config.init_gain,
    )
    for network in (generator, discriminator):
        use_winograd(network, not config.plain_eager)
    return generator, discriminator


def make_adam(params: Any, config: TrainingConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the paper's betas; the fused kernel where this torch has it for ``device`` (same maths, ~7x
    faster than the default per-tensor loop on a CPU), unless ``config.plain_eager``."""
    kwargs = {"lr": config.lr, "betas": (config.beta1, config.beta2)}
    if device.type in ("cuda", "cpu") and not config.plain_eager:
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


def check_output_dir(path: Path) -> None:
    """Create ``path`` and prove a file can be written there, or say which path is the problem."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        raise PermissionError(
            f"--output_dir {path} cannot be written ({error.strerror or error}). Choose a folder you can write to."
        ) from error


def check_tracker(report_to: str) -> None:
    if report_to == "none":
        return
    if not any(importlib.util.find_spec(name) for name in TRACKER_PACKAGES[report_to]):
        raise ImportError(
            f"--report_to {report_to} needs the {TRACKER_PACKAGES[report_to][0]} package: "
            f"pip install {TRACKER_PACKAGES[report_to][0]} (or pass --report_to none)."
        )


def on_main_then_everywhere(accelerator: Accelerator, check: Callable[[], None]) -> None:
    """Run ``check`` on the main process only (it may write) and raise its error in every process alike."""
    message: list[Any] = [None]
    if accelerator.is_main_process:
        try:
            check()
        except Exception as error:  # noqa: BLE001 - re-raised below, in every process
            if accelerator.num_processes == 1:
                raise
            message = [f"{type(error).__name__}: {error}"]
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(message)
        if message[0] is not None:
            raise RuntimeError(message[0])


def load_datasets(config: TrainingConfig, size_multiple: int) -> tuple[Any, Any]:
    """``(train, validation)`` ``PairedDataset``s; every pair is decoded once first (fail fast, rows named)."""
    from ..data import PairedDataset, PairedTransform, check_pairs, load_pairs, split_pairs

    def pairs_of(split: str) -> Any:
        return load_pairs(
            config.dataset,
            split=split,
            direction=config.direction,
            column_a=config.column_a,
            column_b=config.column_b,
        )

    pairs = pairs_of(config.split)
    if config.validation_split:
        train_pairs, val_pairs = pairs, pairs_of(config.validation_split)
    else:
        if config.val_size >= len(pairs):
            raise ValueError(
                f"--val_size {config.val_size} leaves no training pairs: {config.dataset} has {len(pairs)} pairs "
                f"in split {config.split!r}."
            )
        val_size = int(config.val_size) if config.val_size >= 1 else config.val_size
        train_pairs, val_pairs = split_pairs(pairs, val_size=val_size, seed=config.seed)
    common = {"load_size": config.load_size, "crop_size": config.crop_size, "preprocess": config.preprocess}
    common.update(input_nc=config.input_nc, output_nc=config.output_nc, size_multiple=size_multiple)
    train_transform = PairedTransform(flip=not config.no_flip, train=True, **common)
    val_transform = PairedTransform(flip=False, train=False, **common)
    if not config.skip_bad_samples:
        check_pairs(train_pairs, transform=train_transform)
        check_pairs(val_pairs, transform=val_transform)
    train = PairedDataset(train_pairs, train_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples)
    val = PairedDataset(val_pairs, val_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples)
    return train, val


def first_good_batch(dataset: Any) -> dict[str, torch.Tensor]:
    """A one-pair batch from the first decodable pair: stands in for a batch whose pairs were all skipped."""
    from ..data import collate_pairs

    for index in range(len(dataset)):
        item = dataset[index]
        if item is not None:
            return collate_pairs([item])
    raise RuntimeError("Every training pair was skipped as unreadable; check the dataset.")


def tracker_config(config: TrainingConfig) -> dict[str, Any]:
    """The config as tracker hyper-parameters (TensorBoard takes only numbers, strings and booleans)."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else str(value)
        for key, value in asdict(config).items()
    }


def save_model_folder(pix2pix: Pix2Pix, output_dir: Path, card: str, grid: Any) -> None:
    """``save_pretrained`` into ``output_dir`` without touching its checkpoints/, samples/ and logs/.

    ``Pix2Pix.save_pretrained`` replaces its destination folder whole, so the model is assembled in a temporary
    folder inside ``output_dir`` and its entries are moved in one by one (each move atomic).
    """
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=output_dir))
    try:
        folder = pix2pix.save_pretrained(staging / "model", card=card, sample_grid=grid)
        for entry in sorted(folder.iterdir(), key=lambda p: p.name == "model.safetensors"):
            if entry.is_dir():
                replace_directory(entry, output_dir / entry.name)
            else:
                os.replace(entry, output_dir / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(
    pix2pix: Pix2Pix,
    config: TrainingConfig,
    accelerator: Accelerator,
    metrics: dict[str, float],
    grid: Any,
    say: Callable[[str], None],
) -> None:
    """Main process, end of training: the model card, the model folder in ``output_dir``, the Hub upload."""
    output_dir = Path(config.output_dir)
    card = render_model_card(
        pix2pix,
        repo_id=config.hub_model_id or f"user/{output_dir.resolve().name}",
        dataset=config.dataset,
        direction=config.direction,
        # The arguments, plus what the launcher decided (``mixed_precision`` None means "the launcher's").
        training_config={
            **asdict(config),
            "mixed_precision": accelerator.mixed_precision,
            "num_processes": accelerator.num_processes,
        },
        metrics=metrics,
        sample_grid="samples.png",
    )
    save_model_folder(pix2pix, output_dir, card, grid)
    say(f"Saved the model to {output_dir} (load it with Pix2Pix.from_pretrained({str(output_dir)!r})).")
    if config.push_to_hub:
        url = pix2pix.push_to_hub(config.hub_model_id, card=card, sample_grid=grid)
        say(f"Pushed to the Hub: {url}")


def make_accelerator(config: TrainingConfig) -> Accelerator:
    """The ``Accelerator``. ``mixed_precision`` is passed only when given, so ``accelerate launch
    --mixed_precision`` (or its config file) decides otherwise; on a CPU that default is fp32."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    kwargs: dict[str, Any] = {}
    if config.mixed_precision is not None:
        kwargs["mixed_precision"] = config.mixed_precision
    output_dir = Path(config.output_dir)
    return Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        log_with=None if config.report_to == "none" else config.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / LOGS_DIR)),
        **kwargs,
    )


# ----- the run --------------------------------------------------------------------------------------------------
def train(config: TrainingConfig) -> TrainingResult:
    """Train ``config`` in this process (one of ``num_processes``); see the module docstring for what it writes.

    Everything that can be wrong with the arguments, the output folder, the checkpoint to resume or the dataset
    is checked before the first step.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    config.check()
    check_tracker(config.report_to)
    output_dir = Path(config.output_dir)
    resume = ckpt.resolve_resume(output_dir, config.resume_from_checkpoint)
    if resume is not None:
        ckpt.check_compatible(resume, config)

    if not config.plain_eager:
        tune_allocator()
    accelerator = make_accelerator(config)
    main = accelerator.is_main_process

    def prepare_output_dir() -> None:
        check_output_dir(output_dir)
        existing = ckpt.list_checkpoints(output_dir)
        if existing and config.resume_from_checkpoint is None:
            if not config.overwrite_output_dir:
                raise FileExistsError(
                    f"--output_dir {output_dir} already holds checkpoints ({existing[-1].name}); pass "
                    "--resume_from_checkpoint latest to continue that run, --overwrite_output_dir to start afresh "
                    "(deleting them), or another --output_dir."
                )
            shutil.rmtree(ckpt.checkpoints_dir(output_dir))
        ckpt.remove_stale(output_dir)

    on_main_then_everywhere(accelerator, prepare_output_dir)
    if accelerator.device.type == "cpu" and accelerator.mixed_precision != "no":
        accelerator.print(f"Warning: {accelerator.mixed_precision} on a CPU is usually far slower than fp32.")

    set_seed(config.seed)
    generator, discriminator = build_networks(config)
    with accelerator.main_process_first():
        train_set, val_set = load_datasets(config, generator.size_multiple)

    if accelerator.num_processes > 1 and config.norm == "batch":
        generator = sync_batchnorm(generator, accelerator.device)
        discriminator = sync_batchnorm(discriminator, accelerator.device)
    from ..data import collate_pairs

    sampler = EpochShuffler(len(train_set), config.seed)
    loader = DataLoader(
        train_set,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.dataloader_num_workers,
        collate_fn=collate_pairs,
        pin_memory=accelerator.device.type == "cuda",
        # Its own generator: worker seeds must not consume the global RNG, or a resumed run would diverge.
        generator=torch.Generator().manual_seed(config.seed),
    )
    optimizer_g = make_adam(generator.parameters(), config, accelerator.device)
    optimizer_d = make_adam(discriminator.parameters(), config, accelerator.device)
    generator, discriminator, optimizer_g, optimizer_d, loader = accelerator.prepare(
        generator, discriminator, optimizer_g, optimizer_d, loader
    )
    updates_per_epoch = math.ceil(len(loader) / config.gradient_accumulation_steps)
    # Not prepared: Accelerate would step them once per process; ours count updates. Registered to be checkpointed.
    scheduler_g = torch.optim.lr_scheduler.LambdaLR(optimizer_g.optimizer, LRFactor(config, updates_per_epoch))
    scheduler_d = torch.optim.lr_scheduler.LambdaLR(optimizer_d.optimizer, LRFactor(config, updates_per_epoch))
    accelerator.register_for_checkpointing(scheduler_g, scheduler_d)

    total_steps = config.max_train_steps or (config.n_epochs + config.n_epochs_decay) * updates_per_epoch
    num_epochs = math.ceil(total_steps / updates_per_epoch)
    global_step = 0
    if resume is not None:
        state = ckpt.load_checkpoint(accelerator, resume)
        global_step = int(state["global_step"])
        if state.get("num_processes") != accelerator.num_processes or state.get("batch_size") != config.batch_size:
            accelerator.print(
                f"Warning: {resume} was written by {state.get('num_processes')} process(es) at batch size "
                f"{state.get('batch_size')}; the data order will not continue exactly."
            )
        accelerator.print(f"Resumed from {resume} at step {global_step}.")
    elif config.resume_from_checkpoint == "latest":
        accelerator.print(f"No checkpoint in {ckpt.checkpoints_dir(output_dir)}; starting a new run.")

    accelerator.print(
        f"pix2pix: {len(train_set)} training and {len(val_set)} validation pairs; {accelerator.num_processes} "
        f"process(es) on {accelerator.device.type}, mixed precision {accelerator.mixed_precision}; {total_steps} "
        f"updates ({updates_per_epoch} per epoch) of batch {config.batch_size} x {accelerator.num_processes} "
        f"x {config.gradient_accumulation_steps}."
    )
    if main and config.report_to != "none":
        accelerator.init_trackers(config.tracker_project_name, config=tracker_config(config))
    parts = StepParts(
        generator,
        discriminator,
        optimizer_g,
        optimizer_d,
        GANLoss(config.gan_mode),
        config.lambda_l1,
        config.lambda_gp,
    )
    unwrapped_g = accelerator.unwrap_model(generator)
    progress = tqdm(total=total_steps, initial=global_step, disable=not main, desc="pix2pix", dynamic_ncols=True)

    def say(message: str) -> None:
        if main:
            progress.write(message)

    def validate(step: int) -> dict[str, float]:
        metrics = evaluate(unwrapped_g, val_set, accelerator)
        if main:
            grid = sample_grid(unwrapped_g, val_set, config.num_validation_images, accelerator.device)
            path = save_png(grid, output_dir / SAMPLES_DIR / f"step-{step:06d}.png")
            accelerator.log({f"val_{name}": value for name, value in metrics.items()}, step=step)
            say(
                f"step {step}: validation L1 {metrics['l1']:.4f}  PSNR {metrics['psnr']:.2f} dB  "
                f"SSIM {metrics['ssim']:.4f}  ({len(val_set)} pairs)  grid: {path}"
            )
        return metrics

    def save(step: int, epoch: int) -> None:
        trainer_state = {
            "global_step": step,
            "epoch": epoch,
            "updates_per_epoch": updates_per_epoch,
            "num_processes": accelerator.num_processes,
            "batch_size": config.batch_size,
        }
        path = ckpt.save_checkpoint(
            accelerator, output_dir, step, trainer_state, config, config.checkpoints_total_limit
        )
        say(f"step {step}: saved {path}")

    fallback = None
    last_saved = global_step if resume is not None else -1
    window_start, window_images = time.perf_counter(), 0
    first_epoch = global_step // updates_per_epoch
    for epoch in range(first_epoch, num_epochs):
        if global_step >= total_steps:
            break
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        epoch_loader = loader
        skip = (global_step - epoch * updates_per_epoch) * config.gradient_accumulation_steps
        if skip > 0:
            epoch_loader = accelerator.skip_first_batches(loader, skip)
        epoch_loader.set_epoch(epoch)
        for batch in epoch_loader:
            if batch is None:  # every pair of this batch was unreadable and skipped (--skip_bad_samples)
                batch = fallback if fallback is not None else first_good_batch(train_set)
                batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            fallback = batch
            losses = train_step(batch, parts, accelerator)
            window_images += batch["input"].shape[0] * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            scheduler_g.step()
            scheduler_d.step()
            global_step += 1
            progress.update(1)
            if global_step % config.logging_steps == 0 or global_step == total_steps:
                names = sorted(losses)
                values = accelerator.reduce(torch.stack([losses[n].float() for n in names]), reduction="mean")
                now = time.perf_counter()
                logs = dict(zip(names, values.tolist()))
                logs.update(
                    lr=scheduler_g.get_last_lr()[0], epoch=epoch, images_per_s=window_images / (now - window_start)
                )
                memory = rss_mb()  # flat after the first steps; a rise would be a leak
                if memory is not None:
                    logs["rss_mb"] = memory
                window_start, window_images = now, 0
                accelerator.log(logs, step=global_step)
                progress.set_postfix(
                    epoch=epoch,
                    G_GAN=f"{logs['loss_G_GAN']:.3f}",
                    G_L1=f"{logs['loss_G_L1']:.3f}",
                    D_real=f"{logs['loss_D_real']:.3f}",
                    D_fake=f"{logs['loss_D_fake']:.3f}",
                    img_s=f"{logs['images_per_s']:.2f}",
                    mem=f"{logs.get('rss_mb', 0) / 1024:.2f}G",
                )
            if global_step % config.checkpointing_steps == 0 or global_step == total_steps:
                save(global_step, epoch)
                last_saved = global_step
                window_start, window_images = time.perf_counter(), 0  # images/s measures training only
            if global_step % config.validation_steps == 0 and global_step != total_steps:
                validate(global_step)
                window_start, window_images = time.perf_counter(), 0
            if global_step >= total_steps:
                break
    progress.close()
    if last_saved != global_step:
        save(global_step, global_step // updates_per_epoch)

    metrics = validate(global_step)
    pix2pix = Pix2Pix(unwrapped_g, accelerator.unwrap_model(discriminator))
    skipped = train_set.skipped_count + val_set.skipped_count
    if skipped:
        say(f"Skipped {skipped} unreadable pairs (--skip_bad_samples).")
    if main:
        grid = sample_grid(unwrapped_g, val_set, config.num_validation_images, accelerator.device)
        publish(pix2pix, config, accelerator, metrics, grid, say)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainingResult(
        output_dir=output_dir,
        pix2pix=pix2pix,
        global_step=global_step,
        metrics=metrics,
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
        skipped_samples=skipped,
    )
