"""``Pix2Pix`` int8 at 256x256, batch 1, against the authors' generator in eager torch, and int8's PSNR from fp32.

The authors' network (junyanz/pytorch-CycleGAN-and-pix2pix's unet_256, ngf 64, batch norm) is built as
``unet_256()``: the package's U-Net equals it layer for layer (``hub/authors_layout.py``); the authors' test loop
runs it in eager fp32 under ``torch.no_grad()``, as here (eval mode). Random weights (seed 0: speed does not depend
on them), int8 calibrated on ``--calibration``'s first 16 facades label maps (right halves), PSNR measured on the
next 16. Timed in one process, engines taking turns, each timed call right after an untimed call of the same
engine: eager torch (the baseline), ``Pix2Pix`` fp32 onnxruntime and ``Pix2Pix`` int8 (``translate_tensor``, and a
PIL image in and out). Then the eager baseline again in a child process with torch restricted to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2``, ``ATEN_CPU_CAPABILITY=avx2``): an approximation of an AVX2-only CPU for torch only;
onnxruntime has no such switch, so its int8 keeps this CPU's VNNI kernels (an AVX2-only CPU runs int8 slower).

    python benchmarks/bench_vs_authors.py --calibration ../shared/data/facades/train [--rounds 10] \\
        [--json_out FILE] [--max_seconds S]
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
from pathlib import Path

import numpy as np
import torch
from bench_common import TimeBound, write_report  # this folder is on sys.path when the script runs
from PIL import Image

from pix2pix_hub import ModelInfo, Pix2Pix, unet_256
from pix2pix_hub.constants import INT8_ONNX_NAME
from pix2pix_hub.images.metrics import psnr_per_image
from pix2pix_hub.performance import cpu_capabilities, cpu_name

EAGER_CHILD = r"""
import json, statistics, sys, time
import torch
from pix2pix_hub import UNetGenerator
torch.set_num_threads(int(sys.argv[2]))
generator = UNetGenerator.from_pretrained(sys.argv[1]).eval()
x = torch.rand(1, 3, 256, 256) * 2 - 1
times = []
with torch.no_grad():
    generator(x)
    for _ in range(int(sys.argv[3])):
        generator(x)
        start = time.perf_counter()
        generator(x)
        times.append(time.perf_counter() - start)
print(json.dumps({"ms": [1000 * t for t in times], "capability": torch.backends.cpu.get_cpu_capability()}))
"""


def labels(folder: Path, start: int, count: int) -> list[Image.Image]:
    files = sorted(folder.glob("*.jpg"), key=lambda path: int(path.stem))[start : start + count]
    return [Image.open(path).convert("RGB").crop((256, 0, 512, 256)) for path in files]


def to_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


def eager_in_child(folder: Path, threads: int, rounds: int, restrict: bool) -> dict:
    env = dict(os.environ)
    if restrict:
        env.update(ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    command = [sys.executable, "-c", EAGER_CHILD, str(folder), str(threads), str(rounds)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="make the model folder here, or reuse it")
    parser.add_argument("--json_out", type=Path, default=None, help="also write the JSON report here")
    parser.add_argument("--max_seconds", type=float, default=300, help="bound on the timed rounds (at least one runs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    authors = unet_256().eval()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["PIX2PIX_HUB_CACHE"] = str(Path(scratch) / "cache")
        folder = args.keep or Path(scratch) / "m"
        if not (folder / INT8_ONNX_NAME).is_file():
            Pix2Pix(authors, info=ModelInfo(direction="BtoA", resolution=256)).save_pretrained(folder)
            Pix2Pix.from_pretrained(folder, precision="fp32").quantize(
                labels(args.calibration, 0, 16), path=folder / INT8_ONNX_NAME
            )
        authors.load_state_dict(Pix2Pix.from_pretrained(folder, backend="torch").generator.state_dict())
        int8 = Pix2Pix.from_pretrained(folder, precision="int8")
        fp32 = Pix2Pix.from_pretrained(folder, precision="fp32")
        held_out = labels(args.calibration, 16, 16)
        with torch.no_grad():
            reference = torch.cat([authors(to_tensor(image)) for image in held_out])
        psnr = psnr_per_image(torch.cat([int8.translate_tensor(to_tensor(image)) for image in held_out]), reference)
        x, image = to_tensor(held_out[0]), held_out[0]

        def eager() -> None:
            with torch.no_grad():
                authors(x)

        engines = {
            "authors_eager_fp32": eager,
            "pix2pix_fp32_onnxruntime": lambda: fp32.translate_tensor(x),
            "pix2pix_int8": lambda: int8.translate_tensor(x),
            "pix2pix_int8_pil": lambda: int8(image),
        }
        times: dict[str, list[float]] = {name: [] for name in engines}
        for run in engines.values():
            run()
        bound = TimeBound(args.max_seconds)
        for _ in bound.loop(args.rounds):
            for name, run in engines.items():
                run()
                start = time.perf_counter()
                run()
                times[name].append(1000 * (time.perf_counter() - start))
        avx2, native = {"ms": []}, {"ms": []}
        for _ in range(3):  # the two children take turns, so both see the same load
            for result, restrict in ((avx2, True), (native, False)):
                child = eager_in_child(folder, args.threads, max(args.rounds // 3, 1), restrict=restrict)
                result.update(child, ms=result["ms"] + child["ms"])
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians["authors_eager_fp32_avx2_child"] = statistics.median(avx2["ms"])
    medians["authors_eager_fp32_native_child"] = statistics.median(native["ms"])
    report = {
        "cpu": cpu_name(),
        "capabilities": cpu_capabilities(),
        "torch": torch.__version__,
        "threads": args.threads,
        "load_average": os.getloadavg(),
        "engine": int8.engine,
        "psnr_int8_vs_fp32_db": {"worst": psnr.min().item(), "mean": psnr.mean().item(), "images": len(psnr)},
        "gate_report_psnr_db": int8.int8_graph.report["psnr_db"],
        "ms": times,
        "avx2_child": avx2,
        "native_child": native,
        "medians_ms": medians,
        "bound": bound.report(),
        "speedup_int8_vs_authors": medians["authors_eager_fp32"] / medians["pix2pix_int8"],
        "speedup_int8_vs_authors_avx2": medians["authors_eager_fp32_avx2_child"] / medians["pix2pix_int8"],
    }
    write_report(report, args.json_out)


if __name__ == "__main__":
    main()
