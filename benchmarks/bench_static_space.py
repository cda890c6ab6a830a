"""The static Space's figures (``space build --static``): the page's time per 256x256 image in headless Chromium
(WebAssembly SIMD; fp32 ``model.onnx`` and int8 ``model.int8.onnx``), next to ``Pix2Pix`` in Python on the same
machine in the same run, the download size of each model file, and a first visit's time to the first image.

The model is the paper's facades generator, ``unet_256`` at ``--ngf`` (64: the paper's; weights at their
initialisation, which do not change the time), saved with ``model.onnx`` and a ``model.int8.onnx`` calibrated on
facades label maps (right halves of ``--data``'s files 30 on). Its static Space is built with the model served from
127.0.0.1 (``build_static_space(..., model_base=...)``), and Debian's chromium (``--chromium``, headless,
``--disable-gpu``: WebAssembly, never WebGPU) is driven through Playwright, as ``tests/test_space_static.py`` does.
Each page variant starts in a fresh browser context (empty caches: a first visit), translates the right half of
``--data``'s ``1.jpg`` (a 256x256 label map) once, then ``--runs`` more times (median and fastest reported):

    <graph>-threads   the server sends the Space's cross-origin isolation headers: onnxruntime-web's threads
                      (``min(4, navigator.hardwareConcurrency)``), as on the Hub
    <graph>-1thread   no isolation headers (a plain static host): one thread

Python: ``Pix2Pix.from_pretrained(model, precision=<graph>)`` on the same image (onnxruntime, ``--threads``), one
untimed call then ``--runs`` timed. Each page figure names what it is compared against (``compared_against``) and its
ratio to Python's (``page_vs_python``). The first visit's figures come from the page's own ``window.pix2pixState``
(ms since navigation started): ``download_ms`` (the model file from 127.0.0.1), ``session_ms`` (onnxruntime-web's
session), ``first_image_ms``.

    python benchmarks/bench_static_space.py [--runs 7] [--threads 0] [--ngf 64] [--max_seconds 600]
        [--data ../shared/data/facades/train] [--chromium /usr/bin/chromium] [--json_out FILE] [--smoke]

The report goes to ``benchmarks/results/static-space.json`` (``--json_out``) and, as one JSON object, to the last line
on stdout. ``--smoke``: ``unet_256`` at ngf 4, one timed run, no file unless ``--json_out`` names one: the script runs
end to end in seconds (its figures are not the benchmark's). On a shared machine the times carry its load (the
report records the load average before and after); the machine's CPU is named in ``machine``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from bench_common import TimeBound, machine, timed_calls, write_report  # this folder is on sys.path when run
from PIL import Image

from pix2pix_hub import ModelInfo, Pix2Pix, unet_256
from pix2pix_hub.hub.ort_web import ORT_WEB_VERSION
from pix2pix_hub.hub.static_space import ISOLATION_HEADERS, build_static_space
from pix2pix_hub.inference.quantize import DEFAULT_MIN_PSNR_DB, QuantizationQualityError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "spaces_app"))
from local_server import BROWSER_ARGS, CHROMIUM  # noqa: E402  (the browser the tests check the page in)

FACADES = ROOT.parent / "shared" / "data" / "facades" / "train"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "static-space.json"
MODEL_ID = "someone/facades"  # the name the page shows; the files come from --model_base (this script's server)
GRAPHS = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
MODES = {"threads": True, "1thread": False}  # page variant -> cross-origin isolated
UPLOAD_FILE = "1.jpg"
CALIBRATION_FIRST = 30


def label_map(data: Path, name: str) -> Image.Image:
    """The colour label map (the right 256x256 half) of the facades file ``name``."""
    return Image.open(data / name).convert("RGB").crop((256, 0, 512, 256))


def build_model(folder: Path, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``unet_256(ngf=args.ngf)`` saved into ``folder`` with ``model.onnx`` and, where it passes its gate, a
    ``model.int8.onnx`` calibrated on ``args.calibration`` facades label maps; what was built."""
    calibration = scratch / "calibration"
    calibration.mkdir()
    for index in range(args.calibration):
        label_map(args.data, f"{CALIBRATION_FIRST + index}.jpg").save(calibration / f"{index}.png")
    torch.manual_seed(0)
    generator = unet_256(ngf=args.ngf).eval()
    pix2pix = Pix2Pix(generator, info=ModelInfo.for_training("facades", "BtoA", 256))
    built: dict[str, Any] = {"generator": "unet_256", "ngf": args.ngf}
    built["parameters"] = sum(parameter.numel() for parameter in generator.parameters())
    try:
        report = pix2pix.quantize(calibration, path=scratch / "int8.onnx", num_calibration=args.calibration)
        built["int8_gate"] = {key: report.get(key) for key in ("psnr_db", "min_psnr_db")}
    except QuantizationQualityError as error:
        built["int8_skipped"] = f"int8 graph below its gate ({DEFAULT_MIN_PSNR_DB} dB): {error}"
    pix2pix.save_pretrained(folder)
    return built


@contextmanager
def serve(folder: Path, isolated: bool) -> Iterator[str]:
    """A threaded HTTP server for ``folder`` on 127.0.0.1 (with the Space's isolation headers when ``isolated``);
    its URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self) -> None:
            if isolated:
                for name, value in ISOLATION_HEADERS.items():
                    self.send_header(name, value)
            super().end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def page_variant(browser, url: str, graph: str, upload: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One first visit of the page in a fresh context: the model loaded, one translation, then up to ``args.runs``
    timed ones (fewer once ``args.max_seconds`` has passed); the page's own timings."""
    context = browser.new_context()
    context.set_default_timeout(1000 * max(60.0, args.max_seconds or 0.0))
    try:
        page = context.new_page()
        started = time.monotonic()
        page.goto(f"{url}/space/index.html?graph={graph}")
        page.wait_for_function("window.pix2pixState && (window.pix2pixState.ready || window.pix2pixState.error)")
        bound, runs_ms, first = TimeBound(args.max_seconds), [], {}
        for index in bound.loop(args.runs + 1, minimum=2):
            page.set_input_files("#upload", str(upload))
            page.wait_for_function(f"window.pix2pixState.runs > {index} || window.pix2pixState.error")
            state = page.evaluate("() => ({...window.pix2pixState})")
            if "error" in state:
                raise RuntimeError(f"the page ({graph}) reported: {state['error']}")
            if index == 0:
                first = state | {"wall_s": time.monotonic() - started}
            else:
                runs_ms.append(state["runMs"])
    finally:
        context.close()
    return {
        "engine": state["engine"],
        "threads": state.get("threads"),
        "graph": state.get("graph"),
        "median_ms": round(statistics.median(runs_ms), 1),
        "fastest_ms": round(min(runs_ms), 1),
        "runs_ms": [round(ms, 1) for ms in runs_ms],
        "first_run_ms": round(first["runMs"], 1),
        "download_ms": round(first["downloadMs"], 1),
        "session_ms": round(first["sessionMs"], 1),
        "ready_ms": round(first["readyAt"], 1),
        "first_image_ms": round(first["firstImageAt"], 1),
        "first_image_wall_s": round(first["wall_s"], 2),
        "time_bound": bound.report(),
    }


def page_figures(site: Path, model: Path, graphs: list[str], upload: Path, args: argparse.Namespace) -> tuple:
    """Every page variant (graph x isolation), each with the Space built for its server; ``(figures, chromium
    version)``."""
    from playwright.sync_api import sync_playwright  # only this part needs it; the error names what is missing

    figures, version = {}, None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(args.chromium), headless=True, args=BROWSER_ARGS)
        version = browser.version
        try:
            for mode, isolated in MODES.items():
                with serve(site, isolated) as url:
                    build_static_space(
                        site / "space", MODEL_ID, model_dir=model, model_base=f"{url}/model", overwrite=True
                    )
                    for graph in graphs:
                        name = f"{graph}-{mode}"
                        print(f"page {name} ...", file=sys.stderr, flush=True)
                        figures[name] = page_variant(browser, url, graph, upload, args)
        finally:
            browser.close()
    return figures, version


def python_figures(model: Path, graphs: list[str], upload: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``Pix2Pix`` on the same image: one untimed call, then up to ``args.runs`` timed ones per graph."""
    image = Image.open(upload)
    figures = {}
    for graph in graphs:
        print(f"python {graph} ...", file=sys.stderr, flush=True)
        pix2pix = Pix2Pix.from_pretrained(model, precision=graph)
        pix2pix(image)
        bound = TimeBound(args.max_seconds)
        times = [1000 * seconds for seconds in timed_calls(lambda p=pix2pix: p(image), args.runs, bound)]
        figures[graph] = {
            "engine": pix2pix.engine,
            "threads": torch.get_num_threads(),
            "median_ms": round(statistics.median(times), 1),
            "fastest_ms": round(min(times), 1),
            "runs_ms": [round(ms, 1) for ms in times],
            "time_bound": bound.report(),
        }
    return figures


def comparisons(page: dict[str, Any], python: dict[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """What each page figure is compared against, and the page's median over Python's (same graph)."""
    against = {
        "page.<graph>-<mode>.median_ms": "python.<graph>.median_ms: Pix2Pix in Python (onnxruntime), same machine, "
        "same run, same image and model file",
        "page.<graph>-<mode>.first_image_ms": "nothing: a first visit's time from navigation to the first image "
        "(download_ms and session_ms are its parts)",
        "download_bytes": "each model file's size on disk: what a first visit downloads (the page caches it)",
    }
    ratios = {
        name: round(figures["median_ms"] / python[name.split("-")[0]]["median_ms"], 2) for name, figures in page.items()
    }
    return against, ratios


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed translations per variant, after an untimed one")
    parser.add_argument("--threads", type=int, default=0, help="Python's torch and onnxruntime threads (0: default)")
    parser.add_argument("--ngf", type=int, default=64, help="unet_256's width (the paper: 64)")
    parser.add_argument("--calibration", type=int, default=12, help="facades label maps that calibrate int8")
    parser.add_argument("--max_seconds", type=float, default=600.0, help="time bound of each variant's loop")
    parser.add_argument("--data", type=Path, default=FACADES, help="the facades train folder (A|B pairs)")
    parser.add_argument("--chromium", type=Path, default=CHROMIUM, help="the chromium executable")
    parser.add_argument(
        "--json_out", help=f"also write the report here (default: {DEFAULT_JSON.relative_to(ROOT)}; --smoke: none)"
    )
    parser.add_argument("--smoke", action="store_true", help="ngf 4, 1 run: a quick check that the script runs")
    args = parser.parse_args(argv)
    if args.smoke:  # a smoke run never replaces the benchmark's figures unless --json_out names a file
        args.ngf, args.runs, args.calibration = 4, 1, 4
    if args.json_out is None and not args.smoke:
        args.json_out = str(DEFAULT_JSON)
    if args.runs < 1 or args.calibration < 1 or (args.max_seconds is not None and args.max_seconds <= 0):
        parser.error("--runs and --calibration must be at least 1 and --max_seconds positive")
    missing = [path for path in (args.data / UPLOAD_FILE, args.chromium) if not path.exists()]
    if missing:
        parser.error(f"{missing[0]} not found: give --data (facades train folder) or --chromium (apt-get chromium)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    description = machine() | {"onnxruntime_web": ORT_WEB_VERSION}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-static-space-") as scratch:
        scratch = Path(scratch)
        site, upload = scratch / "site", scratch / "label256.png"
        model = site / "model"
        label_map(args.data, UPLOAD_FILE).save(upload)
        built = build_model(model, scratch, args)
        graphs = [graph for graph, file in GRAPHS.items() if (model / file).exists()]
        sizes = {GRAPHS[graph]: (model / GRAPHS[graph]).stat().st_size for graph in graphs}
        page, description["chromium"] = page_figures(site, model, graphs, upload, args)
        python = python_figures(model, graphs, upload, args)
    import onnxruntime

    description["onnxruntime"] = onnxruntime.__version__
    against, ratios = comparisons(page, python)
    settings = {key: getattr(args, key) for key in ("runs", "threads", "ngf", "calibration", "max_seconds", "smoke")}
    report = {
        "machine": description,
        "settings": settings | {"image": f"{UPLOAD_FILE} right half (256x256 label map)"},
        "model": built,
        "download_bytes": sizes,
        "page": page,
        "python": python,
        "page_vs_python": ratios,
        "compared_against": against,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    write_report(report, args.json_out)
    return report


if __name__ == "__main__":
    main()
