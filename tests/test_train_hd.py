"""pix2pixHD in the trainer: a local enhancer started from a trained global generator on generated label and
instance maps at a non-square size, with a 3-scale discriminator and feature matching; the global part fixed for
--niter_fix_global epochs; resuming across that switch; the step's HD terms (feature matching, VGG with random
weights from a local file), gradient checkpointing, and the errors a user meets first."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image
from safetensors.torch import save_file
from test_train_support import assert_same_state, run, state_of

from pix2pix_hub import Pix2Pix
from pix2pix_hub.data.checks import BadSampleError
from pix2pix_hub.hub.model_info import ModelInfo
from pix2pix_hub.images.labels import label_palette
from pix2pix_hub.models.hd import LocalEnhancer
from pix2pix_hub.models.multiscale import MultiscaleDiscriminator
from pix2pix_hub.models.vgg import VGG19Features
from pix2pix_hub.training import TrainingConfig, config_from_args, trainer
from pix2pix_hub.training.errors import ConfigError
from pix2pix_hub.training.losses import GANLoss
from pix2pix_hub.training.setup import build_networks, make_adam, make_vgg_loss
from pix2pix_hub.training.step import StepParts, train_step

LABEL_NC = 8
WIDTH, HEIGHT = 128, 64  # 2:1, as pix2pixHD's Cityscapes


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These networks are a few filters wide: a second intra-op thread only adds waiting on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_label_pairs(folder: Path, count: int = 6, bad_value: int | None = None) -> Path:
    """A/ class-index maps (mode L, 16x16 blocks of classes 0..7), B/ photos (one colour per class), I/ 16-bit
    instance ids (32x32 blocks, so some instances hold several classes and some classes several instances)."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (LABEL_NC, 3), dtype=np.uint8)
    for side in "ABI":
        (folder / side).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        labels = np.kron(rng.integers(0, LABEL_NC, (HEIGHT // 16, WIDTH // 16)), np.ones((16, 16), dtype=np.int64))
        instances = np.kron(rng.integers(0, 3, (HEIGHT // 32, WIDTH // 32)), np.ones((32, 32), dtype=np.int64))
        if bad_value is not None and i == 3:
            labels[0, 0] = bad_value
        Image.fromarray(labels.astype(np.uint8), mode="L").save(folder / "A" / f"{i}.png")
        Image.fromarray(colours[np.minimum(labels, LABEL_NC - 1)]).save(folder / "B" / f"{i}.png")
        Image.fromarray((instances * 1000 + labels).astype(np.uint16)).save(folder / "I" / f"{i}.png")
    return folder


def hd_config(data: Path, output: Path, **overrides) -> TrainingConfig:
    """``--netG local --netD multiscale --num_D 3 --label_nc 8 --instance`` on whole 128x64 images
    (``--preprocess scale_width``), 4 training pairs at batch 2: 2 updates per epoch."""
    fields = dict(
        dataset=str(data), netG="local", netD="multiscale", num_D=3, n_layers_D=2, label_nc=LABEL_NC, instance=True,
        preprocess="scale_width", load_size=WIDTH, crop_size=HEIGHT, ngf=4, ndf=4, norm="instance", batch_size=2,
        val_size=2, max_train_steps=3, checkpointing_steps=1, validation_steps=1000, logging_steps=1,
        num_validation_images=2, dataloader_num_workers=0, report_to="none", output_dir=str(output),
    )  # fmt: skip
    return TrainingConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_label_pairs(tmp_path_factory.mktemp("labels"))


@pytest.fixture(scope="module")
def global_model(data, tmp_path_factory) -> Path:
    """pix2pixHD's first stage: a global generator (ngf 8, so the local enhancer's is 4) trained for one step."""
    output = tmp_path_factory.mktemp("global")
    run(hd_config(data, output, netG="global", ngf=8, max_train_steps=1))
    return output


@pytest.fixture(scope="module")
def local_run(data, global_model, tmp_path_factory):
    """The second stage, 3 steps: ``--netG local --init_from GLOBAL --niter_fix_global 1``; each step's losses and
    fixed parameters recorded on the way."""
    output = tmp_path_factory.mktemp("local")
    steps = []
    real_step = trainer.train_step
    with pytest.MonkeyPatch.context() as patch:

        def step(batch, parts, accelerator):
            losses = real_step(batch, parts, accelerator)
            steps.append({"fixed": len(parts.fixed_parameters), "losses": sorted(losses)})
            return losses

        patch.setattr(trainer, "train_step", step)
        result = run(hd_config(data, output, init_from=str(global_model), niter_fix_global=1))
    return result, output, steps


def generator_weights(folder: Path) -> dict[str, torch.Tensor]:
    return {
        name: value.clone()
        for name, value in Pix2Pix.from_pretrained(folder, backend="torch").generator.state_dict().items()
    }


def test_hd_run_on_label_maps_saves_a_loadable_model_that_records_its_input(local_run):
    result, output, steps = local_run
    assert result.global_step == 3
    loaded = Pix2Pix.from_pretrained(output, backend="torch")
    assert type(loaded.generator) is LocalEnhancer and type(loaded.discriminator) is MultiscaleDiscriminator
    assert loaded.discriminator.num_D == 3 and loaded.generator.in_channels == LABEL_NC + 1
    info = ModelInfo.load(output)
    assert (info.label_nc, info.instance, info.resolution) == (LABEL_NC, True, WIDTH)
    with torch.no_grad():  # the whole non-square image, as trained
        assert loaded.generator(torch.zeros(1, LABEL_NC + 1, HEIGHT, WIDTH)).shape == (1, 3, HEIGHT, WIDTH)
    saved = json.loads((output / "checkpoints" / "checkpoint-3" / "training_config.json").read_text())
    assert (saved["gan_mode"], saved["lambda_feat"], saved["label_nc"], saved["instance"]) == ("lsgan", 10.0, 8, True)
    assert all("loss_G_feat" in step["losses"] for step in steps)  # feature matching is on with the multi-scale D


def test_validation_grid_draws_label_maps_in_their_class_colours(local_run):
    _, output, _ = local_run
    grid = np.asarray(Image.open(output / "samples" / "step-000003.png").convert("RGB"))
    assert (output / "samples.png").is_file()
    input_cell = grid[4 : 4 + HEIGHT, 4 : 4 + WIDTH].reshape(-1, 3)  # first row, first column (4 px padding)
    palette = {tuple(colour) for colour in label_palette(LABEL_NC)}
    colours = {tuple(colour) for colour in np.unique(input_cell, axis=0)}
    assert colours <= palette and len(colours) > 2  # classes in colour, not channel 0 as grey


def test_niter_fix_global_keeps_the_loaded_global_generator_then_trains_it(local_run, global_model):
    _, output, steps = local_run
    assert [step["fixed"] > 0 for step in steps] == [True, True, False]  # epoch 0 (2 updates) fixed, then all
    trained_global = generator_weights(global_model)
    checkpoints = output / "checkpoints"
    after_fixed, after_all = generator_weights(checkpoints / "checkpoint-2"), generator_weights(output)
    first = generator_weights(checkpoints / "checkpoint-1")
    body = [name for name in after_fixed if name.startswith("global_body.")]
    assert body and all(torch.equal(after_fixed[name], trained_global[name.removeprefix("global_")]) for name in body)
    local = [name for name in after_fixed if not name.startswith("global_body.")]
    assert any(not torch.equal(after_fixed[name], first[name]) for name in local)  # the local branch learned
    assert any(not torch.equal(after_all[name], after_fixed[name]) for name in body)  # then the global part too


@pytest.mark.parametrize("stop", [1, 2], ids=["in-the-fixed-phase", "after-the-switch"])
def test_resume_in_either_phase_ends_as_the_uninterrupted_run(data, global_model, local_run, tmp_path, stop):
    straight, _, _ = local_run
    config = hd_config(data, tmp_path, init_from=str(global_model), niter_fix_global=1, checkpointing_steps=100)
    run(TrainingConfig(**{**config.__dict__, "max_train_steps": stop}))
    resumed = run(TrainingConfig(**{**config.__dict__, "resume_from_checkpoint": "latest"}))
    assert resumed.global_step == 3
    assert_same_state(state_of(straight), state_of(resumed))


def test_bad_label_values_are_named_by_file_before_training(tmp_path):
    data = make_label_pairs(tmp_path / "bad", bad_value=9)
    with pytest.raises(BadSampleError, match=r"label map \S*A/3\.png: label value 9 outside 0\.\.7 \(label_nc=8\)"):
        run(hd_config(data, tmp_path / "out"))
    assert not (tmp_path / "out" / "checkpoints").exists() and not (tmp_path / "out" / "samples").exists()


def test_lambda_vgg_without_weights_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^--lambda_vgg 10 needs --vgg_weights [^\n]*--lambda_vgg 0\.$"):
        config_from_args(["--lambda_vgg", "10"])


# ----- the step ------------------------------------------------------------------------------------------------
def step_parts(config: TrainingConfig, **extra) -> tuple[StepParts, Accelerator]:
    torch.manual_seed(0)
    generator, discriminator = build_networks(config)
    accelerator = Accelerator(cpu=True)
    optimizers = [make_adam(network.parameters(), config, accelerator.device) for network in (generator, discriminator)]
    parts = StepParts(generator, discriminator, *optimizers, GANLoss(config.gan_mode), 100.0, 10.0, **extra)
    return parts, accelerator


def label_batch(seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, LABEL_NC, (2, HEIGHT, WIDTH), generator=generator)
    one_hot = torch.nn.functional.one_hot(classes, LABEL_NC).permute(0, 3, 1, 2).float()
    edges = (torch.rand(2, 1, HEIGHT, WIDTH, generator=generator) > 0.9).float()
    return {"input": torch.cat([one_hot, edges], 1), "target": torch.rand(2, 3, HEIGHT, WIDTH, generator=generator)}


def test_feature_matching_adds_to_the_generator_loss_only(tmp_path):
    config = hd_config(tmp_path, tmp_path)
    (on, accelerator), (off, _) = step_parts(config, lambda_feat=10.0), step_parts(config, lambda_feat=0.0)
    torch.manual_seed(2)
    with_fm = train_step(label_batch(), on, accelerator)
    torch.manual_seed(2)
    without = train_step(label_batch(), off, accelerator)
    assert with_fm["loss_G_feat"] > 0 and "loss_G_feat" not in without
    # Same D step and the same GAN term (the features' last entries are the logits); G then learns differently.
    for name in ("loss_D_real", "loss_D_fake", "loss_G_GAN", "loss_G_L1"):
        assert torch.equal(with_fm[name], without[name]), name
    assert_same_state(on.discriminator.state_dict(), off.discriminator.state_dict())
    changed = [
        name
        for name, value in on.generator.state_dict().items()
        if not torch.equal(value, off.generator.state_dict()[name])
    ]
    assert changed


def test_vgg_loss_joins_the_generator_loss_from_a_local_weights_file(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "vgg19.safetensors"
    save_file({key: value * 20 for key, value in VGG19Features().state_dict().items()}, str(weights))
    config = hd_config(tmp_path, tmp_path, netG="global", lambda_vgg=10.0, vgg_weights=str(weights))
    vgg_loss = make_vgg_loss(config, torch.device("cpu"))
    parts, accelerator = step_parts(config, vgg_loss=vgg_loss, lambda_vgg=10.0)
    losses = train_step(label_batch(), parts, accelerator)
    assert losses["loss_G_VGG"] > 0
    assert not any(p.requires_grad for p in vgg_loss.parameters())  # frozen: only G learns from it
    with pytest.raises(ConfigError, match="--vgg_weights .*nowhere.safetensors"):
        make_vgg_loss(TrainingConfig(lambda_vgg=1.0, vgg_weights=str(tmp_path / "nowhere.safetensors")), "cpu")


@pytest.mark.parametrize("gan_mode", ["lsgan", "wgangp"])
def test_gradient_checkpointing_gives_the_same_step(tmp_path, gan_mode):
    """Dropout on (the replay draws the same masks); ndf 16 puts a Winograd conv in D (its 64-channel stride-1
    conv), which the gradient penalty's double backward must not replay."""
    results = []
    for checkpointing in (False, True):
        config = hd_config(tmp_path, tmp_path, gradient_checkpointing=checkpointing, gan_mode=gan_mode, ndf=16)
        parts, accelerator = step_parts(config, lambda_feat=10.0)
        assert parts.generator.gradient_checkpointing is checkpointing
        torch.manual_seed(3)
        losses = [train_step(label_batch(seed), parts, accelerator) for seed in (1, 2)]
        results.append((losses, {**parts.generator.state_dict(), **parts.discriminator.state_dict()}))
    (plain_losses, plain_state), (losses, state) = results
    for expected, got in zip(plain_losses, losses, strict=True):
        for name, value in expected.items():
            torch.testing.assert_close(got[name], value, rtol=1e-5, atol=1e-6, msg=name)
    for name, value in plain_state.items():
        torch.testing.assert_close(state[name], value, rtol=1e-5, atol=1e-6, msg=name)
