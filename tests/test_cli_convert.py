"""``pix2pix-hub convert``: the authors' checkpoint -> a model folder, pushed and loaded back by id (offline mirror)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from hub_mirror import HubMirror, run_python
from test_authors import JZ, MANIFEST, TOLERANCE, needs_jz
from test_hub import FakeHfApi

from pix2pix_hub import Pix2Pix
from pix2pix_hub.cli import main

UNET = next((entry for entry in MANIFEST if entry["kind"] == "G" and entry["netG"] == "unet_256"), None)
DISCRIMINATOR = next((entry for entry in MANIFEST if entry["kind"] == "D"), None)


@needs_jz
@pytest.mark.slow
def test_convert_push_and_load_back_by_id_reproduces_the_authors_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("pix2pix_hub.inference.pipeline.HfApi", FakeHfApi)
    FakeHfApi.uploads = {"alice/facades-authors": tmp_path / "pushed"}
    argv = [str(JZ / UNET["weights"]), str(tmp_path / "out"), "--direction", "BtoA"]
    argv += ["--discriminator", str(JZ / DISCRIMINATOR["weights"]), "--push_to_hub", "alice/facades-authors"]
    assert main(["convert", *argv]) == 0
    assert "Pushed to the Hub" in capsys.readouterr().err
    pushed = tmp_path / "pushed"
    assert {"model.safetensors", "config.json", "pix2pix.json", "README.md"} <= {p.name for p in pushed.iterdir()}
    assert (pushed / "discriminator" / "model.safetensors").is_file()
    assert 'from_pretrained("alice/facades-authors")' in (pushed / "README.md").read_text()
    code = f"""
import numpy as np, torch
from pix2pix_hub import Pix2Pix
arrays = np.load({str(JZ / UNET["arrays"])!r})
pix2pix = Pix2Pix.from_pretrained("alice/facades-authors")
out = pix2pix.translate_tensor(torch.from_numpy(arrays["x"]))
print(pix2pix.direction, float((out - torch.from_numpy(arrays["y"])).abs().max()))
"""
    with HubMirror(tmp_path / "hub") as hub:
        hub.add_model("alice/facades-authors", pushed)
        result = run_python(code, HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf"))
    direction, difference = result.stdout.split()
    assert direction == "BtoA" and float(difference) < TOLERANCE


@needs_jz
def test_convert_writes_a_folder_and_refuses_a_non_empty_one(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(JZ / UNET["weights"]), str(out), "--direction", "BtoA"]) == 0
    arrays = np.load(JZ / UNET["arrays"])
    pix2pix = Pix2Pix.from_pretrained(out, backend="torch")
    difference = (pix2pix.translate_tensor(torch.from_numpy(arrays["x"])) - torch.from_numpy(arrays["y"])).abs()
    assert difference.max().item() < TOLERANCE
    before = (out / "model.safetensors").read_bytes()
    assert main(["convert", str(JZ / UNET["weights"]), str(out), "--ngf", "16"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before


@needs_jz
def test_hub_model_id_names_the_repo_in_the_card_without_pushing(tmp_path):
    out = tmp_path / "out"
    assert main(["convert", str(JZ / UNET["weights"]), str(out), "--hub_model_id", "alice/facades-authors"]) == 0
    assert 'from_pretrained("alice/facades-authors")' in (out / "README.md").read_text()


def test_a_missing_checkpoint_is_a_usage_error(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "latest_net_G.pth"), str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: No checkpoint file at")


class Planted:
    def __reduce__(self):
        return (print, ("planted code ran",))


def test_convert_refuses_a_pickle_that_needs_full_unpickling(tmp_path, capsys):
    source = tmp_path / "latest_net_G.pth"
    source.write_bytes(pickle.dumps({"model.0.weight": Planted()}))
    assert main(["convert", str(source), str(tmp_path / "out")]) == 1
    captured = capsys.readouterr()
    assert "planted code ran" not in captured.out
    error_lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "latest_net_G.pth" in error_lines[0]
    assert not (tmp_path / "out").exists()


def test_the_pickle_refusal_of_from_pretrained_points_to_convert(tmp_path):
    (tmp_path / "latest_net_G.pth").write_bytes(b"not read")
    with pytest.raises(FileNotFoundError, match="pix2pix-hub convert"):
        Pix2Pix.from_pretrained(tmp_path)
