"""int8 on the command line (issue 18): ``export-onnx --int8 --calibration`` (folder or dataset, the gate both
ways: exit 1, one line, nothing written) and ``--precision`` with the engine line of ``translate``."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from test_int8_pipeline import fake_int8_speed, smooth_images, write_images

from pix2pix_hub import ModelInfo, Pix2Pix, UNetGenerator
from pix2pix_hub.cli import main
from pix2pix_hub.constants import INT8_ONNX_NAME
from pix2pix_hub.images.arrays import model_to_uint8
from pix2pix_hub.inference.quantize import int8_report


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny U-Net (5 levels, ngf 8; untrained, so its int8 graph is far above the gate) that records BtoA."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("int8-cli") / "model"
    Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval(), info=ModelInfo(direction="BtoA")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    write_images(folder, smooth_images(8, 40, seed=1))
    return folder


def test_export_int8_writes_a_graph_that_carries_its_report(model, calibration, tmp_path, capsys):
    out = tmp_path / "g.int8.onnx"
    assert main(["export-onnx", str(model), str(out), "--int8", "--calibration", str(calibration)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["path"] == str(out) and report["bytes"] == out.stat().st_size
    assert (report["calibration_inputs"], report["held_out_inputs"], report["min_psnr_db"]) == (6, 2, 40.0)
    assert int8_report(out)["psnr_db"] == report["psnr_db"] >= 40.0
    assert int8_report(out)["speedup_vs_fp32"] == report["speedup_vs_fp32"] > 0  # timed here against fp32
    assert f"int8: {report['psnr_db']:.1f} dB PSNR from the fp32 outputs on the worst of 2" in captured.err


def test_export_int8_below_the_gate_exits_1_with_the_figure_in_one_line(model, calibration, tmp_path, capsys):
    out = tmp_path / "refused.onnx"
    command = ["export-onnx", str(model), str(out), "--int8", "--calibration", str(calibration), "--min_psnr", "99"]
    assert main(command) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: The int8 model's outputs are ")
    assert "below the 99 dB threshold" in err and "not written" in err
    assert list(tmp_path.iterdir()) == []


def test_export_int8_into_the_model_folder_is_what_loading_uses(model, calibration, tmp_path, capsys, monkeypatch):
    import shutil

    folder = shutil.copytree(model, tmp_path / "model")
    command = ["export-onnx", str(folder), str(folder / INT8_ONNX_NAME), "--int8", "--calibration", str(calibration)]
    assert main([*command, "--num_calibration", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["calibration_inputs"] == 3
    fake_int8_speed(monkeypatch, tmp_path / "measured")  # int8 2.5x fp32 here: this thin model's real ~1x varies
    image = tmp_path / "in.png"
    Image.fromarray(model_to_uint8(smooth_images(1, 36, seed=9)[0].numpy())).save(image)
    assert main(["translate", str(folder), str(image), str(tmp_path / "out.png"), "--quiet"]) == 0
    assert capsys.readouterr().err.count("Engine:") == 0  # --quiet
    assert main(["translate", str(folder), str(image), str(tmp_path / "out.png")]) == 0
    assert "Engine: onnxruntime int8 (" in capsys.readouterr().err
    assert main(["translate", str(folder), str(image), str(tmp_path / "out.png"), "--precision", "fp32"]) == 0
    assert "Engine: onnxruntime\n" in capsys.readouterr().err


def test_precision_int8_without_a_graph_is_a_usage_error(model, tmp_path, capsys):
    image = tmp_path / "in.png"
    Image.new("RGB", (32, 32)).save(image)
    assert main(["translate", str(model), str(image), str(tmp_path / "out.png"), "--precision", "int8"]) == 2
    assert "has no model.int8.onnx and no calibration images" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_export_int8_calibrates_on_a_dataset_input_side_in_the_model_direction(model, tmp_path, capsys, monkeypatch):
    pytest.importorskip("datasets")
    # An A|B folder (the authors' layout): A dark on the left, B bright on the right. The model records BtoA.
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for index in range(6):
        side = model_to_uint8(smooth_images(1, 32, seed=index)[0].numpy())
        canvas = Image.new("RGB", (64, 32))
        canvas.paste(Image.fromarray(side // 4), (0, 0))
        canvas.paste(Image.fromarray(192 + side // 4), (32, 0))
        canvas.save(pairs / f"{index}.png")
    seen = []
    quantize = Pix2Pix.quantize

    def recording(self, calibration, **options):
        seen.append(calibration)
        return quantize(self, calibration, **options)

    monkeypatch.setattr(Pix2Pix, "quantize", recording)
    out = tmp_path / "ds.onnx"
    command = ["export-onnx", str(model), str(out), "--int8", "--calibration", str(pairs), "--dataset", "--quiet"]
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)["calibration_inputs"] == 5  # 6 rows: 5 calibrate, 1 gates
    (images,) = seen
    assert len(images) == 6 and {image.size for image in images} == {(32, 32)}
    assert min(min(image.getdata()) for image in images)[0] >= 192  # the B side: the model's input
    assert main([*command, "--direction", "AtoB"]) == 0
    assert max(max(image.getdata()) for image in seen[-1])[0] < 64  # told otherwise: the A side


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--int8"], "--int8 needs --calibration"),
        (["--calibration", "x"], "--calibration is read by --int8 only"),
        (["--int8", "--calibration", "x", "--num_calibration", "1"], "--num_calibration must be at least 2"),
    ],
)
def test_int8_argument_errors_exit_2(model, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["export-onnx", str(model), str(tmp_path / "g.onnx"), *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_calibration_path_that_is_not_a_folder_suggests_dataset(model, tmp_path, capsys):
    command = ["export-onnx", str(model), str(tmp_path / "g.onnx"), "--int8", "--calibration", "user/pairs"]
    assert main(command) == 2
    assert "is not a folder of input images" in capsys.readouterr().err and not (tmp_path / "g.onnx").exists()


def test_export_refuses_a_graph_under_the_other_kind_s_name(model, calibration, tmp_path, capsys):
    import shutil

    folder = shutil.copytree(model, tmp_path / "model")
    shipped = (folder / "model.onnx").read_bytes() if (folder / "model.onnx").exists() else None
    int8_as_fp32 = ["export-onnx", str(folder), str(folder / "model.onnx"), "--int8", "--calibration", str(calibration)]
    assert main(int8_as_fp32) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "an int8 graph is not written under the name model.onnx" in err
    assert "model.int8.onnx" in err
    assert ((folder / "model.onnx").read_bytes() if (folder / "model.onnx").exists() else None) == shipped
    assert main(["export-onnx", str(folder), str(folder / INT8_ONNX_NAME), "--no_check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "an fp32 graph is not written under the name model.int8.onnx" in err
    assert not (folder / INT8_ONNX_NAME).exists()
