"""A folder of image pairs -> a paired 🤗 dataset on disk (and the Hub): ``pix2pix-hub dataset prepare SOURCE OUT``.

The result is a ``datasets.DatasetDict`` with two ``Image()`` columns, ``imageA`` and ``imageB``, one split per
subfolder, written with ``save_to_disk(OUT)``; ``load_pairs(OUT, split=...)`` and ``datasets.load_from_disk`` read
it, and ``push_to_hub`` publishes it as parquet with a dataset card. What each source becomes:

    A/ and B/ folders (also A/train + B/train, train/A + train/B)   each file's own bytes, paired by name
    a folder of side-by-side A|B images: split "train"               each file cut in two, halves stored as PNG
    the authors' layout, train/ val/ test/ of A|B images             one split per subfolder, as above

Pairs in two of these layouts at once (a stray ``preview.jpg`` beside ``train/`` and ``val/``) are refused with both
named: reading one would drop the other without a word.

Why PNG for the halves: an encoded JPEG cannot be cut in two without decoding it, so "the original bytes" exist
only for whole files. PNG keeps the decoded pixels exactly (a later decode gives what cutting the original gives)
at about 3x the JPEG's size (facades train: 20 MB of JPEGs -> about 62 MB), against 151 MB for the uncompressed
TIFF halves of ``load_pairs``' cache. ``docs/data.md`` has the numbers and the alternatives.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCardData, HfApi
from PIL import Image

from ..constants import DIRECTIONS, check_choice
from ..fileio import atomic_directory, check_output_apart, check_replaceable
from ..hub.model_info import KNOWN_SIDES, dataset_name
from ..images.arrays import convert_image
from ..images.palettes import PaletteConversion
from ..images.reading import DECODE_ERRORS
from .aligned import split_halves
from .checks import check_pairs
from .errors import PairsSourceError
from .folders import image_files, match_by_stem
from .sources import METADATA_FILES, SourceInfo, select_pairs

COLUMNS = ("imageA", "imageB")
DEFAULT_SPLIT = "train"
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")  # what datasets accepts as a split name


@dataclass(frozen=True)
class SplitSource:
    """One split's files: ``kind`` "aligned" (``folders`` = the A|B folder) or "folders" (``folders`` = A, B)."""

    kind: str
    folders: tuple[Path, ...]


@dataclass(frozen=True)
class PreparedInfo:
    """What a dataset card says about a prepared dataset: no local path, only the source folder's name."""

    source_name: str
    layout: str
    counts: dict[str, int]
    direction: str | None = None
    license: str | None = None
    command: str | None = None
    labels: str | None = None  # how a colour-coded side became class indices (the card's sentence), if it did


# ----- finding the splits ---------------------------------------------------------------------------------------
def find_splits(source: Path) -> dict[str, SplitSource]:
    """The splits of ``source``, by its layout (see the module docstring); a folder without pairs, or one holding
    pairs in two layouts at once (where reading one would drop the other without a word), is an error."""
    metadata = [p for p in (source, *source.iterdir()) if p.is_dir() and any((p / m).is_file() for m in METADATA_FILES)]
    if metadata:
        raise PairsSourceError(
            f"{metadata[0]} is a datasets imagefolder (it has a metadata file), not a folder of image files: "
            "load_pairs and --dataset read it as it is, and datasets.load_dataset('imagefolder', data_dir=...)"
            ".push_to_hub(...) publishes it."
        )
    top = image_files(source)
    a, b = source / "A", source / "B"
    if a.is_dir() and b.is_dir():
        _refuse_mixed(source, ("A/ and B/ folders", "A/ and B/"), _top_images(top))
        _refuse_mixed(source, ("A/ and B/ folders", "A/ and B/"), _split_folders(source, skip={"A", "B"}))
        if image_files(a) or image_files(b):
            names = sorted({p.name for p in a.iterdir() if p.is_dir()} & {p.name for p in b.iterdir() if p.is_dir()})
            inner = [f"A/{name}/" for name in names if image_files(a / name) or image_files(b / name)]
            found = (f"split folders {', '.join(inner)}", ", ".join(inner)) if inner else None
            _refuse_mixed(source, ("images directly in A/ and B/", "the images directly in A/ and B/"), found)
            return {DEFAULT_SPLIT: SplitSource("folders", (a, b))}
        names = sorted({p.name for p in a.iterdir() if p.is_dir()} & {p.name for p in b.iterdir() if p.is_dir()})
        return _checked({name: SplitSource("folders", (a / name, b / name)) for name in names}, source)
    splits = {}
    for sub in _subfolders(source):
        if (sub / "A").is_dir() and (sub / "B").is_dir():
            _refuse_mixed(sub, ("A/ and B/ folders", "A/ and B/"), _top_images(image_files(sub)))
            splits[sub.name] = SplitSource("folders", (sub / "A", sub / "B"))
        elif image_files(sub):
            splits[sub.name] = SplitSource("aligned", (sub,))
    if top:
        if splits:  # a stray file beside split folders is the likelier mistake: name moving it first
            folders = ", ".join(f"{name}/" for name in splits)
            _refuse_mixed(source, (f"split folders {folders}", folders), _top_images(top))
        return {DEFAULT_SPLIT: SplitSource("aligned", (source,))}
    return _checked(splits, source)


def _subfolders(source: Path) -> list[Path]:
    return sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folders(source: Path, skip: set[str]) -> tuple[str, str] | None:
    """Subfolders of ``source`` (but ``skip``) that hold pairs, as (what was found, what to move), or None."""
    names = [
        f"{sub.name}/"
        for sub in _subfolders(source)
        if sub.name not in skip and (image_files(sub) or ((sub / "A").is_dir() and (sub / "B").is_dir()))
    ]
    return (f"split folders {', '.join(names)}", ", ".join(names)) if names else None


def _top_images(files: list[Path]) -> tuple[str, str] | None:
    """Image files at the top of a folder, as (what was found, what to move), or None."""
    if not files:
        return None
    shown = ", ".join(p.name for p in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    count = f"{len(files)} image{'s' if len(files) > 1 else ''}"
    return f"{count} at the top ({shown})", shown if len(files) <= 3 else f"the {count} at the top"


def _refuse_mixed(source: Path, chosen: tuple[str, str], other: tuple[str, str] | None) -> None:
    """Refuse two layouts in one folder, naming both and how to keep either: picking one would drop the other."""
    if other is None:
        return
    raise PairsSourceError(
        f"found {chosen[0]} and {other[0]} in {source}: which hold the pairs is unclear. Move {other[1]} away "
        f"to prepare {chosen[1]}, or move {chosen[1]} away to prepare {other[1]}."
    )


def _checked(splits: dict[str, SplitSource], source: Path) -> dict[str, SplitSource]:
    if not splits:
        raise PairsSourceError(
            f"no pairs found in {source}: expected side-by-side A|B images, A/ and B/ folders, or subfolders "
            "(train/ val/ test/) holding either."
        )
    bad = [name for name in splits if not SPLIT_NAME.match(name)]
    if bad:
        raise PairsSourceError(
            f"split folder names {', '.join(bad)} in {source} are not valid split names (letters, digits, _ and "
            "dots only); rename them."
        )
    return splits


def describe_layout(splits: dict[str, SplitSource]) -> str:
    kinds = {split.kind for split in splits.values()}
    names = "side-by-side A|B images" if kinds == {"aligned"} else "A/ and B/ folders"
    if len(kinds) > 1:
        names = "side-by-side A|B images and A/ and B/ folders"
    return names + (f" in {len(splits)} split folders" if len(splits) > 1 else "")


# ----- rows ------------------------------------------------------------------------------------------------------
def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG")
    except (OSError, KeyError, ValueError):
        # A mode PNG cannot store (CMYK, YCbCr): the RGB (or L) that training converts it to anyway.
        buffer = io.BytesIO()
        convert_image(image, 1 if len(image.getbands()) == 1 else 3).save(buffer, format="PNG")
    return buffer.getvalue()


def aligned_rows(
    files: list[str], root: str, conversion: PaletteConversion | None = None
) -> Iterator[dict[str, dict[str, Any]]]:
    """Each A|B file as a row of two lossless PNG halves, named after the file (never its local path); with
    ``conversion``, its side's half as class indices (named in its report relative to ``root``)."""
    for file in files:
        try:
            halves = dict(zip("AB", split_halves(file)))
        except DECODE_ERRORS as error:  # ValueError (odd width) included
            raise PairsSourceError(f"cannot split {file} into A|B halves: {error}") from error
        if conversion is not None:
            side = conversion.side
            halves[side] = conversion.convert(halves[side], f"{os.path.relpath(file, root)} ({side} half)")
        stem = Path(file).stem
        yield {f"image{side}": {"bytes": png_bytes(halves[side]), "path": f"{stem}_{side}.png"} for side in "AB"}


def folder_rows(
    pairs: list[tuple[str, str]], root: str, conversion: PaletteConversion | None = None
) -> Iterator[dict[str, dict[str, Any]]]:
    """Each (A file, B file) as a row holding the files' own bytes, unchanged; with ``conversion``, its side's file
    as a PNG of class indices instead (named in its report relative to ``root``)."""
    for files in pairs:
        row = {}
        for side, file in zip("AB", files):
            if conversion is not None and side == conversion.side:
                try:
                    with Image.open(file) as image:
                        labels = conversion.convert(image, os.path.relpath(file, root))
                except DECODE_ERRORS as error:
                    raise PairsSourceError(f"cannot read the label map {file}: {error}") from error
                row[f"image{side}"] = {"bytes": png_bytes(labels), "path": f"{Path(file).stem}.png"}
            else:
                row[f"image{side}"] = {"bytes": Path(file).read_bytes(), "path": Path(file).name}
        yield row


def build_split(split: SplitSource, cache_dir: str, root: Path, conversion: PaletteConversion | None = None) -> Any:
    """One split as a ``datasets.Dataset`` with the image bytes inside (written through ``cache_dir``); with
    ``conversion``, its side holds class indices (the generator runs in this process, so its report fills)."""
    import datasets

    features = datasets.Features({name: datasets.Image() for name in COLUMNS})
    if split.kind == "aligned":
        files = [str(p) for p in image_files(split.folders[0])]
        generator, kwargs = aligned_rows, {"files": files, "root": str(root), "conversion": conversion}
    else:
        pairs = match_by_stem(*split.folders)
        # Decode every pair once first, so a broken file or a size mismatch is named before anything is written.
        paths = datasets.Dataset.from_dict(
            {"imageA": [str(a) for a, _ in pairs], "imageB": [str(b) for _, b in pairs]},
            features=features,
        )
        info = SourceInfo("folders", str(split.folders[0].parent), None, list(COLUMNS))
        check_pairs(select_pairs(paths, info, column_a="imageA", column_b="imageB", direction="AtoB"))
        generator = folder_rows
        kwargs = {"pairs": [(str(a), str(b)) for a, b in pairs], "root": str(root), "conversion": conversion}
    try:
        return datasets.Dataset.from_generator(generator, features=features, gen_kwargs=kwargs, cache_dir=cache_dir)
    except datasets.exceptions.DatasetGenerationError as error:
        # datasets wraps what the generator raised; ours names the file, so show it as it is.
        if isinstance(error.__cause__, PairsSourceError):
            raise error.__cause__ from None
        raise


# ----- the entry point ------------------------------------------------------------------------------------------
def prepare_dataset(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    direction: str | None = None,
    push_to_hub: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    license: str | None = None,
    overwrite: bool = False,
    command: str | None = None,
    conversion: PaletteConversion | None = None,
) -> Any:
    """Turn the pairs in ``source`` into a ``datasets.DatasetDict`` saved at ``out`` (``save_to_disk``), written
    whole or not at all.

    Args:
        source: a folder in one of the layouts of the module docstring.
        out: the folder to write; an existing non-empty one needs ``overwrite=True``; one that is, holds or lies
            inside ``source`` is refused (``fileio.OutputOverlap``), as is a non-empty current folder.
        direction: ``AtoB``/``BtoA``, which side is meant as the input (for the dataset card).
        push_to_hub: ``"user/name"``: upload the card, then the dataset (parquet) there.
        private, token: for the Hub repo created by ``push_to_hub``.
        license: the data's license, for the card.
        overwrite: replace a non-empty ``out``.
        command: the command line that made it, shown in the card.
        conversion: turn its side (``conversion.side``) of every pair from palette colours into a single-channel
            PNG of class indices; ``conversion.report`` then counts the pixels far from every palette colour.

    Returns:
        The dataset as loaded back from ``out``: split name -> ``Dataset`` with ``imageA``/``imageB`` ``Image()``
        columns.
    """
    import datasets

    if direction is not None:
        check_choice("direction", direction, DIRECTIONS)
    root, target = Path(source).expanduser(), Path(out).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {os.fspath(source)!r}.")
    check_output_apart(target, {"source": root}, what="out")  # replaced whole: never over the images it reads
    check_replaceable(target, overwrite=overwrite, what="out")
    splits = find_splits(root)
    with tempfile.TemporaryDirectory(prefix="pix2pix-prepare-") as cache_dir:
        built = {name: build_split(split, cache_dir, root, conversion) for name, split in splits.items()}
        with atomic_directory(target) as staging:
            datasets.DatasetDict(built).save_to_disk(str(staging))
    prepared = datasets.load_from_disk(str(target))
    info = PreparedInfo(
        source_name=dataset_name(str(root)) or root.resolve().name,
        layout=describe_layout(splits),
        counts={name: len(split) for name, split in prepared.items()},
        direction=direction,
        license=license,
        command=command,
        labels=None if conversion is None else conversion_sentence(conversion),
    )
    if push_to_hub:
        push_dataset(prepared, push_to_hub, dataset_card(info, push_to_hub), private=private, token=token)
    return prepared


def push_dataset(
    dataset: Any, repo_id: str, card: str, *, private: bool | None = None, token: str | None = None
) -> str:
    """Upload ``card`` as the README, then ``dataset`` with ``DatasetDict.push_to_hub``, which merges its
    ``dataset_info``/``configs`` metadata into that card. Returns the dataset's URL on the Hub."""
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
    api.upload_file(
        path_or_fileobj=card.encode("utf-8"),
        path_in_repo="README.md",
        repo_id=repo_id,
        repo_type="dataset",
        commit_message="Dataset card",
    )
    dataset.push_to_hub(repo_id, private=private, token=token, commit_message="Upload paired images")
    return f"https://huggingface.co/datasets/{repo_id}"


# ----- the dataset card -----------------------------------------------------------------------------------------
def dataset_card(info: PreparedInfo, repo_id: str) -> str:
    """The README of a pushed paired dataset: Hub metadata plus source, splits, counts, direction and usage."""
    data = DatasetCardData(
        license=info.license or "other",
        task_categories=["image-to-image"],
        tags=["pix2pix", "paired-images", "pix2pix-hub"],
        pretty_name=info.source_name,
        size_categories=[size_category(sum(info.counts.values()))],
    )
    rows = "\n".join(f"| `{name}` | {count} |" for name, count in info.counts.items())
    example_split = DEFAULT_SPLIT if DEFAULT_SPLIT in info.counts else next(iter(info.counts))
    sides = next((pair for key, pair in KNOWN_SIDES.items() if key in info.source_name.lower()), None)
    columns = (
        f"`imageA` ({sides[0]}) and `imageB` ({sides[1]})" if sides else "`imageA` and `imageB`"
    ) + ", two `Image` columns of the same size in each row"
    lines = [
        f"# {info.source_name}: paired images for pix2pix",
        "",
        f"Image pairs prepared by pix2pix-hub from `{info.source_name}` ({info.layout}). Columns: {columns}.",
        "",
        "| split | pairs |",
        "|---|---|",
        rows,
        "",
        direction_line(info.direction),
        "",
        "Whole image files are stored with their original bytes; side-by-side A|B files are cut in two and each "
        "half is stored as a lossless PNG (the pixels the original decodes to).",
        "",
        license_line(info.license),
        "",
        *([info.labels, ""] if info.labels else []),
        "## Use it",
        "",
        "```python",
        "from pix2pix_hub.data import load_pairs",
        "",
        f'pairs = load_pairs("{repo_id}", split="{example_split}", '
        f'direction="{info.direction or "AtoB"}")  # input / target columns',
        "```",
        "",
        f"or train on it: `pix2pix-hub train --dataset {repo_id} --direction {info.direction or 'AtoB'}`.",
    ]
    if info.command:
        lines += ["", "## How it was made", "", f"`{info.command}`"]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"


def conversion_sentence(conversion: PaletteConversion) -> str:
    """How the card describes a converted side: which column, the palette, the classes in index order."""
    palette = conversion.palette
    classes = ", ".join(f"{index} {name}" for index, name in enumerate(palette.names))
    return (
        f"`image{conversion.side}` holds class-index maps (single-channel PNG, values 0..{palette.label_nc - 1}) "
        f"converted from the colours of the `{palette.name}` palette by nearest colour: {classes}. Train on them "
        f"with `--label_nc {palette.label_nc}`."
    )


def direction_line(direction: str | None) -> str:
    if direction is None:
        return "No translation direction was recorded: `AtoB` makes `imageA` the input, `BtoA` makes `imageB` it."
    source, target = ("imageA", "imageB") if direction == "AtoB" else ("imageB", "imageA")
    return f"Direction: `{direction}`, `{source}` is the input and `{target}` the target."


def license_line(license: str | None) -> str:
    if license:
        return f"License: `{license}`."
    return (
        "License: not stated by whoever prepared it (`other`). Check the original data's terms before use; the "
        "CMP facades, for example, are distributed for research use only."
    )


def size_category(count: int) -> str:
    """The Hub's ``size_categories`` bucket for ``count`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if count < limit:
            return name
    return "n>1M"
