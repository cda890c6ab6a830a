"""`python spaces_app/app.py` as a real server, called over HTTP with gradio_client (offline, tiny models)."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spaces_app"))
from local_server import running_app  # noqa: E402

from pix2pix_hub import ModelInfo, Pix2Pix, unet_128  # noqa: E402
from pix2pix_hub.models.hd import GlobalGenerator  # noqa: E402

MAX_PIXELS = 400 * 400


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("space-app") / "tiny"
    Pix2Pix(unet_128(ngf=8), None).save_pretrained(folder)
    with running_app({"MODEL_ID": str(folder), "MAX_PIXELS": str(MAX_PIXELS), "DIRECTION": "BtoA"}) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def save(tmp_path: Path, name: str, size: tuple[int, int], mode: str = "RGB") -> str:
    path = tmp_path / name
    array = np.random.default_rng(0).integers(0, 255, (size[1], size[0], len(mode)), dtype=np.uint8)
    Image.fromarray(array.squeeze(), mode if mode != "L" else None).save(path)
    return str(path)


@pytest.mark.parametrize(("size", "mode"), [((300, 200), "RGB"), ((77, 45), "RGBA"), ((64, 64), "L")])
def test_upload_returns_a_png_of_the_upload_size(client, tmp_path, size, mode):
    result = client.predict(handle_file(save(tmp_path, f"in_{mode}.png", size, mode)), api_name="/translate")
    with Image.open(result) as output:
        assert output.format == "PNG"
        assert output.size == size
        assert output.mode == "RGB"


def test_bad_uploads_get_friendly_errors_and_the_worker_survives(client, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("definitely not pixels")
    with pytest.raises(AppError, match="notes.txt is not an image this app can read"):
        client.predict(handle_file(str(text)), api_name="/translate")
    with pytest.raises(AppError, match=r"500x400 pixels.*Downscale"):
        client.predict(handle_file(save(tmp_path, "big.png", (500, 400))), api_name="/translate")
    result = client.predict(handle_file(save(tmp_path, "ok.png", (128, 96))), api_name="/translate")
    assert Image.open(result).size == (128, 96)


def test_drawing_endpoint_snaps_and_translates(client, tmp_path):
    canvas = np.zeros((256, 256, 4), np.uint8)
    canvas[..., :3] = (0, 48, 254)
    canvas[..., 3] = 255
    canvas[50:120, 60:140, :3] = (10, 120, 250)  # roughly "window"
    path = tmp_path / "canvas.png"
    Image.fromarray(canvas).save(path)
    value = {"background": None, "layers": [], "composite": handle_file(str(path)), "id": None}
    output, (label_map, compared) = client.predict(value, api_name="/translate_drawing")
    assert Image.open(output).size == (256, 256)
    snapped = np.asarray(Image.open(label_map).convert("RGB"))
    assert tuple(snapped[80, 100]) == (5, 125, 255)  # snapped to the palette's window colour
    assert tuple(snapped[10, 10]) == (0, 48, 254)


def test_page_shows_the_model_and_its_direction(app_url):
    with urllib.request.urlopen(app_url + "/config") as response:
        config = json.load(response)
    texts = " ".join(str(c.get("props", {}).get("value", "")) for c in config["components"])
    assert "UNetGenerator" in texts
    assert "BtoA: label map → photo" in texts
    assert "**Engine:** onnxruntime" in texts  # what it runs on (an int8 graph would add its PSNR vs fp32)


def test_app_starts_without_a_model_and_says_how_to_point_it_at_one(tmp_path):
    # The default Hub id, offline, with an empty Hugging Face cache: the situation of a fresh machine.
    missing = "user/facades"
    with running_app({"MODEL_ID": "", "HF_HOME": str(tmp_path / "hf-home")}) as url:
        with urllib.request.urlopen(url + "/config") as response:
            config = json.load(response)
        texts = " ".join(str(c.get("props", {}).get("value", "")) for c in config["components"])
        assert f"Could not load the model `{missing}`" in texts
        assert "MODEL_ID=path/to/folder" in texts
        with pytest.raises(AppError, match="No model is loaded"):
            Client(url, verbose=False).predict(handle_file(save(tmp_path, "x.png", (32, 32))), api_name="/translate")


def test_a_label_map_model_takes_a_class_index_png_over_http_and_paints_classes(tmp_path):
    folder = tmp_path / "labels"
    torch.manual_seed(0)
    generator = GlobalGenerator(in_channels=8, ngf=4, n_downsample=2, n_blocks=1)
    pix2pix = Pix2Pix(generator, info=ModelInfo(label_nc=8), backend="torch")
    pix2pix.save_pretrained(folder)
    labels = np.kron(np.random.default_rng(0).integers(0, 8, (6, 10)), np.ones((8, 8), np.int64))[:45, :77]
    # Grey indices 0..7: converted to colours on the way, they would be no class colours and be refused.
    Image.fromarray(labels.astype(np.uint8), "L").save(tmp_path / "map.png")
    with running_app({"MODEL_ID": str(folder)}) as url:
        client = Client(url, verbose=False)
        result = client.predict(handle_file(str(tmp_path / "map.png")), api_name="/translate")
        expected = np.asarray(pix2pix(labels), np.int16)
        assert np.abs(np.asarray(Image.open(result), np.int16) - expected).max() <= 1  # onnxruntime vs torch
        with urllib.request.urlopen(url + "/config") as response:
            config = json.load(response)
    texts = " ".join(str(c.get("props", {}).get("value", "")) for c in config["components"])
    assert "a class-index map, 8 classes" in texts
    (editor,) = [c for c in config["components"] if c.get("type") == "imageeditor"]
    assert editor["props"]["brush"]["colors"][:2] == ["#000000", "#800000"]
