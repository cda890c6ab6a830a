"""``pix2pix-hub``: translate images, evaluate on paired data, export to ONNX.

    pix2pix-hub translate MODEL INPUT OUTPUT        an image, a folder (recursively) or --dataset SOURCE
    pix2pix-hub evaluate MODEL --dataset SOURCE --split test --output_dir DIR
    pix2pix-hub export-onnx MODEL out.onnx

MODEL is a folder written by ``save_pretrained`` or a Hub repo id. Exit status: 0 when every input was
translated, 1 when some inputs were skipped (the good ones are still written; the count is printed last) or a
check failed, 2 for a usage error or a model that cannot be loaded.

This module imports only the standard library at the top; PIL, the pipeline, datasets and onnxruntime are
imported by the command that needs them, so ``--help`` costs no more than ``import pix2pix_hub`` (torch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_BAD_INPUTS, EXIT_USAGE = 0, 1, 2
# Images smaller than this on a side are translated, but almost all of what the model sees is padding.
TINY_SIDE = 16


class CommandError(Exception):
    """A fatal error for the whole command (usage or model); printed without a traceback, exit status 2."""


# ----- reading and writing images -------------------------------------------------------------------------------
def image_extensions() -> set[str]:
    """Lower-case suffixes PIL can open (``.png``, ``.jpg``, ``.tif``, ...)."""
    from PIL import Image

    return {suffix for suffix, name in Image.registered_extensions().items() if name in Image.OPEN}


def read_header(path: Path, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` from the file header, without decoding; ``UnreadableImage`` for non-images and huge
    images."""
    from PIL import Image, UnidentifiedImageError

    from .evaluation import UnreadableImage, check_size

    try:
        with Image.open(path) as image:
            size = image.size
    except UnidentifiedImageError:
        raise UnreadableImage(f"{path}: not an image file (PIL cannot identify its format).") from None
    except Image.DecompressionBombError as error:
        raise UnreadableImage(f"{path}: refused, too large to decode safely ({error}).") from None
    except OSError as error:
        raise UnreadableImage(f"{path}: cannot read the file header ({error}).") from None
    check_size(size, max_pixels, str(path))
    return size


def load_image(path: Path, channels: int, max_pixels: int) -> Any:
    """Decode ``path`` into a PIL image of the model's channel count (16-bit, CMYK, RGBA, palette and grayscale
    are converted by ``imaging.convert_image``; EXIF rotation is applied so outputs look like the inputs)."""
    import struct

    from PIL import Image, ImageOps

    from .evaluation import UnreadableImage
    from .imaging import convert_image

    read_header(path, max_pixels)
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return convert_image(image, channels)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as error:
        raise UnreadableImage(f"{path}: corrupt or truncated image ({error}).") from None


def save_output(image: Any, path: Path) -> None:
    """Write atomically, in the format the suffix names (PNG when the suffix is not one PIL writes)."""
    from PIL import Image

    from .evaluation import save_image_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    save_image_atomic(image, path, image_format if image_format in Image.SAVE else "PNG")


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ----- translate ----------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One image to translate: where it comes from (``source``: a path or a dataset row) and where it goes."""

    name: str
    source: Any
    output: Path
    size: tuple[int, int] = (0, 0)


def find_images(folder: Path, exclude: Path | None) -> tuple[list[Path], int]:
    """Files under ``folder`` (recursively, sorted) with an image suffix, and the count of other files ignored."""
    extensions = image_extensions()
    found, ignored = [], 0
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        # Skip hidden folders and the output folder, so a second run does not translate its own outputs.
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (root_path / d).resolve() != exclude)
        for name in sorted(files):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in extensions:
                found.append(root_path / name)
            else:
                ignored += 1
    return found, ignored


def file_jobs(args: argparse.Namespace, max_pixels: int, bad: list[str]) -> list[Job]:
    """Jobs for an image or a folder; files that are not images or too large go to ``bad``."""
    source, output = Path(args.input), Path(args.output)
    suffix = f".{args.ext.lstrip('.')}" if args.ext else None
    if source.is_file():
        target = output if output.suffix.lower() in image_extensions() else output / source.name
        pairs = [(source, target.with_suffix(suffix) if suffix else target)]
    else:
        paths, ignored = find_images(source, output.resolve())
        if ignored:
            print(f"Ignoring {ignored} file(s) under {source} without an image suffix.", file=sys.stderr)
        if not paths:
            raise CommandError(f"No images found under {source} (looked for {', '.join(sorted(image_extensions()))}).")
        pairs = []
        for path in paths:
            target = output / path.relative_to(source)
            pairs.append((path, target.with_suffix(suffix) if suffix else target))
    from .evaluation import UnreadableImage

    jobs = []
    for path, target in pairs:
        try:
            jobs.append(Job(str(path), path, target, read_header(path, max_pixels)))
        except UnreadableImage as error:
            bad.append(str(error))
    # Same-size images next to each other fill whole batches.
    jobs.sort(key=lambda job: (job.size, job.name))
    return jobs


def dataset_jobs(args: argparse.Namespace) -> tuple[Any, list[Job]]:
    """The dataset (raw ``input`` bytes) and one job per row, written as ``OUTPUT/00000.png``."""
    from .data.checks import raw_rows

    dataset = raw_rows(open_dataset(args, args.input))
    output = Path(args.output)
    suffix = f".{args.ext.lstrip('.')}" if args.ext else ".png"
    jobs = [Job(f"row {index}", index, output / f"{index:05d}{suffix}") for index in range(len(dataset))]
    return dataset, jobs


def open_dataset(args: argparse.Namespace, source: str) -> Any:
    """``pix2pix_hub.data.load_pairs`` with the command's split, direction and column options."""
    try:
        import datasets

        from .data import load_pairs
    except ImportError as error:
        raise CommandError(f"Reading datasets needs pix2pix_hub.data and `datasets` ({error}).") from None
    if args.quiet:
        datasets.disable_progress_bars()
    options = {"split": args.split, "direction": args.direction}
    options.update({key: getattr(args, key) for key in ("column_a", "column_b") if getattr(args, key)})
    try:
        return load_pairs(source, **options)
    except Exception as error:  # any loading failure is fatal for the command; show it without a traceback
        raise CommandError(f"Cannot load dataset {source} (split {args.split}): {error}") from None


def load_job(job: Job, dataset: Any, channels: int, max_pixels: int) -> Any:
    """Decode one job's image (file or dataset row) as a PIL image of ``channels`` channels."""
    if dataset is None:
        return load_image(job.source, channels, max_pixels)
    from .evaluation import decode_image
    from .imaging import convert_image

    return convert_image(decode_image(dataset[job.source]["input"], max_pixels, job.name), channels)


def pad_tiny(image: Any) -> tuple[Any, tuple[int, int, int, int] | None]:
    """Edge-replicate an image with a side under ``TINY_SIDE`` up to it; returns the image and the crop box that
    undoes it (None when untouched). Why: a ResNet generator (size_multiple 4) fails on inputs under 8x8, whose
    bottleneck is too small for its reflection padding, and the pipeline passes them through."""
    import numpy as np
    from PIL import Image

    width, height = image.size
    if min(width, height) >= TINY_SIDE:
        return image, None
    new_width, new_height = max(width, TINY_SIDE), max(height, TINY_SIDE)
    left, top = (new_width - width) // 2, (new_height - height) // 2
    array = np.asarray(image)
    padding = ((top, new_height - height - top), (left, new_width - width - left)) + ((0, 0),) * (array.ndim - 2)
    return Image.fromarray(np.pad(array, padding, mode="edge")), (left, top, left + width, top + height)


def translate_batch(pix2pix: Any, images: list[Any], jobs: list[Job], args: argparse.Namespace, bad: list[str]) -> list:
    """Outputs for ``images``; if the batch fails, each image alone, with None (and a warning) for those that fail,
    so one image the model cannot take does not stop the run."""
    options = {"size_mode": args.size_mode, "dropout_at_test": args.dropout_at_test}
    try:
        return pix2pix(images, **options)
    except Exception:  # retried one by one below, where the failing image is named
        pass
    outputs = []
    for job, image in zip(jobs, images):
        try:
            outputs.append(pix2pix(image, **options))
        except Exception as error:
            bad.append(f"{job.name}: translation failed ({type(error).__name__}: {error})")
            warn(f"skipped {bad[-1]}")
            outputs.append(None)
    return outputs


def batches(items: list[Job], size: int) -> Iterator[list[Job]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def progress_bar(total: int, enabled: bool, unit: str = "img") -> Any:
    """A tqdm bar on stderr (a no-op object when disabled or tqdm is not installed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        enabled = False
    if not enabled:

        class NoBar:
            def update(self, n: int = 1) -> None:
                pass

            def close(self) -> None:
                pass

        return NoBar()
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def translate_command(args: argparse.Namespace) -> int:
    pix2pix = load_model(args)
    bad: list[str] = []
    dataset = None
    if args.dataset:
        dataset, jobs = dataset_jobs(args)
    elif Path(args.input).exists():
        jobs = file_jobs(args, pix2pix.max_pixels, bad)
    else:
        raise CommandError(f"INPUT {args.input} does not exist. To read a dataset (Hub id or folder), add --dataset.")
    from .evaluation import UnreadableImage

    for message in bad:
        warn(f"skipped {message}")
    written = 0
    bar = progress_bar(len(jobs), not args.quiet)
    for chunk in batches(jobs, args.batch_size):
        images, ready = [], []
        for job in chunk:
            try:
                images.append(load_job(job, dataset, pix2pix.in_channels, pix2pix.max_pixels))
                ready.append(job)
            except UnreadableImage as error:
                bad.append(str(error))
                warn(f"skipped {error}")
        crops = []
        for index, (job, image) in enumerate(zip(ready, images)):
            images[index], box = pad_tiny(image)
            crops.append(box)
            if box is not None:
                warn(
                    f"{job.name} is only {image.width}x{image.height}: it is edge-padded to at least {TINY_SIDE} "
                    "pixels a side, translated and cropped back; the model sees almost nothing but padding."
                )
        if images:
            outputs = translate_batch(pix2pix, images, ready, args, bad)
            for job, output, box in zip(ready, outputs, crops):
                if output is None:
                    continue
                try:
                    output = output if box is None else output.crop(box)
                    save_output(output, job.output)
                    written += 1
                except OSError as error:
                    bad.append(f"{job.name}: cannot write {job.output} ({error})")
                    warn(f"skipped {bad[-1]}")
        bar.update(len(chunk))
    bar.close()
    destination = Path(args.output)
    print(f"Wrote {written} image(s) to {destination}.", file=sys.stderr)
    if bad:
        print(f"error: {len(bad)} input(s) could not be translated (see the warnings above).", file=sys.stderr)
        return EXIT_BAD_INPUTS
    return EXIT_OK


# ----- evaluate -----------------------------------------------------------------------------------------------
def evaluate_command(args: argparse.Namespace) -> int:
    from .evaluation import FidUnavailable, evaluate, fid_metric

    pix2pix = load_model(args)
    fid, fid_note = None, None
    try:
        fid = fid_metric(args.inception_weights)
    except FidUnavailable as error:
        if args.inception_weights:  # asked for and not possible: that is an error, not a note
            raise CommandError(str(error)) from None
        fid_note = str(error)
    dataset = open_dataset(args, args.dataset)
    total = len(dataset) if args.limit is None else min(args.limit, len(dataset))

    def progress(indices: Iterable[int]) -> Iterable[int]:
        if args.quiet:
            return indices
        bar = progress_bar(total, True, unit="pair")

        def counted() -> Iterator[int]:
            for index in indices:
                yield index
                bar.update(1)
            bar.close()

        return counted()

    report = evaluate(
        pix2pix,
        dataset,
        args.output_dir,
        size_mode=args.size_mode,
        dropout_at_test=args.dropout_at_test,
        batch_size=args.batch_size,
        grid_rows=args.grid_rows,
        limit=args.limit,
        fid=fid,
        fid_note=fid_note,
        progress=progress,
        info={"model": str(args.model), "dataset": args.dataset, "split": args.split, "direction": args.direction},
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


# ----- export-onnx --------------------------------------------------------------------------------------------
def export_command(args: argparse.Namespace) -> int:
    from .export import ParityError, export_onnx

    args.device = "cpu"
    pix2pix = load_model(args)
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


# ----- shared -------------------------------------------------------------------------------------------------
def load_model(args: argparse.Namespace) -> Any:
    """``Pix2Pix.from_pretrained`` with the command's options; any failure becomes a one-line CommandError."""
    import torch

    from .pipeline import Pix2Pix

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError(f"--device {device}: CUDA is not available on this machine; use --device cpu.")
    options: dict[str, Any] = {"batch_size": getattr(args, "batch_size", 8)}
    if getattr(args, "max_pixels", None):
        options["max_pixels"] = args.max_pixels
    for name in ("size_mode", "backend"):
        if getattr(args, name, None):
            options[name] = getattr(args, name)
    model = str(args.model)
    if not Path(model).is_dir() and (model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model):
        raise CommandError(f"Model folder {model} does not exist (and it is not a Hub repo id like user/name).")
    try:
        return Pix2Pix.from_pretrained(model, device=device, load_discriminator=False, **options)
    except Exception as error:  # folder without weights, unknown repo, offline cache miss, bad config...
        raise CommandError(f"Cannot load model {args.model}: {error}") from None


def add_model_options(parser: argparse.ArgumentParser, device: bool = True) -> None:
    parser.add_argument("model", help="a folder written by save_pretrained() or a Hub repo id (user/name)")
    if device:
        parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, mps... (default: cuda if available)")


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch_size", type=int, default=8, help="images per forward pass (default 8)")
    parser.add_argument(
        "--size_mode",
        choices=("pad", "resize"),
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
        choices=("auto", "onnxruntime", "torch"),
        default=None,
        help="auto (default): onnxruntime on a CPU (~2x faster than torch, exported on first use), torch elsewhere; "
        "onnxruntime: insist on it; torch: plain eager torch",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default="test", help="dataset split (default test)")
    parser.add_argument("--direction", default="AtoB", choices=("AtoB", "BtoA"), help="which side is the input")
    parser.add_argument("--column_a", default=None, help="dataset column of the A images (default imageA)")
    parser.add_argument("--column_b", default=None, help="dataset column of the B images (default imageB)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pix2pix-hub", description="pix2pix translators: translate images, evaluate, export to ONNX."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    translate = commands.add_parser(
        "translate",
        help="translate an image, a folder (recursively) or a dataset",
        description="Translate images. Outputs keep the inputs' relative names (dataset rows: 00000.png ...); "
        "unreadable inputs are skipped with a warning and counted at the end (exit status 1).",
    )
    add_model_options(translate)
    translate.add_argument("input", help="an image file, a folder searched recursively, or (with --dataset) a dataset")
    translate.add_argument("output", help="output folder (or an output file name when INPUT is one image)")
    translate.add_argument("--dataset", action="store_true", help="INPUT is a dataset (Hub id or local folder)")
    translate.add_argument(
        "--ext", default=None, help="write outputs with this suffix (e.g. png) instead of the input's"
    )
    add_inference_options(translate)
    add_dataset_options(translate)
    translate.set_defaults(handler=translate_command)

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
        help="local pt_inception-2015-12-05-6726825d.pth for FID (needs torch-fidelity); without it FID is skipped",
    )
    add_inference_options(evaluate)
    add_dataset_options(evaluate)
    evaluate.set_defaults(handler=evaluate_command)

    export = commands.add_parser(
        "export-onnx",
        help="export the generator to ONNX (dynamic batch and size) and check it against torch",
        description="Export the generator; input 'input' (N, C, H, W) in [-1, 1] with H and W multiples of the "
        "generator's size_multiple (in the file's metadata). The parity check runs onnxruntime on random inputs.",
    )
    add_model_options(export, device=False)
    export.add_argument("output", help="the .onnx file to write")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted |onnx - torch| (default 1e-4)")
    export.add_argument("--no_check", action="store_true", help="skip the onnxruntime parity check")
    export.set_defaults(handler=export_command)
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("batch_size", "max_pixels", "limit", "grid_rows"):
        value = getattr(args, name, None)
        if value is not None and value < (0 if name == "grid_rows" else 1):
            parser.error(f"--{name} must be positive; got {value}.")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    try:
        return args.handler(args)
    except CommandError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
