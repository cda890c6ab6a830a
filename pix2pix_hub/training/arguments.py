"""The training command line, generated from ``TrainingConfig``'s fields, the ``--quick`` preset and the papers'
recipes (``--preset spade``, ``training.presets``)::

    parser = add_arguments(argparse.ArgumentParser())                          # one --name per field
    config = config_from_args(["--quick", "--dataset", "facades/train"], parser)  # a checked TrainingConfig
    config = preset_config("spade", dataset="facades/train", use_vae=True)       # the same from Python

Booleans are switches, defaults are the dataclass's, and flags given explicitly win over ``--quick``'s and
``--preset``'s (a preset's values win over ``--quick``'s). The config records which flags were typed
(``TrainingConfig.given_fields``), so one given at its default value still counts as given (``--init_from``
refuses it when the model differs).
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, get_args, get_type_hints

from .config import TrainingConfig
from .presets import preset_values


def quick_overrides() -> dict[str, Any]:
    """``--quick``: a small unet_128 at 128x128 on facades (labels -> photo) that finishes in minutes on a CPU.

    It does not choose the data: ``--dataset`` does (``make demo`` passes the local facades pairs).
    """
    return {
        "direction": "BtoA",
        "netG": "unet_128",
        "ngf": 32,
        "ndf": 32,
        "load_size": 143,
        "crop_size": 128,
        "max_train_steps": 400,  # about one epoch of the 392 training pairs
        "val_size": 8,
        "validation_steps": 100,
        "checkpointing_steps": 200,
        "checkpoints_total_limit": 1,
        "logging_steps": 10,
        "dataloader_num_workers": 0,  # decoding a pair is cheap next to a CPU step: a worker would only compete
        "output_dir": "outputs/facades-quick",
        "overwrite_output_dir": True,  # the demo is meant to be run again and again
    }


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; plain types unchanged."""
    args = [arg for arg in get_args(annotation) if arg is not type(None)]
    return args[0] if args else annotation


def _number(text: str) -> float:
    """``--val_size``: ``16`` is a count, ``0.1`` a fraction."""
    value = float(text)
    return int(value) if value >= 1 and value == int(value) else value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """One ``--name`` per ``TrainingConfig`` field; booleans are switches; defaults are the dataclass's."""
    hints = get_type_hints(TrainingConfig)
    for f in fields(TrainingConfig):
        kind = _base_type(hints[f.name])
        help_text = f.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(f"--{f.name}", action="store_true", help=help_text)
            continue
        convert = _number if f.name == "val_size" else kind
        default_note = " (default: %(default)s)"
        parser.add_argument(
            f"--{f.name}",
            type=convert,
            default=f.default,
            choices=f.metadata.get("choices"),
            metavar=None if f.metadata.get("choices") else f.name.upper(),
            help=help_text + default_note,
        )
    return parser


_UNSET = object()  # a default no command line can produce: what a flag that was not typed parses to


def typed_fields(parser: argparse.ArgumentParser, argv: list[str] | None) -> frozenset[str]:
    """The ``TrainingConfig`` fields whose flags appear in ``argv`` (in any form argparse accepts: ``--ngf 64``,
    ``--ngf=64``, an abbreviation), told apart from unset ones by parsing once with a sentinel default."""
    names = [f.name for f in fields(TrainingConfig)]
    defaults = {name: parser.get_default(name) for name in names}
    parser.set_defaults(**dict.fromkeys(names, _UNSET))
    try:
        args = parser.parse_args(argv)
    finally:
        parser.set_defaults(**defaults)
    return frozenset(name for name in names if getattr(args, name) is not _UNSET)


def training_parser() -> argparse.ArgumentParser:
    """The command line: one ``--name`` per ``TrainingConfig`` field (entry points may add their own flags)."""
    return add_arguments(argparse.ArgumentParser(description="Train pix2pix (run under `accelerate launch`)."))


def config_from_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> TrainingConfig:
    """Parse a command line into a checked ``TrainingConfig``; ``--quick`` swaps in ``quick_overrides`` defaults.

    Args:
        argv: The arguments (None: ``sys.argv[1:]``). Flags given explicitly always win over ``--quick`` and
            ``--preset``.
        parser: ``training_parser()`` when None; an entry point's own may hold flags of its own, which are not part
            of the config.

    Returns:
        The config, checked (``TrainingConfig.check``: a ``ConfigError`` names the flags to change), recording the
        flags that were typed (``TrainingConfig.given_fields``).
    """
    parser = training_parser() if parser is None else parser
    args = parser.parse_args(argv)  # first: --help shows the real defaults, and a usage error exits here
    given = typed_fields(parser, argv)
    if args.quick:
        parser.set_defaults(**quick_overrides())
        args = parser.parse_args(argv)
    if args.preset:
        parser.set_defaults(**preset_values(args.preset, args.vgg_weights))
        args = parser.parse_args(argv)
    config = TrainingConfig(**{f.name: getattr(args, f.name) for f in fields(TrainingConfig)})
    config.mark_given(given)
    config.check()
    return config


def preset_config(name: str, **values: Any) -> TrainingConfig:
    """``--preset name`` from Python: the recipe's values (``presets.preset_values``), then ``values``, which win;
    checked, recording ``values`` (and ``preset``) as the fields given.

    Args:
        name: the preset (``spade``).
        **values: any other ``TrainingConfig`` fields.

    Returns:
        The checked config.
    """
    config = TrainingConfig(**{**preset_values(name, values.get("vgg_weights")), **values, "preset": name})
    config.mark_given({*values, "preset"})
    config.check()
    return config
