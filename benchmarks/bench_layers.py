"""Where a default training step's time goes, convolution by convolution.

The paper config (unet_256 + 70x70 PatchGAN, batch norm, fp32, 256x256, batch 1) trained with the library's
``train_step``; every Conv2d / ConvTranspose2d of both networks is timed with module hooks: ``perf_counter``
around its forward calls, and between its backward pre-hook and backward hook (autograd runs a CPU graph on one
thread, so those bracket the layer's own backward, oneDNN's weight and activation reorders included). The
discriminator runs three times per step (real and fake pairs in its own update, the fake pair in the generator's)
and its figures add the three up. ``forward_gflops`` = forward FLOPs per second; the machine's fp32 matrix peak
is the ceiling (~150 GFLOP/s on the 2-core machine of docs/performance.md).

    python benchmarks/bench_layers.py --steps 8 [--max_seconds 120]

``--max_seconds`` bounds the updates: they stop once it has passed (the warm-up and at least one timed update run;
``steps`` in the report is the number timed).

A table sorted by time goes to stderr; the last line on stdout is one JSON object: ``step_s`` (median, hooks
included), ``layers`` (per layer: ``name``, ``kind``, ``input_shape``, ``calls`` per step, ``forward_ms``,
``backward_ms``, ``forward_gflop``, ``forward_gflops``; medians over steps) and ``totals`` per network, with
``rest_ms``: what the step spends outside convolutions (batch norm, activations, losses, Adam).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections import defaultdict

import torch
from bench_common import TimeBound, write_report  # this folder is on sys.path when the script runs
from bench_train import default_parts, machine
from torch import nn


def forward_gflop(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> float:
    """Multiply-adds x 2 of one call: each output pixel (a Conv2d's) or input pixel (a transposed conv's) meets
    ``in_channels / groups`` x ``out_channels`` x kernel taps."""
    source = inputs[0] if isinstance(layer, nn.ConvTranspose2d) else output
    pixels = source.shape[0] * source.shape[-2] * source.shape[-1]
    taps = layer.kernel_size[0] * layer.kernel_size[1]
    return 2 * pixels * layer.in_channels // layer.groups * layer.out_channels * taps / 1e9


class LayerClock:
    """Forward and backward seconds and forward GFLOP of each hooked layer, summed within the current step."""

    def __init__(self) -> None:
        self.step_totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.kinds: dict[str, str] = {}
        self._started: dict[tuple[str, str], float] = {}

    def attach(self, prefix: str, network: nn.Module) -> None:
        for name, layer in network.named_modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                self._hook(f"{prefix}.{name}", layer)

    def _hook(self, name: str, layer: nn.Module) -> None:
        self.kinds[name] = type(layer).__name__

        def start(phase: str):
            return lambda *_: self._started.__setitem__((phase, name), time.perf_counter())

        def forward_done(module, inputs, output):
            totals = self.step_totals[name]
            totals["forward_s"] += time.perf_counter() - self._started[("forward", name)]
            totals["forward_gflop"] += forward_gflop(module, inputs, output)
            totals["calls"] += 1
            self.shapes[name] = tuple(inputs[0].shape)

        def backward_done(*_):
            self.step_totals[name]["backward_s"] += time.perf_counter() - self._started[("backward", name)]

        layer.register_forward_pre_hook(start("forward"))
        layer.register_forward_hook(forward_done)
        layer.register_full_backward_pre_hook(start("backward"))
        layer.register_full_backward_hook(backward_done)

    def take_step(self) -> dict[str, dict[str, float]]:
        taken = {name: dict(totals) for name, totals in self.step_totals.items()}
        self.step_totals.clear()
        return taken


def median_layers(steps: list[dict[str, dict[str, float]]], clock: LayerClock) -> list[dict]:
    layers = []
    for name in steps[0]:

        def median(key: str, name: str = name) -> float:
            return statistics.median(step[name].get(key, 0.0) for step in steps)

        forward_s, gflop = median("forward_s"), median("forward_gflop")
        layers.append(
            {
                "name": name,
                "kind": clock.kinds[name],
                "input_shape": list(clock.shapes[name]),
                "calls": int(median("calls")),
                "forward_ms": round(forward_s * 1000, 2),
                "backward_ms": round(median("backward_s") * 1000, 2),
                "forward_gflop": round(gflop, 3),
                "forward_gflops": round(gflop / forward_s, 1) if forward_s else None,
            }
        )
    return sorted(layers, key=lambda layer: -(layer["forward_ms"] + layer["backward_ms"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed updates (medians over them)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed updates first")
    parser.add_argument("--max_seconds", type=float, default=120.0, help="time bound of the updates")
    parser.add_argument("--json_out", help="also write the report to this file")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")

    from pix2pix_hub.training import train_step

    # The first layers' inputs need no gradient; their backward hooks still bracket the weight gradient.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    torch.manual_seed(0)
    parts, accelerator, batch = default_parts(1)
    clock = LayerClock()
    clock.attach("generator", accelerator.unwrap_model(parts.generator))
    clock.attach("discriminator", accelerator.unwrap_model(parts.discriminator))
    step_times, per_step = [], []
    for index in TimeBound(args.max_seconds).loop(args.warmup + args.steps, minimum=args.warmup + 1):
        started = time.perf_counter()
        train_step(batch, parts, accelerator)
        elapsed = time.perf_counter() - started
        taken = clock.take_step()
        if index >= args.warmup:
            step_times.append(elapsed)
            per_step.append(taken)
        print(f"step {index + 1}: {elapsed:.3f} s", file=sys.stderr)

    layers = median_layers(per_step, clock)
    step_ms = statistics.median(step_times) * 1000
    totals = {}
    for network in ("generator", "discriminator"):
        own = [layer for layer in layers if layer["name"].startswith(network)]
        forward_ms = sum(layer["forward_ms"] for layer in own)
        gflop = sum(layer["forward_gflop"] for layer in own)
        totals[network] = {
            "forward_ms": round(forward_ms, 1),
            "backward_ms": round(sum(layer["backward_ms"] for layer in own), 1),
            "forward_gflop": round(gflop, 2),
            "forward_gflops": round(gflop / forward_ms * 1000, 1),
        }
    conv_ms = sum(total["forward_ms"] + total["backward_ms"] for total in totals.values())
    totals["rest_ms"] = round(step_ms - conv_ms, 1)

    print(f"{'layer':32s} {'input':>18s} {'calls':>5s} {'fwd ms':>8s} {'bwd ms':>8s} {'GFLOP/s':>8s}", file=sys.stderr)
    for layer in layers:
        shape = "x".join(map(str, layer["input_shape"][1:]))
        row = f"{layer['name']:32s} {shape:>18s} {layer['calls']:5d} {layer['forward_ms']:8.2f} "
        print(row + f"{layer['backward_ms']:8.2f} {layer['forward_gflops'] or 0:8.1f}", file=sys.stderr)
    print(f"step {step_ms:.0f} ms; outside convolutions {totals['rest_ms']:.0f} ms", file=sys.stderr)
    report = {
        "config": "unet_256 + 70x70 PatchGAN, batch norm, fp32, 256x256, batch 1, default train_step",
        "steps": len(step_times),
        "max_seconds": args.max_seconds,
        "machine": machine(),
        "step_s": round(step_ms / 1000, 4),
        "totals": totals,
        "layers": layers,
    }
    write_report(report, args.json_out)


if __name__ == "__main__":
    main()
