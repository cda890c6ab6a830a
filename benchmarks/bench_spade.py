"""GauGAN's training cost: seconds per step and peak memory of a ``--preset spade --use_vae`` update, with and without
``--gradient_checkpointing``, next to the pix2pixHD global generator's at the same sizes and widths.

Each case is a training command line on a random one-hot label map (``--label_nc``, batch 1, fp32; each case in a
fresh process so one case's peak memory cannot hide another's):

    spade   ``--preset spade --use_vae``: the SPADE generator (spectral norm, 5 upsamplings, SPADE hidden width
            128) with its style encoder, the multi-scale discriminator (2 scales, 4 layers, spectral + instance
            norm), hinge loss, feature matching x10, the KL term x0.05 (no VGG term: it needs weights)
    hd      ``--netG global --netD multiscale --norm instance --no_dropout --lambda_l1 0``: bench_hd.py's pix2pixHD
            recipe (4 halvings, 9 residual blocks, LSGAN + feature matching x10)

at 256x256 and 512x256 (W x H), ``--ngf``/``--ndf`` 16 by default (the papers use 64). What is timed is the
trainer's own ``train_step`` on networks and optimizers from its own set-up (bench_hd.py's ``build_step``).
Figures per case as bench_hd.py: ``step_s`` (median seconds per update), ``peak_rss_mb``, ``rss_before_steps_mb``,
``step_peak_mb`` (what training adds); ``checkpointing`` compares each case with its ``-ckpt`` twin. Also
``step_cpu_s`` (the process's CPU seconds per update) and ``load_average_1min`` before and after the updates: on a
shared machine a high load inflates ``step_s``, and with more threads than free cores also ``step_cpu_s``.

    python benchmarks/bench_spade.py [--steps 2] [--warmup 1] [--ngf 16] [--ndf 16] [--label_nc 12]
                                     [--only spade-256x256 ...] [--max_seconds 30] [--json_out FILE] [--smoke]

The last line on stdout is one JSON object. On a shared CPU the times are noisy; the memory figures are not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from accelerate import Accelerator
from bench_common import TimeBound, run_worker, write_report  # this folder is on sys.path when the script runs
from bench_hd import HD_RECIPE, as_flags, build_step, machine, savings

from pix2pix_hub.performance import peak_rss_mb, rss_mb, tune_allocator
from pix2pix_hub.training import train_step
from pix2pix_hub.training.arguments import preset_config
from pix2pix_hub.training.config import TrainingConfig

SIZES = ((256, 256), (512, 256))  # (W, H)
SMOKE_SIZES = ((128, 128),)  # --smoke: the script runs end to end in seconds; its figures are not the benchmark's


@dataclass(frozen=True)
class Case:
    model: str  # "spade" or "hd"
    width: int
    height: int
    checkpointing: bool

    @property
    def name(self) -> str:
        return f"{self.model}-{self.width}x{self.height}{'-ckpt' if self.checkpointing else ''}"


def all_cases(sizes: tuple[tuple[int, int], ...] = SIZES) -> list[Case]:
    return [Case(model, w, h, c) for w, h in sizes for model in ("spade", "hd") for c in (False, True)]


def case_settings(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    """The training flags ``case`` gives (with ``--preset spade`` for the SPADE cases)."""
    settings: dict[str, Any] = {"use_vae": True} if case.model == "spade" else {"netG": "global", "netD": "multiscale"}
    if case.model == "hd":
        settings |= HD_RECIPE
    settings |= {"label_nc": args.label_nc, "ngf": args.ngf, "ndf": args.ndf}
    settings |= {"load_size": case.width, "crop_size": case.height, "preprocess": "scale_width"}
    if case.checkpointing:
        settings["gradient_checkpointing"] = True
    return settings


def make_config(case: Case, settings: dict[str, Any]) -> TrainingConfig:
    if case.model == "spade":
        return preset_config("spade", **settings)
    config = TrainingConfig(**settings)
    config.check()
    return config


def one_hot_batch(config: TrainingConfig, case: Case) -> dict[str, torch.Tensor]:
    classes = torch.randint(0, config.label_nc, (config.batch_size, case.height, case.width))
    labels = torch.nn.functional.one_hot(classes, config.label_nc).permute(0, 3, 1, 2).float()
    return {"input": labels, "target": torch.rand(config.batch_size, 3, case.height, case.width) * 2 - 1}


def run_case(case: Case, args: argparse.Namespace) -> dict:
    """Build, warm up and time ``case`` in this process; its figures."""
    settings = case_settings(case, args)
    config = make_config(case, settings)
    if config.allocator_tuning:
        tune_allocator()
    accelerator = Accelerator(cpu=True, mixed_precision="no")
    torch.manual_seed(config.seed)
    parts = build_step(config, accelerator)
    batch = one_hot_batch(config, case)
    before = rss_mb()
    bound = TimeBound(args.max_seconds)
    times, cpu_times, load_before = [], [], os.getloadavg()[0]
    for index in bound.loop(args.warmup + args.steps, minimum=args.warmup + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        losses = train_step(batch, parts, accelerator)
        if index >= args.warmup:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    peak = peak_rss_mb()
    flags = ("--preset spade " if case.model == "spade" else "") + as_flags(settings)
    result = {**asdict(case), "name": case.name, "flags": flags, "losses": sorted(losses)}
    result["step_s"] = round(statistics.median(times), 3)
    result["step_s_all"] = [round(t, 3) for t in times]
    result["step_cpu_s"] = round(statistics.median(cpu_times), 3)
    result["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    result["peak_rss_mb"] = round(peak, 1)
    result["rss_before_steps_mb"] = None if before is None else round(before, 1)
    result["step_peak_mb"] = None if before is None else round(peak - before, 1)
    result["time_bound"] = bound.report()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed updates per case (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    parser.add_argument("--ngf", type=int, default=16, help="generator width (the papers: 64)")
    parser.add_argument("--ndf", type=int, default=16, help="discriminator width (the papers: 64)")
    parser.add_argument("--label_nc", type=int, default=12, help="label classes (the CMP facades: 12)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per case (0: torch's default)")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--max_seconds", type=float, default=30.0, help="time bound of each case's updates")
    parser.add_argument("--json_out", help="also write the report to this file")
    parser.add_argument("--smoke", action="store_true", help="128x128, ngf/ndf 4, 1 step, no warm-up: a quick check")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.ngf, args.ndf, args.steps, args.warmup = 4, 4, 1, 0
    if args.steps < 1 or args.max_seconds <= 0:
        parser.error("--steps must be at least 1 and --max_seconds positive")
    cases = {case.name: case for case in all_cases(SMOKE_SIZES if args.smoke else SIZES)}
    if args.worker:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(run_case(cases[args.worker], args)))
        return
    unknown = sorted(set(args.only or []) - set(cases))
    if unknown:
        parser.error(f"unknown cases {', '.join(unknown)}; choose from {', '.join(cases)}")
    keys = ("steps", "warmup", "ngf", "ndf", "label_nc", "threads", "max_seconds")
    settings = {key: getattr(args, key) for key in keys}
    argv = [text for key, value in settings.items() for text in (f"--{key}", str(value))]
    argv += ["--smoke"] if args.smoke else []
    settings["smoke"] = args.smoke
    results, skipped = [], {}
    for name in args.only or cases:
        print(f"{name} ...", file=sys.stderr, flush=True)
        result = run_worker(__file__, name, argv, timeout=2 * args.max_seconds + 300)
        if result is None:
            skipped[name] = f"stopped after 2 x --max_seconds + 300 s ({2 * args.max_seconds + 300:.0f} s)"
            continue
        results.append(result)
        print(f"  {result['step_s']} s/step, peak RSS {result['peak_rss_mb']} MB", file=sys.stderr)
    report = {"machine": machine(args.threads), "settings": settings, "cases": results, "cases_skipped": skipped}
    write_report(report | {"checkpointing": savings(results)}, args.json_out)


if __name__ == "__main__":
    main()
