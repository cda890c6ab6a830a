"""Winograd convolution (F(2x2, 4x4), F(4x4, 3x3)): the same outputs and gradients as a direct convolution, and its
fallbacks."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix_hub.models import PatchDiscriminator, ResnetGenerator
from pix2pix_hub.models.winograd import WinogradConv2d, winograd_conv2d, winograd_matrices


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value - reference).abs().max() / reference.abs().max()).item()


@pytest.mark.parametrize(("output", "kernel"), [(2, 4), (4, 3)])
def test_toom_cook_matrices_compute_a_correlation_exactly(output, kernel):
    a_t, g, b_t = winograd_matrices(output, kernel)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        data = torch.randn(output + kernel - 1, dtype=torch.float64, generator=generator)
        weights = torch.randn(kernel, dtype=torch.float64, generator=generator)
        direct = torch.stack([(data[i : i + kernel] * weights).sum() for i in range(output)])
        assert torch.allclose(a_t @ ((g @ weights) * (b_t @ data)), direct, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "out_channels", "kernel", "padding", "bias"),
    [
        ((1, 32, 16, 16), 64, 4, 1, False),
        ((2, 16, 9, 7), 8, 4, 1, True),
        ((1, 8, 2, 3), 16, 4, 1, True),
        ((3, 4, 31, 31), 4, 4, 0, False),
        ((1, 32, 18, 18), 64, 3, 0, False),
        ((2, 16, 11, 6), 8, 3, 1, True),
        ((1, 8, 3, 5), 16, 3, 0, True),
    ],
)
def test_winograd_matches_direct_convolution_and_its_gradients(shape, out_channels, kernel, padding, bias):
    torch.manual_seed(0)
    x = torch.randn(*shape, requires_grad=True)
    weight = (torch.randn(out_channels, shape[1], kernel, kernel) * 0.05).requires_grad_()
    b = torch.randn(out_channels, requires_grad=True) if bias else None
    expected = F.conv2d(x, weight, b, padding=padding)
    grad_out = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, [x, weight, *([b] if bias else [])], grad_out)
    result = winograd_conv2d(x, weight, b, padding)
    grads = torch.autograd.grad(result, [x, weight, *([b] if bias else [])], grad_out)

    assert result.shape == expected.shape
    assert relative_error(result, expected) < 3e-5
    for grad, expected_grad in zip(grads, expected_grads):
        assert relative_error(grad, expected_grad) < 3e-5


def test_winograd_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="3x3 or 4x4 weight"):
        winograd_conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 5, 5))
    with pytest.raises(ValueError, match="does not fit"):
        winograd_conv2d(torch.randn(1, 3, 2, 8), torch.randn(4, 3, 4, 4))


def test_winograd_conv2d_falls_back_to_the_direct_convolution():
    torch.manual_seed(0)
    layer = WinogradConv2d(16, 64, 4, 1, 1)
    plain = nn.Conv2d(16, 64, 4, 1, 1)
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(1, 16, 12, 12)
    assert not torch.equal(layer(x), plain(x))  # float32 on a CPU: Winograd
    assert relative_error(layer(x), plain(x)) < 2e-5
    assert torch.equal(layer.double()(x.double()), plain.double()(x.double()))  # float64: direct
    layer.float(), plain.float()
    layer.disable_winograd()
    assert torch.equal(layer(x), plain(x))
    narrow, narrow_plain = WinogradConv2d(16, 8, 4, 1, 1), nn.Conv2d(16, 8, 4, 1, 1)
    narrow_plain.load_state_dict(narrow.state_dict())
    assert torch.equal(narrow(x), narrow_plain(x))  # too few output channels to pay


def test_patch_discriminator_runs_its_stride1_conv_by_winograd_with_unchanged_weights():
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(in_channels=6, ndf=16)
    kinds = [type(layer) for layer in discriminator.layers if isinstance(layer, nn.Conv2d)]
    assert kinds == [nn.Conv2d, nn.Conv2d, nn.Conv2d, WinogradConv2d, nn.Conv2d]
    # Same state-dict keys as before the Winograd layer existed, so saved discriminators load unchanged.
    assert "layers.8.weight" in discriminator.state_dict()
    pairs = torch.randn(2, 6, 64, 64)
    with torch.no_grad():
        fast = discriminator(pairs)
        direct = discriminator.disable_winograd()(pairs)
    assert fast.shape == direct.shape == (2, 1, 6, 6)
    assert relative_error(fast, direct) < 2e-5


def test_resnet_generator_runs_its_blocks_by_winograd_with_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    generator = ResnetGenerator(ngf=16, n_blocks=2)
    assert sum(isinstance(layer, WinogradConv2d) for layer in generator.modules()) == 4
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    torch.manual_seed(1)  # the same dropout masks in both passes
    fast = generator(x)
    fast_grad = torch.autograd.grad(fast.square().sum(), generator.layers[1].weight)[0]
    torch.manual_seed(1)
    direct = generator.disable_winograd()(x)
    direct_grad = torch.autograd.grad(direct.square().sum(), generator.layers[1].weight)[0]
    assert relative_error(fast, direct) < 3e-5
    assert relative_error(fast_grad, direct_grad) < 1e-4


# ----- twice differentiable (issue 13, item 6) -----------------------------------------------------------------
def test_a_first_call_in_inference_mode_does_not_break_training_later():
    """The transform matrices are cached on first use; made inside ``torch.inference_mode`` (a Pix2Pix call before
    training, in one process) they were inference tensors, and a later gradient penalty's backward failed."""
    from pix2pix_hub.models import winograd

    for cached in (winograd.winograd_matrices, winograd._kron_matrices, winograd._transforms):
        cached.cache_clear()
    x, weight = torch.randn(1, 3, 8, 8), torch.randn(64, 3, 3, 3)
    with torch.inference_mode():
        winograd_conv2d(x, weight, padding=1)
    x.requires_grad_(True)
    weight.requires_grad_(True)
    (grad_x,) = torch.autograd.grad(winograd_conv2d(x, weight, padding=1).square().sum(), x, create_graph=True)
    grad_x.square().sum().backward()  # a gradient penalty's backward: autograd saves the matrices here
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_double_backward_through_winograd_is_exact():
    """gradgradcheck in float64: the derivative of the gradient (what a gradient penalty trains on) is exact."""
    generator = torch.Generator().manual_seed(0)
    for kernel, padding in ((4, 1), (3, 0)):
        x = torch.randn(2, 3, 7, 6, dtype=torch.float64, generator=generator, requires_grad=True)
        weight = torch.randn(4, 3, kernel, kernel, dtype=torch.float64, generator=generator, requires_grad=True)
        assert torch.autograd.gradgradcheck(lambda x, w, p=padding: winograd_conv2d(x, w, padding=p), (x, weight))


def test_gradient_penalty_through_the_paper_discriminator_equals_the_direct_convolutions():
    """A WGAN-GP penalty and its gradient in every weight of a 70x70 PatchGAN at ndf 64 (its 256->512 stride-1 conv
    runs by Winograd) equal those of the same discriminator with direct convolutions. The penalty is written out
    here, not taken from training.losses, so that the Winograd layer itself is what gets differentiated twice."""
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(in_channels=6, ndf=64, norm="instance")
    assert any(isinstance(layer, WinogradConv2d) and layer.out_channels == 512 for layer in discriminator.modules())
    mixed = torch.randn(2, 6, 64, 64)

    def penalty_and_grads(winograd: bool) -> list[torch.Tensor]:
        discriminator.enable_winograd() if winograd else discriminator.disable_winograd()
        pairs = mixed.clone().requires_grad_(True)
        (grads,) = torch.autograd.grad(discriminator(pairs).sum(), pairs, create_graph=True)
        penalty = ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        # The conv weights: the biases before instance norm have no effect, their gradients are rounding noise.
        weights = [p for p in discriminator.parameters() if p.ndim == 4]
        return [penalty.detach(), *torch.autograd.grad(penalty, weights)]

    fast, direct = penalty_and_grads(True), penalty_and_grads(False)
    for value, reference in zip(fast, direct):
        assert relative_error(value, reference) < 1e-4


# ----- bit-deterministic (issue 13, item 7) ----------------------------------------------------------------------
DETERMINISM_SCRIPT = """
import hashlib, sys
import torch
from pix2pix_hub.performance import tune_allocator

tune_allocator()  # as training does: freed memory is reused, so every run's heap differs
heap = torch.empty(int(sys.argv[1]))  # and a different heap layout before the first convolution
from pix2pix_hub.models import PatchDiscriminator, ResnetGenerator

def digest(tensors):
    return hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in tensors)).hexdigest()

torch.manual_seed(0)
discriminator = PatchDiscriminator(in_channels=6, ndf=64)
generator = ResnetGenerator(ngf=16, n_blocks=6)
pairs, images = torch.randn(1, 6, 256, 256), torch.randn(4, 2, 3, 64, 64)
for _ in range(2):
    discriminator.zero_grad()
    logits = discriminator(pairs)
    logits.square().mean().backward()
    tensors = [logits, *(p.grad for p in discriminator.parameters())]
    for batch in images:
        generator.zero_grad()
        torch.manual_seed(1)  # the same dropout masks
        fake = generator(batch)
        fake.square().mean().backward()
        tensors += [fake, *(p.grad for p in generator.parameters())]
    print(digest(tensors))
"""


@pytest.mark.slow
def test_winograd_networks_are_bit_identical_across_processes():
    """The 70x70 PatchGAN at the paper's width (ndf 64: its 256->512 stride-1 conv runs by Winograd) on a 256x256
    pair, and a ResNet generator whose 64-channel block convs run by Winograd (F(4x4, 3x3)): forward + backward
    twice in each of six fresh processes (allocator tuned, heaps laid out differently), the same bytes every time.
    oneDNN's convolution, which computed the Winograd input transform before, rounded a few values differently in
    about one process in three, and training runs drifted apart from there (this test failed in 7 of 10 tries then)."""

    runs = [
        subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT, str(size)], capture_output=True, text=True, check=True
        ).stdout.split()
        for size in (1, 100, 5000, 20_000, 100_000, 1_000_000)
    ]
    assert len(runs[0]) == 2 and runs[0][0] == runs[0][1]  # twice in one process
    assert all(run == runs[0] for run in runs)
