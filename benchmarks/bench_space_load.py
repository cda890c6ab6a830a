"""Load test of the Space: start ``spaces_app/app.py``, fire N concurrent gradio_client requests, all must succeed.

The model is the paper's generator (``unet_256``, ngf 64, 54 M parameters) freshly initialized: the same compute
as a trained one, no download. ``--model tiny`` uses ``unet_128(ngf=8)``; ``--model_dir`` any saved folder.
Before the server starts, the in-process latency of ``Pix2Pix`` on one image is measured too (what a request
costs without HTTP and queueing).

Prints progress on stderr; the last line on stdout is one JSON object with p50/p95 latency and the error count.
``--max_seconds`` (default 600) bounds the load test: requests not answered by then count as errors.

    python benchmarks/bench_space_load.py [--model paper|tiny] [--requests 50] [--size 256] [--concurrency_limit 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import write_report  # this folder is on sys.path when the script runs
from PIL import Image

from pix2pix_hub import Pix2Pix, unet_128, unet_256

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_app"))
from local_server import running_app  # noqa: E402

MODELS = {"paper": lambda: unet_256(), "tiny": lambda: unet_128(ngf=8)}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def in_process_latency(model_dir: Path, image: Image.Image, repeats: int = 20) -> tuple[list[float], int]:
    """Seconds of each ``Pix2Pix(image)`` call on one PIL image after two warm-up calls, and the parameter count.

    On a shared machine the minimum is the best estimate of the cost alone; the median includes neighbours' load.
    """
    pix2pix = Pix2Pix.from_pretrained(model_dir, load_discriminator=False)
    params = sum(p.numel() for p in pix2pix.generator.parameters())
    for _ in range(2):
        pix2pix(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pix2pix(image)
        times.append(time.perf_counter() - start)
    return times, params


def load_test(
    url: str, image_path: str, requests: int, max_seconds: float = 600
) -> tuple[list[float], list[str], float]:
    """Submit ``requests`` jobs at once and wait for them up to ``max_seconds`` in all; returns per-request
    latencies (s), error messages and the wall time."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, max_workers=requests)
    client.predict(handle_file(image_path), api_name="/translate")  # warm-up: first-call costs are not load
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def finished(job, submitted: float) -> None:  # noqa: ANN001
        elapsed = time.perf_counter() - submitted
        with lock:
            try:
                result = job.result()
                with Image.open(result) as output:
                    if output.size != Image.open(image_path).size:
                        raise ValueError(f"output size {output.size} differs from the input's")
                latencies.append(elapsed)
            except Exception as error:  # noqa: BLE001 - count every failure, whatever it is
                errors.append(f"{type(error).__name__}: {error}")

    jobs = []
    for _ in range(requests):
        submitted = time.perf_counter()
        job = client.submit(handle_file(image_path), api_name="/translate")
        job.add_done_callback(lambda job, submitted=submitted: finished(job, submitted))
        jobs.append(job)
    deadline = time.monotonic() + max_seconds
    for job in jobs:
        try:
            job.result(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001, S110 - recorded by the callback
            pass
    deadline = time.monotonic() + 30
    while len(latencies) + len(errors) < requests and time.monotonic() < deadline:
        time.sleep(0.05)  # callbacks may still be running after result() returned
    return latencies, errors, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="paper")
    parser.add_argument("--model_dir", help="a saved Pix2Pix folder to serve instead of a fresh --model")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--size", type=int, default=256, help="side of the square test image")
    parser.add_argument("--concurrency_limit", type=int, default=1, help="the app's CONCURRENCY_LIMIT")
    parser.add_argument("--max_seconds", type=float, default=600.0, help="time bound of the load test")
    parser.add_argument("--json_out", help="also write the report to this file")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        image_path = str(Path(tmp) / "input.png")
        image = Image.fromarray(rng.integers(0, 255, (args.size, args.size, 3), dtype=np.uint8))
        image.save(image_path)
        if args.model_dir:
            model_dir, model_name = Path(args.model_dir), args.model_dir
        else:
            torch.manual_seed(0)
            model_dir, model_name = Path(tmp) / "model", args.model
            Pix2Pix(MODELS[args.model](), None).save_pretrained(model_dir)

        log(f"in-process latency of one {args.size}x{args.size} image ...")
        direct, params = in_process_latency(model_dir, image)
        log(f"  median {statistics.median(direct) * 1000:.0f} ms, min {min(direct) * 1000:.0f} ms; starting the app")
        env = {"MODEL_ID": str(model_dir), "CONCURRENCY_LIMIT": str(args.concurrency_limit)}
        env["QUEUE_SIZE"] = str(max(100, args.requests * 2))
        with running_app(env) as url:
            log(f"  {url}; {args.requests} concurrent requests ...")
            latencies, errors, wall = load_test(url, image_path, args.requests, args.max_seconds)
    for error in sorted(set(errors)):
        log(f"  error: {error}")
    result = {
        "benchmark": "space_load",
        "model": model_name,
        "generator_parameters": params,
        "image_size": args.size,
        "requests": args.requests,
        "concurrency_limit": args.concurrency_limit,
        "succeeded": len(latencies),
        "errors": len(errors) + (args.requests - len(latencies) - len(errors)),
        "latency_p50_s": round(percentile(latencies, 50), 3),
        "latency_p95_s": round(percentile(latencies, 95), 3),
        "latency_max_s": round(max(latencies), 3) if latencies else None,
        "wall_s": round(wall, 2),
        "throughput_per_s": round(len(latencies) / wall, 2),
        "in_process_latency_ms_median": round(statistics.median(direct) * 1000, 1),
        "in_process_latency_ms_min": round(min(direct) * 1000, 1),
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # Other work on the machine slows every figure above; these say how busy it was.
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
    }
    write_report(result, args.json_out)


if __name__ == "__main__":
    main()
