"""Measure a translator on paired data: L1, PSNR, SSIM per image and mean, an HTML results page, a PNG grid, FID.

``evaluate`` writes into ``output_dir``:

    metrics.json        {"num_images", "mean": {l1, psnr, ssim}, "per_image": [...], "fid", "fid_note", "skipped"}
    index.html          one row per pair: input | output | target, with that row's metrics
    images/             the PNGs the page shows (``00000_input.png``, ``00000_output.png``, ``00000_target.png``)
    grid.png            the first ``grid_rows`` rows as one picture

A label-map model (``pix2pix.label_nc``; pix2pixHD) gets each input as stored, a class-index map, and its
instance map when it takes them (an ``instance`` column: ``load_pairs(column_instance=...)``); ``Pix2Pix`` encodes
them as for any call. Its page and grid show the map in ``labels.label_palette`` colours.

Metrics are computed on the saved 8-bit images (what a user sees), with ``pix2pix_hub.images.metrics.image_metrics``:
identical images give L1 0, PSNR capped at 100 dB, SSIM 1. FID uses torchmetrics with Inception weights from a
local file only (nothing is downloaded); without them it is reported as unavailable, with the reason.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.checks import INSTANCE_COLUMN, raw_rows
from ..fileio import save_image, write_text
from ..images.arrays import convert_image, image_to_tensor, make_grid
from ..images.labels import label_indices, labels_to_image
from ..images.metrics import PSNR_CAP_DB, image_metrics
from ..images.reading import UnreadableImage, decode_image
from .batch import batches, progress_bar, translate_with_retry
from .pipeline import Pix2Pix

METRIC_NAMES = ("l1", "psnr", "ssim")
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
FID_HELP = (
    f"FID needs the Inception weights in a local file: pass --inception_weights PATH/{FID_WEIGHTS_NAME} "
    "(torch-fidelity's weights; nothing is downloaded at run time) and install torch-fidelity."
)


class FidUnavailable(RuntimeError):
    """FID cannot be computed here: no local Inception weights, or torch-fidelity is not installed."""


def fid_metric(inception_weights: str | os.PathLike | None = None, feature: nn.Module | None = None) -> Any:
    """A torchmetrics ``FrechetInceptionDistance`` that never downloads.

    Args:
        inception_weights: torch-fidelity's Inception-v3 weights file (the standard 2048-d pool features).
        feature: instead, any module mapping uint8 ``(N, 3, H, W)`` to ``(N, D)`` features.

    Returns:
        The metric. Raises ``FidUnavailable`` with the reason when neither is usable (or torch-fidelity is
        missing).
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if feature is not None:
        return FrechetInceptionDistance(feature=feature)
    if inception_weights is None:
        raise FidUnavailable(f"FID not computed: no Inception weights given. {FID_HELP}")
    if not Path(inception_weights).is_file():
        raise FidUnavailable(f"FID not computed: --inception_weights {inception_weights} is not a file. {FID_HELP}")
    try:
        import torch_fidelity  # noqa: F401
    except ImportError as error:
        raise FidUnavailable(
            "FID not computed: torch-fidelity is not installed (`pip install torch-fidelity`); it provides the "
            "Inception-v3 network that the weights belong to."
        ) from error
    return FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(inception_weights))


def _fid_input(image: Image.Image) -> torch.Tensor:
    """PIL image -> uint8 ``(1, 3, H, W)``: Inception takes RGB, so grayscale is repeated."""
    array = np.array(convert_image(image, 3), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


Pair = tuple[int, Image.Image, Image.Image, Image.Image | None]  # (row index, input, target, instance map)


class Scores:
    """What ``evaluate`` gathers batch by batch: metrics per image, skipped rows, the grid's rows, FID statistics.

    Each scored pair's input, output and target are saved to ``output_dir/images`` as they come, so a long run
    keeps its images even if it is stopped.
    """

    def __init__(self, output_dir: Path, channels: int, grid_rows: int, fid: Any = None, label_nc: int = 0) -> None:
        self.output_dir = output_dir
        self.channels = channels  # the model's output channels: outputs and targets are compared as such
        self.label_nc = label_nc  # a label-map model's classes: its inputs are shown in their palette colours
        self.grid_rows = grid_rows
        self.fid = fid
        self.per_image: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.grid: list[list[Image.Image]] = []

    def skip(self, index: int, reason: str) -> None:
        self.skipped.append({"index": index, "reason": reason})

    def add_batch(self, pairs: Sequence[Pair], outputs: Sequence[Image.Image | Exception]) -> None:
        """Score one batch; ``outputs`` are ``translate_with_retry``'s (an exception for an image that failed)."""
        for (index, source, target, _), output in zip(pairs, outputs):
            if isinstance(output, Exception):
                failure = f"{type(output).__name__}: {output}"
                self.skip(index, f"translation failed on {source.width}x{source.height}: {failure}")
            else:
                self.add(index, source, output, target)

    def add(self, index: int, source: Image.Image, output: Image.Image, target: Image.Image) -> None:
        try:
            scores = image_metrics(
                image_to_tensor(output, self.channels).unsqueeze(0), image_to_tensor(target, self.channels).unsqueeze(0)
            )
        except (RuntimeError, ValueError) as error:  # SSIM's 11x11 Gaussian window refuses images a few pixels wide
            self.skip(index, f"metrics failed on {source.width}x{source.height}: {error}")
            return
        self.per_image.append({"index": index, **{name: float(scores[name][0]) for name in METRIC_NAMES}})
        if self.label_nc:  # class indices 0..N-1 would show as a black image
            source = labels_to_image(label_indices(source, self.label_nc), self.label_nc)
        for kind, image in (("input", source), ("output", output), ("target", target)):
            save_image(image, self.output_dir / "images" / f"{index:05d}_{kind}.png")
        if len(self.grid) < self.grid_rows:
            self.grid.append([source, output, target])
        if self.fid is not None:
            self.fid.update(_fid_input(target), real=True)
            self.fid.update(_fid_input(output), real=False)

    def report(self, info: dict[str, Any] | None, fid_note: str | None) -> dict[str, Any]:
        """The ``metrics.json`` content."""
        count = len(self.per_image)
        report: dict[str, Any] = {
            **(info or {}),
            "num_images": count,
            "mean": {
                name: (sum(row[name] for row in self.per_image) / count if count else None) for name in METRIC_NAMES
            },
            "psnr_cap_db": PSNR_CAP_DB,
            "fid": None,
            "fid_note": fid_note,
            "per_image": self.per_image,
            "skipped": self.skipped,
        }
        if self.fid is not None:
            if count >= 2:
                # Rounding can leave a tiny negative value for identical sets; the distance itself is >= 0.
                report["fid"] = max(0.0, float(self.fid.compute()))
                report["fid_note"] = None
            else:
                report["fid_note"] = f"FID not computed: it needs at least 2 images, got {count}."
        return report


def evaluate(
    pix2pix: Pix2Pix,
    dataset: Sequence[dict[str, Any]],
    output_dir: str | os.PathLike,
    *,
    size_mode: str | None = None,
    dropout_at_test: bool = False,
    batch_size: int = 8,
    grid_rows: int = 8,
    limit: int | None = None,
    fid: Any = None,
    fid_note: str | None = None,
    progress: bool = False,
    info: dict[str, Any] | None = None,
    style: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Translate every ``dataset[i]["input"]`` and compare it with ``dataset[i]["target"]`` (PIL images).

    Args:
        pix2pix: the translator (a label-map model's inputs are class-index maps, with ``dataset[i]["instance"]``
            when it takes instance maps); ``size_mode``, ``dropout_at_test`` and ``batch_size`` go to its calls.
        dataset: a ``datasets.Dataset`` from ``pix2pix_hub.data.load_pairs``, or a list of such dicts. Rows that
            cannot be read, are above ``pix2pix.max_pixels`` or whose target size differs from the input are
            skipped and listed under ``"skipped"``.
        output_dir: where the page, images, grid and ``metrics.json`` go.
        grid_rows, limit: rows in ``grid.png``; pairs evaluated (None: all).
        fid, fid_note: a ``fid_metric()``, or None with ``fid_note`` saying why.
        progress: show a bar on stderr.
        info: heads the report and titles the page (e.g. model, dataset, split).
        style: a SPADE model's style for every output, ``{"style": image}`` or ``{"seed": n}``; None or empty: the
            zero code (the prior's mean), so that scores are reproducible.

    Returns:
        The ``metrics.json`` content.
    """
    output_dir = Path(output_dir)
    (output_dir / "images").mkdir(parents=True, exist_ok=True)  # an unwritable folder fails now, not after the work
    if hasattr(dataset, "cast_column"):  # a datasets.Dataset: read stored bytes, so errors can name the file
        dataset = raw_rows(dataset)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    scores = Scores(output_dir, pix2pix.out_channels, grid_rows, fid, pix2pix.label_nc)
    for batch in batches(readable_pairs(pix2pix, dataset, count, scores, progress), batch_size):
        sources = [source for _, source, _, _ in batch]
        instances = [ids for _, _, _, ids in batch]
        instances = instances if any(ids is not None for ids in instances) else None
        options = {"size_mode": size_mode, "dropout_at_test": dropout_at_test, **(style or {})}
        outputs = translate_with_retry(pix2pix, sources, instances, **options)
        scores.add_batch(batch, outputs)
    report = scores.report(info, fid_note)
    if scores.grid:
        save_image(make_grid(scores.grid), output_dir / "grid.png")
    write_text(output_dir / "index.html", results_page(report, page_title(info)))
    write_text(output_dir / "metrics.json", json.dumps(report, indent=2) + "\n")
    return report


def readable_pairs(
    pix2pix: Pix2Pix, rows: Sequence[dict[str, Any]], count: int, scores: Scores, progress: bool
) -> Iterator[Pair]:
    """``(index, input, target, instance map or None)`` for each of the first ``count`` rows that decodes, with
    input and target of one size; the other rows go to ``scores.skip`` with the reason."""
    with progress_bar(count, progress, unit="pair") as bar:
        for index in range(count):
            try:
                source, target, ids = read_row(pix2pix, rows[index], index)
            except Exception as error:  # noqa: BLE001 - a row that does not decode is reported, not fatal
                scores.skip(
                    index, str(error) if isinstance(error, UnreadableImage) else f"{type(error).__name__}: {error}"
                )
            else:
                if source.size == target.size:
                    yield index, source, target, ids
                else:
                    scores.skip(index, f"input {source.size} and target {target.size} differ in size")
            bar.update(1)


def read_row(pix2pix: Pix2Pix, row: dict[str, Any], index: int) -> tuple[Image.Image, Image.Image, Image.Image | None]:
    """One row decoded for the model: the input as its ``in_channels`` (a label-map model's as stored: class
    indices, never converted to colours), the target as its ``out_channels``, and the instance map when the model
    takes them and the row has one (else None: the pipeline then uses the class boundaries)."""
    source = decode_image(row["input"], pix2pix.max_pixels, f"row {index} input")
    source = source if pix2pix.label_nc else convert_image(source, pix2pix.in_channels)
    target = convert_image(decode_image(row["target"], pix2pix.max_pixels, f"row {index} target"), pix2pix.out_channels)
    if not (pix2pix.label_nc and pix2pix.info.instance and row.get(INSTANCE_COLUMN) is not None):
        return source, target, None
    return source, target, decode_image(row[INSTANCE_COLUMN], pix2pix.max_pixels, f"row {index} instance map")


def page_title(info: dict[str, Any] | None) -> str:
    """``pix2pix results: model on dataset (split)`` from whichever of those ``info`` holds."""
    info = info or {}
    where = f" on {info['dataset']}" if info.get("dataset") else ""
    split = f" ({info['split']})" if info.get("split") else ""
    return f"pix2pix results: {info.get('model', 'model')}{where}{split}"


def results_page(report: dict[str, Any], title: str = "pix2pix results") -> str:
    """The HTML page: the means, then one table row per image (input | output | target and its metrics)."""
    mean = report["mean"]
    summary = ", ".join(f"{name.upper()} {mean[name]:.4f}" for name in METRIC_NAMES if mean[name] is not None)
    fid_line = f"FID {report['fid']:.3f}" if report.get("fid") is not None else (report.get("fid_note") or "")
    rows = []
    for row in report["per_image"]:
        cells = "".join(
            f'<td><img src="images/{row["index"]:05d}_{kind}.png" alt="{kind} {row["index"]}" loading="lazy"></td>'
            for kind in ("input", "output", "target")
        )
        scores = f"L1 {row['l1']:.4f}<br>PSNR {row['psnr']:.2f}<br>SSIM {row['ssim']:.4f}"
        rows.append(f"<tr><td>{row['index']}</td>{cells}<td>{scores}</td></tr>")
    skipped = "".join(f"<li>row {item['index']}: {html.escape(item['reason'])}</li>" for item in report["skipped"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif}} td{{padding:4px;vertical-align:top}} img{{max-width:256px}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>{report["num_images"]} images. Mean: {html.escape(summary)}. {html.escape(fid_line)}</p>
<table><thead><tr><th>#</th><th>input</th><th>output</th><th>target</th><th>metrics</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
{f"<h2>Skipped</h2><ul>{skipped}</ul>" if skipped else ""}
</body></html>
"""
