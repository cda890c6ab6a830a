"""The networks themselves: sizes, parameter counts, receptive fields, init, and input errors."""

import pytest
import torch
from torch import nn

from pix2pix_hub import PatchDiscriminator, ResnetGenerator, UNetGenerator, build_discriminator, build_generator
from pix2pix_hub.models import GENERATOR_PRESETS, init_weights


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_paper_unet_256_has_the_published_parameter_count():
    assert n_params(build_generator("unet_256", ngf=64, norm="batch")) == 54_414_531


@pytest.mark.parametrize("preset", sorted(GENERATOR_PRESETS))
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_every_generator_preset_runs_on_1_3_4_channels(preset, channels):
    generator = build_generator(preset, in_channels=channels, out_channels=channels, ngf=4).eval()
    size = generator.size_multiple if preset.startswith("unet") else max(32, generator.min_size)
    x = torch.rand(2, channels, size, size) * 2 - 1
    with torch.no_grad():
        y = generator(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1  # Tanh output


def test_unet_dropout_sits_in_the_three_innermost_decoder_blocks():
    generator = UNetGenerator(num_downs=8, ngf=4)
    with_dropout = [any(isinstance(m, nn.Dropout) for m in block.modules()) for block in generator.decoders]
    assert with_dropout == [True, True, True, False, False, False, False, False]
    assert all(m.p == 0.5 for m in generator.modules() if isinstance(m, nn.Dropout))


def test_resnet_generator_block_counts():
    assert len(build_generator("resnet_9blocks").layers) - len(build_generator("resnet_6blocks").layers) == 3
    assert any(isinstance(m, nn.ReflectionPad2d) for m in ResnetGenerator(ngf=4).modules())


def receptive_window(discriminator: PatchDiscriminator, size: int) -> tuple[int, int, bool]:
    """Height and width of the input region that one central logit depends on, and whether it is all non-zero."""
    discriminator.eval()  # train-mode batch norm would make every logit depend on every pixel
    x = torch.randn(1, discriminator.in_channels, size, size, requires_grad=True)
    logits = discriminator(x)
    h, w = logits.shape[-2:]
    logits[0, 0, h // 2, w // 2].backward()
    nonzero = x.grad.abs().sum(1)[0] > 0
    rows = nonzero.any(1).nonzero().flatten()
    cols = nonzero.any(0).nonzero().flatten()
    window = nonzero[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return len(rows), len(cols), bool(window.all())


@pytest.mark.parametrize(("n_layers", "field"), [(0, 1), (1, 16), (2, 34), (3, 70)])
def test_patch_discriminator_receptive_field_is_exact(n_layers, field):
    discriminator = PatchDiscriminator(in_channels=6, ndf=8, n_layers=n_layers)
    assert discriminator.receptive_field == field
    assert receptive_window(discriminator, 256) == (field, field, True)


def test_patchgan_70_gives_30x30_logits_and_whole_image_gives_one():
    pair = torch.randn(2, 6, 256, 256)
    assert build_discriminator("basic", ndf=8)(pair).shape == (2, 1, 30, 30)
    assert build_discriminator("pixel", ndf=8)(pair).shape == (2, 1, 256, 256)
    image_d = build_discriminator("image", ndf=8)
    assert image_d(pair).shape == (2, 1, 1, 1)
    assert image_d.receptive_field >= 256


def test_discriminator_is_conditioned_on_the_input_pair():
    discriminator = PatchDiscriminator(in_channels=4, ndf=8).eval()  # 1-channel input + 3-channel output
    output = torch.randn(1, 3, 64, 64)
    a, b = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(discriminator(torch.cat([a, output], 1)), discriminator(torch.cat([b, output], 1)))
    with pytest.raises(ValueError, match=r"cat\(input, output\).*\(N, 4, H, W\)"):
        discriminator(torch.randn(1, 6, 64, 64))


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_norm_choices_and_conv_bias(norm):
    generator = UNetGenerator(num_downs=3, ngf=4, norm=norm)
    kinds = {type(m).__name__ for m in generator.modules()}
    assert ("BatchNorm2d" in kinds) == (norm == "batch")
    assert ("InstanceNorm2d" in kinds) == (norm == "instance")
    middle_conv = generator.encoders[1][1]
    assert (middle_conv.bias is None) == (norm == "batch")


def test_normal_init_matches_the_paper():
    torch.manual_seed(0)
    generator = UNetGenerator(num_downs=6, ngf=16)
    conv_weights = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, nn.Conv2d)])
    bn_weights = torch.cat([m.weight.flatten() for m in generator.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(conv_weights.mean()) < 1e-3 and abs(conv_weights.std() - 0.02) < 1e-3
    assert abs(bn_weights.mean() - 1) < 5e-3 and abs(bn_weights.std() - 0.02) < 5e-3


@pytest.mark.parametrize("init_type", ["xavier", "kaiming", "orthogonal"])
def test_other_inits_change_the_weights(init_type):
    torch.manual_seed(0)
    generator = UNetGenerator(num_downs=3, ngf=8)
    before = generator.encoders[1][1].weight.std().item()
    init_weights(generator, init_type)
    assert generator.encoders[1][1].weight.std().item() != pytest.approx(before, rel=0.05)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: build_generator("unet_1024"), r"Unknown generator preset 'unet_1024'; choose one of .*unet_128"),
        (lambda: build_discriminator("huge"), r"Unknown discriminator preset 'huge'"),
        (lambda: UNetGenerator(norm="group"), r"norm='group' is not supported; choose one of batch, instance, none"),
        (lambda: ResnetGenerator(norm="layer"), r"norm='layer'"),
        (lambda: PatchDiscriminator(norm="x"), r"norm='x'"),
        (lambda: UNetGenerator(init_type="uniform"), r"init_type='uniform'.*normal, xavier, kaiming, orthogonal"),
    ],
)
def test_bad_names_list_the_accepted_values(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_generator_input_errors_name_the_expected_shape():
    generator = UNetGenerator(num_downs=8, ngf=4)
    with pytest.raises(ValueError, match=r"divisible by 256; got 128x128.*Pix2Pix"):
        generator(torch.zeros(1, 3, 128, 128))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\); got \(1, 4, 256, 256\)"):
        generator(torch.zeros(1, 4, 256, 256))
    with pytest.raises(ValueError, match="divisible by 4"):
        ResnetGenerator(ngf=4, n_blocks=1)(torch.zeros(1, 3, 30, 30))


def test_ssim_on_images_too_small_for_its_window_is_a_clear_error():
    from pix2pix_hub.images.metrics import image_metrics

    with pytest.raises(ValueError, match="SSIM needs images of at least 11x11"):
        image_metrics(torch.zeros(1, 3, 5, 40), torch.zeros(1, 3, 5, 40))


def test_the_output_tanh_is_tanh_without_mkl_and_plain_tanh_when_exported():
    """Every generator ends in ``layers.Tanh``: on a CPU float32 tensor ``2 sigmoid(2x) - 1`` (bit-identical across
    processes), equal to ``torch.tanh`` and its gradient within float rounding; traced or exported, a plain Tanh."""
    from pix2pix_hub.models import GlobalGenerator, LocalEnhancer
    from pix2pix_hub.models.layers import Tanh

    for generator in (
        UNetGenerator(num_downs=5, ngf=8),
        ResnetGenerator(ngf=8),
        GlobalGenerator(ngf=8),
        LocalEnhancer(ngf=8),
    ):
        assert sum(isinstance(layer, nn.Tanh) for layer in generator.modules()) == 1
        assert isinstance([layer for layer in generator.modules() if isinstance(layer, nn.Tanh)][0], Tanh)
    x = (torch.linspace(-12, 12, 100_001) ** 3 / 144).requires_grad_(True)
    (grad,) = torch.autograd.grad(Tanh()(x).square().sum(), x)
    reference = torch.tanh(x)
    (reference_grad,) = torch.autograd.grad(reference.square().sum(), x)
    assert (Tanh()(x) - reference).abs().max() < 3e-7
    assert (grad - reference_grad).abs().max() < 1e-6
    assert Tanh()(torch.tensor([-1e4, 1e4, float("nan")])).tolist()[:2] == [-1.0, 1.0]
    traced = torch.jit.trace(Tanh(), torch.zeros(3))
    assert "aten::tanh" in str(traced.graph) and "sigmoid" not in str(traced.graph)


# ----- the declared interface: Generator / Discriminator, the registry's facts, the Winograd switch ---------------
def test_every_registered_network_declares_the_interface_and_its_presets_name_their_class():
    from pix2pix_hub.models import (
        DISCRIMINATOR_CLASSES,
        DISCRIMINATOR_PRESETS,
        GENERATOR_CLASSES,
        Discriminator,
        Generator,
        discriminator_class_of,
        generator_class_of,
    )

    assert GENERATOR_CLASSES and all(issubclass(cls, Generator) for cls in GENERATOR_CLASSES.values())
    assert DISCRIMINATOR_CLASSES and all(issubclass(cls, Discriminator) for cls in DISCRIMINATOR_CLASSES.values())
    for name in GENERATOR_PRESETS:
        assert type(build_generator(name, ngf=1, norm="none")) is generator_class_of(name)
    for name in DISCRIMINATOR_PRESETS:
        network = build_discriminator(name, ndf=1, norm="none")
        assert type(network) is discriminator_class_of(name)
        assert network.multiscale is discriminator_class_of(name).multiscale is (name == "multiscale")


def test_the_interface_is_enforced_where_a_network_is_declared():
    from pix2pix_hub.models.interface import Generator
    from pix2pix_hub.models.registry import generator_class, register_generator

    class Shapeless(Generator):  # no size_multiple
        def __init__(self) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="size_multiple"):
        Shapeless()
    with pytest.raises(TypeError, match="must subclass models.interface.Generator"):
        generator_class(nn.Conv2d)
    with pytest.raises(TypeError, match="annotated to return a Generator"):
        register_generator(lambda **kwargs: UNetGenerator(**kwargs))


def test_build_discriminator_passes_each_preset_only_the_options_it_names():
    from pix2pix_hub.models.registry import preset_options

    assert preset_options("basic") == () and preset_options("n_layers") == ("n_layers",)
    assert set(preset_options("multiscale")) == {"n_layers", "num_D"}
    options = {"n_layers": 2, "num_D": 3}
    assert build_discriminator("basic", ndf=1, **options).n_layers == 3  # its depth is fixed
    assert build_discriminator("image", ndf=1, **options).n_layers == 5
    assert build_discriminator("n_layers", ndf=1, **options).n_layers == 2
    multiscale = build_discriminator("multiscale", ndf=1, **options)
    assert (multiscale.n_layers, multiscale.num_D) == (2, 3)
    with pytest.raises(TypeError):  # a constructor argument no preset names still reaches the class
        build_discriminator("basic", ndf=1, depth=4)


def test_building_through_the_registry_draws_what_the_preset_draws():
    torch.manual_seed(0)
    direct = PatchDiscriminator(in_channels=6, ndf=8, n_layers=2)
    torch.manual_seed(0)
    built = build_discriminator("n_layers", in_channels=6, ndf=8, n_layers=2, num_D=3)
    assert all(torch.equal(a, b) for a, b in zip(direct.state_dict().values(), built.state_dict().values()))


@pytest.mark.parametrize(
    ("name", "options"),
    [("pixel", {}), ("basic", {}), ("n_layers", {"n_layers": 1}), ("image", {}), ("multiscale", {"num_D": 3})],
)
def test_logit_sizes_are_the_forward_shapes_and_min_size_is_tight(name, options):
    discriminator = build_discriminator(name, ndf=1, norm="none", **options).eval()
    with torch.no_grad():
        for height, width in ((97, 128), (128, 200)):  # at least every preset's min_size
            pair = torch.zeros(1, 6, height, width)
            logits = discriminator(pair)
            if getattr(discriminator, "whole_image", False):  # the map before it is averaged to one logit
                assert logits.shape[-2:] == (1, 1)
                logits = discriminator.layers(pair)
            maps = logits if discriminator.multiscale else [logits]
            assert [tuple(m.shape[-2:]) for m in maps] == discriminator.logit_sizes(height, width)
    side = discriminator.min_size
    assert min(min(size) for size in discriminator.logit_sizes(side, side)) == 1
    assert side == 1 or min(min(size) for size in discriminator.logit_sizes(side - 1, side - 1)) == 0


def test_generator_output_size_is_the_input_size_within_its_rules():
    unet, resnet = UNetGenerator(num_downs=5, ngf=1), ResnetGenerator(ngf=1, n_blocks=1)
    assert unet.min_size == unet.size_multiple == 32  # the interface's default
    assert unet.output_size(64, 96) == (64, 96) and resnet.output_size(8, 12) == (8, 12)
    for generator, height, width in ((unet, 48, 64), (resnet, 4, 8), (resnet, 10, 12)):
        with pytest.raises(ValueError, match=r"multiples of \d+ and at least \d+"):
            generator.output_size(height, width)


def test_winograd_is_on_by_default_and_switched_like_gradient_checkpointing(tmp_path):
    from pix2pix_hub.models import LocalEnhancer
    from pix2pix_hub.models.winograd import WinogradConv2d

    network = LocalEnhancer(ngf=4, n_downsample_global=1, n_blocks_global=1, n_blocks_local=1)
    layers = [layer for layer in network.modules() if isinstance(layer, WinogradConv2d)]
    assert len(layers) == 4 and all(layer.winograd for layer in layers)  # the global part's and the branch's
    keys, config = list(network.state_dict()), network.config
    assert network.disable_winograd() is network and not any(layer.winograd for layer in layers)
    assert list(network.state_dict()) == keys and network.config == config
    network.save_pretrained(tmp_path / "model")
    assert all(
        layer.winograd
        for layer in LocalEnhancer.from_pretrained(tmp_path / "model").modules()
        if isinstance(layer, WinogradConv2d)
    )  # never saved: a loaded network starts with it on
    assert network.enable_winograd() is network and all(layer.winograd for layer in layers)
    assert UNetGenerator(num_downs=3, ngf=1).disable_winograd() is not None  # no Winograd convs: nothing to do
