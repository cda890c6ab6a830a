"""GauGAN (SPADE) models in use: style codes (``style=``, ``seed=``, the zero code), save/load, the card, the
``translate``/``evaluate`` commands, and the ONNX graph with its style-code input ``z``.

Tiny widths throughout (ngf 4, z_dim 8): the paths are the ones full-size models take.
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub import ModelInfo, Pix2Pix, unet_128
from pix2pix_hub.cli import main
from pix2pix_hub.images.arrays import image_to_tensor
from pix2pix_hub.images.labels import encode_label_input
from pix2pix_hub.inference.export import INPUT_NAME, OUTPUT_NAME, STYLE_NAME, export_onnx, onnx_session
from pix2pix_hub.inference.onnx_engine import onnxruntime_available
from pix2pix_hub.models import SPADEGenerator

LABEL_NC = 5
Z_DIM = 8


def spade_generator(use_vae: bool = True, spectral_norm: bool = True, seed: int = 0, **options) -> SPADEGenerator:
    torch.manual_seed(seed)
    generator = SPADEGenerator(
        in_channels=LABEL_NC,
        ngf=4,
        use_vae=use_vae,
        z_dim=Z_DIM,
        spade_hidden=8,
        spectral_norm=spectral_norm,
        **options,
    )
    # Batch-norm statistics that are not the identity, so eval mode is not train mode in disguise.
    for module in generator.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return generator.eval()


def spade_model(use_vae: bool = True, backend: str = "torch", **options) -> Pix2Pix:
    info = ModelInfo(direction="AtoB", label_nc=LABEL_NC, input="labels", output="photo")
    return Pix2Pix(spade_generator(use_vae, **options), info=info, backend=backend)


def label_map(height: int = 32, width: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, LABEL_NC, (height // 8, width // 8))
    return Image.fromarray(np.kron(blocks, np.ones((8, 8), np.int64)).astype(np.uint8), "L")


def photo(height: int, width: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# ----- style codes ------------------------------------------------------------------------------------------------
def test_style_uses_the_encoders_mean_and_the_log_variance_plays_no_part():
    pix2pix = spade_model()
    labels, style = label_map(), photo(50, 70, seed=1)  # any size: the encoder resizes it
    onehot = encode_label_input(labels, LABEL_NC, False)[None]
    styled = pix2pix.translate_tensor(onehot, style=style)
    tensor = image_to_tensor(style, 3)[None]
    with torch.inference_mode():
        mean, logvar = pix2pix.generator.encode(tensor)
        expected = pix2pix.generator(onehot, mean)
    assert mean.shape == logvar.shape == (1, Z_DIM)
    torch.testing.assert_close(styled, expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        pix2pix.generator.encoder.fc_logvar.weight.mul_(3.0)
    torch.testing.assert_close(pix2pix.translate_tensor(onehot, style=style), expected, atol=1e-6, rtol=0)
    # The same photo as an array, a tensor and an image gives the same code.
    as_array = pix2pix(labels, style=np.asarray(style))
    as_tensor = pix2pix(labels, style=tensor[0])
    np.testing.assert_array_equal(pixels(as_array), pixels(pix2pix(labels, style=style)))
    np.testing.assert_array_equal(pixels(as_tensor), pixels(as_array))


def test_same_style_or_seed_gives_the_same_output_and_others_differ():
    pix2pix = spade_model()
    labels = label_map()
    zero = pixels(pix2pix(labels))
    torch.manual_seed(123)  # the global RNG plays no part
    seven = pixels(pix2pix(labels, seed=7))
    torch.manual_seed(456)
    np.testing.assert_array_equal(pixels(pix2pix(labels, seed=7)), seven)
    assert not np.array_equal(pixels(pix2pix(labels, seed=8)), seven)
    assert not np.array_equal(seven, zero)
    first, second = photo(64, 64, seed=1), photo(40, 90, seed=2)
    styled = pixels(pix2pix(labels, style=first))
    np.testing.assert_array_equal(pixels(pix2pix(labels, style=first)), styled)
    assert not np.array_equal(pixels(pix2pix(labels, style=second)), styled)
    assert not np.array_equal(styled, zero)


def test_the_seed_code_is_a_seeded_normal_draw_and_the_default_is_the_zero_code():
    pix2pix = spade_model()
    onehot = encode_label_input(label_map(), LABEL_NC, False)[None]
    code = torch.randn(1, Z_DIM, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        sampled, zero, default = (
            pix2pix.generator(onehot, code),
            pix2pix.generator(onehot, torch.zeros(1, Z_DIM)),
            pix2pix.generator(onehot),
        )
    torch.testing.assert_close(pix2pix.translate_tensor(onehot, seed=3), sampled, atol=1e-6, rtol=0)
    torch.testing.assert_close(pix2pix.translate_tensor(onehot), zero, atol=1e-6, rtol=0)
    torch.testing.assert_close(zero, default, atol=0, rtol=0)


def test_one_style_serves_every_image_of_a_batch():
    pix2pix = spade_model()
    maps = [label_map(seed=0), label_map(seed=1), label_map(32, 32, seed=2)]  # two sizes: two groups
    together = pix2pix(maps, seed=5)
    for labels, output in zip(maps, together):
        np.testing.assert_array_equal(pixels(output), pixels(pix2pix(labels, seed=5)))
    style = photo(48, 48, seed=3)
    for labels, output in zip(maps, pix2pix(maps, style=style)):
        np.testing.assert_array_equal(pixels(output), pixels(pix2pix(labels, style=style)))


def test_style_and_seed_are_refused_where_they_cannot_apply():
    labels = label_map()
    for pix2pix in (spade_model(use_vae=False), Pix2Pix(unet_128(ngf=4), backend="torch")):
        assert pix2pix.style_dim == 0
        with pytest.raises(ValueError, match="style= picks a style code, and this model"):
            pix2pix(labels if pix2pix.label_nc else photo(64, 64, 0), style=photo(32, 32, 1))
        with pytest.raises(ValueError, match="seed= picks a style code"):
            pix2pix.translate_tensor(torch.zeros(1, pix2pix.in_channels, 64, 64), seed=1)
    pix2pix = spade_model()
    assert pix2pix.style_dim == Z_DIM
    with pytest.raises(ValueError, match="not both"):
        pix2pix(labels, style=photo(32, 32, 1), seed=1)
    with pytest.raises(TypeError, match="seed= must be an integer"):
        pix2pix(labels, seed="7")
    with pytest.raises(ValueError, match="^style: "):
        pix2pix(labels, style=np.zeros((32, 32, 2), np.uint8))
    pix2pix.max_pixels = 32 * 64
    with pytest.raises(ValueError, match="style"):
        pix2pix(labels, style=photo(100, 100, 1))  # a style photo counts against max_pixels too


# ----- a model folder -------------------------------------------------------------------------------------------
def test_save_load_round_trip_keeps_the_encoder_and_the_card_says_how_to_pick_a_style(tmp_path):
    pix2pix = spade_model(num_upsampling_layers="normal")
    folder = pix2pix.save_pretrained(tmp_path / "model")
    loaded = Pix2Pix.from_pretrained(folder, backend="torch")
    assert isinstance(loaded.generator, SPADEGenerator) and loaded.style_dim == Z_DIM
    for name, tensor in pix2pix.generator.state_dict().items():
        torch.testing.assert_close(loaded.generator.state_dict()[name], tensor, atol=0, rtol=0, msg=name)
    assert any(name.startswith("encoder.") for name in loaded.generator.state_dict())
    labels, style = label_map(), photo(60, 80, seed=4)
    for options in ({}, {"seed": 11}, {"style": style}):
        np.testing.assert_array_equal(pixels(loaded(labels, **options)), pixels(pix2pix(labels, **options)))
    card = (folder / "README.md").read_text()
    assert "GauGAN SPADE generator" in card and "num_upsampling_layers=normal" in card
    assert f"z_dim={Z_DIM}" in card and "style encoder" in card and "label_nc=5 one-hot channels" in card
    assert "## Styles" in card and "pix2pix(labels, seed=7)" in card and 'style=Image.open("style.jpg")' in card
    assert "- spade" in card and "- gaugan" in card
    plain = spade_model(use_vae=False).save_pretrained(tmp_path / "plain", onnx=False)
    plain_card = (plain / "README.md").read_text()
    assert "the label map downsampled" in plain_card and "no style encoder" in plain_card
    assert "pix2pix(labels, seed=" not in plain_card


def test_a_dontcare_model_reads_its_extra_class_and_255(tmp_path):
    generator = SPADEGenerator(in_channels=LABEL_NC + 1, ngf=4, z_dim=Z_DIM, spade_hidden=8).eval()
    info = ModelInfo(label_nc=LABEL_NC, contain_dontcare_label=True)
    pix2pix = Pix2Pix(generator, info=info, backend="torch")
    array = np.asarray(label_map())
    array = array.copy()
    array[:8, :8] = 255
    as_255 = pixels(pix2pix(Image.fromarray(array, "L")))
    array[:8, :8] = LABEL_NC
    np.testing.assert_array_equal(pixels(pix2pix(Image.fromarray(array, "L"))), as_255)
    card = (pix2pix.save_pretrained(tmp_path / "model", onnx=False) / "README.md").read_text()
    assert "don't-care" in card
    with pytest.raises(ValueError, match="don't-care"):
        Pix2Pix(generator, info=ModelInfo(label_nc=LABEL_NC + 1, contain_dontcare_label=True))


# ----- the commands -------------------------------------------------------------------------------------------------
def test_translate_and_evaluate_take_style_and_seed(tmp_path, capsys):
    pix2pix = spade_model()
    folder = pix2pix.save_pretrained(tmp_path / "model", onnx=False)
    data = tmp_path / "data"
    for side in "AB":
        (data / side).mkdir(parents=True)
    maps = [label_map(seed=i) for i in range(2)]
    for index, labels in enumerate(maps):
        labels.save(data / "A" / f"{index}.png")
        pix2pix(labels, seed=3).save(data / "B" / f"{index}.png")
    style = photo(50, 50, seed=9)
    style.save(tmp_path / "style.png")
    base = ["translate", str(folder), str(data / "A"), "--backend", "torch", "--quiet"]
    assert main([*base[:3], str(tmp_path / "seed"), *base[3:], "--seed", "3"]) == 0
    assert main([*base[:3], str(tmp_path / "styled"), *base[3:], "--style", str(tmp_path / "style.png")]) == 0
    for index, labels in enumerate(maps):
        written = {kind: pixels(Image.open(tmp_path / kind / f"{index}.png")) for kind in ("seed", "styled")}
        np.testing.assert_array_equal(written["seed"], pixels(pix2pix(labels, seed=3)))
        np.testing.assert_array_equal(written["styled"], pixels(pix2pix(labels, style=style)))
    capsys.readouterr()
    with pytest.raises(SystemExit) as usage:
        main([*base[:3], str(tmp_path / "x"), *base[3:], "--seed", "1", "--style", "s.png"])
    assert usage.value.code == 2
    assert main([*base[:3], str(tmp_path / "x"), *base[3:], "--style", str(tmp_path / "missing.png")]) == 1
    assert "--style:" in capsys.readouterr().err

    evaluate = ["evaluate", str(folder), "--dataset", str(data), "--split", "train", "--backend", "torch", "--quiet"]
    assert main([*evaluate, "--output_dir", str(tmp_path / "eval-seed"), "--seed", "3"]) == 0
    report = json.loads((tmp_path / "eval-seed" / "metrics.json").read_text())
    assert report["mean"]["l1"] == 0.0 and report["style"] == "seed 3"  # the targets were made with seed 3
    assert main([*evaluate, "--output_dir", str(tmp_path / "eval-zero")]) == 0
    report = json.loads((tmp_path / "eval-zero" / "metrics.json").read_text())
    assert report["mean"]["l1"] > 0 and report["style"] == "zero code"

    plain = spade_model(use_vae=False).save_pretrained(tmp_path / "plain", onnx=False)
    capsys.readouterr()
    assert main(["translate", str(plain), str(data / "A"), str(tmp_path / "p"), "--seed", "1", "--quiet"]) == 2
    assert "--seed picks a style code, and this model" in capsys.readouterr().err


# ----- ONNX -------------------------------------------------------------------------------------------------------
onnx_only = pytest.mark.skipif(not onnxruntime_available(), reason="needs onnx and onnxruntime")


@onnx_only
def test_onnx_graph_takes_the_style_code_as_input_z_within_1e4_of_torch(tmp_path):
    generator = spade_generator()
    report = export_onnx(generator, tmp_path / "spade.onnx")
    assert report["max_abs_diff"] < 1e-4 and report["style_dim"] == Z_DIM
    session = onnx_session(tmp_path / "spade.onnx")
    inputs = {item.name: item.shape for item in session.get_inputs()}
    assert list(inputs) == [INPUT_NAME, STYLE_NAME] and inputs[STYLE_NAME][1] == Z_DIM
    rng = torch.Generator().manual_seed(1)
    labels = torch.rand(3, LABEL_NC, 32, 64, generator=rng) * 2 - 1
    code = torch.randn(3, Z_DIM, generator=rng)
    with torch.inference_mode():
        expected = generator(labels, code).numpy()
    actual = session.run([OUTPUT_NAME], {INPUT_NAME: labels.numpy(), STYLE_NAME: code.numpy()})[0]
    assert np.abs(actual - expected).max() < 1e-4
    # Changing the code changes the output: the input is wired, not folded into a constant.
    other = session.run([OUTPUT_NAME], {INPUT_NAME: labels.numpy(), STYLE_NAME: code.numpy() + 1})[0]
    assert np.abs(other - actual).max() > 1e-3


@onnx_only
def test_spectral_norm_exports_as_fixed_weights(tmp_path):
    import onnx

    ops, generators = {}, {True: spade_generator(spectral_norm=True), False: spade_generator(spectral_norm=False)}
    before = {name: tensor.clone() for name, tensor in generators[True].state_dict().items()}
    for spectral_norm, generator in generators.items():
        export_onnx(generator, tmp_path / f"{spectral_norm}.onnx", check=False)
        graph = onnx.load(tmp_path / f"{spectral_norm}.onnx").graph
        ops[spectral_norm] = collections.Counter(node.op_type for node in graph.node)
    assert ops[True] == ops[False]  # no power-iteration ops: the same graph as without spectral norm
    # The model itself keeps its parametrizations and weights (the export baked a copy).
    assert torch.nn.utils.parametrize.is_parametrized(generators[True].blocks[0].conv_0)
    for name, tensor in generators[True].state_dict().items():
        torch.testing.assert_close(tensor, before[name], atol=0, rtol=0, msg=name)


@onnx_only
def test_a_saved_folder_ships_model_onnx_and_onnxruntime_runs_the_styles(tmp_path):
    pix2pix = spade_model()
    folder = pix2pix.save_pretrained(tmp_path / "model")
    assert (folder / "model.onnx").is_file()
    session = onnx_session(folder / "model.onnx")
    assert [item.name for item in session.get_inputs()] == [INPUT_NAME, STYLE_NAME]
    loaded = Pix2Pix.from_pretrained(folder)  # auto: torch first, the shipped graph opened in the background
    labels, style = label_map(), photo(40, 40, seed=2)
    np.testing.assert_array_equal(pixels(loaded(labels, seed=4)), pixels(pix2pix(labels, seed=4)))
    assert loaded.onnx_engine.wait_until_ready(timeout=120) and loaded.engine == "onnxruntime"
    for options in ({}, {"seed": 4}, {"style": style}):
        on_onnx = pixels(loaded(labels, **options))
        assert np.abs(on_onnx - pixels(pix2pix(labels, **options))).max() <= 1  # within one grey level
    assert loaded.engine == "onnxruntime"  # no fall-back to torch on the way


@onnx_only
def test_int8_graph_of_a_styled_generator_takes_z_and_passes_the_gate(tmp_path, capsys):
    from pix2pix_hub.inference.onnx_engine import OnnxGenerator, PrebuiltGraph, weights_fingerprint

    pix2pix = spade_model()
    generator = pix2pix.generator
    folder = pix2pix.save_pretrained(tmp_path / "model", onnx=False)
    maps = tmp_path / "maps"
    maps.mkdir()
    for index in range(4):
        label_map(seed=index).save(maps / f"{index}.png")
    Image.new("RGB", (32, 32), (1, 2, 3)).save(maps / "colour.png")  # not a class-index map: skipped
    # The CLI route: class-index maps calibrate a label-map model (one-hot encoded as its calls encode them).
    argv = ["export-onnx", str(folder), str(tmp_path / "model.int8.onnx"), "--int8", "--calibration", str(maps)]
    assert main([*argv, "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["psnr_db"] >= 40
    for side in "AB":  # the input side of a paired dataset calibrates it too
        (tmp_path / "data" / side).mkdir(parents=True)
    for index in range(3):
        label_map(seed=index).save(tmp_path / "data" / "A" / f"{index}.png")
        photo(32, 64, seed=index).save(tmp_path / "data" / "B" / f"{index}.png")
    argv = ["export-onnx", str(folder), str(tmp_path / "data.int8.onnx"), "--int8", "--dataset", str(tmp_path / "data")]
    assert main([*argv, "--split", "train", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["held_out_inputs"] >= 1
    graph = PrebuiltGraph(tmp_path / "model.int8.onnx", weights_fingerprint(generator), report)
    runner = OnnxGenerator(generator, graph)
    assert [item.name for item in runner.open_session().get_inputs()] == [INPUT_NAME, STYLE_NAME]
    batch = torch.stack([encode_label_input(label_map(seed=i), LABEL_NC, False) for i in range(2)])
    code = torch.randn(1, Z_DIM, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = generator(batch, code.expand(2, -1))
    int8 = runner(batch, code)
    assert runner.precision == "int8"
    assert int8.shape == expected.shape and (int8 - expected).abs().max() < 0.05
