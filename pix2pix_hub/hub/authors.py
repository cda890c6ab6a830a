"""The authors' checkpoints (junyanz/pytorch-CycleGAN-and-pix2pix) as pix2pix_hub models.

Their ``save_networks`` writes ``latest_net_G.pth`` / ``latest_net_D.pth``: ``torch.save(net.state_dict())``. This
module reads such a file with ``torch.load(weights_only=True)`` only, infers the architecture from its key names and
shapes, maps their names onto ours, loads strictly and writes a model folder (safetensors only) that
``Pix2Pix.from_pretrained`` loads. The networks agree layer for layer; what differs is bridged here:

- Where the authors' conv has no bias and ours has one (with batch norm: the U-Net's outermost and innermost
  down-convs; with norm "none": every conv but the output one), ours is set to zero. Adding 0.0 is exact, so outputs
  are unchanged, and the converted model keeps today's architecture and config (a new "no bias" switch would have
  bought nothing more).
- Their U-Net's dropout sits one decoder block further out than the paper's: converted U-Nets get
  ``dropout_offset=1`` (see ``UNetGenerator``), so ``dropout_at_test=True`` drops the same units as their test mode.
- Checkpoints from PyTorch < 0.4 carry running statistics on instance-norm layers; they are dropped, as the
  authors' own loader does.

Their layouts (module paths), for reading the code below:
    U-Net     model.model.0, model.model.3 (outermost down- and up-conv); level L >= 1 of num_downs is the block
              model.model.1(.model.3)*(L-1).model: .1 down-conv, .2 norm, .5 up-conv, .6 norm (innermost: .1, .3, .4)
    ResNet    model.<i> as our ``layers.<i>``; residual blocks model.<i>.conv_block.<j> as ``layers.<i>.block.<j>``
    PatchGAN  model.<i> ("basic", "n_layers") or net.<i> ("pixel") as our ``layers.<i>``
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..constants import PAPER_URL
from ..inference.pipeline import Pix2Pix
from ..models import PatchDiscriminator, ResnetGenerator, UNetGenerator
from .model_card import render_model_card
from .model_info import ModelInfo

AUTHORS_REPO = "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix"
# The authors' option names: keyword arguments that override what the keys say (the CLI flags of `convert`).
GENERATOR_FLAGS = ("netG", "ngf", "norm", "input_nc", "output_nc", "no_dropout")
DISCRIMINATOR_FLAGS = ("netD", "n_layers_D", "ndf", "norm")
LEGACY_INSTANCE_STATS = (".running_mean", ".running_var", ".num_batches_tracked")
CONVS = (nn.Conv2d, nn.ConvTranspose2d)


class AuthorsCheckpointError(ValueError):
    """A file or state_dict that is not an authors' checkpoint this package can convert; the message says why."""


@dataclass(frozen=True)
class AuthorsLayout:
    """One of the authors' networks as ours: what to build, and where each of our weights sits in theirs.

    ``theirs`` maps one of our module paths (``encoders.1.1``) to the authors' (``model.model.1.model.1``);
    ``biased`` holds our conv paths whose authors' conv has a bias whatever the norm (the output convs).
    """

    network: type[nn.Module]
    kwargs: dict[str, Any]
    theirs: Callable[[str], str]
    biased: frozenset[str]
    name: str  # for messages, in the authors' terms: "unet_256 (ngf 64, batch norm)"

    def bias_kept(self, module: str) -> bool:
        """Whether the authors' conv at our path ``module`` has a bias: with instance norm all do (their rule)."""
        return self.kwargs["norm"] == "instance" or module in self.biased


# ----- reading -----------------------------------------------------------------------------------------------------
def read_authors_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of an authors' ``.pth``, with ``module.`` prefixes (``DataParallel``) removed.

    Only ``torch.load(weights_only=True)`` reads it: a file that needs any other Python object to unpickle is
    refused (unpickling can run arbitrary code), as is anything but a flat dict of names to tensors.
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


# ----- architecture from keys and shapes ---------------------------------------------------------------------------
def authors_generator_layout(
    state_dict: dict[str, torch.Tensor],
    *,
    source: str = "state_dict",
    netG: str | None = None,
    ngf: int | None = None,
    norm: str | None = None,
    input_nc: int | None = None,
    output_nc: int | None = None,
    no_dropout: bool | None = None,
) -> AuthorsLayout:
    """Our generator for an authors' ``net_G`` state_dict: U-Net of any depth or ResNet of any number of blocks.

    Every argument left None is read from the keys and shapes; one given overrides it (a value the weights
    contradict is then reported by ``build_from_authors``). ``netG`` is ``unet_<size>`` (size a power of 2:
    ``unet_256`` has 8 downsamplings) or ``resnet_<n>blocks``. A U-Net's dropout leaves no trace in the keys:
    it is on unless ``no_dropout``, as in the authors' pix2pix.
    """
    family = "unet" if any(key.startswith("model.model.") for key in state_dict) else None
    family = family or ("resnet" if any(".conv_block." in key for key in state_dict) else None)
    wanted, depth = parse_netG(netG) if netG is not None else (family, None)
    if family is None or wanted != family:
        target = f"netG={netG}" if netG is not None else "any of the authors' generators (unet_*, resnet_*blocks)"
        raise AuthorsCheckpointError(f"{source}: its first key {next(iter(state_dict))!r} does not fit {target}.")
    flags = {"ngf": ngf, "norm": norm, "input_nc": input_nc, "output_nc": output_nc, "no_dropout": no_dropout}
    if family == "unet":
        return unet_layout(state_dict, source, depth, **flags)
    return resnet_layout(state_dict, source, depth, **flags)


def parse_netG(netG: str) -> tuple[str, int]:
    """``unet_256`` -> ("unet", 8 downsamplings); ``resnet_9blocks`` -> ("resnet", 9 blocks)."""
    unet = re.fullmatch(r"unet_(\d+)", netG)
    if unet and int(unet.group(1)) >= 4 and int(unet.group(1)).bit_count() == 1:
        return "unet", int(unet.group(1)).bit_length() - 1
    resnet = re.fullmatch(r"resnet_(\d+)blocks", netG)
    if resnet:
        return "resnet", int(resnet.group(1))
    raise AuthorsCheckpointError(
        f"netG={netG!r} is not one of the authors' generators: unet_<size> (a power of 2, e.g. unet_256) or "
        "resnet_<n>blocks (e.g. resnet_9blocks)."
    )


def unet_layout(state_dict: dict[str, torch.Tensor], source: str, num_downs: int | None, **flags: Any) -> AuthorsLayout:
    """Their nested ``UnetSkipConnectionBlock``s as our ``UNetGenerator`` (see the module docstring's layout)."""
    if num_downs is None:
        tensor(state_dict, f"{unet_block(1)}.1.weight", source)  # a U-Net has at least one inner level
        num_downs = 1 + max(level for level in range(1, 64) if f"{unet_block(level)}.1.weight" in state_dict)
    first = tensor(state_dict, "model.model.0.weight", source)  # Conv2d (ngf, in, 4, 4)
    last = tensor(state_dict, "model.model.3.weight", source)  # ConvTranspose2d (2 ngf, out, 4, 4)
    norm = flags["norm"] or norm_from_keys(state_dict, "model.model.0.bias")
    kwargs = {
        "in_channels": flags["input_nc"] or first.shape[1],
        "out_channels": flags["output_nc"] or last.shape[1],
        "num_downs": num_downs,
        "ngf": flags["ngf"] or first.shape[0],
        "norm": norm,
        "dropout": 0.0 if flags["no_dropout"] else 0.5,
        # Their dropout blocks: the num_downs - 5 ngf*8 levels between the innermost and the fixed outer four.
        "num_dropout": max(num_downs - 5, 0),
        "dropout_offset": 1,
    }
    modules = unet_modules(num_downs)
    name = f"unet_{2**num_downs} (ngf {kwargs['ngf']}, {norm} norm)"
    return AuthorsLayout(UNetGenerator, kwargs, modules.__getitem__, frozenset({f"decoders.{num_downs - 1}.1"}), name)


def unet_block(level: int) -> str:
    """The authors' Sequential of U-Net level ``level`` >= 1 (0 is the outermost)."""
    return "model.model.1" + ".model.3" * (level - 1) + ".model"


def unet_modules(num_downs: int) -> dict[str, str]:
    """Our module path -> theirs, for every conv and norm of a U-Net with ``num_downs`` levels."""
    modules = {"encoders.0": "model.model.0", f"decoders.{num_downs - 1}.1": "model.model.3"}
    for level in range(1, num_downs):
        block, up = unet_block(level), num_downs - 1 - level  # our decoders count from the innermost
        modules[f"encoders.{level}.1"] = f"{block}.1"
        if level < num_downs - 1:  # down: LeakyReLU, conv, norm; the inner level; up: ReLU, conv, norm
            modules[f"encoders.{level}.2"] = f"{block}.2"
            modules[f"decoders.{up}.1"] = f"{block}.5"
            modules[f"decoders.{up}.2"] = f"{block}.6"
        else:  # the innermost level: LeakyReLU, conv; ReLU, conv, norm
            modules[f"decoders.{up}.1"] = f"{block}.3"
            modules[f"decoders.{up}.2"] = f"{block}.4"
    return modules


def resnet_layout(
    state_dict: dict[str, torch.Tensor], source: str, n_blocks: int | None, **flags: Any
) -> AuthorsLayout:
    """Their ``ResnetGenerator`` (``model.<i>``) as ours (``layers.<i>``): the same Sequential, index for index."""
    blocks = {int(match.group(1)) for key in state_dict if (match := re.match(r"model\.(\d+)\.conv_block\.", key))}
    n_blocks = len(blocks) if n_blocks is None else n_blocks
    output_conv = 17 + n_blocks  # c7s1 (4 modules), 2 downs (3 each), the blocks, 2 ups (3 each), pad
    first = tensor(state_dict, "model.1.weight", source)  # (ngf, in, 7, 7)
    layers = [int(match.group(1)) for key in state_dict if (match := re.fullmatch(r"model\.(\d+)\.weight", key))]
    last = state_dict[f"model.{max(layers)}.weight"]  # the output conv (out, ngf, 7, 7)
    # Their block: pad, conv, norm, ReLU, [Dropout], pad, conv, norm: the second conv is .6 with dropout, else .5.
    has_dropout = any(re.fullmatch(r"model\.\d+\.conv_block\.6\.weight", key) for key in state_dict)
    no_dropout = flags["no_dropout"] if flags["no_dropout"] is not None else not has_dropout
    norm = flags["norm"] or norm_from_keys(state_dict, "model.1.bias")
    kwargs = {
        "in_channels": flags["input_nc"] or first.shape[1],
        "out_channels": flags["output_nc"] or last.shape[0],
        "ngf": flags["ngf"] or first.shape[0],
        "n_blocks": n_blocks,
        "norm": norm,
        "dropout": 0.0 if no_dropout else 0.5,
    }

    def theirs(module: str) -> str:
        return "model" + module.removeprefix("layers").replace(".block.", ".conv_block.")

    name = f"resnet_{n_blocks}blocks (ngf {kwargs['ngf']}, {norm} norm, dropout {kwargs['dropout']})"
    return AuthorsLayout(ResnetGenerator, kwargs, theirs, frozenset({f"layers.{output_conv}"}), name)


def authors_discriminator_layout(
    state_dict: dict[str, torch.Tensor],
    *,
    source: str = "state_dict",
    netD: str | None = None,
    n_layers_D: int | None = None,
    ndf: int | None = None,
    norm: str | None = None,
) -> AuthorsLayout:
    """Our ``PatchDiscriminator`` for an authors' ``net_D`` state_dict: ``basic``/``n_layers`` PatchGAN or ``pixel``.

    Arguments left None are read from the keys and shapes (``n_layers`` from the number of 4x4 convs); given ones
    override. ``netD="basic"`` means ``n_layers_D=3``, as in their code.
    """
    pixel = any(key.startswith("net.") for key in state_dict)
    patch = any(key.startswith("model.") for key in state_dict)
    wanted = {None: pixel, "pixel": True, "basic": False, "n_layers": False}.get(netD)
    if pixel == patch or wanted != pixel:
        target = f"netD={netD}" if netD else "any of the authors' discriminators (basic, n_layers, pixel)"
        raise AuthorsCheckpointError(f"{source}: its first key {next(iter(state_dict))!r} does not fit {target}.")
    prefix = "net" if pixel else "model"
    first = tensor(state_dict, f"{prefix}.0.weight", source)  # (ndf, in, k, k)
    if pixel:
        n_layers, biased = 0, {"layers.0"}
    else:
        convs = [
            key for key, value in state_dict.items() if re.fullmatch(r"model\.\d+\.weight", key) and value.ndim == 4
        ]
        n_layers = 3 if netD == "basic" else n_layers_D if n_layers_D is not None else len(convs) - 2
        biased = {"layers.0", f"layers.{2 + 3 * n_layers}"}  # conv + LeakyReLU, then conv, norm, LeakyReLU each
    norm = norm or norm_from_keys(state_dict, f"{prefix}.2.bias")
    kwargs = {"in_channels": first.shape[1], "ndf": ndf or first.shape[0], "n_layers": n_layers, "norm": norm}

    def theirs(module: str) -> str:
        return prefix + module.removeprefix("layers")

    name = f"{'pixel' if pixel else f'n_layers={n_layers}'} PatchGAN (ndf {kwargs['ndf']}, {norm} norm)"
    return AuthorsLayout(PatchDiscriminator, kwargs, theirs, frozenset(biased), name)


def tensor(state_dict: dict[str, torch.Tensor], key: str, source: str) -> torch.Tensor:
    if key not in state_dict:
        raise AuthorsCheckpointError(
            f"{source} has no {key!r}: it is not an authors' network of the kind its keys suggest "
            f"(first key {next(iter(state_dict))!r})."
        )
    return state_dict[key]


def norm_from_keys(state_dict: dict[str, torch.Tensor], biased_conv: str) -> str:
    """batch: norm layers with affine weights (1-D); instance: none, but convs with bias (their rule); else none."""
    if any(key.endswith(".weight") and value.ndim == 1 for key, value in state_dict.items()):
        return "batch"
    return "instance" if biased_conv in state_dict else "none"


# ----- building ours -----------------------------------------------------------------------------------------------
def build_from_authors(
    state_dict: dict[str, torch.Tensor], layout: AuthorsLayout, source: str = "state_dict"
) -> nn.Module:
    """Our network for ``layout``, loaded strictly from (copies of) the authors' ``state_dict``, in eval mode.

    Every key of theirs must land on a weight of ours of the same shape, and every weight of ours must come from
    one of theirs, except biases their layout lacks (zero) and ``num_batches_tracked`` (older PyTorch did not save
    it; 0). The error names the first key that does not fit.
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

    ``flags``: the authors' option names (``GENERATOR_FLAGS``, ``DISCRIMINATOR_FLAGS``; ``norm`` applies to both)
    overriding what the keys say; None means "read it from the weights".
    """
    unknown = sorted(set(flags) - set(GENERATOR_FLAGS) - set(DISCRIMINATOR_FLAGS))
    if unknown:
        raise TypeError(
            f"Unknown option(s) {', '.join(unknown)}; known: {', '.join(GENERATOR_FLAGS + DISCRIMINATOR_FLAGS)}."
        )
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

    ``direction``: AtoB/BtoA, the side of their dataset the model takes (their ``--direction``); ``base_model``:
    the origin its ``info`` records (default: the generator file's name), e.g. a Hub id; ``backend``: as for
    ``Pix2Pix``; ``flags``: see ``load_authors_networks``.
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
    sha256) from the authors' checkpoint(s); returns its path. ``repo_id``: the name the card's usage example
    loads; the other arguments: see ``load_authors_checkpoint``.
    """
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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
