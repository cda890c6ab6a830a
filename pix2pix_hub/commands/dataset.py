"""``pix2pix-hub dataset check SOURCE`` and ``pix2pix-hub dataset prepare SOURCE OUT``.

    pix2pix-hub dataset check ../shared/data/facades/train --direction BtoA --preview preview.png
    pix2pix-hub dataset check cityscapes/ --label_nc 35 --instance   # A/ class maps, I/ instances: bad maps named
    pix2pix-hub dataset prepare facades/ facades-pairs --direction BtoA [--push_to_hub --hub_model_id me/facades]
    pix2pix-hub dataset prepare facades/ facades-classes --direction BtoA --palette facades   # B -> class indices

``check`` exits 0 when every pair reads, 1 when some do not (they are listed), 2 when the source cannot be opened
as asked or ``--preview`` would write into a local source. ``python -m pix2pix_hub.data SOURCE ...`` is ``check``.
The scan is ``data.checks``'s, the grid ``data.preview``'s and the preparation ``data.prepare``'s.
"""

from __future__ import annotations

import argparse
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from ..constants import DIRECTIONS
from ..data import PairedTransform, open_source, prepare_dataset, scan_pairs, select_pairs
from ..data.preview import check_preview_target, write_preview
from ..fileio import check_output_apart, check_replaceable, resolved
from ..hub.model_info import dataset_name
from ..images.palettes import FAR_DISTANCE, PaletteConversion, PaletteError, load_palette
from .options import add_push_options, hub_repo, push_problem
from .policy import EXIT_DATA, EXIT_OK, EXIT_USAGE, add_command, reported_as

# How summaries name the two sides of folder sources (their columns are imageA/imageB).
FOLDER_LABELS = {
    "aligned": {"imageA": "A (left half)", "imageB": "B (right half)"},
    "folders": {"imageA": "A/", "imageB": "B/"},
}


def register(subparsers: Any) -> None:
    dataset = subparsers.add_parser("dataset", help="paired datasets: check a source, prepare (and publish) one")
    actions = dataset.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    register_check(actions)
    register_prepare(actions)


# ----- check ---------------------------------------------------------------------------------------------------------
def register_check(actions: Any) -> None:
    check = add_command(
        actions,
        "check",
        run_check,
        help="what a paired source holds, whether every pair reads, a preview grid",
        description="Summarize a paired image source (Hub id, folder, save_to_disk folder or .parquet file), "
        "check that every pair decodes, and optionally write a preview grid (input | target rows).",
    )
    check.add_argument("source", help="Hub id (user/name), folder of A|B images, folder with A/ and B/, ...")
    check.add_argument("--split", default="train", help="split (subfolder or dataset split) to read (train)")
    check.add_argument("--direction", default="AtoB", choices=DIRECTIONS, help="which side is the input")
    check.add_argument("--column_a", default="imageA", help="image column A of a dataset (imageA)")
    check.add_argument("--column_b", default="imageB", help="image column B of a dataset (imageB)")
    check.add_argument(
        "--label_nc", type=int, default=0, help="inputs are class-index maps of N classes: report values >= N (0)"
    )
    check.add_argument("--instance", action="store_true", help="check the inputs' instance maps too")
    check.add_argument(
        "--column_instance", default="instance", help="image column of the instance maps (instance; an I/ folder)"
    )
    check.add_argument("--streaming", action="store_true", help="stream a Hub dataset instead of downloading it")
    check.add_argument("--cache_dir", default=None, help="datasets cache folder (default: HF_DATASETS_CACHE)")
    check.add_argument("--max_rows", type=int, default=None, help="check only the first N pairs")
    check.add_argument("--no_check", action="store_true", help="do not decode every pair")
    check.add_argument("--preview", default=None, help="write a grid of the first pairs to this image file")
    check.add_argument("--rows", type=int, default=4, help="pairs in the preview (4)")
    check.add_argument(
        "--augment", action="store_true", help="preview the training transform (286 -> 256 crop, flip) output"
    )


def run_check(args: argparse.Namespace) -> int:
    if args.preview:
        with reported_as(EXIT_USAGE, ValueError):
            check_preview_target(args.preview, args.source)
    import datasets  # after parsing, so that --help does not wait for it

    with reported_as(EXIT_USAGE, OSError, ValueError):  # the source cannot be opened as the flags ask
        dataset, info = open_source(args.source, split=args.split, streaming=args.streaming, cache_dir=args.cache_dir)
        pairs = select_pairs(
            dataset, info, column_a=args.column_a, column_b=args.column_b, direction=args.direction,
            column_instance=args.column_instance if args.instance else None,
        )  # fmt: skip
    sides = (args.column_a, args.column_b) if args.direction == "AtoB" else (args.column_b, args.column_a)
    input_side, target_side = (FOLDER_LABELS.get(info.kind, {}).get(column, column) for column in sides)
    print(f"source: {info}")
    print(f"columns: {', '.join(info.columns)}")
    print(f"direction: {args.direction} (input = {input_side}, target = {target_side})")
    if isinstance(pairs, datasets.Dataset):
        print(f"pairs: {len(pairs)}")
    status = EXIT_OK if args.no_check else print_scan(pairs, args)
    if args.preview:
        with reported_as(EXIT_USAGE, ValueError):
            drawn = write_preview(pairs, args.preview, args.rows, args.augment)
        kind = "augmented " if args.augment else ""
        print(f"preview: {args.preview} ({drawn} rows: {kind}input | target)")
    return status


def print_scan(pairs: Any, args: argparse.Namespace) -> int:
    """Decode every pair (checking label and instance maps when asked), print what was found; the exit status."""
    maps = None
    if args.label_nc or args.instance:  # preprocess "none" accepts any size: the maps are checked, nothing else
        maps = PairedTransform(preprocess="none", label_nc=args.label_nc, instance=args.instance)
    report = scan_pairs(pairs, transform=maps, max_rows=args.max_rows)
    checked = "first " if args.max_rows is not None and report.rows >= args.max_rows else ""
    print(f"checked: {checked}{report.rows} pairs, {report.rows - len(report.bad)} readable")
    print(f"input sizes: {format_counts(report.input_sizes)}")
    print(f"target sizes: {format_counts(report.target_sizes)}")
    print(f"modes (input, target): {format_counts(report.modes)}")
    if not report.bad:
        return EXIT_OK
    print(f"bad pairs: {len(report.bad)}")
    for line in report.bad:
        print(f"  {line}")
    return EXIT_DATA


def format_counts(counts: Counter, limit: int = 4) -> str:
    """``256x256 (400)`` style: the most common values and how often they occur."""
    parts = []
    for value, count in counts.most_common(limit):
        text = f"{value[0]}x{value[1]}" if isinstance(value, tuple) and isinstance(value[0], int) else str(value)
        parts.append(f"{text} ({count})")
    if len(counts) > limit:
        parts.append(f"... {len(counts) - limit} more")
    return ", ".join(parts) or "-"


# ----- prepare -------------------------------------------------------------------------------------------------------
def register_prepare(actions: Any) -> None:
    prepare = add_command(
        actions,
        "prepare",
        run_prepare,
        help="an A|B folder, A/ B/ folders or train/ val/ test/ subfolders -> an imageA/imageB dataset",
        description="Write SOURCE's pairs as a datasets DatasetDict (imageA/imageB Image columns, one split per "
        "subfolder) with save_to_disk(OUT); whole files keep their bytes, A|B files are cut into PNG halves. "
        "--push_to_hub also publishes it with a dataset card.",
    )
    prepare.add_argument("source", help="folder of side-by-side A|B images, A/ and B/ folders, or split subfolders")
    prepare.add_argument("out", help="folder to write (load it with load_pairs(OUT) or datasets.load_from_disk)")
    prepare.add_argument("--direction", choices=DIRECTIONS, default=None, help="which side is the input (card)")
    add_push_options(prepare, "the dataset (parquet, with a dataset card)")
    prepare.add_argument("--private", action="store_true", default=None, help="create the Hub dataset private")
    prepare.add_argument("--license", default=None, help="the data's license for the card (default: other)")
    prepare.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    prepare.add_argument(
        "--palette",
        default=None,
        metavar="facades|PATH.json",
        help="the label side is colour-coded: store it as class indices by nearest palette colour (built-in: "
        'facades; or a JSON file: [{"name": ..., "color": [r, g, b]}, ...] or {"name": [r, g, b], ...})',
    )
    prepare.add_argument(
        "--label_side",
        choices=("A", "B"),
        default=None,
        help="which side is the colour-coded label map (default: the input side of --direction)",
    )
    prepare.add_argument(
        "--far_distance",
        type=float,
        default=FAR_DISTANCE,
        help=f"count pixels farther than this RGB distance from every palette colour ({FAR_DISTANCE:g})",
    )
    prepare.set_defaults(check=prepare_problem)


def prepare_problem(args: argparse.Namespace) -> str | None:
    """The usage problem of the flags together (push options, palette options), or None."""
    if args.palette is None and args.label_side is not None:
        return "--label_side names the side --palette converts; give --palette facades|PATH.json too."
    if args.palette is not None and args.label_side is None and args.direction is None:
        return "--palette needs the colour-coded side: --label_side A|B, or --direction (its input side)."
    if not args.far_distance > 0:
        return f"--far_distance {args.far_distance:g} must be positive (an RGB distance, up to 441)."
    return push_problem(args)


def palette_conversion(args: argparse.Namespace) -> PaletteConversion | None:
    """``--palette``'s conversion of ``--label_side`` (default: the input side of ``--direction``), or None."""
    if args.palette is None:
        return None
    side = args.label_side or args.direction[0]  # AtoB: A is the input
    with reported_as(EXIT_USAGE, PaletteError):
        return PaletteConversion(load_palette(args.palette), side, args.far_distance)


def print_conversion(conversion: PaletteConversion) -> None:
    """The summary of a palette conversion: classes found, far pixels, the label_nc to train with."""
    report, palette = conversion.report, conversion.palette
    found = report.classes_found()
    missing = [name for name in palette.names if name not in found]
    print(
        f"Converted side {conversion.side} of {report.files} pairs to class indices 0..{palette.label_nc - 1} "
        f"({palette.name} palette); classes found: {len(found)} of {palette.label_nc}"
        + (f" (never nearest: {', '.join(missing)})" if missing else "")
    )
    print(f"Far pixels: {report.summary()}.")
    other = "B" if conversion.side == "A" else "A"
    print(f"Train with --label_nc {palette.label_nc} (and --direction {conversion.side}to{other}: the maps as input).")


def run_prepare(args: argparse.Namespace) -> int:
    """0 done; 2 SOURCE missing, OUT not empty or not apart from SOURCE; 1 SOURCE holds no pairs, or pairs that
    do not read."""
    repo = hub_repo(args) if args.push_to_hub else None
    conversion = palette_conversion(args)  # a bad palette is refused before anything is read or written
    with reported_as(EXIT_USAGE, FileNotFoundError, FileExistsError):
        check_output_apart(args.out, {"SOURCE": args.source})  # before anything is read or written
        check_replaceable(args.out, overwrite=args.overwrite)
        prepared = prepare_dataset(
            args.source,
            args.out,
            direction=args.direction,
            push_to_hub=repo,
            private=args.private,
            license=args.license,
            overwrite=args.overwrite,
            command=prepare_command_line(args, repo),
            conversion=conversion,
        )
    counts = ", ".join(f"{name}: {len(split)}" for name, split in prepared.items())
    print(f"Wrote {args.out} ({counts} pairs).")
    if conversion is not None:
        print_conversion(conversion)
    if repo:
        print(f"Pushed to https://huggingface.co/datasets/{repo}")
    return EXIT_OK


def prepare_command_line(args: argparse.Namespace, repo: str | None) -> str:
    """The command as the card shows it: the source by its folder's name, OUT by its own, options as given."""
    words = ["pix2pix-hub", "dataset", "prepare", dataset_name(args.source) or "SOURCE", resolved(args.out).name]
    for name in ("direction", "license", "palette", "label_side"):
        if getattr(args, name):
            value = getattr(args, name)  # a palette file by its name, as the source: no local path on the card
            words += [f"--{name}", Path(value).name if name == "palette" else value]
    if repo:
        words += ["--push_to_hub", "--hub_model_id", repo]
    return shlex.join(words + (["--private"] if args.private else []))
