"""pix2pixHD's losses: feature matching (against a hand computation) and the VGG19 perceptual loss (random VGG19
weights saved to a temporary safetensors file: nothing is downloaded)."""

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pix2pix_hub.models.multiscale import MultiscaleDiscriminator
from pix2pix_hub.models.vgg import IMAGENET_MEAN, IMAGENET_STD, VGG19Features, load_vgg19
from pix2pix_hub.training.losses import VGGLoss, feature_matching_loss


# ----- feature matching ----------------------------------------------------------------------------------------
def constant_features(values: list[float]) -> list[torch.Tensor]:
    return [torch.full((1, 2, 2, 2), value) for value in values]


def test_feature_matching_matches_a_hand_computation():
    # num_D 2, n_layers 1: three tensors per scale (two activations, then the logits), weight 1/2 * 4/2 = 1.
    real = [constant_features([0.0, 1.0, 0.0]), constant_features([2.0, 0.0, 0.0])]
    fake = [constant_features([0.5, 0.0, 9.0]), constant_features([2.0, -0.25, -9.0])]
    # |0.5| + |1| + |0| + |0.25| = 1.75; the logits' differences (9) are not matched, as in pix2pixHD.
    loss = feature_matching_loss(real, fake, n_layers=1, num_D=2)
    assert loss.item() == pytest.approx(1.75)


def test_feature_matching_weights_are_1_over_num_D_and_4_over_n_layers_plus_1():
    # num_D 3, n_layers 3: weight 1/3 * 4/4; one activation differs by a mean of 2 (half its entries by 4).
    real = [constant_features([0.0] * 5) for _ in range(3)]
    fake = [constant_features([0.0] * 5) for _ in range(3)]
    fake[2][1] = torch.tensor([4.0, 0.0, -4.0, 0.0]).view(1, 1, 2, 2)
    real[2][1] = torch.zeros(1, 1, 2, 2)
    assert feature_matching_loss(real, fake, n_layers=3, num_D=3).item() == pytest.approx(2 / 3)


def test_feature_matching_trains_the_generator_side_only():
    real = [[torch.randn(1, 2, 4, 4, requires_grad=True) for _ in range(3)]]
    fake = [[torch.randn(1, 2, 4, 4, requires_grad=True) for _ in range(3)]]
    feature_matching_loss(real, fake, n_layers=1, num_D=1).backward()
    assert all(t.grad is None for t in real[0])
    assert all(t.grad is not None for t in fake[0][:-1]) and fake[0][-1].grad is None


def test_feature_matching_on_a_multiscale_discriminator():
    discriminator = MultiscaleDiscriminator(ndf=4, num_D=2, n_layers=3).eval()
    pair = torch.randn(1, 6, 64, 64)
    with torch.no_grad():
        same = feature_matching_loss(discriminator.features(pair), discriminator.features(pair), 3, 2)
        other = feature_matching_loss(discriminator.features(pair), discriminator.features(pair + 0.5), 3, 2)
    assert same.item() == 0 and other.item() > 0


def test_feature_matching_refuses_a_wrong_scale_count():
    features = [constant_features([0.0, 0.0, 0.0])]
    with pytest.raises(ValueError, match="num_D=2"):
        feature_matching_loss(features, features, n_layers=1, num_D=2)


# ----- VGG19 ---------------------------------------------------------------------------------------------------
TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28)  # conv1_1 ... conv5_1 in vgg19().features


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random VGG19 weights laid out as a converted torchvision checkpoint, with the keys the loss never reads."""
    torch.manual_seed(0)
    state = {key: value * 20 for key, value in VGG19Features().state_dict().items()}  # default init is near zero
    state["features.30.weight"] = torch.zeros(512, 512, 3, 3)  # conv5_2: beyond relu5_1
    state["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.safetensors"
    save_file(state, str(path))
    return path


def test_vgg_has_torchvision_key_names():
    expected = {f"features.{i}.{kind}" for i in TORCHVISION_CONV_INDICES for kind in ("weight", "bias")}
    assert set(VGG19Features().state_dict()) == expected


def test_vgg_returns_five_feature_maps_at_halving_sizes(vgg_file):
    vgg = load_vgg19(vgg_file)
    with torch.no_grad():
        features = vgg(torch.randn(1, 3, 32, 48))
    assert [tuple(f.shape) for f in features] == [
        (1, 64, 32, 48),
        (1, 128, 16, 24),
        (1, 256, 8, 12),
        (1, 512, 4, 6),
        (1, 512, 2, 3),
    ]
    assert all((f >= 0).all() for f in features)  # ReLU outputs
    assert not any(p.requires_grad for p in vgg.parameters())


def test_vgg_loss_is_zero_for_identical_images_and_positive_otherwise(vgg_file):
    loss = VGGLoss(vgg_file)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(image, image).item() == 0
    assert loss(image, image.flip(-1)).item() > 0


def test_vgg_loss_matches_the_weighted_sum_over_normalised_features(vgg_file):
    loss, vgg = VGGLoss(vgg_file), load_vgg19(vgg_file)
    fake, real = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        fake_features = vgg(((fake + 1) / 2 - mean) / std)
        real_features = vgg(((real + 1) / 2 - mean) / std)
        expected = sum(
            w * F.l1_loss(f, r) for w, f, r in zip([1 / 32, 1 / 16, 1 / 8, 1 / 4, 1], fake_features, real_features)
        )
        assert loss(fake, real).item() == pytest.approx(expected.item(), rel=1e-5)


def test_vgg_loss_trains_the_fake_side_only_and_takes_grey_images(vgg_file):
    loss = VGGLoss(vgg_file)
    fake = torch.zeros(1, 1, 32, 32, requires_grad=True)
    real = torch.rand(1, 1, 32, 32, requires_grad=True)
    loss(fake, real).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0 and real.grad is None
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        loss(torch.zeros(1, 4, 32, 32), torch.zeros(1, 4, 32, 32))


@pytest.mark.parametrize("missing", [None, ""])
def test_vgg_loss_without_weights_says_which_flag_to_pass(missing):
    with pytest.raises(ValueError, match="--vgg_weights"):
        VGGLoss(missing)


def test_vgg_weights_that_are_absent_pickled_or_not_vgg_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="do not exist"):
        load_vgg19(tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match="safetensors only"):
        load_vgg19(tmp_path / "vgg19.pth")
    save_file({"conv.weight": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="torchvision's key names"):
        load_vgg19(tmp_path / "other.safetensors")


def test_vgg_weights_load_from_a_folder_and_from_a_cached_hub_repo(tmp_path, vgg_file):
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(vgg_file, folder / "model.safetensors")
    expected = load_vgg19(vgg_file).features[0].weight
    assert torch.equal(load_vgg19(folder).features[0].weight, expected)

    # A Hub cache entry made by hand: the repo id resolves offline, through huggingface_hub's own lookup.
    repo = tmp_path / "hub" / "models--some-user--vgg19"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(folder, repo / "snapshots" / revision)
    loss = VGGLoss("some-user/vgg19", cache_dir=tmp_path / "hub", local_files_only=True)
    assert torch.equal(loss.vgg.features[0].weight, expected)
