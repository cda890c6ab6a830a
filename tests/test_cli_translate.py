"""``pix2pix-hub translate``: sizes, folders, odd image modes and every kind of bad input."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub import Pix2Pix, resnet_6blocks
from pix2pix_hub.cli import build_parser, main
from pix2pix_hub.commands.options import open_model
from pix2pix_hub.images.arrays import convert_image


def noise(height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_rgb(path: Path, height: int, width: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noise(height, width, seed)).save(path)
    return path


def run(*args: str | Path) -> int:
    return main(["translate", *map(str, args), "--quiet"])


@pytest.mark.parametrize("size_mode", ["pad", "resize"])
def test_odd_sizes_round_trip_to_the_same_size_and_names(model_dir, tmp_path, size_mode):
    sizes = {"a.png": (37, 53), "nested/deeper/b.png": (129, 131), "c.png": (128, 128), "d.png": (37, 53)}
    for seed, (name, (height, width)) in enumerate(sizes.items()):
        write_rgb(tmp_path / "in" / name, height, width, seed)
    assert run(model_dir, tmp_path / "in", tmp_path / "out", "--size_mode", size_mode, "--batch_size", "3") == 0
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == sorted(sizes)
    for name, (height, width) in sizes.items():
        with Image.open(tmp_path / "out" / name) as output:
            assert output.size == (width, height) and output.mode == "RGB"


def test_outputs_equal_the_pipeline_and_dropout_at_test_changes_them(model_dir, pix2pix, tmp_path):
    source = write_rgb(tmp_path / "photo.png", 40, 70)
    assert run(model_dir, source, tmp_path / "eval.png") == 0
    expected = np.asarray(pix2pix(Image.open(source).convert("RGB")))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "eval.png")), expected)
    assert run(model_dir, source, tmp_path / "dropout.png", "--dropout_at_test") == 0
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "dropout.png")), expected)


def test_onnxruntime_backend_matches_torch(model_dir, tmp_path):
    source = write_rgb(tmp_path / "photo.png", 45, 61)
    assert run(model_dir, source, tmp_path / "torch.png") == 0
    assert run(model_dir, source, tmp_path / "onnx.png", "--backend", "onnxruntime") == 0
    torch_output = np.asarray(Image.open(tmp_path / "torch.png"), dtype=int)
    onnx_output = np.asarray(Image.open(tmp_path / "onnx.png"), dtype=int)
    assert onnx_output.shape == (45, 61, 3)
    assert np.abs(torch_output - onnx_output).max() <= 1  # float differences may flip an 8-bit rounding
    args = build_parser().parse_args(["translate", str(model_dir), "in", "out", "--backend", "onnxruntime"])
    assert open_model(args).backend == "onnxruntime"


def test_single_image_into_a_folder_and_ext_override(model_dir, tmp_path):
    source = write_rgb(tmp_path / "photo.jpg", 30, 20)
    assert run(model_dir, source, tmp_path / "outdir") == 0
    assert Image.open(tmp_path / "outdir" / "photo.jpg").format == "JPEG"
    assert run(model_dir, source, tmp_path / "outdir", "--ext", "png") == 0
    assert Image.open(tmp_path / "outdir" / "photo.png").format == "PNG"


def test_folder_with_bad_files_writes_the_rest_and_exits_with_the_count(model_dir, tmp_path, capsys):
    source = tmp_path / "in"
    for seed, name in enumerate(["good1.png", "sub/good2.png", "good3.jpg"]):
        write_rgb(source / name, 33, 47, seed)
    jpeg = io.BytesIO()
    Image.fromarray(noise(64, 64)).save(jpeg, format="JPEG")
    (source / "corrupt.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (source / "text.png").write_bytes(b"this is not an image")
    # 50 megapixels, refused from the header: a 1-bit constant image is a few KB on disk and 6 MB in memory.
    Image.new("1", (7072, 7072)).save(source / "huge.png")
    (source / "notes.txt").write_text("ignored: not an image suffix")

    assert run(model_dir, source, tmp_path / "out") == 1
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["good1.png", "good3.jpg", "sub/good2.png"]
    err = capsys.readouterr().err
    assert "3 input(s) could not be translated" in err
    assert "corrupt.jpg: corrupt or truncated image" in err
    assert "text.png: not an image file" in err
    assert "huge.png: 7072x7072 is 50.0 megapixels" in err and "--max_pixels" in err
    assert "Ignoring 1 file(s)" in err


def test_max_pixels_option_refuses_and_allows(model_dir, tmp_path, capsys):
    source = write_rgb(tmp_path / "photo.png", 30, 40)
    assert run(model_dir, source, tmp_path / "out.png", "--max_pixels", "1000") == 1
    assert "above the limit" in capsys.readouterr().err and not (tmp_path / "out.png").exists()
    assert run(model_dir, source, tmp_path / "out.png", "--max_pixels", "1200") == 0


@pytest.mark.parametrize("kind", ["16-bit", "cmyk", "rgba", "grayscale", "palette"])
def test_odd_image_modes_are_converted_for_a_3_channel_model(model_dir, pix2pix, tmp_path, kind):
    rgb = Image.fromarray(noise(24, 36))
    image = {
        "16-bit": Image.fromarray(noise(24, 36, channels=1).astype(np.uint16) * 257).convert("I;16"),
        "cmyk": rgb.convert("CMYK"),
        "rgba": Image.fromarray(noise(24, 36, channels=4)),
        "grayscale": rgb.convert("L"),
        "palette": rgb.convert("P"),
    }[kind]
    path = tmp_path / ("in.jpg" if kind == "cmyk" else "in.png")
    image.save(path)
    assert run(model_dir, path, tmp_path / "out.png") == 0
    output = Image.open(tmp_path / "out.png")
    assert output.size == (36, 24) and output.mode == "RGB"
    expected = pix2pix(convert_image(Image.open(path), 3))
    np.testing.assert_array_equal(np.asarray(output), np.asarray(expected))


@pytest.mark.parametrize("generator", ["unet", "resnet"])
def test_tiny_images_are_translated_with_a_warning(model_dir, tmp_path, capsys, generator):
    if generator == "resnet":  # size_multiple 4: the pipeline alone fails below 8x8
        model_dir = Pix2Pix(resnet_6blocks(ngf=8)).save_pretrained(tmp_path / "resnet")
    write_rgb(tmp_path / "in" / "dot.png", 1, 1)
    write_rgb(tmp_path / "in" / "sliver.png", 3, 40)
    assert run(model_dir, tmp_path / "in", tmp_path / "out") == 0
    assert Image.open(tmp_path / "out" / "dot.png").size == (1, 1)
    assert Image.open(tmp_path / "out" / "sliver.png").size == (40, 3)
    err = capsys.readouterr().err
    assert "dot.png is only 1x1" in err and "sliver.png is only 40x3" in err


def test_output_folder_inside_the_input_is_not_translated_again(model_dir, tmp_path):
    write_rgb(tmp_path / "in" / "a.png", 20, 20)
    assert run(model_dir, tmp_path / "in", tmp_path / "in" / "out") == 0
    assert run(model_dir, tmp_path / "in", tmp_path / "in" / "out") == 0
    assert [p.name for p in (tmp_path / "in" / "out").rglob("*")] == ["a.png"]


def test_model_folder_without_weights_is_a_clear_error(model_dir, tmp_path, capsys):
    source = write_rgb(tmp_path / "a.png", 20, 20)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(empty, source, tmp_path / "out.png") == 2
    assert "has no config.json" in capsys.readouterr().err
    (empty / "config.json").write_text((model_dir / "config.json").read_text())
    assert run(empty, source, tmp_path / "out.png") == 2
    assert "has no model.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_device_without_cuda_is_a_clear_error(model_dir, tmp_path, capsys):
    source = write_rgb(tmp_path / "a.png", 20, 20)
    assert run(model_dir, source, tmp_path / "out.png", "--device", "cuda") == 2
    assert "CUDA is not available on this machine; use --device cpu" in capsys.readouterr().err


def test_missing_input_and_empty_folder_are_clear_errors(model_dir, tmp_path, capsys):
    assert run(model_dir, tmp_path / "nothere", tmp_path / "out") == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run(model_dir, tmp_path / "empty", tmp_path / "out") == 2
    assert "No images found" in capsys.readouterr().err


def test_model_from_a_hub_id_in_the_offline_cache(model_dir, tmp_path):
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hf" / "hub" / "models--user--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(model_dir, repo / "snapshots" / revision)
    source = write_rgb(tmp_path / "a.png", 21, 35)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    command = [shutil.which("pix2pix-hub"), "translate", "user/tiny", str(source), str(tmp_path / "out.png"), "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == (35, 21)
    command[2] = "user/missing"
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Cannot load model user/missing" in result.stderr


def test_a_mistyped_model_path_says_the_folder_does_not_exist(tmp_path, capsys):
    source = write_rgb(tmp_path / "a.png", 20, 20)
    assert run("./models/typo", source, tmp_path / "out.png") == 2
    assert "Model folder ./models/typo does not exist" in capsys.readouterr().err


# ----- nothing lost, clear errors (issue 13) ---------------------------------------------------------------------
def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["same file", "same folder", "file into its own folder", "same folder --ext"])
def test_an_output_that_would_replace_an_input_is_refused_before_anything_is_written(model_dir, tmp_path, capsys, case):
    source = tmp_path / "in"
    write_rgb(source / "x.png", 20, 20)
    write_rgb(source / "y.jpg", 20, 30, seed=1)
    before = file_bytes(source)
    args = {
        "same file": [source / "x.png", source / "x.png"],
        "same folder": [source, source],
        "file into its own folder": [source / "x.png", source],
        "same folder --ext": [source, tmp_path / "." / "in", "--ext", "png"],
    }[case]
    assert run(model_dir, *args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "would replace" in err and "Traceback" not in err
    assert file_bytes(source) == before


def test_colliding_output_names_are_refused_with_the_list(model_dir, tmp_path, capsys):
    source = tmp_path / "in"
    write_rgb(source / "scan.jpg", 20, 20)
    write_rgb(source / "scan.png", 20, 20, seed=1)
    write_rgb(source / "other.png", 20, 20, seed=2)
    assert run(model_dir, source, tmp_path / "out", "--ext", "png") == 2
    err = capsys.readouterr().err
    assert "scan.png" in err and "scan.jpg" in err and "same output" in err
    assert not (tmp_path / "out").exists()
    assert run(model_dir, source, tmp_path / "out") == 0  # without --ext the names differ
    assert sorted(file_bytes(tmp_path / "out")) == ["other.png", "scan.jpg", "scan.png"]


def test_user_errors_are_one_line_and_debug_shows_the_traceback(model_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder is needed")
    command = ["export-onnx", str(model_dir), str(blocker / "model.onnx"), "--no_check"]
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "--debug" in err
    with pytest.raises(OSError):
        main([*command, "--debug"])
    pix2pix_hub_cli = [shutil.which("pix2pix-hub"), *command]
    env = {**os.environ, "PIX2PIX_DEBUG": "1"}
    result = subprocess.run(pix2pix_hub_cli, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_an_animated_gif_is_skipped_with_the_reason(model_dir, tmp_path, capsys):
    frames = [Image.fromarray(noise(16, 24, seed)) for seed in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    assert run(model_dir, tmp_path / "anim.gif", tmp_path / "out.gif") == 1
    assert "anim.gif: an animated image (3 frames)" in capsys.readouterr().err
    assert not (tmp_path / "out.gif").exists()
