"""The one list of network names: presets (small registered functions, as timm's) and the classes behind them.

A preset is registered where it is defined (``@register_generator`` in unet.py, ...); training, the CLI, the
pipeline and the card read names, constructors and shape facts from here. Adding a network: write its class (a
``Generator`` or ``Discriminator`` from ``interface``), decorate it with ``@generator_class`` /
``@discriminator_class`` and its presets with ``@register_generator`` / ``@register_discriminator``; nothing else
lists them. A preset declares what it is by its signature: its return annotation names its class, and the keyword
parameters it names itself (``n_layers``, ``num_D``) are its options, which ``build_discriminator`` passes to it
alone.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from .interface import Discriminator, Generator

T = TypeVar("T")

GENERATOR_PRESETS: dict[str, Callable[..., Generator]] = {}
DISCRIMINATOR_PRESETS: dict[str, Callable[..., Discriminator]] = {}
GENERATOR_CLASSES: dict[str, type[Generator]] = {}
DISCRIMINATOR_CLASSES: dict[str, type[Discriminator]] = {}
_PRESET_CLASSES: dict[Callable[..., Any], type] = {}


def _preset_class(preset: Callable[..., Any], base: type) -> type:
    """The class a preset's return annotation names; ``TypeError`` unless it is a ``base``."""
    returned = inspect.signature(preset, eval_str=True).return_annotation
    if not (isinstance(returned, type) and issubclass(returned, base)):
        raise TypeError(f"Preset {preset.__name__} must be annotated to return a {base.__name__} subclass.")
    return returned


def register_generator(preset: Callable[..., T] | None = None, *, name: str | None = None) -> Any:
    """Register a generator preset under its function name (``@register_generator`` on ``unet_256``) or under
    ``name`` (``@register_generator(name="global")``: the ``--netG`` value, when a function cannot carry it)."""

    def register(function: Callable[..., T]) -> Callable[..., T]:
        _PRESET_CLASSES[function] = _preset_class(function, Generator)
        GENERATOR_PRESETS[name or function.__name__] = function
        return function

    return register(preset) if preset is not None else register


def register_discriminator(name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Register a discriminator preset under ``name`` (the ``--netD`` value, e.g. ``basic``)."""

    def register(preset: Callable[..., T]) -> Callable[..., T]:
        _PRESET_CLASSES[preset] = _preset_class(preset, Discriminator)
        DISCRIMINATOR_PRESETS[name] = preset
        return preset

    return register


def generator_class(cls: type[T]) -> type[T]:
    """Register a generator class: ``Pix2Pix.from_pretrained`` rebuilds it from ``config.json``'s ``_class_name``."""
    if not issubclass(cls, Generator):
        raise TypeError(f"{cls.__name__} must subclass models.interface.Generator.")
    GENERATOR_CLASSES[cls.__name__] = cls
    return cls


def discriminator_class(cls: type[T]) -> type[T]:
    """Register a discriminator class, rebuilt from ``config.json``'s ``_class_name`` as the generators are."""
    if not issubclass(cls, Discriminator):
        raise TypeError(f"{cls.__name__} must subclass models.interface.Discriminator.")
    DISCRIMINATOR_CLASSES[cls.__name__] = cls
    return cls


def _preset(kind: str, presets: dict[str, Callable[..., Any]], name: str) -> Callable[..., Any]:
    if name not in presets:
        raise ValueError(f"Unknown {kind} preset {name!r}; choose one of {', '.join(presets)}.")
    return presets[name]


def generator_class_of(name: str) -> type[Generator]:
    """The class the generator preset ``name`` builds (from its return annotation: nothing is built)."""
    return _PRESET_CLASSES[_preset("generator", GENERATOR_PRESETS, name)]


def discriminator_class_of(name: str) -> type[Discriminator]:
    """The class the discriminator preset ``name`` builds, e.g. to read ``.multiscale`` without building one."""
    return _PRESET_CLASSES[_preset("discriminator", DISCRIMINATOR_PRESETS, name)]


def preset_options(name: str) -> tuple[str, ...]:
    """The keyword parameters the discriminator preset ``name`` names itself (``multiscale``: ``num_D``,
    ``n_layers``); the arguments common to all presets pass through its ``**kwargs``."""
    parameters = inspect.signature(_preset("discriminator", DISCRIMINATOR_PRESETS, name)).parameters.values()
    return tuple(p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


def build_generator(name: str, **kwargs: Any) -> Generator:
    """A generator preset by name (``unet_128``, ``unet_256``, ``resnet_6blocks``, ``resnet_9blocks``, ...)."""
    return _preset("generator", GENERATOR_PRESETS, name)(**kwargs)


def build_discriminator(name: str, **kwargs: Any) -> Discriminator:
    """A discriminator preset by name: ``basic`` (70x70), ``n_layers``, ``pixel``, ``image``, ``multiscale``.

    Args:
        name: The preset (the ``--netD`` value).
        **kwargs: Constructor arguments (``in_channels``, ``ndf``, ``norm``, ...), and any preset's options
            (``n_layers``, ``num_D``): an option another preset names but ``name`` does not is left out, so one
            call serves every preset (``--n_layers_D`` means nothing to ``basic``, whose depth is fixed).

    Returns:
        The network, freshly initialised (the same random draws as calling the preset directly).
    """
    preset = _preset("discriminator", DISCRIMINATOR_PRESETS, name)
    others = {option for other in DISCRIMINATOR_PRESETS for option in preset_options(other)}
    ignored = others - set(preset_options(name))
    return preset(**{key: value for key, value in kwargs.items() if key not in ignored})


@functools.cache
def tiny_generator(name: str) -> Generator:
    """A one-filter instance of the preset ``name`` (cached): its shape facts (``size_multiple``, ``min_size``)
    are those of the preset at any width."""
    return build_generator(name, ngf=1, norm="none")


@functools.cache
def tiny_discriminator(name: str, **options: int) -> Discriminator:
    """A one-filter instance of the preset ``name`` with ``options`` (``n_layers``, ``num_D``; cached): its shape
    facts (``n_layers``, ``min_size``, ``logit_sizes``) are those of the preset at any width."""
    return build_discriminator(name, ndf=1, norm="none", **options)


def generator_size_multiple(name: str) -> int:
    """Sides the preset ``name`` needs to divide (its class's rule, read from ``tiny_generator``)."""
    return int(tiny_generator(name).size_multiple)
