"""A model folder, on disk or as a Hub repo: what it holds, what is fetched of it, the checks before loading and
saving, and rebuilding its networks (``Pix2Pix.from_pretrained`` / ``save_pretrained``).

The layout (one folder, readable by ``UNetGenerator.from_pretrained`` too):

    config.json, model.safetensors          the generator (its constructor arguments + weights)
    pix2pix.json                            the model's facts (direction, input/output, dataset): ModelInfo
    discriminator/config.json, .safetensors  the discriminator, when kept for fine-tuning
    README.md                               model card from model_card.md (the facts again in its YAML)
    samples.png                             a sample grid, when given
    model.onnx, model.int8.onnx             optional: the generator as fp32 and int8 ONNX graphs, each recording the
                                            weights it was made from (so a Space starts without exporting)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import torch
from huggingface_hub import HfApi
from PIL import Image
from torch import nn

from ..constants import (
    CARD_NAME,
    CONFIG_NAME,
    DISCRIMINATOR_DIR,
    INT8_ONNX_NAME,
    MODEL_INFO_NAME,
    ONNX_NAME,
    PICKLE_SUFFIXES,
    SAMPLES_NAME,
    WEIGHTS_NAME,
)
from ..fileio import save_image, write_text
from ..hub.model_info import ModelInfo
from ..models.hub import WeightsNotFoundError, pickle_refusal, read_config
from .calibration import CalibrationSource
from .onnx_engine import cpu_generator, export_for_shipping
from .precision import onnx_patterns

# Only these files are ever fetched from a Hub repo, in any folder (fnmatch's * crosses "/"): pickles are never
# even downloaded. The ONNX graphs are added by name, and only when they may be run (``download_patterns``).
ALLOWED_PATTERNS = ["*.json", "*.safetensors", "*.md", "*.png"]


def check_model_folder(folder: Path, model_id: str) -> None:
    """``folder`` holds ``config.json``; else a ``WeightsNotFoundError`` naming the pickles it holds instead, or
    a ``FileNotFoundError``."""
    if (folder / CONFIG_NAME).is_file():
        return
    pickles = [p.name for p in folder.iterdir() if p.name.endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise WeightsNotFoundError(pickle_refusal(model_id, pickles))
    raise FileNotFoundError(f"{model_id} has no {CONFIG_NAME}: it is not a folder written by save_pretrained().")


def load_network(
    folder: Path, classes: dict[str, type], kind: str, default: str, device: str | torch.device
) -> nn.Module:
    """Rebuild the network ``folder/config.json`` describes (its ``_class_name``, ``default`` for older folders)
    from the registry's ``classes``, moved to ``device`` (the mixin's ``map_location`` only says where the weights
    are read to before they are copied into the network, built on the CPU)."""
    config_path = folder / CONFIG_NAME
    class_name = read_config(config_path).get("_class_name", default)
    if class_name not in classes:
        raise ValueError(f"{config_path} describes a {class_name!r}; a {kind} is one of {', '.join(classes)}.")
    return classes[class_name].from_pretrained(folder, map_location="cpu").to(torch.device(device))


def download_patterns(
    backend: str, device: str | torch.device, precision: str, calibration: CalibrationSource | None
) -> list[str]:
    """What ``from_pretrained`` fetches from a Hub repo: ``ALLOWED_PATTERNS``, plus the ONNX graphs by name where
    they may run (``precision.onnx_patterns``)."""
    return [*ALLOWED_PATTERNS, *onnx_patterns(backend, device, precision, calibration)]


def checked_extra_files(
    extra_files: Mapping[str, str | os.PathLike] | None, *, onnx: bool, sample_grid: bool
) -> dict[str, Path]:
    """``extra_files`` (``{path in the folder: local file}``) checked before anything is written: each path
    relative and inside the folder, not one of the folder's own files, not a pickle; each source an existing file."""
    reserved = {CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, MODEL_INFO_NAME}
    reserved |= {SAMPLES_NAME} if sample_grid else set()
    reserved |= {ONNX_NAME, INT8_ONNX_NAME} if onnx else set()
    checked = {}
    for name, source in (extra_files or {}).items():
        relative = PurePosixPath(str(name).replace("\\", "/"))
        outside = relative.is_absolute() or not relative.parts or ".." in relative.parts
        if outside or str(relative) in reserved or relative.parts[0] == DISCRIMINATOR_DIR:
            raise ValueError(f"extra_files: {name!r} is not a free path inside the model folder.")
        if relative.name.lower().endswith(PICKLE_SUFFIXES):
            raise ValueError(f"extra_files: {name!r} is a pickle; model folders never hold one.")
        if not Path(source).is_file():
            raise FileNotFoundError(f"extra_files: {source} (for {name}) is not a file.")
        checked[str(relative)] = Path(source)
    return checked


def write_folder(
    staging: Path,
    generator: nn.Module,
    discriminator: nn.Module | None,
    info: ModelInfo,
    card: str,
    sample_grid: Image.Image | None,
    onnx: bool,
) -> None:
    """Write a model's own files into ``staging`` (``save_pretrained``'s folder being assembled): the generator
    (a SPADE generator's style encoder is part of its weights), ``pix2pix.json``, the discriminator without the
    mixin's generic card, ``samples.png``, the card, and with ``onnx`` the parity-checked ``model.onnx``."""
    generator.save_pretrained(staging)
    info.save(staging)
    if discriminator is not None:
        discriminator.save_pretrained(staging / DISCRIMINATOR_DIR)
        # The mixin writes a generic card there; the model's card is the one at the top.
        (staging / DISCRIMINATOR_DIR / CARD_NAME).unlink(missing_ok=True)
    if sample_grid is not None:
        save_image(sample_grid, staging / SAMPLES_NAME)
    write_text(staging / CARD_NAME, card)
    if onnx:
        with cpu_generator(generator) as exported:
            export_for_shipping(exported, staging / ONNX_NAME)


def writable_folder(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (where a built int8 graph goes, else into the cache)."""
    return os.access(folder, os.W_OK)


# ----- the Hub (``api``: the caller's ``HfApi``) -------------------------------------------------------------
def prepare_repo(api: HfApi, repo_id: str, private: bool | None, branch: str | None) -> str:
    """Create ``repo_id`` (and ``branch``) if missing; returns the repo id as the Hub spells it."""
    repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
    if branch is not None:
        api.create_branch(repo_id=repo_id, branch=branch, exist_ok=True)
    return repo_id


def upload(
    api: HfApi,
    folder: Path,
    repo_id: str,
    branch: str | None,
    create_pr: bool,
    commit_message: str,
    allow_patterns: Sequence[str] | None = None,
) -> str:
    """``folder`` (the files matching ``allow_patterns``) as one commit replacing the repo's files."""
    options = {} if allow_patterns is None else {"allow_patterns": list(allow_patterns)}
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        commit_message=commit_message,
        revision=branch,
        create_pr=create_pr,
        delete_patterns="*",
        **options,
    )
    return str(getattr(commit, "pr_url", None) or getattr(commit, "commit_url", commit))
