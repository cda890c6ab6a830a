"""The one list of network names: presets (small registered functions, as timm's) and the classes behind them.

A preset is registered where it is defined (``@register_generator`` in unet.py, ...); training, the CLI, the
pipeline and the card read names, constructors and size multiples from here. Adding a network: write its class
(a ``HubModel``), decorate the class with ``@generator_class`` / ``@discriminator_class`` and its presets with
``@register_generator`` / ``@register_discriminator``; nothing else lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

T = TypeVar("T")

GENERATOR_PRESETS: dict[str, Callable[..., nn.Module]] = {}
DISCRIMINATOR_PRESETS: dict[str, Callable[..., nn.Module]] = {}
GENERATOR_CLASSES: dict[str, type] = {}
DISCRIMINATOR_CLASSES: dict[str, type] = {}


def register_generator(preset: Callable[..., T] | None = None, *, name: str | None = None) -> Any:
    """Register a generator preset under its function name (``@register_generator`` on ``unet_256``) or under
    ``name`` (``@register_generator(name="global")``: the ``--netG`` value, when a function cannot carry it)."""

    def register(function: Callable[..., T]) -> Callable[..., T]:
        GENERATOR_PRESETS[name or function.__name__] = function
        return function

    return register(preset) if preset is not None else register


def register_discriminator(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Register a discriminator preset under ``name`` (the ``--netD`` value, e.g. ``basic``)."""

    def register(preset: Callable[..., T]) -> Callable[..., T]:
        DISCRIMINATOR_PRESETS[name] = preset
        return preset

    return register


def generator_class(cls: type[T]) -> type[T]:
    """Register a generator class: ``Pix2Pix.from_pretrained`` rebuilds it from ``config.json``'s ``_class_name``."""
    GENERATOR_CLASSES[cls.__name__] = cls
    return cls


def discriminator_class(cls: type[T]) -> type[T]:
    DISCRIMINATOR_CLASSES[cls.__name__] = cls
    return cls


def _build(kind: str, presets: dict[str, Callable[..., Any]], name: str, kwargs: dict[str, Any]) -> Any:
    if name not in presets:
        raise ValueError(f"Unknown {kind} preset {name!r}; choose one of {', '.join(presets)}.")
    return presets[name](**kwargs)


def build_generator(name: str, **kwargs: Any) -> nn.Module:
    """A generator preset by name (``unet_128``, ``unet_256``, ``resnet_6blocks``, ``resnet_9blocks``)."""
    return _build("generator", GENERATOR_PRESETS, name, kwargs)


def build_discriminator(name: str, **kwargs: Any) -> nn.Module:
    """A discriminator preset by name: ``basic`` (70x70), ``n_layers`` (``n_layers=``), ``pixel``, ``image``."""
    return _build("discriminator", DISCRIMINATOR_PRESETS, name, kwargs)


@functools.cache
def generator_size_multiple(name: str) -> int:
    """Sides the preset ``name`` needs to divide, read from a one-filter instance (the class is the only home)."""
    return int(build_generator(name, ngf=1, norm="none").size_multiple)


@functools.cache
def discriminator_depth(name: str, n_layers: int = 3) -> int:
    """``n_layers`` of the preset ``name`` (``n_layers`` is used only by the ``n_layers`` preset)."""
    extra = discriminator_extra_args(name, n_layers)
    return int(build_discriminator(name, ndf=1, norm="none", **extra).n_layers)


def discriminator_extra_args(name: str, n_layers: int, num_D: int = 2) -> dict[str, Any]:
    """Arguments a preset takes beyond the common ones: ``n_layers`` takes its depth, ``multiscale`` its depth and
    number of scales."""
    if name == "multiscale":
        return {"n_layers": n_layers, "num_D": num_D}
    return {"n_layers": n_layers} if name == "n_layers" else {}
