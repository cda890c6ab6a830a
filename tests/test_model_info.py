"""Model facts (``pix2pix.json`` / ``Pix2Pix.info``): saved, loaded, put in the card's YAML, refused when malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from pix2pix_hub import ModelInfo, PatchDiscriminator, Pix2Pix, unet_128
from pix2pix_hub.hub.model_card import render_model_card

FACADES_INFO = ModelInfo.for_training("huggan/facades", "BtoA", 256)


@pytest.fixture(scope="module")
def networks():
    return unet_128(ngf=4).eval(), PatchDiscriminator(ndf=4).eval()


def test_for_training_names_the_sides_and_never_a_local_path(tmp_path):
    assert FACADES_INFO == ModelInfo("BtoA", "CMP facade labels", "photo", "huggan/facades", True, 256)
    atob = ModelInfo.for_training("huggan/facades", "AtoB", 256)
    assert (atob.input, atob.output) == ("photo", "CMP facade labels")
    local = tmp_path / "facades" / "train"
    local.mkdir(parents=True)
    info = ModelInfo.for_training(str(local), "BtoA", 128)
    assert (info.dataset, info.dataset_on_hub) == ("facades", False)
    unknown_direction = ModelInfo.for_training("huggan/facades", None, 256)
    assert (unknown_direction.input, unknown_direction.output) == (None, None)
    # A label-map model records its classes; an image model leaves both fields out of the file.
    labels = ModelInfo.for_training("me/cityscapes", "AtoB", 1024, label_nc=35, instance=True)
    assert (labels.label_nc, labels.instance) == (35, True)
    assert "label_nc" not in atob.to_dict() and "instance" not in atob.to_dict()


def test_info_round_trips_through_save_and_load(tmp_path, networks):
    pix2pix = Pix2Pix(*networks, info=FACADES_INFO)
    assert pix2pix.direction == "BtoA"
    pix2pix.save_pretrained(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "pix2pix.json").read_text()) == FACADES_INFO.to_dict()
    loaded = Pix2Pix.from_pretrained(tmp_path / "model")
    assert loaded.info == FACADES_INFO and loaded.direction == "BtoA"
    # An info given to save_pretrained is written instead of the model's own.
    other = ModelInfo(direction="AtoB", dataset="me/maps", dataset_on_hub=True)
    pix2pix.save_pretrained(tmp_path / "other", info=other)
    assert Pix2Pix.from_pretrained(tmp_path / "other").info == other
    assert pix2pix.info == FACADES_INFO


def test_a_folder_without_pix2pix_json_has_an_empty_record(tmp_path, networks):
    Pix2Pix(*networks).save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "pix2pix.json").unlink()  # as written by older versions or other tools
    loaded = Pix2Pix.from_pretrained(tmp_path / "model")
    assert loaded.info == ModelInfo() and loaded.direction is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('["BtoA"]', "must hold a JSON object"),
        ('{"direction": "BtoA", "colour": "red"}', "unknown keys colour"),
        ('{"direction": "sideways"}', "direction='sideways' is not supported"),
        ('{"resolution": "256"}', "resolution must be int or null"),
        ('{"dataset_on_hub": "yes"}', "dataset_on_hub must be bool or null"),
        ('{"label_nc": 0}', "label_nc must be the number of classes"),
        ('{"instance": 1}', "instance must be bool or null"),
    ],
)
def test_a_malformed_pix2pix_json_is_an_error_naming_the_file(tmp_path, networks, content, message):
    Pix2Pix(*networks).save_pretrained(tmp_path / "model")
    path = tmp_path / "model" / "pix2pix.json"
    path.write_text(content)
    for load in (ModelInfo.load, Pix2Pix.from_pretrained):
        with pytest.raises(ValueError, match=message) as raised:
            load(tmp_path / "model")
        assert str(path) in str(raised.value)


def test_the_card_yaml_holds_the_record(tmp_path, networks):
    Pix2Pix(*networks, info=FACADES_INFO).save_pretrained(tmp_path / "model")
    card = ModelCard.load(tmp_path / "model" / "README.md")
    assert card.data.pix2pix == FACADES_INFO.to_dict()
    assert card.data.datasets == ["huggan/facades"]
    assert "direction `BtoA` (CMP facade labels → photo)" in card.text
    empty = ModelCard.load(Path(Pix2Pix(*networks).save_pretrained(tmp_path / "bare")) / "README.md")
    assert "pix2pix" not in empty.data.to_dict() and not empty.data.datasets


def test_a_local_dataset_never_puts_a_local_path_in_the_card(tmp_path, networks):
    dataset = tmp_path / "data" / "facades" / "train"
    dataset.mkdir(parents=True)
    training_config = {"dataset": str(dataset), "output_dir": str(tmp_path / "run"), "hub_model_id": "me/facades"}
    with_info = Pix2Pix(*networks, info=ModelInfo.for_training(str(dataset), "BtoA", 256))
    # The trainer's call today: facts as keyword arguments; and with the facts already on the model.
    for pix2pix, kwargs in ((Pix2Pix(*networks), {"dataset": str(dataset), "direction": "BtoA"}), (with_info, {})):
        text = render_model_card(pix2pix, repo_id="me/facades", training_config=training_config, **kwargs)
        assert str(tmp_path) not in text
        card = ModelCard(text)
        assert card.data.pix2pix["dataset"] == "facades" and card.data.pix2pix["dataset_on_hub"] is False
        assert card.data.datasets is None
        assert "Trained on `facades`" in text and "| dataset | `facades` |" in text and "| output_dir | `run` |" in text
        assert "| hub_model_id | `me/facades` |" in text  # a Hub id is not a path


def test_the_info_wins_over_the_old_keyword_arguments(networks):
    text = render_model_card(Pix2Pix(*networks, info=FACADES_INFO), dataset="other/data", direction="AtoB")
    assert ModelCard(text).data.pix2pix == FACADES_INFO.to_dict()
