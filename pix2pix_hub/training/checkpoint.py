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
leaves the previous checkpoints untouched and the partial one is ignored (and removed later). A checkpoint holding
a pickle (``.pkl``, ``.bin``, ...: e.g. one written by Accelerate's ``save_state``) is refused, never read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fileio
from ..constants import PICKLE_SUFFIXES
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


def checkpoints_dir(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR


def checkpoint_step(path: Path) -> int | None:
    match = re.fullmatch(rf"{PREFIX}(\d+)", path.name)
    return int(match.group(1)) if match else None


def is_complete(path: Path) -> bool:
    return (path / STATE_FILE).is_file() and (path / CONFIG_FILE).is_file()


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of ``output_dir``, oldest step first; temporary and partial folders are skipped."""
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return []
    found = [(checkpoint_step(p), p) for p in folder.iterdir() if p.is_dir()]
    return [p for step, p in sorted((s, p) for s, p in found if s is not None) if is_complete(p)]


def resolve_resume(output_dir: str | os.PathLike, value: str | None) -> Path | None:
    """``--resume_from_checkpoint``: ``None``; ``"latest"`` (newest complete one, or ``None`` if there is none);
    or a checkpoint folder, which must be complete and free of pickles."""
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
        if not is_complete(path):
            raise ConfigError(
                f"--resume_from_checkpoint {value} is not a complete checkpoint (no {STATE_FILE} or {CONFIG_FILE}); "
                "it was probably interrupted while being written. Use an earlier one or 'latest'."
            )
    if path is not None:
        refuse_pickles(path)
    return path


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
    fileio.write_json(folder / SCHEDULES_FILE, safe_state.schedules_state(schedulers, scaler))


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
) -> Path:
    """Write ``checkpoint-<step>`` (the main process all but the RNG states, each process its own), then commit it
    by renaming. Keeps the newest ``total_limit`` complete checkpoints; older ones are deleted only after the new
    one is in place."""
    folder = checkpoints_dir(output_dir)
    tmp = folder / f"{TMP_PREFIX}{step}"
    final = folder / f"{PREFIX}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, card=card)  # creates tmp, so the other processes only add their RNG state
        save_training_state(tmp, optimizers, schedulers, accelerator.scaler)
    accelerator.wait_for_everyone()
    fileio.write_bytes(tmp / RNG_FILE.format(process=accelerator.process_index), safe_state.rng_bytes())
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        fileio.write_json(tmp / CONFIG_FILE, json.loads(config.to_json()))
        fileio.write_json(tmp / STATE_FILE, trainer_state)  # last: it marks the checkpoint complete
        fileio.replace_directory(tmp, final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
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
    safe_state.load_schedules(schedulers, accelerator.scaler, checkpoint / SCHEDULES_FILE)
    process = accelerator.process_index
    if process >= int(state.get("num_processes", 1)):
        process = 0
    safe_state.load_rng(checkpoint / RNG_FILE.format(process=process))
    return state
