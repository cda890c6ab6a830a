"""GauGAN's networks (models/spade.py): SPADE against a hand computation, the generator's sizes, depths and style
code, save/load, the registry, gradient checkpointing with spectral norm (generator and the spectral-instance
discriminator), and an ONNX export of the generator with its spectral norms baked."""

import copy
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from pix2pix_hub.models import SPADE, SPADEGenerator, SPADEResBlock, StyleEncoder
from pix2pix_hub.models.discriminator import PatchDiscriminator
from pix2pix_hub.models.multiscale import MultiscaleDiscriminator
from pix2pix_hub.models.registry import (
    build_discriminator,
    build_generator,
    generator_class_of,
    generator_size_multiple,
    tiny_generator,
)


def small(**kwargs) -> SPADEGenerator:
    return SPADEGenerator(**{"in_channels": 4, "ngf": 2, "spade_hidden": 8, **kwargs})


def one_hot(batch: int, classes: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (batch, height, width), generator=generator)
    return F.one_hot(labels, classes).permute(0, 3, 1, 2).float()


def perturbed(model: nn.Module) -> nn.Module:
    """Zero-initialised biases would hide a bias that failed to load: give every parameter its own values."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_spade_is_the_hand_computation(norm):
    """Center-tap 3x3 kernels make gamma and beta known per class: gamma[c] = G[c, class], beta[c] = B[c, class]."""
    gains = torch.tensor([[0.5, -0.25], [2.0, 1.0], [0.0, -1.5]])  # (C=3, L=2)
    shifts = torch.tensor([[1.0, -2.0], [0.5, 0.0], [-0.75, 3.0]])
    spade = SPADE(3, 2, hidden=2, kernel_size=3, norm=norm).train()
    with torch.no_grad():
        for conv, centre in ((spade.shared[0], torch.eye(2)), (spade.gamma, gains), (spade.beta, shifts)):
            conv.weight.zero_()
            conv.weight[:, :, 1, 1] = centre
            conv.bias.zero_()
    x = torch.randn(2, 3, 4, 6) * 3 + 1
    classes = torch.tensor([[[0, 1, 1], [1, 0, 0]], [[1, 1, 0], [0, 0, 1]]])  # (N, 2, 3): half the size of x
    segmap = F.one_hot(classes, 2).permute(0, 3, 1, 2).float()

    dims = (2, 3) if norm == "instance" else (0, 2, 3)
    mean = x.mean(dim=dims, keepdim=True)
    variance = x.var(dim=dims, unbiased=False, keepdim=True)
    normalised = (x - mean) / torch.sqrt(variance + 1e-5)
    per_pixel = classes.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # nearest: each class 2x2 pixels
    gamma = gains[:, per_pixel].permute(1, 0, 2, 3)  # (N, C, H, W)
    beta = shifts[:, per_pixel].permute(1, 0, 2, 3)
    expected = normalised * (1 + gamma) + beta

    assert torch.allclose(spade(x, segmap), expected, atol=1e-5)


def test_spade_res_block_shortcut_and_shapes():
    same, wider = SPADEResBlock(8, 8, 3, hidden=4), SPADEResBlock(8, 4, 3, hidden=4)
    assert not same.learned_shortcut and not hasattr(same, "conv_s")
    assert wider.learned_shortcut and wider.conv_s.bias is None and wider.conv_s.kernel_size == (1, 1)
    assert wider.conv_0.out_channels == 4  # through min(in, out) channels
    x, segmap = torch.randn(2, 8, 8, 16), one_hot(2, 3, 32, 64)
    assert same(x, segmap).shape == (2, 8, 8, 16) and wider(x, segmap).shape == (2, 4, 8, 16)


@pytest.mark.parametrize(("depth", "multiple", "blocks"), [("normal", 32, 7), ("more", 64, 7), ("most", 128, 8)])
def test_generator_depths_sizes_and_non_square_outputs(depth, multiple, blocks):
    generator = small(num_upsampling_layers=depth).eval()
    assert generator.size_multiple == multiple and len(generator.blocks) == blocks
    assert sum(generator.upsample_after) == {"normal": 5, "more": 6, "most": 7}[depth]
    seen = []
    generator.blocks[0].register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    with torch.no_grad():
        image = generator(one_hot(2, 4, multiple, 2 * multiple))  # non-square: H x 2H
    assert image.shape == (2, 3, multiple, 2 * multiple)
    assert image.abs().max() <= 1
    assert seen == [(2, 32, 1, 2)]  # the lowest resolution keeps the aspect; 16 ngf wide
    with pytest.raises(ValueError, match=f"divisible by {multiple}"):
        generator(one_hot(1, 4, multiple, multiple + 16))


def test_generator_layout_steers_the_output():
    """Without the encoder the label map is the only input: two maps give two images, one map one image."""
    generator = perturbed(small()).eval()
    first, second = one_hot(1, 4, 64, 64, seed=0), one_hot(1, 4, 64, 64, seed=1)
    with torch.no_grad():
        assert torch.equal(generator(first), generator(first))
        assert not torch.allclose(generator(first), generator(second))
    with pytest.raises(ValueError, match="without use_vae"):
        generator(first, torch.zeros(1, 256))
    with pytest.raises(ValueError, match="use_vae=True"):
        generator.encode(torch.rand(1, 3, 64, 64))


def test_style_code_zero_default_and_encoder():
    generator = perturbed(small(use_vae=True, z_dim=16)).eval()
    assert isinstance(generator.encoder, StyleEncoder) and isinstance(generator.fc, nn.Linear)
    labels = one_hot(2, 4, 64, 128)
    with torch.no_grad():
        assert torch.equal(generator(labels), generator(labels, torch.zeros(2, 16)))  # z=None: the prior's mean
        assert not torch.allclose(generator(labels), generator(labels, torch.randn(2, 16)))
        mu, logvar = generator.encode(torch.rand(3, 3, 100, 70) * 2 - 1)
    assert mu.shape == logvar.shape == (3, 16)
    with pytest.raises(ValueError, match=r"z of shape \(2, 16\)"):
        generator(labels, torch.zeros(1, 16))


def test_style_encoder_resizes_to_256_first():
    encoder = perturbed(StyleEncoder(3, ndf=2, z_dim=8)).eval()
    photo = torch.rand(1, 3, 256, 512)
    resized = F.interpolate(photo, size=(256, 256), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(encoder(photo), encoder(resized)))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        encoder(torch.rand(1, 1, 64, 64))


@pytest.mark.parametrize(("use_vae", "spectral_norm"), [(False, False), (True, True)])
def test_save_load_round_trip(tmp_path, use_vae, spectral_norm):
    generator = perturbed(small(use_vae=use_vae, spectral_norm=spectral_norm, norm="batch"))
    generator.train()(one_hot(2, 4, 64, 64))  # moves the running statistics and the spectral norms' vectors
    generator.eval().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == "SPADEGenerator" and config["use_vae"] is use_vae
    assert config["spectral_norm"] is spectral_norm and config["num_upsampling_layers"] == "normal"
    loaded = SPADEGenerator.from_pretrained(tmp_path)
    assert set(loaded.state_dict()) == set(generator.state_dict())  # loaded strictly: the same keys
    assert any(key.startswith("encoder.") for key in loaded.state_dict()) is use_vae
    assert any("parametrizations" in key for key in loaded.state_dict()) is spectral_norm
    labels = one_hot(1, 4, 64, 96)
    z = torch.randn(1, 256) if use_vae else None
    with torch.no_grad():
        assert torch.equal(loaded(labels, z), generator(labels, z))
        if use_vae:
            style = torch.rand(1, 3, 64, 64)
            assert all(torch.equal(a, b) for a, b in zip(loaded.encode(style), generator.encode(style)))


def test_registry_preset_and_shape_facts():
    assert generator_class_of("spade") is SPADEGenerator
    assert generator_size_multiple("spade") == 32
    assert tiny_generator("spade").min_size == 32
    generator = build_generator("spade", in_channels=5, ngf=1, dropout=0.5, num_upsampling_layers="more")
    assert isinstance(generator, SPADEGenerator) and generator.size_multiple == 64
    assert "dropout" not in generator.config
    with pytest.raises(ValueError, match="num_upsampling_layers"):
        build_generator("spade", num_upsampling_layers="many")


def exact_same_training(network: nn.Module, run, *inputs) -> None:
    """``run`` (forward passes, then one backward) with and without gradient checkpointing: the same gradients
    and the same buffers (running statistics, spectral norms' vectors) afterwards, to the bit."""
    twin = copy.deepcopy(network).enable_gradient_checkpointing()
    for model in (network.train(), twin.train()):
        run(model, *inputs).backward()
    for (name, ours), theirs in zip(network.named_parameters(), twin.parameters()):
        if not name.startswith("encoder."):  # the encoder takes no part in these runs
            assert ours.grad is not None and torch.equal(ours.grad, theirs.grad), name
    for (name, ours), theirs in zip(network.named_buffers(), twin.buffers()):
        assert torch.equal(ours, theirs), name


def test_generator_checkpointing_is_exact_with_spectral_and_batch_norm():
    generator = perturbed(small(use_vae=True, z_dim=8))
    labels, z = one_hot(2, 4, 32, 32), torch.randn(2, 8)

    def run(model, labels, z):
        return model(labels, z).square().mean()

    exact_same_training(generator, run, labels, z)


def test_spectral_instance_discriminator(tmp_path):
    discriminator = build_discriminator(
        "multiscale", in_channels=6, ndf=4, n_layers=4, num_D=2, norm="spectralinstance"
    )
    convs = [layer for layer in discriminator.scales[0].layers if isinstance(layer, nn.Conv2d)]
    assert all(parametrize.is_parametrized(conv, "weight") for conv in convs[:-1])
    assert not parametrize.is_parametrized(convs[-1], "weight")  # the logit conv
    assert all(conv.bias is not None for conv in convs)
    assert any(isinstance(layer, nn.InstanceNorm2d) for layer in discriminator.scales[0].layers)
    pair = torch.randn(2, 6, 96, 128)

    def run(model, pair):  # a discriminator update: two passes, features of one, then the backward
        features = model(pair, return_features=True)
        return sum(f.square().mean() for scale in features for f in scale) + sum(o.mean() for o in model(pair / 2))

    exact_same_training(discriminator, run, pair)
    discriminator.eval().save_pretrained(tmp_path)
    loaded = MultiscaleDiscriminator.from_pretrained(tmp_path)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded(pair), discriminator(pair)))


def test_spectral_instance_patchgan_and_unknown_norm():
    patch = build_discriminator("basic", in_channels=4, ndf=4, norm="spectralinstance")
    assert isinstance(patch, PatchDiscriminator) and parametrize.is_parametrized(patch.layers[0], "weight")
    assert patch(torch.randn(1, 4, 64, 64)).shape == (1, 1, 6, 6)
    with pytest.raises(ValueError, match="spectralinstance"):
        build_discriminator("basic", norm="spectral")


def test_spectral_norm_iterates_once_a_call_in_winograd_convs():
    """The stride-1 conv (64 wide: Winograd on a CPU) reads its weight once a call, as a plain conv does: the
    power iteration moves its vectors by one step either way."""
    winograd = build_discriminator("basic", in_channels=4, ndf=8, norm="spectralinstance").train()
    plain = copy.deepcopy(winograd).disable_winograd()
    pair = torch.randn(1, 4, 64, 64)
    assert torch.allclose(winograd(pair), plain(pair), atol=1e-4)
    for (name, ours), theirs in zip(winograd.named_buffers(), plain.buffers()):
        assert torch.equal(ours, theirs), name


def test_onnx_export_with_baked_spectral_norm():
    """The exporter cannot trace spectral norm's ``vdot``: a copy whose parametrizations are baked (their eval-time
    weights) exports, and matches the torch model."""
    ort = pytest.importorskip("onnxruntime")
    generator = perturbed(small(ngf=1, use_vae=True, z_dim=8, norm="instance")).eval()
    labels, z = one_hot(1, 4, 64, 128), torch.randn(1, 8)
    with torch.no_grad():
        expected = generator(labels, z).numpy()
    # Removing a parametrization from a deepcopy deletes it from the class the original shares: bake the copy last.
    baked = copy.deepcopy(generator)
    for module in baked.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    buffer = io.BytesIO()
    torch.onnx.export(baked, (labels, z), buffer, input_names=["labels", "z"], dynamo=False)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"labels": labels.numpy(), "z": z.numpy()})
    assert np.abs(output - expected).max() < 1e-4


def test_the_papers_widths_run_a_non_square_map_with_the_encoder_and_save_load(tmp_path):
    """The preset at its defaults (ngf 64, SPADE hidden 128, 16 ngf = 1024 channels at the lowest resolution, spectral
    norm, the style encoder): a non-square 256x128 map goes through, and the encoder's code steers it."""
    torch.manual_seed(0)
    generator = build_generator("spade", in_channels=13, use_vae=True).eval()
    assert generator.config["ngf"] == 64 and generator.config["spade_hidden"] == 128
    labels = F.one_hot(torch.randint(0, 13, (1, 128, 256)), 13).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        mu, logvar = generator.encode(torch.rand(1, 3, 128, 256) * 2 - 1)
        styled, plain = generator(labels, mu), generator(labels)
    assert mu.shape == logvar.shape == (1, 256)
    assert styled.shape == plain.shape == (1, 3, 128, 256)
    assert styled.abs().max() <= 1 and not torch.equal(styled, plain)
    generator.save_pretrained(tmp_path)
    loaded = SPADEGenerator.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(labels, mu), styled)
