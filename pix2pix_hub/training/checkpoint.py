"""Resumable training state: ``output_dir/checkpoints/checkpoint-<step>/``, written so a crash never costs one.

A checkpoint is a model folder (``Pix2Pix.save_pretrained``: ``config.json``, ``model.safetensors``,
``pix2pix.json``, ``discriminator/``, ``README.md``), so ``Pix2Pix.from_pretrained(checkpoint)`` loads it, plus
what resuming needs, in formats that cannot run code when read (``safe_state``)::

    optimizer_generator.safetensors, optimizer_discriminator.safetensors   Adam's moments; param groups as JSON
    schedules.json                                                         LR schedulers (and an fp16 grad scaler)
    rng_state_<process>.safetensors                                        each process's torch/numpy/random RNGs
    training_config.json                                                   the ``TrainingConfig``
    trainer_state.json                                                     step, epoch, data position (last)

It is assembled in ``.tmp-checkpoint-<step>`` and renamed into place only when complete, so a run killed mid-write
leaves the previous checkpoints untouched and the partial one is ignored (and removed later). An old checkpoint
rotated out (``--checkpoints_total_limit``) is renamed to a temporary name before it is deleted, so a folder named
``checkpoint-<step>`` is always whole; resuming one that is not names the files it lacks. A checkpoint holding a
pickle (``.pkl``, ``.bin``, ...: e.g. one written by Accelerate's ``save_state``) is refused, never read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fileio
from ..constants import CONFIG_NAME, DISCRIMINATOR_DIR, PICKLE_SUFFIXES, WEIGHTS_NAME
from ..inference.pipeline import Pix2Pix
from . import safe_state
from .config import ARCHITECTURE_FIELDS, TrainingConfig
from .errors import CheckpointError, ConfigError, MissingCheckpointError

if TYPE_CHECKING:
    from accelerate import Accelerator

CHECKPOINTS_DIR = "checkpoints"
PREFIX = "checkpoint-"
TMP_PREFIX = ".tmp-checkpoint-"
CONFIG_FILE = "training_config.json"
STATE_FILE = "trainer_state.json"  # written last: its presence marks a complete checkpoint
OPTIMIZER_FILES = ("optimizer_generator.safetensors", "optimizer_discriminator.safetensors")
SCHEDULES_FILE = "schedules.json"
RNG_FILE = "rng_state_{process}.safetensors"
# Every file resuming reads, in the order they are listed when missing (process 0's RNG state: every run has one).
REQUIRED_FILES = (
    CONFIG_NAME, WEIGHTS_NAME, f"{DISCRIMINATOR_DIR}/{CONFIG_NAME}", f"{DISCRIMINATOR_DIR}/{WEIGHTS_NAME}",
    *OPTIMIZER_FILES, SCHEDULES_FILE, RNG_FILE.format(process=0), CONFIG_FILE, STATE_FILE,
)  # fmt: skip


def checkpoints_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR


def checkpoint_step(path: Path) -> int | None:
    match = re.fullmatch(rf"{PREFIX}(\d+)", path.name)
    return int(match.group(1)) if match else None


def is_complete(path: Path) -> bool:
    """Whether writing ``path`` was finished (its last files are there); ``missing_files`` checks every file."""
    return (path / STATE_FILE).is_file() and (path / CONFIG_FILE).is_file()


def missing_files(path: Path) -> list[str]:
    """The files of ``REQUIRED_FILES`` that the checkpoint folder ``path`` lacks."""
    return [name for name in REQUIRED_FILES if not (path / name).is_file()]


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of ``output_dir``, oldest step first; temporary and partial folders are skipped."""
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return []
    found = [(checkpoint_step(p), p) for p in folder.iterdir() if p.is_dir()]
    return [p for step, p in sorted((s, p) for s, p in found if s is not None) if is_complete(p)]


def resolve_resume(output_dir: str | os.PathLike, value: str | None) -> Path | None:
    """``--resume_from_checkpoint``: ``None``; ``"latest"`` (newest complete one, or ``None`` if there is none);
    or a checkpoint folder, which must be free of pickles and hold every file resuming reads."""
    if value is None:
        return None
    if value == "latest":
        found = list_checkpoints(output_dir)
        path = found[-1] if found else None
    else:
        path = Path(value)
        if not path.is_dir():
            raise MissingCheckpointError(
                f"--resume_from_checkpoint {value}: no such folder. Pass 'latest' or one of "
                f"{checkpoints_dir(output_dir)}/{PREFIX}<step>."
            )
    if path is not None:
        refuse_pickles(path)
        refuse_incomplete(path)
    return path


def refuse_incomplete(checkpoint: Path) -> None:
    """Refuse a checkpoint folder that lacks a file resuming reads, naming them all."""
    missing = missing_files(checkpoint)
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise CheckpointError(
            f"{checkpoint} is not a complete checkpoint: {', '.join(missing)} {verb} missing (it was interrupted "
            "while being written or deleted, or files were removed). Resume from another checkpoint or 'latest'."
        )


def refuse_pickles(checkpoint: Path) -> None:
    """Refuse a checkpoint holding any pickle file, before anything in it is read."""
    pickles = sorted(str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.name.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise CheckpointError(
            f"Refusing to resume from {checkpoint}: it holds {', '.join(pickles)}, pickle file(s), and unpickling a "
            "file can run arbitrary code. Checkpoints of this version hold only safetensors and JSON files; one "
            "written by an older version (Accelerate's save_state) cannot be resumed safely: start a new run."
        )


def read_json(path: Path) -> dict[str, Any]:
    return safe_state.read_json_file(path)


def check_compatible(checkpoint: Path, config: TrainingConfig) -> None:
    """Refuse to resume ``checkpoint`` when it was made with other network shapes than ``config`` describes."""
    saved = read_json(checkpoint / CONFIG_FILE)
    current = config.__dict__
    different = [name for name in ARCHITECTURE_FIELDS if name in saved and saved[name] != current[name]]
    if different:
        listed = ", ".join(f"--{name} {saved[name]} (now {current[name]})" for name in different)
        raise ConfigError(
            f"Cannot resume from {checkpoint}: it was trained with {listed}. Resume with the same architecture "
            "flags, or start a new run in another --output_dir."
        )


def load_model(checkpoint: Path) -> Pix2Pix:
    """The generator and discriminator a checkpoint holds (architecture from its ``config.json``s), on the CPU."""
    try:
        return Pix2Pix.from_pretrained(checkpoint, backend="torch")
    except (OSError, ValueError) as error:
        raise CheckpointError(f"Cannot read the model in {checkpoint}: {error}") from error


def remove_stale(output_dir: str | os.PathLike) -> None:
    """Delete temporary folders left by a run killed while writing a checkpoint (main process only)."""
    folder = checkpoints_dir(output_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            if checkpoint_step(path) is not None and not is_complete(path):
                shutil.rmtree(path, ignore_errors=True)
        fileio.remove_temporaries(folder)  # .tmp-checkpoint-<step> and what save_pretrained left


def save_training_state(folder: Path, optimizers: tuple, schedulers: tuple, scaler: Any | None) -> None:
    """Both optimizers and the schedules (main process; every process holds the same)."""
    for name, optimizer in zip(OPTIMIZER_FILES, optimizers):
        safe_state.save_optimizer(optimizer, folder / name)
    state = safe_state.schedules_state(schedulers, scaler, generator_scaler(optimizers, scaler))
    fileio.write_json(folder / SCHEDULES_FILE, state)


def generator_scaler(optimizers: tuple, scaler: Any | None) -> Any | None:
    """G's own fp16 scaler (its prepared optimizer's, ``speed.give_generator_its_scaler``); None when shared."""
    own = getattr(optimizers[0], "scaler", None)
    return own if own is not scaler else None


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | os.PathLike,
    step: int,
    *,
    model: Pix2Pix,
    card: str,
    optimizers: tuple,
    schedulers: tuple,
    trainer_state: dict[str, Any],
    config: TrainingConfig,
    total_limit: int | None,
    replace_old: bool = False,
) -> Path:
    """Write ``checkpoint-<step>`` (the main process all but the RNG states, each process its own), then commit it
    by renaming. Keeps the newest ``total_limit`` complete checkpoints; older ones are deleted only after the new
    one is in place (renamed away first: ``fileio.remove_directory``).

    Args:
        accelerator, output_dir, step: the run, its folder and the step saved.
        model, card: the networks as a model folder, and its card (main process).
        optimizers, schedulers, trainer_state, config: what resuming restores.
        total_limit: how many checkpoints to keep (None: all).
        replace_old: the first checkpoint of a new run, which takes the folder over: whatever ``checkpoints/``
            held (an overwritten run's) is moved aside first, deleted once this checkpoint is in place, and put
            back if writing it fails. Until then an overwritten run's checkpoints stay as they were.

    Returns:
        The checkpoint's folder.
    """
    folder = checkpoints_dir(output_dir)
    aside = set_aside(folder) if replace_old and accelerator.is_main_process else None
    try:
        final = write_checkpoint(
            accelerator, folder, step, model=model, card=card, optimizers=optimizers, schedulers=schedulers,
            trainer_state=trainer_state, config=config,
        )  # fmt: skip
    except BaseException:
        if aside is not None:  # the new run wrote no checkpoint: the old one's are back as they were
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(aside, folder)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    if accelerator.is_main_process and total_limit is not None:
        for old in list_checkpoints(output_dir)[:-total_limit]:
            fileio.remove_directory(old)
    accelerator.wait_for_everyone()
    return final


def set_aside(folder: Path) -> Path | None:
    """Rename ``folder`` to a temporary name beside it (the start-up cleanup's kind); None when there is none."""
    if not folder.exists():
        return None
    aside = fileio.temporary_sibling(folder)
    os.replace(folder, aside)
    return aside


def write_checkpoint(
    accelerator: Accelerator,
    folder: Path,
    step: int,
    *,
    model: Pix2Pix,
    card: str,
    optimizers: tuple,
    schedulers: tuple,
    trainer_state: dict[str, Any],
    config: TrainingConfig,
) -> Path:
    """``folder/checkpoint-<step>``, assembled under its temporary name and renamed into place when complete."""
    tmp = folder / f"{TMP_PREFIX}{step}"
    final = folder / f"{PREFIX}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        # creates tmp, so the other processes only add their RNG state; no ONNX graph: a checkpoint is for resuming
        # (the final model folder ships one), and an export at every checkpoint would cost training time
        model.save_pretrained(tmp, card=card, onnx=False)
        save_training_state(tmp, optimizers, schedulers, accelerator.scaler)
    accelerator.wait_for_everyone()
    fileio.write_bytes(tmp / RNG_FILE.format(process=accelerator.process_index), safe_state.rng_bytes())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        fileio.write_json(tmp / CONFIG_FILE, json.loads(config.to_json()))
        fileio.write_json(tmp / STATE_FILE, trainer_state)  # last: it marks the checkpoint complete
        fileio.replace_directory(tmp, final)
    return final


def load_checkpoint(accelerator: Accelerator, checkpoint: Path, optimizers: tuple, schedulers: tuple) -> dict[str, Any]:
    """Restore the optimizers, schedules and this process's RNG states (the weights come with the networks:
    ``load_model``).

    A process beyond those that wrote the checkpoint (resumed on more processes) takes process 0's RNG state,
    as every process starts from the same seed anyway.

    Returns:
        The checkpoint's ``trainer_state.json``: the step, the epoch, who wrote it, where the data stood.
    """
    state = read_json(checkpoint / STATE_FILE)
    for name, optimizer in zip(OPTIMIZER_FILES, optimizers):
        safe_state.load_optimizer(optimizer, checkpoint / name)
    scaler_g = generator_scaler(optimizers, accelerator.scaler)
    safe_state.load_schedules(schedulers, accelerator.scaler, checkpoint / SCHEDULES_FILE, scaler_g)
    process = accelerator.process_index
    if process >= int(state.get("num_processes", 1)):
        process = 0
    safe_state.load_rng(checkpoint / RNG_FILE.format(process=process))
    return state
