"""Atomic writes with the permissions a normal write gets: the one way this package puts a file or folder on disk.

Everything is written under a hidden temporary name in the destination's folder and renamed into place when
complete, so a reader (or a run killed with -9 mid-write) never sees half a file: the destination holds the old
content or the new, nothing else. Temporary files are created with ``os.open(..., 0o666)`` and folders with
``os.mkdir(..., 0o777)``, so the umask applies exactly as for ``open(path, "w")`` (``tempfile.mkstemp`` would make
them owner-only whatever the umask).

Folders a command writes whole are checked first (``check_output_apart``, ``check_replaceable``): never one that is,
contains or lies inside an input, never a non-empty one without the caller's consent, never the current folder
swapped out from under the user (an empty current folder is filled in place instead).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
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
    with as short a gap as two renames). On an exception it is deleted and ``path`` is left as it was.

    Args:
        path: the folder to write. ``.`` and other relative names are made absolute first. The current folder
            cannot be swapped out (the shell would be left in a deleted folder): when it is ``path`` and empty,
            the entries are moved into it instead; when it is not empty, or lies inside ``path``, this is a
            ``FileExistsError`` before anything is written.

    Returns:
        (yields) the temporary folder to fill.
    """
    path = Path(os.path.abspath(os.path.expanduser(path)))
    if holds_working_folder(path):
        with filled_in_place(path) as staging:
            yield staging
        return
    staging = make_directory(temporary_sibling(path))
    try:
        yield staging
        replace_directory(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def filled_in_place(path: Path) -> Iterator[Path]:
    """``atomic_directory`` for the current folder: staged in a hidden folder inside it, then moved in entry by
    entry (each move atomic); only an empty folder is filled, since nothing of it can be swapped out whole."""
    if any(path.iterdir()) or resolved(path) != Path.cwd():
        raise working_folder_error(path, "the folder")
    staging = make_directory(temporary_sibling(path / "contents"))
    try:
        yield staging
        move_entries(staging, path)
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


def remove_directory(path: Path) -> None:
    """Delete the folder ``path`` so that its name goes at once: renamed to a temporary name first, then deleted,
    so a process killed midway leaves a temporary folder (``remove_temporaries`` clears it), never a half-deleted
    folder under the old name."""
    doomed = temporary_sibling(path)
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


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


# ----- output folders: apart from the inputs, replaced only when asked -------------------------------------------
class OutputOverlap(ValueError):
    """An output folder that is, contains or lies inside an input: writing it whole could replace or delete that
    input. Raised before anything is written."""


def resolved(path: str | os.PathLike) -> Path:
    """``path`` absolute with ``~``, ``.``, ``..`` and symlinks resolved: it has a name, and two names of one
    place compare equal."""
    return Path(path).expanduser().resolve()


def shown(path: str | os.PathLike) -> str:
    """``path`` as given, followed by the place it is when that reads differently: ``. (/home/me/run)``."""
    given, full = os.fspath(path), str(resolved(path))
    return given if given == full else f"{given} ({full})"


def same_place(first: Path, second: Path) -> bool:
    """Resolved paths naming one file or folder (also through a bind mount or a hard link)."""
    if first == second:
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist: then they are not the same
        return False


def overlap(output: Path, source: Path) -> str | None:
    """How the resolved ``output`` stands to the resolved ``source``: ``"is"``, ``"lies inside"``,
    ``"contains"``, or None when they are apart."""
    if same_place(output, source):
        return "is"
    if any(same_place(parent, source) for parent in output.parents):
        return "lies inside"
    if any(same_place(parent, output) for parent in source.parents):
        return "contains"
    return None


def check_output_apart(
    output: str | os.PathLike, inputs: Mapping[str, str | os.PathLike | None], *, what: str = "OUT"
) -> None:
    """Refuse an output folder that is, contains or lies inside one of ``inputs``, whatever may be overwritten.

    Args:
        output: the folder a command writes (and may replace whole).
        inputs: each input by the name the user knows it by (``"SOURCE"``, ``"--wheel"``); None: not given.
        what: the output's name in the message.

    Raises:
        OutputOverlap: one line naming both paths (symlinks and ``.`` resolved).
    """
    target = resolved(output)
    for label, given in inputs.items():
        relation = None if given is None else overlap(target, resolved(given))
        if relation is not None:
            raise OutputOverlap(
                f"{what} {shown(output)} {relation} {label} {shown(given)}: writing {what} could replace or delete "
                "it. Choose an output folder apart from the inputs."
            )


def holds_working_folder(path: Path) -> bool:
    """Whether the process's current folder is ``path`` or lies inside it."""
    try:
        here = Path.cwd()
    except FileNotFoundError:  # the current folder was deleted: nothing to protect
        return False
    return overlap(here, resolved(path)) in ("is", "lies inside")


def working_folder_error(path: str | os.PathLike, what: str) -> FileExistsError:
    relation = "is" if resolved(path) == Path.cwd() else "holds"
    return FileExistsError(
        f"{what} {shown(path)} {relation} the current folder and is not empty: it cannot be replaced while in use. "
        "Write to another folder (an empty current folder is fine)."
    )


def check_replaceable(output: str | os.PathLike, *, overwrite: bool, what: str = "OUT") -> None:
    """Refuse to replace what ``output`` holds unless ``overwrite``; refuse a file there, and a non-empty current
    folder (``atomic_directory`` cannot swap it out), even with ``overwrite``.

    Args:
        output: the folder to be written whole.
        overwrite: the caller's consent to replace a non-empty folder.
        what: the output's name in the message.

    Raises:
        FileExistsError: one line naming the path and what to do.
    """
    path = resolved(output)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{what} {shown(output)} is a file, not a folder; choose a folder to write.")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if holds_working_folder(path):
        raise working_folder_error(output, what)
    if not overwrite:
        raise FileExistsError(
            f"{what} {shown(output)} exists and is not empty; choose another folder, or pass --overwrite "
            "(overwrite=True) to replace it."
        )
