"""``pix2pix-hub evaluate MODEL --dataset SOURCE``: L1, PSNR, SSIM (and FID) on paired data, with a results page.

The metrics, the page and the skipped rows are ``inference.evaluation``'s; this module parses and reports.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..fileio import check_output_apart
from ..inference.evaluation import FID_WEIGHTS_NAME, FidUnavailable, evaluate, fid_metric
from ..inference.pipeline import Pix2Pix
from .options import (
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
from .policy import EXIT_DATA, EXIT_OK, CommandError, add_command, warn


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "evaluate",
        run,
        help="L1, PSNR, SSIM (and FID) on paired data, with an HTML results page",
        description="Translate each pair's input, compare with its target and write metrics.json, index.html "
        "(input | output | target rows), grid.png and images/ into --output_dir; the metrics JSON is printed.",
    )
    add_model_argument(parser)
    add_dataset_option(parser, "paired dataset: Hub id or local folder/files", required=True)
    parser.add_argument("--output_dir", default="evaluation", help="where results go (default ./evaluation)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N pairs")
    parser.add_argument("--grid_rows", type=int, default=8, help="rows in grid.png (default 8)")
    parser.add_argument(
        "--inception_weights",
        default=None,
        help=f"local {FID_WEIGHTS_NAME} for FID (needs torch-fidelity); without it FID is skipped",
    )
    add_inference_options(parser)
    add_style_options(parser)
    add_dataset_options(parser)
    parser.add_argument(
        "--column_instance",
        default=None,
        help="label-map models taking instance maps (pix2pixHD --instance): the dataset column of the instance maps "
        "(default instance: an I/ folder beside A/ and B/)",
    )
    parser.set_defaults(check=check)


def check(args: argparse.Namespace) -> str | None:
    if args.grid_rows < 0:
        return f"--grid_rows must be positive; got {args.grid_rows}."
    return positive_numbers(args, "batch_size", "max_pixels", "limit")


def run(args: argparse.Namespace) -> int:
    # Results are written into --output_dir: never into (or around) the data or the model being evaluated.
    local_inputs = {"--dataset": args.dataset, "MODEL": args.model}
    check_output_apart(
        args.output_dir, {name: path for name, path in local_inputs.items() if Path(path).exists()}, what="--output_dir"
    )
    pix2pix = open_model(args)
    say_engine(pix2pix, args)
    style = style_options(args, pix2pix)
    fid, fid_note = None, None
    try:
        fid = fid_metric(args.inception_weights)
    except FidUnavailable as error:
        if args.inception_weights:  # asked for and not possible: that is an error, not a note
            raise CommandError(str(error)) from None
        fid_note = str(error)
    report = evaluate(
        pix2pix,
        open_dataset(args, args.dataset, evaluated_instances(args, pix2pix)),
        args.output_dir,
        size_mode=args.size_mode,
        dropout_at_test=args.dropout_at_test,
        batch_size=args.batch_size,
        grid_rows=args.grid_rows,
        limit=args.limit,
        fid=fid,
        fid_note=fid_note,
        progress=not args.quiet,
        info={
            "model": str(args.model),
            "dataset": args.dataset,
            "split": args.split,
            "direction": args.direction,
            "engine": pix2pix.engine,
            **({"style": describe_style(args, pix2pix)} if pix2pix.style_dim else {}),
        },
        style=style,
    )
    print(json.dumps(report, indent=2))
    if report["fid_note"]:
        print(report["fid_note"], file=sys.stderr)
    print(f"Results page: {Path(args.output_dir) / 'index.html'}", file=sys.stderr)
    for item in report["skipped"]:
        warn(f"skipped row {item['index']}: {item['reason']}")
    if report["skipped"]:
        print(f"error: {len(report['skipped'])} row(s) could not be evaluated.", file=sys.stderr)
        return EXIT_DATA
    return EXIT_OK


def evaluated_instances(args: argparse.Namespace, pix2pix: Pix2Pix) -> str | None:
    """The dataset column of the instance maps a label-map model taking them reads (``--column_instance``,
    default ``instance``: an I/ folder beside A/ and B/); None for other models, which may not be given one."""
    if pix2pix.label_nc and pix2pix.info.instance:
        return args.column_instance or "instance"
    if args.column_instance:
        raise CommandError("--column_instance is for label-map models that take instance maps; this one does not.")
    return None
