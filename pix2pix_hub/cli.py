"""``pix2pix-hub``: translate images, evaluate on paired data, export to ONNX.

    pix2pix-hub translate MODEL INPUT OUTPUT        an image, a folder (recursively) or --dataset SOURCE
    pix2pix-hub evaluate MODEL --dataset SOURCE --split test --output_dir DIR
    pix2pix-hub export-onnx MODEL out.onnx          (--int8 --calibration DIR: static int8, quality-gated)
    pix2pix-hub convert latest_net_G.pth OUT     the authors' checkpoint as a model folder (or --push_to_hub)

MODEL is a folder written by ``save_pretrained`` or a Hub repo id. Exit status: 0 when every input was
translated, 1 when some inputs were skipped (the good ones are still written; the count is printed last), a check
failed or the data could not be read or written, 2 for a usage error (an OUTPUT that would replace an input, say)
or a model that cannot be loaded. Errors are one line; ``--debug`` (or ``PIX2PIX_DEBUG=1``) shows the traceback.

Argument parsing and calls only: the work is done by ``inference``, ``evaluation`` and ``export``. ``datasets`` is
imported by the commands that read one, so ``--help`` costs no more than ``import pix2pix_hub`` (torch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from .constants import BACKENDS, DIRECTIONS, NORMS, PRECISIONS, SIZE_MODES
from .data import load_pairs
from .data.prepare import add_dataset_parser
from .hub.authors import AuthorsCheckpointError, convert_authors_checkpoint
from .hub.space_build import add_space_parser
from .inference.batch import (
    NoImagesFound,
    OutputConflict,
    dataset_calibration_images,
    dataset_jobs,
    file_jobs,
    translate_jobs,
)
from .inference.calibration import DEFAULT_NUM_CALIBRATION
from .inference.evaluation import FID_WEIGHTS_NAME, FidUnavailable, evaluate, fid_metric
from .inference.export import DEFAULT_OPSET, DEFAULT_TOLERANCE, ParityError, check_export_target, export_onnx
from .inference.pipeline import Pix2Pix
from .inference.quantize import DEFAULT_MIN_PSNR_DB, QuantizationQualityError

EXIT_OK, EXIT_BAD_INPUTS, EXIT_USAGE = 0, 1, 2
DEBUG_ENV = "PIX2PIX_DEBUG"  # set to 1: errors propagate with their traceback, as --debug does


class CommandError(Exception):
    """A fatal error for the whole command (usage or model); printed without a traceback, exit status 2."""


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ----- translate ----------------------------------------------------------------------------------------------
def translate_command(args: argparse.Namespace) -> int:
    pix2pix = open_model(args)
    say_engine(pix2pix, args)
    if args.dataset:
        plan = dataset_jobs(open_dataset(args, args.input), Path(args.output), ext=args.ext, source=args.input)
    elif Path(args.input).exists():
        instances = instance_maps(args, pix2pix)
        try:
            plan = file_jobs(
                Path(args.input), Path(args.output), ext=args.ext, max_pixels=pix2pix.max_pixels, instances=instances
            )
        except NoImagesFound as error:
            raise CommandError(str(error)) from None
        if plan.ignored:
            print(f"Ignoring {plan.ignored} file(s) under {args.input} without an image suffix.", file=sys.stderr)
    else:
        raise CommandError(f"INPUT {args.input} does not exist. To read a dataset (Hub id or folder), add --dataset.")
    result = translate_jobs(
        pix2pix,
        plan,
        batch_size=args.batch_size,
        size_mode=args.size_mode,
        dropout_at_test=args.dropout_at_test,
        progress=not args.quiet,
        warn=warn,
    )
    print(f"Wrote {result.written} image(s) to {Path(args.output)}.", file=sys.stderr)
    if result.bad:
        print(f"error: {len(result.bad)} input(s) could not be translated (see the warnings above).", file=sys.stderr)
        return EXIT_BAD_INPUTS
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


# ----- evaluate -----------------------------------------------------------------------------------------------
def evaluate_command(args: argparse.Namespace) -> int:
    pix2pix = open_model(args)
    say_engine(pix2pix, args)
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
        },
    )
    print(json.dumps(report, indent=2))
    if report["fid_note"]:
        print(report["fid_note"], file=sys.stderr)
    print(f"Results page: {Path(args.output_dir) / 'index.html'}", file=sys.stderr)
    for item in report["skipped"]:
        warn(f"skipped row {item['index']}: {item['reason']}")
    if report["skipped"]:
        print(f"error: {len(report['skipped'])} row(s) could not be evaluated.", file=sys.stderr)
        return EXIT_BAD_INPUTS
    return EXIT_OK


def evaluated_instances(args: argparse.Namespace, pix2pix: Pix2Pix) -> str | None:
    """The dataset column of the instance maps a label-map model taking them reads (``--column_instance``,
    default ``instance``: an I/ folder beside A/ and B/); None for other models, which may not be given one."""
    if pix2pix.label_nc and pix2pix.info.instance:
        return args.column_instance or "instance"
    if args.column_instance:
        raise CommandError("--column_instance is for label-map models that take instance maps; this one does not.")
    return None


# ----- export-onnx --------------------------------------------------------------------------------------------
def export_command(args: argparse.Namespace) -> int:
    args.device, args.precision = "cpu", "fp32"  # fp32: a shipped int8 graph is not what is exported
    try:
        check_export_target(args.output, args.model)
    except ValueError as error:
        raise CommandError(str(error)) from None
    pix2pix = open_model(args)
    if args.int8:
        return export_int8_command(args, pix2pix)
    try:
        report = export_onnx(
            pix2pix.generator, args.output, opset=args.opset, check=not args.no_check, tolerance=args.tolerance
        )
    except ParityError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUTS
    print(json.dumps(report, indent=2))
    if "max_abs_diff" in report:
        print(
            f"Parity with torch: max abs diff {report['max_abs_diff']:.3g} (tolerance {report['tolerance']:g}).",
            file=sys.stderr,
        )
    return EXIT_OK


def export_int8_command(args: argparse.Namespace, pix2pix: Pix2Pix) -> int:
    """``export-onnx --int8``: calibrate on ``--calibration``, write the int8 graph unless it fails the gate."""
    try:
        report = pix2pix.quantize(
            calibration_source(args, pix2pix),
            path=args.output,
            num_calibration=args.num_calibration,
            min_psnr_db=args.min_psnr,
        )
    except (QuantizationQualityError, ValueError) as error:  # the gate, or too few usable calibration images
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_BAD_INPUTS
    print(json.dumps(report, indent=2))
    print(
        f"int8: {report['psnr_db']:.1f} dB PSNR from the fp32 outputs on the worst of {report['held_out_inputs']} "
        f"held-out inputs (gate {report['min_psnr_db']:g} dB); {report['bytes'] / 1e6:.1f} MB.",
        file=sys.stderr,
    )
    return EXIT_OK


def calibration_source(args: argparse.Namespace, pix2pix: Pix2Pix) -> Any:
    """``--calibration`` as ``Pix2Pix.quantize`` takes it: a folder of input images as it is, or with
    ``--dataset`` the input side of a dataset's pairs (``--direction`` defaults to the model's own)."""
    if not args.dataset:
        if not Path(args.calibration).is_dir():
            raise CommandError(
                f"--calibration {args.calibration} is not a folder of input images. To read a dataset (Hub id or a "
                "folder of pairs), add --dataset."
            )
        return args.calibration
    args.direction = args.direction or pix2pix.direction
    if args.direction is None:
        raise CommandError("The model does not record its direction: pass --direction AtoB or BtoA.")
    pairs = open_dataset(args, args.calibration)
    return dataset_calibration_images(pairs, args.num_calibration, pix2pix.in_channels, pix2pix.max_pixels)


# ----- convert ------------------------------------------------------------------------------------------------
CONVERT_FLAGS = ("netG", "ngf", "norm", "input_nc", "output_nc", "no_dropout", "netD", "n_layers_D", "ndf")


def convert_command(args: argparse.Namespace) -> int:
    flags = {name: getattr(args, name) for name in CONVERT_FLAGS if getattr(args, name) is not None}
    if Path(args.output).exists() and any(Path(args.output).iterdir()) and not args.overwrite:
        raise CommandError(f"OUT {args.output} exists and is not empty; choose another folder or pass --overwrite.")
    try:
        folder = convert_authors_checkpoint(
            args.source,
            args.output,
            direction=args.direction,
            discriminator_path=args.discriminator,
            base_model=args.base_model,
            repo_id=args.push_to_hub,
            **flags,
        )
    except (AuthorsCheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUTS
    print(f"Wrote {folder} (load it with Pix2Pix.from_pretrained({str(folder)!r})).", file=sys.stderr)
    if args.push_to_hub:
        pix2pix = Pix2Pix.from_pretrained(folder, backend="torch")
        url = pix2pix.push_to_hub(args.push_to_hub, card=(folder / "README.md").read_text(encoding="utf-8"))
        print(f"Pushed to the Hub: {url}", file=sys.stderr)
    return EXIT_OK


# ----- shared -------------------------------------------------------------------------------------------------
def open_model(args: argparse.Namespace) -> Pix2Pix:
    """``Pix2Pix.from_pretrained`` with the command's options; any failure becomes a one-line CommandError."""
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
    if not Path(model).is_dir() and (model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model):
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
    ``column_instance``, the instance maps' column, when given)."""
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


def add_debug_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of an error (also: {DEBUG_ENV}=1)")


def add_model_options(parser: argparse.ArgumentParser, device: bool = True) -> None:
    add_debug_option(parser)
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
        "--max_pixels", type=int, default=None, help="refuse larger images (default: the pipeline's 4096*4096)"
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


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default="test", help="dataset split (default test)")
    parser.add_argument("--direction", default="AtoB", choices=DIRECTIONS, help="which side is the input")
    parser.add_argument("--column_a", default=None, help="dataset column of the A images (default imageA)")
    parser.add_argument("--column_b", default=None, help="dataset column of the B images (default imageB)")


def add_train_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        add_help=False,  # `pix2pix-hub train --help` is the training command's own help
        help="train a model: the flags of scripts/train.py (`pix2pix-hub train --help`)",
    )
    train.add_argument("arguments", nargs=argparse.REMAINDER)
    train.set_defaults(handler=train_command)


def train_command(args: argparse.Namespace) -> int:
    # Imported here: accelerate and datasets load only when training, not for `pix2pix-hub --help`.
    from .commands.train import main as train_main

    train_main(args.arguments, command=["pix2pix-hub", "train", *args.arguments])
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pix2pix-hub",
        description="pix2pix translators: translate images, evaluate, export to ONNX, convert the authors' "
        "checkpoints.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_translate_parser(commands)
    add_evaluate_parser(commands)
    add_export_parser(commands)
    add_convert_parser(commands)
    add_train_parser(commands)
    add_dataset_parser(commands)
    add_space_parser(commands)
    return parser


def add_translate_parser(commands: Any) -> None:
    translate = commands.add_parser(
        "translate",
        help="translate an image, a folder (recursively) or a dataset",
        description="Translate images. Outputs keep the inputs' relative names (dataset rows: 00000.png ...); "
        "unreadable inputs are skipped with a warning and counted at the end (exit status 1). An OUTPUT that "
        "would replace an input (the same file, or the input folder) is refused before anything is written.",
    )
    add_model_options(translate)
    translate.add_argument("input", help="an image file, a folder searched recursively, or (with --dataset) a dataset")
    translate.add_argument("output", help="output folder (or an output file name when INPUT is one image)")
    translate.add_argument("--dataset", action="store_true", help="INPUT is a dataset (Hub id or local folder)")
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
    add_dataset_options(translate)
    translate.set_defaults(handler=translate_command)


def add_evaluate_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="L1, PSNR, SSIM (and FID) on paired data, with an HTML results page",
        description="Translate each pair's input, compare with its target and write metrics.json, index.html "
        "(input | output | target rows), grid.png and images/ into --output_dir; the metrics JSON is printed.",
    )
    add_model_options(evaluate)
    evaluate.add_argument("--dataset", required=True, help="paired dataset: Hub id or local folder/files")
    evaluate.add_argument("--output_dir", default="evaluation", help="where results go (default ./evaluation)")
    evaluate.add_argument("--limit", type=int, default=None, help="evaluate only the first N pairs")
    evaluate.add_argument("--grid_rows", type=int, default=8, help="rows in grid.png (default 8)")
    evaluate.add_argument(
        "--inception_weights",
        default=None,
        help=f"local {FID_WEIGHTS_NAME} for FID (needs torch-fidelity); without it FID is skipped",
    )
    add_inference_options(evaluate)
    add_dataset_options(evaluate)
    evaluate.add_argument(
        "--column_instance",
        default=None,
        help="label-map models taking instance maps (pix2pixHD --instance): the dataset column of the instance maps "
        "(default instance: an I/ folder beside A/ and B/)",
    )
    evaluate.set_defaults(handler=evaluate_command)


def add_export_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export-onnx",
        help="export the generator to ONNX (dynamic batch and size) and check it against torch",
        description="Export the generator; input 'input' (N, C, H, W) in [-1, 1] with H and W multiples of the "
        "generator's size_multiple (in the file's metadata). The parity check runs onnxruntime on random inputs.",
    )
    add_model_options(export, device=False)
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
    export.set_defaults(handler=export_command)


def add_int8_options(export: argparse.ArgumentParser) -> None:
    int8 = export.add_argument_group("int8 (static quantization, checked against fp32)")
    int8.add_argument(
        "--int8",
        action="store_true",
        help="write the int8 graph instead (sub-pixel transposed convs, uint8 activations, int8 weights), calibrated "
        "on --calibration; refused (exit 1, nothing written) when below --min_psnr from the fp32 outputs",
    )
    int8.add_argument(
        "--calibration",
        default=None,
        metavar="DIR_OR_DATASET",
        help="a folder of typical input images, or with --dataset a dataset whose input side is used",
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
    int8.add_argument("--dataset", action="store_true", help="--calibration is a dataset (Hub id or folder of pairs)")
    int8.add_argument("--split", default="train", help="dataset split (default train)")
    int8.add_argument(
        "--direction", choices=DIRECTIONS, default=None, help="which side is the input (default: the model's)"
    )
    int8.add_argument("--column_a", default=None, help="dataset column of the A images (default imageA)")
    int8.add_argument("--column_b", default=None, help="dataset column of the B images (default imageB)")
    int8.add_argument("--quiet", action="store_true", help="no progress bars")


def add_convert_parser(commands: Any) -> None:
    convert = commands.add_parser(
        "convert",
        help="the authors' latest_net_G.pth (junyanz/pytorch-CycleGAN-and-pix2pix) as a safetensors model folder",
        description="Read the authors' checkpoint with torch.load(weights_only=True) (a file that needs full "
        "unpickling is refused), infer its architecture from its keys and shapes, and write a model folder that "
        "Pix2Pix.from_pretrained loads. Architecture flags (the authors' names) override what is inferred.",
    )
    add_debug_option(convert)
    convert.add_argument("source", help="the authors' generator checkpoint, e.g. latest_net_G.pth")
    convert.add_argument("output", help="the model folder to write")
    convert.add_argument("--direction", choices=DIRECTIONS, default=None, help="the side of the data it takes")
    convert.add_argument("--discriminator", default=None, help="the matching latest_net_D.pth, kept for fine-tuning")
    convert.add_argument("--base_model", default=None, help="origin recorded in the card (default: the file name)")
    convert.add_argument("--push_to_hub", default=None, metavar="USER/NAME", help="also upload the folder there")
    convert.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT folder")
    for name in ("netG", "netD"):
        convert.add_argument(f"--{name}", default=None, help="e.g. unet_256, resnet_9blocks / basic, n_layers, pixel")
    for name in ("ngf", "ndf", "input_nc", "output_nc", "n_layers_D"):
        convert.add_argument(f"--{name}", type=int, default=None, help="override the inferred value")
    convert.add_argument("--norm", choices=NORMS, default=None, help="override the inferred normalisation")
    # store_const, not store_true: unset must mean "infer", since False would force dropout on.
    convert.add_argument("--no_dropout", action="store_const", const=True, default=None, help="no dropout in G")
    convert.set_defaults(handler=convert_command)


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("batch_size", "max_pixels", "limit", "grid_rows"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "grid_rows" else 1):
            parser.error(f"--{name} must be positive; got {value}.")
    if getattr(args, "calibration", None) and not args.int8:
        parser.error("--calibration is read by --int8 only; add --int8 to write the int8 graph.")
    if getattr(args, "int8", False) and not args.calibration:
        parser.error("--int8 needs --calibration DIR_OR_DATASET: typical input images to calibrate on.")
    if getattr(args, "instance_maps", None) and args.dataset:
        parser.error("--instance_maps reads files beside image inputs; a dataset's rows have no instance column here.")
    if getattr(args, "int8", False) and args.num_calibration < 2:
        parser.error(f"--num_calibration must be at least 2 (calibration and its gate); got {args.num_calibration}.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # every word after it is the training command's (argparse cannot pass "--help" on)
        return train_command(argparse.Namespace(arguments=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV) == "1"  # dataset/space: no --debug flag
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except (CommandError, OutputConflict) as error:
        if debug:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - one line for the user; --debug shows the traceback
        if debug:
            raise
        print(f"error: {type(error).__name__}: {one_line(error)} (--debug shows the traceback)", file=sys.stderr)
        return EXIT_BAD_INPUTS


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
