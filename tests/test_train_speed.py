"""The training speed-ups (fused Adam, no D weight gradients in the G step, allocator tuning, Winograd convs in D)
keep the maths."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from pix2pix_hub.models import PatchDiscriminator, UNetGenerator
from pix2pix_hub.models.winograd import WinogradConv2d
from pix2pix_hub.performance import tune_allocator
from pix2pix_hub.training import TrainingConfig
from pix2pix_hub.training.losses import GANLoss
from pix2pix_hub.training.setup import build_networks, make_adam
from pix2pix_hub.training.step import StepParts, train_step


def plain_eager_steps(generator, discriminator, batches, seeds):
    """The textbook loop: default Adam, loss_G.backward() through an unfrozen D."""
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    for (real_a, real_b), seed in zip(batches, seeds):
        torch.manual_seed(seed)  # the dropout masks
        fake_b = generator(real_a)
        optimizer_d.zero_grad()
        real = discriminator(torch.cat([real_a, real_b], 1))  # real first, as train_step (batch-norm stats)
        fake = discriminator(torch.cat([real_a, fake_b.detach()], 1))
        (0.5 * (bce(fake, torch.zeros_like(fake)) + bce(real, torch.ones_like(real)))).backward()
        optimizer_d.step()
        optimizer_g.zero_grad()
        fake = discriminator(torch.cat([real_a, fake_b], 1))
        (bce(fake, torch.ones_like(fake)) + 100 * (fake_b - real_b).abs().mean()).backward()
        optimizer_g.step()


@pytest.mark.parametrize("plain_eager", [False, True])
def test_default_training_step_matches_the_plain_eager_loop(plain_eager):
    from accelerate import Accelerator

    torch.manual_seed(0)
    generator, discriminator = UNetGenerator(num_downs=5, ngf=8), PatchDiscriminator(in_channels=6, ndf=8)
    reference_g, reference_d = copy.deepcopy(generator), copy.deepcopy(discriminator).disable_winograd()
    if plain_eager:  # as build_networks does
        discriminator.disable_winograd()
    batches = [(torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1) for _ in range(3)]
    seeds = [11, 12, 13]

    config = TrainingConfig(plain_eager=plain_eager)
    accelerator = Accelerator(cpu=True)
    optimizer_g = make_adam(generator.parameters(), config, accelerator.device)
    optimizer_d = make_adam(discriminator.parameters(), config, accelerator.device)
    assert bool(optimizer_g.defaults.get("fused")) is not plain_eager
    parts = StepParts(generator, discriminator, optimizer_g, optimizer_d, GANLoss("vanilla"), 100.0, 10.0)
    for (real_a, real_b), seed in zip(batches, seeds):
        torch.manual_seed(seed)
        train_step({"input": real_a, "target": real_b}, parts, accelerator)
    plain_eager_steps(reference_g, reference_d, batches, seeds)

    for fast, reference in ((generator, reference_g), (discriminator, reference_d)):
        fast_state, reference_state = fast.state_dict(), reference.state_dict()
        for name, value in fast_state.items():
            assert torch.allclose(value.float(), reference_state[name].float(), rtol=1e-4, atol=1e-6), name
    # The weights moved, so the comparison above compared trained weights.
    assert not torch.equal(generator.encoders[0].weight, UNetGenerator(num_downs=5, ngf=8).encoders[0].weight)


def test_allocator_tuning_applies_on_linux_glibc():
    import platform

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert tune_allocator() is expected
    assert tune_allocator() is expected  # idempotent


@pytest.mark.parametrize(
    ("switches", "winograd"),
    [({}, True), ({"plain_eager": True}, False), ({"no_winograd": True}, False), ({"no_fused_adam": True}, True)],
)
def test_build_networks_uses_winograd_unless_switched_off(switches, winograd):
    _, discriminator = build_networks(TrainingConfig(**switches))
    winograd_layers = [layer for layer in discriminator.modules() if isinstance(layer, WinogradConv2d)]
    assert len(winograd_layers) == 1 and winograd_layers[0].stride == (1, 1)
    assert winograd_layers[0].winograd is winograd
    generator, _ = build_networks(TrainingConfig(netG="resnet_6blocks", **switches))
    generator_layers = [layer for layer in generator.modules() if isinstance(layer, WinogradConv2d)]
    assert len(generator_layers) == 12  # two 3x3 convs per residual block
    assert all(layer.winograd is winograd for layer in generator_layers)


@pytest.mark.parametrize(
    ("switches", "fused"),
    [({}, True), ({"plain_eager": True}, False), ({"no_fused_adam": True}, False), ({"no_winograd": True}, True)],
)
def test_make_adam_is_fused_unless_switched_off(switches, fused):
    optimizer = make_adam(nn.Linear(2, 2).parameters(), TrainingConfig(**switches), torch.device("cpu"))
    assert bool(optimizer.defaults.get("fused")) is fused
