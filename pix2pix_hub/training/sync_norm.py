"""Batch norm whose statistics span every training process, on any device.

``torch.nn.SyncBatchNorm`` only runs on GPUs ("SyncBatchNorm expected input tensor to be on GPU"), so several
CPU processes (gloo) would each normalise by their own tiny batch. ``AllReduceBatchNorm2d`` computes the
same global statistics with two autograd-aware all-reduces (twice differentiable); on CUDA the faster torch layer
is used instead, except under a double backward.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def distributed_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the gradient of a sum over processes is the sum of the gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # Through the Function again, so the backward is itself differentiable (WGAN-GP's double backward).
        return AllReduceSum.apply(grad)


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with batch statistics over all processes in training mode; ``(N, C, H, W)`` in and out.

    Same parameters, buffers and state-dict keys as ``nn.BatchNorm2d``, so checkpoints and ``save_pretrained``
    output are interchangeable. Every process must call it the same number of times (it communicates).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or distributed_world_size() == 1:
            return super().forward(x)
        channels = x.shape[1]
        dtype = x.dtype
        x = x.float()  # statistics in fp32 also under fp16/bf16 autocast
        count = torch.full((1,), x.numel() / channels, dtype=x.dtype, device=x.device)
        sums = AllReduceSum.apply(torch.cat([x.sum(dim=(0, 2, 3)), count]))
        total = sums[channels]
        mean = sums[:channels] / total
        centered = x - mean.view(1, channels, 1, 1)
        # Two passes (mean first, then squared deviations) for the same accuracy as the single-process layer.
        var = AllReduceSum.apply(centered.pow(2).sum(dim=(0, 2, 3))) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp_min(1)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        out = centered * torch.rsqrt(var + self.eps).view(1, channels, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, channels, 1, 1) + self.bias.view(1, channels, 1, 1)
        return out.to(dtype)


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm2d`` inside ``module`` (in place) by ``AllReduceBatchNorm2d``, keeping state."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = AllReduceBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            ).to(next(child.buffers(), torch.empty(0)).device)
            synced.load_state_dict(child.state_dict())
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            convert_batchnorm(child)
    return module


def sync_batchnorm(module: nn.Module, device: torch.device, double_backward: bool = False) -> nn.Module:
    """Batch norm statistics over all processes: torch's ``SyncBatchNorm`` on CUDA, ``AllReduceBatchNorm2d``
    elsewhere and wherever the graph is differentiated twice (``double_backward``: WGAN-GP's penalty), which
    ``SyncBatchNorm`` does not support."""
    if device.type == "cuda" and not double_backward:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return convert_batchnorm(module)
