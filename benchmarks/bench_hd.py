"""High-resolution training cost: seconds per step and peak memory of what a pix2pixHD run and a unet_512 run of
the trainer do, with and without ``--gradient_checkpointing``.

Each case is a training command line (random data, batch 1, fp32; each case in a fresh process so one case's peak
memory cannot hide another's):

    hd      ``--netG global --netD multiscale --num_D 2|3 --norm instance --no_dropout --lambda_l1 0
            --preprocess scale_width``: docs/high-resolution.md's pix2pixHD recipe (global generator with 4 halvings
            and 9 residual blocks, LSGAN summed over the scales + feature matching x10, no VGG term), at 512x256,
            512x512 and 1024x512 (W x H: ``--load_size`` W, ``--crop_size`` H)
    unet    ``--netG unet_512 --netD basic``: the paper's objective (vanilla GAN + 100 L1, batch norm) at 512x512

The case's ``TrainingConfig`` is checked, its networks and optimizers come from the trainer's own set-up
(``build_networks``, ``make_adam``, ``accelerator.prepare``, the ``StepParts`` the ``Trainer`` builds), and what is
timed is the trainer's ``train_step``; the allocator is tuned as ``scripts/train.py`` tunes it. ``--gradient_
checkpointing`` is the networks' ``enable_gradient_checkpointing()`` (each conv block, residual block, U-Net level
and PatchGAN layer recomputed in the backward pass). ``--ngf``/``--ndf`` are small by default so the cases fit a
laptop CPU; pix2pixHD's are 64 (about 16x the generator's work in its residual blocks).

Figures per case: ``flags`` (the command line measured), ``step_s`` (median seconds per update), ``peak_rss_mb``
(``getrusage`` maximum resident memory of the case's process), ``rss_before_steps_mb`` (resident memory once the
networks and data exist) and ``step_peak_mb`` (their difference: what training adds), and on CUDA
``peak_cuda_mb``. ``checkpointing`` compares each case with its ``-ckpt`` twin (memory and time ratios).

    python benchmarks/bench_hd.py [--steps 3] [--warmup 1] [--ngf 16] [--ndf 16] [--only hd-1024x512-D2 ...]
                                  [--max_seconds 120] [--json_out FILE]

``--max_seconds`` bounds each case: its updates stop once it has passed (at least one timed; ``time_bound`` in the
case says whether it cut the count short), and a case process still running at 2 x ``--max_seconds`` + 300 s is
stopped and listed in ``cases_skipped``.

Progress goes to stderr; the last line on stdout is one JSON object. On a shared CPU the times are noisy; the memory
figures are not.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from accelerate import Accelerator
from bench_common import TimeBound, run_worker, write_report  # this folder is on sys.path when the script runs

from pix2pix_hub.performance import cpu_capabilities, peak_rss_mb, rss_mb, tune_allocator
from pix2pix_hub.training import StepParts, TrainingConfig, train_step
from pix2pix_hub.training.setup import build_networks, make_adam, make_step_parts

HD_SIZES = ((512, 256), (512, 512), (1024, 512))  # (W, H)
UNET_SIZE = (512, 512)
# docs/high-resolution.md's recipe beyond the architecture flags: pix2pixHD's norm, no dropout, no L1 term.
HD_RECIPE = {"norm": "instance", "no_dropout": True, "lambda_l1": 0.0, "preprocess": "scale_width"}


@dataclass(frozen=True)
class Case:
    model: str  # "hd" or "unet"
    width: int
    height: int
    num_D: int
    checkpointing: bool

    @property
    def name(self) -> str:
        scales = f"-D{self.num_D}" if self.model == "hd" else ""
        return f"{self.model}-{self.width}x{self.height}{scales}{'-ckpt' if self.checkpointing else ''}"


def all_cases() -> list[Case]:
    cases = [Case("hd", w, h, d, c) for w, h in HD_SIZES for d in (2, 3) for c in (False, True)]
    return cases + [Case("unet", *UNET_SIZE, 1, c) for c in (False, True)]


def case_settings(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    """The ``TrainingConfig`` fields (= training flags) that ``case`` sets; the rest keep their defaults."""
    if case.model == "hd":
        settings = {"netG": "global", "netD": "multiscale", "num_D": case.num_D, **HD_RECIPE}
    else:
        settings = {"netG": "unet_512", "netD": "basic"}
    settings |= {"ngf": args.ngf, "ndf": args.ndf, "load_size": case.width, "crop_size": case.height}
    if case.checkpointing:
        settings["gradient_checkpointing"] = True
    return settings


def as_flags(settings: dict[str, Any]) -> str:
    """``settings`` as the command line a user types: ``--netG global --no_dropout ...``."""
    return " ".join(f"--{name}" if value is True else f"--{name} {value}" for name, value in settings.items())


# ----- one case per process -----------------------------------------------------------------------------------
def build_step(config: TrainingConfig, accelerator: Accelerator) -> StepParts:
    """What ``Trainer._build`` makes of ``config`` for ``train_step`` (without data loading or schedules)."""
    generator, discriminator = build_networks(config)
    optimizer_g = make_adam(generator.parameters(), config, accelerator.device)
    optimizer_d = make_adam(discriminator.parameters(), config, accelerator.device)
    prepared = accelerator.prepare(generator, discriminator, optimizer_g, optimizer_d)
    return make_step_parts(config, *prepared, accelerator.device)


def run_case(case: Case, args: argparse.Namespace) -> dict:
    """Build, warm up and time ``case`` in this process; its figures."""
    settings = case_settings(case, args)
    config = TrainingConfig(**settings)
    config.check()
    if config.allocator_tuning:
        tune_allocator()
    accelerator = Accelerator(cpu=args.device == "cpu", mixed_precision="no")
    torch.manual_seed(config.seed)
    parts = build_step(config, accelerator)
    shape = (config.batch_size, 3, case.height, case.width)
    batch = {key: torch.rand(shape, device=accelerator.device) * 2 - 1 for key in ("input", "target")}
    before = rss_mb()
    bound = TimeBound(args.max_seconds)
    times = []
    for index in bound.loop(args.warmup + args.steps, minimum=args.warmup + 1):
        start = time.perf_counter()
        train_step(batch, parts, accelerator)
        if accelerator.device.type == "cuda":
            torch.cuda.synchronize()
        if index >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = peak_rss_mb()
    result = {**asdict(case), "name": case.name, "flags": as_flags(settings)}
    result["step_s"] = round(statistics.median(times), 3)
    result["step_s_all"] = [round(t, 3) for t in times]
    result["peak_rss_mb"] = round(peak, 1)
    result["rss_before_steps_mb"] = None if before is None else round(before, 1)
    result["step_peak_mb"] = None if before is None else round(peak - before, 1)
    if accelerator.device.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    result["time_bound"] = bound.report()
    return result


def savings(results: list[dict]) -> list[dict]:
    """Per case, checkpointing's effect: memory added by training and step time, with / without."""
    by_name = {result["name"]: result for result in results}
    rows = []
    for result in results:
        with_ckpt = by_name.get(result["name"] + "-ckpt")
        if result["checkpointing"] or with_ckpt is None or not result["step_peak_mb"]:
            continue
        rows.append(
            {
                "case": result["name"],
                "step_peak_mb": [result["step_peak_mb"], with_ckpt["step_peak_mb"]],
                "memory_ratio": round(with_ckpt["step_peak_mb"] / result["step_peak_mb"], 2),
                "time_ratio": round(with_ckpt["step_s"] / result["step_s"], 2),
            }
        )
    return rows


def machine(threads: int) -> dict:
    return {
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.machine(),
        "capabilities": cpu_capabilities(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed updates per case (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    parser.add_argument("--ngf", type=int, default=16, help="generator width (pix2pixHD: 64)")
    parser.add_argument("--ndf", type=int, default=16, help="discriminator width (pix2pixHD: 64)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per case (0: torch's default)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cuda: peak_cuda_mb reported too")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--max_seconds", type=float, default=120.0, help="time bound of each case's updates")
    parser.add_argument("--json_out", help="also write the report to this file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.max_seconds <= 0:
        parser.error("--max_seconds must be positive")
    cases = {case.name: case for case in all_cases()}
    if args.worker:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(run_case(cases[args.worker], args)))
        return
    unknown = sorted(set(args.only or []) - set(cases))
    if unknown:
        parser.error(f"unknown cases {', '.join(unknown)}; choose from {', '.join(cases)}")
    keys = ("steps", "warmup", "ngf", "ndf", "threads", "device", "max_seconds")
    settings = {key: getattr(args, key) for key in keys}
    argv = [text for key, value in settings.items() for text in (f"--{key}", str(value))]
    results, skipped = [], {}
    for name in args.only or cases:
        print(f"{name} ...", file=sys.stderr, flush=True)
        result = run_worker(__file__, name, argv, timeout=2 * args.max_seconds + 300)
        if result is None:
            skipped[name] = f"stopped after 2 x --max_seconds + 300 s ({2 * args.max_seconds + 300:.0f} s)"
            print(f"  {skipped[name]}", file=sys.stderr)
            continue
        results.append(result)
        print(f"  {results[-1]['step_s']} s/step, peak RSS {results[-1]['peak_rss_mb']} MB", file=sys.stderr)
    report = {"machine": machine(args.threads), "settings": settings, "cases": results, "cases_skipped": skipped}
    write_report(report | {"checkpointing": savings(results)}, args.json_out)


if __name__ == "__main__":
    main()
