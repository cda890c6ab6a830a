"""The authors' networks (junyanz/pytorch-CycleGAN-and-pix2pix) read from a state_dict's keys and shapes: which of
our networks to build, with which arguments, and where each of our weights sits in theirs (``AuthorsLayout``).

The networks agree layer for layer; what differs is bridged by the layout:

- Where the authors' conv has no bias and ours has one (with batch norm: the U-Net's outermost and innermost
  down-convs; with norm "none": every conv but the output one), ours is set to zero. Adding 0.0 is exact, so outputs
  are unchanged, and the converted model keeps today's architecture and config (a new "no bias" switch would have
  bought nothing more).
- Their U-Net's dropout sits one decoder block further out than the paper's: converted U-Nets get
  ``dropout_offset=1`` (see ``UNetGenerator``), so ``dropout_at_test=True`` drops the same units as their test mode.

Their layouts (module paths), for reading the code below:
    U-Net     model.model.0, model.model.3 (outermost down- and up-conv); level L >= 1 of num_downs is the block
              model.model.1(.model.3)*(L-1).model: .1 down-conv, .2 norm, .5 up-conv, .6 norm (innermost: .1, .3, .4)
    ResNet    model.<i> as our ``layers.<i>``; residual blocks model.<i>.conv_block.<j> as ``layers.<i>.block.<j>``
    PatchGAN  model.<i> ("basic", "n_layers") or net.<i> ("pixel") as our ``layers.<i>``
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..models import PatchDiscriminator, ResnetGenerator, UNetGenerator

# The authors' option names: keyword arguments that override what the keys say. `pix2pix-hub convert` has one flag
# for each of AUTHORS_FLAGS (norm applies to both networks), typed as the layout functions take them.
GENERATOR_FLAGS = ("netG", "ngf", "norm", "input_nc", "output_nc", "no_dropout")
DISCRIMINATOR_FLAGS = ("netD", "n_layers_D", "ndf", "norm")
AUTHORS_FLAGS = tuple(dict.fromkeys(GENERATOR_FLAGS + DISCRIMINATOR_FLAGS))


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
    contradict is then reported by ``build_from_authors``).

    Args:
        state_dict: the authors' tensors.
        source: the file's name, for messages.
        netG: ``unet_<size>`` (size a power of 2: ``unet_256`` has 8 downsamplings) or ``resnet_<n>blocks``.
        ngf, norm, input_nc, output_nc: the authors' options of the same names.
        no_dropout: a U-Net's dropout leaves no trace in the keys: it is on unless this is set, as in their pix2pix.

    Returns:
        The layout: our network class, its arguments, and their name of each of our weights.
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
    override.

    Args:
        state_dict: the authors' tensors.
        source: the file's name, for messages.
        netD: ``basic`` (which means ``n_layers_D=3``, as in their code), ``n_layers`` or ``pixel``.
        n_layers_D, ndf, norm: the authors' options of the same names.

    Returns:
        The layout: our network class, its arguments, and their name of each of our weights.
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
