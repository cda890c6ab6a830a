"""int8 inference next to fp32: ms per image of unet_256 on eager torch, fp32 onnxruntime and int8 onnxruntime.

Speed is measured on unet_256 (``--ngf``, random weights: speed does not depend on them) at each ``--sizes`` side
and ``--batch_sizes``, in alternating rounds so a neighbour's load hits every path alike. Also reported: the
first-call cost of each path (export or quantization, session creation, first run), the file sizes, the CPU's
capabilities, and the int8 quality gate's PSNR vs fp32 on a *trained* model: ``--model DIR`` (a saved
``Pix2Pix`` folder) calibrated on the images in ``--calibration DIR``, or by default a small U-Net trained here in a
few seconds on a smooth synthetic colour mapping. Progress goes to stderr; the last line on stdout is one JSON
object.

    python benchmarks/bench_int8.py [--quick] [--threads 2] [--model outputs/facades-quick \\
        --calibration ../shared/data/facades/train --aligned_half right]

``--max_seconds`` (default 60) bounds each size/batch's rounds and, apart, the tiny model's training: each stops
once it has passed (at least one round; the report's ``rounds`` and ``quality_vs_fp32.model`` say how many ran).

Figures are only meaningful on a quiet machine: on shared cores every path slows down, unevenly.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import torch.nn.functional as F
from bench_common import TimeBound, write_report  # this folder is on sys.path when the script runs
from PIL import Image

from pix2pix_hub import Pix2Pix, UNetGenerator, unet_256
from pix2pix_hub.images.arrays import model_to_uint8
from pix2pix_hub.inference.export import export_onnx, onnx_session
from pix2pix_hub.inference.quantize import int8_is_fast, quantize_int8
from pix2pix_hub.performance import cpu_capabilities, cpu_name


def measure(
    runs: dict[str, Callable[[], object]], warmup: int, repeats: int, max_seconds: float | None = None
) -> dict[str, list[float]]:
    """Seconds per call of each run: ``repeats`` rounds through all runs in turn (fewer once ``max_seconds`` have
    passed, at least one), after ``warmup`` untimed ones."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in TimeBound(max_seconds).loop(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def timed(action: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def smooth_images(count: int, side: int, seed: int) -> torch.Tensor:
    """``(count, 3, side, side)`` in [-1, 1]: coarse random colours upsampled (image-like, unlike uniform noise)."""
    coarse = torch.rand(count, 3, 6, 6, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False).clamp(-1, 1)


def build_paths(generator: torch.nn.Module, folder: Path, threads: int | None, num_calibration: int) -> dict:
    """Export fp32, quantize to int8 (calibrated on image-like inputs) and open both: the first-call costs."""
    _, export_s = timed(lambda: export_onnx(generator, folder / "fp32.onnx", check=False))
    calibration = list(smooth_images(num_calibration, 256, seed=1).numpy())
    # Random weights: the gate's PSNR means nothing here (the trained-model figure below is the quality one).
    _, quantize_s = timed(lambda: quantize_int8(folder / "fp32.onnx", folder / "int8.onnx", calibration, min_psnr_db=0))
    fp32, fp32_session_s = timed(lambda: onnx_session(folder / "fp32.onnx", threads=threads))
    int8, int8_session_s = timed(lambda: onnx_session(folder / "int8.onnx", threads=threads))
    first = smooth_images(1, 256, seed=2)
    _, torch_first_s = timed(lambda: eager_run(generator, first)())
    _, fp32_first_s = timed(lambda: fp32.run(None, {"input": first.numpy()}))
    _, int8_first_s = timed(lambda: int8.run(None, {"input": first.numpy()}))
    first_call = {
        "torch_eager": {"first_run_s": round(torch_first_s, 3)},
        "onnxruntime_fp32": {
            "export_s": round(export_s, 2),
            "session_s": round(fp32_session_s, 2),
            "first_run_s": round(fp32_first_s, 3),
        },
        "onnxruntime_int8": {
            "export_and_quantize_s": round(export_s + quantize_s, 2),
            "quantize_s": round(quantize_s, 2),
            "session_s": round(int8_session_s, 2),
            "first_run_s": round(int8_first_s, 3),
        },
    }
    sizes = {"fp32_onnx": (folder / "fp32.onnx").stat().st_size, "int8_onnx": (folder / "int8.onnx").stat().st_size}
    return {"sessions": {"fp32": fp32, "int8": int8}, "first_call": first_call, "bytes": sizes}


def eager_run(generator: torch.nn.Module, batch: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return generator(batch)

    return run


def speed(generator: torch.nn.Module, sessions: dict, args: argparse.Namespace) -> dict:
    """ms per image (median over the rounds) of each path at each size and batch size."""
    results: dict[str, dict] = {}
    for side in args.sizes:
        for batch_size in args.batch_sizes:
            batch = torch.rand(batch_size, 3, side, side, generator=torch.Generator().manual_seed(side)) * 2 - 1
            feed = {"input": batch.numpy()}
            runs = {
                "torch_eager": eager_run(generator, batch),
                "onnxruntime_fp32": lambda feed=feed: sessions["fp32"].run(None, feed),
                "onnxruntime_int8": lambda feed=feed: sessions["int8"].run(None, feed),
            }
            times = measure(runs, args.warmup, args.repeats, args.max_seconds)
            row = {name: round(statistics.median(seconds) / batch_size * 1000, 1) for name, seconds in times.items()}
            row["int8_speedup_vs_fp32"] = round(row["onnxruntime_fp32"] / row["onnxruntime_int8"], 2)
            row["int8_speedup_vs_torch"] = round(row["torch_eager"] / row["onnxruntime_int8"], 2)
            row["rounds"] = len(times["torch_eager"])
            results[f"{side}x{side}_batch{batch_size}"] = row
            print(f"{side}x{side} batch {batch_size}: {row}", file=sys.stderr)
    return results


def trained_tiny_generator(
    steps: int, count: int, max_seconds: float | None = None
) -> tuple[torch.nn.Module, list[np.ndarray], str]:
    """A 5-level U-Net (ngf 8, 32x32) trained to mix colours, curve and blur them (``steps``, fewer once
    ``max_seconds`` have passed); calibration images for it."""
    mix = torch.tensor([[0.2, 0.7, 0.1], [0.6, -0.3, 0.4], [-0.5, 0.2, 0.8]])
    torch.manual_seed(0)
    generator = UNetGenerator(num_downs=5, ngf=8)
    optimizer = torch.optim.Adam(generator.parameters(), 2e-3, betas=(0.5, 0.999))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only waits on a second thread
    done = 0
    for step in TimeBound(max_seconds).loop(steps):
        done = step + 1
        images = smooth_images(4, 32, seed=step)
        target = F.avg_pool2d(torch.tanh(1.5 * torch.einsum("oc,nchw->nohw", mix, images)), 5, 1, 2)
        loss = (generator(images) - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.set_num_threads(threads)
    calibration = [model_to_uint8(image) for image in smooth_images(count, 32, seed=10_000).numpy()]
    return generator.eval(), calibration, f"synthetic: UNet 5 downs, ngf 8, {done} steps, L1 {loss.item():.3f}"


def folder_images(folder: Path, count: int, side: int, half: str) -> list[np.ndarray]:
    """Up to ``count`` images of ``folder`` (sorted by name) as uint8 RGB ``(side, side, 3)``: the chosen half of
    an aligned A|B file, centre-cropped to a square and resized."""
    images = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))[:count]:
        image = Image.open(path).convert("RGB")
        if half != "none":
            width, height = image.size
            image = image.crop((0, 0, width // 2, height) if half == "left" else (width // 2, 0, width, height))
        crop = min(image.size)
        left, top = (image.width - crop) // 2, (image.height - crop) // 2
        image = image.crop((left, top, left + crop, top + crop)).resize((side, side), Image.BICUBIC)
        images.append(np.asarray(image))
    return images


def quality(args: argparse.Namespace, folder: Path) -> dict:
    """The quality gate's report on a trained model (the worst held-out image's PSNR vs fp32)."""
    if args.model:
        generator = Pix2Pix.from_pretrained(args.model).generator.eval()
        calibration = folder_images(Path(args.calibration), args.num_calibration, args.psnr_size, args.aligned_half)
        described = f"{args.model}, {len(calibration)} images of {args.calibration} at {args.psnr_size}px"
    else:
        generator, calibration, described = trained_tiny_generator(
            args.train_steps, args.num_calibration, args.max_seconds
        )
    export_onnx(generator, folder / "trained.onnx", check=False)
    report = quantize_int8(folder / "trained.onnx", folder / "trained.int8.onnx", calibration, min_psnr_db=0)
    print(f"quality ({described}): {report['psnr_db']} dB worst, {report['psnr_db_mean']} dB mean", file=sys.stderr)
    kept = ("psnr_db", "psnr_db_mean", "max_abs_diff_levels", "calibration_inputs", "held_out_inputs")
    return {"model": described, **{key: report[key] for key in kept}}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ngf", type=int, default=64, help="speed model width (64 = the paper's unet_256)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sides (multiples of 256)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: theirs)")
    parser.add_argument("--num_calibration", type=int, default=32, help="calibration inputs (a quarter held out)")
    parser.add_argument("--model", help="a trained Pix2Pix folder for the PSNR (default: a tiny one trained here)")
    parser.add_argument("--calibration", help="folder of input images for --model")
    parser.add_argument("--aligned_half", choices=("none", "left", "right"), default="none", help="A|B files: input")
    parser.add_argument("--psnr_size", type=int, default=256, help="side of the --calibration images")
    parser.add_argument("--train_steps", type=int, default=300, help="steps of the default tiny trained model")
    parser.add_argument("--quick", action="store_true", help="check it runs: ngf 16, 256 only, batch 1, 2 repeats")
    parser.add_argument("--max_seconds", type=float, default=60.0, help="time bound of each timing loop")
    parser.add_argument("--json_out", help="also write the report to this file")
    args = parser.parse_args()
    if args.model and not args.calibration:
        parser.error("--model needs --calibration (a folder of its input images)")
    if args.quick:
        args.ngf, args.sizes, args.batch_sizes, args.repeats, args.num_calibration = 16, [256], [1], 2, 8
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    capabilities = cpu_capabilities()
    torch.manual_seed(0)
    generator = unet_256(ngf=args.ngf).eval()
    with tempfile.TemporaryDirectory() as scratch:
        built = build_paths(generator, Path(scratch), args.threads, args.num_calibration)
        results = speed(generator, built["sessions"], args)
        quality_report = quality(args, Path(scratch))
    summary = {
        "benchmark": "int8_inference",
        "model": f"unet_256(ngf={args.ngf}), random weights",
        "unit": "ms per image (median of the rounds)",
        "results": results,
        "first_call": built["first_call"],
        "bytes": built["bytes"],
        "quality_vs_fp32": quality_report,
        "cpu": cpu_name(),
        "cpu_capabilities": capabilities,
        "int8_is_fast": int8_is_fast(capabilities),
        "cpu_count": os.cpu_count(),
        "threads": args.threads or torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "repeats": args.repeats,
        "max_seconds": args.max_seconds,
        "quick": args.quick,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    write_report(summary, args.json_out)


if __name__ == "__main__":
    main()
