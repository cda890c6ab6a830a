"""GauGAN/SPADE in the trainer: ``--preset spade`` (what it sets, flags given explicitly winning), a 3-step run of
the whole recipe with ``--use_vae --instance`` on generated label and instance maps at a non-square size, the KL
term and the reparameterised code, exact resume of the new state (style encoder, both TTUR optimizers), the
don't-care class, and the one-line errors for contradictory flags."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from PIL import Image
from safetensors.torch import load_file
from test_train_support import assert_same_state, run, state_of

from pix2pix_hub import Pix2Pix
from pix2pix_hub.data import PairedTransform
from pix2pix_hub.hub.model_info import ModelInfo
from pix2pix_hub.images.labels import LabelMapError, check_label_channels, encode_label_map, input_channels
from pix2pix_hub.inference import pipeline
from pix2pix_hub.models.registry import build_generator
from pix2pix_hub.training import TrainingConfig, config_from_args, trainer
from pix2pix_hub.training import checkpoint as ckpt
from pix2pix_hub.training.arguments import preset_config
from pix2pix_hub.training.errors import ConfigError
from pix2pix_hub.training.losses import GANLoss, kl_divergence, reparameterize
from pix2pix_hub.training.presets import generator_options, preset_summary
from pix2pix_hub.training.step import StepParts, train_step

LABEL_NC = 5
WIDTH, HEIGHT = 192, 96  # 2:1; sides divisible by 32 (SPADE's 5 upsamplings), 95px for 2 scales of 4 layers


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These networks are a few filters wide: a second intra-op thread only adds waiting on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_label_pairs(folder: Path, count: int = 6, dontcare: bool = False) -> Path:
    """A/ class-index maps (mode L, 8x8 blocks of classes 0..4, with ``dontcare`` some blocks 5 or 255), B/ photos
    (one colour per class plus noise), I/ 16-bit instance ids (16x16 blocks)."""
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (LABEL_NC + 1, 3), dtype=np.uint8)
    for side in "ABI":
        (folder / side).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        labels = np.kron(rng.integers(0, LABEL_NC, (HEIGHT // 8, WIDTH // 8)), np.ones((8, 8), dtype=np.int64))
        if dontcare:
            labels[:8, :8], labels[-8:, -8:] = LABEL_NC, 255
        instances = np.kron(rng.integers(0, 3, (HEIGHT // 16, WIDTH // 16)), np.ones((16, 16), dtype=np.int64))
        photo = colours[np.minimum(labels, LABEL_NC)].astype(np.int64) + rng.integers(-20, 20, (HEIGHT, WIDTH, 3))
        Image.fromarray(labels.astype(np.uint8), mode="L").save(folder / "A" / f"{i}.png")
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(folder / "B" / f"{i}.png")
        Image.fromarray((instances * 1000 + labels).astype(np.uint16)).save(folder / "I" / f"{i}.png")
    return folder


def spade_config(data: Path, output: Path, **overrides):
    """``--preset spade --use_vae --label_nc 5 --instance`` on whole 192x96 images (``--preprocess scale_width``),
    4 training pairs at batch 2, a few filters wide."""
    values = dict(
        dataset=str(data), label_nc=LABEL_NC, instance=True, use_vae=True, z_dim=8, preprocess="scale_width",
        load_size=WIDTH, crop_size=HEIGHT, ngf=2, ndf=4, batch_size=2, val_size=2, max_train_steps=3,
        checkpointing_steps=100, validation_steps=1000, logging_steps=1, num_validation_images=2,
        dataloader_num_workers=0, report_to="none", output_dir=str(output),
    )  # fmt: skip
    return preset_config("spade", **{**values, **overrides})


@pytest.fixture
def no_onnx_export(monkeypatch):
    """The model folders of these runs ship no model.onnx (the preset run's does): the state, not the export,
    is under test, and each export costs seconds."""
    monkeypatch.setattr(pipeline, "onnxruntime_available", lambda: False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_label_pairs(tmp_path_factory.mktemp("labels"))


@pytest.fixture(scope="module")
def preset_run(data, tmp_path_factory):
    """The whole preset for 3 steps, recording each step's losses."""
    losses = []
    real_step = trainer.train_step

    def step(batch, parts, accelerator):
        values = real_step(batch, parts, accelerator)
        losses.append({name: float(value) for name, value in values.items()})
        return values

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "train_step", step)
        result = run(spade_config(data, tmp_path_factory.mktemp("spade") / "run"))
    return result, losses


# ----- the preset --------------------------------------------------------------------------------------------------
def test_preset_sets_the_papers_recipe_and_given_flags_win(tmp_path):
    config = config_from_args(["--preset", "spade", "--dataset", str(tmp_path)])
    assert (config.netG, config.netD, config.norm_D, config.n_layers_D) == (
        "spade",
        "multiscale",
        "spectralinstance",
        4,
    )
    assert (config.gan_mode, config.lambda_feat, config.lambda_l1, config.lambda_vgg) == ("hinge", 10.0, 0.0, 0.0)
    assert (config.beta1, config.beta2, config.learning_rates) == (0.0, 0.9, (1e-4, 4e-4))
    assert config.spectral_norm_G and not config.use_vae
    line = preset_summary(config)
    assert "--preset spade set --netG spade" in line and "--norm_D spectralinstance" in line
    assert "G 0.0001, D 0.0004" in line and "needs --vgg_weights" in line and "given instead" not in line

    argv = ["--preset", "spade", "--dataset", str(tmp_path), "--beta1", "0.5", "--no_TTUR", "--gan_mode", "lsgan"]
    given = config_from_args([*argv, "--vgg_weights", "vgg.safetensors", "--no_spectral_norm_G", "--use_vae"])
    assert (given.beta1, given.beta2, given.gan_mode, given.learning_rates) == (0.5, 0.9, "lsgan", (2e-4, 2e-4))
    assert given.lambda_vgg == 10.0 and given.use_vae and given.lambda_kl == 0.05
    built = build_generator("spade", in_channels=3, ngf=1, **generator_options(given))
    assert not any("parametrizations" in name for name, _ in built.named_parameters())  # --no_spectral_norm_G
    assert "given instead: --gan_mode lsgan, --beta1 0.5" in preset_summary(given)
    # From Python, the same config as from the command line.
    python = preset_config("spade", dataset=str(tmp_path), beta1=0.5, no_TTUR=True, gan_mode="lsgan")
    assert asdict(python) == asdict(config_from_args(argv))


@pytest.mark.parametrize(
    "argv, named",
    [
        (["--netG", "unet_256", "--use_vae"], "--use_vae"),
        (["--netG", "resnet_6blocks", "--crop_size", "64", "--num_upsampling_layers", "more"], "--num_upsampling"),
        (["--TTUR", "--no_TTUR"], "--no_TTUR"),
        (["--contain_dontcare_label"], "--label_nc"),
        (["--preset", "spade", "--use_vae", "--output_nc", "1"], "--output_nc"),
        (["--preset", "spade", "--z_dim", "0"], "--z_dim"),
        (["--preset", "spade", "--num_upsampling_layers", "more", "--crop_size", "224"], "divisible by 64"),
    ],
)
def test_contradictions_are_one_line_errors_naming_the_flag(argv, named):
    with pytest.raises(ConfigError) as error:
        config_from_args(["--dataset", "x", *argv])
    assert named in str(error.value) and "\n" not in str(error.value)


# ----- a run of the whole preset -----------------------------------------------------------------------------------
def test_preset_run_with_style_encoder_and_instances_saves_a_loadable_model(preset_run):
    result, losses = preset_run
    assert result.global_step == 3 and len(losses) == 3
    assert all({"loss_G_KL", "loss_G_feat", "loss_G_GAN", "loss_D_real"} <= set(step) for step in losses)
    assert all(math.isfinite(value) for step in losses for value in step.values())
    pix2pix = Pix2Pix.from_pretrained(result.output_dir, backend="torch")
    generator = pix2pix.generator
    assert type(generator).__name__ == "SPADEGenerator" and generator.use_vae and generator.encoder is not None
    assert generator.in_channels == input_channels(0, LABEL_NC, instance=True)
    assert json.loads((result.output_dir / "config.json").read_text())["use_vae"] is True
    assert ModelInfo.load(result.output_dir).to_dict()["label_nc"] == LABEL_NC
    assert (result.output_dir / "model.onnx").is_file() == pipeline.onnxruntime_available()
    assert_same_state(
        state_of(result), {**state_of(result), **{f"G.{k}": v for k, v in generator.state_dict().items()}}
    )
    # the two TTUR learning rates and SPADE's betas, as the checkpoint's optimizers hold them
    folder = ckpt.list_checkpoints(result.output_dir)[-1]
    groups = [json.loads(_metadata(folder / name)["param_groups"])[0] for name in ckpt.OPTIMIZER_FILES]
    assert [group["lr"] for group in groups] == [1e-4, 4e-4] and all(group["betas"] == [0.0, 0.9] for group in groups)
    # a style image's code picks the output; the same code the same output
    labels = torch.zeros(1, generator.in_channels, HEIGHT, WIDTH)
    labels[:, 0] = 1
    with torch.no_grad():
        mu, _ = generator.encode(torch.rand(1, 3, HEIGHT, WIDTH) * 2 - 1)
        assert torch.equal(generator(labels, mu), generator(labels, mu))
        assert generator(labels, mu).shape == (1, 3, HEIGHT, WIDTH)


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return handle.metadata()


# ----- the KL term and the reparameterised code --------------------------------------------------------------------
def test_kl_term_against_the_hand_formula():
    mu = torch.tensor([[1.0, 0.0], [0.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
    # KL(N(mu, s^2) || N(0, 1)) = 0.5 * (mu^2 + s^2 - 1 - log s^2) per dimension, summed, then the batch's mean
    first = 0.5 * ((1 + 1 - 1 - 0) + (0 + 4 - 1 - math.log(4.0)))
    second = 0.5 * ((0 + 1 - 1 - 0) + (4 + 1 - 1 - 0))
    assert kl_divergence(mu, logvar).item() == pytest.approx((first + second) / 2, rel=1e-6)
    assert kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0


def test_reparameterised_code_is_seeded_and_carries_gradients():
    mu = torch.tensor([[3.0, -1.0]]).repeat(20000, 1).requires_grad_()
    logvar = torch.tensor([[math.log(0.25), 0.0]]).repeat(20000, 1).requires_grad_()
    torch.manual_seed(5)
    z = reparameterize(mu, logvar)
    torch.manual_seed(5)
    assert torch.equal(z, reparameterize(mu, logvar))
    assert z.mean(0).tolist() == pytest.approx([3.0, -1.0], abs=0.03)
    assert z.std(0).tolist() == pytest.approx([0.5, 1.0], abs=0.03)
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None and logvar.grad.abs().sum() > 0


def spade_parts(seed: int) -> tuple[StepParts, Accelerator]:
    """A tiny SPADE generator with its style encoder and a multi-scale D, TTUR optimizers, seeded."""
    torch.manual_seed(seed)
    from pix2pix_hub.models.registry import build_discriminator

    generator = build_generator("spade", in_channels=LABEL_NC, ngf=2, use_vae=True, z_dim=8)
    discriminator = build_discriminator("multiscale", in_channels=LABEL_NC + 3, ndf=4, n_layers=2, num_D=2)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.0, 0.9))
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=4e-4, betas=(0.0, 0.9))
    parts = StepParts(generator, discriminator, optimizer_g, optimizer_d, GANLoss("hinge"), 0.0, 10.0, lambda_kl=0.05)
    return parts, Accelerator(cpu=True)


def label_batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    classes = torch.randint(0, LABEL_NC, (2, HEIGHT // 8, WIDTH // 8), generator=generator)
    labels = torch.nn.functional.one_hot(classes, LABEL_NC).permute(0, 3, 1, 2).float()
    labels = torch.nn.functional.interpolate(labels, size=(HEIGHT, WIDTH), mode="nearest")
    return {"input": labels, "target": torch.rand(2, 3, HEIGHT, WIDTH, generator=generator) * 2 - 1}


def test_step_adds_the_kl_of_the_encoded_target_and_is_reproducible():
    batch = label_batch()
    parts, accelerator = spade_parts(seed=0)
    with torch.no_grad():
        expected_kl = kl_divergence(*parts.generator.encode(batch["target"]))
    encoder_before = {k: v.clone() for k, v in parts.generator.encoder.state_dict().items()}
    torch.manual_seed(3)
    losses = train_step(batch, parts, accelerator)
    assert losses["loss_G_KL"].item() == pytest.approx(expected_kl.item(), rel=1e-5)
    # the encoder learns through G's loss (the reparameterised code) and the KL term
    assert any(not torch.equal(v, encoder_before[k]) for k, v in parts.generator.encoder.state_dict().items())
    again, accelerator = spade_parts(seed=0)
    torch.manual_seed(3)
    same = train_step(batch, again, accelerator)
    assert {k: v.item() for k, v in same.items()} == {k: v.item() for k, v in losses.items()}
    assert_same_state(
        {k: v for k, v in parts.generator.state_dict().items()}, {k: v for k, v in again.generator.state_dict().items()}
    )


# ----- resume ------------------------------------------------------------------------------------------------------
def test_resume_restores_the_encoder_and_both_ttur_optimizers_exactly(data, tmp_path, no_onnx_export):
    small = {"load_size": WIDTH // 3, "crop_size": HEIGHT // 3, "n_layers_D": 2}  # 64x32: the state, not the size
    straight = run(spade_config(data, tmp_path / "straight", max_train_steps=4, **small))
    run(spade_config(data, tmp_path / "resumed", max_train_steps=2, **small))
    resumed = run(spade_config(data, tmp_path / "resumed", max_train_steps=4, resume_from_checkpoint="latest", **small))
    assert resumed.global_step == 4
    state = state_of(resumed)
    assert any(name.startswith("G.encoder.") for name in state)
    assert_same_state(state_of(straight), state)
    for name in ckpt.OPTIMIZER_FILES:  # Adam's moments and steps, and each optimizer's own learning rate
        first = tmp_path / "straight" / "checkpoints" / "checkpoint-4" / name
        second = tmp_path / "resumed" / "checkpoints" / "checkpoint-4" / name
        assert_same_state(load_file(str(first)), load_file(str(second)))
        assert _metadata(first)["param_groups"] == _metadata(second)["param_groups"]


# ----- the don't-care label ----------------------------------------------------------------------------------------
def test_dontcare_class_gets_its_own_channel_from_index_label_nc_and_255():
    labels = np.array([[0, 1, LABEL_NC], [255, 2, 4]])
    encoded = encode_label_map(labels, LABEL_NC, instance=True, dontcare=True)
    assert encoded.shape == (LABEL_NC + 2, 2, 3) == (input_channels(0, LABEL_NC, True, True), 2, 3)
    assert encoded[LABEL_NC].tolist() == [[0, 0, 1], [1, 0, 0]]
    assert encoded[: LABEL_NC + 1].sum(0).tolist() == [[1, 1, 1], [1, 1, 1]]
    with pytest.raises(LabelMapError, match="don't care"):
        encode_label_map(np.array([[LABEL_NC + 1]]), LABEL_NC, dontcare=True)
    with pytest.raises(LabelMapError, match=f"outside 0..{LABEL_NC - 1}"):
        encode_label_map(labels, LABEL_NC)  # without the flag, the extra class is refused
    check_label_channels(LABEL_NC + 2, LABEL_NC, True, dontcare=True)
    with pytest.raises(ValueError, match="don't-care"):
        check_label_channels(LABEL_NC + 1, LABEL_NC, True, dontcare=True)


def test_dontcare_run_records_the_class_and_names_a_bad_file(tmp_path, no_onnx_export):
    data = make_label_pairs(tmp_path / "dontcare", count=4, dontcare=True)
    transform = PairedTransform(preprocess="none", label_nc=LABEL_NC, dontcare=True, instance=True)
    assert transform.input_channels == LABEL_NC + 2
    result = run(
        spade_config(
            data, tmp_path / "run", contain_dontcare_label=True, use_vae=False, instance=False, max_train_steps=1,
            val_size=1, load_size=WIDTH // 3, crop_size=HEIGHT // 3, n_layers_D=2,
        )
    )  # fmt: skip
    assert result.pix2pix.generator.in_channels == LABEL_NC + 1
    assert ModelInfo.load(tmp_path / "run").contain_dontcare_label is True
    bad = np.asarray(Image.open(data / "A" / "2.png")).copy()
    bad[0, 0] = LABEL_NC + 3
    Image.fromarray(bad, mode="L").save(data / "A" / "2.png")
    with pytest.raises(Exception, match=r"2\.png") as error:
        run(
            spade_config(
                data, tmp_path / "bad", contain_dontcare_label=True, use_vae=False, instance=False, n_layers_D=2
            )
        )
    assert f"{LABEL_NC + 3}" in str(error.value)


def test_init_from_a_spade_model_adopts_its_style_encoder_and_options(data, preset_run, tmp_path, no_onnx_export):
    result, _ = preset_run
    config = TrainingConfig(
        dataset=str(data), init_from=str(result.output_dir), preprocess="scale_width", load_size=WIDTH,
        crop_size=HEIGHT, batch_size=2, val_size=2, max_train_steps=1, dataloader_num_workers=0, report_to="none",
        output_dir=str(tmp_path / "tuned"),
    )  # fmt: skip
    tuned = run(config)
    saved = ckpt.read_json(ckpt.list_checkpoints(tmp_path / "tuned")[-1] / ckpt.CONFIG_FILE)
    assert (saved["netG"], saved["use_vae"], saved["z_dim"], saved["spectral_norm_G"]) == ("spade", True, 8, True)
    assert (saved["norm_D"], saved["label_nc"], saved["instance"]) == ("spectralinstance", LABEL_NC, True)
    assert tuned.pix2pix.generator.encoder is not None
