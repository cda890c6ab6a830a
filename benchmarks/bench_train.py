"""Training and inference speed of the paper's model: the library's default paths against a plain eager loop.

Paper config: unet_256 generator + 70x70 PatchGAN, batch norm, fp32, 256x256, random data (data loading is
measured by bench_data.py). Three variants, each trained in a fresh process (so allocator settings do not leak
between them) and alternated ``--rounds`` times so a noisy neighbour hits both alike; inference of both is timed
in a third process, the two paths taking turns call by call:

    default      what ``scripts/train.py`` and ``Pix2Pix.__call__`` do out of the box: ``train_step`` from
                 pix2pix_hub.training under Accelerate (fused Adam, no D weight gradients in the G step, tuned
                 allocator) and ``Pix2Pix(generator)(pil_image)`` (onnxruntime on a CPU)
    plain_eager  the loop most scripts write (the Hugging Face community pix2pix script's): default Adam,
                 ``loss_G.backward()`` through an unfrozen D, glibc's default allocator; inference is
                 ``generator(x)`` under ``torch.no_grad`` on a ready tensor
    default_bf16 the default path under ``--mixed_precision bf16`` (bf16 autocast, fp32 weights; the Winograd
                 convs step aside for oneDNN's bf16 ones): faster only where the CPU has AVX-512 BF16 or AMX
                 (``machine.capabilities``); training only. Where the CPU has neither, bf16 is emulated (tens of
                 times slower): skipped unless ``--include_emulated`` is given

Every variant's process is bounded by ``--max_seconds`` (default 120): its timed loops stop early once it has
passed (each figure keeps at least one timed call; batch sizes not reached are listed in ``skipped_batch_sizes``),
and a process still running at 2 x ``--max_seconds`` + 300 s is stopped and reported as skipped.

Per variant: ``train_step_s`` (median seconds per update at batch 1), ``images_per_s_batch{4,8}``, ``infer_s``
(median seconds for one 256x256 image), ``first_infer_s`` (the first call, including the ONNX export into an
empty cache), ``first_infer_cached_s`` (the first call of a second model with those weights: the cache hit),
``peak_rss_mb`` and ``rss_growth_mb`` (resident memory after the last timed step minus after the warm-up steps).

    python benchmarks/bench_train.py --steps 10 [--rounds 1] [--batch_sizes 4 8] [--infer_repeats 20]
                                     [--max_seconds 120] [--include_emulated] [--json_out FILE]

Progress goes to stderr; the last line on stdout is one JSON object with the default path's figures at the top
level, every variant that ran in full, ``variants_run`` and ``variants_skipped`` (each with why), and ``speedup``
(plain eager / default time, or default / plain images/s; ``bf16_*``, when bf16 ran: fp32 default / bf16 time, or
bf16 / fp32 images/s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from bench_common import (  # this folder is on sys.path when the script runs
    TimeBound,
    add_bound_arguments,
    cpu_bf16_emulated,
    select_variants,
    timed_calls,
    write_report,
)

from pix2pix_hub.performance import cpu_capabilities, cpu_name, peak_rss_mb, rss_mb, tune_allocator

VARIANTS = ("plain_eager", "default", "default_bf16")
INFERENCE_VARIANTS = ("plain_eager", "default")
SIDE = 256
DEFAULT_MAX_SECONDS = 120.0


def variant_plan(include_emulated: bool, capabilities: dict | None = None) -> tuple[list[str], dict, dict]:
    """``select_variants`` for this CPU: ``default_bf16`` is emulated without native bf16. ``capabilities``:
    ``cpu_capabilities()``'s answer (read when None)."""
    emulated = {"plain_eager": None, "default": None, "default_bf16": cpu_bf16_emulated(capabilities)}
    return select_variants(emulated, include_emulated)


def plain_eager_step(batch_size: int, device: str = "cpu", ngf: int = 64, ndf: int = 64, net_g: str = "unet_256"):
    """A step function for the plain loop: default Adam, D not frozen in the G step, BCE-with-logits GAN loss.
    ``net_g``: a generator preset (its native side is the input's: unet_128 takes 128x128)."""
    from pix2pix_hub.models import PatchDiscriminator
    from pix2pix_hub.models.registry import build_generator

    generator = build_generator(net_g, ngf=ngf).to(device)
    discriminator = PatchDiscriminator(in_channels=6, ndf=ndf).disable_winograd().to(device)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = torch.nn.BCEWithLogitsLoss()
    side = int(net_g.removeprefix("unet_")) if net_g.startswith("unet_") else SIDE
    real_a, real_b = (torch.randn(batch_size, 3, side, side, device=device) for _ in range(2))

    def step() -> None:
        fake_b = generator(real_a)
        optimizer_d.zero_grad()
        pred_fake = discriminator(torch.cat([real_a, fake_b.detach()], 1))
        pred_real = discriminator(torch.cat([real_a, real_b], 1))
        loss_d = 0.5 * (
            criterion(pred_fake, torch.zeros_like(pred_fake)) + criterion(pred_real, torch.ones_like(pred_real))
        )
        loss_d.backward()
        optimizer_d.step()
        optimizer_g.zero_grad()
        pred_fake = discriminator(torch.cat([real_a, fake_b], 1))
        loss_g = criterion(pred_fake, torch.ones_like(pred_fake)) + 100 * torch.nn.functional.l1_loss(fake_b, real_b)
        loss_g.backward()
        optimizer_g.step()

    return step


def default_parts(batch_size: int, mixed_precision: str = "no"):
    """What ``train()`` builds for the paper config: ``(StepParts, accelerator, batch)`` for ``train_step``;
    ``mixed_precision="bf16"``: what ``--mixed_precision bf16`` builds (bf16 autocast, fp32 weights)."""
    from accelerate import Accelerator

    from pix2pix_hub.training import TrainingConfig
    from pix2pix_hub.training.setup import build_networks, make_adam, make_step_parts

    config = TrainingConfig(batch_size=batch_size, mixed_precision=mixed_precision)
    if not config.plain_eager:
        tune_allocator()
    accelerator = Accelerator(cpu=True, mixed_precision=mixed_precision)
    generator, discriminator = build_networks(config)
    optimizer_g = make_adam(generator.parameters(), config, accelerator.device)
    optimizer_d = make_adam(discriminator.parameters(), config, accelerator.device)
    prepared = accelerator.prepare(generator, discriminator, optimizer_g, optimizer_d)
    parts = make_step_parts(config, *prepared, accelerator.device)
    batch = {"input": torch.randn(batch_size, 3, SIDE, SIDE), "target": torch.randn(batch_size, 3, SIDE, SIDE)}
    return parts, accelerator, batch


def default_step(batch_size: int, mixed_precision: str = "no"):
    """A step function for the library's default path: what ``train()`` builds and runs for each batch."""
    from pix2pix_hub.training import train_step

    parts, accelerator, batch = default_parts(batch_size, mixed_precision)
    return lambda: train_step(batch, parts, accelerator)


def timed(function, count: int, bound: TimeBound | None = None) -> list[float]:
    return timed_calls(function, count, bound)


def inference_worker(args: argparse.Namespace) -> dict:
    """One 256x256 image through each variant's inference path, the two taking turns, in one process whose
    allocator is left as it is (``Pix2Pix`` does not tune it)."""
    import copy

    import numpy as np
    from PIL import Image

    from pix2pix_hub import Pix2Pix
    from pix2pix_hub.models import unet_256

    torch.manual_seed(0)
    generator = unet_256().eval()
    pix2pix = Pix2Pix(copy.deepcopy(generator))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))
    x = torch.rand(1, 3, SIDE, SIDE) * 2 - 1

    def plain() -> None:
        with torch.no_grad():
            generator(x)

    bound = TimeBound(args.max_seconds)
    calls = {"plain_eager": plain, "default": lambda: pix2pix(image)}
    result = {variant: {"first_infer_s": timed(call, 1)[0]} for variant, call in calls.items()}
    # The export is now in the (private, empty at start) cache: what the next process loading this model pays.
    result["default"]["first_infer_cached_s"] = timed(lambda: Pix2Pix(copy.deepcopy(generator))(image), 1)[0]
    times: dict[str, list[float]] = {variant: [] for variant in calls}
    for _ in bound.loop(args.infer_repeats):
        for variant, call in calls.items():
            time.sleep(0.05)  # let the other path's spinning worker threads go idle first
            times[variant] += timed(call, 1)
    for variant in calls:
        result[variant]["infer_s"] = statistics.median(times[variant])
        result[variant]["infer_calls"] = len(times[variant])
    return result


def train_worker(variant: str, args: argparse.Namespace) -> dict:
    """The training figures of one variant, measured in this (fresh) process."""
    make_step = {
        "plain_eager": plain_eager_step,
        "default": default_step,
        "default_bf16": lambda batch_size: default_step(batch_size, "bf16"),
    }[variant]
    bound = TimeBound(args.max_seconds)
    torch.manual_seed(0)
    step = make_step(1)
    if args.warmup:
        timed(step, args.warmup, bound)
    rss_after_warmup = rss_mb()
    step_times = timed(step, args.steps, bound)
    rss_after_steps = rss_mb()
    result = {
        "train_step_s": statistics.median(step_times),
        "train_step_s_all": [round(t, 4) for t in step_times],
        "rss_growth_mb": None if rss_after_warmup is None else round(rss_after_steps - rss_after_warmup, 1),
        "skipped_batch_sizes": [],
    }
    del step
    for batch_size in args.batch_sizes:
        if bound.expired():
            result["skipped_batch_sizes"].append(batch_size)
            continue
        step = make_step(batch_size)
        timed(step, 1)
        times = timed(step, max(2, args.steps // 2), bound)
        result[f"images_per_s_batch{batch_size}"] = batch_size / statistics.median(times)
        del step
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["time_bound"] = bound.report()
    return result


def worker_timeout(max_seconds: float | None) -> float | None:
    """How long a worker process may run before it is stopped: twice its time bound plus the set-up's margin."""
    return None if max_seconds is None else 2 * max_seconds + 300


def run_worker(worker: str, argv: list[str], timeout: float | None = None) -> dict | None:
    """The JSON a fresh worker process prints; None when it ran past ``timeout`` seconds (it is stopped)."""
    command = [sys.executable, __file__, "--worker", worker, *argv]
    with tempfile.TemporaryDirectory() as cache:  # a cold ONNX export cache, so first_infer_s includes the export
        env = {**os.environ, "PIX2PIX_HUB_CACHE": cache}
        try:
            completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
    return json.loads(completed.stdout.strip().splitlines()[-1])


def combine(runs: list[dict]) -> dict:
    """Median over rounds of each figure (those every round has); the time bounds of all rounds."""
    combined = {}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and all(key in run for run in runs):
            combined[key] = round(statistics.median(run[key] for run in runs), 4)
        elif key == "rss_growth_mb":
            combined[key] = max((run[key] for run in runs), default=None)
    combined["train_step_s_all"] = [t for run in runs for t in run["train_step_s_all"]]
    combined["skipped_batch_sizes"] = sorted({size for run in runs for size in run.get("skipped_batch_sizes", [])})
    combined["stopped_early"] = any(run.get("time_bound", {}).get("stopped_early") for run in runs)
    return combined


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_name(),
        "threads": torch.get_num_threads(),
        "capabilities": cpu_capabilities(),
        "native_bf16": cpu_bf16_emulated() is None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed updates at batch 1 (half that at batch 4/8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the variants this many times")
    parser.add_argument("--batch_sizes", type=int, nargs="*", default=[4, 8], help="images/s at these batch sizes")
    parser.add_argument("--infer_repeats", type=int, default=20, help="timed single-image inferences")
    add_bound_arguments(parser, "each variant's process, in seconds", DEFAULT_MAX_SECONDS)
    parser.add_argument("--json_out", help="also write the report to this file")
    parser.add_argument("--worker", choices=(*VARIANTS, "inference"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.infer_repeats < 1:
        parser.error("--steps, --rounds and --infer_repeats must be at least 1")
    if args.max_seconds is not None and args.max_seconds <= 0:
        parser.error("--max_seconds must be positive")
    return args


def run_rounds(args: argparse.Namespace, variants: list[str], skipped: dict[str, str]) -> dict[str, list[dict]]:
    """Every variant in a fresh process, ``--rounds`` times, then inference in a process of its own; a variant
    that runs past its timeout moves to ``skipped``."""
    argv = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--infer_repeats", str(args.infer_repeats)]
    argv += ["--batch_sizes", *map(str, args.batch_sizes)]
    argv += [] if args.max_seconds is None else ["--max_seconds", str(args.max_seconds)]
    timeout = worker_timeout(args.max_seconds)
    runs: dict[str, list[dict]] = {variant: [] for variant in variants}
    for round_index in range(args.rounds):
        for variant in [variant for variant in variants if variant not in skipped]:
            started = time.perf_counter()
            result = run_worker(variant, argv, timeout)
            elapsed = time.perf_counter() - started
            if result is None:
                skipped[variant] = f"stopped after {elapsed:.0f} s (over 2 x --max_seconds + 300 s)"
                print(f"round {round_index + 1}: {variant} {skipped[variant]}", file=sys.stderr)
                continue
            runs[variant].append(result)
            step_s = result["train_step_s"]
            print(f"round {round_index + 1}: {variant} train step {step_s:.3f} s ({elapsed:.0f} s)", file=sys.stderr)
        inference = run_worker("inference", argv, timeout)
        if inference is None:
            print(f"round {round_index + 1}: inference stopped (over {timeout:.0f} s)", file=sys.stderr)
            continue
        for variant in INFERENCE_VARIANTS:
            if runs.get(variant):
                runs[variant][-1].update(inference[variant])
        plain_ms, default_ms = (inference[variant]["infer_s"] * 1000 for variant in INFERENCE_VARIANTS)
        print(
            f"round {round_index + 1}: inference plain {plain_ms:.0f} ms, default {default_ms:.0f} ms", file=sys.stderr
        )
    return {variant: rounds for variant, rounds in runs.items() if rounds and variant not in skipped}


def speedups(results: dict[str, dict], batch_sizes: list[int]) -> dict[str, float]:
    """Ratios between the variants that ran, above 1 where the first named wins: default vs plain eager (no
    prefix) and, when bf16 ran, bf16 vs the fp32 default (``bf16_``)."""
    pairs = {"": ("default", "plain_eager"), "bf16_": ("default_bf16", "default")}
    times = {"train_step": "train_step_s", "infer": "infer_s"}
    rates = {key: key for key in (f"images_per_s_batch{size}" for size in batch_sizes)}
    ratios = {}
    for prefix, (new_name, old_name) in pairs.items():
        new, old = results.get(new_name, {}), results.get(old_name, {})
        for name, key in times.items():
            if key in new and key in old:
                ratios[prefix + name] = old[key] / new[key]
        for name, key in rates.items():
            if key in new and key in old:
                ratios[prefix + name] = new[key] / old[key]
    return ratios


def main() -> None:
    args = parse_args()
    if args.worker:
        result = inference_worker(args) if args.worker == "inference" else train_worker(args.worker, args)
        print(json.dumps(result))
        return
    variants, skipped, notes = variant_plan(args.include_emulated)
    for variant, reason in skipped.items():
        print(f"{variant}: {reason}", file=sys.stderr)
    results = {variant: combine(rounds) for variant, rounds in run_rounds(args, variants, skipped).items()}
    default = results.get("default", {})
    report = {
        "config": "unet_256 + 70x70 PatchGAN, batch norm, 256x256; fp32 (default_bf16: bf16 autocast, fp32 weights)",
        "steps": args.steps,
        "rounds": args.rounds,
        "max_seconds": args.max_seconds,
        "machine": machine(),
        "variants_run": list(results),
        "variants_skipped": skipped,
        "variant_notes": notes,
        **{key: value for key, value in default.items() if key != "train_step_s_all"},
        "speedup": {key: round(value, 3) for key, value in speedups(results, args.batch_sizes).items()},
        **results,
    }
    write_report(report, args.json_out)


if __name__ == "__main__":
    main()
