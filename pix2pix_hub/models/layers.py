"""Building blocks shared by the generators and the discriminator: norm layers, the output Tanh, weight init, input
checks."""

from __future__ import annotations

import torch
from torch import nn

from ..constants import INIT_TYPES, NORMS, check_choice


def norm_layer(norm: str, num_features: int) -> nn.Module:
    """The paper's normalisation: BatchNorm (affine, running stats), InstanceNorm (no affine) or none."""
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(num_features)
    if norm == "instance":
        return nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)
    return nn.Identity()


class Tanh(nn.Tanh):
    """The generators' output activation, computed so that it gives the same bytes in every process on a CPU.

    ``torch.tanh`` of a CPU float32 tensor runs MKL's vector maths, which MKL may spread over its own threads; some
    fresh processes then rounded some outputs differently, and a run drifted from its twin (how often:
    docs/performance.md). ``2 sigmoid(2x) - 1`` is the same function (within float32 rounding) computed element
    by element by torch's own vector kernels, so there it is used; everywhere else (GPU, bf16, an ONNX export or a
    trace, ``torch.compile``) this is plain ``nn.Tanh``. Same module, no parameters, so state dicts and
    checkpoints do not change. ``(N, C, H, W)`` in, the same shape out.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and not torch.jit.is_tracing()
            and not torch.onnx.is_in_onnx_export()
            and not torch.compiler.is_compiling()
        ):
            return torch.sigmoid(2 * x) * 2 - 1
        return torch.tanh(x)


def conv_bias(norm: str) -> bool:
    """BatchNorm has its own shift, so the conv before it needs no bias (as in the authors' code)."""
    return norm != "batch"


@torch.no_grad()
def init_weights(model: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialise conv/linear weights in place, as the authors' ``init_weights`` (modules in ``modules()`` order).

    Args:
        model: The network; its convs, transposed convs, linears and BatchNorms are drawn again.
        init_type: ``normal``: N(0, gain); ``xavier``/``orthogonal``: with gain; ``kaiming``: fan-in. Biases are
            zeroed and BatchNorm weights drawn from N(1, gain).
        init_gain: The gain (the standard deviation for ``normal``).

    Returns:
        ``model``, for chaining.
    """
    check_choice("init_type", init_type, INIT_TYPES)
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(layer.weight, 0.0, init_gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(layer.weight, gain=init_gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(layer.weight, gain=init_gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d) and layer.affine:  # SPADE's batch norm has no affine
            nn.init.normal_(layer.weight, 1.0, init_gain)
            nn.init.zeros_(layer.bias)
    return model


def check_input(x: torch.Tensor, channels: int, multiple: int, who: str) -> None:
    """Clear errors for the two ways an input can fail a generator: channels and spatial size."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{who} expects input of shape (N, {channels}, H, W); got {tuple(x.shape)}.")
    height, width = x.shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"{who} needs height and width divisible by {multiple}; got {height}x{width}. "
            "Crop or resize the input, or call it through Pix2Pix, which pads any size."
        )
