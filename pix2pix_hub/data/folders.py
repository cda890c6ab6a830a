"""Image files on disk as pairs: which files are images, and A/ and B/ folders whose files are matched by name.

``folder_pairs(A, B)`` pairs ``A/1.jpg`` with ``B/1.png`` (and, with an ``I/`` folder, ``I/1.png`` as the instance
map), in natural order (``2`` before ``10``); a name in only one folder, or twice in one, is a ``PairsSourceError``
that lists them. ``data prepare`` uses ``image_files`` and ``match_by_stem`` too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..images.reading import describe_image_extensions, image_extensions
from .errors import PairsSourceError


def natural_key(name: str) -> list[Any]:
    """A sort key that orders numbers by value: ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by extension, hidden files skipped), in natural order (2 before 10)."""
    files = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in image_extensions() and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def folder_pairs(folder_a: Path, folder_b: Path, folder_instance: Path | None = None) -> Any:
    """Pairs of files with the same stem in ``folder_a`` and ``folder_b`` (``A/1.jpg`` with ``B/1.png``), and
    with ``folder_instance`` an ``instance`` column of the files with those stems there (``I/1.png``)."""
    import datasets

    pairs = match_by_stem(folder_a, folder_b)
    columns = {"imageA": [str(a) for a, _ in pairs], "imageB": [str(b) for _, b in pairs]}
    if folder_instance is not None:
        # Same stems in the same natural order as the pairs, or a PairsSourceError listing the unmatched names.
        columns["instance"] = [str(i) for _, i in match_by_stem(folder_a, folder_instance)]
    features = datasets.Features({name: datasets.Image() for name in columns})
    return datasets.Dataset.from_dict(columns, features=features)


def match_by_stem(folder_a: Path, folder_b: Path) -> list[tuple[Path, Path]]:
    """The files of ``folder_a`` and ``folder_b`` paired by name without extension, in natural order; a name in
    only one folder, or twice in one, is a ``PairsSourceError`` listing them."""
    by_stem = []
    for folder in (folder_a, folder_b):
        stems: dict[str, Path] = {}
        for file in image_files(folder):
            if file.stem in stems:
                raise PairsSourceError(
                    f"{folder} has two images named {file.stem!r} ({stems[file.stem].name}, {file.name}); "
                    "pairs are matched by file name, so keep one."
                )
            stems[file.stem] = file
        if not stems:
            raise PairsSourceError(f"no images ({describe_image_extensions()}) in {folder}.")
        by_stem.append(stems)
    only_a = sorted(set(by_stem[0]) - set(by_stem[1]), key=natural_key)
    only_b = sorted(set(by_stem[1]) - set(by_stem[0]), key=natural_key)
    if only_a or only_b:

        def listing(names: list[str], folder: Path) -> str:
            shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
            return f"only in {folder}: {shown}" if names else ""

        details = "; ".join(text for text in (listing(only_a, folder_a), listing(only_b, folder_b)) if text)
        raise PairsSourceError(f"unmatched file names ({details}). Every image in A/ needs one with its name in B/.")
    return [(by_stem[0][stem], by_stem[1][stem]) for stem in sorted(by_stem[0], key=natural_key)]
