"""``pix2pix-hub translate MODEL INPUT OUTPUT`` (an image or a folder) or ``MODEL OUTPUT --dataset SOURCE``.

The plan (which files, where each output goes, what would collide) and the batched run are
``inference.batch``'s; this module parses and reports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..inference.batch import NoImagesFound, dataset_jobs, file_jobs, translate_jobs
from ..inference.pipeline import Pix2Pix
from .options import (
    DATASET_IS_INPUT,
    add_dataset_option,
    add_dataset_options,
    add_inference_options,
    add_model_argument,
    add_style_options,
    describe_style,
    open_dataset,
    open_model,
    positive_numbers,
    say_engine,
    style_options,
)
from .policy import EXIT_DATA, EXIT_OK, EXIT_USAGE, CommandError, add_command, reported_as, warn


def register(subparsers: Any) -> None:
    translate = add_command(
        subparsers,
        "translate",
        run,
        help="translate an image, a folder (recursively) or a dataset",
        description="Translate images. Outputs keep the inputs' relative names (dataset rows: 00000.png ...); "
        "unreadable inputs are skipped with a warning and counted at the end (exit status 1). An OUTPUT that "
        "would replace an input (the same file, or the input folder) is refused before anything is written.",
    )
    add_model_argument(translate)
    translate.add_argument("input", nargs="?", help="an image file or a folder searched recursively")
    translate.add_argument("output", help="output folder (or an output file name when INPUT is one image)")
    add_dataset_option(
        translate,
        "translate the input side of this dataset (Hub id or local folder) instead of INPUT; a bare --dataset "
        "after INPUT OUTPUT (the old spelling) reads INPUT as the dataset",
        legacy_switch=True,
    )
    translate.add_argument(
        "--ext",
        default=None,
        help="write outputs with this suffix (e.g. png) instead of the input's; inputs that would then share an "
        "output name (scan.jpg and scan.png) are refused, listed, before anything is written",
    )
    translate.add_argument(
        "--instance_maps",
        default=None,
        help="label-map models taking instance maps (pix2pixHD --instance): a folder of instance-id maps under the "
        "inputs' relative names (or, for one input, the map's file); without it the class boundaries serve",
    )
    add_inference_options(translate)
    add_style_options(translate)
    add_dataset_options(translate)
    translate.set_defaults(check=check)


def check(args: argparse.Namespace) -> str | None:
    """A usage problem of the flags together, or None."""
    if args.dataset is DATASET_IS_INPUT and args.input is None:
        return "a bare --dataset reads INPUT as a dataset, and INPUT is missing: use --dataset SOURCE OUTPUT."
    if isinstance(args.dataset, str) and args.input is not None:
        return f"give INPUT ({args.input}) or --dataset SOURCE ({args.dataset}), not both."
    if args.dataset is None and args.input is None:
        return "the following arguments are required: input (or --dataset SOURCE)."
    if args.instance_maps and args.dataset:
        return "--instance_maps reads files beside image inputs; a dataset's rows have no instance column here."
    return positive_numbers(args, "batch_size", "max_pixels")


def run(args: argparse.Namespace) -> int:
    pix2pix = open_model(args)
    say_engine(pix2pix, args)
    style = style_options(args, pix2pix)
    if describe_style(args, pix2pix) and not args.quiet:
        print(f"Style: {describe_style(args, pix2pix)}", file=sys.stderr)
    if args.dataset:
        source = args.input if args.dataset is DATASET_IS_INPUT else args.dataset
        plan = dataset_jobs(open_dataset(args, source), Path(args.output), ext=args.ext, source=source)
    elif Path(args.input).exists():
        instances = instance_maps(args, pix2pix)
        with reported_as(EXIT_USAGE, NoImagesFound):
            plan = file_jobs(
                Path(args.input), Path(args.output), ext=args.ext, max_pixels=pix2pix.max_pixels, instances=instances
            )
        if plan.ignored:
            print(f"Ignoring {plan.ignored} file(s) under {args.input} without an image suffix.", file=sys.stderr)
    else:
        raise CommandError(f"INPUT {args.input} does not exist. To read a dataset (Hub id or folder), use --dataset.")
    result = translate_jobs(
        pix2pix,
        plan,
        batch_size=args.batch_size,
        size_mode=args.size_mode,
        dropout_at_test=args.dropout_at_test,
        progress=not args.quiet,
        warn=warn,
        style=style,
    )
    print(f"Wrote {result.written} image(s) to {Path(args.output)}.", file=sys.stderr)
    if result.bad:
        print(f"error: {len(result.bad)} input(s) could not be translated (see the warnings above).", file=sys.stderr)
        return EXIT_DATA
    return EXIT_OK


def instance_maps(args: argparse.Namespace, pix2pix: Pix2Pix) -> Path | None:
    """``--instance_maps``, checked: an existing path, for a label-map model recorded with instance maps."""
    if args.instance_maps is None:
        return None
    if not (pix2pix.label_nc and pix2pix.info.instance):
        raise CommandError("--instance_maps is for label-map models that take instance maps; this one does not.")
    if not Path(args.instance_maps).exists():
        raise CommandError(f"--instance_maps {args.instance_maps} does not exist.")
    return Path(args.instance_maps)
