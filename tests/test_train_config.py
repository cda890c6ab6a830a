"""The training arguments: paper defaults, the command line, --quick, rejected configurations, lr schedules."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
from test_train_support import REPO_ROOT, make_aligned_pairs, run, tiny_config

from pix2pix_hub.commands.train import main
from pix2pix_hub.models.registry import DISCRIMINATOR_PRESETS, GENERATOR_PRESETS, tiny_discriminator
from pix2pix_hub.training import TrainingConfig, config_from_args
from pix2pix_hub.training.advice import config_warnings, high_resolution_summary
from pix2pix_hub.training.config import DISCRIMINATORS, GENERATORS, UNTRAINED_DISCRIMINATORS, fields_by_name
from pix2pix_hub.training.setup import LRFactor


def test_defaults_are_the_papers_facades_setup():
    config = config_from_args(["--dataset", "huggan/facades", "--direction", "BtoA"])
    assert config == TrainingConfig(dataset="huggan/facades", direction="BtoA")
    paper = {
        "netG": "unet_256",
        "netD": "basic",
        "n_layers_D": 3,
        "norm": "batch",
        "ngf": 64,
        "ndf": 64,
        "init_type": "normal",
        "init_gain": 0.02,
        "no_dropout": False,
        "gan_mode": "vanilla",
        "lambda_l1": 100.0,
        "lr": 2e-4,
        "beta1": 0.5,
        "beta2": 0.999,
        "batch_size": 1,
        "n_epochs": 100,
        "n_epochs_decay": 100,
        "lr_policy": "linear",
        "load_size": 286,
        "crop_size": 256,
        "preprocess": "resize_and_crop",
        "no_flip": False,
        "max_train_steps": None,
        "mixed_precision": None,  # the launcher decides
    }
    assert {key: getattr(config, key) for key in paper} == paper
    assert tiny_discriminator(config.netD, n_layers=config.n_layers_D).n_layers == 3
    assert config.fused_adam and config.winograd and config.allocator_tuning  # the speed-ups are on by default


def test_every_documented_flag_parses():
    argv = [
        "--dataset", "data", "--direction", "BtoA", "--netG", "resnet_9blocks", "--load_size", "300",
        "--crop_size", "256", "--batch_size", "4", "--max_train_steps", "10", "--output_dir", "out",
        "--checkpointing_steps", "5", "--resume_from_checkpoint", "latest", "--push_to_hub", "--hub_model_id",
        "me/model", "--seed", "3", "--gan_mode", "hinge", "--netD", "n_layers", "--n_layers_D", "2", "--norm",
        "instance", "--ngf", "32", "--ndf", "16", "--input_nc", "1", "--output_nc", "3", "--lr_policy", "cosine",
        "--mixed_precision", "bf16", "--report_to", "none", "--val_size", "0.1", "--gradient_accumulation_steps", "2",
    ]  # fmt: skip
    config = config_from_args(argv)
    assert (config.netG, config.batch_size, config.max_train_steps, config.hub_model_id) == (
        "resnet_9blocks",
        4,
        10,
        "me/model",
    )
    assert config.push_to_hub and tiny_discriminator(config.netD, n_layers=config.n_layers_D).n_layers == 2
    assert config.val_size == 0.1
    assert config_from_args(["--val_size", "16"]).val_size == 16


def test_quick_is_a_preset_that_explicit_flags_override_and_that_names_no_data():
    config = config_from_args(["--quick", "--dataset", "some/where"])
    assert (config.dataset, config.netG, config.crop_size, config.direction) == ("some/where", "unet_128", 128, "BtoA")
    assert config.quick and config.load_size >= config.crop_size
    overridden = config_from_args(["--quick", "--max_train_steps", "7", "--output_dir", "elsewhere"])
    assert (overridden.max_train_steps, overridden.output_dir) == (7, "elsewhere")
    # the library does not know where a workspace keeps its data: without --dataset, the default one
    assert overridden.dataset == TrainingConfig().dataset


def test_network_choices_are_the_registrys():
    assert GENERATORS == tuple(GENERATOR_PRESETS)
    assert set(DISCRIMINATORS) | set(UNTRAINED_DISCRIMINATORS) == set(DISCRIMINATOR_PRESETS)
    assert fields_by_name()["netG"].metadata["choices"] == GENERATORS
    assert fields_by_name()["netD"].metadata["choices"] == DISCRIMINATORS
    assert {"unet_256", "resnet_9blocks"} <= set(GENERATORS) and {"basic", "n_layers", "pixel"} <= set(DISCRIMINATORS)
    for name in DISCRIMINATORS:  # every offered discriminator passes the checks at the quick preset's crop
        TrainingConfig(netD=name, netG="unet_128", load_size=143, crop_size=128).check()
    for name in UNTRAINED_DISCRIMINATORS:
        with pytest.raises(ValueError, match=f"--netD '{name}' is not supported"):
            TrainingConfig(netD=name).check()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], (True, True, True)),
        (["--no_fused_adam"], (False, True, True)),
        (["--no_winograd"], (True, False, True)),
        (["--no_allocator_tuning"], (True, True, False)),
        (["--plain_eager"], (False, False, False)),
    ],
)
def test_each_speed_up_has_its_own_switch_and_plain_eager_turns_all_off(argv, expected):
    config = config_from_args(argv)
    assert (config.fused_adam, config.winograd, config.allocator_tuning) == expected


def test_entry_point_tunes_the_allocator_and_train_does_not(monkeypatch):
    calls = []
    monkeypatch.setattr("pix2pix_hub.commands.train.tune_allocator", lambda: calls.append("tuned"))
    monkeypatch.setattr("pix2pix_hub.training.trainer.train", lambda config, command=None: config)
    assert main(["--report_to", "none"]).allocator_tuning and calls == ["tuned"]
    main(["--no_allocator_tuning"])
    main(["--plain_eager"])
    assert calls == ["tuned"]
    # No library module of training changes the process: only the entry point mentions the allocator.
    training = REPO_ROOT / "pix2pix_hub" / "training"
    library = [path.name for path in training.glob("*.py") if path.name != "cli.py"]
    assert "trainer.py" in library
    assert not [name for name in library if "tune_allocator" in (training / name).read_text()]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"crop_size": 300, "load_size": 286}, r"--crop_size 300 is larger than --load_size 286"),
        ({"netG": "unet_256", "crop_size": 128, "load_size": 143}, r"--netG unet_256 .* divisible by 256"),
        ({"netD": "n_layers", "n_layers_D": 5, "netG": "resnet_6blocks", "crop_size": 32}, r"too deep for --crop_size"),
        ({"push_to_hub": True}, r"--hub_model_id"),
        ({"val_size": 2.5}, r"--val_size"),
        ({"batch_size": 0}, r"--batch_size must be at least 1"),
        ({"gan_mode": "wgan"}, r"--gan_mode 'wgan' is not supported"),
        ({"num_D": 0}, r"--num_D must be at least 1"),
        ({"label_nc": -1}, r"--label_nc must be 0 or more"),
        ({"niter_fix_global": 2}, r"--niter_fix_global 2 fixes the global generator inside --netG local"),
        ({"lambda_vgg": 10.0, "vgg_weights": "w.safetensors", "output_nc": 4}, r"--lambda_vgg compares RGB or grey"),
        ({"netG": "local", "crop_size": 32, "load_size": 36}, r"--netG local needs images of at least 64px"),
        (
            {"netD": "multiscale", "num_D": 3, "netG": "resnet_6blocks", "crop_size": 64, "load_size": 72},
            r"--num_D 3 and --n_layers_D 3 needs images of at least 93px .* halved 2 times",
        ),
        (
            {"netG": "global", "preprocess": "scale_width", "load_size": 200},
            r"scale_width makes the width --load_size 200, .* divisible by 16. Use --load_size 192",
        ),
    ],
)
def test_bad_arguments_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(TrainingConfig(), **changes).check()


def test_bad_command_line_exits_with_the_reason(capsys):
    import runpy

    script = runpy.run_path(str(REPO_ROOT / "scripts" / "train.py"), run_name="train_script")
    with pytest.raises(SystemExit) as exited:
        script["main"](["--crop_size", "512"])
    assert exited.value.code == 2  # a usage error
    assert capsys.readouterr().err.startswith("error: --crop_size 512 is larger than --load_size 286")


def test_crop_larger_than_load_size_is_refused_before_any_work(tmp_path):
    data = make_aligned_pairs(tmp_path / "pairs")
    with pytest.raises(ValueError, match="larger than --load_size"):
        run(tiny_config(data, tmp_path / "out", crop_size=64, load_size=36))
    assert not (tmp_path / "out").exists()


def test_generator_too_deep_for_the_crop_is_refused_before_any_work(tmp_path):
    data = make_aligned_pairs(tmp_path / "pairs")
    with pytest.raises(ValueError, match="--netG unet_256 halves the image 8 times"):
        run(tiny_config(data, tmp_path / "out", netG="unet_256", crop_size=128, load_size=143))
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_columns_are_refused_before_any_work(tmp_path):
    import datasets

    files = make_aligned_pairs(tmp_path / "pairs")
    paths = sorted(str(p) for p in files.iterdir())
    features = datasets.Features({"photo": datasets.Image(), "label": datasets.Image()})
    datasets.Dataset.from_dict({"photo": paths, "label": paths}, features=features).save_to_disk(tmp_path / "disk")
    with pytest.raises(ValueError, match=r"no column 'imageA' or 'imageB'.*photo, label.*--column_a"):
        run(tiny_config(tmp_path / "disk", tmp_path / "out"))
    assert not (tmp_path / "out" / "checkpoints").exists() and not (tmp_path / "out" / "samples").exists()
    result = run(tiny_config(tmp_path / "disk", tmp_path / "ok", column_a="photo", column_b="label", max_train_steps=1))
    assert result.global_step == 1


def test_unwritable_output_dir_is_refused_before_any_work(tmp_path):
    data = make_aligned_pairs(tmp_path / "pairs")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(PermissionError, match=r"--output_dir .*a-file/out cannot be written"):
        run(tiny_config(data, blocker / "out"))


def test_lr_policies_follow_the_authors():
    config = TrainingConfig(n_epochs=100, n_epochs_decay=100)
    linear = LRFactor(config, updates_per_epoch=10)
    assert linear(0) == 1.0 and linear(99 * 10 + 9) == 1.0  # constant for 100 epochs
    assert linear(100 * 10) == pytest.approx(1 - 1 / 101)
    assert linear(199 * 10) == pytest.approx(1 / 101) and linear(10_000) == 0.0
    step = LRFactor(replace(config, lr_policy="step", lr_decay_iters=50), updates_per_epoch=1)
    assert (step(49), step(50), step(100)) == (1.0, pytest.approx(0.1), pytest.approx(0.01))
    cosine = LRFactor(replace(config, lr_policy="cosine"), updates_per_epoch=1)
    assert (cosine(0), cosine(100), cosine(200)) == (1.0, pytest.approx(0.5), pytest.approx(0.0))
    assert LRFactor(replace(config, lr_policy="constant"), 1)(10**6) == 1.0


def test_config_round_trips_through_json():
    config = replace(TrainingConfig(), netG="resnet_6blocks", max_train_steps=5, val_size=0.2)
    assert TrainingConfig.from_dict(json.loads(config.to_json())) == config
    with pytest.raises(ValueError, match="Unknown training arguments bogus"):
        TrainingConfig.from_dict({**asdict(config), "bogus": 1})


def test_gan_mode_follows_the_discriminator_unless_given():
    """pix2pixHD's preset is LSGAN: --gan_mode left unset takes it with --netD multiscale; a given one wins."""
    assert TrainingConfig().gan_mode == "vanilla" and TrainingConfig(netD="multiscale").gan_mode == "lsgan"
    assert config_from_args(["--netD", "multiscale"]).gan_mode == "lsgan"
    assert config_from_args(["--netD", "multiscale", "--gan_mode", "vanilla"]).gan_mode == "vanilla"
    assert config_from_args(["--gan_mode", "lsgan"]).gan_mode == "lsgan"
    summary = high_resolution_summary(config_from_args(["--netD", "multiscale", "--num_D", "3"]))
    assert summary.startswith("pix2pixHD: 3-scale discriminator, GAN loss lsgan (pix2pixHD's, the default with")
    assert "feature matching x10" in summary
    assert "the default" not in high_resolution_summary(TrainingConfig(netD="multiscale", gan_mode="hinge"))
    assert high_resolution_summary(TrainingConfig()) is None  # nothing to say about a pix2pix run


def test_fixing_an_untrained_global_generator_is_warned_about():
    (warning,) = config_warnings(TrainingConfig(netG="local", niter_fix_global=5))
    assert "--niter_fix_global 5 without --init_from" in warning and "--netG global first" in warning
    assert config_warnings(TrainingConfig(netG="local", niter_fix_global=5, init_from="user/global")) == []
