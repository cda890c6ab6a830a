"""The GPU check in one call: the CUDA-marked tests, the paper step with each speed switch, images/s, the facades
schedule's projected wall time and inference through ``Pix2Pix``; one JSON report.

On a machine with one GPU the default run stays inside ``--budget_s`` (420 s; a watchdog ends the process 30 s
after it), so with Python's start it takes under 8 minutes:

    tests        ``pytest -m cuda`` on ``--tests`` (default ``tests``): counts, and each failure's first line
    train        the paper step (unet_256 + 70x70 PatchGAN, batch norm, batch 1, 256x256, random data) through the
                 library's own ``TrainingConfig``, ``training.setup`` (``build_networks``, ``make_adam``,
                 ``accelerator.prepare``, ``make_step_parts``) and ``train_step``, in fp32 and bf16 (autocast;
                 skipped where bf16 is emulated unless ``--include_emulated``): switches off (``baseline``), each
                 switch alone, then ``fast`` (the switches that measured faster, not compile) and ``all``; images/s
                 at ``--batch_sizes`` (1 16 64) for ``baseline`` and ``fast``; ``plain_eager`` (default Adam, D
                 not frozen) as the reference loop; ``compile`` (mode default) and ``cuda_graphs`` (compile mode
                 reduce-overhead, CUDA only) at batch 1, compared in ``train.cuda_graphs`` (why not, on a CPU)
    switches     probed on ``TrainingConfig`` at run time: channels_last, cudnn_benchmark, tf32, compile,
                 cuda_graphs (the field names tried are in ``SWITCHES``; a ``no_<name>`` field means the library
                 turns it on by default; ``MODE_SWITCHES``: cuda_graphs is ``compile_mode`` "reduce-overhead",
                 with compile on). A switch the library lacks is reported "not available"; where the library
                 has the field but building through ``training.setup`` shows no effect of it, the benchmark applies
                 the switch itself (the usual torch call) and says so (``applied_by``)
    projection   the facades schedule (200 epochs of 400 pairs at batch 1 = 80,000 steps) at each batch-1 case's
                 step time: steps only, no data loading, validation or checkpoints
    inference    ms per image through ``Pix2Pix`` (PIL image in and out, and ``translate_tensor``) at ``--sizes``
                 (256 512 1024), fp32, and in fp16/bf16 weights on a GPU (an error is reported, not raised)

Every case is bounded: it starts only if the budget has room for it, and times at most ``--steps`` updates or
``--case_seconds`` seconds after ``--warmup`` updates (the first one's time, compile or autotuning included, is
``first_step_s``). The report is written to ``--json_out`` after every case (``complete`` false until the end), so
a run cut short still leaves what it measured; the last line on stdout is the whole report.

    python benchmarks/bench_gpu.py [--json_out benchmarks/results/gpu-check.json] [--budget_s 420]
    python benchmarks/bench_gpu.py --smoke      # any CPU, seconds: tiny networks, a few steps (CI)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import faulthandler
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from bench_common import (  # this folder is on sys.path when the script runs
    INCLUDE_EMULATED_HELP,
    TimeBound,
    cpu_bf16_emulated,
    cuda_bf16_emulated,
    machine,
    select_variants,
    write_report,
)

from pix2pix_hub.fileio import write_json

ROOT = Path(__file__).resolve().parents[1]
FACADES_STEPS = 200 * 400  # the paper's facades schedule: 200 epochs of 400 pairs at batch 1
GOAL_MINUTES = 15
WATCHDOG_GRACE_S = 30
# (fields that turn it on, fields that turn it off, needs CUDA)
SWITCHES: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "channels_last": (("channels_last",), ("no_channels_last",), False),
    "cudnn_benchmark": (("cudnn_benchmark",), ("no_cudnn_benchmark",), True),
    "tf32": (("tf32", "allow_tf32"), ("no_tf32",), True),
    "compile": (("compile", "torch_compile"), ("no_compile",), False),
    "cuda_graphs": (("cuda_graphs", "cuda_graph"), ("no_cuda_graphs",), True),
}
# Switches set by a value of a str field where no bool field is found: (field, value that turns it on, switches it
# needs on too). CUDA graphs are torch.compile's "reduce-overhead" mode.
MODE_SWITCHES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cuda_graphs": ("compile_mode", "reduce-overhead", ("compile",)),
}
COMPILED = ("compile", "cuda_graphs")  # the switches whose cases compile (timed last, with --compile_case_s left)


# ----- the switches ---------------------------------------------------------------------------------------------
def probe_switches() -> dict[str, dict[str, Any]]:
    """Per switch: the ``TrainingConfig`` field that controls it (``field``, ``on`` = the value that turns it on)
    and ``default_on``; ``field`` None where the library has none."""
    from pix2pix_hub.training import TrainingConfig

    fields = {field.name: field for field in dataclasses.fields(TrainingConfig)}
    found = {}
    for name, (positive, negative, _) in SWITCHES.items():
        entry: dict[str, Any] = {"field": None, "on": None, "default_on": False}
        for field_name, on in [(f, True) for f in positive] + [(f, False) for f in negative]:
            field = fields.get(field_name)
            if field is not None and isinstance(field.default, bool):
                entry = {"field": field_name, "on": on, "default_on": field.default == on}
                break
            if field is not None:
                entry["unusable_field"] = f"{field_name} is not a bool field (default {field.default!r})"
        mode = MODE_SWITCHES.get(name)
        field = fields.get(mode[0]) if mode and entry["field"] is None else None
        if field is not None and isinstance(field.default, str):
            entry = {"field": mode[0], "on": mode[1], "off": field.default, "default_on": field.default == mode[1]}
            entry["needs"] = list(mode[2])
        found[name] = entry
    return found


def switch_settings(switches: dict[str, dict], wanted: tuple[str, ...]) -> dict[str, Any]:
    """``TrainingConfig`` values with the ``wanted`` switches (and those they need) on and every other available
    one off (a mode switch's ``off`` value: its field's default)."""
    wanted = (*wanted, *(need for name in wanted for need in switches.get(name, {}).get("needs", ())))
    return {
        entry["field"]: entry["on"] if name in wanted else entry.get("off", not entry["on"])
        for name, entry in switches.items()
        if entry["field"] is not None
    }


def new_tf32_api() -> bool:
    """Whether this torch sets TF32 through ``fp32_precision`` (torch 2.9 on). Reading a legacy flag
    (``allow_tf32``, ``get_float32_matmul_precision``) after the new API has set TF32 raises, so the benchmark
    reads and writes through the new API wherever it exists."""
    try:
        return isinstance(torch.backends.cuda.matmul.fp32_precision, str)
    except (AttributeError, RuntimeError):
        return False


def backend_flags() -> dict[str, Any]:
    """The process-wide settings a switch may change: cuDNN autotuning and TF32 for matmuls and convolutions."""
    flags: dict[str, Any] = {"cudnn_benchmark": torch.backends.cudnn.benchmark, "new_tf32_api": new_tf32_api()}
    if flags["new_tf32_api"]:
        readers = {
            "matmul_fp32_precision": lambda: torch.backends.cuda.matmul.fp32_precision,
            "cudnn_conv_fp32_precision": lambda: torch.backends.cudnn.conv.fp32_precision,
        }
    else:
        readers = {
            "matmul_allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
            "cudnn_allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision,
        }
    for name, read in readers.items():
        try:
            flags[name] = read()
        except (AttributeError, RuntimeError) as error:
            flags[name] = f"unreadable: {str(error)[:120]}"
    return flags


def restore_flags(flags: dict[str, Any]) -> None:
    """Put back what ``backend_flags`` read (through the same API)."""
    torch.backends.cudnn.benchmark = flags["cudnn_benchmark"]
    writers: dict[str, Callable[[Any], None]] = {
        "matmul_fp32_precision": lambda v: setattr(torch.backends.cuda.matmul, "fp32_precision", v),
        "cudnn_conv_fp32_precision": lambda v: setattr(torch.backends.cudnn.conv, "fp32_precision", v),
        "matmul_allow_tf32": lambda v: setattr(torch.backends.cuda.matmul, "allow_tf32", v),
        "cudnn_allow_tf32": lambda v: setattr(torch.backends.cudnn, "allow_tf32", v),
        "float32_matmul_precision": torch.set_float32_matmul_precision,
    }
    for name, write in writers.items():
        value = flags.get(name)
        if value is not None and not (isinstance(value, str) and value.startswith("unreadable")):
            write(value)


def tf32_on() -> bool | None:
    """Whether matmuls may run in TF32 (None: this torch will not say)."""
    flags = backend_flags()
    if flags["new_tf32_api"]:
        return flags["matmul_fp32_precision"] == "tf32"
    matmul = flags["matmul_allow_tf32"]
    return None if isinstance(matmul, str) else bool(matmul) or flags["float32_matmul_precision"] != "highest"


def is_channels_last(module: torch.nn.Module) -> bool:
    for parameter in module.parameters():
        if parameter.ndim == 4 and parameter.shape[1] > 1 and parameter.shape[2] * parameter.shape[3] > 1:
            return parameter.is_contiguous(memory_format=torch.channels_last) and not parameter.is_contiguous()
    return False


def is_compiled(module: torch.nn.Module) -> bool:
    inner = getattr(module, "module", module)  # DDP
    return any(
        type(m).__name__ == "OptimizedModule" or getattr(m, "_compiled_call_impl", None) is not None
        for m in (module, inner)
    )


def switch_effect(name: str, parts: Any) -> bool | None:
    """Whether ``name`` visibly took effect on the built step (None: it cannot be seen from outside)."""
    networks = (parts.generator, parts.discriminator)
    if name == "channels_last":
        return all(is_channels_last(network) for network in networks)
    if name == "compile":
        return any(is_compiled(network) for network in networks)
    if name == "cudnn_benchmark":
        return bool(torch.backends.cudnn.benchmark)
    if name == "tf32":
        return tf32_on()
    return None


def apply_switch(name: str, parts: Any, batch: dict[str, torch.Tensor]) -> tuple[Any, dict]:
    """The benchmark's own way to turn ``name`` on (the usual torch call); ``(parts, batch)`` after it."""
    if name == "channels_last":
        for network in (parts.generator, parts.discriminator):
            network.to(memory_format=torch.channels_last)
        batch = {key: value.contiguous(memory_format=torch.channels_last) for key, value in batch.items()}
    elif name == "compile":
        parts = dataclasses.replace(
            parts, generator=torch.compile(parts.generator), discriminator=torch.compile(parts.discriminator)
        )
    elif name == "cudnn_benchmark":
        torch.backends.cudnn.benchmark = True
    elif name == "tf32" and new_tf32_api():
        torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
    elif name == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    else:
        raise ValueError(f"the benchmark cannot apply {name} itself")
    return parts, batch


# ----- one training case ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    precision: str  # "fp32" or "bf16"
    switches: tuple[str, ...] = ()
    batch_size: int = 1
    label: str = "baseline"
    plain_eager: bool = False

    @property
    def name(self) -> str:
        return f"{self.precision}-{self.label}-b{self.batch_size}"


def build_step(config: Any, accelerator: Any) -> Any:
    """What the ``Trainer`` makes of ``config`` for ``train_step`` (as benchmarks/bench_hd.py builds it)."""
    from pix2pix_hub.training.setup import build_networks, make_adam, make_step_parts

    generator, discriminator = build_networks(config)
    optimizer_g = make_adam(generator.parameters(), config, accelerator.device)
    optimizer_d = make_adam(discriminator.parameters(), config, accelerator.device)
    prepared = accelerator.prepare(generator, discriminator, optimizer_g, optimizer_d)
    return make_step_parts(config, *prepared, accelerator.device)


def library_step(case: Case, args: argparse.Namespace, switches: dict) -> tuple[Callable[[], Any], dict]:
    """The library's step for ``case`` and how each of its switches was applied."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from pix2pix_hub.training import TrainingConfig, train_step
    from pix2pix_hub.training.speed import graph_step_marker

    AcceleratorState._reset_state(True)  # each case its own mixed precision, in one process
    mixed = {"fp32": "no", "bf16": "bf16"}[case.precision]
    settings = {"batch_size": case.batch_size, "mixed_precision": mixed, "ngf": args.ngf, "ndf": args.ndf}
    settings |= {"netG": args.net_g, "load_size": args.side, "crop_size": args.side}
    config = TrainingConfig(**settings, **switch_settings(switches, case.switches))
    config.check()
    accelerator = Accelerator(cpu=args.device == "cpu", mixed_precision=mixed)
    torch.manual_seed(0)
    parts = build_step(config, accelerator)
    shape = (case.batch_size, 3, args.side, args.side)
    batch = {key: torch.rand(shape, device=accelerator.device) * 2 - 1 for key in ("input", "target")}
    applied = {}
    for name in case.switches:
        effect = switch_effect(name, parts)
        if effect is False and name != "cuda_graphs":
            parts, batch = apply_switch(name, parts, batch)
            applied[name] = "benchmark (the library's field showed no effect through training.setup)"
        else:
            applied[name] = "library" if effect else "library (effect not visible from outside)"
    mark_step = graph_step_marker(config, accelerator.device)  # as the trainer calls it before each step

    def step() -> Any:
        mark_step()
        return train_step(batch, parts, accelerator)

    return step, applied


def plain_step(case: Case, args: argparse.Namespace) -> Callable[[], Any]:
    from bench_train import plain_eager_step

    torch.manual_seed(0)
    return plain_eager_step(case.batch_size, args.device, args.ngf, args.ndf, args.net_g)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_case(case: Case, args: argparse.Namespace, switches: dict, flags: dict) -> dict[str, Any]:
    """Build, warm up and time ``case`` in this process; its figures (process-wide flags restored after)."""
    torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result: dict[str, Any] = {"precision": case.precision, "switches": list(case.switches)}
    result["batch_size"] = case.batch_size
    try:
        if case.plain_eager:
            step, applied = plain_step(case, args), {}
        else:
            step, applied = library_step(case, args, switches)
        start = time.perf_counter()
        step()
        synchronize()
        result["first_step_s"] = round(time.perf_counter() - start, 3)
        for _ in range(args.warmup - 1):
            step()
        synchronize()
        bound = TimeBound(args.case_seconds)
        times = []
        for _ in bound.loop(args.steps):
            start = time.perf_counter()
            step()
            synchronize()
            times.append(time.perf_counter() - start)
        step_s = statistics.median(times)
        result.update(step_s=round(step_s, 5), images_per_s=round(case.batch_size / step_s, 2), steps=len(times))
        result.update(applied_by=applied, flags=backend_flags())
        if torch.cuda.is_available():
            result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    except Exception as error:  # noqa: BLE001 - one case failing must not lose the others' figures
        result["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    finally:
        restore_flags(flags)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result


# ----- the plan -------------------------------------------------------------------------------------------------
def precisions(args: argparse.Namespace) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """fp32 always; bf16 unless this device only emulates it (then with ``--include_emulated`` only)."""
    if args.device == "cuda":
        bf16 = cuda_bf16_emulated()
    else:
        bf16 = cpu_bf16_emulated()
    return select_variants({"fp32": None, "bf16": bf16}, args.include_emulated)


def usable_switches(args: argparse.Namespace, switches: dict) -> tuple[list[str], dict[str, str]]:
    """The switches this run measures, and why each other one is not measured."""
    usable, reasons = [], {}
    for name, (_, _, needs_cuda) in SWITCHES.items():
        entry = switches[name]
        if entry["field"] is None:
            reasons[name] = "not available: TrainingConfig has no field for it"
        elif needs_cuda and args.device != "cuda":
            reasons[name] = "needs CUDA"
        elif name == "compile" and args.device == "cpu" and not args.compile_on_cpu:
            reasons[name] = "skipped on CPU (compiling takes about a minute there; --compile_on_cpu runs it)"
        else:
            usable.append(name)
    return usable, reasons


def case_cost(case: Case, args: argparse.Namespace) -> float:
    """Seconds of budget a case must find left before it starts."""
    if args.smoke:
        return 2.0
    return args.compile_case_s if set(COMPILED) & set(case.switches) else args.case_seconds + 10


class TrainCases:
    """The training cases of one run, in order of importance, each started only when the budget has room for it;
    their figures in ``report["train"]``."""

    def __init__(self, args: argparse.Namespace, budget: TimeBound, report: dict, save: Callable[[], None]) -> None:
        self.args, self.budget, self.save = args, budget, save
        self.switches = probe_switches()
        self.usable, reasons = usable_switches(args, self.switches)
        self.precisions, skipped, notes = precisions(args)
        self.flags = backend_flags()
        self.train: dict[str, Any] = {"switches": self.switches, "switches_not_measured": reasons}
        self.train |= {"precisions_run": self.precisions, "precisions_skipped": skipped, "precision_notes": notes}
        self.train |= {"initial_flags": self.flags, "cases": {}, "cases_skipped": {}}
        report["train"] = self.train

    def run(self, todo: list[Case]) -> None:
        for case in todo:
            cost, left = case_cost(case, self.args), self.budget.left()
            if left < cost:
                self.train["cases_skipped"][case.name] = f"time budget: {left:.0f} s left, needs ~{cost:.0f} s"
                continue
            print(f"train {case.name} ...", file=sys.stderr, flush=True)
            self.train["cases"][case.name] = result = run_case(case, self.args, self.switches, self.flags)
            print(f"  {result.get('step_s', result.get('error'))}", file=sys.stderr, flush=True)
            self.save()

    def basic(self) -> None:
        """The plain loop, the baselines, each switch but compile alone, then images/s at each batch size for the
        baseline and for the switches that won (``fast``)."""
        run, usable = self.precisions, [name for name in self.usable if name not in COMPILED]
        self.run([Case("fp32", plain_eager=True, label="plain_eager")] if "fp32" in run else [])
        self.run([Case(precision) for precision in run])
        self.run([Case(p, (name,), label=name) for p in run for name in usable])
        faster = {p: tuple(name for name in usable if wins(self.train["cases"], p, name)) for p in run}
        self.train["fast_switches"] = {p: list(names) for p, names in faster.items()}
        self.run([Case(p, batch_size=b) for p in run for b in self.args.batch_sizes if b != 1])
        self.run([Case(p, faster[p], b, "fast") for p in run for b in self.args.batch_sizes if faster[p]])

    def compiled(self) -> None:
        """Per precision ``torch.compile`` alone (mode default), then CUDA graphs (``cuda_graphs``: compile mode
        reduce-overhead) at batch 1, compared in ``train["cuda_graphs"]``; then every available switch together
        (``all``)."""
        alone = [name for name in COMPILED if name in self.usable]
        self.run([Case(p, (name,), label=name) for p in self.precisions for name in alone])
        self.train["cuda_graphs"] = graphs_comparison(self.train, self.precisions)
        if len(self.usable) > 1:
            self.run([Case(p, tuple(self.usable), label="all") for p in self.precisions])


def graphs_comparison(train: dict[str, Any], precisions: list[str]) -> dict[str, Any]:
    """Per precision, the batch-1 step under CUDA graphs against the plain step (``baseline``: switches off;
    ``plain_eager``) and ``compile`` (mode default): step times, speed-ups (> 1: CUDA graphs faster) and ``pays``
    (more than 3% faster than both the baseline and compile); why not, where it did not run."""
    reason = train["switches_not_measured"].get("cuda_graphs")
    if reason:
        return {"skipped": f"{reason} (CUDA graphs: torch.compile mode reduce-overhead)"}
    cases, compared = train["cases"], {}
    for precision in precisions:
        graphs = cases.get(f"{precision}-cuda_graphs-b1", {})
        row: dict[str, Any] = {"cuda_graphs_step_s": graphs.get("step_s")}
        if "step_s" not in graphs:
            skipped = train["cases_skipped"].get(f"{precision}-cuda_graphs-b1")
            row["not_measured"] = graphs.get("error") or skipped or "not run"
        for label in ("baseline", "plain_eager", "compile"):
            other = cases.get(f"{precision}-{label}-b1", {})
            row[f"{label}_step_s"] = other.get("step_s")
            if "step_s" in graphs and "step_s" in other:
                row[f"speedup_vs_{label}"] = round(other["step_s"] / graphs["step_s"], 3)
        row["pays"] = all(wins(cases, precision, "cuda_graphs", against=label) for label in ("baseline", "compile"))
        compared[precision] = row
    return compared


def wins(cases: dict[str, dict], precision: str, switch: str, margin: float = 0.03, against: str = "baseline") -> bool:
    """Whether ``switch`` alone measured more than ``margin`` faster than ``against`` (the baseline) at batch 1."""
    base, alone = cases.get(f"{precision}-{against}-b1", {}), cases.get(f"{precision}-{switch}-b1", {})
    return "step_s" in base and "step_s" in alone and alone["step_s"] < base["step_s"] * (1 - margin)


def projection(cases: dict[str, dict]) -> dict[str, Any]:
    """The facades schedule's wall time at each batch-1 case's step time (steps only)."""
    minutes = {
        name: round(case["step_s"] * FACADES_STEPS / 60, 1)
        for name, case in cases.items()
        if case.get("batch_size") == 1 and "step_s" in case
    }
    best = min(minutes, key=minutes.get) if minutes else None
    return {
        "schedule": "200 epochs x 400 pairs, batch 1 = 80,000 steps; steps only (no data, validation, checkpoints)",
        "minutes": minutes,
        "best_case": best,
        "best_minutes": minutes.get(best) if best else None,
        "goal_minutes": GOAL_MINUTES,
        "meets_goal": bool(best and minutes[best] < GOAL_MINUTES),
    }


# ----- inference and tests ----------------------------------------------------------------------------------------
def inference_section(args: argparse.Namespace, budget: TimeBound) -> dict[str, Any]:
    """ms per image through ``Pix2Pix`` at each size: PIL in and out, and ``translate_tensor`` (fp32; fp16/bf16
    weights on a GPU)."""
    import numpy as np
    from PIL import Image

    from pix2pix_hub import Pix2Pix
    from pix2pix_hub.models.registry import build_generator

    torch.manual_seed(0)
    generator = build_generator(args.net_g, ngf=args.ngf).eval()
    dtypes = {"fp32": torch.float32} | (
        {"fp16": torch.float16, "bf16": torch.bfloat16} if args.device == "cuda" else {}
    )
    results: dict[str, Any] = {"backend": args.backend, "sizes": {}}
    for label, dtype in dtypes.items():
        pix2pix = Pix2Pix(copy.deepcopy(generator).to(args.device, dtype), backend=args.backend)
        results.setdefault("engine", pix2pix.engine)
        for side in args.sizes:
            if budget.left() < (1 if args.smoke else 10):
                results["sizes"].setdefault(label, {})[str(side)] = "skipped: time budget"
                continue
            rng = np.random.default_rng(side)
            image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
            tensor = torch.rand(1, 3, side, side, device=args.device, dtype=dtype) * 2 - 1
            results["sizes"].setdefault(label, {})[str(side)] = timed_inference(pix2pix, image, tensor, args)
    return results


def timed_inference(pix2pix: Any, image: Any, tensor: torch.Tensor, args: argparse.Namespace) -> dict | str:
    def call_tensor() -> None:
        pix2pix.translate_tensor(tensor)
        synchronize()

    row = {}
    try:
        for name, call in (("image_ms", lambda: pix2pix(image)), ("tensor_ms", call_tensor)):
            start = time.perf_counter()
            call()
            row[f"first_{name}"] = round((time.perf_counter() - start) * 1000, 1)
            bound = TimeBound(args.infer_seconds)
            times = []
            for _ in bound.loop(args.infer_repeats):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
            row[name] = round(statistics.median(times) * 1000, 2)
    except Exception as error:  # noqa: BLE001 - reported: this is what the check is for
        return f"error: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return row


def tests_section(args: argparse.Namespace, budget: TimeBound) -> dict[str, Any]:
    """``pytest -m cuda`` on ``--tests`` in a subprocess: counts, failures, the time it took."""
    if not args.tests:
        return {"skipped": "no --tests paths given"}
    timeout = max(1.0, min(args.tests_timeout, budget.left() - 60))
    with tempfile.TemporaryDirectory() as scratch:
        junit = Path(scratch) / "junit.xml"
        # -v: a line per test as it ends, so a run stopped by the timeout still says which tests passed or failed
        command = [sys.executable, "-m", "pytest", "-v", "-m", "cuda", "-p", "no:cacheprovider", f"--junitxml={junit}"]
        command += ["--continue-on-collection-errors", *args.tests]
        start = time.perf_counter()
        try:
            completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as stopped:
            output = stopped.stdout.decode(errors="replace") if isinstance(stopped.stdout, bytes) else stopped.stdout
            return {
                "command": " ".join(command[1:]),
                "error": f"stopped after {timeout:.0f} s (--tests_timeout)",
                "ended_before_the_stop": tests_ended(output or ""),
            }
        result = {"command": " ".join(command[1:]), "returncode": completed.returncode}
        result["seconds"] = round(time.perf_counter() - start, 1)
        result |= junit_counts(junit) if junit.is_file() else {"output_tail": completed.stdout[-2000:]}
    # ok: every CUDA-marked test that could be collected passed (or was skipped); 5 is pytest's "none selected"
    result["ok"] = ("passed" in result and not result["failed"]) or completed.returncode == 5
    if not result["ok"] or result.get("collection_errors"):
        result["output_tail"] = (completed.stdout + completed.stderr)[-3000:]
    return result


def tests_ended(verbose_output: str) -> dict[str, str]:
    """``{test id: PASSED | FAILED | SKIPPED | ERROR}`` for each test ``pytest -v`` reported as ended."""
    ended = re.findall(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR)", verbose_output, flags=re.MULTILINE)
    return dict(ended)


def junit_counts(path: Path) -> dict[str, Any]:
    """Per test of pytest's JUnit file: passed, skipped, failed (with the first line of why); modules that could
    not be imported (a package this machine lacks) apart, as pytest reports them with an empty class name."""
    counts: dict[str, Any] = {"passed": 0, "skipped": 0, "failed": [], "collection_errors": [], "modules_skipped": []}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        problems = [*case.findall("failure"), *case.findall("error")]
        skipped = case.find("skipped")
        module = not case.get("classname")
        reported = problems[0] if problems else skipped
        message = (reported.get("message") or "") if reported is not None else ""
        name = case.get("name") if module else f"{case.get('classname')}::{case.get('name')}"
        described = f"{name}: {message.splitlines()[0] if message else ''}"[:300]
        if problems:
            counts["collection_errors" if module else "failed"].append(described)
        elif skipped is not None:
            if module:
                counts["modules_skipped"].append(described)
            else:
                counts["skipped"] += 1
        else:
            counts["passed"] += 1
    if counts["collection_errors"]:
        counts["collection_note"] = "modules not imported here (a package this machine lacks): their tests did not run"
    return counts


# ----- the run ----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and a few steps: seconds on any CPU")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--budget_s", type=float, default=420.0, help="time bound of the whole run, in seconds")
    parser.add_argument("--json_out", default=None, help="the report file (default: benchmarks/results/gpu-check.json)")
    parser.add_argument("--tests", nargs="*", default=["tests"], help="where pytest -m cuda looks (none: skip)")
    parser.add_argument("--tests_timeout", type=float, default=200.0, help="seconds for the CUDA-marked tests")
    parser.add_argument("--steps", type=int, default=30, help="timed updates per case at most")
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates per case (the first is timed apart)")
    parser.add_argument("--case_seconds", type=float, default=5.0, help="time bound of each case's timed updates")
    parser.add_argument("--compile_case_s", type=float, default=150.0, help="budget a compile case needs left")
    parser.add_argument("--compile_on_cpu", action="store_true", help="also measure --compile on a CPU")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 16, 64], help="images/s at these")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="inference image sides")
    parser.add_argument("--infer_repeats", type=int, default=20)
    parser.add_argument("--infer_seconds", type=float, default=3.0, help="time bound of each inference timing")
    parser.add_argument("--backend", default="auto", help="Pix2Pix backend for inference (smoke: torch)")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--ndf", type=int, default=64)
    parser.add_argument("--include_emulated", action="store_true", help=INCLUDE_EMULATED_HELP)
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here (--smoke runs on a CPU)")
    if args.device == "cpu" and not args.smoke:
        parser.error("no CUDA device: the full check is for a GPU; run with --smoke on a CPU")
    args.net_g, args.side = "unet_256", 256
    if args.smoke:  # unet_128 (7 halvings) at 128x128, 8 filters: the same code paths in a fraction of a second
        args.net_g, args.side, args.ngf, args.ndf = "unet_128", 128, 8, 8
        args.steps, args.warmup, args.case_seconds, args.infer_repeats, args.infer_seconds = 3, 2, 2.0, 3, 1.0
        args.batch_sizes, args.sizes = [1, 2], [128]
        args.backend = "torch" if args.backend == "auto" else args.backend
    elif args.json_out is None:
        args.json_out = str(ROOT / "benchmarks" / "results" / "gpu-check.json")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.smoke and args.device == "cpu":
        torch.set_num_threads(1)  # tiny ops on shared CI cores: a second thread only spins, waiting for a core
    budget = TimeBound(args.budget_s)
    faulthandler.dump_traceback_later(args.budget_s + WATCHDOG_GRACE_S, exit=True)
    report: dict[str, Any] = {"benchmark": "gpu_check", "smoke": args.smoke, "device": args.device, "complete": False}
    report |= {"machine": machine(), "budget_s": args.budget_s}
    report["model"] = (
        f"{args.net_g}(ngf={args.ngf}) + basic PatchGAN(ndf={args.ndf}), batch norm, {args.side}x{args.side}"
    )

    def save() -> None:
        report["elapsed_s"] = round(budget.elapsed(), 1)
        if args.json_out:
            write_json(args.json_out, report)

    print("CUDA-marked tests ...", file=sys.stderr, flush=True)
    report["tests"] = tests_section(args, budget)
    save()
    cases = TrainCases(args, budget, report, save)
    cases.basic()
    report["projection"] = projection(report["train"]["cases"])
    print("inference ...", file=sys.stderr, flush=True)
    report["inference"] = inference_section(args, budget)
    save()
    cases.compiled()
    report["projection"] = projection(report["train"]["cases"])
    report["complete"] = True
    report["elapsed_s"] = round(budget.elapsed(), 1)
    faulthandler.cancel_dump_traceback_later()
    write_report(report, args.json_out)
    return report


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
