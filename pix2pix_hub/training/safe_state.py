"""Training state as bytes that cannot run code when read: safetensors for tensors, JSON for everything else.

Accelerate's ``save_state`` pickles the schedulers (``custom_checkpoint_*.pkl``) and the RNG states
(``random_states_*.pkl``), and ``load_state`` unpickles them in full, so a checkpoint received from someone else
could run arbitrary code. Here every part is a safetensors file (tensors, plus JSON in its string metadata) or a
JSON document; reading one never calls into pickle. A missing or damaged part raises ``CheckpointError`` naming
the file. Floats survive JSON exactly (Python writes the shortest repr that reads back to the same double).
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes
from safetensors.torch import save_file

from .errors import CheckpointError


# ----- reading, with every failure named --------------------------------------------------------------------------
@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn any failure to read or apply ``path`` into a ``CheckpointError`` that names it."""
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: the checkpoint is incomplete. Resume from another one.")
    try:
        yield
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError, IndexError) as error:
        raise CheckpointError(
            f"{path} is damaged or was not written for this run ({type(error).__name__}: {error}). "
            "Resume from another checkpoint."
        ) from error


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors on the CPU, string metadata)`` of a safetensors file (call inside ``reading(path)``)."""
    with safe_open(str(path), framework="pt") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, dict(file.metadata() or {})  # noqa: SIM118


def read_json_file(path: Path) -> Any:
    with reading(path):
        return json.loads(path.read_text(encoding="utf-8"))


# ----- optimizers --------------------------------------------------------------------------------------------------
def save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """``optimizer.state_dict()`` as the safetensors file ``path``: each per-parameter tensor under
    ``"<param index>.<name>"`` (Adam: ``step``, ``exp_avg``, ``exp_avg_sq``), non-tensor values and
    ``param_groups`` as JSON metadata.

    Args:
        optimizer: the optimizer (prepared or not) whose state is written.
        path: a file in a folder still being assembled under a temporary name (a checkpoint's): the folder's
            rename is what makes it atomic. Written directly, not through ``fileio``'s temporary file + fsync,
            which made each checkpoint several times slower to write (docs/performance.md, "Checkpoints").
    """
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    metadata = {"param_groups": json.dumps(state["param_groups"]), "scalars": json.dumps(scalars)}
    save_file(tensors, str(path), metadata=metadata)


KERNEL_KEYS = ("fused", "foreach")  # an optimizer's param-group entries that choose its kernel, not its maths


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Restore what ``save_optimizer`` wrote; torch moves each tensor to its parameter's device and dtype."""
    with reading(path):
        tensors, metadata = read_safetensors(path)
        state: dict[int, dict[str, Any]] = {}
        values = {**tensors, **json.loads(metadata["scalars"])}
        for key, value in values.items():
            index, name = key.split(".", 1)
            state.setdefault(int(index), {})[name] = value
        # JSON has no tuples: Adam's betas come back as a list; give them their original type.
        groups = [
            {key: tuple(v) if isinstance(v, list) and key != "params" else v for key, v in group.items()}
            for group in json.loads(metadata["param_groups"])
        ]
        # The kernel choice (fused, foreach) is this run's, not the checkpoint's: a fused Adam given a plain one's
        # groups would take the scaler's fused arguments in the plain kernel, which refuses them.
        built = [{key: group.get(key) for key in KERNEL_KEYS} for group in optimizer.param_groups]
        optimizer.load_state_dict({"state": state, "param_groups": groups})
        for group, kernel in zip(optimizer.param_groups, built):
            group.update(kernel)


# ----- random number generators ------------------------------------------------------------------------------------
def rng_bytes() -> bytes:
    """This process's RNG states: torch's CPU and CUDA generators as uint8 tensors; Python's ``random`` and numpy's
    legacy global generator as JSON lists in the metadata."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss_next = random.getstate()
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    metadata = {
        "python": json.dumps([version, list(internal), gauss_next]),
        "numpy": json.dumps([name, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)]),
    }
    return safetensors_bytes(tensors, metadata=metadata)


def load_rng(path: Path) -> None:
    """Set this process's generators to the states ``rng_bytes`` wrote."""
    with reading(path):
        tensors, metadata = read_safetensors(path)
        version, internal, gauss_next = json.loads(metadata["python"])
        name, keys, position, has_gauss, cached_gaussian = json.loads(metadata["numpy"])
        cuda = [tensors[f"cuda.{i}"] for i in range(sum(key.startswith("cuda.") for key in tensors))]
        torch.set_rng_state(tensors["torch"])
        random.setstate((version, tuple(internal), gauss_next))
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


# ----- schedules ---------------------------------------------------------------------------------------------------
def schedules_state(schedulers: tuple, scaler: Any | None, scaler_g: Any | None = None) -> dict[str, Any]:
    """The LR schedulers' and the fp16 gradient scalers' (D's, or the shared one; G's own) ``state_dict``s
    (numbers and lists only) for JSON."""
    return {
        "lr_schedulers": [scheduler.state_dict() for scheduler in schedulers],
        "grad_scaler": None if scaler is None else scaler.state_dict(),
        "grad_scaler_g": None if scaler_g is None else scaler_g.state_dict(),
    }


def load_schedules(schedulers: tuple, scaler: Any | None, path: Path, scaler_g: Any | None = None) -> None:
    """Restore what ``schedules_state`` recorded (read from the JSON file ``path``); G's scaler from a checkpoint
    without its own takes the shared one's state."""
    values = read_json_file(path)
    with reading(path):
        if len(values["lr_schedulers"]) != len(schedulers):
            raise ValueError(f"{len(values['lr_schedulers'])} schedulers saved, {len(schedulers)} in this run")
        for scheduler, state in zip(schedulers, values["lr_schedulers"]):
            scheduler.load_state_dict(state)
        if scaler is not None and values["grad_scaler"]:
            scaler.load_state_dict(values["grad_scaler"])
        own = values.get("grad_scaler_g") or values["grad_scaler"]
        if scaler_g is not None and own:
            scaler_g.load_state_dict(own)
