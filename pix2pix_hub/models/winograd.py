"""Winograd convolution for stride-1 3x3 and 4x4 convs on a CPU: the same maths with 2.56-4x fewer multiplies.

Winograd's minimal filtering F(m x m, r x r) computes each m x m block of outputs of an r x r kernel from a t x t
input tile (t = m + r - 1) with t^2 multiplies per channel pair instead of m^2 r^2: transform the tile
(``B^T d B``) and the kernel (``G g G^T``), multiply them element by element, summed over input channels (t^2
matrix products, one ``bmm``), and transform back (``A^T m A``). 4x4 kernels (the PatchGAN's stride-1 conv) use
F(2x2, 4x4): 25 multiplies instead of 64; 3x3 kernels (the ResNet generator's blocks) use F(4x4, 3x3): 36 instead
of 144. The matrices come from Toom-Cook interpolation at 0, 1, -1, 1/2, -1/2 and infinity; the rounding error is
a few times a direct fp32 conv's (figures: docs/performance.md; the bounds tested: tests/test_winograd.py).

It pays for the 70x70 PatchGAN's 256->512 stride-1 conv (a large share of a training step) and the ResNet blocks'
256-channel 3x3 convs (figures against oneDNN's direct conv: docs/performance.md). ``WinogradConv2d`` uses it
where it pays (float32 on a CPU, 3x3 or 4x4 kernel, stride 1, >= 64 output channels, eager mode) and is a plain
``nn.Conv2d`` everywhere else: same parameters, same state-dict keys. The networks switch it with
``enable_winograd()`` / ``disable_winograd()`` (``WinogradSwitch``), as they switch gradient checkpointing.

Bit-deterministic: the same inputs give the same bytes, forward and backward, in one process and across processes
(only matrix products, gathers and ``fold``; tests/test_winograd.py). Differentiable twice, exactly (a gradient
penalty through it equals the direct convolution's; see ``_WinogradConv``).
"""

from __future__ import annotations

import functools
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

OUTPUT_BLOCK = {3: 4, 4: 2}  # kernel side -> output block side m: F(4x4, 3x3) and F(2x2, 4x4), both 6x6/5x5 tiles
MIN_OUT_CHANNELS = 64  # below this the transforms cost more than the multiplies saved
SwitchT = TypeVar("SwitchT", bound="WinogradSwitch")


@functools.cache
@torch.inference_mode(False)  # cached: never an inference tensor, which autograd could not save
def winograd_matrices(output: int = 2, kernel: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1-D transforms of F(output, kernel), from Toom-Cook at 0, 1, -1, 1/2, -1/2, 2, -2 (as many as needed)
    and infinity: ``A^T ((G g) * (B^T d))`` is the correlation of a length-n ``d`` with a length-kernel ``g``.

    Args:
        output: Outputs per block (m).
        kernel: Kernel length (r).

    Returns:
        ``(A^T, G, B^T)`` in float64: ``(output, n)``, ``(n, kernel)``, ``(n, n)`` with ``n = output + kernel - 1``.
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
    # B^T is what makes the identity hold for every d and g: solve for it (exact up to float64 rounding).
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
@torch.inference_mode(False)
def _kron_matrices(output: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 2-D transforms as single matrices on flattened tiles: ``(m^2, t^2)``, ``(t^2, r^2)``, ``(t^2, t^2)``.

    Their entries are dyadic or thirds; ``B^T``'s least-squares residue (float64 rounding where the exact entry is
    0) is snapped to the exact value, so no product of a tiny coefficient (a subnormal, slow on x86) is ever summed.
    """
    a_t, g, b_t = winograd_matrices(output, kernel)
    snapped = torch.round(b_t * 1024) / 1024
    if not torch.allclose(snapped, b_t, atol=1e-9):
        raise ValueError(f"F({output}, {kernel}): B^T has entries that are not multiples of 1/1024.")
    return torch.kron(a_t, a_t), torch.kron(g, g), torch.kron(snapped, snapped)


@functools.cache
@torch.inference_mode(False)
def _transforms(m: int, r: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_kron_matrices`` in ``dtype`` (float32 for the layers; float64 lets gradcheck test the maths)."""
    a_t, g, b_t = _kron_matrices(m, r)
    return a_t.to(dtype), g.to(dtype), b_t.to(dtype)


def _grid(x_shape: torch.Size, m: int, r: int, padding: int) -> tuple[int, int, int, int]:
    """``(out_h, out_w, rows, cols)``: the output's sides and the m x m output blocks covering them (the last
    ones may reach past the edge)."""
    out_h, out_w = x_shape[-2] + 2 * padding - r + 1, x_shape[-1] + 2 * padding - r + 1
    return out_h, out_w, -(-out_h // m), -(-out_w // m)


def _input_tiles(x: torch.Tensor, tile_transform: torch.Tensor, m: int, r: int, padding: int) -> torch.Tensor:
    """``B^T d B`` of every t x t tile of the padded ``x`` at stride m: ``(N, C, H, W)`` -> ``(t^2, C, N * rows
    * cols)``, tiles in (n, row, col) order.

    One gather and one matrix product. Not a convolution with t^2 fixed filters (which was faster): oneDNN's
    direct convolution for that shape gave results that differed by a few ulps from one process to the next.
    """
    n, c, h, w = x.shape
    t = m + r - 1
    _, _, rows, cols = _grid(x.shape, m, r, padding)
    # One pad: the conv's own zeros, then the block grid's overhang on the right and bottom.
    x = F.pad(x, (padding, cols * m + r - 1 - w - padding, padding, rows * m + r - 1 - h - padding))
    tiles = x.unfold(2, t, m).unfold(3, t, m)  # (N, C, rows, cols, t, t), a view
    tiles = tiles.permute(4, 5, 1, 0, 2, 3).reshape(t * t, c * n * rows * cols)
    return (tile_transform @ tiles).view(t * t, c, n * rows * cols)


def _kernel_tiles(weight: torch.Tensor, kernel_transform: torch.Tensor) -> torch.Tensor:
    """``G g G^T`` of every kernel: ``(O, C, r, r)`` -> ``(t^2, O, C)``."""
    o, c, r, _ = weight.shape
    return (kernel_transform @ weight.reshape(o * c, r * r).t()).view(-1, o, c)


class _WinogradConv(torch.autograd.Function):
    """Stride-1 convolution (zero ``padding``, no bias) by F(m x m, r x r): ``(N, C, H, W)`` and ``(O, C, r, r)``
    -> ``(N, O, H + 2 padding - r + 1, W + 2 padding - r + 1)``.

    Differentiable twice, exactly: when autograd builds a graph of the gradient (``create_graph=True``: a
    gradient penalty), the backward recomputes the transformed tiles from the saved ``x`` with differentiable
    operations, so that graph reaches ``x`` (and ``weight``, through the kernels' transform, always recomputed:
    cheap) instead of stopping at tensors saved without history. An ordinary backward uses the tiles saved by the
    forward.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, m: int, padding: int) -> torch.Tensor:
        n, o, r = x.shape[0], weight.shape[0], weight.shape[-1]
        out_transform, kernel_transform, tile_transform = _transforms(m, r, x.dtype)
        out_h, out_w, rows, cols = _grid(x.shape, m, r, padding)
        v = _input_tiles(x, tile_transform, m, r, padding)
        u = _kernel_tiles(weight, kernel_transform)
        blocks = (out_transform @ torch.bmm(u, v).view(-1, o * v.shape[-1])).view(m, m, o, n, rows, cols)
        out = blocks.permute(3, 2, 4, 0, 5, 1).reshape(n, o, rows * m, cols * m)
        ctx.save_for_backward(x, weight, v)
        ctx.sizes = (m, padding)
        return out[:, :, :out_h, :out_w].contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None]:
        x, weight, v = ctx.saved_tensors
        m, padding = ctx.sizes
        (n, c, h, w), (o, _, r, _) = x.shape, weight.shape
        t = m + r - 1
        out_transform, kernel_transform, tile_transform = _transforms(m, r, x.dtype)
        _, _, rows, cols = _grid(x.shape, m, r, padding)
        tiles = n * rows * cols
        grad = F.pad(grad, (0, cols * m - grad.shape[-1], 0, rows * m - grad.shape[-2]))
        grad = grad.reshape(n, o, rows, m, cols, m).permute(3, 5, 1, 0, 2, 4).reshape(m * m, o * tiles)
        grad_m = (out_transform.t() @ grad).view(t * t, o, tiles)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[1]:
            if torch.is_grad_enabled():  # a graph of this gradient is being built: it must reach x
                v = _input_tiles(x, tile_transform, m, r, padding)
            grad_u = torch.bmm(grad_m, v.transpose(1, 2))
            grad_weight = (kernel_transform.t() @ grad_u.view(t * t, o * c)).t().reshape(o, c, r, r)
        if ctx.needs_input_grad[0]:
            grad_v = torch.bmm(_kernel_tiles(weight, kernel_transform).transpose(1, 2), grad_m)
            # The adjoint of _input_tiles: scatter-add the tiles back with fold, then drop the padding.
            grad_patches = (tile_transform.t() @ grad_v.view(t * t, c * tiles)).view(t * t, c, n, -1)
            grad_patches = grad_patches.permute(2, 1, 0, 3).reshape(n, c * t * t, rows * cols)
            grad_x = F.fold(grad_patches, (rows * m + r - 1, cols * m + r - 1), t, stride=m)
            grad_x = grad_x[:, :, padding : padding + h, padding : padding + w]
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


class WinogradSwitch:
    """Mixin for ``nn.Module`` networks, diffusers-style: ``enable_winograd()`` / ``disable_winograd()`` switch every
    ``WinogradConv2d`` inside (the network's own, a sub-network's, or the layer itself). On by default and never
    saved: it is not a constructor argument, so ``config.json`` and the state dict do not change."""

    def enable_winograd(self: SwitchT) -> SwitchT:
        """Run the stride-1 3x3 and 4x4 convs by Winograd where it applies (float32 on a CPU). Returns ``self``."""
        self._set_winograd(True)
        return self

    def disable_winograd(self: SwitchT) -> SwitchT:
        """Run every conv directly (``nn.Conv2d``'s own kernel): the reference for a comparison. Returns ``self``."""
        self._set_winograd(False)
        return self

    def _set_winograd(self, value: bool) -> None:
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, WinogradConv2d):
                module.winograd = value


class WinogradConv2d(WinogradSwitch, nn.Conv2d):
    """``nn.Conv2d`` that runs stride-1 3x3 and 4x4 convolutions by Winograd on a CPU (see the module docstring):
    ``(N, C, H, W)`` -> ``(N, out_channels, H', W')`` as ``nn.Conv2d``.

    ``winograd = False`` (``disable_winograd()`` on the layer or on a network holding it) makes it a plain
    ``nn.Conv2d``.
    """

    winograd: bool = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight  # read once: a parametrization (spectral norm's power iteration) runs once a call
        if self.winograd and self._winograd_applies(x, weight):
            return winograd_conv2d(x, weight, self.bias, self.padding[0])
        return self._conv_forward(x, weight, self.bias)

    def _winograd_applies(self, x: torch.Tensor, weight: torch.Tensor) -> bool:
        return (
            x.device.type == "cpu"
            and x.dtype == torch.float32
            and weight.dtype == torch.float32
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
