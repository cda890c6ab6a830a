"""The GPU speed switches of a training run (each off unless its flag is given) and the fp16 scaler of G.

``--channels_last`` (networks and batches in channels_last memory format), ``--cudnn_benchmark`` (cuDNN times its
convolution algorithms once per size; the sizes of a run are fixed), ``--tf32`` (fp32 matmuls and convolutions on
TF32 tensor cores, Ampere and later) and ``--compile`` (``torch.compile`` of both networks; ``--compile_mode
reduce-overhead`` adds CUDA graphs of their forward and backward passes). The process-wide ones
(cuDNN autotuning, TF32) are set only while the run trains and put back after (``backend_switches``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .config import TrainingConfig


def channels_last(value: Any) -> Any:
    """A module, a 4-D tensor or a batch dict in channels_last memory format (other values as they are)."""
    if isinstance(value, dict):
        return {key: channels_last(item) for key, item in value.items()}
    if isinstance(value, nn.Module):
        return value.to(memory_format=torch.channels_last)
    if isinstance(value, torch.Tensor) and value.ndim == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value


def _tf32_settings() -> list[tuple[Any, str, Any]]:
    """``(object, attribute, TF32 value)`` for matmuls and cuDNN convolutions, through the API this torch reads
    (``fp32_precision`` from torch 2.9; reading a legacy flag after setting the new one raises)."""
    try:
        if isinstance(torch.backends.cuda.matmul.fp32_precision, str):
            new_api = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
            return [(owner, "fp32_precision", "tf32") for owner in new_api]
    except (AttributeError, RuntimeError):
        pass
    return [(torch.backends.cuda.matmul, "allow_tf32", True), (torch.backends.cudnn, "allow_tf32", True)]


@contextlib.contextmanager
def backend_switches(config: TrainingConfig) -> Iterator[None]:
    """cuDNN autotuning (``--cudnn_benchmark``) and TF32 (``--tf32``) on inside, as they were after.

    Returns:
        A context manager; it changes nothing when neither flag is given.
    """
    settings = [(torch.backends.cudnn, "benchmark", True)] if config.cudnn_benchmark else []
    if config.tf32:
        settings += _tf32_settings()
    before = [getattr(owner, name) for owner, name, _ in settings]
    try:
        for owner, name, value in settings:
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name, _), value in zip(settings, before):
            setattr(owner, name, value)


def compile_mode(config: TrainingConfig, device: torch.device | None) -> str:
    """The torch.compile mode of a run: ``--compile_mode``, but ``default`` for ``reduce-overhead`` (CUDA graphs)
    off CUDA, where there are no CUDA graphs to capture (``device`` None: the mode as given)."""
    if config.compile_mode == "reduce-overhead" and device is not None and device.type != "cuda":
        return "default"
    return config.compile_mode


def compile_networks(
    config: TrainingConfig,
    *networks: nn.Module,
    device: torch.device | None = None,
    say: Callable[[str], None] | None = None,
) -> None:
    """``--compile``: each (unwrapped) network compiled in place (``nn.Module.compile``), so DDP, Accelerate's
    unwrapping and the state dict see the same modules; compiled lazily, at the first step (``FirstStepClock``).

    Args:
        config: the run's ``--compile`` and ``--compile_mode``.
        networks: the unwrapped networks (G, D).
        device: where the run trains; ``reduce-overhead`` compiles as ``default`` off CUDA (``compile_mode``).
        say: prints that fallback; nothing else is said.
    """
    if not config.compile:
        return
    mode = compile_mode(config, device)
    if mode != config.compile_mode and say is not None:
        say(f"--compile_mode {config.compile_mode}: CUDA graphs need a CUDA device; on {device} it compiles as {mode}.")
    for network in networks:
        network.compile(mode=mode)


def graph_step_marker(config: TrainingConfig, device: torch.device) -> Callable[[], None]:
    """What to call before each training step: under CUDA graphs (``--compile --compile_mode reduce-overhead`` on
    CUDA) torch's mark of a new iteration, so the graphs' output memory of the step before may be reused; a no-op
    otherwise. The step itself stays as it is."""
    if config.compile and compile_mode(config, device) == "reduce-overhead":
        return torch.compiler.cudagraph_mark_step_begin
    return lambda: None


def fp32_eager(accelerator: Any, prepared: nn.Module) -> nn.Module:
    """A prepared network as a trained model: unwrapped, without Accelerate's autocast wrapper (fp32, as validation
    and the saved model are meant to be) and no longer compiled. Training must be over: both are removed in place.
    """
    network = accelerator.unwrap_model(prepared, keep_fp32_wrapper=False)
    if getattr(network, "_compiled_call_impl", None) is not None:
        network._compiled_call_impl = None
    return network


@contextlib.contextmanager
def eager_fp32(*networks: nn.Module | None) -> Iterator[None]:
    """Inside, each network runs its own forward, in fp32 and uncompiled (Accelerate's autocast wrapper and
    ``--compile`` set aside, both put back after): what a checkpoint's model folder exports.

    Returns:
        A context manager.
    """
    held = [network for network in networks if network is not None]
    saved = [(network.__dict__.get("forward"), getattr(network, "_compiled_call_impl", None)) for network in held]
    try:
        for network in held:
            if "_original_forward" in network.__dict__:
                network.forward = network._original_forward
            network._compiled_call_impl = None
        yield
    finally:
        for network, (forward, compiled) in zip(held, saved):
            if forward is not None:
                network.forward = forward
            network._compiled_call_impl = compiled


class FirstStepClock:
    """Times the first training step of a ``--compile`` run, where ``torch.compile`` compiles G and D, once."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started: float | None = None

    def start(self) -> None:
        if self.enabled:
            self.started = time.perf_counter()

    def stop(self, say: Callable[[str], None]) -> None:
        """``say`` the first step's time (nothing after any other step, or without ``--compile``)."""
        if not self.enabled or self.started is None:
            return
        self.enabled = False
        seconds = time.perf_counter() - self.started
        say(f"torch.compile: the first step, compiling G and D, took {seconds:.1f} s.")


def give_generator_its_scaler(parts: Any, accelerator: Any) -> None:
    """Under fp16, G its own gradient scaler, set up as D's (Accelerate's one), in ``parts.scaler_g`` and on G's
    prepared optimizer (which steps and updates it): one scaler, updated after D's step, would change the scale
    between G's accumulated micro-batches and unscale their sum by the wrong factor. Nothing without fp16."""
    scaler = getattr(accelerator, "scaler", None)
    if scaler is None:
        return
    parts.scaler_g = torch.amp.GradScaler(
        device=getattr(scaler, "_device", "cuda"),
        init_scale=scaler._init_scale,
        growth_factor=scaler._growth_factor,
        backoff_factor=scaler._backoff_factor,
        growth_interval=scaler._growth_interval,
        enabled=scaler._enabled,
    )
    parts.optimizer_g.scaler = parts.scaler_g
