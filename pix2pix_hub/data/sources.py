"""Paired image sources -> a 🤗 ``datasets`` dataset with two ``Image()`` columns, ``input`` and ``target``.

``load_pairs(source)`` decides by what ``source`` is:

    a ``.parquet`` file (or a glob of them)      load_dataset("parquet", ...)
    a ``save_to_disk`` folder                    load_from_disk; ``split`` picks from a DatasetDict
    a folder with ``A/`` and ``B/``              pairs matched by file name (stem); also A/train + B/train
                                                 and train/A + train/B; an ``I/`` beside them (instance maps,
                                                 same names) adds an ``instance`` column
    a folder of side-by-side images              A left half, B right half (the authors' format); optional
                                                 train/ val/ test/ subfolders, ``split`` picks one
    an imagefolder with ``metadata.jsonl``       load_dataset("imagefolder"): ``imageA_file_name`` and
                                                 ``imageB_file_name`` name the two files of each row
    a folder holding parquet files               load_dataset(folder) (a cloned Hub dataset repo)
    a Hub id (``huggan/facades``)                load_dataset(id), served from the local cache when offline

Every source first becomes columns ``imageA``/``imageB`` (folders) or its own columns (Hub, parquet, disk);
``column_a``/``column_b`` pick two of them and ``direction`` says which one is the input; ``column_instance``
keeps a third one, the input's instance maps (pix2pixHD's ``--instance``), as ``instance``. The file formats
have their own modules: ``folders`` (which files are images, A/ and B/ matched by name) and ``aligned``
(side-by-side A|B files split in halves).
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..constants import DIRECTIONS, check_choice
from ..hub.ids import is_hub_id
from ..images.reading import describe_image_extensions, image_extensions
from .aligned import aligned_pairs
from .errors import DatasetUnavailableError, PairsSourceError
from .folders import folder_pairs, image_files

logger = logging.getLogger(__name__)

STREAM_SHARDS = 16
# datasets' imagefolder metadata: a folder holding one of these is read by datasets, never as A|B images.
METADATA_FILES = ("metadata.jsonl", "metadata.csv", "metadata.parquet")
INSTANCE_TEMP = "__pix2pix_instance"  # the instance column's name while input/target are renamed
LOCAL_ALTERNATIVE = (
    "--dataset PATH (a folder of side-by-side A|B images, a folder with A/ and B/, a save_to_disk folder or a "
    ".parquet file)"
)


@dataclass
class SourceInfo:
    """Where pairs came from, for summaries and error messages."""

    kind: str  # "hub", "parquet", "disk", "aligned", "folders", "imagefolder", "repo"
    location: str
    split: str | None
    columns: list[str]

    def __str__(self) -> str:
        split = f", split {self.split!r}" if self.split else ""
        return f"{self.location} ({KIND_NAMES[self.kind]}{split})"


KIND_NAMES = {
    "hub": "Hub dataset",
    "parquet": "parquet file",
    "disk": "save_to_disk folder",
    "aligned": "side-by-side A|B images",
    "folders": "A/ and B/ folders",
    "imagefolder": "imagefolder with metadata",
    "repo": "local dataset repo",
}


# ----- the public entry points ------------------------------------------------------------------------------------
def load_pairs(
    source: str | os.PathLike,
    *,
    split: str = "train",
    direction: str = "AtoB",
    column_a: str = "imageA",
    column_b: str = "imageB",
    streaming: bool = False,
    cache_dir: str | None = None,
    column_instance: str | None = None,
) -> Any:
    """Load paired images with exactly two ``Image()`` columns, ``input`` and ``target``.

    Rows are not decoded here; ``check_pairs`` decodes them all, ``PairedDataset`` one at a time.

    Args:
        source: a path or a Hub id (the module docstring lists the kinds).
        split: the split to read (a subfolder for folders; a single parquet source has none).
        direction: ``"AtoB"`` makes ``column_a`` the input; ``"BtoA"`` swaps them (facades labels -> photo).
        column_a: the A images' column; naming the same column twice gives identical input and target
            (colorization with ``input_nc=1``).
        column_b: the B images' column.
        streaming: read the source as a stream, nothing downloaded or cached first.
        cache_dir: where ``datasets`` caches what it reads (unset: its default, ``HF_DATASETS_CACHE``).
        column_instance: adds the input's instance maps as a third column (``"instance"`` for an ``I/`` folder).

    Returns:
        A ``datasets.Dataset``, or an ``IterableDataset`` with ``streaming``.
    """
    check_choice("direction", direction, DIRECTIONS)
    dataset, info = open_source(source, split=split, streaming=streaming, cache_dir=cache_dir)
    return select_pairs(
        dataset, info, column_a=column_a, column_b=column_b, direction=direction, column_instance=column_instance
    )


def split_pairs(pairs: Any, *, val_size: int | float, seed: int = 0) -> tuple[Any, Any]:
    """Hold out a validation set, the same for the same ``seed``; nothing is written to disk.

    Args:
        pairs: ``load_pairs`` output. A streaming dataset gives its first ``val_size`` pairs to validation.
        val_size: a number of pairs (int) or a fraction in (0, 1) (float; not for a stream).
        seed: draws which rows are held out.

    Returns:
        ``(train, val)``, disjoint, each in the row order of ``pairs``.
    """
    import datasets
    import numpy as np

    if isinstance(pairs, datasets.IterableDataset):
        if isinstance(val_size, bool) or not isinstance(val_size, int) or val_size < 1:
            raise ValueError(f"val_size={val_size!r}: a streaming dataset needs a whole number of pairs (>= 1).")
        return pairs.skip(val_size), pairs.take(val_size)
    total = len(pairs)
    if isinstance(val_size, float) and 0 < val_size < 1:
        count = max(1, int(round(total * val_size)))
    elif isinstance(val_size, (int, np.integer)) and not isinstance(val_size, bool) and val_size >= 1:
        count = int(val_size)
    else:
        raise ValueError(f"val_size={val_size!r} must be a number of pairs (>= 1) or a fraction in (0, 1).")
    if count >= total:
        raise ValueError(f"val_size={val_size!r} leaves no training pairs: the dataset has {total} pairs.")
    order = np.random.default_rng(seed).permutation(total)
    val_rows, train_rows = np.sort(order[:count]), np.sort(order[count:])
    # keep_in_memory: only an index list, and train_test_split cannot skip its cache files for on-disk datasets.
    return pairs.select(train_rows, keep_in_memory=True), pairs.select(val_rows, keep_in_memory=True)


# ----- finding the source ----------------------------------------------------------------------------------------
def open_source(
    source: str | os.PathLike, *, split: str = "train", streaming: bool = False, cache_dir: str | None = None
) -> tuple[Any, SourceInfo]:
    """The source as a dataset with its own columns (``imageA``/``imageB`` for folders), and what it was."""
    text = os.fspath(source)
    path = Path(text).expanduser()
    if text.endswith(".parquet"):
        files = sorted(glob.glob(str(path))) if glob.has_magic(text) else ([str(path)] if path.is_file() else [])
        if not files:
            raise FileNotFoundError(f"no parquet file matches {text!r}.")
        return _load_parquet(files, text, streaming, cache_dir)
    if path.is_dir():
        return _load_folder(path, split, streaming, cache_dir)
    if path.exists():
        raise PairsSourceError(
            f"{text} is a file; expected a folder of images, a save_to_disk folder, a .parquet file or a Hub id."
        )
    if not is_hub_id(text):
        raise FileNotFoundError(f"no such folder or file: {text!r}. Pass an existing path or a Hub id (user/name).")
    return _load_hub(text, split, streaming, cache_dir)


def _load_hub(repo_id: str, split: str, streaming: bool, cache_dir: str | None) -> tuple[Any, SourceInfo]:
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        dataset = datasets.load_dataset(repo_id, split=split, streaming=streaming, cache_dir=cache_dir)
    except (ConnectionError, DatasetNotFoundError) as error:
        offline = datasets.config.HF_HUB_OFFLINE
        reach = "the Hub is not reachable (HF_HUB_OFFLINE=1)" if offline else "it is not reachable on the Hub"
        cache = cache_dir or datasets.config.HF_DATASETS_CACHE
        raise DatasetUnavailableError(
            f"cannot load the Hub dataset {repo_id!r}: {reach} and it is not in the local cache ({cache}); "
            f"there is no local folder of that name either. Load it once with network access (it is then "
            f"served from the cache with HF_HUB_OFFLINE=1), or use local files: {LOCAL_ALTERNATIVE}."
        ) from error
    return dataset, SourceInfo("hub", repo_id, split, list(dataset.column_names or []))


def _load_parquet(files: list[str], text: str, streaming: bool, cache_dir: str | None) -> tuple[Any, SourceInfo]:
    import datasets

    # The file is the split: ``split`` does not apply to a single parquet source.
    dataset = datasets.load_dataset(
        "parquet", data_files={"train": files}, split="train", streaming=streaming, cache_dir=cache_dir
    )
    return dataset, SourceInfo("parquet", text, None, list(dataset.column_names or []))


def _load_folder(root: Path, split: str, streaming: bool, cache_dir: str | None) -> tuple[Any, SourceInfo]:
    import datasets

    if (root / "dataset_dict.json").is_file() or (root / "state.json").is_file():
        loaded = datasets.load_from_disk(str(root))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise PairsSourceError(
                    f"split {split!r} is not in {root}; available splits: {', '.join(loaded)}. Pass --split NAME."
                )
            loaded = loaded[split]
        else:
            split = None
        info = SourceInfo("disk", str(root), split, list(loaded.column_names))
        return (_stream(loaded) if streaming else loaded), info
    kind, folders, used_split = _resolve_folder(root, split)
    if kind == "repo":
        try:
            dataset = datasets.load_dataset(str(root), split=split, streaming=streaming, cache_dir=cache_dir)
        except ValueError as error:
            raise PairsSourceError(f"cannot read split {split!r} of the dataset folder {root}: {error}") from error
        return dataset, SourceInfo("repo", str(root), split, list(dataset.column_names or []))
    if kind == "imagefolder":
        dataset = _load_imagefolder(folders[0], streaming, cache_dir)
        return dataset, SourceInfo(kind, str(root), used_split, list(dataset.column_names or []))
    if kind == "folders":
        dataset = folder_pairs(*folders)
        if streaming:
            dataset = _stream(dataset)
    else:
        files = [str(p.resolve()) for p in image_files(folders[0])]
        if not files:
            raise PairsSourceError(f"no images in {folders[0]}.")
        dataset = aligned_pairs(files, streaming, cache_dir)
    instances = ["instance"] if len(folders) == 3 else []  # an I/ folder beside A/ and B/
    return dataset, SourceInfo(kind, str(root), used_split, ["imageA", "imageB", *instances])


def _load_imagefolder(folder: Path, streaming: bool, cache_dir: str | None) -> Any:
    """datasets' imagefolder: ``metadata.jsonl`` rows name their images in ``*_file_name`` keys, so
    ``{"imageA_file_name": "a/1.png", "imageB_file_name": "b/1.png"}`` gives the columns ``imageA``/``imageB``."""
    import datasets

    try:
        return datasets.load_dataset(
            "imagefolder", data_dir=str(folder), split="train", streaming=streaming, cache_dir=cache_dir
        )
    except (ValueError, FileNotFoundError) as error:
        raise PairsSourceError(
            f"cannot read the imagefolder {folder}: {error}. Each metadata row names its two images in "
            '"imageA_file_name" and "imageB_file_name" (paths relative to the metadata file).'
        ) from error


def _stream(dataset: Any) -> Any:
    """A local dataset as an IterableDataset in shards, so DataLoader workers can each read their own."""
    return dataset.to_iterable_dataset(num_shards=max(1, min(len(dataset), STREAM_SHARDS)))


def _resolve_folder(root: Path, split: str, descend: bool = True) -> tuple[str, tuple[Path, ...], str | None]:
    """("folders", (A, B[, I])) | ("imagefolder", (folder,)) | ("aligned", (folder,)) | ("repo", (root,)), and the
    split used (None: none applied). I is the instance-map folder, when there is one beside A/ and B/."""
    a, b, i = root / "A", root / "B", root / "I"
    if a.is_dir() and b.is_dir():
        if (a / split).is_dir() and (b / split).is_dir():
            return "folders", _with_instances(a / split, b / split, i / split), split
        if image_files(a) or image_files(b):
            return "folders", _with_instances(a, b, i), None
        available = sorted({p.name for p in a.iterdir() if p.is_dir()} & {p.name for p in b.iterdir() if p.is_dir()})
        if available:
            raise PairsSourceError(
                f"split {split!r} not found under {a} and {b}; available: {', '.join(available)}. Pass --split NAME."
            )
        raise PairsSourceError(f"no images ({describe_image_extensions()}) in {a} or {b}.")
    if a.is_dir() != b.is_dir():
        present, absent = (a, b) if a.is_dir() else (b, a)
        raise PairsSourceError(f"{root} has {present.name}/ but no {absent.name}/: A/ and B/ folders go together.")
    if any((root / name).is_file() for name in METADATA_FILES):
        return "imagefolder", (root,), None
    if descend and (root / split).is_dir():
        kind, folders, _ = _resolve_folder(root / split, split, descend=False)
        return kind, folders, split
    if image_files(root):
        return "aligned", (root,), None
    if next(root.rglob("*.parquet"), None) is not None:
        return "repo", (root,), split
    subfolders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if descend and subfolders:
        raise PairsSourceError(
            f"split {split!r} not found in {root}; available subfolders: {', '.join(subfolders)}. Pass --split NAME."
        )
    raise PairsSourceError(
        f"no images ({describe_image_extensions()}) in {root}. Expected side-by-side A|B images (optionally in "
        "train/ val/ test/ subfolders), A/ and B/ folders, a save_to_disk folder or parquet files."
    )


def _with_instances(a: Path, b: Path, instances: Path) -> tuple[Path, ...]:
    return (a, b, instances) if instances.is_dir() else (a, b)


# ----- picking the two columns ------------------------------------------------------------------------------------
def select_pairs(
    dataset: Any, info: SourceInfo, *, column_a: str, column_b: str, direction: str, column_instance: str | None = None
) -> Any:
    """``dataset`` reduced to ``input``/``target`` image columns (``column_a`` is the input for AtoB), and
    ``instance`` from ``column_instance`` when given."""
    import datasets

    if isinstance(dataset, datasets.IterableDataset):
        # A streamed map would decode and re-encode every image, and a corrupt one would fail inside datasets
        # before the bad-sample handling sees it: keep the stored bytes.
        dataset = dataset.decode(False)
    _check_columns(list(dataset.column_names or []), info, column_a, column_b, column_instance)
    input_column, target_column = (column_a, column_b) if direction == "AtoB" else (column_b, column_a)
    if column_instance in (input_column, target_column):
        raise PairsSourceError(f"column_instance={column_instance!r} is also the input or the target column.")
    if column_instance:
        dataset = dataset.rename_column(column_instance, INSTANCE_TEMP)
    kept = list(dict.fromkeys((input_column, target_column))) + ([INSTANCE_TEMP] if column_instance else [])
    dataset = _as_images(dataset, kept, info, column_instance).select_columns(kept)
    dataset = _input_and_target(dataset, input_column, target_column, column_instance)
    if column_instance:
        dataset = dataset.rename_column(INSTANCE_TEMP, "instance")
    for name in ("input", "target", *(["instance"] if column_instance else [])):
        if dataset.features is not None and dataset.features[name] != datasets.Image():
            dataset = dataset.cast_column(name, datasets.Image())
    return dataset


def _check_columns(
    columns: list[str], info: SourceInfo, column_a: str, column_b: str, column_instance: str | None
) -> None:
    """The named columns exist (a stream that does not list its columns is taken as it is)."""
    if column_instance and columns and column_instance not in columns:
        raise PairsSourceError(
            f"{info} has no instance maps (no column {column_instance!r}; columns: {', '.join(columns)}). Put them "
            "in an I/ folder beside A/ and B/, with the same file names, or name their column."
        )
    missing = [name for name in dict.fromkeys((column_a, column_b)) if columns and name not in columns]
    if missing:
        flags = "--column_a/--column_b (load_pairs(column_a=..., column_b=...))"
        raise PairsSourceError(
            f"{info} has no column {' or '.join(repr(m) for m in missing)}; available columns: "
            f"{', '.join(columns)}. Choose the two image columns with {flags}."
        )


def _as_images(dataset: Any, kept: list[str], info: SourceInfo, column_instance: str | None) -> Any:
    """The ``kept`` columns cast to images where they hold something else (file names); text is refused."""
    import datasets

    features = dataset.features
    for name in kept:
        if features is not None and not isinstance(features[name], datasets.Image):
            try:
                if _holds_text(dataset, name):
                    raise ValueError("text that is not image file names")
                dataset = dataset.cast_column(name, datasets.Image())
            except (TypeError, ValueError) as error:
                shown = column_instance if name == INSTANCE_TEMP else name
                raise PairsSourceError(
                    f"column {shown!r} of {info} holds {features[name]}, not images; choose image columns with "
                    f"--column_a/--column_b."
                ) from error
    return dataset


def _input_and_target(dataset: Any, input_column: str, target_column: str, column_instance: str | None) -> Any:
    """The two columns renamed ``input`` and ``target``; one column named twice is copied (colorization)."""
    import datasets

    if input_column != target_column:
        # Through temporary names, so that columns already called "target"/"input" can swap.
        dataset = dataset.rename_columns({input_column: "__pix2pix_input", target_column: "__pix2pix_target"})
        return dataset.rename_columns({"__pix2pix_input": "input", "__pix2pix_target": "target"})
    # Copy the stored bytes, do not decode them.
    raw = datasets.Image(decode=False)
    dataset = dataset.rename_column(input_column, "input").cast_column("input", raw)
    copy_features = datasets.Features({"input": raw, "target": raw})
    if column_instance:
        copy_features = datasets.Features({"input": raw, INSTANCE_TEMP: datasets.Image(), "target": raw})
    return dataset.map(lambda batch: {"target": batch["input"]}, batched=True, features=copy_features)


def _holds_text(dataset: Any, name: str) -> bool:
    """A string column whose first value is not an image file name (a caption, a label)."""
    import datasets

    feature = dataset.features[name]
    if not (isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")):
        return False
    first = next(iter(dataset.select_columns([name]).take(1)), {}).get(name) or ""
    return not first.lower().endswith(tuple(image_extensions()))
