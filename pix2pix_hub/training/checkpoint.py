"""Resumable training state: ``output_dir/checkpoints/checkpoint-<step>/``, written so a crash never costs one.

A checkpoint is ``accelerator.save_state`` (both models, both optimizers, both schedulers, every process's RNG
states) plus ``training_config.json`` (the ``TrainingConfig``) and ``trainer_state.json`` (step, epoch, data
position). It is assembled in ``.tmp-checkpoint-<step>`` and renamed into place only when complete, so a run
killed mid-write leaves the previous checkpoints untouched and the partial one is ignored (and removed later).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import fileio
from .config import ARCHITECTURE_FIELDS, TrainingConfig

if TYPE_CHECKING:
    from accelerate import Accelerator

CHECKPOINTS_DIR = "checkpoints"
PREFIX = "checkpoint-"
TMP_PREFIX = ".tmp-checkpoint-"
CONFIG_FILE = "training_config.json"
STATE_FILE = "trainer_state.json"  # written last: its presence marks a complete checkpoint


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
    or a checkpoint folder, which must be complete."""
    if value is None:
        return None
    if value == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(value)
    if not path.is_dir():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {value}: no such folder. Pass 'latest' or one of "
            f"{checkpoints_dir(output_dir)}/{PREFIX}<step>."
        )
    if not is_complete(path):
        raise ValueError(
            f"--resume_from_checkpoint {value} is not a complete checkpoint (no {STATE_FILE} or {CONFIG_FILE}); "
            "it was probably interrupted while being written. Use an earlier one or 'latest'."
        )
    return path


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def check_compatible(checkpoint: Path, config: TrainingConfig) -> None:
    """Refuse to resume ``checkpoint`` when it was made with other network shapes than ``config`` describes."""
    saved = read_json(checkpoint / CONFIG_FILE)
    current = config.__dict__
    different = [name for name in ARCHITECTURE_FIELDS if name in saved and saved[name] != current[name]]
    if different:
        listed = ", ".join(f"--{name} {saved[name]} (now {current[name]})" for name in different)
        raise ValueError(
            f"Cannot resume from {checkpoint}: it was trained with {listed}. Resume with the same architecture "
            "flags, or start a new run in another --output_dir."
        )


def remove_stale(output_dir: str | os.PathLike) -> None:
    """Delete temporary folders left by a run killed while writing a checkpoint (main process only)."""
    folder = checkpoints_dir(output_dir)
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(TMP_PREFIX) or (checkpoint_step(path) is not None and not is_complete(path)):
                shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | os.PathLike,
    step: int,
    trainer_state: dict[str, Any],
    config: TrainingConfig,
    total_limit: int | None,
) -> Path:
    """Write ``checkpoint-<step>`` from every process (each saves its own RNG state), then commit it by renaming.

    Keeps the newest ``total_limit`` complete checkpoints; older ones are deleted only after the new one is in place.
    """
    folder = checkpoints_dir(output_dir)
    tmp = folder / f"{TMP_PREFIX}{step}"
    final = folder / f"{PREFIX}{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        fileio.make_directory(tmp)  # here, so that the other processes only ever write their own RNG state
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
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


def load_checkpoint(accelerator: Accelerator, checkpoint: Path) -> dict[str, Any]:
    """Restore everything ``save_checkpoint`` wrote into the prepared objects; returns ``trainer_state.json``."""
    accelerator.load_state(str(checkpoint))
    return read_json(checkpoint / STATE_FILE)
