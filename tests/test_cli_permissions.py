"""What the commands write gets the permissions a normal write gets: 0644 under umask 022 and 0600 under umask 077
(translate, its ONNX cache, evaluate, export-onnx, the data preview). Temporary files made with ``mkstemp`` were
0600 whatever the umask."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix_hub.cli import main
from pix2pix_hub.data.__main__ import main as data_main


@pytest.fixture(params=[(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)], ids=["umask022", "umask077"])
def modes(request):
    """Set the umask for one test (restored after); yields the (file, folder) modes a normal write then gets."""
    mask, file_mode, dir_mode = request.param
    previous = os.umask(mask)
    yield file_mode, dir_mode
    os.umask(previous)


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def file_modes(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): mode(path) for path in sorted(folder.rglob("*")) if path.is_file()}


def write_pairs(folder: Path, count: int = 2, side: int = 24) -> Path:
    """Side-by-side A|B noise images (large enough for SSIM's window)."""
    folder.mkdir(parents=True)
    for index in range(count):
        pixels = np.random.default_rng(index).integers(0, 256, (side, 2 * side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index}.png")
    return folder


def test_translate_outputs_and_the_onnx_cache_follow_the_umask(model_dir, tmp_path, monkeypatch, modes):
    file_mode, dir_mode = modes
    monkeypatch.setenv("PIX2PIX_HUB_CACHE", str(tmp_path / "onnx-cache"))
    for name in ("a.png", "nested/b.jpg"):
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20, 12), (10, 20, 30)).save(tmp_path / "in" / name)
    # A folder without model.onnx (saved ones ship it), so the export goes to the cache.
    model = shutil.copytree(model_dir, tmp_path / "model")
    (model / "model.onnx").unlink(missing_ok=True)
    argv = ["translate", str(model), str(tmp_path / "in"), str(tmp_path / "out"), "--quiet"]
    assert main([*argv, "--backend", "onnxruntime"]) == 0
    assert file_modes(tmp_path / "out") == {"a.png": file_mode, "nested/b.jpg": file_mode}
    assert mode(tmp_path / "out") == dir_mode and mode(tmp_path / "out" / "nested") == dir_mode
    (graph,) = (tmp_path / "onnx-cache").glob("*.onnx")
    assert mode(graph) == file_mode


def test_evaluate_results_follow_the_umask(model_dir, tmp_path, modes):
    file_mode, dir_mode = modes
    data = write_pairs(tmp_path / "data")
    out = tmp_path / "results"
    argv = ["evaluate", str(model_dir), "--dataset", str(data), "--split", "train", "--output_dir", str(out)]
    assert main([*argv, "--quiet"]) == 0
    written = file_modes(out)
    assert {"metrics.json", "index.html", "grid.png", "images/00001_output.png"} <= set(written)
    assert set(written.values()) == {file_mode}
    assert mode(out) == dir_mode and mode(out / "images") == dir_mode


def test_export_onnx_file_follows_the_umask(model_dir, tmp_path, modes):
    file_mode, dir_mode = modes
    assert main(["export-onnx", str(model_dir), str(tmp_path / "out" / "model.onnx"), "--no_check"]) == 0
    assert file_modes(tmp_path / "out") == {"model.onnx": file_mode}
    assert mode(tmp_path / "out") == dir_mode


def test_data_preview_follows_the_umask(tmp_path, modes):
    file_mode, _ = modes
    data = write_pairs(tmp_path / "data")
    preview = tmp_path / "preview.png"
    assert data_main([str(data), "--preview", str(preview), "--cache_dir", str(tmp_path / "cache")]) == 0
    assert mode(preview) == file_mode
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left
