"""Decoding pairs, and the fail-fast check that every pair of a dataset decodes.

Rows are read with decoding disabled (``{"bytes", "path"}`` dicts) and decoded here (``images.reading.open_image``),
so an error can name the row and the file, which ``datasets``' own decoder cannot. A row may carry a third image, its
input's instance map (column ``instance``; pix2pixHD's ``--instance``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..images.labels import INDEX_MODES, LabelMapError
from ..images.reading import DECODE_ERRORS, image_file, open_image

MAX_LISTED = 10
INSTANCE_COLUMN = "instance"


class BadSampleError(ValueError):
    """A pair that cannot be decoded or transformed; the message names the row and the file(s)."""


def describe_row(index: int, row: dict[str, Any]) -> str:
    """``row 7 (input a/7.jpg, target b/7.jpg)``: how errors name a pair."""
    files = [(name, image_file(row.get(name))) for name in ("input", "target")]
    named = [(name, file) for name, file in files if file]
    if not named:
        return f"row {index}"
    if len(named) == 2 and named[0][1] == named[1][1]:
        return f"row {index} ({named[0][1]})"
    return f"row {index} (" + ", ".join(f"{name} {file}" for name, file in named) + ")"


def open_pair(index: int, row: dict[str, Any]) -> tuple[Image.Image, Image.Image]:
    """Decode both images of a raw row; a ``BadSampleError`` names the row, the side and the file."""
    images = []
    for name in ("input", "target"):
        try:
            images.append(open_image(row[name]))
        except DECODE_ERRORS as error:
            file = image_file(row[name])
            where = f"{name} image" + (f" {file}" if file else "")
            raise BadSampleError(f"row {index}: cannot read the {where}: {error}") from error
    return images[0], images[1]


def open_instance(index: int, row: dict[str, Any]) -> Image.Image | None:
    """The decoded instance map of a raw row, or None when the row has none (the transform then says what is
    missing); a ``BadSampleError`` names the row and the file when it does not decode."""
    value = row.get(INSTANCE_COLUMN)
    if value is None:
        return None
    try:
        return open_image(value)
    except DECODE_ERRORS as error:
        file = image_file(value)
        raise BadSampleError(
            f"row {index}: cannot read the instance map{f' {file}' if file else ''}: {error}"
        ) from error


def label_map_problem(index: int, row: dict[str, Any], error: LabelMapError) -> str:
    """One line naming the map's own file: ``row 3: label map A/3.png: label value 9 outside 0..7 ...``."""
    what = "instance map" if error.side == "instance" else "label map"
    file = image_file(row.get(error.side))
    return f"row {index}: {what}{f' {file}' if file else ''}: {error}"


def raw_rows(pairs: Any) -> Any:
    """The same pairs with decoding switched off (the instance column's too): rows of ``{"bytes", "path"}``
    dicts."""
    import datasets  # an optional extra: only callers that hold a dataset pay for it

    if isinstance(pairs, datasets.IterableDataset):
        return pairs.decode(False)
    missing = [name for name in ("input", "target") if name not in pairs.column_names]
    if missing:
        raise ValueError(
            f"the dataset has no {' and no '.join(repr(m) for m in missing)} column (columns: "
            f"{', '.join(pairs.column_names)}); build it with pix2pix_hub.data.load_pairs."
        )
    for name in ("input", "target", INSTANCE_COLUMN):
        feature = pairs.features.get(name)
        if isinstance(feature, datasets.Image) and feature.decode:
            pairs = pairs.cast_column(name, datasets.Image(decode=False))
    return pairs


def failure_reason(error: Exception) -> str:
    """What went wrong with a pair, without where (row, file): equal for pairs that fail the same way."""
    if isinstance(error, BadSampleError) and error.__cause__ is not None:
        return str(error.__cause__)
    return str(error)


@dataclass
class PairsReport:
    """What ``scan_pairs`` found: row count, problems (``"row 3 (a.jpg): reason"``) and, for each, its reason
    alone (``reasons``), size and mode counts."""

    rows: int = 0
    bad: list[str] = field(default_factory=list)
    input_sizes: Counter = field(default_factory=Counter)
    target_sizes: Counter = field(default_factory=Counter)
    modes: Counter = field(default_factory=Counter)
    reasons: list[str] = field(default_factory=list)

    def add(self, message: str, reason: str) -> None:
        self.bad.append(message)
        self.reasons.append(reason)


def scan_pairs(pairs: Any, *, transform: Any = None, max_rows: int | None = None) -> PairsReport:
    """Decode every pair (or the first ``max_rows``) and collect what is wrong instead of stopping at the first.

    Checked per row: both images decode completely and input and target have the same size.

    Args:
        pairs: ``load_pairs`` output.
        transform: a ``PairedTransform`` whose checks apply too: it accepts the size (``crop`` mode needs images
            at least ``crop_size``) and, for label maps (its ``label_nc``, ``instance``), its ``check_maps``: class
            values below ``label_nc``, an instance map of the input's size (a bad map is named by its own file).
        max_rows: stop after this many rows (None: all).

    Returns:
        The rows read, the problems (one line each, naming row and file), the sizes and modes seen.
    """
    report = PairsReport()
    for index, row in enumerate(raw_rows(pairs)):
        if max_rows is not None and index >= max_rows:
            break
        report.rows += 1
        try:
            source, target = open_pair(index, row)
        except BadSampleError as error:
            report.add(str(error), failure_reason(error))
            continue
        report.input_sizes[source.size] += 1
        report.target_sizes[target.size] += 1
        report.modes[(source.mode, target.mode)] += 1
        where = describe_row(index, row)
        if source.size != target.size:
            reason = (
                f"input is {source.width}x{source.height} but target is {target.width}x{target.height}; "
                "the two images of a pair must have the same size"
            )
            report.add(f"{where}: {reason}", reason)
        elif transform is not None:
            problem = transform_problem(transform, index, row, source)
            if problem is not None:
                report.add(*problem)
    return report


def transform_problem(transform: Any, index: int, row: dict[str, Any], source: Image.Image) -> tuple[str, str] | None:
    """The line saying why ``transform`` would refuse this row (its size, its label or instance map), and the
    reason alone; None when it would not. A map's problem names the map's own file (``label_map_problem``)."""
    try:
        transform.check_size(source.size)
        if getattr(transform, "label_nc", 0) or getattr(transform, "instance", False):
            transform.check_maps(source, open_instance(index, row) if transform.instance else None)
    except LabelMapError as error:
        return label_map_problem(index, row, error), str(error)
    except BadSampleError as error:  # an instance map that does not decode; the message names row and file
        return str(error), failure_reason(error)
    except ValueError as error:
        return f"{describe_row(index, row)}: {error}", str(error)
    return None


def likely_fix(transform: Any, input_modes: set[str]) -> str:
    """What to change when every pair fails alike: colour inputs read as label maps are most likely photos (or
    colour-coded maps) given ``--label_nc`` by mistake. Empty when there is nothing more to say than the reason."""
    if getattr(transform, "label_nc", 0) and input_modes and not input_modes & set(INDEX_MODES):
        return (
            f" These inputs are {'/'.join(sorted(input_modes))} images, photos most likely, not class-index maps: "
            "train without --label_nc to read them as images."
        )
    return ""


def all_alike(messages: list[str], reasons: list[str], transform: Any, input_modes: set[str]) -> str | None:
    """For pairs that all fail for one reason (skipping them would leave nothing): "the same way as" the first
    pair, its reason and ``likely_fix``, in one line; None when the reasons differ."""
    if not reasons or len(set(reasons)) != 1:
        return None
    where = messages[0].removesuffix(reasons[0]).rstrip(": ")
    first = "the same way as" if len(messages) > 1 else "as"
    return f"{first} {where}: {reasons[0].rstrip('.')}.{likely_fix(transform, input_modes)}"


def nothing_left(messages: list[str], reasons: list[str], transform: Any, input_modes: set[str]) -> BadSampleError:
    """The error for ``--skip_bad_samples`` skipping every pair: one line, why they fail and what to change."""
    count = f"all {len(messages)} pairs" if len(messages) > 1 else "the only pair"
    head = f"--skip_bad_samples skipped {count}, so nothing is left to train on"
    alike = all_alike(messages, reasons, transform, input_modes)
    if alike is not None:
        return BadSampleError(f"{head}; {'they all fail' if len(messages) > 1 else 'it fails'} {alike}")
    return BadSampleError(
        f"{head}; the first: {messages[0].rstrip('.')}. `python -m pix2pix_hub.data SOURCE` lists every bad pair."
    )


def check_pairs(pairs: Any, *, transform: Any = None, max_rows: int | None = None) -> None:
    """Fail fast before training: ``scan_pairs`` (each pair decoded once), and an error if anything is wrong.

    Raises:
        BadSampleError: listing every bad row (and file) of ``pairs``, or saying it has none. A streaming dataset
            is read to the end unless ``max_rows`` stops it.
    """
    report = scan_pairs(pairs, transform=transform, max_rows=max_rows)
    if report.rows == 0:
        raise BadSampleError("the dataset has no pairs.")
    alike = all_alike(report.bad, report.reasons, transform, {mode for mode, _ in report.modes})
    if len(report.bad) == report.rows and alike is not None:  # skipping them would leave nothing: not offered
        what = f"all {report.rows} pairs fail" if report.rows > 1 else "its only pair fails"
        raise BadSampleError(f"{what} {alike}")
    if report.bad:
        listed = "\n  ".join(report.bad[:MAX_LISTED])
        more = f"\n  ... and {len(report.bad) - MAX_LISTED} more" if len(report.bad) > MAX_LISTED else ""
        raise BadSampleError(
            f"{len(report.bad)} of {report.rows} pairs cannot be used:\n  {listed}{more}\n"
            "Fix or remove these files, or skip them while training with --skip_bad_samples "
            "(PairedDataset(skip_bad_samples=True))."
        )
