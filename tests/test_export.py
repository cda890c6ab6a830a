"""ONNX export: parity with torch, dynamic batch and spatial size, metadata, the CLI and failure handling."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from pix2pix_hub import Pix2Pix, resnet_6blocks, unet_128
from pix2pix_hub.cli import main
from pix2pix_hub.inference import export as export_module
from pix2pix_hub.inference.export import ParityError, export_onnx, onnx_session, parity_side
from pix2pix_hub.models.hd import GlobalGenerator, LocalEnhancer


@pytest.mark.parametrize(
    "build", [lambda: unet_128(ngf=8), lambda: resnet_6blocks(ngf=8, in_channels=1)], ids=["unet", "resnet"]
)
def test_export_matches_torch_on_new_batch_and_spatial_sizes(tmp_path, build):
    torch.manual_seed(0)
    generator = build().eval()
    report = export_onnx(generator, tmp_path / "g.onnx")
    assert report["max_abs_diff"] <= 1e-4
    multiple = generator.size_multiple
    session = onnx_session(tmp_path / "g.onnx")
    # Neither the export example nor the parity check used this batch size or shape.
    height, width = (3 * multiple, multiple) if multiple >= 64 else (68, 36)
    batch = torch.rand(3, generator.in_channels, height, width) * 2 - 1
    with torch.inference_mode():
        expected = generator(batch).numpy()
    actual = session.run(["output"], {"input": batch.numpy()})[0]
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= 1e-4
    metadata = {entry.key: entry.value for entry in onnx.load(tmp_path / "g.onnx").metadata_props}
    assert metadata["size_multiple"] == str(multiple)
    assert metadata["in_channels"] == str(generator.in_channels)
    assert json.loads(metadata["config"])["ngf"] == 8


@pytest.mark.parametrize(
    ("build", "side"),
    [(lambda: GlobalGenerator(ngf=4), 64), (lambda: LocalEnhancer(ngf=4), 128)],
    ids=["global", "local"],
)
def test_pix2pixhd_generators_at_their_default_depths_export_within_1e_4(tmp_path, build, side):
    torch.manual_seed(0)
    generator = build().eval()  # 4 halvings and 9 blocks in the global part; 1 local branch of 3 blocks
    report = export_onnx(generator, tmp_path / "g.onnx")
    assert report["checked_shapes"] == [f"1x3x{side}x{side}", f"2x3x{side}x{2 * side}"]
    assert report["max_abs_diff"] <= 1e-4
    # A shape the check did not use: 3:1, batch 2, at the smallest side the generator takes twice over.
    height, width = 2 * generator.min_size, 6 * generator.min_size
    batch = torch.rand(2, 3, height, width) * 2 - 1
    with torch.inference_mode():
        expected = generator(batch).numpy()
    actual = onnx_session(tmp_path / "g.onnx").run(["output"], {"input": batch.numpy()})[0]
    assert np.abs(actual - expected).max() <= 1e-4


def test_the_parity_check_side_is_twice_the_smallest_side_and_a_multiple():
    # max(64, 2 * min_size) rounded up to size_multiple; networks without a min_size take any multiple
    assert parity_side(unet_128(ngf=1)) == 128  # 64 rounded up to the multiple
    assert parity_side(resnet_6blocks(ngf=1)) == 64
    assert parity_side(GlobalGenerator(ngf=1)) == 64  # multiple 16, min side 32
    assert parity_side(LocalEnhancer(ngf=1)) == 128  # multiple 32, min side 64
    assert parity_side(GlobalGenerator(ngf=1, n_downsample=6)) == 256  # multiple 64, min side 128


def test_failed_parity_check_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "parity_check", lambda *args, **kwargs: 0.5)
    with pytest.raises(ParityError, match="differs from torch by up to 0.5"):
        export_onnx(unet_128(ngf=8), tmp_path / "g.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_onnx_cli_reports_the_difference(tmp_path, capsys):
    Pix2Pix(unet_128(ngf=8)).save_pretrained(tmp_path / "model")
    assert main(["export-onnx", str(tmp_path / "model"), str(tmp_path / "out" / "model.onnx")]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["max_abs_diff"] <= 1e-4 and report["checked_shapes"] == ["1x3x128x128", "2x3x128x256"]
    assert "Parity with torch: max abs diff" in captured.err
    assert (tmp_path / "out" / "model.onnx").stat().st_size == report["bytes"]


def test_export_onnx_cli_without_weights_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    assert main(["export-onnx", str(tmp_path / "model"), str(tmp_path / "model.onnx")]) == 2
    assert "has no config.json" in capsys.readouterr().err
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_export_onto_a_file_of_the_model_folder_is_refused(tmp_path, capsys, name):
    folder = Pix2Pix(unet_128(ngf=8)).save_pretrained(tmp_path / "model")
    before = (folder / name).read_bytes()
    assert main(["export-onnx", str(folder), str(folder / name), "--no_check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "would replace it" in err
    assert (folder / name).read_bytes() == before
    assert main(["export-onnx", str(folder), str(folder / "model.onnx"), "--no_check"]) == 0  # a new file is fine


def test_export_onnx_refuses_the_int8_graph_s_name(tmp_path):
    with pytest.raises(ValueError, match=r"an fp32 graph is not written under the name model\.int8\.onnx"):
        export_onnx(unet_128(ngf=8), tmp_path / "model.int8.onnx")
    assert not (tmp_path / "model.int8.onnx").exists()
