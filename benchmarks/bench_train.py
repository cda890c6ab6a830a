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
                 (``machine.capabilities``); training only

Per variant: ``train_step_s`` (median seconds per update at batch 1), ``images_per_s_batch{4,8}``, ``infer_s``
(median seconds for one 256x256 image), ``first_infer_s`` (the first call, including the ONNX export into an
empty cache), ``first_infer_cached_s`` (the first call of a second model with those weights: the cache hit),
``peak_rss_mb`` and ``rss_growth_mb`` (resident memory after the last timed step minus after the warm-up steps).

    python benchmarks/bench_train.py --steps 10 [--rounds 1] [--batch_sizes 4 8] [--infer_repeats 20]

Progress goes to stderr; the last line on stdout is one JSON object with the default path's figures at the top
level, every variant in full, and ``speedup`` (plain eager / default time, or default / plain images/s;
``bf16_*``: fp32 default / bf16 time, or bf16 / fp32 images/s).
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

from pix2pix_hub.performance import cpu_capabilities, cpu_name, peak_rss_mb, rss_mb, tune_allocator

VARIANTS = ("plain_eager", "default", "default_bf16")
INFERENCE_VARIANTS = ("plain_eager", "default")
SIDE = 256


def plain_eager_step(batch_size: int):
    """A step function for the plain loop: default Adam, D not frozen in the G step, BCE-with-logits GAN loss."""
    from pix2pix_hub.models import PatchDiscriminator, unet_256

    generator, discriminator = unet_256(), PatchDiscriminator(in_channels=6).disable_winograd()
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = torch.nn.BCEWithLogitsLoss()
    real_a, real_b = torch.randn(batch_size, 3, SIDE, SIDE), torch.randn(batch_size, 3, SIDE, SIDE)

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


def timed(function, count: int) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


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

    calls = {"plain_eager": plain, "default": lambda: pix2pix(image)}
    result = {variant: {"first_infer_s": timed(call, 1)[0]} for variant, call in calls.items()}
    # The export is now in the (private, empty at start) cache: what the next process loading this model pays.
    result["default"]["first_infer_cached_s"] = timed(lambda: Pix2Pix(copy.deepcopy(generator))(image), 1)[0]
    times: dict[str, list[float]] = {variant: [] for variant in calls}
    for _ in range(args.infer_repeats):
        for variant, call in calls.items():
            time.sleep(0.05)  # let the other path's spinning worker threads go idle first
            times[variant] += timed(call, 1)
    for variant in calls:
        result[variant]["infer_s"] = statistics.median(times[variant])
    return result


def train_worker(variant: str, args: argparse.Namespace) -> dict:
    """The training figures of one variant, measured in this (fresh) process."""
    make_step = {
        "plain_eager": plain_eager_step,
        "default": default_step,
        "default_bf16": lambda batch_size: default_step(batch_size, "bf16"),
    }[variant]
    torch.manual_seed(0)
    step = make_step(1)
    timed(step, args.warmup)
    rss_after_warmup = rss_mb()
    step_times = timed(step, args.steps)
    rss_after_steps = rss_mb()
    result = {
        "train_step_s": statistics.median(step_times),
        "train_step_s_all": [round(t, 4) for t in step_times],
        "rss_growth_mb": None if rss_after_warmup is None else round(rss_after_steps - rss_after_warmup, 1),
    }
    del step
    for batch_size in args.batch_sizes:
        step = make_step(batch_size)
        timed(step, 1)
        times = timed(step, max(2, args.steps // 2))
        result[f"images_per_s_batch{batch_size}"] = batch_size / statistics.median(times)
        del step
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def run_worker(worker: str, argv: list[str]) -> dict:
    command = [sys.executable, __file__, "--worker", worker, *argv]
    with tempfile.TemporaryDirectory() as cache:  # a cold ONNX export cache, so first_infer_s includes the export
        env = {**os.environ, "PIX2PIX_HUB_CACHE": cache}
        completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True, env=env)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def combine(runs: list[dict]) -> dict:
    """Median over rounds of each figure."""
    combined = {}
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            combined[key] = round(statistics.median(run[key] for run in runs), 4)
        elif key == "rss_growth_mb":
            combined[key] = max((run[key] for run in runs), default=None)
    combined["train_step_s_all"] = [t for run in runs for t in run["train_step_s_all"]]
    return combined


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_name(),
        "threads": torch.get_num_threads(),
        "capabilities": cpu_capabilities(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed updates at batch 1 (half that at batch 4/8)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two variants this many times")
    parser.add_argument("--batch_sizes", type=int, nargs="*", default=[4, 8], help="images/s at these batch sizes")
    parser.add_argument("--infer_repeats", type=int, default=20, help="timed single-image inferences")
    parser.add_argument("--worker", choices=(*VARIANTS, "inference"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1 or args.infer_repeats < 1:
        parser.error("--steps, --rounds and --infer_repeats must be at least 1")
    if args.worker:
        result = inference_worker(args) if args.worker == "inference" else train_worker(args.worker, args)
        print(json.dumps(result))
        return

    argv = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--infer_repeats", str(args.infer_repeats)]
    argv += ["--batch_sizes", *map(str, args.batch_sizes)]
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for round_index in range(args.rounds):
        for variant in VARIANTS:
            started = time.perf_counter()
            runs[variant].append(run_worker(variant, argv))
            step_s = runs[variant][-1]["train_step_s"]
            elapsed = time.perf_counter() - started
            print(f"round {round_index + 1}: {variant} train step {step_s:.3f} s ({elapsed:.0f} s)", file=sys.stderr)
        inference = run_worker("inference", argv)
        for variant in INFERENCE_VARIANTS:
            runs[variant][-1].update(inference[variant])
        plain_ms, default_ms = (inference[variant]["infer_s"] * 1000 for variant in INFERENCE_VARIANTS)
        message = f"inference plain {plain_ms:.0f} ms, default {default_ms:.0f} ms"
        print(f"round {round_index + 1}: {message}", file=sys.stderr)
    results = {variant: combine(runs[variant]) for variant in VARIANTS}
    default, plain, bf16 = results["default"], results["plain_eager"], results["default_bf16"]
    speedup = {
        "train_step": plain["train_step_s"] / default["train_step_s"],
        "bf16_train_step": default["train_step_s"] / bf16["train_step_s"],
        "infer": plain["infer_s"] / default["infer_s"],
    }
    for batch_size in args.batch_sizes:
        key = f"images_per_s_batch{batch_size}"
        speedup[key] = default[key] / plain[key]
        speedup[f"bf16_{key}"] = bf16[key] / default[key]
    report = {
        "config": "unet_256 + 70x70 PatchGAN, batch norm, 256x256; fp32 (default_bf16: bf16 autocast, fp32 weights)",
        "steps": args.steps,
        "rounds": args.rounds,
        "machine": machine(),
        **{key: value for key, value in default.items() if key != "train_step_s_all"},
        "speedup": {key: round(value, 3) for key, value in speedup.items()},
        **results,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
