"""pix2pixHD models through ``Pix2Pix`` (issue 16, inference): GlobalGenerator and LocalEnhancer at any size up to
2048x1024 on both engines, and label-map models taking class-index maps (and instance maps): one-hot encoding
with nearest resizing only, the errors, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub import ModelInfo, Pix2Pix
from pix2pix_hub.cli import main
from pix2pix_hub.images.labels import encode_label_map, label_palette, labels_to_image
from pix2pix_hub.images.reading import ImageTooLarge
from pix2pix_hub.models.hd import GlobalGenerator, LocalEnhancer

LABEL_NC = 8
LABEL_INFO = ModelInfo(direction="AtoB", label_nc=LABEL_NC, instance=True)


def random_labels(height: int, width: int, seed: int = 0, classes: int = LABEL_NC) -> np.ndarray:
    """Blocky class indices (like a segmentation), ``(height, width)`` int64."""
    coarse = np.random.default_rng(seed).integers(0, classes, (-(-height // 8), -(-width // 8)))
    return np.kron(coarse, np.ones((8, 8), dtype=np.int64))[:height, :width]


@pytest.fixture(scope="module")
def label_model() -> Pix2Pix:
    """A label-map model (8 classes + instance boundaries) on torch: 9 input channels."""
    torch.manual_seed(0)
    generator = GlobalGenerator(in_channels=LABEL_NC + 1, ngf=4, n_downsample=2, n_blocks=1).eval()
    return Pix2Pix(generator, info=LABEL_INFO, backend="torch")


# ----- any size ---------------------------------------------------------------------------------------------------
def test_a_small_global_generator_translates_2048x1024_on_both_engines():
    torch.manual_seed(0)
    generator = GlobalGenerator(ngf=4).eval()  # pix2pixHD's depth: 4 halvings, 9 residual blocks
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1024, 2048, 3), dtype=np.uint8))
    eager = Pix2Pix(generator, backend="torch")(photo)
    onnx = Pix2Pix(generator, backend="onnxruntime")(photo)
    assert eager.size == onnx.size == (2048, 1024)
    assert np.abs(np.asarray(eager, np.int16) - np.asarray(onnx, np.int16)).max() <= 1  # within 1e-4 of [-1, 1]


@pytest.mark.parametrize("size_mode", ["pad", "resize"])
@pytest.mark.parametrize("size", [(77, 45), (5, 3), (300, 130)])
def test_a_local_enhancer_takes_any_size_and_gives_it_back(size, size_mode):
    generator = LocalEnhancer(ngf=4, n_blocks_global=1, n_blocks_local=1).eval()  # multiple 32, min side 64
    pix2pix = Pix2Pix(generator, backend="torch")
    assert pix2pix(Image.new("RGB", size), size_mode=size_mode).size == size


# ----- label maps -------------------------------------------------------------------------------------------------
def test_every_kind_of_class_index_map_gives_the_output_of_its_one_hot_encoding(label_model):
    labels = random_labels(40, 72)
    with torch.inference_mode():
        expected = label_model.generator(encode_label_map(labels, LABEL_NC, True)[None])[0]
    expected = ((expected.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    palette = Image.fromarray(labels.astype(np.uint8), "P")
    palette.putpalette(label_palette(LABEL_NC).tobytes())
    kinds = {
        "int array": labels,
        "L": Image.fromarray(labels.astype(np.uint8), "L"),
        "P (indices, not colours)": palette,
        "I;16": Image.fromarray(labels.astype(np.uint16)),
        "RGB in the class colours": labels_to_image(labels, LABEL_NC),
    }
    for kind, value in kinds.items():
        output = label_model(value)
        assert isinstance(output, Image.Image if isinstance(value, Image.Image) else np.ndarray), kind
        assert np.array_equal(np.asarray(output), expected), kind


def test_instance_maps_add_their_boundaries_and_default_to_the_class_boundaries(label_model):
    labels = random_labels(32, 48)
    ids = np.zeros_like(labels)
    ids[:, 24:] = 1  # one boundary down the middle, crossing classes
    by_class = label_model(labels)
    assert np.array_equal(by_class, label_model(labels, instance=labels))
    with_ids = label_model(labels, instance=Image.fromarray(ids.astype(np.uint8)))
    assert not np.array_equal(with_ids, by_class)
    pair = label_model([labels, labels], instance=[ids, None])
    assert np.array_equal(pair[0], with_ids) and np.array_equal(pair[1], by_class)


@pytest.mark.parametrize("size_mode", ["pad", "resize"])
def test_the_generator_sees_pure_one_hot_inputs_at_any_size(label_model, size_mode):
    seen = []
    hook = label_model.generator.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    try:
        output = label_model(random_labels(45, 77), size_mode=size_mode)
    finally:
        hook.remove()
    assert output.shape == (45, 77, 3)
    (batch,) = seen
    assert batch.shape[-2] % 4 == 0 and batch.shape[-1] % 4 == 0 and batch.shape[-2:] != (45, 77)
    assert set(batch.unique().tolist()) <= {0.0, 1.0}  # nearest resizing only: no blended classes
    assert torch.equal(batch[0, :LABEL_NC].sum(0), torch.ones(batch.shape[-2:]))


def test_bad_label_maps_are_one_line_errors_that_say_what_is_expected(label_model):
    labels = random_labels(16, 16)
    labels[3, 3] = 11
    with pytest.raises(ValueError, match=r"label value 11 outside 0\.\.7 \(label_nc=8\)") as bad_value:
        label_model(labels)
    message = str(bad_value.value)
    assert "\n" not in message and message.endswith(
        "fix the map (one class index per pixel, not grey levels or colours)."
    )
    assert "--label_nc" not in message  # training advice; an inference user cannot change the model
    with pytest.raises(ValueError, match="takes a class-index map .8 classes.*not the model's class colours"):
        label_model(Image.new("RGB", (16, 16), (10, 200, 30)))  # a photo, not a map
    with pytest.raises(ValueError, match="2-D integer array"):
        label_model(np.zeros((16, 16), np.float32))
    with pytest.raises(ValueError, match="instance map is"):
        label_model(random_labels(16, 16), instance=np.zeros((8, 16), np.int64))
    with pytest.raises(ValueError, match="a list of 2 maps"):
        label_model([labels, labels], instance=[labels])


def test_label_maps_above_max_pixels_are_refused_before_encoding(label_model):
    small = Pix2Pix(label_model.generator, info=LABEL_INFO, backend="torch", max_pixels=32 * 32)
    with pytest.raises(ImageTooLarge, match=r"image: 64x64 is .* \(max_pixels=1024\)"):
        small(np.zeros((64, 64), np.int64))
    with pytest.raises(ImageTooLarge, match=r"instance map: 64x64 is"):
        small(np.zeros((16, 16), np.int64), instance=np.zeros((64, 64), np.int64))


def test_the_model_info_must_fit_the_generator_and_image_models_take_no_instance_maps():
    with pytest.raises(
        ValueError, match="label_nc=8 with instance maps needs a generator taking 9 channels; it takes 3"
    ):
        Pix2Pix(GlobalGenerator(ngf=4, n_downsample=2, n_blocks=1), info=LABEL_INFO)
    image_model = Pix2Pix(GlobalGenerator(ngf=4, n_downsample=2, n_blocks=1), backend="torch")
    assert image_model.label_nc == 0
    with pytest.raises(ValueError, match="instance= is for label-map models"):
        image_model(Image.new("RGB", (16, 16)), instance=np.zeros((16, 16), np.int64))


def test_a_saved_label_model_loads_and_runs_the_same_on_onnxruntime(label_model, tmp_path):
    label_model.save_pretrained(tmp_path / "labels")
    loaded = Pix2Pix.from_pretrained(tmp_path / "labels", backend="onnxruntime")
    assert (loaded.label_nc, loaded.info.instance) == (LABEL_NC, True)
    labels = random_labels(45, 77, seed=1)
    difference = np.asarray(loaded(labels), np.int16) - np.asarray(label_model(labels), np.int16)
    assert loaded.engine == "onnxruntime" and np.abs(difference).max() <= 1


def test_translate_reads_class_index_pngs_as_stored(label_model, tmp_path, capsys):
    label_model.save_pretrained(tmp_path / "model")
    labels = random_labels(40, 56, seed=2).astype(np.uint8)
    (tmp_path / "in").mkdir()
    palette = Image.fromarray(labels, "P")
    palette.putpalette(label_palette(LABEL_NC).tobytes())
    palette.save(tmp_path / "in" / "p.png")
    Image.fromarray(labels, "L").save(tmp_path / "in" / "l.png")
    Image.fromarray(labels.astype(np.uint16)).save(tmp_path / "in" / "i16.png")
    Image.fromarray(labels + 8, "L").save(tmp_path / "in" / "bad.png")
    command = ["translate", str(tmp_path / "model"), str(tmp_path / "in"), str(tmp_path / "out"), "--backend", "torch"]
    assert main([*command, "--quiet"]) == 1
    expected = np.asarray(label_model(labels))
    for name in ("p.png", "l.png", "i16.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / name)), expected), name
    assert not (tmp_path / "out" / "bad.png").exists()
    assert "bad.png: translation failed" in capsys.readouterr().err


def test_translate_takes_instance_maps_by_relative_name(label_model, tmp_path, capsys):
    label_model.save_pretrained(tmp_path / "model")
    labels = random_labels(32, 48, seed=3).astype(np.uint8)
    ids = np.zeros((32, 48), np.uint16)
    ids[:, 20:] = 7
    for folder, name, array in (("in", "a.png", labels), ("in", "b.png", labels), ("ids", "a.png", ids)):
        (tmp_path / folder).mkdir(exist_ok=True)
        Image.fromarray(array).save(tmp_path / folder / name)
    model, inputs, out = str(tmp_path / "model"), str(tmp_path / "in"), str(tmp_path / "out")
    command = ["translate", model, inputs, out, "--backend", "torch", "--quiet"]
    assert main([*command, "--instance_maps", str(tmp_path / "ids")]) == 1  # b.png has no instance map
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "a.png")), label_model(labels, instance=ids))
    assert not (tmp_path / "out" / "b.png").exists()
    assert f"b.png: no instance map {tmp_path / 'ids' / 'b.png'}" in capsys.readouterr().err
    image_model = tmp_path / "image-model"
    Pix2Pix(GlobalGenerator(ngf=4, n_downsample=2, n_blocks=1)).save_pretrained(image_model)
    assert main(["translate", str(image_model), inputs, out, "--instance_maps", str(tmp_path / "ids")]) == 2
    assert "--instance_maps is for label-map models" in capsys.readouterr().err
