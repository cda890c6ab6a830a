"""--init_from: fine-tuning starts from a model's weights with the architecture of its config.json."""

from __future__ import annotations

import json

import pytest
import torch
from test_train_support import make_aligned_pairs, run, tiny_config

from pix2pix_hub import PatchDiscriminator, Pix2Pix, UNetGenerator
from pix2pix_hub.hub.model_info import ModelInfo
from pix2pix_hub.training import TrainingConfig, config_from_args
from pix2pix_hub.training.base_model import adopt_architecture, base_model_name, load_base_model
from pix2pix_hub.training.errors import ConfigError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_aligned_pairs(tmp_path_factory.mktemp("pairs") / "train", count=10)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A unet_128 (ngf 4) with the authors' dropout placement (a field no flag sets) and an n_layers 2 D."""
    torch.manual_seed(3)
    generator = UNetGenerator(num_downs=7, ngf=4, norm="instance", dropout_offset=1)
    discriminator = PatchDiscriminator(in_channels=6, ndf=4, n_layers=2, norm="instance")
    folder = tmp_path_factory.mktemp("base") / "facades-base"
    Pix2Pix(generator, discriminator, info=ModelInfo(direction="BtoA")).save_pretrained(folder)
    return folder


def finetune_config(data, output, base, **overrides) -> TrainingConfig:
    # tiny_config names resnet_6blocks with 4 filters; --init_from must override every architecture flag left at
    # its default, so start from the defaults here and set only what is not architecture.
    fields = {"load_size": 143, "crop_size": 128, "batch_size": 1, "max_train_steps": 2, "init_from": str(base)}
    config = tiny_config(data, output, **{**fields, **overrides})
    defaults = TrainingConfig()
    keep = {"netG", "netD", "ngf", "ndf", "norm", "n_layers_D"} - set(overrides)
    return TrainingConfig(**{**config.__dict__, **{name: getattr(defaults, name) for name in keep}})


def test_architecture_comes_from_the_model_and_conflicts_name_both_values(base):
    pix2pix = load_base_model(str(base))
    adopted = adopt_architecture(TrainingConfig(init_from=str(base)), pix2pix)
    assert (adopted.netG, adopted.ngf, adopted.norm, adopted.netD, adopted.ndf, adopted.n_layers_D) == (
        "unet_128", 4, "instance", "n_layers", 4, 2,
    )  # fmt: skip
    assert adopt_architecture(TrainingConfig(init_from=str(base), ngf=4), pix2pix) == adopted  # agreeing flags
    with pytest.raises(ConfigError, match=r"--ngf 32 \(the model has 4\); --norm none \(the model has instance\)"):
        adopt_architecture(TrainingConfig(init_from=str(base), ngf=32, norm="none"), pix2pix)
    assert pix2pix.generator.training and pix2pix.discriminator.training  # ready to train


def test_finetuning_starts_from_the_weights_and_keeps_config_fields(data, base, tmp_path):
    # lr 1e-12: Adam moves each weight by ~lr per step, so the result is the base to float precision; a fresh
    # initialisation would be far from it.
    result = run(finetune_config(data, tmp_path / "out", base, lr=1e-12))
    assert result.global_step == 2
    start = Pix2Pix.from_pretrained(base, backend="torch")
    pairs = ((result.pix2pix.generator, start.generator), (result.pix2pix.discriminator, start.discriminator))
    for trained, original in pairs:
        for name, value in original.state_dict().items():
            if value.is_floating_point():
                torch.testing.assert_close(trained.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)
    assert result.pix2pix.generator.config["dropout_offset"] == 1  # built from the model, not from the preset
    saved = json.loads((tmp_path / "out" / "config.json").read_text())
    assert saved["dropout_offset"] == 1 and saved["num_downs"] == 7
    # provenance: pix2pix.json and the card's training arguments
    assert ModelInfo.load(tmp_path / "out").base_model == "facades-base"  # a folder by its name, never its path
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| init_from |" in card and "| netG | `unet_128` |" in card
    checkpoint = json.loads((tmp_path / "out" / "checkpoints" / "checkpoint-2" / "training_config.json").read_text())
    assert (checkpoint["netG"], checkpoint["ngf"], checkpoint["init_from"]) == ("unet_128", 4, str(base))


def test_resuming_a_finetuned_run_continues_it(data, base, tmp_path):
    straight = run(finetune_config(data, tmp_path / "straight", base, max_train_steps=4, checkpointing_steps=100))
    run(finetune_config(data, tmp_path / "resumed", base, max_train_steps=2, checkpointing_steps=100))
    resumed = run(finetune_config(data, tmp_path / "resumed", base, max_train_steps=4, resume_from_checkpoint="latest"))
    for name, value in straight.pix2pix.generator.state_dict().items():
        assert torch.equal(resumed.pix2pix.generator.state_dict()[name], value), name


def test_a_model_without_discriminator_gets_a_new_one(data, tmp_path):
    folder = tmp_path / "g-only"
    torch.manual_seed(0)
    Pix2Pix(UNetGenerator(num_downs=7, ngf=4)).save_pretrained(folder)
    result = run(finetune_config(data, tmp_path / "out", folder, ndf=8))
    assert result.pix2pix.discriminator.config["ndf"] == 8 and result.pix2pix.generator.config["ngf"] == 4


def test_base_model_name_is_a_hub_id_or_a_folder_name(tmp_path):
    assert base_model_name("user/facades") == "user/facades"
    (tmp_path / "mine").mkdir()
    assert base_model_name(str(tmp_path / "mine")) == "mine"


def test_a_missing_model_is_a_usage_error(data, tmp_path):
    with pytest.raises(ConfigError, match="--init_from .*nowhere"):
        run(finetune_config(data, tmp_path / "out", tmp_path / "nowhere"))


def test_a_flag_given_on_the_command_line_at_its_default_value_is_given(base, data, tmp_path, capsys):
    pix2pix = load_base_model(str(base))
    for flag in (["--ngf", "64"], ["--ngf=64"]):  # 64 is --ngf's default; the model has 4
        with pytest.raises(ConfigError, match=r"--ngf 64 \(the model has 4\)\. Drop those flags"):
            adopt_architecture(config_from_args(["--init_from", str(base), *flag]), pix2pix)
    with pytest.raises(ConfigError, match=r"--norm batch \(the model has instance\)"):
        adopt_architecture(config_from_args(["--init_from", str(base), "--norm", "batch"]), pix2pix)
    # Flags not typed follow the model, --quick's preset included (it is no flag of the user's).
    adopted = adopt_architecture(config_from_args(["--init_from", str(base), "--quick"]), pix2pix)
    assert (adopted.netG, adopted.ngf, adopted.ndf, adopted.norm) == ("unet_128", 4, 4, "instance")
    assert adopted.max_train_steps == 400  # the rest of the preset stays
    # In Python a keyword at its default value counts as unset (documented on TrainingConfig.given_fields).
    assert adopt_architecture(TrainingConfig(init_from=str(base), ngf=64), pix2pix).ngf == 4
    # The command: one line naming the flag, the model's value and what to do; exit 2.
    from pix2pix_hub.commands.train import main

    argv = ["--init_from", str(base), "--ngf", "64", "--dataset", str(data), "--output_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--report_to", "none", "--no_allocator_tuning"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and "--ngf 64 (the model has 4)" in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "out").exists()
