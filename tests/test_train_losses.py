"""GAN objectives, the L1 term and the gradient penalty, against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pix2pix_hub.training.losses import GANLoss, gradient_penalty, l1_loss


def test_vanilla_is_cross_entropy_on_logits_and_d_is_halved():
    loss = GANLoss("vanilla")
    zeros = torch.zeros(2, 1, 30, 30)
    assert loss.generator_loss(zeros).item() == pytest.approx(math.log(2))
    # D: (log 2 + log 2) / 2, the paper's halved objective
    assert loss.discriminator_loss(zeros, zeros).item() == pytest.approx(math.log(2))
    confident_real, confident_fake = torch.full((1, 1, 4, 4), 20.0), torch.full((1, 1, 4, 4), -20.0)
    assert loss.discriminator_loss(confident_real, confident_fake).item() == pytest.approx(0.0, abs=1e-6)
    assert loss.generator_loss(confident_fake).item() == pytest.approx(20.0, rel=1e-4)


def test_lsgan_wgangp_hinge_values():
    real, fake = torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), -0.5)
    assert GANLoss("lsgan").discriminator_terms(real, fake) == (pytest.approx(0.25), pytest.approx(0.25))
    assert GANLoss("lsgan").generator_loss(fake).item() == pytest.approx(2.25)
    assert GANLoss("wgangp").discriminator_loss(real, fake).item() == pytest.approx(0.5 * (-0.5 + -0.5))
    assert GANLoss("wgangp").generator_loss(fake).item() == pytest.approx(0.5)
    assert GANLoss("hinge").discriminator_terms(real, fake) == (pytest.approx(0.5), pytest.approx(0.5))
    assert GANLoss("hinge").generator_loss(fake).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="gan_mode='wgan' is not supported; choose one of vanilla"):
        GANLoss("wgan")


def test_l1_is_mean_absolute_error():
    assert l1_loss(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), -0.5)).item() == pytest.approx(0.5)


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = sum(w * x): its input gradient is w everywhere, so the penalty is (||w|| - 1)^2 exactly.
    critic = nn.Conv2d(2, 1, kernel_size=2, bias=False)
    with torch.no_grad():
        critic.weight.fill_(0.25)
    real, fake = torch.randn(3, 2, 2, 2), torch.randn(3, 2, 2, 2)
    norm = math.sqrt(8 * 0.25**2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((norm - 1) ** 2, rel=1e-5)
    # and it is differentiable with respect to the critic's weights
    gradient_penalty(critic, real, fake).backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_gradient_penalty_and_its_gradient_equal_the_direct_convolutions_at_ndf_64():
    # ndf 64: D's stride-1 256 -> 512 conv runs by Winograd on a CPU. The penalty's gradient is a double backward,
    # which must go through the direct convolution (the Winograd Function's backward is not differentiable).
    import copy

    from pix2pix_hub.models import PatchDiscriminator
    from pix2pix_hub.models.winograd import WinogradConv2d

    torch.manual_seed(0)
    winograd = PatchDiscriminator(in_channels=6, ndf=64)
    direct = copy.deepcopy(winograd).disable_winograd()
    layers = [layer for layer in winograd.modules() if isinstance(layer, WinogradConv2d)]
    assert layers and all(layer.winograd for layer in layers)
    real, fake = torch.rand(2, 6, 32, 32) * 2 - 1, torch.rand(2, 6, 32, 32) * 2 - 1
    penalties = []
    for network in (winograd, direct):
        penalty = gradient_penalty(network, real, fake, generator=torch.Generator().manual_seed(1))
        penalty.backward()
        penalties.append(penalty.detach())
    torch.testing.assert_close(penalties[0], penalties[1], rtol=1e-5, atol=1e-7)
    for (name, a), b in zip(winograd.named_parameters(), direct.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7, msg=name)
    assert all(layer.winograd for layer in layers)  # back on for the rest of the step


def test_wgangp_with_batch_norm_gets_a_warning():
    from pix2pix_hub.training import TrainingConfig
    from pix2pix_hub.training.advice import config_warnings

    (warning,) = config_warnings(TrainingConfig(gan_mode="wgangp"))
    assert "--norm instance" in warning and "--norm none" in warning
    assert config_warnings(TrainingConfig(gan_mode="wgangp", norm="instance")) == []
    assert config_warnings(TrainingConfig(gan_mode="vanilla")) == []
