"""The Space's pieces in process: palette, drawn label maps, upload checks, model loading, the Space metadata."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

gr = pytest.importorskip("gradio")

SPACE = Path(__file__).resolve().parents[1] / "spaces_app"
sys.path.insert(0, str(SPACE))

from facade_palette import (  # noqa: E402
    FACADE_CLASSES,
    PALETTE,
    canvas_to_labels,
    class_colors,
    class_map_image,
    draw_class_map,
    draw_facade,
    snap_to_palette,
)
from model_service import (  # noqa: E402
    DEFAULT_MODEL_ID,
    Settings,
    input_preview,
    load_model,
    open_upload,
    translate_image,
)
from test_int8_pipeline import fake_int8_speed  # noqa: E402

from pix2pix_hub import ModelInfo, Pix2Pix, performance, unet_128  # noqa: E402
from pix2pix_hub.images.labels import index_array, label_palette, labels_to_image  # noqa: E402
from pix2pix_hub.models.hd import GlobalGenerator  # noqa: E402

FACADES = Path(__file__).resolve().parents[2] / "shared" / "data" / "facades" / "train"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A model whose pix2pix.json says what it does, with a card that has no prose at all."""
    folder = tmp_path_factory.mktemp("space") / "tiny"
    info = ModelInfo.for_training("huggan/facades", "BtoA", 256)
    Pix2Pix(unet_128(ngf=8), None, info=info).save_pretrained(folder, card="")
    return folder


# ----- palette and drawn label maps ---------------------------------------------------------------------
@pytest.mark.skipif(not FACADES.is_dir(), reason=f"facades data not found at {FACADES}")
def test_palette_colours_occur_in_the_real_facade_label_maps():
    rng = np.random.default_rng(0)
    files = sorted(FACADES.glob("*.jpg"))[:80]
    pixels = np.concatenate(
        [np.asarray(Image.open(f).convert("RGB"))[:, 256:].reshape(-1, 3)[rng.choice(256 * 256, 4000)] for f in files]
    ).astype(np.float32)
    for name, rgb in FACADE_CLASSES.items():
        near = (np.linalg.norm(pixels - np.array(rgb, np.float32), axis=1) < 30).mean()
        assert near > 0.002, f"{name} {rgb} is not a colour of the facades label maps ({near:.4%} of pixels)"


def test_palette_colours_are_distinct():
    distances = np.linalg.norm(PALETTE[:, None].astype(float) - PALETTE[None].astype(float), axis=2)
    assert distances[~np.eye(len(PALETTE), dtype=bool)].min() > 40


def test_draw_facade_is_deterministic_sized_and_uses_only_palette_colours():
    first = draw_facade(3, 384, 256)
    assert first.shape == (256, 384, 3) and first.dtype == np.uint8
    assert np.array_equal(first, draw_facade(3, 384, 256))
    assert not np.array_equal(draw_facade(1), draw_facade(2))
    colours = {tuple(c) for c in first.reshape(-1, 3)}
    assert colours <= set(FACADE_CLASSES.values())
    assert {FACADE_CLASSES["wall"], FACADE_CLASSES["window"], FACADE_CLASSES["door"]} <= colours


def test_snap_to_palette_fixes_blends_and_makes_transparency_background():
    painted = np.zeros((4, 4, 4), np.uint8)
    painted[..., :3] = FACADE_CLASSES["door"]
    painted[..., 3] = 255
    painted[0, 0, :3] = (170, 10, 10)  # anti-aliased edge of a door stroke
    painted[1, 1, 3] = 0  # erased
    snapped = snap_to_palette(painted)
    assert snapped.shape == (4, 4, 3) and snapped.dtype == np.uint8
    assert tuple(snapped[0, 0]) == FACADE_CLASSES["door"]
    assert tuple(snapped[1, 1]) == FACADE_CLASSES["background"]
    drawn = draw_facade(5)
    assert np.array_equal(snap_to_palette(drawn), drawn)


# ----- uploads ------------------------------------------------------------------------------------------
def test_open_upload_refuses_non_images_and_broken_files(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(gr.Error, match="notes.png is not an image"):
        open_upload(str(text), 10**6)
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])  # header intact, pixels cut off
    with pytest.raises(gr.Error, match="broken.jpg could not be decoded"):
        open_upload(str(broken), 10**6)
    with pytest.raises(gr.Error, match="Upload an image"):
        open_upload(None, 10**6)


def test_open_upload_refuses_huge_images_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    with pytest.raises(gr.Error, match=r"300x200 pixels.*Downscale"):
        open_upload(str(path), 100 * 100)
    assert open_upload(str(path), 300 * 200).size == (300, 200)


def test_open_upload_applies_exif_orientation(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees": phones store portrait photos like this
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    assert open_upload(str(path), 10**6).size == (20, 40)


def png_header(width: int, height: int) -> bytes:
    """An RGB PNG of that size with an empty pixel stream: its header reads, its pixels do not."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_open_upload_calls_a_decompression_bomb_too_large_with_its_size(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(60000, 60000))  # 3600 MP: PIL itself refuses to open it
    with pytest.raises(gr.Error, match=r"60000x60000 pixels \(3600\.0 MP\)") as refused:
        open_upload(str(path), 2048 * 2048)
    assert refused.value.title == "Image too large"


def test_open_upload_refuses_an_animated_image(tmp_path):
    frames = [Image.new("RGB", (20, 10), (i * 80, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(gr.Error, match="3 frames") as refused:
        open_upload(str(tmp_path / "anim.gif"), 10**6)
    assert refused.value.title == "Animated image"


# ----- model loading ------------------------------------------------------------------------------------
def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("MODEL_ID", raising=False)
    assert Settings.from_env().model_id == DEFAULT_MODEL_ID
    monkeypatch.setenv("MODEL_ID", "some/folder")
    monkeypatch.setenv("CONCURRENCY_LIMIT", "3")
    monkeypatch.setenv("MAX_PIXELS", "1000")
    settings = Settings.from_env()
    assert (settings.model_id, settings.concurrency_limit, settings.max_pixels) == ("some/folder", 3, 1000)


def test_missing_model_leaves_an_explaining_page_and_friendly_errors(tmp_path):
    missing = str(tmp_path / "no-such-model")
    model = load_model(Settings(model_id=missing))
    assert model.pix2pix is None
    assert missing in model.status and "MODEL_ID=path/to/folder" in model.status
    with pytest.raises(gr.Error, match="No model is loaded"):
        translate_image(model, Image.new("RGB", (8, 8)))


def test_loaded_model_translates_any_size_and_shows_the_direction_from_pix2pix_json(tiny_model_dir):
    assert (tiny_model_dir / "README.md").read_text() == ""
    model = load_model(Settings(model_id=str(tiny_model_dir), max_pixels=200 * 200))
    assert model.pix2pix is not None
    assert model.direction == "BtoA: CMP facade labels → photo"
    assert "BtoA: CMP facade labels → photo" in model.status and "huggan/facades" in model.status
    assert translate_image(model, Image.new("RGB", (77, 45))).size == (77, 45)
    with pytest.raises(gr.Error, match="too large|Downscale"):
        translate_image(model, Image.new("RGB", (300, 300)))
    override = load_model(Settings(model_id=str(tiny_model_dir), direction="AtoB"))
    assert override.direction == "AtoB: photo → CMP facade labels"  # the recorded sides, swapped


@pytest.fixture(scope="module")
def int8_model_dir(tmp_path_factory) -> Path:
    """A model folder shipping model.onnx and a model.int8.onnx that passed its gate (calibrated on 8 images)."""
    folder = tmp_path_factory.mktemp("space-int8") / "model"
    torch.manual_seed(0)
    pix2pix = Pix2Pix(unet_128(ngf=8).eval(), info=ModelInfo.for_training("huggan/facades", "BtoA", 256))
    rng = np.random.default_rng(0)
    pix2pix.quantize([rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(8)], path=folder.parent / "q")
    pix2pix.save_pretrained(folder, onnx=True)
    return folder


def test_precision_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("PRECISION", raising=False)
    assert Settings.from_env().precision == "auto"
    monkeypatch.setenv("PRECISION", "fp32")
    assert Settings.from_env().precision == "fp32"


def test_the_space_serves_a_shipped_int8_graph_and_shows_its_psnr(int8_model_dir, monkeypatch, tmp_path):
    fake_int8_speed(monkeypatch, tmp_path, speedup=2.5)  # as measured on a wide model: this tiny one is ~1x
    model = load_model(Settings(model_id=str(int8_model_dir)))
    assert model.pix2pix.precision == "int8"
    psnr = model.pix2pix.int8_graph.report["psnr_db"]
    assert f"**Engine:** onnxruntime int8 ({psnr:.1f} dB vs fp32, 2.5x fp32's speed on this CPU)" in model.status
    assert translate_image(model, Image.new("RGB", (77, 45))).size == (77, 45)
    forced = load_model(Settings(model_id=str(int8_model_dir), precision="fp32"))
    assert forced.pix2pix.precision == "fp32" and forced.status.endswith("**Engine:** onnxruntime")


def test_where_int8_measures_slower_the_status_says_what_was_measured(int8_model_dir, monkeypatch, tmp_path):
    fake_int8_speed(monkeypatch, tmp_path, speedup=0.8)
    model = load_model(Settings(model_id=str(int8_model_dir)))
    assert model.pix2pix.precision == "fp32"
    assert "**Engine:** onnxruntime (int8 measured 0.80x the speed of fp32 on this CPU (" in model.status
    insisted = load_model(Settings(model_id=str(int8_model_dir), precision="int8"))
    assert insisted.pix2pix.precision == "int8" and "using int8 as asked" in insisted.status


def test_a_bad_precision_setting_leaves_an_explaining_page(int8_model_dir):
    model = load_model(Settings(model_id=str(int8_model_dir), precision="int4"))
    assert model.pix2pix is None and "precision='int4' is not supported" in model.status


def test_card_prose_is_never_read_back(tmp_path):
    folder = tmp_path / "no-facts"
    card = "---\nlicense: mit\n---\nTrained on `huggan/facades`, direction `BtoA`.\n"
    Pix2Pix(unet_128(ngf=8), None).save_pretrained(folder, card=card)
    model = load_model(Settings(model_id=str(folder)))
    assert model.direction.startswith("not recorded")
    override = load_model(Settings(model_id=str(folder), direction="BtoA"))
    assert override.direction == "BtoA: label map → photo (CMP facade labels to a building photo)"


def test_space_entry_point_tunes_the_allocator_unless_told_not_to(monkeypatch):
    import app

    calls = []
    monkeypatch.setattr(performance, "tune_allocator", lambda: calls.append("tuned") or True)
    monkeypatch.setenv(performance.NO_ALLOCATOR_TUNING, "1")
    assert performance.tune_allocator_unless_disabled() is False and calls == []
    monkeypatch.delenv(performance.NO_ALLOCATOR_TUNING)
    assert performance.tune_allocator_unless_disabled() is True and calls == ["tuned"]

    class Stop(Exception):
        pass

    def stop(settings):
        raise Stop

    monkeypatch.setattr(app, "load_model", stop)  # main() goes no further than loading the model
    with pytest.raises(Stop):
        app.main()
    assert calls == ["tuned", "tuned"]


# ----- label-map models (pix2pixHD): class-index uploads, painting classes ---------------------------------------
@pytest.fixture(scope="module")
def label_model_dir(tmp_path_factory) -> Path:
    """A model taking class-index maps of 8 classes with instance boundaries (9 input channels)."""
    folder = tmp_path_factory.mktemp("space-labels") / "labels"
    torch.manual_seed(0)
    generator = GlobalGenerator(in_channels=9, ngf=4, n_downsample=2, n_blocks=1)
    Pix2Pix(generator, info=ModelInfo(direction="AtoB", label_nc=8, instance=True)).save_pretrained(folder, card="")
    return folder


def test_class_maps_are_drawn_from_the_model_classes_and_saved_as_indices_in_colour(tmp_path):
    labels = draw_class_map(3, 96, 64, 8)
    assert labels.shape == (64, 96) and np.array_equal(labels, draw_class_map(3, 96, 64, 8))
    assert set(np.unique(labels)) <= set(range(8)) and len(np.unique(labels)) > 1
    class_map_image(labels, 8).save(tmp_path / "map.png")
    with Image.open(tmp_path / "map.png") as saved:
        assert saved.mode == "P" and np.array_equal(index_array(saved), labels)  # indices, as pix2pix reads them
        assert np.array_equal(np.asarray(saved.convert("RGB")), label_palette(8)[labels])  # colours, as shown
    many = class_map_image(np.array([[0, 299]]), 300)
    assert many.mode == "I;16" and index_array(many).tolist() == [[0, 299]]


def test_painted_classes_are_read_back_as_the_nearest_class_and_erased_pixels_as_class_0():
    colours = label_palette(8)
    canvas = np.zeros((4, 4, 4), np.uint8)
    canvas[..., :3] = colours[5]
    canvas[..., 3] = 255
    canvas[0, 0, :3] = colours[3].astype(int) + 6  # an anti-aliased brush edge near class 3
    canvas[1, 1, 3] = 0  # erased
    labels = canvas_to_labels(canvas, 8)
    assert labels[0, 0] == 3 and labels[1, 1] == 0 and labels[2, 2] == 5
    assert class_colors(3) == ["#000000", "#800000", "#008000"]


def test_a_label_model_takes_class_index_uploads_and_refuses_photos(label_model_dir, tmp_path):
    model = load_model(Settings(model_id=str(label_model_dir)))
    model.pix2pix.onnx_engine.wait_until_ready()  # exact comparisons below: one engine throughout
    assert model.label_nc == 8 and "**Input:** a class-index map, 8 classes" in model.status
    labels = draw_class_map(1, 77, 45, 8)
    class_map_image(labels, 8).save(tmp_path / "map.png")
    upload = open_upload(str(tmp_path / "map.png"), 10**6)
    output = translate_image(model, upload)
    assert output.size == (77, 45)
    assert np.array_equal(np.asarray(output), model.pix2pix(labels))
    assert np.array_equal(np.asarray(input_preview(model, upload)), np.asarray(labels_to_image(labels, 8)))
    with pytest.raises(gr.Error, match="class-index map") as refused:
        translate_image(model, Image.new("RGB", (32, 32), (200, 30, 30)))
    assert refused.value.title == "Cannot translate this image"


def test_a_label_model_page_paints_its_classes_and_its_endpoint_translates_them(label_model_dir, tmp_path):
    import app

    model = load_model(Settings(model_id=str(label_model_dir)))
    examples = app.write_examples(tmp_path, model.label_nc)
    assert all(Image.open(path).mode == "P" for path in examples)  # class-index PNGs, shown in colour
    demo = app.build_demo(Settings(model_id=str(label_model_dir)), model, examples)
    (editor,) = [c for c in demo.config["components"] if c.get("type") == "imageeditor"]
    assert editor["props"]["brush"]["colors"] == class_colors(8)
    (endpoint,) = [f for f in demo.fns.values() if f.api_name == "translate_drawing"]
    canvas = np.dstack([label_palette(8)[draw_class_map(2, 64, 48, 8)], np.full((48, 64), 255, np.uint8)])
    output, (painted, compared) = endpoint.fn({"background": None, "layers": [], "composite": canvas})
    assert Image.open(output).size == (64, 48) and compared == output
    assert np.array_equal(np.asarray(Image.open(painted).convert("RGB")), canvas[..., :3])


# ----- the Space folder ---------------------------------------------------------------------------------
def test_space_readme_front_matter_matches_the_tested_stack():
    text = (SPACE / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front = text.split("---\n")[1]
    fields = dict(line.split(": ", 1) for line in front.splitlines() if ": " in line and not line.startswith(" "))
    assert fields["sdk"] == "gradio"
    assert fields["sdk_version"] == gr.__version__
    assert (SPACE / fields["app_file"]).is_file()
    assert f"  - {DEFAULT_MODEL_ID}" in front.splitlines()
    requirements = (SPACE / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("pix2pix-hub") for line in requirements)
    assert not any(line.startswith("gradio") for line in requirements), "sdk_version installs gradio on Spaces"
