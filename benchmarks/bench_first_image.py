"""The first translated image of a fresh process: ``Pix2Pix.from_pretrained(folder)(image)`` against eager torch's
first call on the same weights, for model folders with and without ``model.onnx`` and with ``model.int8.onnx``.

The paper's unet_256 (``--ngf``, random weights: the time does not depend on them), one 256x256 RGB PIL image (a
facades label map when ``--calibration`` has images, else noise). Each run is a new Python process with an empty ONNX
cache; the variants take turns, ``--runs`` rounds. Per run: "after import", from the start of loading to the first
image; "total", from just before the process was started; "ready", from the start of loading until the background
preparation (and, with ``model.int8.onnx``, the int8-vs-fp32 timing) has finished; the engine then; the second
call's time. Variants:

    eager             UNetGenerator.from_pretrained + generator(x) under inference_mode + the PIL conversion
    no-onnx           a folder saved with onnx=False (the first calls run torch while the weights are exported)
    onnx              the default folder: model.onnx shipped
    int8              model.onnx + model.int8.onnx, no choice cached: timed in the background after the answer
    int8-cached       the same, the choice read back from a cache an earlier process wrote
    int8-at-load      model.int8.onnx timed at load, before the first image (the former behaviour)

    python benchmarks/bench_first_image.py [--runs 5] [--calibration ../shared/data/facades/train] \\
        [--json_out FILE] [--max_seconds S]

The last line on stdout is one JSON object. Figures are only meaningful on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import TimeBound, write_report  # this folder is on sys.path when the script runs

CHILD = r"""
import json, os, sys, time
variant, folder, image_path = sys.argv[1:4]
import numpy as np, torch
from PIL import Image
from pix2pix_hub import Pix2Pix, UNetGenerator
import pix2pix_hub.inference.precision as precision
if variant == "int8-at-load":
    precision.BACKGROUND_CHOICE = False
image = Image.open(image_path).convert("RGB")
image.load()
start = time.time()
ready = second = None
if variant == "eager":
    generator = UNetGenerator.from_pretrained(folder).eval()
    x = torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.inference_mode():
        y = generator(x)
    Image.fromarray(((y[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy())
    first = time.time()
    engine = first_engine = "eager torch"
else:
    pix2pix = Pix2Pix.from_pretrained(folder)
    first_engine = pix2pix.engine
    pix2pix(image)
    first = time.time()
    pix2pix.onnx_engine.wait_until_ready()
    ready = time.time() - start
    t = time.perf_counter()
    pix2pix(image)
    second = time.perf_counter() - t
    engine = pix2pix.engine
print(json.dumps({"after_import_s": first - start, "total_s": first - float(os.environ["BENCH_T0"]),
                  "ready_s": ready, "second_call_s": second, "engine_at_load": first_engine, "engine": engine}))
"""

VARIANTS = ("eager", "no-onnx", "onnx", "int8", "int8-cached", "int8-at-load")


def make_folders(work: Path, ngf: int, calibration: Path | None) -> tuple[dict[str, Path], Path]:
    """The model folders (one set of weights) and the input image."""
    import numpy as np
    import torch
    from PIL import Image

    from pix2pix_hub import ModelInfo, Pix2Pix, unet_256
    from pix2pix_hub.constants import INT8_ONNX_NAME

    torch.manual_seed(0)
    pix2pix = Pix2Pix(unet_256(ngf=ngf).eval(), info=ModelInfo(direction="BtoA", resolution=256))
    folders = {
        "onnx": pix2pix.save_pretrained(work / "onnx"),
        "no-onnx": pix2pix.save_pretrained(work / "no-onnx", onnx=False),
    }
    files = sorted(calibration.glob("*.jpg"))[:16] if calibration else []
    labels = [Image.open(path).convert("RGB").crop((256, 0, 512, 256)) for path in files]
    rng = np.random.default_rng(0)
    images = labels or [Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(16)]
    shutil.copytree(folders["onnx"], work / "int8")
    Pix2Pix.from_pretrained(work / "int8", precision="fp32").quantize(images, path=work / "int8" / INT8_ONNX_NAME)
    folders.update(
        eager=folders["onnx"], int8=work / "int8", **{"int8-cached": work / "int8", "int8-at-load": work / "int8"}
    )
    images[-1].save(work / "input.png")
    return folders, work / "input.png"


def run_child(variant: str, folder: Path, image: Path, cache: Path) -> dict:
    env = {**os.environ, "PIX2PIX_HUB_CACHE": str(cache), "BENCH_T0": repr(time.time())}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, variant, str(folder), str(image)], env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"{variant}: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--calibration", type=Path, default=None)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--json_out", type=Path, default=None, help="also write the JSON report here")
    parser.add_argument("--max_seconds", type=float, default=900, help="bound on the rounds (one at least)")
    args = parser.parse_args()
    from pix2pix_hub.performance import cpu_capabilities, cpu_name

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        folders, image = make_folders(work, args.ngf, args.calibration)
        cached = work / "kept-cache"  # int8-cached: the choice an earlier process measured
        run_child("int8", folders["int8"], image, cached)
        runs: dict[str, list[dict]] = {variant: [] for variant in args.variants}
        bound = TimeBound(args.max_seconds)
        for index in bound.loop(args.runs):
            for variant in args.variants:
                cache = cached if variant == "int8-cached" else work / f"cache-{variant}-{index}"
                runs[variant].append(run_child(variant, folders[variant], image, cache))
                print(variant, index, runs[variant][-1], file=sys.stderr)
    summary = {
        variant: {
            key: statistics.median(run[key] for run in results)
            for key in ("after_import_s", "total_s", "ready_s", "second_call_s")
            if results[0][key] is not None
        }
        for variant, results in runs.items()
    }
    report = {
        "cpu": cpu_name(),
        "capabilities": cpu_capabilities(),
        "load_average": os.getloadavg(),
        "ngf": args.ngf,
        "runs": runs,
        "medians": summary,
        "bound": bound.report(),
    }
    write_report(report, args.json_out)


if __name__ == "__main__":
    main()
