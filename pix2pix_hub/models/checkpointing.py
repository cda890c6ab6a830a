"""Opt-in gradient (activation) checkpointing for the networks, diffusers-style: ``enable_gradient_checkpointing()``.

A network runs in segments: a conv block up to its activation, a residual block, a U-Net level. With checkpointing
on, a segment keeps only its input for the backward pass and runs again there (``torch.utils.checkpoint``,
non-reentrant), trading about one more forward pass for the activation memory inside the segments. The results are
those without it: dropout draws the same mask again (checkpoint replays the RNG state), and batch norm's running
statistics are put back after the replay, so they move once per forward as they would otherwise. It acts only in
training mode with gradients on; eval mode, ``no_grad`` and the ONNX export run the layers plainly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm  # what parametrizations.spectral_norm registers
from torch.utils.checkpoint import checkpoint

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh)


class GradientCheckpointing:
    """Mixin for ``nn.Module`` networks: ``enable_gradient_checkpointing()`` / ``disable_gradient_checkpointing()``
    switch it for the network and every sub-network that has the mixin; off by default and never saved (it is
    not a constructor argument, so ``config.json`` does not change)."""

    gradient_checkpointing: bool = False

    def enable_gradient_checkpointing(self) -> GradientCheckpointing:
        """Recompute activations in the backward pass instead of keeping them. Returns ``self``."""
        self._set_gradient_checkpointing(True)
        return self

    def disable_gradient_checkpointing(self) -> GradientCheckpointing:
        self._set_gradient_checkpointing(False)
        return self

    def _set_gradient_checkpointing(self, value: bool) -> None:
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, GradientCheckpointing):
                module.gradient_checkpointing = value

    @property
    def checkpointing_now(self) -> bool:
        """Whether segments are checkpointed in this call: switched on, training, gradients recorded."""
        return self.gradient_checkpointing and self.training and torch.is_grad_enabled()  # type: ignore[attr-defined]

    def run_segment(self, segment: nn.Module | Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        """``segment`` (a module, or layers applied in turn) on ``x``, checkpointed when ``checkpointing_now``."""
        layers = [segment] if isinstance(segment, nn.Module) else list(segment)
        if not self.checkpointing_now:
            return run_layers(layers, x)
        return checkpoint(run_layers, layers, x, use_reentrant=False, context_fn=lambda: replay_contexts(layers))

    def run_sequential(self, sequential: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """``sequential(x)``; checkpointed segment by segment (``segments``) when ``checkpointing_now``."""
        if not self.checkpointing_now:
            return sequential(x)
        for segment in segments(sequential):
            x = self.run_segment(segment, x)
        return x


def run_layers(layers: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for layer in layers:
        x = layer(x)
    return x


def segments(layers: nn.Sequential | Sequence[nn.Module]) -> list[list[nn.Module]]:
    """``layers`` cut after each activation and around each block (a layer with layers of its own, e.g. a residual
    block): ``[pad, conv, norm, relu], [block], ..., [conv]``. A PatchGAN's segments end at its LeakyReLUs, so their
    outputs are the intermediate features pix2pixHD's feature matching reads, then the logits."""
    found: list[list[nn.Module]] = [[]]
    for layer in layers:
        if next(layer.children(), None) is not None and found[-1]:
            found.append([])
        found[-1].append(layer)
        if isinstance(layer, ACTIVATIONS) or next(layer.children(), None) is not None:
            found.append([])
    return [segment for segment in found if segment]


def replay_contexts(layers: Sequence[nn.Module]) -> tuple[contextlib.AbstractContextManager, Replay]:
    """``checkpoint``'s ``context_fn`` for ``layers``: the forward pass's context, the recomputation's."""
    replay = Replay(layers)
    return replay.forward_pass(), replay


class Replay:
    """Around a segment's recomputation: batch norm's running statistics (and its batch count) come back to what
    they were, so the replay does not move them a second time; spectral norms (``parametrizations.spectral_norm``)
    skip their power iteration and use the vectors the forward pass used (``forward_pass`` records them), so the
    replay sees the forward pass's weights and the vectors move once. Reusable: a double backward (the gradient
    penalty's ``create_graph``) recomputes a segment more than once."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        modules = [module for layer in layers for module in layer.modules()]
        self.norms = [
            module
            for module in modules
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None
        ]
        self.spectral = [module for module in modules if isinstance(module, _SpectralNorm)]
        self.saved: list[list[torch.Tensor]] = []
        self.used: list[list[torch.Tensor]] = []  # each spectral norm's (u, v) as the forward pass used them
        self.state: list[tuple[bool, list[torch.Tensor]]] = []

    @contextlib.contextmanager
    def forward_pass(self) -> Iterator[None]:
        yield
        self.used = [[module._u.clone(), module._v.clone()] for module in self.spectral]

    def __enter__(self) -> Replay:
        self.saved = [[buffer.clone() for buffer in running_buffers(norm)] for norm in self.norms]
        self.state = [(module.training, [module._u.clone(), module._v.clone()]) for module in self.spectral]
        with torch.no_grad():
            for module, (u, v) in zip(self.spectral, self.used):
                module._u.copy_(u)
                module._v.copy_(v)
                module.training = False
        return self

    def __exit__(self, *exc_info: object) -> None:
        with torch.no_grad():
            for norm, buffers in zip(self.norms, self.saved):
                for buffer, value in zip(running_buffers(norm), buffers):
                    buffer.copy_(value)
            for module, (training, (u, v)) in zip(self.spectral, self.state):
                module._u.copy_(u)
                module._v.copy_(v)
                module.training = training


def running_buffers(norm: nn.modules.batchnorm._BatchNorm) -> list[torch.Tensor]:
    return [buffer for buffer in (norm.running_mean, norm.running_var, norm.num_batches_tracked) if buffer is not None]
