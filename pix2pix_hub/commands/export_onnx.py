"""``pix2pix-hub export-onnx MODEL OUT.onnx``: the generator as ONNX, checked against torch; with ``--int8``, the
static int8 graph calibrated on ``--calibration DIR`` or ``--dataset SOURCE`` and refused below its quality gate.

The export and its parity check are ``inference.export``'s; quantization is ``Pix2Pix.quantize``'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..inference.batch import dataset_calibration_images
from ..inference.calibration import DEFAULT_NUM_CALIBRATION
from ..inference.export import (
    DEFAULT_OPSET,
    DEFAULT_TOLERANCE,
    check_export_target,
    check_graph_name,
    export_onnx,
)
from ..inference.pipeline import Pix2Pix
from ..inference.quantize import DEFAULT_MIN_PSNR_DB
from .options import (
    DATASET_IS_INPUT,
    add_dataset_option,
    add_dataset_options,
    add_model_argument,
    open_dataset,
    open_model,
)
from .policy import EXIT_DATA, EXIT_OK, EXIT_USAGE, CommandError, add_command, reported_as


def register(subparsers: Any) -> None:
    export = add_command(
        subparsers,
        "export-onnx",
        run,
        help="export the generator to ONNX (dynamic batch and size) and check it against torch",
        description="Export the generator; input 'input' (N, C, H, W) in [-1, 1] with H and W multiples of the "
        "generator's size_multiple (in the file's metadata). The parity check runs onnxruntime on random inputs.",
    )
    add_model_argument(export, device=False)
    export.add_argument("output", help="the .onnx file to write")
    export.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    export.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"largest accepted |onnx - torch| (default {DEFAULT_TOLERANCE:g})",
    )
    export.add_argument("--no_check", action="store_true", help="skip the onnxruntime parity check")
    add_int8_options(export)
    export.set_defaults(check=check)


def add_int8_options(export: argparse.ArgumentParser) -> None:
    int8 = export.add_argument_group("int8 (static quantization, checked against fp32)")
    int8.add_argument(
        "--int8",
        action="store_true",
        help="write the int8 graph instead (sub-pixel transposed convs, uint8 activations, int8 weights), calibrated "
        "on --calibration or --dataset; refused (exit 1, nothing written) when below --min_psnr from the fp32 outputs",
    )
    int8.add_argument("--calibration", default=None, metavar="DIR", help="a folder of typical input images")
    add_dataset_option(
        int8,
        "calibrate on the input side of this dataset (Hub id or folder of pairs) instead; a bare --dataset (the "
        "old spelling) reads --calibration as the dataset",
        legacy_switch=True,
    )
    int8.add_argument(
        "--num_calibration",
        type=int,
        default=DEFAULT_NUM_CALIBRATION,
        help=f"calibration inputs, spread over the source; a quarter is held back for the gate (default "
        f"{DEFAULT_NUM_CALIBRATION})",
    )
    int8.add_argument(
        "--min_psnr",
        type=float,
        default=DEFAULT_MIN_PSNR_DB,
        help=f"quality gate: PSNR (dB) of the int8 outputs from the fp32 outputs (default {DEFAULT_MIN_PSNR_DB:g})",
    )
    add_dataset_options(int8, split="train", direction=None)
    int8.add_argument("--quiet", action="store_true", help="no progress bars")


def check(args: argparse.Namespace) -> str | None:
    named_dataset = isinstance(args.dataset, str)
    if not args.int8 and (args.calibration or named_dataset):
        flag = "--calibration" if args.calibration else "--dataset"
        return f"{flag} is read by --int8 only; add --int8 to write the int8 graph."
    if args.int8 and not (args.calibration or named_dataset):
        return "--int8 needs --calibration DIR or --dataset SOURCE: typical input images to calibrate on."
    if args.calibration and named_dataset:
        return "calibrate on --calibration DIR or on --dataset SOURCE, not both."
    if args.dataset is DATASET_IS_INPUT and not args.calibration:
        return "a bare --dataset reads --calibration as a dataset, and --calibration is missing: use --dataset SOURCE."
    if args.int8 and args.num_calibration < 2:
        return f"--num_calibration must be at least 2 (calibration and its gate); got {args.num_calibration}."
    return None


def run(args: argparse.Namespace) -> int:
    # fp32: a shipped int8 graph is not what is exported; torch: no onnxruntime session is opened, so quantizing
    # times nothing here (a graph is timed where it runs, by precision="auto").
    args.device, args.precision, args.backend = "cpu", "fp32", "torch"
    with reported_as(EXIT_USAGE, ValueError):
        check_export_target(args.output, args.model)
        check_graph_name(args.output, "int8" if args.int8 else "fp32")
    pix2pix = open_model(args)
    if args.int8:
        return run_int8(args, pix2pix)
    report = export_onnx(
        pix2pix.generator, args.output, opset=args.opset, check=not args.no_check, tolerance=args.tolerance
    )
    print(json.dumps(report, indent=2))
    if "style_dim" in report:
        print(
            f"Inputs: input (N, {pix2pix.in_channels}, H, W) and the style code z (N, {report['style_dim']}); "
            "zeros are the default style.",
            file=sys.stderr,
        )
    if "max_abs_diff" in report:
        print(
            f"Parity with torch: max abs diff {report['max_abs_diff']:.3g} (tolerance {report['tolerance']:g}).",
            file=sys.stderr,
        )
    return EXIT_OK


def run_int8(args: argparse.Namespace, pix2pix: Pix2Pix) -> int:
    """``export-onnx --int8``: calibrate, write the int8 graph unless it fails the gate (a data error)."""
    source = calibration_source(args, pix2pix)
    with reported_as(EXIT_DATA, ValueError):  # too few usable calibration images
        report = pix2pix.quantize(
            source, path=args.output, num_calibration=args.num_calibration, min_psnr_db=args.min_psnr
        )
    print(json.dumps(report, indent=2))
    print(
        f"int8: {report['psnr_db']:.1f} dB PSNR from the fp32 outputs on the worst of {report['held_out_inputs']} "
        f"held-out inputs (gate {report['min_psnr_db']:g} dB); {report['bytes'] / 1e6:.1f} MB.",
        file=sys.stderr,
    )
    return EXIT_OK


def calibration_source(args: argparse.Namespace, pix2pix: Pix2Pix) -> Any:
    """What ``Pix2Pix.quantize`` calibrates on: the ``--calibration`` folder as it is, or the input side of a
    dataset's pairs (``--direction`` defaults to the model's own)."""
    if not args.dataset:
        if not Path(args.calibration).is_dir():
            raise CommandError(
                f"--calibration {args.calibration} is not a folder of input images. To calibrate on a dataset (Hub "
                "id or a folder of pairs), use --dataset SOURCE."
            )
        return args.calibration
    args.direction = args.direction or pix2pix.direction
    if args.direction is None:
        raise CommandError("The model does not record its direction: pass --direction AtoB or BtoA.")
    pairs = open_dataset(args, args.calibration if args.dataset is DATASET_IS_INPUT else args.dataset)
    channels = None if pix2pix.label_nc else pix2pix.in_channels  # class-index maps are read as stored
    return dataset_calibration_images(pairs, args.num_calibration, channels, pix2pix.max_pixels)
