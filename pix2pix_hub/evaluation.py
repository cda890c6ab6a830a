"""Measure a translator on paired data: L1, PSNR, SSIM per image and mean, an HTML results page, a PNG grid, FID.

``evaluate`` writes into ``output_dir``:

    metrics.json        {"num_images", "mean": {l1, psnr, ssim}, "per_image": [...], "fid", "fid_note", "skipped"}
    index.html          one row per pair: input | output | target, with that row's metrics
    images/             the PNGs the page shows (``00000_input.png``, ``00000_output.png``, ``00000_target.png``)
    grid.png            the first ``grid_rows`` rows as one picture

Metrics are computed on the saved 8-bit images (what a user sees), with ``pix2pix_hub.metrics.image_metrics``:
identical images give L1 0, PSNR capped at 100 dB, SSIM 1. FID uses torchmetrics with Inception weights from a
local file only (nothing is downloaded); without them it is reported as unavailable, with the reason.
"""

from __future__ import annotations

import html
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .imaging import convert_image, image_to_tensor, make_grid
from .metrics import PSNR_CAP_DB, image_metrics
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

    ``feature`` is any module mapping uint8 ``(N, 3, H, W)`` to ``(N, D)`` features; otherwise the standard
    2048-d Inception-v3 pool features are loaded from ``inception_weights`` (torch-fidelity must be installed).
    Raises ``FidUnavailable`` with the reason when neither is usable.
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


class UnreadableImage(ValueError):
    """A stored image that cannot be decoded or is too large; the message names the row and the file."""


def decode_image(value: Any, max_pixels: int, where: str) -> Image.Image:
    """A PIL image from a dataset value: a PIL image, or a raw ``{"bytes", "path"}`` dict (``Image(decode=False)``).

    Raw values are checked against ``max_pixels`` from the header before decoding, so a huge image is refused
    without being decoded.
    """
    if isinstance(value, Image.Image):
        size = value.size
    else:
        from .data.checks import BAD_IMAGE_PREFIX, DECODE_ERRORS, image_file, open_image

        file = image_file(value)
        where = f"{where} ({file})" if file else where
        data = value.get("bytes") if isinstance(value, dict) else None
        try:
            if data is None or not data.startswith(BAD_IMAGE_PREFIX):
                with Image.open(io.BytesIO(data) if data is not None else image_file(value)) as header:
                    check_size(header.size, max_pixels, where)
            value = open_image(value)
        except DECODE_ERRORS as error:
            if isinstance(error, UnreadableImage):
                raise
            raise UnreadableImage(f"{where}: cannot read the image: {error}") from None
        size = value.size
    check_size(size, max_pixels, where)
    return value


def check_size(size: tuple[int, int], max_pixels: int, where: str) -> None:
    """Refuse images above ``max_pixels`` (``Pix2Pix.max_pixels``) with a message saying what to do."""
    width, height = size
    if width * height > max_pixels:
        raise UnreadableImage(
            f"{where}: {width}x{height} is {width * height / 1e6:.1f} megapixels, above the limit of "
            f"{max_pixels / 1e6:.1f} (max_pixels={max_pixels}). Downscale it, or pass --max_pixels N if you have "
            "the memory."
        )


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
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Translate every ``dataset[i]["input"]`` and compare it with ``dataset[i]["target"]`` (PIL images).

    ``dataset`` is a ``datasets.Dataset`` from ``pix2pix_hub.data.load_pairs`` or a list of such dicts. Rows that
    cannot be read, are larger than ``pix2pix.max_pixels`` or whose target size differs from the input are
    skipped and listed under ``"skipped"``. ``fid`` is a ``fid_metric()`` (or None, with ``fid_note`` saying
    why). ``info`` (e.g. model, dataset, split) heads the report and titles the page. Returns the
    ``metrics.json`` content.
    """
    output_dir = Path(output_dir)
    (output_dir / "images").mkdir(parents=True, exist_ok=True)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    indices: Iterable[int] = range(count)
    if progress is not None:
        indices = progress(indices)
    per_image: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    grid: list[list[Image.Image]] = []
    pending: list[tuple[int, Image.Image, Image.Image]] = []

    def translate(images: list[Image.Image]) -> list[Image.Image]:
        return pix2pix(images, size_mode=size_mode, dropout_at_test=dropout_at_test)

    def flush() -> None:
        try:
            outputs = translate([item[1] for item in pending])
        except Exception:  # retried one by one, so that only the image the model cannot take is skipped
            outputs = []
            for index, source, _ in pending:
                try:
                    outputs.append(translate([source])[0])
                except Exception as error:
                    reason = f"translation failed on {source.width}x{source.height}: {type(error).__name__}: {error}"
                    skipped.append({"index": index, "reason": reason})
                    outputs.append(None)
        for (index, source, target), output in zip(pending, outputs):
            if output is None:
                continue
            try:
                scores = image_metrics(
                    image_to_tensor(output, pix2pix.out_channels).unsqueeze(0),
                    image_to_tensor(target, pix2pix.out_channels).unsqueeze(0),
                )
            except (RuntimeError, ValueError) as error:  # SSIM's 11x11 Gaussian window refuses images a few pixels wide
                skipped.append({"index": index, "reason": f"metrics failed on {source.width}x{source.height}: {error}"})
                continue
            per_image.append({"index": index, **{name: float(scores[name][0]) for name in METRIC_NAMES}})
            for kind, image in (("input", source), ("output", output), ("target", target)):
                save_image_atomic(image, output_dir / "images" / f"{index:05d}_{kind}.png")
            if len(grid) < grid_rows:
                grid.append([source, output, target])
            if fid is not None:
                fid.update(_fid_input(target), real=True)
                fid.update(_fid_input(output), real=False)
        pending.clear()

    if hasattr(dataset, "cast_column"):  # a datasets.Dataset: read stored bytes, so errors can name the file
        from .data.checks import raw_rows

        dataset = raw_rows(dataset)
    for index in indices:
        try:
            row = dataset[index]
            source, target = (
                convert_image(decode_image(row[name], pix2pix.max_pixels, f"row {index} {name}"), channels)
                for name, channels in (("input", pix2pix.in_channels), ("target", pix2pix.out_channels))
            )
        except Exception as error:  # a row that does not decode is reported, not fatal
            reason = str(error) if isinstance(error, UnreadableImage) else f"{type(error).__name__}: {error}"
            skipped.append({"index": index, "reason": reason})
            continue
        if source.size != target.size:
            skipped.append({"index": index, "reason": f"input {source.size} and target {target.size} differ in size"})
            continue
        pending.append((index, source, target))
        if len(pending) >= batch_size:
            flush()
    if pending:
        flush()

    report: dict[str, Any] = {
        **(info or {}),
        "num_images": len(per_image),
        "mean": {
            name: (sum(row[name] for row in per_image) / len(per_image) if per_image else None) for name in METRIC_NAMES
        },
        "psnr_cap_db": PSNR_CAP_DB,
        "fid": None,
        "fid_note": fid_note,
        "per_image": per_image,
        "skipped": skipped,
    }
    if fid is not None:
        if len(per_image) >= 2:
            # Rounding can leave a tiny negative value for identical sets; the distance itself is >= 0.
            report["fid"] = max(0.0, float(fid.compute()))
            report["fid_note"] = None
        else:
            report["fid_note"] = f"FID not computed: it needs at least 2 images, got {len(per_image)}."
    if grid:
        save_image_atomic(make_grid(grid), output_dir / "grid.png")
    write_text_atomic(output_dir / "index.html", results_page(per_image, report, page_title(info)))
    write_text_atomic(output_dir / "metrics.json", json.dumps(report, indent=2) + "\n")
    return report


def page_title(info: dict[str, Any] | None) -> str:
    """``pix2pix results: model on dataset (split)`` from whichever of those ``info`` holds."""
    info = info or {}
    where = f" on {info['dataset']}" if info.get("dataset") else ""
    split = f" ({info['split']})" if info.get("split") else ""
    return f"pix2pix results: {info.get('model', 'model')}{where}{split}"


def results_page(per_image: list[dict[str, Any]], report: dict[str, Any], title: str = "pix2pix results") -> str:
    """The HTML page: the means, then one table row per image (input | output | target and its metrics)."""
    mean = report["mean"]
    summary = ", ".join(f"{name.upper()} {mean[name]:.4f}" for name in METRIC_NAMES if mean[name] is not None)
    fid_line = f"FID {report['fid']:.3f}" if report.get("fid") is not None else (report.get("fid_note") or "")
    rows = []
    for row in per_image:
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


def save_image_atomic(image: Image.Image, path: Path, image_format: str | None = None) -> None:
    """Save ``image`` to ``path`` through a temp file in the same folder, so readers never see half a file."""
    image_format = image_format or Image.registered_extensions().get(path.suffix.lower(), "PNG")
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            image.save(file, format=image_format, **({"quality": 95} if image_format == "JPEG" else {}))
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same folder."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
