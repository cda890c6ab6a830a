"""Options several commands share, and opening what they name: a model (``MODEL``) and a dataset (``--dataset``).

A flag of the same name means the same thing, of the same type, in every command: ``--dataset SOURCE`` is a
dataset (Hub id, folder of pairs, save_to_disk folder, parquet file) wherever it appears; ``--push_to_hub`` is a
switch, with the repo in ``--hub_model_id``, as in training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from ..constants import BACKENDS, DIRECTIONS, PRECISIONS, SIZE_MODES
from ..data import load_pairs
from ..hub.ids import is_hub_id
from ..images.reading import DEFAULT_MAX_PIXELS, load_image
from ..inference.pipeline import Pix2Pix
from .policy import EXIT_DATA, CommandError

# The old spelling of `translate ... --dataset` and `export-onnx ... --dataset`: a bare switch saying that INPUT
# (or --calibration) is a dataset. Kept working: `--dataset SOURCE` is the spelling every command shares now.
DATASET_IS_INPUT = True


def add_model_argument(parser: argparse.ArgumentParser, device: bool = True) -> None:
    parser.add_argument("model", help="a folder written by save_pretrained() or a Hub repo id (user/name)")
    if device:
        parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps... (default: cuda if available)")


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch_size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument(
        "--size_mode",
        choices=SIZE_MODES,
        default=None,
        help="sides that are not multiples of the generator's size_multiple: reflect-pad and crop back (pad, the "
        "default) or resize and restore (resize)",
    )
    parser.add_argument(
        "--dropout_at_test",
        action="store_true",
        help="keep dropout on and use batch statistics, as the paper does at test time (outputs then vary)",
    )
    parser.add_argument(
        "--max_pixels", type=int, default=None, help=f"refuse larger images (default: {DEFAULT_MAX_PIXELS} pixels)"
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="auto (default): onnxruntime on a CPU (faster on most CPUs, see docs/performance.md; exported on first "
        "use), torch elsewhere; onnxruntime: insist on it; torch: plain eager torch",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="auto (default): the model's model.int8.onnx where this CPU has VNNI/AMX (else fp32, saying why); "
        "int8: insist on it; fp32: never int8",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_style_options(parser: argparse.ArgumentParser) -> None:
    """``--style PATH`` / ``--seed N``: the style of a SPADE model with a style encoder (``Pix2Pix.style_dim``)."""
    style = parser.add_mutually_exclusive_group()
    style.add_argument(
        "--style",
        default=None,
        metavar="PATH",
        help="SPADE models with a style encoder (--use_vae): render every output in this photo's style (the "
        "encoder's mean code); without --style or --seed the zero code (the prior's mean) is used",
    )
    style.add_argument(
        "--seed",
        type=int,
        default=None,
        help="SPADE models with a style encoder: a style code sampled from N(0, I) with this seed, the same for "
        "every output (the same seed gives the same outputs)",
    )


def style_options(args: argparse.Namespace, pix2pix: Pix2Pix) -> dict[str, Any]:
    """The call options ``--style``/``--seed`` ask for (``{}``: none, the zero code): the style photo read (within
    ``--max_pixels``) or the seed; a ``CommandError`` for a model that takes no style, or an unreadable photo."""
    if args.style is None and args.seed is None:
        return {}
    if not pix2pix.style_dim:
        flag = "--style" if args.style is not None else "--seed"
        raise CommandError(
            f"{flag} picks a style code, and this model ({type(pix2pix.generator).__name__}) takes none: only a "
            "SPADE model trained with a style encoder (--use_vae) does. Leave it out."
        )
    if args.seed is not None:
        return {"seed": args.seed}
    try:
        return {"style": load_image(Path(args.style), 3, pix2pix.max_pixels)}
    except (OSError, ValueError) as error:
        raise CommandError(f"--style: {error}", EXIT_DATA) from None


def describe_style(args: argparse.Namespace, pix2pix: Pix2Pix) -> str | None:
    """What style the outputs have, for reports: ``"style photo PATH"``, ``"seed N"``, ``"zero code"``; None for a
    model that takes no style."""
    if not pix2pix.style_dim:
        return None
    if args.style is not None:
        return f"style photo {args.style}"
    return f"seed {args.seed}" if args.seed is not None else "zero code"


def add_dataset_option(parser: Any, help: str, *, legacy_switch: bool = False, required: bool = False) -> None:
    """``--dataset SOURCE``; ``legacy_switch``: a bare ``--dataset`` (the old spelling) is accepted too."""
    if legacy_switch:
        parser.add_argument("--dataset", nargs="?", const=DATASET_IS_INPUT, default=None, metavar="SOURCE", help=help)
    else:
        parser.add_argument("--dataset", required=required, metavar="SOURCE", help=help)


def add_dataset_options(parser: Any, split: str = "test", direction: str | None = "AtoB") -> None:
    """How a ``--dataset`` is read: split, direction and column names."""
    direction_help = "which side is the input" + (f" (default {direction})" if direction else " (default: the model's)")
    parser.add_argument("--split", default=split, help=f"dataset split (default {split})")
    parser.add_argument("--direction", default=direction, choices=DIRECTIONS, help=direction_help)
    parser.add_argument("--column_a", default=None, help="dataset column of the A images (default imageA)")
    parser.add_argument("--column_b", default=None, help="dataset column of the B images (default imageB)")


def positive_numbers(args: argparse.Namespace, *names: str) -> str | None:
    """The first of ``names`` given as a number below 1, as a usage message; None when all are fine."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            return f"--{name} must be positive; got {value}."
    return None


def open_model(args: argparse.Namespace) -> Pix2Pix:
    """``Pix2Pix.from_pretrained`` with the command's options; any failure becomes a one-line ``CommandError``."""
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError(f"--device {device}: CUDA is not available on this machine; use --device cpu.")
    options: dict[str, Any] = {"batch_size": getattr(args, "batch_size", 8)}
    if getattr(args, "max_pixels", None):
        options["max_pixels"] = args.max_pixels
    for name in ("size_mode", "backend", "precision"):
        if getattr(args, name, None):
            options[name] = getattr(args, name)
    model = str(args.model)
    if not Path(model).exists() and not is_hub_id(model):
        raise CommandError(f"Model folder {model} does not exist (and it is not a Hub repo id like user/name).")
    try:
        return Pix2Pix.from_pretrained(model, device=device, load_discriminator=False, **options)
    except Exception as error:  # folder without weights, unknown repo, offline cache miss, bad config...
        raise CommandError(f"Cannot load model {args.model}: {error}") from None


def say_engine(pix2pix: Pix2Pix, args: argparse.Namespace) -> None:
    """One line on stderr: what the generator runs on (with int8, its PSNR from fp32), and why not int8 if a
    shipped int8 graph is not used."""
    if not args.quiet:
        note = f" ({pix2pix.precision_note})" if pix2pix.precision_note else ""
        print(f"Engine: {pix2pix.engine}{note}", file=sys.stderr)


def open_dataset(args: argparse.Namespace, source: str, column_instance: str | None = None) -> Any:
    """``pix2pix_hub.data.load_pairs`` with the command's split, direction and column options (and
    ``column_instance``, the instance maps' column, when given); a failure is a usage error (the flags)."""
    try:
        import datasets  # here, not at the top: `--help` and file translation do not need it
    except ImportError as error:
        raise CommandError(f"Reading datasets needs `datasets` (pip install 'pix2pix-hub[eval]'): {error}") from None
    if args.quiet:
        datasets.disable_progress_bars()
    options = {"split": args.split, "direction": args.direction}
    options.update({key: getattr(args, key) for key in ("column_a", "column_b") if getattr(args, key)})
    if column_instance:
        options["column_instance"] = column_instance
    try:
        return load_pairs(source, **options)
    except Exception as error:  # any loading failure is fatal for the command; show it without a traceback
        raise CommandError(f"Cannot load dataset {source} (split {args.split}): {error}") from None


def add_push_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--push_to_hub`` (a switch) and ``--hub_model_id USER/NAME``, as training spells them; the old
    ``--push_to_hub USER/NAME`` keeps working."""
    parser.add_argument(
        "--push_to_hub",
        nargs="?",
        const=True,
        default=False,
        metavar="USER/NAME",
        help=f"also upload {what} to --hub_model_id (the old spelling --push_to_hub USER/NAME works too)",
    )
    parser.add_argument("--hub_model_id", default=None, metavar="USER/NAME", help="the Hub repo it is for")


def push_problem(args: argparse.Namespace) -> str | None:
    """The usage problem of ``--push_to_hub``/``--hub_model_id`` together, or None."""
    if isinstance(args.push_to_hub, str) and args.hub_model_id not in (None, args.push_to_hub):
        return f"--push_to_hub {args.push_to_hub} and --hub_model_id {args.hub_model_id} name different repos."
    if args.push_to_hub is True and not args.hub_model_id:
        return "--push_to_hub needs --hub_model_id user/name."
    return None


def hub_repo(args: argparse.Namespace) -> str | None:
    """The Hub repo the command's output is for (``--hub_model_id``, or the old ``--push_to_hub USER/NAME``)."""
    return args.push_to_hub if isinstance(args.push_to_hub, str) else args.hub_model_id
