"""Inference latency per 256x256 image for the paper's generator (unet_256, random init): batch 1 and batch 8.

Paths measured:
    torch_eager          generator(x) under torch.no_grad, NCHW, eval mode
    torch_channels_last  the same with model and input in channels_last memory format, under inference_mode
    pix2pix_torch        Pix2Pix(backend="torch").translate_tensor(x): the library's eager torch path
    pix2pix_pil          Pix2Pix([PIL images]): the default path (onnxruntime on CPU) end to end, with uint8 conversion
    pix2pix_onnxruntime  Pix2Pix(backend="onnxruntime").translate_tensor(x)
    onnxruntime          the ``export-onnx`` file on onnxruntime's CPU provider

Prints one progress line per measurement on stderr; the last line on stdout is one JSON object.

    python benchmarks/bench_infer.py [--ngf 64] [--size 256] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from pix2pix_hub import Pix2Pix, unet_256
from pix2pix_hub.export import export_onnx, onnx_session


def measure(runs: dict[str, Callable[[], object]], warmup: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each run, ``repeats`` rounds after ``warmup`` untimed ones.

    Rounds go through all the runs in turn, so a neighbour's load on this shared machine hits each one alike.
    """
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ngf", type=int, default=64, help="generator width (64 = the paper)")
    parser.add_argument("--size", type=int, default=256, help="image side (a multiple of 256)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: theirs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = unet_256(ngf=args.ngf).eval()
    channels_last = unet_256(ngf=args.ngf).eval().to(memory_format=torch.channels_last)
    channels_last.load_state_dict(generator.state_dict())
    pix2pix_torch = Pix2Pix(generator, batch_size=max(args.batch_sizes), backend="torch")
    pix2pix = Pix2Pix(copy.deepcopy(generator), batch_size=max(args.batch_sizes))
    # Its own copy: Pix2Pix's torch path restores batch-norm counters in place, which bumps the weight versions
    # the onnxruntime backend watches, so a shared generator would be re-exported before every call.
    pix2pix_ort = Pix2Pix(copy.deepcopy(generator), batch_size=max(args.batch_sizes), backend="onnxruntime")

    with tempfile.TemporaryDirectory() as tmp:
        export = export_onnx(generator, os.path.join(tmp, "g.onnx"))
        session = onnx_session(os.path.join(tmp, "g.onnx"), threads=args.threads)

    def eager(x: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return generator(x)

        return run

    def eager_channels_last(x: torch.Tensor) -> Callable[[], object]:
        x = x.contiguous(memory_format=torch.channels_last)

        def run() -> object:
            with torch.inference_mode():
                return channels_last(x)

        return run

    def library(x: torch.Tensor) -> Callable[[], object]:
        return lambda: pix2pix_torch.translate_tensor(x)

    def library_pil(x: torch.Tensor) -> Callable[[], object]:
        images = [Image.fromarray(np.asarray(image)) for image in ((x + 1) * 127.5).byte().permute(0, 2, 3, 1)]
        return lambda: pix2pix(images)

    def library_ort(x: torch.Tensor) -> Callable[[], object]:
        return lambda: pix2pix_ort.translate_tensor(x)

    def ort(x: torch.Tensor) -> Callable[[], object]:
        feed = {"input": x.numpy()}
        return lambda: session.run(["output"], feed)

    paths = {
        "torch_eager": eager,
        "torch_channels_last": eager_channels_last,
        "pix2pix_torch": library,
        "pix2pix_pil": library_pil,
        "pix2pix_onnxruntime": library_ort,
        "onnxruntime": ort,
    }
    results: dict[str, dict[str, float]] = {name: {} for name in paths}
    for batch_size in args.batch_sizes:
        x = torch.rand(batch_size, 3, args.size, args.size) * 2 - 1
        times = measure({name: make(x) for name, make in paths.items()}, args.warmup, args.repeats)
        for name, seconds in times.items():
            per_image_ms = statistics.median(seconds) / batch_size * 1000
            results[name][f"batch{batch_size}_ms_per_image"] = round(per_image_ms, 1)
            results[name][f"batch{batch_size}_ms_per_image_min"] = round(min(seconds) / batch_size * 1000, 1)
            print(
                f"{name:20s} batch {batch_size}: {per_image_ms:8.1f} ms/image (median of {args.repeats})",
                file=sys.stderr,
            )

    summary = {
        "benchmark": "inference",
        "model": f"unet_256(ngf={args.ngf})",
        "image": f"{args.size}x{args.size}",
        "unit": "ms per image (median; _min = fastest repeat)",
        "results": results,
        "onnx_max_abs_diff": export["max_abs_diff"],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "repeats": args.repeats,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
