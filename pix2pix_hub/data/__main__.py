"""``python -m pix2pix_hub.data SOURCE``: what a paired source holds, whether every pair reads, a preview grid.

    python -m pix2pix_hub.data ../shared/data/facades/train --direction BtoA --preview preview.png
    python -m pix2pix_hub.data cityscapes/ --label_nc 35 --instance  # A/ class maps, I/ instances: bad maps named

Exit status 0 when every pair reads, 1 when some do not (they are listed), 2 when the source cannot be opened
or ``--preview`` would write into a local source (over one of its images, or as a new one), before anything is read.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from ..constants import DIRECTIONS
from ..fileio import save_image
from ..images.arrays import make_grid, tensor_to_image
from .checks import BadSampleError, open_pair, raw_rows, scan_pairs
from .sources import open_source, select_pairs
from .transforms import PairedTransform

# How summaries name the two sides of folder sources (their columns are imageA/imageB).
FOLDER_LABELS = {
    "aligned": {"imageA": "A (left half)", "imageB": "B (right half)"},
    "folders": {"imageA": "A/", "imageB": "B/"},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pix2pix_hub.data",
        description="Summarize a paired image source (Hub id, folder, save_to_disk folder or .parquet file), "
        "check that every pair decodes, and optionally write a preview grid (input | target rows).",
    )
    parser.add_argument("source", help="Hub id (user/name), folder of A|B images, folder with A/ and B/, ...")
    parser.add_argument("--split", default="train", help="split (subfolder or dataset split) to read (train)")
    parser.add_argument("--direction", default="AtoB", choices=DIRECTIONS, help="which side is the input")
    parser.add_argument("--column_a", default="imageA", help="image column A of a dataset (imageA)")
    parser.add_argument("--column_b", default="imageB", help="image column B of a dataset (imageB)")
    parser.add_argument(
        "--label_nc", type=int, default=0, help="inputs are class-index maps of N classes: report values >= N (0)"
    )
    parser.add_argument("--instance", action="store_true", help="check the inputs' instance maps too")
    parser.add_argument(
        "--column_instance", default="instance", help="image column of the instance maps (instance; an I/ folder)"
    )
    parser.add_argument("--streaming", action="store_true", help="stream a Hub dataset instead of downloading it")
    parser.add_argument("--cache_dir", default=None, help="datasets cache folder (default: HF_DATASETS_CACHE)")
    parser.add_argument("--max_rows", type=int, default=None, help="check only the first N pairs")
    parser.add_argument("--no_check", action="store_true", help="do not decode every pair")
    parser.add_argument("--preview", default=None, help="write a grid of the first pairs to this image file")
    parser.add_argument("--rows", type=int, default=4, help="pairs in the preview (4)")
    parser.add_argument(
        "--augment", action="store_true", help="preview the training transform (286 -> 256 crop, flip) output"
    )
    return parser


def format_counts(counts: Counter, limit: int = 4) -> str:
    """``256x256 (400)`` style: the most common values and how often they occur."""
    parts = []
    for value, count in counts.most_common(limit):
        text = f"{value[0]}x{value[1]}" if isinstance(value, tuple) and isinstance(value[0], int) else str(value)
        parts.append(f"{text} ({count})")
    if len(counts) > limit:
        parts.append(f"... {len(counts) - limit} more")
    return ", ".join(parts) or "-"


def map_transform(label_nc: int, instance: bool) -> PairedTransform | None:
    """A transform that only checks label and instance maps (``preprocess="none"`` accepts any size), so that
    ``scan_pairs`` names each bad map by its file; None for image inputs."""
    if not (label_nc or instance):
        return None
    return PairedTransform(preprocess="none", label_nc=label_nc, instance=instance)


def write_preview(pairs: Any, path: str, rows: int, augment: bool) -> int:
    """Save input | target rows for the first ``rows`` pairs (atomically); returns how many rows were drawn."""
    transform = PairedTransform() if augment else None
    grid_rows = []
    for index, row in enumerate(raw_rows(pairs)):
        if len(grid_rows) >= rows:
            break
        try:
            source, target = open_pair(index, row)
            if transform is not None:
                x, y = transform(source, target, seed=index)
                source, target = tensor_to_image(x), tensor_to_image(y)
        except (BadSampleError, ValueError):
            continue  # already listed by the check
        grid_rows.append([source.convert("RGB"), target.convert("RGB")])
    if not grid_rows:
        raise ValueError("no readable pair to preview")
    grid = make_grid(grid_rows)
    extension = Path(path).suffix.lower()
    image_format = Image.registered_extensions().get(extension)
    if image_format is None:
        raise ValueError(f"--preview {path}: unknown image extension {extension!r}; use .png or .jpg")
    save_image(grid, path, image_format)
    return len(grid_rows)


def check_preview_target(preview: str, source: str) -> None:
    """``ValueError`` when the preview would be written into a local source: over one of its images, or as a new
    image that loading the source would then read as a pair."""
    target, origin = Path(preview).resolve(), Path(source).resolve()
    if target == origin or (origin.is_dir() and target.is_relative_to(origin)):
        raise ValueError(
            f"--preview {preview} is inside the source {source}: it would replace or add an image of the source."
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.preview:
        try:
            check_preview_target(args.preview, args.source)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    import datasets  # after parsing, so that --help does not wait for it

    try:
        maps = map_transform(args.label_nc, args.instance)
        dataset, info = open_source(args.source, split=args.split, streaming=args.streaming, cache_dir=args.cache_dir)
        pairs = select_pairs(
            dataset, info, column_a=args.column_a, column_b=args.column_b, direction=args.direction,
            column_instance=args.column_instance if args.instance else None,
        )  # fmt: skip
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    input_column, target_column = (
        (args.column_a, args.column_b) if args.direction == "AtoB" else (args.column_b, args.column_a)
    )
    labels = FOLDER_LABELS.get(info.kind, {})
    input_column, target_column = labels.get(input_column, input_column), labels.get(target_column, target_column)
    print(f"source: {info}")
    print(f"columns: {', '.join(info.columns)}")
    print(f"direction: {args.direction} (input = {input_column}, target = {target_column})")
    if isinstance(pairs, datasets.Dataset):
        print(f"pairs: {len(pairs)}")
    status = 0
    if not args.no_check:
        report = scan_pairs(pairs, transform=maps, max_rows=args.max_rows)
        checked = "first " if args.max_rows is not None and report.rows >= args.max_rows else ""
        print(f"checked: {checked}{report.rows} pairs, {report.rows - len(report.bad)} readable")
        print(f"input sizes: {format_counts(report.input_sizes)}")
        print(f"target sizes: {format_counts(report.target_sizes)}")
        print(f"modes (input, target): {format_counts(report.modes)}")
        if report.bad:
            status = 1
            print(f"bad pairs: {len(report.bad)}")
            for line in report.bad:
                print(f"  {line}")
    if args.preview:
        try:
            drawn = write_preview(pairs, args.preview, args.rows, args.augment)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        kind = "augmented " if args.augment else ""
        print(f"preview: {args.preview} ({drawn} rows: {kind}input | target)")
    return status


if __name__ == "__main__":
    sys.exit(main())
