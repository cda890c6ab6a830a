"""Atomic writes with the permissions a normal write gets: the one way this package puts a file or folder on disk.

Everything is written under a hidden temporary name in the destination's folder and renamed into place when
complete, so a reader (or a run killed with -9 mid-write) never sees half a file: the destination holds the old
content or the new, nothing else. Temporary files are created with ``os.open(..., 0o666)`` and folders with
``os.mkdir(..., 0o777)``, so the umask applies exactly as for ``open(path, "w")`` (``tempfile.mkstemp`` would make
them owner-only whatever the umask).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

TEMP_MARK = ".tmp-"  # every temporary name starts with this (hidden, and easy to clean up)


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name next to ``path`` (same folder, so the final rename stays on one file system)."""
    return path.with_name(f"{TEMP_MARK}{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on a clean exit it is flushed to disk and renamed to ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_file(path, "wb") as file:
        file.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_file(path, "w") as file:
        file.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, values: Any) -> Path:
    return write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def save_image(image: Image.Image, path: str | os.PathLike, image_format: str | None = None) -> Path:
    """Save a PIL image in the format ``image_format`` or the suffix names (PNG when the suffix is not one PIL
    writes); JPEGs at quality 95."""
    from PIL import Image

    path = Path(path)
    if image_format is None:
        image_format = Image.registered_extensions().get(path.suffix.lower())
        image_format = image_format if image_format in Image.SAVE else "PNG"
    with atomic_file(path, "wb") as file:
        image.save(file, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))
    return path


def make_directory(path: Path) -> Path:
    """``os.mkdir`` with the umask applied (as ``mkdir`` does), parents included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkdir(path, 0o777)
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder to fill; on a clean exit it replaces ``path`` whole (an existing folder is swapped out
    with as short a gap as two renames). On an exception it is deleted and ``path`` is left as it was."""
    path = Path(path)
    staging = make_directory(temporary_sibling(path))
    try:
        yield staging
        replace_directory(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_directory(source: Path, destination: Path) -> None:
    """Move the folder ``source`` to ``destination``, replacing an existing one."""
    if not destination.exists():
        os.replace(source, destination)
        return
    old = temporary_sibling(destination)
    os.replace(destination, old)
    os.replace(source, destination)
    shutil.rmtree(old, ignore_errors=True)


def move_entries(source: Path, destination: Path, last: tuple[str, ...] = ()) -> None:
    """Move every entry of the folder ``source`` into ``destination`` (each move atomic), leaving the
    destination's other entries alone; names in ``last`` are moved after the rest."""
    for entry in sorted(source.iterdir(), key=lambda p: p.name in last):
        target = destination / entry.name
        if entry.is_dir():
            replace_directory(entry, target)
        else:
            os.replace(entry, target)


def remove_temporaries(folder: Path) -> None:
    """Delete what a killed writer left in ``folder`` (names starting with ``TEMP_MARK``)."""
    if folder.is_dir():
        for entry in folder.iterdir():
            if not entry.name.startswith(TEMP_MARK):
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
