"""Inference through ``Pix2Pix`` on each engine: eager torch, fp32 onnxruntime and int8 onnxruntime, side by side.

Measured, for the paper's generator (``unet_256``, random weights: speed does not depend on them) or a trained
model folder (``--model``):
    ms per image       ``Pix2Pix.translate_tensor(x)`` at each ``--sizes`` side and ``--batch_sizes``, the three
                       engines taking turns within each round, so a neighbour's load falls on all of them alike;
                       each timed call follows an untimed one of the same engine (as in steady use: its threads
                       awake, the previous engine's spinning threads quiet; timed straight after another engine,
                       int8 at 256x256 batch 1 measured 61 ms instead of ~29)
    first-call cost    torch: the first call; fp32: the first call with an empty ONNX cache (export + session + run)
                       and with the export cached; int8: quantizing (export, calibration, quality gate), then a fresh
                       ``from_pretrained(precision="int8")`` and its first call
    memory             resident memory of a fresh process per engine after loading the model, and its peak after
                       one call at the largest size and batch
    PSNR vs fp32       the int8 graph's stored gate report (worst and mean held-out calibration input) and the PSNR
                       of its outputs from fp32's on the benchmark inputs
plus ``cpu_capabilities()`` (int8 is fast with AVX-512 VNNI, AVX-VNNI or AMX only). Progress goes to stderr; the
last line on stdout is one JSON object.

    python benchmarks/bench_infer.py            # 256 and 512, batch 1 and 8: ~1.5 min on 2 quiet cores, more under load
    python benchmarks/bench_infer.py --repeats 5 --num_calibration 32 --threads 2       # the figures to quote
    python benchmarks/bench_infer.py --model outputs/facades-quick --calibration_dataset ../shared/data/facades/train

``--max_seconds`` (default 60) bounds the timed rounds of each size and batch: they stop once it has passed (at
least one round; ``rounds`` in the report says how many ran where fewer than ``--repeats``).

With random weights the PSNR says nothing about quality (calibrate a trained model for that). Figures are only
meaningful on a quiet machine: on shared cores every engine slows down, unevenly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
import torch.nn.functional as F
from bench_common import TimeBound, write_report  # this folder is on sys.path when the script runs

from pix2pix_hub import Pix2Pix, unet_256
from pix2pix_hub.constants import INT8_ONNX_NAME
from pix2pix_hub.images.metrics import psnr_per_image
from pix2pix_hub.inference.quantize import int8_is_fast
from pix2pix_hub.performance import cpu_capabilities, cpu_name

ENGINES = ("torch_eager", "onnxruntime_fp32", "onnxruntime_int8")
OPTIONS = {  # from_pretrained options of each engine
    "torch_eager": {"backend": "torch"},
    "onnxruntime_fp32": {"backend": "onnxruntime", "precision": "fp32"},
    "onnxruntime_int8": {"backend": "onnxruntime", "precision": "int8"},
}


def timed(action: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = action()
    return result, time.perf_counter() - start


def smooth_images(count: int, side: int, seed: int, channels: int = 3) -> torch.Tensor:
    """``(count, channels, side, side)`` in [-1, 1]: coarse random colours upsampled (image-like, unlike noise)."""
    coarse = torch.rand(count, channels, 6, 6, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False).clamp(-1, 1)


def prepare_folder(args: argparse.Namespace, scratch: Path) -> Path:
    """The model folder benchmarked: a copy of ``--model``, or a random-init unet_256 of width ``--ngf``."""
    torch.manual_seed(0)
    if args.model:
        model = Pix2Pix.from_pretrained(args.model, backend="torch", load_discriminator=False)
    else:
        model = Pix2Pix(unet_256(ngf=args.ngf).eval(), backend="torch")
    return model.save_pretrained(scratch / "model", card="")


def calibration_source(args: argparse.Namespace, pix2pix: Pix2Pix) -> Any:
    """What ``quantize`` calibrates on: ``--calibration`` (a folder of input images), ``--calibration_dataset``
    (a dataset's input side, in the model's direction), or smooth synthetic images at 256x256."""
    if args.calibration:
        return args.calibration
    if args.calibration_dataset:
        from pix2pix_hub.data import load_pairs
        from pix2pix_hub.inference.batch import dataset_calibration_images

        pairs = load_pairs(args.calibration_dataset, split=args.split, direction=pix2pix.direction or "AtoB")
        return dataset_calibration_images(pairs, args.num_calibration, pix2pix.in_channels, pix2pix.max_pixels)
    return list(smooth_images(args.num_calibration, 256, seed=1, channels=pix2pix.in_channels))


def build_engines(folder: Path, args: argparse.Namespace) -> tuple[dict[str, Pix2Pix], dict, dict]:
    """Load the three engines, timing what their first calls cost; returns them, the first-call costs and the
    int8 graph's report."""
    first = smooth_images(1, 256, seed=2)
    costs: dict[str, dict[str, float]] = {}
    torch_model, load_s = timed(lambda: Pix2Pix.from_pretrained(folder, **OPTIONS["torch_eager"]))
    _, first_s = timed(lambda: torch_model.translate_tensor(first))
    costs["torch_eager"] = {"load_s": round(load_s, 2), "first_call_s": round(first_s, 3)}

    fp32 = Pix2Pix.from_pretrained(folder, **OPTIONS["onnxruntime_fp32"])
    _, cold_s = timed(lambda: fp32.translate_tensor(first))  # the cache is empty: export + session + run
    cached = Pix2Pix.from_pretrained(folder, **OPTIONS["onnxruntime_fp32"])
    _, cached_s = timed(lambda: cached.translate_tensor(first))
    costs["onnxruntime_fp32"] = {
        "first_call_with_export_s": round(cold_s, 2),
        "first_call_cached_s": round(cached_s, 2),
    }

    source = calibration_source(args, fp32)
    report, quantize_s = timed(  # no gate (0 dB): the benchmark reports the figure whatever it is
        lambda: fp32.quantize(source, path=folder / INT8_ONNX_NAME, num_calibration=args.num_calibration, min_psnr_db=0)
    )
    print(f"int8 graph: {report['psnr_db']} dB worst, {report['psnr_db_mean']} dB mean vs fp32", file=sys.stderr)
    int8, int8_load_s = timed(lambda: Pix2Pix.from_pretrained(folder, **OPTIONS["onnxruntime_int8"]))
    _, int8_first_s = timed(lambda: int8.translate_tensor(first))
    costs["onnxruntime_int8"] = {
        "quantize_s": round(quantize_s, 2),
        "load_s": round(int8_load_s, 2),
        "first_call_s": round(int8_first_s, 3),
    }
    engines = {"torch_eager": torch_model, "onnxruntime_fp32": cached, "onnxruntime_int8": int8}
    return engines, costs, report


def speed(engines: dict[str, Pix2Pix], args: argparse.Namespace) -> tuple[dict, dict, dict]:
    """ms per image (median of the rounds) of each engine at each size and batch size, the PSNR of the int8
    outputs from the fp32 outputs on those inputs, and the rounds timed (fewer than ``--repeats`` where the time
    bound ended them)."""
    results, psnr, rounds = {}, {}, {}
    for side in args.sizes:
        for batch_size in args.batch_sizes:
            batch = smooth_images(batch_size, side, seed=side + batch_size, channels=engines["torch_eager"].in_channels)
            outputs: dict[str, torch.Tensor] = {}

            def run(name: str, batch: torch.Tensor = batch, outputs: dict = outputs) -> None:
                outputs[name] = engines[name].translate_tensor(batch)

            for _ in range(args.warmup):
                for name in engines:
                    run(name)
            times: dict[str, list[float]] = {name: [] for name in engines}
            bound = TimeBound(args.max_seconds)
            for _ in bound.loop(args.repeats):
                for name in engines:
                    run(name)  # untimed: the engine's own threads awake, the last engine's ones gone quiet
                    times[name].append(timed(lambda name=name: run(name))[1])
            row = {name: round(statistics.median(seconds) / batch_size * 1000, 1) for name, seconds in times.items()}
            row["int8_speedup_vs_fp32"] = round(row["onnxruntime_fp32"] / row["onnxruntime_int8"], 2)
            row["int8_speedup_vs_torch"] = round(row["torch_eager"] / row["onnxruntime_int8"], 2)
            key = f"{side}x{side}_batch{batch_size}"
            results[key] = row
            rounds[key] = len(times["torch_eager"])
            psnr[key] = round(float(psnr_per_image(outputs["onnxruntime_int8"], outputs["onnxruntime_fp32"]).min()), 2)
            print(f"{key}: {row} (int8 vs fp32 {psnr[key]} dB)", file=sys.stderr)
    return results, psnr, rounds


def peak_memory(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Resident memory (MB) of a fresh process per engine: after loading the model, and at its peak after one call
    at the largest size and batch."""
    side, batch = max(args.sizes), max(args.batch_sizes)
    memory: dict[str, Any] = {"input": f"{batch}x{side}x{side}"}
    for engine in ENGINES:
        command = [sys.executable, __file__, "--probe", engine, "--probe_folder", str(folder)]
        command += ["--sizes", str(side), "--batch_sizes", str(batch)]
        command += ["--threads", str(args.threads)] if args.threads else []
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
        memory[engine] = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"memory {engine}: {memory[engine]}", file=sys.stderr)
    return memory


def probe(args: argparse.Namespace) -> None:
    """``--probe``: one engine in this fresh process; prints its resident memory after loading and at its peak."""
    pix2pix = Pix2Pix.from_pretrained(args.probe_folder, **OPTIONS[args.probe])
    loaded = resident_mb("VmRSS")
    pix2pix.translate_tensor(smooth_images(args.batch_sizes[0], args.sizes[0], seed=3, channels=pix2pix.in_channels))
    print(json.dumps({"loaded_mb": loaded, "peak_mb": resident_mb("VmHWM")}))


def resident_mb(field: str) -> int | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from /proc/self/status, in MB. Not ``ru_maxrss``: Linux
    carries that over from the parent across fork and exec, so a child started by a big process reports its size."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024)  # kB
    return None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ngf", type=int, default=64, help="width of the random-init unet_256 (64 = the paper)")
    parser.add_argument("--model", help="a trained Pix2Pix folder instead (its PSNR vs fp32 is a quality figure)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512], help="image sides")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds per size and batch")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (5 for the figures to quote)")
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: theirs)")
    parser.add_argument("--num_calibration", type=int, default=8, help="calibration inputs (32 for real models)")
    parser.add_argument("--calibration", help="a folder of the model's input images to calibrate on")
    parser.add_argument("--calibration_dataset", help="or a dataset (folder of pairs, Hub id): its input side")
    parser.add_argument("--split", default="train", help="split of --calibration_dataset")
    parser.add_argument("--no_memory", action="store_true", help="skip the memory processes")
    parser.add_argument("--max_seconds", type=float, default=60.0, help="time bound of each size/batch's rounds")
    parser.add_argument("--json_out", help="also write the report to this file")
    parser.add_argument("--probe", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--probe_folder", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        probe(args)
        return
    capabilities = cpu_capabilities()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["PIX2PIX_HUB_CACHE"] = str(Path(scratch) / "onnx-cache")  # a cold cache: the export is timed
        folder = prepare_folder(args, Path(scratch))
        engines, first_call, report = build_engines(folder, args)
        results, psnr, rounds = speed(engines, args)
        memory = None if args.no_memory else peak_memory(folder, args)
        sizes = {name: (folder / name).stat().st_size for name in ("model.safetensors", INT8_ONNX_NAME)}
    gate = {key: report[key] for key in ("psnr_db", "psnr_db_mean", "max_abs_diff_levels", "held_out_inputs")}
    summary = {
        "benchmark": "inference",
        "model": args.model or f"unet_256(ngf={args.ngf}), random weights",
        "unit": "ms per image (median of the rounds) through Pix2Pix.translate_tensor",
        "results": results,
        "first_call": first_call,
        "memory_mb": memory,
        "psnr_vs_fp32_db": {"gate_report": gate, "benchmark_inputs_worst": psnr},
        "bytes": sizes,
        "cpu": cpu_name(),
        "cpu_capabilities": capabilities,
        "int8_is_fast": int8_is_fast(capabilities),
        "cpu_count": os.cpu_count(),
        "threads": args.threads or torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "warmup": args.warmup,
        "repeats": args.repeats,
        "rounds": rounds,
        "max_seconds": args.max_seconds,
        "num_calibration": args.num_calibration,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }
    write_report(summary, args.json_out)


if __name__ == "__main__":
    main()
