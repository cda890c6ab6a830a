"""Winograd convolution for stride-1 3x3 and 4x4 convs on a CPU: the same maths with 2.56-4x fewer multiplies.

Winograd's minimal filtering F(m x m, r x r) computes each m x m block of outputs of an r x r kernel from a t x t
input tile (t = m + r - 1) with t^2 multiplies per channel pair instead of m^2 r^2: transform the tile
(``B^T d B``) and the kernel (``G g G^T``), multiply them element by element, summed over input channels (t^2
matrix products, one ``bmm``), and transform back (``A^T m A``). 4x4 kernels (the PatchGAN's stride-1 conv) use
F(2x2, 4x4): 25 multiplies instead of 64; 3x3 kernels (the ResNet generator's blocks) use F(4x4, 3x3): 36 instead
of 144. The matrices come from Toom-Cook interpolation at 0, 1, -1, 1/2, -1/2 and infinity; the rounding error
measures ~3e-6 (4x4) and ~8e-6 (3x3) of the output's largest value, against ~2e-6 for a direct fp32 conv.

It pays for the 70x70 PatchGAN's 256->512 stride-1 conv (a quarter of a training step) and the ResNet blocks'
256-channel 3x3 convs (figures against oneDNN's direct conv: docs/performance.md). ``WinogradConv2d`` uses it
where it pays (float32
on a CPU, 3x3 or 4x4 kernel, stride 1, >= 64 output channels, eager mode) and is a plain ``nn.Conv2d`` everywhere
else: same parameters, same state-dict keys.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

OUTPUT_BLOCK = {3: 4, 4: 2}  # kernel side -> output block side m: F(4x4, 3x3) and F(2x2, 4x4), both 6x6/5x5 tiles
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
def _kron_matrices(output: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2-D transforms as single float32 matrices on flattened tiles: ``(m^2, t^2)``, ``(t^2, r^2)``,
    ``(t^2, t^2)``."""
    a_t, g, b_t = winograd_matrices(output, kernel)
    return torch.kron(a_t, a_t).float(), torch.kron(g, g).float(), torch.kron(b_t, b_t).float()


class _WinogradConv(torch.autograd.Function):
    """Stride-1 convolution (zero ``padding``, no bias) by F(m x m, r x r): ``(N, C, H, W)`` and ``(O, C, r, r)``
    -> ``(N, O, H + 2 padding - r + 1, W + 2 padding - r + 1)``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, m: int, padding: int) -> torch.Tensor:
        n, c, h, w = x.shape
        h, w = h + 2 * padding, w + 2 * padding  # the padded input's sides
        o, r = weight.shape[0], weight.shape[-1]
        t = m + r - 1
        out_transform, kernel_transform, tile_transform = _kron_matrices(m, r)
        out_h, out_w = h - r + 1, w - r + 1
        rows, cols = -(-out_h // m), -(-out_w // m)  # output blocks; the last ones may reach past the edge
        tiles = n * rows * cols
        # One pad: the conv's own zeros, then the block grid's overhang on the right and bottom.
        x = F.pad(x, (padding, cols * m + r - 1 - w + padding, padding, rows * m + r - 1 - h + padding))
        # B^T d B of every t x t tile at stride m, as a conv with t^2 fixed filters (faster than unfold + matmul).
        v = F.conv2d(x.reshape(n * c, 1, *x.shape[-2:]), tile_transform.view(t * t, 1, t, t), stride=m)
        v = v.view(n, c, t * t, rows * cols).permute(2, 1, 0, 3).reshape(t * t, c, tiles)
        u = (kernel_transform @ weight.reshape(o * c, r * r).t()).view(t * t, o, c)
        blocks = (out_transform @ torch.bmm(u, v).view(t * t, o * tiles)).view(m, m, o, n, rows, cols)
        out = blocks.permute(3, 2, 4, 0, 5, 1).reshape(n, o, rows * m, cols * m)
        ctx.save_for_backward(u, v)
        ctx.sizes = (m, r, n, c, h, w, o, rows, cols, padding)
        return out[:, :, :out_h, :out_w].contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        u, v = ctx.saved_tensors
        m, r, n, c, h, w, o, rows, cols, padding = ctx.sizes
        t = m + r - 1
        out_transform, kernel_transform, tile_transform = _kron_matrices(m, r)
        tiles = n * rows * cols
        grad = F.pad(grad, (0, cols * m - grad.shape[-1], 0, rows * m - grad.shape[-2]))
        grad = grad.view(n, o, rows, m, cols, m).permute(3, 5, 1, 0, 2, 4).reshape(m * m, o * tiles)
        grad_m = (out_transform.t() @ grad).view(t * t, o, tiles)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_u = torch.bmm(grad_m, v.transpose(1, 2))
            grad_weight = (kernel_transform.t() @ grad_u.view(t * t, o * c)).t().reshape(o, c, r, r)
        if ctx.needs_input_grad[0]:
            grad_v = torch.bmm(u.transpose(1, 2), grad_m)
            # The adjoint of the forward's tile conv; matmul + fold is faster here than conv_transpose2d.
            grad_patches = (tile_transform.t() @ grad_v.view(t * t, c * tiles)).view(t * t, c, n, -1)
            grad_patches = grad_patches.permute(2, 1, 0, 3).reshape(n, c * t * t, rows * cols)
            grad_x = F.fold(grad_patches, (rows * m + r - 1, cols * m + r - 1), t, stride=m)
            grad_x = grad_x[:, :, padding : h - padding, padding : w - padding]
        return grad_x, grad_weight, None, None


def winograd_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, padding: int = 0
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride=1, padding=padding)`` for a 3x3 or 4x4 ``weight`` ``(O, C, r, r)``, by
    Winograd; ``x`` is ``(N, C, H, W)``, the result ``(N, O, H + 2 padding - r + 1, W + 2 padding - r + 1)``.
    Differentiable in ``x``, ``weight`` and ``bias``."""
    side = weight.shape[-1]
    if weight.ndim != 4 or weight.shape[-2] != side or side not in OUTPUT_BLOCK or x.ndim != 4:
        raise ValueError(
            "winograd_conv2d needs x (N, C, H, W) and a 3x3 or 4x4 weight (O, C, r, r); "
            f"got {tuple(x.shape)} and {tuple(weight.shape)}."
        )
    if x.shape[1] != weight.shape[1] or min(x.shape[-2:]) + 2 * padding < side:
        raise ValueError(
            f"winograd_conv2d: input {tuple(x.shape)} with padding {padding} does not fit weight {tuple(weight.shape)}."
        )
    out = _WinogradConv.apply(x, weight, OUTPUT_BLOCK[side], padding)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class WinogradConv2d(nn.Conv2d):
    """``nn.Conv2d`` that runs stride-1 3x3 and 4x4 convolutions by Winograd on a CPU (see the module docstring).

    ``winograd = False`` (or ``use_winograd(model, False)``) makes it a plain ``nn.Conv2d``.
    """

    winograd: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.winograd and self._winograd_applies(x):
            return winograd_conv2d(x, self.weight, self.bias, self.padding[0])
        return super().forward(x)

    def _winograd_applies(self, x: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and self.weight.dtype == torch.float32
            and x.ndim == 4
            and self.kernel_size in ((3, 3), (4, 4))
            and self.stride == (1, 1)
            and isinstance(self.padding, tuple)
            and self.padding[0] == self.padding[1]
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
