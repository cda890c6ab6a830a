"""What a run leaves: the model folder, card, grids, logs, the Hub upload; GAN modes, accumulation, precision."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub.utils import filter_repo_objects
from test_train_support import make_aligned_pairs, reset_accelerate, run, tiny_config

from pix2pix_hub import Pix2Pix
from pix2pix_hub.training import TrainingConfig
from pix2pix_hub.training.losses import GANLoss
from pix2pix_hub.training.setup import build_networks, make_accelerator, make_adam
from pix2pix_hub.training.step import StepParts, train_step


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_aligned_pairs(tmp_path_factory.mktemp("pairs") / "train", count=10)


class FakeHfApi:
    """Stands in for ``HfApi``: an upload is a copy into ``uploads[repo_id]``."""

    uploads: dict = {}

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=None, exist_ok=False, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, allow_patterns=None, **kwargs):
        """As the Hub: the folder's files matching ``allow_patterns`` (all when None) go up."""
        files = [p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*") if p.is_file()]
        for name in filter_repo_objects(files, allow_patterns=allow_patterns):
            (self.uploads[repo_id] / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder_path) / name, self.uploads[repo_id] / name)
        return type("CommitInfo", (), {"commit_url": f"https://hub.local/{repo_id}/commit/1"})()


def test_run_saves_a_loadable_model_with_card_grid_and_logs(data, tmp_path, monkeypatch):
    monkeypatch.setattr("pix2pix_hub.inference.pipeline.HfApi", FakeHfApi)
    FakeHfApi.uploads = {"me/tiny": tmp_path / "pushed"}
    config = tiny_config(
        data, tmp_path / "out", max_train_steps=3, validation_steps=2, report_to="tensorboard", push_to_hub=True,
        hub_model_id="me/tiny", direction="BtoA",
    )  # fmt: skip
    result = run(config)
    out = tmp_path / "out"
    for name in ("config.json", "model.safetensors", "discriminator/model.safetensors", "README.md", "samples.png"):
        assert (out / name).is_file(), name
    assert (out / "samples" / "step-000002.png").is_file()  # the mid-run validation grid
    assert list((out / "logs").rglob("events.out.tfevents.*"))
    assert not list(out.glob(".model-*")) and not list(out.glob(".tmp*"))
    assert (out / "checkpoints" / "checkpoint-3").is_dir()  # kept next to the model, not wiped by the save

    card = (out / "README.md").read_text()
    assert "me/tiny" in card and "`resnet_6blocks`" in card and "| lambda_l1 | `100.0` |" in card
    assert "| psnr |" in card and "![samples](samples.png)" in card and "direction `BtoA`" in card
    assert set(result.metrics) == {"l1", "psnr", "ssim"} and 0 < result.metrics["l1"] < 1

    # the grid: 2 validation pairs, input | output | target, 32 px cells with 4 px padding
    from PIL import Image

    assert Image.open(out / "samples.png").size == (3 * 36 + 4, 2 * 36 + 4)

    loaded = Pix2Pix.from_pretrained(out)
    pushed = Pix2Pix.from_pretrained(tmp_path / "pushed")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    expected = result.pix2pix.translate_tensor(x)
    torch.testing.assert_close(loaded.translate_tensor(x), expected)
    torch.testing.assert_close(pushed.translate_tensor(x), expected)
    assert (tmp_path / "pushed" / "README.md").read_text() == card
    assert not (tmp_path / "pushed" / "checkpoints").exists()  # only the model folder is uploaded
    assert (tmp_path / "pushed" / "pix2pix.json").read_text() == (out / "pix2pix.json").read_text()


def test_trained_folder_records_what_the_model_does(data, tmp_path):
    import json
    import os

    result = run(tiny_config(data, tmp_path / "out", max_train_steps=1, direction="BtoA"))
    path = tmp_path / "out" / "pix2pix.json"
    assert result.pix2pix.direction == "BtoA" and Pix2Pix.from_pretrained(tmp_path / "out").info == result.pix2pix.info
    info = json.loads(path.read_text())
    # the dataset by name (a split folder is named by its parent), never the local path it was read from
    assert info["direction"] == "BtoA" and info["resolution"] == 32
    assert info["dataset"] == data.parent.name and info["dataset_on_hub"] is False
    assert str(data.parent) not in path.read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a normal write's permissions


@pytest.mark.parametrize("gan_mode", ["vanilla", "lsgan", "wgangp", "hinge"])
def test_train_step_updates_both_networks_in_every_gan_mode(gan_mode):
    reset_accelerate()
    torch.manual_seed(0)
    config = TrainingConfig(netG="resnet_6blocks", ngf=4, ndf=4, gan_mode=gan_mode, report_to="none")
    accelerator = make_accelerator(config)
    generator, discriminator = build_networks(config)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=1e-2)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    generator, discriminator, optimizer_g, optimizer_d = accelerator.prepare(
        generator, discriminator, optimizer_g, optimizer_d
    )
    parts = StepParts(generator, discriminator, optimizer_g, optimizer_d, GANLoss(gan_mode), 100.0, 10.0)
    before_g = [p.detach().clone() for p in generator.parameters()]
    before_d = [p.detach().clone() for p in discriminator.parameters()]
    batch = {"input": torch.rand(2, 3, 32, 32) * 2 - 1, "target": torch.rand(2, 3, 32, 32) * 2 - 1}
    losses = train_step(batch, parts, accelerator)
    reset_accelerate()
    expected = {"loss_G_GAN", "loss_G_L1", "loss_D_real", "loss_D_fake"} | (
        {"loss_D_gp"} if gan_mode == "wgangp" else set()
    )
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    # every conv weight moves (a bias can get a zero gradient: the WGAN loss cancels D's last bias exactly)
    assert all(not torch.equal(a, b) for a, b in zip(before_g, generator.parameters()) if a.ndim > 1)
    assert all(not torch.equal(a, b) for a, b in zip(before_d, discriminator.parameters()) if a.ndim > 1)
    assert all(p.requires_grad for p in discriminator.parameters())  # unfrozen again for the next D step


def test_gradient_accumulation_counts_updates_not_batches(data, tmp_path):
    result = run(tiny_config(data, tmp_path, max_train_steps=2, gradient_accumulation_steps=2, batch_size=1))
    assert result.global_step == 2
    state = (tmp_path / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text()
    assert '"updates_per_epoch": 4' in state  # 8 training pairs, batch 1, 2 batches per update


def test_launcher_mixed_precision_is_not_overridden(monkeypatch):
    reset_accelerate()
    assert make_accelerator(TrainingConfig(report_to="none")).mixed_precision == "no"  # CPU default: fp32
    reset_accelerate()
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch --mixed_precision bf16` sets
    assert make_accelerator(TrainingConfig(report_to="none")).mixed_precision == "bf16"
    reset_accelerate()
    assert make_accelerator(TrainingConfig(report_to="none", mixed_precision="no")).mixed_precision == "no"
    reset_accelerate()


def test_missing_tracker_package_is_named(data, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ImportError, match="--report_to wandb needs the wandb package: pip install wandb"):
        run(tiny_config(data, tmp_path, report_to="wandb"))


def test_fused_adam_matches_the_reference_adam():
    import copy

    from pix2pix_hub import PatchDiscriminator

    torch.manual_seed(0)
    fused_model = PatchDiscriminator(ndf=8)
    plain_model = copy.deepcopy(fused_model)
    initial = copy.deepcopy(fused_model)
    config = TrainingConfig()
    fused = make_adam(fused_model.parameters(), config, torch.device("cpu"))
    plain = torch.optim.Adam(plain_model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2), foreach=False)
    assert fused.defaults["fused"] and fused.defaults["betas"] == (0.5, 0.999) and fused.defaults["lr"] == 2e-4
    for _ in range(5):
        for a, b in zip(fused_model.parameters(), plain_model.parameters()):
            a.grad = torch.randn_like(a)
            b.grad = a.grad.clone()
        fused.step()
        plain.step()
    for a, b in zip(fused_model.parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert not torch.equal(next(fused_model.parameters()), next(initial.parameters()))  # it did move


def test_bad_pairs_fail_fast_or_are_skipped_and_counted(tmp_path):
    from pix2pix_hub.data import BadSampleError

    data = make_aligned_pairs(tmp_path / "pairs", count=10)
    (data / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    with pytest.raises(BadSampleError, match=r"3\.png"):
        run(tiny_config(data, tmp_path / "strict", max_train_steps=1))
    assert not (tmp_path / "strict" / "checkpoints").exists()
    # batch size 1 over a whole epoch (row 3 is a training pair with seed 0): its batch is empty and is stood in
    # for, not a crash or a stall
    result = run(tiny_config(data, tmp_path / "skip", skip_bad_samples=True, batch_size=1, max_train_steps=8))
    assert result.global_step == 8 and result.skipped_samples >= 1
