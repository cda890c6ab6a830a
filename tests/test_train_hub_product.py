"""Training as a Hugging Face product: the new flags, the card's license, command line, widget and hyper-parameters
(never the run's local options), the validation grid in TensorBoard."""

from __future__ import annotations

import json
from dataclasses import fields
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard
from PIL import Image
from test_train_outputs import FakeHfApi
from test_train_support import make_aligned_pairs, run, tiny_config

from pix2pix_hub.commands.train import typed_command
from pix2pix_hub.training import TrainingConfig, config_from_args
from pix2pix_hub.training.errors import ConfigError
from pix2pix_hub.training.publish import LOCAL_RUN_OPTIONS, card_training_config
from pix2pix_hub.training.validation import GRID_TAG


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_aligned_pairs(tmp_path_factory.mktemp("pairs") / "train", count=10)


class RecordingHfApi(FakeHfApi):
    private: list = []

    def create_repo(self, repo_id, private=None, exist_ok=False, **kwargs):
        self.private.append(private)
        return super().create_repo(repo_id, private=private, exist_ok=exist_ok, **kwargs)


def training_rows(card_text: str) -> dict[str, str]:
    """The card's training table: argument -> value as shown."""
    table = card_text.split("| argument | value |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|") for line in table.splitlines()]
    return {key.strip(): value.strip().strip("`") for key, value in rows}


def image_summaries(logs) -> dict[str, list[int]]:
    """Steps of every image summary in the TensorBoard event files under ``logs``, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list[int]] = {}
    for events in logs.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"images": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["images"]:
            found.setdefault(tag, []).extend(event.step for event in accumulator.Images(tag))
    return found


def test_the_new_flags_parse():
    config = config_from_args(
        ["--cache_dir", "cache", "--max_train_samples", "3", "--hub_private_repo", "--logging_dir", "tb"]
        + ["--license", "mit", "--export_int8", "--int8_min_psnr", "30"]
    )
    assert (config.cache_dir, config.max_train_samples, config.logging_dir, config.license) == ("cache", 3, "tb", "mit")
    assert config.hub_private_repo and config.export_int8 and config.int8_min_psnr == 30.0
    defaults = config_from_args([])
    assert (defaults.license, defaults.max_train_samples, defaults.cache_dir, defaults.logging_dir) == (
        "other",
        None,
        None,
        None,
    )
    assert not defaults.hub_private_repo and not defaults.export_int8 and defaults.int8_min_psnr == 40.0
    with pytest.raises(ConfigError, match="--max_train_samples must be at least 1"):
        config_from_args(["--max_train_samples", "0"])


def test_a_run_reports_to_its_tracker_card_and_hub_as_asked(data, tmp_path, monkeypatch):
    seen_cache_dirs = []
    import pix2pix_hub.training.data as training_data

    real_load_pairs = training_data.load_pairs
    monkeypatch.setattr(
        training_data,
        "load_pairs",
        lambda *a, **k: seen_cache_dirs.append(k.get("cache_dir")) or real_load_pairs(*a, **k),
    )
    monkeypatch.setattr("pix2pix_hub.inference.pipeline.HfApi", RecordingHfApi)
    RecordingHfApi.uploads, RecordingHfApi.private = {"me/tiny": tmp_path / "pushed"}, []
    out, logs = tmp_path / "out", tmp_path / "elsewhere" / "tb"
    command = ["pix2pix-hub", "train", "--dataset", str(data), "--license", "mit"]
    config = tiny_config(
        data, out, max_train_steps=3, validation_steps=2, report_to="tensorboard", logging_dir=str(logs),
        max_train_samples=3, cache_dir=str(tmp_path / "cache"), license="mit", push_to_hub=True,
        hub_model_id="me/tiny", hub_private_repo=True, export_int8=True, int8_min_psnr=0.0,
    )  # fmt: skip
    from test_train_support import reset_accelerate

    from pix2pix_hub.training import train

    reset_accelerate()
    try:
        train(config, command=command)
    finally:
        reset_accelerate()

    assert seen_cache_dirs == [str(tmp_path / "cache")]
    assert RecordingHfApi.private == [True]
    # --max_train_samples 3 (after holding out 2 of 10): 2 updates per epoch of batch 2
    state = json.loads((out / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["updates_per_epoch"] == 2
    # the tracker's logs in --logging_dir, with the validation grid as an image summary (mid-run and final)
    assert not (out / "logs").exists()
    assert image_summaries(logs) == {GRID_TAG: [2, 3]}

    card = ModelCard.load(out / "README.md")
    assert card.data.license == "mit" and "research use only" not in card.text
    assert f"pix2pix-hub train --dataset {data.parent.name} --license mit" in card.text  # as typed, no path
    assert str(tmp_path) not in card.content
    widget = card.data.to_dict()["widget"][0]
    source, output = Image.open(out / widget["src"]), Image.open(out / widget["output"]["url"])
    assert source.size == output.size == (32, 32)
    assert (out / "samples" / "step-000002.png").is_file()  # the widget images did not replace the grids
    assert 'Pix2Pix.from_pretrained("me/tiny")' in card.text
    # The hyper-parameters and the data, as a reader needs them; none of this run's local options.
    rows = training_rows(card.text)
    assert not LOCAL_RUN_OPTIONS & set(rows), LOCAL_RUN_OPTIONS & set(rows)
    assert rows["dataset"] == data.parent.name and rows["max_train_samples"] == "3" and rows["seed"] == "0"
    assert {"direction", "netG", "ngf", "lr", "batch_size", "crop_size", "gan_mode", "lambda_l1"} <= set(rows)
    assert {"mixed_precision", "num_processes", "val_size"} <= set(rows)
    # The push carries what the card points at and the int8 graph, byte for byte as saved.
    for name in (widget["src"], widget["output"]["url"], "model.int8.onnx"):
        assert (tmp_path / "pushed" / name).read_bytes() == (out / name).read_bytes()


def test_the_default_license_is_other_with_a_note(data, tmp_path):
    run(tiny_config(data, tmp_path, max_train_steps=1))
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.license == "other" and "--license" in card.text


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["/venv/lib/python3/site-packages/pix2pix_hub/train.py", "--seed", "1"],
         ["python", "-m", "pix2pix_hub.train", "--seed", "1"]),
        (["/venv/bin/pix2pix-hub", "train", "--seed", "1"], ["/venv/bin/pix2pix-hub", "train", "--seed", "1"]),
    ],
)  # fmt: skip
def test_the_card_gets_the_command_as_typed(argv, expected):
    assert typed_command(argv) == expected


def test_the_card_table_holds_every_argument_but_the_local_run_options():
    config = config_from_args(["--quick", "--output_dir", "/home/me/runs/x", "--overwrite_output_dir", "--seed", "3"])
    shown = card_training_config(config, SimpleNamespace(mixed_precision="no", num_processes=2), val_size=8)
    names = {field.name for field in fields(TrainingConfig)}
    assert LOCAL_RUN_OPTIONS <= names  # the list names real arguments (a renamed one would slip through)
    assert set(shown) == (names - LOCAL_RUN_OPTIONS) | {"mixed_precision", "num_processes", "val_size"}
    assert "/home/me" not in json.dumps(shown, default=str)
    assert (shown["netG"], shown["crop_size"], shown["seed"], shown["num_processes"]) == ("unet_128", 128, 3, 2)
