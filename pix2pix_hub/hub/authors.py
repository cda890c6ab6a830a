"""The authors' checkpoints (junyanz/pytorch-CycleGAN-and-pix2pix) as pix2pix_hub models.

Their ``save_networks`` writes ``latest_net_G.pth`` / ``latest_net_D.pth``: ``torch.save(net.state_dict())``. This
module reads such a file with ``torch.load(weights_only=True)`` only, lets ``authors_layout`` infer the architecture
from its key names and shapes, maps their names onto ours, loads strictly and writes a model folder (safetensors
only) that ``Pix2Pix.from_pretrained`` loads. Checkpoints from PyTorch < 0.4 carry running statistics on
instance-norm layers; they are dropped, as the authors' own loader does.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..constants import PAPER_URL
from ..fileio import check_output_apart
from ..inference.pipeline import Pix2Pix
from ..models import PatchDiscriminator, ResnetGenerator, UNetGenerator
from .authors_layout import (
    AUTHORS_FLAGS,
    DISCRIMINATOR_FLAGS,
    GENERATOR_FLAGS,
    AuthorsCheckpointError,
    AuthorsLayout,
    authors_discriminator_layout,
    authors_generator_layout,
)
from .model_card import render_model_card
from .model_info import ModelInfo

AUTHORS_REPO = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
LEGACY_INSTANCE_STATS = (".running_mean", ".running_var", ".num_batches_tracked")
CONVS = (nn.Conv2d, nn.ConvTranspose2d)
# The pix2pix generators the authors publish (their scripts/download_pix2pix_model.sh NAME saves
# checkpoints/NAME_pretrained/latest_net_G.pth) and the --direction each was trained with (the README's table).
PUBLISHED_DIRECTIONS = {
    "facades_label2photo": "BtoA",
    "sat2map": "AtoB",
    "map2sat": "BtoA",
    "edges2shoes": "AtoB",
    "day2night": "AtoB",
}


# ----- reading -----------------------------------------------------------------------------------------------------
def read_authors_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an authors' ``.pth``, with ``module.`` prefixes (``DataParallel``) removed.

    Only ``torch.load(weights_only=True)`` reads it: a file that needs any other Python object to unpickle is
    refused (unpickling can run arbitrary code), as is anything but a flat dict of names to tensors.

    Args:
        path: the checkpoint file, e.g. ``latest_net_G.pth``.

    Returns:
        The state_dict: key -> tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file at {path}.")
    try:
        loaded = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise AuthorsCheckpointError(unpickling_refusal(path.name, error)) from None
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        reason = f"{type(error).__name__}: {error}"
        raise AuthorsCheckpointError(
            f"{path.name} is not a PyTorch checkpoint torch.load can read ({reason})."
        ) from None
    if not isinstance(loaded, dict) or not loaded:
        what = "an empty dict" if isinstance(loaded, dict) else f"a {type(loaded).__name__}"
        raise AuthorsCheckpointError(
            f"{path.name} holds {what}, not a state_dict: the authors' save_networks writes net.state_dict()."
        )
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise AuthorsCheckpointError(
                f"{path.name} is not a plain state_dict: its entry {key!r} is of type {type(value).__name__}, not a "
                "tensor (the authors' save_networks writes net.state_dict() only)."
            )
    return {key.removeprefix("module."): value for key, value in loaded.items()}


def unpickling_refusal(name: str, error: pickle.UnpicklingError) -> str:
    """One line from torch's long weights-only message: what the file needs, or why it is no checkpoint at all."""
    text = str(error)
    needed = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if needed:
        return (
            f"Refusing {name}: it needs the Python object {needed.group(1)} to unpickle; only plain state_dicts "
            "are converted, because full unpickling can run arbitrary code."
        )
    after = text.split("WeightsUnpickler error:", 1)[-1]
    detail = next((line.strip() for line in after.splitlines() if line.strip()), "unreadable")
    return (
        f"{name} is not a PyTorch checkpoint that torch.load(weights_only=True) reads ({detail}); it is refused, as "
        "anything that would need full unpickling is: that can run arbitrary code."
    )


# ----- building ours -----------------------------------------------------------------------------------------------
def build_from_authors(
    state_dict: dict[str, torch.Tensor], layout: AuthorsLayout, source: str = "state_dict"
) -> nn.Module:
    """Our network for ``layout``, loaded strictly from (copies of) the authors' ``state_dict``, in eval mode.

    Every key of theirs must land on a weight of ours of the same shape, and every weight of ours must come from
    one of theirs, except biases their layout lacks (zero) and ``num_batches_tracked`` (older PyTorch did not save
    it; 0). The error names the first key that does not fit.

    Args:
        state_dict: the authors' tensors (``read_authors_state_dict``).
        layout: what ``authors_generator_layout``/``authors_discriminator_layout`` read from them.
        source: the file's name, for messages.

    Returns:
        The network, in eval mode.
    """
    with torch.device("meta"):  # shapes only: every tensor is assigned below, so skip allocating and initialising
        model = layout.network(**layout.kwargs)
    ours = model.state_dict()
    if layout.kwargs["norm"] == "instance":
        state_dict = {key: value for key, value in state_dict.items() if not key.endswith(LEGACY_INSTANCE_STATS)}
    expected, values = their_names(model, layout), {}
    for key, value in state_dict.items():
        if key not in expected:
            raise AuthorsCheckpointError(f"{source}: key {key!r} does not fit the authors' {layout.name}.")
        mine = ours[expected[key]]
        if value.shape != mine.shape:
            raise AuthorsCheckpointError(
                f"{source}: key {key!r} has shape {tuple(value.shape)}; the authors' {layout.name} has "
                f"{tuple(mine.shape)} there."
            )
        values[expected[key]] = value.to(dtype=mine.dtype, copy=True)
    missing = [key for key in expected if key not in state_dict and not key.endswith(".num_batches_tracked")]
    if missing:
        raise AuthorsCheckpointError(
            f"{source} lacks {missing[0]!r} (and {len(missing) - 1} more keys) that the authors' {layout.name} has."
        )
    # What theirs lacks: zero biases and batch counts.
    values |= {key: torch.zeros(mine.shape, dtype=mine.dtype) for key, mine in ours.items() if key not in values}
    model.load_state_dict(values, strict=True, assign=True)
    return model.eval()


def their_names(model: nn.Module, layout: AuthorsLayout) -> dict[str, str]:
    """The authors' key -> ours, for every weight of ``model`` but the conv biases their layout lacks."""
    names = {}
    for key in model.state_dict():
        module, parameter = key.rsplit(".", 1)
        if parameter == "bias" and isinstance(model.get_submodule(module), CONVS) and not layout.bias_kept(module):
            continue
        names[f"{layout.theirs(module)}.{parameter}"] = key
    return names


def load_authors_networks(
    generator_path: str | os.PathLike, discriminator_path: str | os.PathLike | None = None, **flags: Any
) -> tuple[UNetGenerator | ResnetGenerator, PatchDiscriminator | None]:
    """Our generator (and discriminator) from the authors' ``latest_net_G.pth`` (and ``latest_net_D.pth``).

    Args:
        generator_path: the authors' generator checkpoint.
        discriminator_path: its discriminator's, or None.
        flags: the authors' option names (``AUTHORS_FLAGS``; ``norm`` applies to both networks) overriding what
            the keys say; None means "read it from the weights".

    Returns:
        (generator, discriminator or None), in eval mode.
    """
    unknown = sorted(set(flags) - set(AUTHORS_FLAGS))
    if unknown:
        raise TypeError(f"Unknown option(s) {', '.join(unknown)}; known: {', '.join(AUTHORS_FLAGS)}.")
    source = Path(generator_path).name
    state_dict = read_authors_state_dict(generator_path)
    layout = authors_generator_layout(state_dict, source=source, **pick(flags, GENERATOR_FLAGS))
    generator = build_from_authors(state_dict, layout, source)
    if discriminator_path is None:
        return generator, None
    source = Path(discriminator_path).name
    state_dict = read_authors_state_dict(discriminator_path)
    layout = authors_discriminator_layout(state_dict, source=source, **pick(flags, DISCRIMINATOR_FLAGS))
    discriminator = build_from_authors(state_dict, layout, source)
    pair = generator.in_channels + generator.out_channels
    if discriminator.in_channels != pair:
        raise AuthorsCheckpointError(
            f"{source} judges {discriminator.in_channels}-channel pairs, but the generator's input and output "
            f"make {pair} channels: the two checkpoints are not from one model."
        )
    return generator, discriminator


def pick(flags: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: flags[name] for name in names if flags.get(name) is not None}


# ----- a translator and a model folder ----------------------------------------------------------------------------
def load_authors_checkpoint(
    generator_path: str | os.PathLike,
    *,
    discriminator_path: str | os.PathLike | None = None,
    direction: str | None = None,
    base_model: str | None = None,
    backend: str = "auto",
    **flags: Any,
) -> Pix2Pix:
    """A ``Pix2Pix`` from the authors' ``latest_net_G.pth`` (and ``latest_net_D.pth``), in eval mode.

    Args:
        generator_path: the authors' generator checkpoint.
        discriminator_path: its discriminator's, or None.
        direction: AtoB/BtoA, the side of their dataset the model takes (their ``--direction``).
        base_model: the origin its ``info`` records (default: the generator file's name), e.g. a Hub id.
        backend: as for ``Pix2Pix``.
        flags: see ``load_authors_networks``.

    Returns:
        The translator.
    """
    info = ModelInfo(direction=direction, base_model=base_model or Path(generator_path).name)  # checks direction
    generator, discriminator = load_authors_networks(generator_path, discriminator_path, **flags)
    return Pix2Pix(generator, discriminator, backend=backend, info=info)


def convert_authors_checkpoint(
    generator_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    direction: str | None = None,
    discriminator_path: str | os.PathLike | None = None,
    base_model: str | None = None,
    repo_id: str | None = None,
    **flags: Any,
) -> Path:
    """Write a model folder (safetensors only, with ``pix2pix.json`` and a card naming the source files and their
    sha256) from the authors' checkpoint(s).

    Args:
        generator_path, output_dir: the authors' generator checkpoint; the folder to write.
        repo_id: the name the card's usage example loads.
        direction, discriminator_path, base_model, flags: see ``load_authors_checkpoint``.

    Returns:
        The folder's path.
    """
    inputs = {"generator_path": generator_path, "discriminator_path": discriminator_path}
    check_output_apart(output_dir, inputs, what="output_dir")  # it is replaced whole: never over its sources
    pix2pix = load_authors_checkpoint(
        generator_path,
        discriminator_path=discriminator_path,
        direction=direction,
        base_model=base_model,
        backend="torch",  # only saved here: no ONNX export
        **flags,
    )
    sources = [Path(path) for path in (generator_path, discriminator_path) if path is not None]
    # "other": the weights' license is their owner's, which the file does not say.
    card = render_model_card(pix2pix, repo_id=repo_id or "user/pix2pix-model", license="other")
    return pix2pix.save_pretrained(output_dir, card=card + origin_section(sources, direction))


def origin_section(sources: list[Path], direction: str | None) -> str:
    """The card's account of where the weights come from (file names and sha256) and how they behave."""
    rows = "\n".join(f"| `{path.name}` | `{file_sha256(path)}` |" for path in sources)
    way = f"`{direction}`" if direction else "not recorded (pass `--direction` when converting)"
    return f"""
## Origin

Converted by `pix2pix-hub convert` from a checkpoint of the authors' PyTorch code
([junyanz/pytorch-CycleGAN-and-pix2pix]({AUTHORS_REPO}); paper: [Isola et al. 2017]({PAPER_URL})):

| source file | sha256 |
|---|---|
{rows}

Direction: {way}. The license is that of the source weights: check it before publishing.

In eval mode (the default here) the outputs equal the authors' network's within float rounding. The authors'
test script by default runs in train mode, with dropout on and batch statistics: `pix2pix(image,
dropout_at_test=True)` does the same, with dropout in the same blocks. Biases their layout lacks are stored as zeros.
"""


def published_model(path: str | os.PathLike) -> str | None:
    """The published model whose name the checkpoint's file name or folder holds as a word
    (``checkpoints/facades_label2photo_pretrained/latest_net_G.pth``, ``map2sat.pth``), or None."""
    resolved = Path(path).resolve()
    for part in (resolved.stem, resolved.parent.name):  # the file's own name first: it is the more specific
        words = re.sub(r"[^a-z0-9]+", "_", part.lower())
        found = [name for name in PUBLISHED_DIRECTIONS if re.search(rf"(?<![a-z0-9]){name}(?![a-z0-9])", words)]
        if len(found) == 1:
            return found[0]
    return None


def checkpoint_direction(path: str | os.PathLike, direction: str | None) -> tuple[str | None, str | None]:
    """The direction to record for the authors' checkpoint at ``path``, and what to tell the user about it.

    Args:
        path: the generator checkpoint.
        direction: the one given (``--direction``), or None.

    Returns:
        (``direction`` if given, else the published model's its path names, else None; a one-line note for
        stderr when the direction was inferred or stays unknown, else None).
    """
    if direction is not None:
        return direction, None
    name = published_model(path)
    if name is not None:
        inferred = PUBLISHED_DIRECTIONS[name]
        return inferred, (
            f"direction: {inferred}, inferred from {name!r} in {path} (the authors' published {name} takes that "
            "side); pass --direction AtoB|BtoA if this checkpoint was trained otherwise."
        )
    known = ", ".join(f"{model} {way}" for model, way in PUBLISHED_DIRECTIONS.items())
    return None, (
        f"the direction of {path} is unknown, so the model records none (its card says 'not recorded'): "
        f"convert again with --direction AtoB|BtoA, the side of the data it takes (the authors' models: {known})."
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
