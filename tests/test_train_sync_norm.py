"""Batch norm across processes on the CPU: two gloo processes give what one process gives on the whole batch."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pix2pix_hub import PatchDiscriminator
from pix2pix_hub.training.sync_norm import AllReduceBatchNorm2d, convert_batchnorm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reference(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    norm = nn.BatchNorm2d(3)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        norm.bias.copy_(torch.tensor([0.0, -1.0, 1.0]))
    x = batch.clone().requires_grad_(True)
    out = norm(x)
    (out * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
    return {"out": out.detach(), "x_grad": x.grad, "w_grad": norm.weight.grad, "mean": norm.running_mean,
            "var": norm.running_var}  # fmt: skip


def worker(rank: int, port: int, batch: torch.Tensor, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        norm = convert_batchnorm(nn.Sequential(nn.BatchNorm2d(3)))[0]
        assert isinstance(norm, AllReduceBatchNorm2d)
        with torch.no_grad():
            norm.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
            norm.bias.copy_(torch.tensor([0.0, -1.0, 1.0]))
        # unequal shares (3 and 1 images): statistics must weight by count, not average the two means
        mine = batch[:3] if rank == 0 else batch[3:]
        x = mine.clone().requires_grad_(True)
        out = norm(x)
        weights = torch.arange(batch.numel()).reshape(batch.shape).sin()
        mine_weights = weights[:3] if rank == 0 else weights[3:]
        (out * mine_weights).sum().backward()
        grad = norm.weight.grad.clone()
        dist.all_reduce(grad)  # DDP would sum (then average) the parameter grads the same way
        results[rank] = {"out": out.detach(), "x_grad": x.grad, "w_grad": grad, "mean": norm.running_mean.clone(),
                         "var": norm.running_var.clone()}  # fmt: skip
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process_on_the_whole_batch():
    batch = torch.randn(4, 3, 5, 5) * 3 + 1
    expected = reference(batch)
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(worker, args=(free_port(), batch, results), nprocs=2, join=True)
        got = {rank: dict(results[rank]) for rank in (0, 1)}
    torch.testing.assert_close(torch.cat([got[0]["out"], got[1]["out"]]), expected["out"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        torch.cat([got[0]["x_grad"], got[1]["x_grad"]]), expected["x_grad"], atol=1e-5, rtol=1e-4
    )
    for rank in (0, 1):
        torch.testing.assert_close(got[rank]["w_grad"], expected["w_grad"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(got[rank]["mean"], expected["mean"])
        torch.testing.assert_close(got[rank]["var"], expected["var"])


def test_conversion_keeps_state_dict_and_single_process_behaviour():
    torch.manual_seed(0)
    model = PatchDiscriminator(in_channels=6, ndf=4, n_layers=2)
    model(torch.randn(2, 6, 32, 32))  # move the running statistics away from their initial values
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 6, 32, 32)
    expected = model(x)
    model.load_state_dict(before)
    converted = convert_batchnorm(model)
    assert any(isinstance(m, AllReduceBatchNorm2d) for m in converted.modules())
    assert not any(type(m) is nn.BatchNorm2d for m in converted.modules())
    assert converted.state_dict().keys() == before.keys()
    torch.testing.assert_close(converted(x), expected)  # no process group: plain batch norm
