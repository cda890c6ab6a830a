"""High-resolution training cost: seconds per step and peak memory of a pix2pixHD step and of unet_512, with and
without gradient checkpointing.

Cases (random data, batch 1, fp32; each in a fresh process so one case's peak memory cannot hide another's):

    hd      GlobalGenerator (4 halvings, 9 residual blocks, instance norm) + MultiscaleDiscriminator (70x70 PatchGANs,
            ``num_D`` 2 and 3 scales), LSGAN summed over scales + feature matching (``lambda_feat`` 10): pix2pixHD's
            objective without the VGG term, at 512x256, 512x512 and 1024x512 (W x H)
    unet    UNetGenerator(num_downs=9) (unet_512, batch norm) + one 70x70 PatchGAN, vanilla GAN + 100 L1 (the paper's
            objective) at 512x512

The step is written here, not taken from the trainer: D first (real and detached fake pairs, loss halved), then G
against the frozen D. As in pix2pixHD, the real pair's features for feature matching are those of D's own forward
(detached), so a step runs D three times. ``--ngf``/``--ndf`` are small by default so the cases fit a laptop CPU;
pix2pixHD's are 64 (about 16x the generator's work in its residual blocks).

Gradient checkpointing (``checkpointed`` below): the generator's layers in ``--segments`` groups and each of D's
conv-norm-LeakyReLU blocks run under ``torch.utils.checkpoint``, so backward keeps only each group's input and
recomputes the rest (one more forward of G and D per step). Figures per case: ``step_s`` (median seconds per
update), ``peak_rss_mb`` (``getrusage`` maximum resident memory of the case's process), ``rss_before_steps_mb``
(resident memory once the networks and data exist) and ``step_peak_mb`` (their difference: what training adds), and
on CUDA ``peak_cuda_mb``.

    python benchmarks/bench_hd.py [--steps 3] [--warmup 1] [--ngf 16] [--ndf 16] [--only hd-1024x512]

Progress goes to stderr; the last line on stdout is one JSON object. On a shared CPU the times are noisy; the memory
figures are not.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from pix2pix_hub.hd_losses import feature_matching_loss
from pix2pix_hub.models import PatchDiscriminator, UNetGenerator
from pix2pix_hub.models.hd import GlobalGenerator
from pix2pix_hub.models.multiscale import MultiscaleDiscriminator
from pix2pix_hub.performance import rss_mb

HD_SIZES = ((512, 256), (512, 512), (1024, 512))  # (W, H)
UNET_SIZE = (512, 512)
LAMBDA_FEAT = 10.0
LAMBDA_L1 = 100.0


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


# ----- gradient checkpointing ---------------------------------------------------------------------------------
class Checkpointed(nn.Module):
    """``modules`` run in order, in ``segments`` consecutive groups (one per module when None), each group under
    activation checkpointing while gradients are on: backward keeps each group's input only and recomputes its
    inside. Same outputs and gradients as running the modules plainly (dropout masks are replayed)."""

    def __init__(self, modules: Sequence[nn.Module], segments: int | None = None) -> None:
        super().__init__()
        indices = np.array_split(np.arange(len(modules)), segments or len(modules))
        self.groups = nn.ModuleList(nn.Sequential(*(modules[i] for i in group)) for group in indices if len(group))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for group in self.groups:
            x = checkpoint(group, x, use_reentrant=False) if torch.is_grad_enabled() else group(x)
        return x


def checkpointed(module_sequence: Sequence[nn.Module], segments: int | None = None) -> nn.Module:
    """``module_sequence`` as one module whose ``segments`` groups are checkpointed (see ``Checkpointed``)."""
    return Checkpointed(list(module_sequence), segments)


def discriminator_blocks(patch: PatchDiscriminator, use_checkpoints: bool) -> list[nn.Module]:
    """A PatchGAN's layers cut after each LeakyReLU (each block's output is one feature map), then the logit conv;
    each block checkpointed when asked."""
    blocks, current = [], []
    for layer in patch.layers:
        current.append(layer)
        if isinstance(layer, nn.LeakyReLU):
            blocks.append(current)
            current = []
    blocks.append(current)
    return [checkpointed(block) if use_checkpoints else nn.Sequential(*block) for block in blocks]


class ScaleFeatures(nn.Module):
    """``MultiscaleDiscriminator.features`` through (maybe checkpointed) blocks: per scale, finest first, the
    LeakyReLU outputs then the logits."""

    def __init__(self, discriminator: MultiscaleDiscriminator, use_checkpoints: bool) -> None:
        super().__init__()
        self.downsample = discriminator.downsample
        self.scales = nn.ModuleList(
            nn.ModuleList(discriminator_blocks(scale, use_checkpoints)) for scale in discriminator.scales
        )

    def forward(self, pair: torch.Tensor) -> list[list[torch.Tensor]]:
        outputs = []
        for k, blocks in enumerate(self.scales):
            if k:
                pair = self.downsample(pair)
            features, x = [], pair
            for block in blocks:
                x = block(x)
                features.append(x)
            outputs.append(features)
        return outputs


# ----- the networks and the step ------------------------------------------------------------------------------
@dataclass
class Parts:
    generator: nn.Module
    discriminator: nn.Module  # HD: ScaleFeatures (lists of features); U-Net: a PatchDiscriminator (logits)
    optimizer_g: torch.optim.Optimizer
    optimizer_d: torch.optim.Optimizer


def build(case: Case, args: argparse.Namespace, device: torch.device) -> Parts:
    if case.model == "hd":
        generator = GlobalGenerator(ngf=args.ngf, n_downsample=4, n_blocks=9, norm="instance")
        if case.checkpointing:
            generator.body = checkpointed(generator.body, args.segments)
        multiscale = MultiscaleDiscriminator(in_channels=6, ndf=args.ndf, n_layers=3, norm="instance", num_D=case.num_D)
        discriminator: nn.Module = ScaleFeatures(multiscale, case.checkpointing)
    else:
        generator = UNetGenerator(num_downs=9, ngf=args.ngf, norm="batch")
        discriminator = PatchDiscriminator(in_channels=6, ndf=args.ndf, n_layers=3, norm="batch")
        if case.checkpointing:
            # Each encoder and decoder block alone: the skips are the blocks' outputs, kept anyway.
            # (Recomputing a batch-norm block updates its running statistics twice; harmless for timing.)
            generator.encoders = nn.ModuleList(checkpointed([block]) for block in generator.encoders)
            generator.decoders = nn.ModuleList(checkpointed([block]) for block in generator.decoders)
            discriminator.layers = nn.Sequential(*discriminator_blocks(discriminator, True))
    generator, discriminator = generator.to(device), discriminator.to(device)
    adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
    return Parts(
        generator,
        discriminator,
        torch.optim.Adam(generator.parameters(), **adam),
        torch.optim.Adam(discriminator.parameters(), **adam),
    )


def lsgan(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))


def bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))


def hd_step(parts: Parts, x: torch.Tensor, y: torch.Tensor, num_D: int) -> None:
    """pix2pixHD: LSGAN summed over scales, D loss halved; G adds ``lambda_feat`` * feature matching."""
    fake = parts.generator(x)
    real_features = parts.discriminator(torch.cat([x, y], 1))
    fake_features = parts.discriminator(torch.cat([x, fake.detach()], 1))
    loss_d = 0.5 * sum(lsgan(r[-1], True) + lsgan(f[-1], False) for r, f in zip(real_features, fake_features))
    parts.optimizer_d.zero_grad(set_to_none=True)
    loss_d.backward()
    parts.optimizer_d.step()

    parts.discriminator.requires_grad_(False)
    fake_features = parts.discriminator(torch.cat([x, fake], 1))
    loss_gan = sum(lsgan(f[-1], True) for f in fake_features)
    loss_fm = feature_matching_loss(real_features, fake_features, n_layers=3, num_D=num_D)
    loss_g = loss_gan + LAMBDA_FEAT * loss_fm
    parts.optimizer_g.zero_grad(set_to_none=True)
    loss_g.backward()
    parts.optimizer_g.step()
    parts.discriminator.requires_grad_(True)


def unet_step(parts: Parts, x: torch.Tensor, y: torch.Tensor) -> None:
    """The paper's step: vanilla GAN, D loss halved; G adds ``lambda_L1`` * L1."""
    fake = parts.generator(x)
    real_logits = parts.discriminator(torch.cat([x, y], 1))
    fake_logits = parts.discriminator(torch.cat([x, fake.detach()], 1))
    loss_d = 0.5 * (bce(real_logits, True) + bce(fake_logits, False))
    parts.optimizer_d.zero_grad(set_to_none=True)
    loss_d.backward()
    parts.optimizer_d.step()

    parts.discriminator.requires_grad_(False)
    loss_g = bce(parts.discriminator(torch.cat([x, fake], 1)), True) + LAMBDA_L1 * F.l1_loss(fake, y)
    parts.optimizer_g.zero_grad(set_to_none=True)
    loss_g.backward()
    parts.optimizer_g.step()
    parts.discriminator.requires_grad_(True)


# ----- one case per process -----------------------------------------------------------------------------------
def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if platform.system() == "Darwin" else peak / 1024  # bytes on macOS, KB on Linux


def run_case(case: Case, args: argparse.Namespace) -> dict:
    """Build, warm up and time ``case`` in this process; its figures."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    parts = build(case, args, device)
    x = torch.rand(1, 3, case.height, case.width, device=device) * 2 - 1
    y = torch.rand(1, 3, case.height, case.width, device=device) * 2 - 1
    step = (lambda: hd_step(parts, x, y, case.num_D)) if case.model == "hd" else (lambda: unet_step(parts, x, y))
    before = rss_mb()
    times = []
    for index in range(args.warmup + args.steps):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if index >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = peak_rss_mb()
    result = {**asdict(case), "name": case.name, "step_s": round(statistics.median(times), 3)}
    result["step_s_all"] = [round(t, 3) for t in times]
    result["peak_rss_mb"] = round(peak, 1)
    result["rss_before_steps_mb"] = None if before is None else round(before, 1)
    result["step_peak_mb"] = None if before is None else round(peak - before, 1)
    if device.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def run_in_fresh_process(case: Case, argv: list[str]) -> dict:
    command = [sys.executable, __file__, *argv, "--worker", case.name]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed updates per case (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    parser.add_argument("--ngf", type=int, default=16, help="generator width (pix2pixHD: 64)")
    parser.add_argument("--ndf", type=int, default=16, help="discriminator width (pix2pixHD: 64)")
    parser.add_argument("--segments", type=int, default=6, help="checkpointed groups of the global generator")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per case (0: torch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (then peak_cuda_mb is reported too)")
    parser.add_argument("--only", nargs="*", default=None, help="case names to run (default: all)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    cases = {case.name: case for case in all_cases()}
    if args.worker:
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(run_case(cases[args.worker], args)))
        return
    unknown = sorted(set(args.only or []) - set(cases))
    if unknown:
        parser.error(f"unknown cases {', '.join(unknown)}; choose from {', '.join(cases)}")
    settings = {key: getattr(args, key) for key in ("steps", "warmup", "ngf", "ndf", "segments", "threads", "device")}
    argv = [text for key, value in settings.items() for text in (f"--{key}", str(value))]
    results = []
    for name in args.only or cases:
        print(f"{name} ...", file=sys.stderr, flush=True)
        results.append(run_in_fresh_process(cases[name], argv))
        print(f"  {results[-1]['step_s']} s/step, peak RSS {results[-1]['peak_rss_mb']} MB", file=sys.stderr)
    machine = {
        "threads": args.threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.machine(),
    }
    print(json.dumps({"machine": machine, "settings": settings, "cases": results, "checkpointing": savings(results)}))


if __name__ == "__main__":
    main()
