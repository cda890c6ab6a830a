"""``--init_from``: fine-tune a trained model, with the architecture its ``config.json`` describes.

The networks are the loaded ones (so fields no flag covers, like a converted U-Net's ``dropout_offset``, survive);
the ``TrainingConfig``'s architecture flags are set to describe them, so the card, the checkpoints and a resume
agree. A flag the user did not set follows the model; one set (``TrainingConfig.given_fields``: on the command line,
any flag typed, even at its default value) must match it, or the run is refused with both values named.
Optimizers and schedules start fresh.

pix2pixHD's recipe is the one exception to "the model's architecture": ``--netG local --init_from GLOBAL_MODEL``
builds a new local enhancer around the trained global generator (``LocalEnhancer.load_global``; the enhancer's
``ngf`` is half the global one's, as in pix2pixHD) and keeps the model's discriminator.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from ..images.labels import input_channels
from ..inference.pipeline import Pix2Pix
from ..models.hd import GlobalGenerator
from ..models.registry import build_discriminator, build_generator, preset_options
from .config import DISCRIMINATORS, GENERATORS, TrainingConfig, default_gan_mode
from .errors import ConfigError

# SPADE's generator options that are training flags: {flag: constructor argument} (adopted from the model).
SPADE_OPTIONS = {
    "num_upsampling_layers": "num_upsampling_layers", "use_vae": "use_vae", "z_dim": "z_dim",
    "spade_hidden": "spade_hidden", "spectral_norm_G": "spectral_norm",
}  # fmt: skip
# Constructor arguments that vary within a preset (widths, channels, norm, dropout, init), so they do not tell
# presets apart; every other key (num_downs, n_blocks, n_layers, whole_image...) must match the preset's.
WITHIN_PRESET = {
    "in_channels", "out_channels", "ngf", "ndf", "norm", "dropout", "num_dropout", "dropout_offset", "init_type",
    "init_gain", *SPADE_OPTIONS.values(),
}  # fmt: skip


def load_base_model(source: str) -> Pix2Pix:
    """``Pix2Pix.from_pretrained(source)`` (Hub id or folder; safetensors only), its networks in train mode."""
    try:
        pix2pix = Pix2Pix.from_pretrained(source, backend="torch")
    except (OSError, ValueError) as error:
        raise ConfigError(f"--init_from {source}: {error}") from error
    for network in (pix2pix.generator, pix2pix.discriminator):
        if network is not None:
            network.train()  # from_pretrained gives eval mode, for inference
    return pix2pix


def base_model_name(source: str) -> str:
    """What the trained model records as its ``base_model``: a Hub id as given; a local folder by its name only,
    so no local path is published."""
    path = Path(source).expanduser()
    return path.resolve().name if path.is_dir() else source


def _shape(network: nn.Module) -> tuple[str, dict[str, Any]]:
    return type(network).__name__, {k: v for k, v in network.config.items() if k not in WITHIN_PRESET}


def generator_preset(generator: nn.Module) -> str | None:
    """The ``--netG`` preset whose networks have ``generator``'s shape (None when none has)."""
    wanted = _shape(generator)
    return next((name for name in GENERATORS if _shape(build_generator(name, ngf=1, norm="none")) == wanted), None)


def discriminator_preset(discriminator: nn.Module) -> str | None:
    """The first ``--netD`` preset (registry order) whose networks have ``discriminator``'s shape."""
    wanted = _shape(discriminator)
    depth, scales = discriminator.config.get("n_layers", 3), discriminator.config.get("num_D", 2)
    for name in DISCRIMINATORS:
        candidate = build_discriminator(name, ndf=1, norm="none", n_layers=depth, num_D=scales)
        if _shape(candidate) == wanted:
            return name
    return None


def starts_from_global(config: TrainingConfig, generator: nn.Module) -> bool:
    """Whether ``generator`` (``--init_from``'s) goes inside a new local enhancer: pix2pixHD's global-then-local
    recipe, ``--netG local`` from a trained ``GlobalGenerator``."""
    return config.netG == "local" and isinstance(generator, GlobalGenerator)


def input_of(pix2pix: Pix2Pix, config: TrainingConfig) -> dict[str, Any]:
    """``label_nc``/``instance`` of a label-map model (its ``pix2pix.json``); nothing when only ``config`` says the
    input is a label map (a model without that record); else ``input_nc`` of an image model."""
    info = pix2pix.info
    if info.label_nc:
        dontcare = bool(info.contain_dontcare_label)
        return {"label_nc": info.label_nc, "instance": bool(info.instance), "contain_dontcare_label": dontcare}
    return {} if config.label_nc else {"input_nc": pix2pix.generator.config["in_channels"]}


def architecture_of(pix2pix: Pix2Pix, source: str, config: TrainingConfig | None = None) -> dict[str, Any]:
    """The architecture fields of ``TrainingConfig`` that describe ``pix2pix``'s networks (D's only if it has one);
    ``config`` (the run's flags) tells a label-map input apart where the model does not record it."""
    generator, discriminator = pix2pix.generator, pix2pix.discriminator
    g = generator.config
    net_g = generator_preset(generator)
    if net_g is None:
        raise ConfigError(
            f"--init_from {source}: its generator ({type(generator).__name__} {g}) matches none of the --netG "
            f"presets ({', '.join(GENERATORS)}); this training loop fine-tunes those."
        )
    found = {"netG": net_g, "ngf": g["ngf"], "norm": g["norm"], **input_of(pix2pix, config or TrainingConfig())}
    found.update(output_nc=g["out_channels"], no_dropout=not g.get("dropout", 0))
    if net_g == "spade":
        found.update({flag: g[argument] for flag, argument in SPADE_OPTIONS.items()})
        found["no_spectral_norm_G"] = not g["spectral_norm"]
    if discriminator is not None:
        d = discriminator.config
        net_d = discriminator_preset(discriminator)
        if net_d is None or d["in_channels"] != g["in_channels"] + g["out_channels"]:
            raise ConfigError(
                f"--init_from {source}: its discriminator ({type(discriminator).__name__} {d}) is not a --netD "
                f"preset ({', '.join(DISCRIMINATORS)}) taking the generator's input and output "
                f"({g['in_channels']} + {g['out_channels']} channels)."
            )
        found.update(netD=net_d, ndf=d["ndf"])
        if d.get("norm", g["norm"]) != g["norm"]:
            found["norm_D"] = d["norm"]
        options = preset_options(net_d)  # the depth and scales are flags only where the preset takes them
        if "n_layers" in options:
            found["n_layers_D"] = d["n_layers"]
        if "num_D" in options:
            found["num_D"] = d["num_D"]
    return found


def local_around_global(found: dict[str, Any], source: str) -> dict[str, Any]:
    """``found`` (a global model's architecture) for the local enhancer that will hold it: ``--netG local`` with
    half the global ``ngf`` (pix2pixHD: ``--ngf 32`` around a global generator of 64)."""
    if found["ngf"] % 2:
        raise ConfigError(
            f"--init_from {source}: its global generator has ngf {found['ngf']}; a local enhancer holds a global "
            "generator of twice its own ngf, so it must be even."
        )
    return {**found, "netG": "local", "ngf": found["ngf"] // 2}


def adopt_architecture(config: TrainingConfig, pix2pix: Pix2Pix) -> TrainingConfig:
    """``config`` with the architecture of ``pix2pix`` (loaded from ``config.init_from``).

    Returns:
        A new config whose architecture flags are the model's (a ``--netG local`` run from a global model gets a
        local enhancer around it).

    Raises:
        ConfigError: naming every flag that was set (``config.given_fields()``) to another value than the model's.
    """
    source = str(config.init_from)
    found = architecture_of(pix2pix, source, config)
    if starts_from_global(config, pix2pix.generator):
        found = local_around_global(found, source)
    given = config.given_fields()
    conflicts = [
        f"--{name} {getattr(config, name)} (the model has {value})"
        for name, value in found.items()
        if name in given and getattr(config, name) != value
    ]
    if conflicts:
        raise ConfigError(
            f"--init_from {source} fixes the architecture (its config.json), but {'; '.join(conflicts)}. "
            "Drop those flags, or train from scratch without --init_from."
        )
    if "gan_mode" not in given:  # it follows the discriminator, as --netD does
        found["gan_mode"] = default_gan_mode(found.get("netD", config.netD))
    adopted = replace(config, **found)
    wanted = input_channels(adopted.input_nc, adopted.label_nc, adopted.instance, adopted.contain_dontcare_label)
    if wanted != pix2pix.generator.config["in_channels"]:
        raise ConfigError(
            f"--init_from {source}: its generator takes {pix2pix.generator.config['in_channels']} input channels, "
            f"but --label_nc {adopted.label_nc} {'with' if adopted.instance else 'without'} --instance makes {wanted}."
        )
    return adopted
