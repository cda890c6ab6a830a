"""pix2pixHD's networks: GlobalGenerator, LocalEnhancer, MultiscaleDiscriminator (shapes, sizes, receptive fields,
save/load, loading a global generator into a local enhancer, the local branch's parameters), and gradient
checkpointing on every network (same results, less kept for the backward pass)."""

import copy

import pytest
import torch
from torch import nn

from pix2pix_hub import Pix2Pix
from pix2pix_hub.models.discriminator import PatchDiscriminator
from pix2pix_hub.models.hd import GlobalGenerator, LocalEnhancer
from pix2pix_hub.models.multiscale import MultiscaleDiscriminator
from pix2pix_hub.models.registry import (
    DISCRIMINATOR_CLASSES,
    GENERATOR_CLASSES,
    build_discriminator,
    build_generator,
    generator_size_multiple,
)
from pix2pix_hub.models.resnet import ResnetGenerator
from pix2pix_hub.models.unet import UNetGenerator


def small_global(**kwargs) -> GlobalGenerator:
    return GlobalGenerator(**{"ngf": 4, "n_downsample": 2, "n_blocks": 2, **kwargs})


def small_local(**kwargs) -> LocalEnhancer:
    return LocalEnhancer(**{"ngf": 4, "n_downsample_global": 2, "n_blocks_global": 2, "n_blocks_local": 1, **kwargs})


def perturbed(model: nn.Module) -> nn.Module:
    """Zero-initialised biases would hide a bias that failed to load: give every parameter its own values."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


def test_presets_are_registered_under_pix2pixhd_names():
    assert isinstance(build_generator("global", ngf=4), GlobalGenerator)
    assert isinstance(build_generator("local", ngf=4), LocalEnhancer)
    assert build_discriminator("multiscale", ndf=4, num_D=3).num_D == 3
    assert generator_size_multiple("global") == 16  # pix2pixHD's default: 4 halvings
    assert generator_size_multiple("local") == 32  # one more for the half-size input of the global part
    assert {"GlobalGenerator", "LocalEnhancer"} <= set(GENERATOR_CLASSES)
    assert "MultiscaleDiscriminator" in DISCRIMINATOR_CLASSES


def test_global_generator_has_pix2pixhd_parameter_count():
    # Counted by hand from pix2pixHD's layer list at ngf 64, 4 halvings, 9 blocks (every conv with a bias):
    # c7s1 9,472 + downs 6,268,800 + blocks 169,887,744 + ups 6,267,840 + head 9,411.
    with torch.device("meta"):
        generator = GlobalGenerator()
    assert sum(p.numel() for p in generator.parameters()) == 182_443_267


@pytest.mark.parametrize(
    ("generator", "height", "width"),
    [
        (small_global(), 32, 48),
        (small_global(in_channels=1, out_channels=4), 48, 16),
        (small_local(), 32, 64),
        (small_local(n_local_enhancers=2, in_channels=4, out_channels=1), 64, 96),
    ],
    ids=["global", "global-1to4", "local", "local-2-enhancers-4to1"],
)
def test_generators_keep_non_square_sizes_and_tanh_range(generator, height, width):
    x = torch.rand(2, generator.in_channels, height, width) * 2 - 1
    with torch.no_grad():
        y = generator.eval()(x)
    assert y.shape == (2, generator.out_channels, height, width)
    assert y.min() >= -1 and y.max() <= 1


def test_global_generator_follows_pix2pixhd_layout():
    generator = GlobalGenerator(ngf=4, n_downsample=3, n_blocks=2)
    convs = [m for m in generator.modules() if type(m) is nn.Conv2d]
    strided = [m for m in convs if m.stride == (2, 2)]
    assert [(m.in_channels, m.out_channels) for m in strided] == [(4, 8), (8, 16), (16, 32)]
    ups = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.output_padding) for m in ups] == [
        (32, 16, (3, 3), (1, 1)),
        (16, 8, (3, 3), (1, 1)),
        (8, 4, (3, 3), (1, 1)),
    ]
    assert convs[0].kernel_size == convs[-1].kernel_size == (7, 7)
    assert isinstance(generator.head[-1], nn.Tanh)
    assert not any(isinstance(m, nn.ZeroPad2d) for m in generator.modules())
    assert all(isinstance(m, nn.InstanceNorm2d) for m in generator.modules() if "Norm" in type(m).__name__)


@pytest.mark.parametrize("generator", [small_global(), small_local()], ids=["global", "local"])
def test_size_multiple_and_min_size_are_tight(generator):
    multiple, smallest = generator.size_multiple, generator.min_size
    with torch.no_grad():
        generator.eval()(torch.zeros(1, 3, smallest, smallest + multiple))
        with pytest.raises(ValueError, match=f"divisible by {multiple}"):
            generator(torch.zeros(1, 3, smallest, smallest + multiple // 2))
        with pytest.raises((RuntimeError, ValueError)):  # one multiple below: the bottleneck is too small to pad
            generator(torch.zeros(1, 3, smallest - multiple, smallest))


def test_generators_take_the_dropout_the_trainer_passes():
    with_dropout = build_generator("local", ngf=4, dropout=0.5)
    assert any(isinstance(m, nn.Dropout) for m in with_dropout.modules())
    assert not any(isinstance(m, nn.Dropout) for m in build_generator("global", ngf=4).modules())


@pytest.mark.parametrize(
    "model",
    [small_global(norm="batch"), small_local(), MultiscaleDiscriminator(ndf=4, num_D=3, norm="batch")],
    ids=["global", "local", "multiscale"],
)
def test_save_then_load_reproduces_outputs(tmp_path, model):
    model = perturbed(model)
    model.save_pretrained(tmp_path / "model")
    loaded = type(model).from_pretrained(tmp_path / "model")
    assert loaded.config == model.config
    channels = model.in_channels
    x = torch.rand(2, channels, 96, 128) * 2 - 1
    with torch.no_grad():
        expected, got = model(x), loaded(x)
    if isinstance(expected, list):
        assert len(got) == len(expected) == model.num_D
        assert all(torch.equal(a, b) for a, b in zip(expected, got))
    else:
        assert torch.equal(expected, got)


def test_pix2pix_folder_round_trip_with_hd_networks(tmp_path):
    generator = perturbed(small_local())
    Pix2Pix(generator, MultiscaleDiscriminator(ndf=4)).save_pretrained(tmp_path / "hd")
    loaded = Pix2Pix.from_pretrained(tmp_path / "hd", backend="torch")
    assert type(loaded.generator) is LocalEnhancer and type(loaded.discriminator) is MultiscaleDiscriminator
    x = torch.rand(1, 3, 64, 96) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.generator(x), generator(x))


def test_load_global_copies_the_trained_global_body():
    local = small_local(norm="batch")
    trained = perturbed(GlobalGenerator(**local.global_config(), out_channels=3)).eval()
    half = torch.rand(1, 3, 32, 48) * 2 - 1
    local.eval()
    with torch.no_grad():
        before = local(torch.rand(1, 3, 64, 96))
        assert not torch.equal(local.global_body(half), trained.body(half))
        local.load_global(trained)
        assert torch.equal(local.global_body(half), trained.body(half))
        assert before.shape == (1, 3, 64, 96)


def test_load_global_refuses_a_generator_that_does_not_fit():
    local = small_local()
    with pytest.raises(ValueError, match="ngf"):
        local.load_global(small_global(ngf=4))  # the global part is twice as wide (ngf 8)
    with pytest.raises(TypeError, match="GlobalGenerator"):
        local.load_global(small_local())
    assert local.global_config()["ngf"] == 8


def test_local_parameters_train_the_local_branch_alone():
    local = small_local()
    local_ids = {id(p) for p in local.local_parameters()}
    global_ids = {id(p) for p in local.global_body.parameters()}
    assert local_ids and global_ids and not local_ids & global_ids
    assert local_ids | global_ids == {id(p) for p in local.parameters()}

    global_before = {k: v.clone() for k, v in local.global_body.state_dict().items()}
    head_before = local.head[1].weight.clone()
    optimizer = torch.optim.SGD(local.local_parameters(), lr=0.1)
    local(torch.rand(2, 3, 64, 64)).square().mean().backward()
    optimizer.step()
    assert all(torch.equal(v, local.global_body.state_dict()[k]) for k, v in global_before.items())
    assert not torch.equal(head_before, local.head[1].weight)


def test_global_generator_translates_1024x2048_in_eval_mode():
    generator = GlobalGenerator(ngf=4).eval()
    with torch.no_grad():
        y = generator(torch.rand(1, 3, 1024, 2048) * 2 - 1)
    assert y.shape == (1, 3, 1024, 2048)
    assert y.abs().max() <= 1


@pytest.mark.parametrize("bad", [{"n_downsample": -1}, {"n_blocks": -1}])
def test_global_generator_refuses_negative_depths(bad):
    with pytest.raises(ValueError, match="0 or more"):
        GlobalGenerator(**bad)


def test_local_enhancer_needs_at_least_one_enhancer():
    with pytest.raises(ValueError, match="n_local_enhancers=0"):
        LocalEnhancer(n_local_enhancers=0)


# ----- MultiscaleDiscriminator -----------------------------------------------------------------------------------
def test_multiscale_returns_one_logit_map_per_scale_finest_first():
    discriminator = MultiscaleDiscriminator(ndf=4, num_D=3).eval()
    with torch.no_grad():
        logits = discriminator(torch.randn(2, 6, 128, 256))
    # 70x70 PatchGAN with padding 1: side/8 - 2 at each scale; each pooling halves, rounding up.
    assert [tuple(t.shape) for t in logits] == [(2, 1, 14, 30), (2, 1, 6, 14), (2, 1, 2, 6)]


def test_features_end_with_the_logits_and_keep_every_layer():
    discriminator = MultiscaleDiscriminator(ndf=4, n_layers=3, num_D=2).eval()
    pair = torch.randn(1, 6, 96, 64)
    with torch.no_grad():
        features, logits = discriminator.features(pair), discriminator(pair)
    assert len(features) == 2
    for scale_features, scale_logits in zip(features, logits):
        assert [t.shape[1] for t in scale_features] == [4, 8, 16, 32, 1]  # n_layers + 2 tensors
        assert torch.equal(scale_features[-1], scale_logits)
    assert [t.shape[-2:] for t in features[1]][0] == (24, 16)  # scale 1 sees the pair pooled once


def test_every_scale_gets_gradients_through_the_features_path():
    discriminator = MultiscaleDiscriminator(ndf=4, num_D=3)
    features = discriminator(torch.randn(1, 6, 128, 128), return_features=True)
    sum(t.mean() for scale in features for t in scale).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in discriminator.parameters())


def logit_window(discriminator: MultiscaleDiscriminator, scale: int, size: int) -> tuple[int, int, bool]:
    """Height and width of the input region the central logit of ``scale`` depends on, and whether it is all
    non-zero (eval-mode batch norm: train-mode statistics would spread it over the whole image)."""
    discriminator.eval()
    x = torch.randn(1, discriminator.in_channels, size, size, requires_grad=True)
    logits = discriminator(x)[scale]
    h, w = logits.shape[-2:]
    logits[0, 0, h // 2, w // 2].backward()
    nonzero = x.grad.abs().sum(1)[0] > 0
    rows = nonzero.any(1).nonzero().flatten()
    cols = nonzero.any(0).nonzero().flatten()
    window = nonzero[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return len(rows), len(cols), bool(window.all())


@pytest.mark.parametrize(("scale", "field"), [(0, 70), (1, 141), (2, 283)])
def test_receptive_field_of_each_scale_is_exact(scale, field):
    discriminator = MultiscaleDiscriminator(ndf=4, num_D=3, norm="batch")
    assert discriminator.receptive_fields[scale] == field
    assert logit_window(discriminator, scale, 448) == (field, field, True)


def test_receptive_field_is_the_coarsest_scale_for_the_card():
    assert MultiscaleDiscriminator(ndf=4, num_D=2).receptive_field == 141
    assert MultiscaleDiscriminator(ndf=4, num_D=1, n_layers=2).receptive_fields == (34,)


@pytest.mark.parametrize(("num_D", "n_layers"), [(1, 3), (2, 3), (3, 3), (3, 2)])
def test_min_size_is_the_smallest_side_every_scale_can_judge(num_D, n_layers):
    discriminator = MultiscaleDiscriminator(ndf=4, num_D=num_D, n_layers=n_layers, norm="none").eval()
    side = discriminator.min_size
    with torch.no_grad():
        assert discriminator(torch.zeros(1, 6, side, side))[-1].shape[-2:] == (1, 1)
        with pytest.raises(RuntimeError):
            discriminator(torch.zeros(1, 6, side - 1, side))


def test_multiscale_refuses_wrong_channels_and_bad_arguments():
    discriminator = MultiscaleDiscriminator(in_channels=4, ndf=4)
    with pytest.raises(ValueError, match=r"cat\(input, output\).*\(N, 4, H, W\)"):
        discriminator(torch.randn(1, 6, 64, 64))
    with pytest.raises(ValueError, match="num_D=0"):
        MultiscaleDiscriminator(num_D=0)
    with pytest.raises(ValueError, match="n_layers=0"):
        MultiscaleDiscriminator(n_layers=0)


# ----- gradient checkpointing ----------------------------------------------------------------------------------
# Batch norm and dropout where a network has them: the replay must draw the same masks and leave the running
# statistics moved once; ndf 64 puts a Winograd conv (a custom autograd Function) inside a checkpointed segment.
CHECKPOINTED = {
    "unet": (lambda: UNetGenerator(num_downs=5, ngf=4, norm="batch", dropout=0.5), (2, 3, 32, 32)),
    "resnet": (lambda: ResnetGenerator(ngf=4, n_blocks=2, norm="batch", dropout=0.5), (2, 3, 16, 16)),
    "patchgan": (lambda: PatchDiscriminator(in_channels=6, ndf=64, n_layers=3, norm="batch"), (2, 6, 32, 32)),
    "global": (lambda: small_global(norm="batch", dropout=0.5), (2, 3, 16, 32)),
    "local": (lambda: small_local(dropout=0.5), (2, 3, 32, 64)),
    "multiscale": (lambda: MultiscaleDiscriminator(ndf=4, num_D=2, n_layers=2, norm="batch"), (2, 6, 32, 48)),
}


def outputs_and_grads(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], dict[str, torch.Tensor], int]:
    """Forward (features too, for the multi-scale D) and backward of a loss reading every output; returns the
    outputs, the parameters' gradients and the bytes autograd kept outside checkpointed segments."""
    kept = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal kept
        kept += tensor.numel() * tensor.element_size()
        return tensor

    torch.manual_seed(5)  # the dropout masks
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        if isinstance(model, MultiscaleDiscriminator):
            outputs = [feature for scale in model(x, return_features=True) for feature in scale]
        else:
            outputs = [model(x)]
    sum((output * output).mean() for output in outputs).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    return [output.detach() for output in outputs], grads, kept


@pytest.mark.parametrize("name", sorted(CHECKPOINTED))
def test_gradient_checkpointing_gives_the_same_results_and_keeps_less(name):
    build, shape = CHECKPOINTED[name]
    torch.manual_seed(0)
    plain = build().train()
    checkpointed = copy.deepcopy(plain).enable_gradient_checkpointing()
    assert checkpointed.gradient_checkpointing and not plain.gradient_checkpointing
    x = torch.randn(shape)
    expected, expected_grads, kept_plain = outputs_and_grads(plain, x)
    got, grads, kept = outputs_and_grads(checkpointed, x)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    for key, grad in expected_grads.items():
        torch.testing.assert_close(grads[key], grad, rtol=1e-5, atol=1e-7, msg=key)
    for key, buffer in plain.state_dict().items():  # running statistics moved once, not again by the replay
        assert torch.equal(checkpointed.state_dict()[key], buffer), key
    assert kept < kept_plain * 0.7  # the activations inside the segments are recomputed, not kept


def test_gradient_checkpointing_is_off_in_eval_and_not_saved(tmp_path):
    model = small_global().enable_gradient_checkpointing().eval()
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    assert not model.checkpointing_now  # eval mode (inference, the ONNX export): layers run plainly
    model.save_pretrained(tmp_path / "g")
    assert "gradient_checkpointing" not in model.config
    assert not GlobalGenerator.from_pretrained(tmp_path / "g").gradient_checkpointing
    model.train()
    assert model.checkpointing_now and model.disable_gradient_checkpointing().checkpointing_now is False
    with torch.no_grad():
        assert not model.enable_gradient_checkpointing().checkpointing_now  # nothing to recompute without grads
    assert model(x).requires_grad
