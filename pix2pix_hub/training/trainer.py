"""The training run on Accelerate: devices, DDP, mixed precision, gradient accumulation, checkpoints.

``train(config)`` runs one ``TrainingConfig`` end to end in every process that ``accelerate launch`` (or torchrun)
started; the main process alone writes files, logs and prints. ``Trainer`` holds the run's state: ``__init__`` is
the set-up, ``fit`` the loop (``train_step`` per batch, then the periodic work after each update), ``finish`` the
end (final checkpoint, validation, publish). Process-wide settings (the allocator) are left to the entry point;
SIGTERM/SIGINT handlers are set only while ``fit`` runs (``signals.StopSignals``): the run then stops after the
current update with a checkpoint and raises ``TrainingInterrupted``.

Output folder::

    output_dir/config.json, model.safetensors, discriminator/, README.md, samples.png   the model (save_pretrained)
    output_dir/pix2pix.json                                                            what it does (ModelInfo)
    output_dir/checkpoints/checkpoint-<step>/                                          resumable states
    output_dir/samples/step-<step>.png                                                 validation grids
    output_dir/logs/                                                                   tracker logs
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import set_seed
from PIL import Image
from tqdm.auto import tqdm

from .. import fileio
from ..data import PairedDataset
from ..inference.pipeline import Pix2Pix
from ..performance import rss_mb
from . import checkpoint, speed
from .advice import config_warnings, cpu_precision_note, high_resolution_summary, measured_bf16_speedup
from .base_model import adopt_architecture, load_base_model
from .config import TrainingConfig
from .data import load_training_data
from .errors import TrainingInterrupted
from .launch import check_launch
from .presets import preset_summary
from .publish import Published, model_info, publish, render_card
from .setup import (
    build_networks,
    check_int8_export,
    check_tracker,
    make_accelerator,
    make_optimizers,
    make_schedulers,
    make_step_parts,
    on_main_then_everywhere,
    prepare_output_dir,
    tracker_config,
)
from .signals import StopSignals
from .step import train_step
from .sync_norm import sync_batchnorm
from .validation import log_grid, sample_grid, validation_metrics, widget_example

SAMPLES_DIR = "samples"
Batch = dict[str, torch.Tensor]


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


class Throughput:
    """Training images per second: images counted since the last ``take``, over the time spent training."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.started = time.perf_counter()
        self.images = 0

    def add(self, images: int) -> None:
        self.images += images

    def take(self) -> float:
        """Images per second since the last ``take`` (or the start); counting starts afresh."""
        rate = self.images / (time.perf_counter() - self.started)
        self.restart()
        return rate

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside (checkpoints, validation) is not training time."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.started += time.perf_counter() - start


class Trainer:
    """One run of ``config`` in this process (one of ``num_processes``): built and checked here, run by ``fit``.

    Everything that can be wrong with the arguments, the output folder, the checkpoint to resume or the dataset
    is found here, before the first step.
    """

    def __init__(self, config: TrainingConfig, command: Sequence[str] | None = None) -> None:
        config, resume, base = resolve_start(config)
        self.config = config
        self.command = command  # the command line as typed, for the model card (None: not recorded)
        self.output_dir = Path(config.output_dir)
        self.accelerator = make_accelerator(config)
        check_launch(os.environ, self.accelerator.num_processes)  # the `accelerate launch --cpu` trap
        self.main = self.accelerator.is_main_process
        on_main_then_everywhere(self.accelerator, lambda: prepare_output_dir(config, resuming=resume is not None))
        if self.accelerator.device.type == "cpu" and self.main:
            precision = self.accelerator.mixed_precision  # measured once per CPU model (cached), under a second
            print(cpu_precision_note(precision, speedup=measured_bf16_speedup() if precision != "fp16" else None))
        for warning in config_warnings(config):
            self.accelerator.print(f"Warning: {warning}")

        set_seed(config.seed)
        self._build(base)
        self.step = self._resume(resume)
        self.last_saved = self.step if resume is not None else -1
        # A new run takes checkpoints/ over at its first checkpoint, not before: a run that fails first leaves an
        # overwritten run's checkpoints as they were.
        self.taking_over = resume is None
        self._announce()
        self.progress = tqdm(
            total=self.total_steps, initial=self.step, disable=not self.main, desc="pix2pix", dynamic_ncols=True
        )
        self.throughput = Throughput()
        self.previous_batch: Batch | None = None
        self.signals = StopSignals(announce=self.main)

    def _build(self, base: Pix2Pix | None) -> None:
        """Networks (presets, or ``base``'s), data, optimizers, schedules, prepared by Accelerate (in this order:
        the RNG draws depend on it)."""
        config, accelerator = self.config, self.accelerator
        generator, discriminator = build_networks(config, base)
        with accelerator.main_process_first():
            self.data = load_training_data(config, generator.size_multiple, accelerator)
        if accelerator.num_processes > 1 and config.norm == "batch":
            twice = config.gan_mode == "wgangp"  # the penalty differentiates D's gradient
            generator = sync_batchnorm(generator, accelerator.device, double_backward=twice)
            discriminator = sync_batchnorm(discriminator, accelerator.device, double_backward=twice)
        optimizer_g, optimizer_d = make_optimizers(config, generator, discriminator, accelerator.device)
        generator, discriminator, optimizer_g, optimizer_d = self.data.prepare(
            accelerator, generator, discriminator, optimizer_g, optimizer_d
        )
        self.parts = make_step_parts(config, generator, discriminator, optimizer_g, optimizer_d, accelerator.device)
        speed.give_generator_its_scaler(self.parts, accelerator)
        self.generator = accelerator.unwrap_model(generator)  # what validation scores and the model folder holds
        unwrapped_d, device = accelerator.unwrap_model(discriminator), accelerator.device
        speed.compile_networks(config, self.generator, unwrapped_d, device=device, say=accelerator.print)
        # --niter_fix_global: the local enhancer's global generator, held fixed for its first epochs (fix_global)
        self.global_parameters = tuple(self.generator.global_body.parameters()) if config.niter_fix_global else ()
        self.updates_per_epoch = self.data.updates_per_epoch
        self.schedulers = make_schedulers(config, (optimizer_g, optimizer_d), self.updates_per_epoch)
        self.total_steps = config.max_train_steps or (config.n_epochs + config.n_epochs_decay) * self.updates_per_epoch

    def _resume(self, resume: Path | None) -> int:
        """Restore ``resume`` (weights, optimizers, schedules, RNGs) and return its step; 0 for a new run."""
        if resume is None:
            if self.config.resume_from_checkpoint == "latest":
                where = checkpoint.checkpoints_dir(self.output_dir)
                self.accelerator.print(f"No checkpoint in {where}; starting a new run.")
            return 0
        optimizers = (self.parts.optimizer_g, self.parts.optimizer_d)
        state = checkpoint.load_checkpoint(self.accelerator, resume, optimizers, self.schedulers)
        step = int(state["global_step"])
        self.data.load_state_dict(state)
        # Accelerate counts micro-batches to know which ones step the optimizer under gradient accumulation.
        self.accelerator.step = int(state.get("accelerator_step", 0))
        written_by = (state.get("num_processes"), state.get("batch_size"))
        if written_by != (self.accelerator.num_processes, self.config.batch_size):
            self.accelerator.print(
                f"Warning: {resume} was written by {state.get('num_processes')} process(es) at batch size "
                f"{state.get('batch_size')}; the data order will not continue exactly."
            )
        self.accelerator.print(f"Resumed from {resume} at step {step}.")
        return step

    def _announce(self) -> None:
        config, accelerator = self.config, self.accelerator
        accelerator.print(
            f"pix2pix: {self.data.description} training and {len(self.data.val_set)} validation pairs; "
            f"{accelerator.num_processes} process(es) on {accelerator.device.type}, mixed precision "
            f"{accelerator.mixed_precision}; {self.total_steps} updates ({self.updates_per_epoch} per epoch) of batch "
            f"{config.batch_size} x {accelerator.num_processes} x {config.gradient_accumulation_steps}."
        )
        for summary in (preset_summary(config), high_resolution_summary(config)):
            if summary:
                accelerator.print(summary)
        if self.main and config.report_to != "none":
            accelerator.init_trackers(config.tracker_project_name, config=tracker_config(config))

    # ----- the loop ----------------------------------------------------------------------------------------------
    def fit(self) -> TrainingResult:
        """Train to ``total_steps``: a D-then-G step per batch; after each update, log, checkpoint, validate, and
        stop with a checkpoint if SIGTERM/SIGINT came (``TrainingInterrupted``)."""
        clock = speed.FirstStepClock(self.config.compile)
        mark_step = speed.graph_step_marker(self.config, self.accelerator.device)  # CUDA graphs: a new iteration
        with self.signals, speed.backend_switches(self.config):
            for epoch, batch in self.batches():
                self.fix_global(epoch)
                clock.start()
                mark_step()
                losses = train_step(batch, self.parts, self.accelerator)
                clock.stop(self.say)
                self.throughput.add(batch["input"].shape[0] * self.accelerator.num_processes)
                if self.accelerator.sync_gradients:  # an update (not a micro-batch of gradient accumulation)
                    self.after_update(epoch, losses)
                    if self.step >= self.total_steps:
                        break
                    self.stop_if_signalled(epoch)
        return self.finish()

    def batches(self) -> Iterator[tuple[int, Batch]]:
        """``(epoch, batch)`` from where the run stands (a resumed run continues where its checkpoint left the
        data) to ``total_steps``."""
        for epoch, batch in self.data.batches(lambda: self.step, self.total_steps):
            batch = self._stand_in_for_empty(batch)
            yield epoch, speed.channels_last(batch) if self.config.channels_last else batch

    def fix_global(self, epoch: int) -> None:
        """pix2pixHD's ``--niter_fix_global``: for the first N epochs G's step leaves the global generator of a
        local enhancer as it is (its gradients dropped in ``train_step``), then trains all of G.

        Not a fresh optimizer at the switch, as pix2pixHD makes, but in effect its "add the global parameters":
        G's Adam holds every parameter from the start and skips those without gradients, then creates their
        moments at their first update (per-parameter step counts, so their bias correction starts there). So the
        prepared optimizer, its LR schedule and the checkpoint's optimizer file are the same objects in both
        phases, and a run resumed in either phase restores them exactly; the local parameters keep their moments.

        Args:
            epoch: the epoch of the batch about to be trained on.
        """
        fixed = self.global_parameters if epoch < self.config.niter_fix_global else ()
        if self.parts.fixed_parameters and not fixed:
            self.say(f"epoch {epoch}: training the whole generator from now on (--niter_fix_global).")
        self.parts.fixed_parameters = fixed

    def _stand_in_for_empty(self, batch: Batch | None) -> Batch:
        """``None`` means every pair of the batch was unreadable and skipped (``--skip_bad_samples``): the
        previous batch (or the first readable pair) is trained on again instead, so every process steps alike."""
        if batch is None:
            batch = self.previous_batch if self.previous_batch is not None else self.data.first_good_batch()
            batch = {key: value.to(self.accelerator.device) for key, value in batch.items()}
        self.previous_batch = batch
        return batch

    def after_update(self, epoch: int, losses: Batch) -> None:
        """The schedules step, then the periodic work; the last update always logs and checkpoints."""
        for scheduler in self.schedulers:
            scheduler.step()
        self.step += 1
        self.progress.update(1)
        last = self.step == self.total_steps
        if self.step % self.config.logging_steps == 0 or last:
            self.log(epoch, losses)
        with self.throughput.paused():  # images/s measures training only
            if self.step % self.config.checkpointing_steps == 0 or last:
                self.save_checkpoint(epoch)
            if self.step % self.config.validation_steps == 0 and not last:
                self.validate()

    # ----- periodic work -----------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        """Print on the main process, above the progress bar."""
        if self.main:
            self.progress.write(message)

    def log(self, epoch: int, losses: Batch) -> None:
        """The losses averaged over processes, the learning rate, images/s and memory, to the tracker and the bar."""
        names = sorted(losses)
        values = self.accelerator.reduce(torch.stack([losses[name].float() for name in names]), reduction="mean")
        logs = dict(zip(names, values.tolist()))
        logs.update(lr=self.schedulers[0].get_last_lr()[0], epoch=epoch, images_per_s=self.throughput.take())
        logs.update(lr_D=self.schedulers[1].get_last_lr()[0])  # G's and D's differ under TTUR
        memory = rss_mb()  # flat after the first steps; a rise would be a leak
        if memory is not None:
            logs["rss_mb"] = memory
        self.accelerator.log(logs, step=self.step)
        self.progress.set_postfix(
            epoch=epoch,
            G_GAN=f"{logs['loss_G_GAN']:.3f}",
            G_L1=f"{logs['loss_G_L1']:.3f}",
            D_real=f"{logs['loss_D_real']:.3f}",
            D_fake=f"{logs['loss_D_fake']:.3f}",
            img_s=f"{logs['images_per_s']:.2f}",
            mem=f"{logs.get('rss_mb', 0) / 1024:.2f}G",
        )

    def stop_if_signalled(self, epoch: int) -> None:
        """After a SIGTERM/SIGINT (in any process: all agree, so all stop at this update): save a checkpoint and
        raise ``TrainingInterrupted``, which says how to resume."""
        received = self.signals.received or 0
        if self.accelerator.num_processes > 1:
            flags = self.accelerator.gather(torch.tensor([received], device=self.accelerator.device))
            received = int(flags.max())
        if not received:
            return
        self.progress.close()
        if self.last_saved != self.step:
            self.save_checkpoint(epoch)
        self.accelerator.end_training()
        saved = checkpoint.checkpoints_dir(self.output_dir) / f"{checkpoint.PREFIX}{self.step}"
        raise TrainingInterrupted(received, self.step, str(saved))

    def calibration_set(self) -> PairedDataset | None:
        """Training pairs as validation sees them (no crop jitter, no flip): ``--export_int8`` calibrates on their
        inputs. None without ``--export_int8``."""
        return self.data.calibration_set() if self.config.export_int8 else None

    def model(self) -> Pix2Pix:
        """The networks as they stand (unwrapped), with what they do, for a checkpoint (torch only: no export)."""
        discriminator = self.accelerator.unwrap_model(self.parts.discriminator)
        return Pix2Pix(self.generator, discriminator, info=model_info(self.config), backend="torch")

    def save_checkpoint(self, epoch: int) -> None:
        """``checkpoint-<step>`` from every process, with where the data stands so a resume continues exactly; a
        model folder too (``Pix2Pix.from_pretrained`` loads it)."""
        trainer_state = {
            "global_step": self.step,
            "epoch": epoch,
            "updates_per_epoch": self.updates_per_epoch,
            "num_processes": self.accelerator.num_processes,
            "batch_size": self.config.batch_size,
            "accelerator_step": self.accelerator.step,
        }
        trainer_state.update(self.data.state_dict())  # in every process: a stream gathers all positions
        model = self.model()
        card = ""
        if self.main:
            held_out = self.data.val_pairs_held_out
            card = render_card(model, self.config, self.accelerator, val_size=held_out, command=self.command)
        with speed.eager_fp32(model.generator, model.discriminator):  # a model folder may hold an fp32 ONNX export
            path = checkpoint.save_checkpoint(
                self.accelerator, self.output_dir, self.step, model=model, card=card,
                optimizers=(self.parts.optimizer_g, self.parts.optimizer_d), schedulers=self.schedulers,
                trainer_state=trainer_state, config=self.config, total_limit=self.config.checkpoints_total_limit,
                replace_old=self.taking_over,
            )  # fmt: skip
        self.last_saved, self.taking_over = self.step, False
        self.say(f"step {self.step}: saved {path}")

    def validate(self) -> dict[str, float]:
        """Metrics over the validation pairs (all processes); the main process also saves and logs a grid."""
        metrics = validation_metrics(self.generator, self.data.val_set, self.accelerator)
        if self.main:
            grid = self.sample_grid()
            path = fileio.save_image(grid, self.output_dir / SAMPLES_DIR / f"step-{self.step:06d}.png")
            self.accelerator.log({f"val_{name}": value for name, value in metrics.items()}, step=self.step)
            log_grid(self.accelerator, grid, self.step)
            self.say(
                f"step {self.step}: validation L1 {metrics['l1']:.4f}  PSNR {metrics['psnr']:.2f} dB  "
                f"SSIM {metrics['ssim']:.4f}  ({len(self.data.val_set)} pairs)  grid: {path}"
            )
        return metrics

    def sample_grid(self) -> Image.Image:
        """The validation grid: input (label maps in their class colours) | output | target."""
        config = self.config
        classes = config.label_nc + config.contain_dontcare_label  # the don't-care class drawn in its own colour
        return sample_grid(
            self.generator, self.data.val_set, config.num_validation_images, self.accelerator.device, classes
        )

    # ----- the end -----------------------------------------------------------------------------------------------
    def finish(self) -> TrainingResult:
        """The last checkpoint (if not just written) and validation; the main process publishes the model."""
        self.progress.close()
        if self.last_saved != self.step:
            self.save_checkpoint(self.step // self.updates_per_epoch)
        # Trained: the networks leave Accelerate's autocast wrapper, so the model returned and published is fp32.
        self.generator = speed.fp32_eager(self.accelerator, self.parts.generator)
        discriminator = speed.fp32_eager(self.accelerator, self.parts.discriminator)
        metrics = self.validate()
        pix2pix = Pix2Pix(self.generator, discriminator, info=model_info(self.config))
        skipped = self.data.skipped_count
        if skipped:
            self.say(f"Skipped {skipped} unreadable pairs (--skip_bad_samples).")
        if self.main:
            grid = self.sample_grid()
            widget = widget_example(self.generator, self.data.val_set, self.accelerator.device, self.config.label_nc)
            published = Published(metrics, grid, self.data.val_pairs_held_out, self.command, widget)
            publish(pix2pix, self.config, self.accelerator, published, self.say, self.calibration_set())
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return TrainingResult(
            output_dir=self.output_dir,
            pix2pix=pix2pix,
            global_step=self.step,
            metrics=metrics,
            num_processes=self.accelerator.num_processes,
            process_index=self.accelerator.process_index,
            skipped_samples=skipped,
        )


def resolve_start(config: TrainingConfig) -> tuple[TrainingConfig, Path | None, Pix2Pix | None]:
    """Before any work: the checked ``config`` (with ``--init_from``'s architecture), the checkpoint to resume
    (None: a new run) and the networks to start from (the checkpoint's, ``--init_from``'s, or None: presets)."""
    config.check()
    check_tracker(config.report_to)
    check_int8_export(config.export_int8)
    base = None
    if config.init_from:
        base = load_base_model(config.init_from)
        config = adopt_architecture(config, base)
        config.check_shapes()
    resume = checkpoint.resolve_resume(config.output_dir, config.resume_from_checkpoint)
    if resume is not None:
        checkpoint.check_compatible(resume, config)
        base = checkpoint.load_model(resume)
        for network in (base.generator, base.discriminator):
            network.train()  # from_pretrained gives eval mode, for inference
    return config, resume, base


def train(config: TrainingConfig, command: Sequence[str] | None = None) -> TrainingResult:
    """Train ``config`` in this process (one of ``num_processes``); see the module docstring for what it writes.

    Everything that can be wrong with the arguments, the output folder, the checkpoint to resume or the dataset
    is checked before the first step. The process's settings are left as they are (``commands.train`` tunes the
    allocator).

    Args:
        config: the run's arguments.
        command: the command line that started the run, as typed (the model card shows it; None: not recorded).

    Returns:
        The saved folder, the trained ``Pix2Pix``, the final step and validation metrics.
    """
    return Trainer(config, command).fit()
