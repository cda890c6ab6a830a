"""Winograd convolution for the PatchGAN's stride-1 4x4 convs on a CPU: the same maths with 2.56x fewer multiplies.

Winograd's minimal filtering F(2x2, 4x4) computes each 2x2 block of outputs from a 5x5 input tile with 25
multiplies per channel pair instead of 64: transform the tile (``B^T d B``) and the kernel (``G g G^T``),
multiply them element by element, summed over input channels (25 matrix products, one ``bmm``), and transform
back (``A^T m A``). The matrices come from Toom-Cook interpolation at the points 0, 1, -1, 1/2 and infinity, whose
rounding error measures like a direct fp32 convolution's (~3e-6 of the output's largest value).

On the 2-core test machine the 70x70 PatchGAN's 256->512 stride-1 conv, a quarter of a training step, takes
~175 ms per step this way instead of ~255 ms with oneDNN (docs/performance.md). ``WinogradConv2d`` uses it where
it pays (float32 on a CPU, 4x4 kernel, stride 1, padding 1, >= 64 output channels, eager mode) and is a plain
``nn.Conv2d`` everywhere else: same parameters, same state-dict keys.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

TILE = 5  # input tile side for 2x2 outputs of a 4x4 kernel
MIN_OUT_CHANNELS = 64  # below this the transforms cost more than the multiplies saved


@functools.cache
def winograd_matrices(output: int = 2, kernel: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(A^T, G, B^T)`` of F(output, kernel) in float64, from Toom-Cook at 0, 1, -1, 1/2, -1/2, 2, -2 (as many as
    needed) and infinity.

    ``A^T`` is ``(output, n)``, ``G`` is ``(n, kernel)``, ``B^T`` is ``(n, n)`` with ``n = output + kernel - 1``;
    ``A^T ((G g) * (B^T d))`` is the correlation of a length-n ``d`` with a length-kernel ``g``.
    """
    n = output + kernel - 1
    finite_points = [0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0]
    if n - 1 > len(finite_points):
        raise ValueError(f"F({output}, {kernel}) needs {n - 1} finite points; at most {len(finite_points)} are set.")
    points = torch.tensor(finite_points[: n - 1], dtype=torch.float64)
    a_t = torch.zeros(output, n, dtype=torch.float64)
    g = torch.zeros(n, kernel, dtype=torch.float64)
    for j, point in enumerate(points):
        others = torch.cat([points[:j], points[j + 1 :]])
        a_t[:, j] = point ** torch.arange(output)
        g[j] = point ** torch.arange(kernel) / torch.prod(point - others)
    a_t[-1, -1] = g[-1, -1] = 1.0  # the point at infinity
    # B^T is what makes the identity hold for every d and g: solve for it (exact: residual ~1e-15).
    equations, targets = [], []
    for k in range(kernel):
        for j in range(n):
            for i in range(output):
                coefficients = torch.zeros(n, n, dtype=torch.float64)
                coefficients[:, j] = a_t[i] * g[:, k]
                equations.append(coefficients.flatten())
                targets.append(float(j == i + k))
    b_t = torch.linalg.lstsq(torch.stack(equations), torch.tensor(targets, dtype=torch.float64)).solution
    return a_t, g, b_t.view(n, n)


@functools.cache
def _kron_matrices() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2-D transforms as single matrices on flattened tiles: ``(4, 25)``, ``(25, 16)``, ``(25, 25)``, float32."""
    a_t, g, b_t = winograd_matrices(2, 4)
    return torch.kron(a_t, a_t).float(), torch.kron(g, g).float(), torch.kron(b_t, b_t).float()


class _Winograd4x4(torch.autograd.Function):
    """Stride-1, padding-1 4x4 convolution, no bias: ``(N, C, H, W)`` -> ``(N, O, H - 1, W - 1)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        out_transform, kernel_transform, tile_transform = _kron_matrices()
        n, c, h, w = x.shape
        o = weight.shape[0]
        rows, cols = h // 2, w // 2  # 2x2 output blocks; the odd last row/column of blocks is padding
        tiles = rows * cols * n
        padded = F.pad(x, (1, 2 * cols + 3 - w - 1, 1, 2 * rows + 3 - h - 1))
        # B^T d B of every 5x5 tile at stride 2, as a conv with 25 fixed filters (2x faster than unfold + matmul).
        v = F.conv2d(
            padded.view(n * c, 1, *padded.shape[-2:]), tile_transform.view(TILE * TILE, 1, TILE, TILE), stride=2
        )
        v = v.view(n, c, TILE * TILE, rows * cols).permute(2, 1, 0, 3).reshape(TILE * TILE, c, tiles)
        u = (kernel_transform @ weight.reshape(o * c, 16).t()).view(TILE * TILE, o, c)
        m = torch.bmm(u, v)
        blocks = (out_transform @ m.view(TILE * TILE, o * tiles)).view(2, 2, o, n, rows, cols)
        out = blocks.permute(3, 2, 4, 0, 5, 1).reshape(n, o, 2 * rows, 2 * cols)
        ctx.save_for_backward(u, v)
        ctx.sizes = (n, c, h, w, o, rows, cols)
        return out[:, :, : h - 1, : w - 1].contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        out_transform, kernel_transform, tile_transform = _kron_matrices()
        u, v = ctx.saved_tensors
        n, c, h, w, o, rows, cols = ctx.sizes
        tiles = rows * cols * n
        grad = F.pad(grad, (0, 2 * cols - (w - 1), 0, 2 * rows - (h - 1)))
        grad = grad.view(n, o, rows, 2, cols, 2).permute(3, 5, 1, 0, 2, 4).reshape(4, o * tiles)
        grad_m = (out_transform.t() @ grad).view(TILE * TILE, o, tiles)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_u = torch.bmm(grad_m, v.transpose(1, 2))
            grad_weight = (kernel_transform.t() @ grad_u.view(TILE * TILE, o * c)).t().reshape(o, c, 4, 4)
        if ctx.needs_input_grad[0]:
            grad_v = torch.bmm(u.transpose(1, 2), grad_m)
            # The adjoint of the forward's tile conv; matmul + fold is faster here than conv_transpose2d.
            grad_patches = (tile_transform.t() @ grad_v.view(TILE * TILE, c * tiles)).view(TILE * TILE, c, n, -1)
            grad_patches = grad_patches.permute(2, 1, 0, 3).reshape(n, c * TILE * TILE, rows * cols)
            grad_padded = F.fold(grad_patches, (2 * rows + 3, 2 * cols + 3), TILE, stride=2)
            grad_x = grad_padded[:, :, 1 : 1 + h, 1 : 1 + w]
        return grad_x, grad_weight


def winograd_conv4x4(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride=1, padding=1)`` for a 4x4 ``weight`` ``(O, C, 4, 4)``, by Winograd
    F(2x2, 4x4); ``x`` is ``(N, C, H, W)``, the result ``(N, O, H - 1, W - 1)``. Differentiable."""
    if weight.shape[-2:] != (4, 4) or x.ndim != 4 or x.shape[1] != weight.shape[1]:
        raise ValueError(
            "winograd_conv4x4 needs x (N, C, H, W) and weight (O, C, 4, 4); "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}."
        )
    # 2x2 output blocks need even sides: an odd side gets a zero row/column, whose outputs are cropped below.
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        x_even = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
    else:
        x_even = x
    out = _Winograd4x4.apply(x_even, weight)
    out = out[:, :, : x.shape[-2] - 1, : x.shape[-1] - 1]
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class WinogradConv2d(nn.Conv2d):
    """``nn.Conv2d`` that runs stride-1 4x4 convolutions by Winograd on a CPU (see the module docstring).

    ``winograd = False`` (or ``use_winograd(model, False)``) makes it a plain ``nn.Conv2d``.
    """

    winograd: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.winograd and self._winograd_applies(x):
            return winograd_conv4x4(x, self.weight, self.bias)
        return super().forward(x)

    def _winograd_applies(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.ndim == 4
            and self.kernel_size == (4, 4)
            and self.stride == (1, 1)
            and self.padding == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.padding_mode == "zeros"
            and self.out_channels >= MIN_OUT_CHANNELS
            and not torch.is_autocast_enabled("cpu")
            and not torch.jit.is_tracing()
            and not torch.compiler.is_compiling()
        )


def use_winograd(model: nn.Module, enabled: bool) -> nn.Module:
    """Turn the Winograd path of every ``WinogradConv2d`` in ``model`` on or off; returns ``model``."""
    for layer in model.modules():
        if isinstance(layer, WinogradConv2d):
            layer.winograd = enabled
    return model
