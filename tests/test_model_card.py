"""Model cards the Hub reads: YAML through ``huggingface_hub.ModelCard.load`` (library, task, the mixin's tags,
datasets and base_model as Hub ids only, license, widget, ``model-index`` round trips with ``metadata_eval_result``),
the usage snippet naming the repo, the command line and library versions, and no local path anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, metadata_eval_result, metadata_load
from PIL import Image

from pix2pix_hub import ModelInfo, PatchDiscriminator, Pix2Pix, unet_128
from pix2pix_hub.hub.model_card import (
    MIXIN_TAGS,
    library_versions,
    public_command,
    render_card,
    render_model_card,
    save_widget_images,
)
from pix2pix_hub.models.hd import GlobalGenerator, LocalEnhancer

FACADES_INFO = ModelInfo.for_training("huggan/facades", "BtoA", 256)
METRICS = {"l1": 0.21, "psnr": 13.2, "ssim": 0.31}
VERSIONS = {"pix2pix-hub": "9.9.9", "torch": "1.2.3", "huggingface_hub": "4.5.6"}


@pytest.fixture(scope="module")
def pix2pix():
    return Pix2Pix(unet_128(ngf=4).eval(), PatchDiscriminator(ndf=4).eval(), info=FACADES_INFO)


def write_card(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(text, encoding="utf-8")
    return folder / "README.md"


def test_the_hub_metadata_reads_back_through_model_card_load(tmp_path, pix2pix):
    text = render_model_card(pix2pix, repo_id="alice/facades", metrics=METRICS, versions=VERSIONS)
    data = ModelCard.load(write_card(tmp_path, text)).data
    assert data.library_name == "pix2pix-hub"
    assert data.pipeline_tag == "image-to-image"
    assert set(MIXIN_TAGS) <= set(data.tags) and {"pix2pix", "image-to-image"} <= set(data.tags)
    assert data.datasets == ["huggan/facades"]
    assert data.pix2pix["direction"] == "BtoA"
    assert data.license == "other"  # not stated: "other", with a note saying why
    assert "license was not set" in text and "research use only" in text
    stated = ModelCard(render_model_card(pix2pix, repo_id="alice/facades", license="cc-by-nc-4.0"))
    assert stated.data.license == "cc-by-nc-4.0" and "license was not set" not in stated.text


def test_model_index_round_trips_with_metadata_eval_result(tmp_path, pix2pix):
    text = render_model_card(
        pix2pix, repo_id="alice/facades", metrics={"l1": 0.25}, training_config={"validation_split": "val"}
    )
    expected = metadata_eval_result(
        model_pretty_name="facades",
        task_pretty_name="Image-to-Image",
        task_id="image-to-image",
        metrics_pretty_name="L1",
        metrics_id="l1",
        metrics_value=0.25,
        dataset_pretty_name="huggan/facades",
        dataset_id="huggan/facades",
        dataset_split="val",
    )
    assert metadata_load(write_card(tmp_path, text))["model-index"] == expected["model-index"]


def test_every_validation_metric_is_an_eval_result(tmp_path, pix2pix):
    text = render_model_card(pix2pix, repo_id="alice/facades", metrics=METRICS)
    results = ModelCard.load(write_card(tmp_path, text)).data.eval_results
    assert {r.metric_type: r.metric_value for r in results} == METRICS
    assert {(r.task_type, r.dataset_type, r.metric_name) for r in results} == {
        ("image-to-image", "huggan/facades", name) for name in ("L1", "PSNR", "SSIM")
    }
    assert not ModelCard(render_model_card(pix2pix)).data.eval_results  # no metrics: no model-index


def test_base_model_is_written_for_hub_ids_only(pix2pix):
    def base_model(name):
        info = ModelInfo(direction="BtoA", base_model=name)
        return ModelCard(render_card(pix2pix.generator, None, info)).data.base_model

    assert base_model("alice/facades-base") == "alice/facades-base"
    assert base_model("latest_net_G.pth") is None  # a converted file: kept in the pix2pix record only
    assert base_model(None) is None


def test_the_snippet_loads_the_repo_the_card_is_for(pix2pix):
    text = render_model_card(pix2pix, repo_id="alice/x")
    assert 'Pix2Pix.from_pretrained("alice/x")' in text and "pix2pix-hub translate alice/x" in text
    assert "user/pix2pix-model" not in text


def test_command_line_and_versions_without_any_local_path(tmp_path, pix2pix):
    dataset = tmp_path / "data" / "facades" / "train"
    dataset.mkdir(parents=True)
    command = [str(Path.cwd() / "scripts" / "train.py"), "--dataset", str(dataset), f"--output_dir={tmp_path}/run"]
    config = {"dataset": str(dataset), "output_dir": str(tmp_path / "run"), "split": "train", "val_size": 8}
    local = Pix2Pix(pix2pix.generator, None, info=ModelInfo.for_training(str(dataset), "BtoA", 256))
    text = render_model_card(local, repo_id="me/f", training_config=config, metrics=METRICS, command=command)
    assert str(tmp_path) not in text and str(Path.cwd()) not in text
    assert "train.py --dataset facades --output_dir=run" in text
    assert "held out of the training split `train`" in text
    card = ModelCard(text)
    assert card.data.datasets is None  # a local folder is not a Hub dataset
    assert card.data.eval_results[0].dataset_name == "facades"
    for name, version in library_versions(trained=True).items():
        assert f"| {name} | {version} |" in text
    assert library_versions()["torch"] == torch.__version__


def test_public_command_keeps_flags_and_hub_ids_and_names_local_paths(tmp_path):
    (tmp_path / "pairs").mkdir()
    words = ["pix2pix-hub", "train", "--dataset", "huggan/facades", "--output_dir", str(tmp_path / "pairs")]
    assert public_command(words) == "pix2pix-hub train --dataset huggan/facades --output_dir pairs"
    assert public_command("python ./scripts/train.py --lr 0.0002 --name 'a b'") == (
        "python train.py --lr 0.0002 --name 'a b'"
    )
    assert public_command(["--cache_dir=~/cache/x"]) == "--cache_dir=x"


def test_widget_example_points_at_files_in_the_repo(tmp_path, pix2pix):
    paths = save_widget_images(tmp_path, Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8), "white"))
    text = render_model_card(pix2pix, repo_id="alice/facades", widget_images=paths)
    widget = ModelCard.load(write_card(tmp_path, text)).data.widget
    assert widget == [
        {"src": "samples/input.png", "output": {"url": "samples/output.png"}, "example_title": "CMP facade labels"}
    ]
    assert Image.open(tmp_path / widget[0]["src"]).format == "PNG" and (tmp_path / "samples" / "output.png").is_file()
    assert "widget" not in ModelCard(render_model_card(pix2pix)).data.to_dict()


def test_the_old_call_still_works(pix2pix):
    bare = Pix2Pix(pix2pix.generator, None)
    text = render_model_card(bare, repo_id="me/facades", dataset="huggan/facades", direction="BtoA", license="mit")
    card = ModelCard(text)
    assert card.data.license == "mit" and card.data.pix2pix["direction"] == "BtoA"


def test_pix2pixhd_generators_are_described_and_label_map_inputs_explained():
    info = ModelInfo(direction="AtoB", label_nc=35, instance=True)
    card = ModelCard(render_card(GlobalGenerator(in_channels=36, ngf=4), None, info))
    assert (
        "pix2pixHD global generator (G1, --netG global): c7s1-4, 4 stride-2 convs (n_downsample), 9 residual "
        in card.text
    )
    assert "| input | `class-index map: label_nc=35 one-hot channels + 1 instance-boundary channel` |" in card.text
    assert "Its input is a **class-index map**" in card.text and "instance=ids" in card.text
    assert {"GlobalGenerator", "pix2pixhd", "semantic-image-synthesis"} <= set(card.data.tags)
    assert card.data.pix2pix == {"direction": "AtoB", "label_nc": 35, "instance": True}
    local = ModelCard(render_card(LocalEnhancer(ngf=4, n_blocks_local=2), None, ModelInfo()))
    assert (
        "pix2pixHD local enhancer (G2, --netG local): a global generator of width 8 (4 stride-2 convs, 9 " in local.text
    )
    assert "1 full-resolution branch(es) of 2 residual blocks" in local.text and "multiples of 32" in local.text
    assert "class-index" not in local.text and "semantic-image-synthesis" not in local.data.tags
    plain = ModelCard(render_card(unet_128(ngf=4), None, ModelInfo()))
    assert "| architecture |" not in plain.text and "pix2pixhd" not in plain.data.tags


# ----- links: only to pages that exist and that the card's own facts name -----------------------------------------
PAPER = "https://arxiv.org/abs/1611.07004"  # the paper the card cites (also in its BibTeX)
URL = re.compile(r"(?:https?://|www\.)[^\s)\]>\"'`]+")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)")
REPO_ROOT = Path(__file__).resolve().parents[1]


def allowed_urls(repo_id: str, info: ModelInfo) -> set[str]:
    """The arXiv page of the paper, and the Hub pages of the repos the card itself names (the model, its Hub
    dataset, its base model): pages that exist whenever the card does. Not allowed: the package's PyPI page (it is
    not on PyPI, and the name could be taken by someone else), or any page of a site the card does not cite."""
    pages = {PAPER, f"https://huggingface.co/{repo_id}"}
    if info.dataset and info.dataset_on_hub:
        pages.add(f"https://huggingface.co/datasets/{info.dataset}")
    if info.base_model:
        pages.add(f"https://huggingface.co/{info.base_model}")
    return pages


def full_cards(pix2pix, tmp_path) -> list[tuple[str, ModelInfo, str]]:
    """Cards with every section filled: a trained facades model (metrics, samples, widget, command, config, base
    model) and a pix2pixHD label-map model; (repo id, facts, text)."""
    widget = save_widget_images(tmp_path, Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8)))
    info = ModelInfo.for_training("huggan/facades", "BtoA", 256, base_model="alice/facades-base")
    trained = render_model_card(
        Pix2Pix(pix2pix.generator, pix2pix.discriminator, info=info),
        repo_id="alice/facades",
        training_config={"dataset": "huggan/facades", "lr": 0.0002, "validation_split": "val"},
        metrics=METRICS,
        sample_grid="samples.png",
        license="mit",
        command=["pix2pix-hub", "train", "--dataset", "huggan/facades", "--init_from", "alice/facades-base"],
        widget_images=widget,
    )
    labels = ModelInfo(direction="AtoB", label_nc=35, instance=True)
    hd = render_card(GlobalGenerator(in_channels=36, ngf=4), None, labels, repo_id="bob/cityscapes")
    return [("alice/facades", info, trained), ("bob/cityscapes", labels, hd)]


def test_the_card_links_only_to_pages_that_exist(tmp_path, pix2pix):
    for repo_id, info, text in full_cards(pix2pix, tmp_path):
        assert "pypi.org" not in text.lower()
        urls = set(URL.findall(text))
        assert PAPER in urls
        assert urls <= allowed_urls(repo_id, info), urls - allowed_urls(repo_id, info)
        for target in LINK_TARGET.findall(text):  # every other link is a file inside the repo
            assert target in urls or ("://" not in target and not target.startswith(("/", ".."))), target


def test_the_card_says_how_to_install_the_package_as_the_readme_does(pix2pix):
    text = render_model_card(pix2pix, repo_id="alice/facades")
    usage = text.split("## Use it", 1)[1].split("```python", 1)[0]
    commands = re.findall(r"`((?:bash|pip|python -m pip) [^`]+)`", usage)
    assert "bash scripts/install.sh" in commands and "pip install pix2pix_hub-*.whl" in commands
    documented = (REPO_ROOT / "README.md").read_text(encoding="utf-8") + (REPO_ROOT / "docs" / "space.md").read_text(
        encoding="utf-8"
    )
    for command in commands:
        assert command in documented, f"the card's `{command}` is not how the README or docs install pix2pix-hub"
    assert "not on PyPI" in usage
