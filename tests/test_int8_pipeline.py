"""int8 through ``Pix2Pix``: ``from_pretrained(precision=...)`` picks a shipped ``model.int8.onnx`` by its kind,
its stored gate, its weights and its speed measured here (``fake_int8_speed`` stands in for the timing), builds and
caches one from calibration images, says why not; ``engine`` shows the PSNR; ``save_pretrained``/``push_to_hub`` ship
the ONNX graphs; a Hub download fetches them only where they may run."""

from __future__ import annotations

import json
import logging
import re
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hub_mirror import HubMirror, run_python
from PIL import Image
from test_hub import FakeHfApi
from test_quantize import smooth_images, train_tiny_translator

from pix2pix_hub import ModelInfo, Pix2Pix, UNetGenerator, unet_128
from pix2pix_hub.constants import FINGERPRINT_KEY, INT8_ONNX_NAME, ONNX_NAME
from pix2pix_hub.images.arrays import model_to_uint8
from pix2pix_hub.images.metrics import psnr_per_image
from pix2pix_hub.images.reading import ImageTooLarge
from pix2pix_hub.inference import export, speed_choice
from pix2pix_hub.inference import precision as engine_choice
from pix2pix_hub.inference.calibration import calibration_inputs, spread_evenly, spread_indices
from pix2pix_hub.inference.pipeline import download_patterns
from pix2pix_hub.inference.quantize import REPORT_KEY, QuantizationQualityError

AVX2_ONLY = {"avx2": True, "avx512f": False, "avx512_vnni": False, "avx_vnni": False, "avx512_bf16": False}
AVX2_ONLY |= {"amx_int8": False, "amx_bf16": False, "source": "test"}
WITH_VNNI = {**AVX2_ONLY, "avx512f": True, "avx512_vnni": True}
ENGINE_INT8 = re.compile(
    r"^onnxruntime int8 \(\d+\.\d dB vs fp32(, \d+\.\dx fp32's speed (on this CPU|where quantized))?\)$"
)


def fake_int8_speed(monkeypatch, folder, speedup: float = 2.5) -> types.SimpleNamespace:
    """Stand in for ``speed_choice.time_sessions``: int8 times ``speedup`` times as fast as fp32 "here" (settable as
    ``.speedup``; each timing's input shape lands in ``.shapes``); measurements are kept in ``folder``, so no test
    reads another's. The real figure of these thin models is about 1x, and noisy."""
    fake = types.SimpleNamespace(speedup=speedup, shapes=[])

    def time_sessions(fp32_session, int8_session, array, *args, **kwargs):
        fake.shapes.append(array.shape)
        return 30.0, 30.0 / fake.speedup, 3

    monkeypatch.setattr(speed_choice, "time_sessions", time_sessions)
    monkeypatch.setattr(speed_choice, "choices_path", lambda: Path(folder) / "choices.json")
    monkeypatch.setattr(engine_choice, "BACKGROUND_CHOICE", False)  # chosen at load (background: test_first_call)
    return fake


@pytest.fixture(autouse=True)
def timings(monkeypatch, tmp_path) -> types.SimpleNamespace:
    """Every test here: int8 measures 2.5x fp32's speed unless the test sets ``timings.speedup``."""
    return fake_int8_speed(monkeypatch, tmp_path / "measured")


def write_images(folder, images: torch.Tensor) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, image in enumerate(images.numpy()):
        paths.append(folder / f"{index:02d}.png")
        Image.fromarray(model_to_uint8(image)).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """``test_quantize.train_tiny_translator()`` saved as a model folder; 12 calibration PNGs of 40x48 (not a
    multiple of 32: the pipeline pads them) beside it."""
    generator = train_tiny_translator()
    root = tmp_path_factory.mktemp("int8")
    info = ModelInfo(direction="AtoB")
    Pix2Pix(generator.eval(), info=info, backend="torch").save_pretrained(root / "model")
    coarse = smooth_images(12, 48, seed=10_000)[:, :, :40]
    write_images(root / "calibration", coarse)
    return root


def copy_model(trained, tmp_path, name: str = "model"):
    import shutil

    return shutil.copytree(trained / "model", tmp_path / name)


def with_int8(trained, tmp_path, speedup: float | None = 2.5, **quantize):
    """A copy of the trained model folder with a model.int8.onnx built from its calibration images, its report
    saying int8 ran ``speedup`` times as fast as fp32 (``set_speedup``)."""
    folder = copy_model(trained, tmp_path)
    Pix2Pix.from_pretrained(folder, precision="fp32").quantize(
        trained / "calibration", path=folder / INT8_ONNX_NAME, **quantize
    )
    set_speedup(folder / INT8_ONNX_NAME, speedup)
    return folder


def set_metadata(path, key: str, value: str | None) -> None:
    """Set (or with None remove) one ``metadata_props`` entry of the ONNX file at ``path``."""
    model = onnx.load(path)
    entries = {entry.key: entry.value for entry in model.metadata_props} | {key: value}
    del model.metadata_props[:]
    for name, text in entries.items():
        if text is not None:
            entry = model.metadata_props.add()
            entry.key, entry.value = name, text
    onnx.save(model, path)


def metadata(path) -> dict[str, str]:
    return {entry.key: entry.value for entry in onnx.load(path).metadata_props}


def set_speedup(path, speedup: float | None) -> None:
    """Make the stored report of the int8 graph at ``path`` say int8 ran ``speedup`` times as fast as fp32 when it
    was quantized (None: no measurement, as in files made before the speed check). The real figure of a model this
    thin is about 1x, and noisy: tests that need int8 used under "auto" set it."""
    report = json.loads(metadata(path)[REPORT_KEY])
    assert report["speedup_vs_fp32"] > 0 and report["fp32_median_ms"] > 0 and report["int8_median_ms"] > 0
    if speedup is None:
        for key in ("speedup_vs_fp32", "fp32_median_ms", "int8_median_ms"):
            del report[key]
    else:
        report.update(speedup_vs_fp32=speedup, int8_median_ms=round(report["fp32_median_ms"] / speedup, 3))
    set_metadata(path, REPORT_KEY, json.dumps(report, sort_keys=True))


# ----- a shipped int8 graph ---------------------------------------------------------------------------------------
def test_a_shipped_int8_graph_runs_where_it_measures_faster_within_the_gate_of_fp32(trained, tmp_path, timings):
    folder = with_int8(trained, tmp_path)
    int8 = Pix2Pix.from_pretrained(folder)
    assert int8.precision == "int8" and ENGINE_INT8.match(int8.engine) and int8.precision_note is None
    assert int8.engine.endswith(", 2.5x fp32's speed on this CPU)") and int8.onnx_engine.speed.speedup == 2.5
    report = int8.int8_graph.report
    assert f"{report['psnr_db']:.1f} dB" in int8.engine and report["psnr_db"] >= 40.0
    fp32 = Pix2Pix.from_pretrained(folder, backend="torch")
    assert fp32.engine == "torch"
    # Images it was not calibrated on, at other sizes: PIL in, PIL out, as close to fp32 as the gate says.
    for side, seed in ((64, 1), (40, 2)):
        image = Image.fromarray(model_to_uint8(smooth_images(1, side, seed=20_000 + seed)[0].numpy()))
        outputs = [np.asarray(model(image), dtype=np.float32) / 127.5 - 1 for model in (int8, fp32)]
        assert int8(image).size == image.size
        tensors = [torch.from_numpy(output).permute(2, 0, 1)[None] for output in outputs]
        assert psnr_per_image(*tensors).item() >= 40.0


def test_auto_keeps_fp32_where_int8_measures_slower_here_and_says_what_it_measured(trained, tmp_path, timings, caplog):
    folder = with_int8(trained, tmp_path)
    timings.speedup, timings.shapes = 0.8, []  # a thin model: quantize/dequantize outweigh the int8 convs
    caplog.set_level(logging.INFO, logger="pix2pix_hub.inference.precision")
    auto = Pix2Pix.from_pretrained(folder)
    assert (auto.engine, auto.precision) == ("onnxruntime", "fp32")
    assert auto.precision_note.startswith("int8 measured 0.80x the speed of fp32 on this CPU (")
    assert "int8 37.5 ms, fp32 30.0 ms, 3 calls each" in auto.precision_note
    assert auto.precision_note.endswith("; using fp32") and auto.precision_note in caplog.messages
    assert auto.int8_graph is not None  # kept: save_pretrained(onnx=True) still ships it
    insisted = Pix2Pix.from_pretrained(folder, precision="int8")
    assert insisted.precision == "int8" and ENGINE_INT8.match(insisted.engine)
    assert insisted.precision_note.endswith("each, measured earlier); using int8 as asked")
    fp32 = Pix2Pix.from_pretrained(folder, precision="fp32")
    assert (fp32.precision, fp32.precision_note, fp32.int8_graph) == ("fp32", None, None)
    assert len(timings.shapes) == 1  # measured once, read back after


@pytest.mark.parametrize(("flags", "speedup", "expected"), [(WITH_VNNI, 0.9, "fp32"), (AVX2_ONLY, 1.5, "int8")])
def test_cpu_flags_never_replace_the_measurement(trained, tmp_path, timings, monkeypatch, flags, speedup, expected):
    monkeypatch.setattr("pix2pix_hub.inference.quantize.cpu_capabilities", lambda *args: flags)
    monkeypatch.setattr("pix2pix_hub.performance.cpu_capabilities", lambda *args: flags)
    folder = with_int8(trained, tmp_path)
    timings.speedup = speedup
    assert Pix2Pix.from_pretrained(folder).precision == expected


def test_the_speedup_stored_in_the_file_is_shown_never_chosen_by(trained, tmp_path, timings):
    folder = with_int8(trained, tmp_path, speedup=0.8)  # measured where it was made: another machine
    timings.shapes.clear()
    faster = Pix2Pix.from_pretrained(folder)
    assert (faster.precision, faster.precision_note) == ("int8", None)
    assert faster.engine.endswith("fp32, 2.5x fp32's speed on this CPU)")  # this machine's figure
    set_speedup(folder / INT8_ONNX_NAME, 2.5)
    timings.speedup = 1.1  # the threshold itself is not enough
    assert Pix2Pix.from_pretrained(folder).precision_note.startswith("int8 measured 1.10x the speed of fp32")
    insisted = Pix2Pix.from_pretrained(folder, precision="int8")  # no timing: the file's own figure is shown
    assert insisted.engine.endswith("fp32, 1.1x fp32's speed on this CPU)")  # read back from the measurement
    set_speedup(folder / INT8_ONNX_NAME, None)  # a file made before the speed check: measured like any other
    timings.speedup = 3.0
    older = Pix2Pix.from_pretrained(folder)
    assert older.precision == "int8" and "speedup_vs_fp32" not in older.int8_graph.report
    assert len(timings.shapes) == 3  # each changed report is another graph: measured again


def test_int8_with_neither_a_file_nor_calibration_is_a_clear_error(trained, tmp_path):
    folder = copy_model(trained, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"has no model\.int8\.onnx and no calibration images"):
        Pix2Pix.from_pretrained(folder, precision="int8")
    with pytest.raises(ValueError, match=r"precision='int8' runs the generator on onnxruntime.*backend='torch'"):
        Pix2Pix.from_pretrained(folder, precision="int8", backend="torch")
    with pytest.raises(ValueError, match="precision='int4' is not supported"):
        Pix2Pix.from_pretrained(folder, precision="int4")
    assert Pix2Pix.from_pretrained(folder).precision == "fp32"  # auto without a file: fp32, quietly


def test_int8_with_calibration_builds_into_the_model_folder_and_then_ships_it(trained, tmp_path):
    folder = copy_model(trained, tmp_path)
    built = Pix2Pix.from_pretrained(folder, precision="int8", calibration=trained / "calibration")
    assert built.precision == "int8" and (folder / INT8_ONNX_NAME).is_file()
    assert built.int8_graph.path == folder / INT8_ONNX_NAME
    reloaded = Pix2Pix.from_pretrained(folder)  # the next load finds it, auto uses it
    assert (reloaded.precision, reloaded.int8_graph.path) == ("int8", folder / INT8_ONNX_NAME)
    assert reloaded.engine.split(", ")[0] == built.engine.split(", ")[0]  # the same PSNR: the same file


def test_a_read_only_model_folder_builds_into_the_cache_and_reuses_it(trained, tmp_path, monkeypatch):
    folder = copy_model(trained, tmp_path)
    monkeypatch.setenv("PIX2PIX_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("pix2pix_hub.inference.pipeline.writable_folder", lambda folder: False)
    calibration = sorted((trained / "calibration").iterdir())  # a list of files works as well as the folder
    first = Pix2Pix.from_pretrained(folder, precision="int8", calibration=calibration)
    assert not (folder / INT8_ONNX_NAME).exists()
    (cached,) = (tmp_path / "cache").glob("int8-*.onnx")
    assert first.int8_graph.path == cached

    def no_quantizing(*args, **kwargs):
        raise AssertionError("quantized again although the cache holds this graph")

    monkeypatch.setattr("pix2pix_hub.inference.precision.quantize_generator", no_quantizing)
    again = Pix2Pix.from_pretrained(folder, precision="int8", calibration=calibration)
    assert again.int8_graph.path == cached and again.engine == first.engine


def test_auto_with_calibration_builds_then_measures_on_every_cpu(trained, tmp_path, timings, monkeypatch):
    monkeypatch.setattr("pix2pix_hub.inference.quantize.cpu_capabilities", lambda *args: AVX2_ONLY)
    folder = copy_model(trained, tmp_path)
    timings.speedup = 0.8
    auto = Pix2Pix.from_pretrained(folder, calibration=trained / "calibration")
    assert (folder / INT8_ONNX_NAME).is_file() and auto.int8_graph.path == folder / INT8_ONNX_NAME
    assert auto.precision == "fp32" and auto.precision_note.startswith("int8 measured 0.80x")
    timings.speedup = 2.0
    again = copy_model(trained, tmp_path, "again")
    assert Pix2Pix.from_pretrained(again, calibration=trained / "calibration").precision == "int8"


def test_a_file_that_failed_its_gate_lacks_its_report_or_has_other_weights_is_not_used(trained, tmp_path):
    folder = with_int8(trained, tmp_path)
    path = folder / INT8_ONNX_NAME
    original = path.read_bytes()
    report = json.loads(metadata(path)[REPORT_KEY])
    cases = {"below its gate of 40.0 dB": json.dumps({**report, "psnr_db": 31.5}), "no quality report": None}
    for expected, text in cases.items():
        path.write_bytes(original)
        set_metadata(path, REPORT_KEY, text)
        auto = Pix2Pix.from_pretrained(folder)
        assert auto.precision == "fp32" and expected in auto.precision_note, auto.precision_note
        with pytest.raises(ValueError, match=f"cannot be used: .*{expected}"):
            Pix2Pix.from_pretrained(folder, precision="int8", calibration=trained / "calibration")
    path.write_bytes(original)
    set_metadata(path, FINGERPRINT_KEY, "0" * 32)
    stale = path.read_bytes()
    assert "other weights" in Pix2Pix.from_pretrained(folder).precision_note
    with pytest.raises(ValueError, match="made from other weights"):
        Pix2Pix.from_pretrained(folder, precision="int8", calibration=trained / "calibration")
    assert path.read_bytes() == stale  # a user's file is never overwritten, even with calibration given


# ----- a graph's kind and origin ------------------------------------------------------------------------------
def test_an_int8_graph_named_model_onnx_is_refused_by_fp32_and_exported_over_by_auto(trained, tmp_path, caplog):
    folder = with_int8(trained, tmp_path)
    (folder / ONNX_NAME).write_bytes((folder / INT8_ONNX_NAME).read_bytes())  # the int8 graph as the fp32 one
    (folder / INT8_ONNX_NAME).unlink()
    with pytest.raises(ValueError, match=r"precision='fp32': .*model\.onnx is an int8 graph.*model\.int8\.onnx"):
        Pix2Pix.from_pretrained(folder, precision="fp32")
    caplog.set_level(logging.INFO, logger="pix2pix_hub.inference.precision")
    auto = Pix2Pix.from_pretrained(folder)
    assert auto.onnx_engine.wait_until_ready(timeout=120)  # the file is checked in the background (a fast first call)
    assert auto.precision == "fp32" and auto.onnx_engine.runner.graph is None  # the weights are exported instead
    assert any("model.onnx is an int8 graph" in message and "exporting" in message for message in caplog.messages)
    x = smooth_images(1, 32, seed=3)
    expected = Pix2Pix(auto.generator, backend="torch").translate_tensor(x)
    assert (auto.translate_tensor(x) - expected).abs().max() < 1e-4  # fp32's outputs, not int8's
    assert (folder / ONNX_NAME).is_file()  # the user's file is left as it is


def test_an_fp32_graph_named_model_int8_onnx_is_not_run_as_int8(trained, tmp_path):
    folder = copy_model(trained, tmp_path)
    Pix2Pix.from_pretrained(folder).save_pretrained(tmp_path / "shipped", onnx=True)
    (folder / INT8_ONNX_NAME).write_bytes((tmp_path / "shipped" / ONNX_NAME).read_bytes())
    with pytest.raises(ValueError, match=r"model\.int8\.onnx cannot be used: it is an fp32 graph"):
        Pix2Pix.from_pretrained(folder, precision="int8")
    auto = Pix2Pix.from_pretrained(folder)
    assert auto.precision == "fp32" and "it is an fp32 graph" in auto.precision_note


def test_an_int8_graph_without_a_fingerprint_is_not_used_for_any_model(trained, tmp_path):
    folder = with_int8(trained, tmp_path)
    set_metadata(folder / INT8_ONNX_NAME, FINGERPRINT_KEY, None)  # an older export, or stripped metadata
    auto = Pix2Pix.from_pretrained(folder)
    assert auto.precision == "fp32" and "records no weights fingerprint" in auto.precision_note
    with pytest.raises(ValueError, match=r"cannot be used: it records no weights fingerprint.*cannot be shown"):
        Pix2Pix.from_pretrained(folder, precision="int8")
    # The case of the report: copied beside another model's weights, it is not run for them either.
    other = tmp_path / "other"
    Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval()).save_pretrained(other)
    (other / INT8_ONNX_NAME).write_bytes((folder / INT8_ONNX_NAME).read_bytes())
    assert Pix2Pix.from_pretrained(other).precision == "fp32"
    with pytest.raises(ValueError, match="records no weights fingerprint"):
        Pix2Pix.from_pretrained(other, precision="int8")


def test_quantize_refuses_the_fp32_graph_s_name(trained, tmp_path):
    pix2pix = Pix2Pix.from_pretrained(copy_model(trained, tmp_path))
    with pytest.raises(ValueError, match=r"model\.onnx: an int8 graph is not written under the name"):
        pix2pix.quantize(trained / "calibration", path=tmp_path / ONNX_NAME)
    assert not (tmp_path / ONNX_NAME).exists()


def test_changed_weights_leave_int8_for_fp32_and_test_time_dropout_does_not(trained, tmp_path):
    folder = with_int8(trained, tmp_path)
    pix2pix = Pix2Pix.from_pretrained(folder)
    x = smooth_images(1, 32, seed=7)
    pix2pix.translate_tensor(x)
    pix2pix.translate_tensor(x, dropout_at_test=True)  # restores batch-norm counters in place: same weights
    pix2pix.translate_tensor(x)
    assert pix2pix.precision == "int8"
    with torch.no_grad():
        pix2pix.generator.decoders[-1][1].bias.add_(0.25)  # a fine-tuning step
    with pytest.warns(UserWarning, match=r"weights changed since model\.int8\.onnx was made"):
        output = pix2pix.translate_tensor(x)
    assert (pix2pix.engine, pix2pix.precision) == ("onnxruntime", "fp32")
    eager = Pix2Pix(pix2pix.generator, backend="torch").translate_tensor(x)
    assert (output - eager).abs().max() < 1e-4


def test_quantize_below_the_gate_writes_nothing_and_keeps_fp32(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("PIX2PIX_HUB_CACHE", str(tmp_path / "cache"))
    pix2pix = Pix2Pix.from_pretrained(trained / "model")
    with pytest.raises(QuantizationQualityError, match=r"dB PSNR .* below the 99 dB threshold") as refused:
        pix2pix.quantize(trained / "calibration", min_psnr_db=99)
    assert 40 <= refused.value.psnr_db < 99
    assert pix2pix.precision == "fp32" and pix2pix.int8_graph is None
    assert not list((tmp_path / "cache").glob("int8-*"))


# ----- calibration inputs -----------------------------------------------------------------------------------------
def test_spread_picks_evenly_from_first_to_last_and_all_when_there_are_few():
    assert spread_indices(10, 4) == [0, 3, 6, 9]
    assert spread_indices(400, 32)[:3] == [0, 13, 26] and spread_indices(400, 32)[-1] == 399
    assert len(set(spread_indices(400, 32))) == 32  # distinct: never the same item twice
    assert spread_indices(3, 8) == [0, 1, 2] and spread_indices(0, 8) == [] and spread_indices(5, 1) == [0]
    assert spread_evenly("abcdefghij", 4) == ["a", "d", "g", "j"]


def test_calibration_inputs_from_a_folder_spread_skip_bad_files_and_need_two(tmp_path):
    paths = write_images(tmp_path / "in", smooth_images(10, 24, seed=3))
    (tmp_path / "in" / "05.png").write_bytes(b"not an image")  # one bad file among many is skipped
    write_images(tmp_path / "in" / ".hidden", smooth_images(2, 24, seed=4))
    (tmp_path / "in" / "notes.txt").write_text("not an image suffix")
    inputs = calibration_inputs(tmp_path / "in", channels=3, count=4, max_pixels=10**6)
    assert len(inputs) == 4 and all(x.shape == (1, 3, 24, 24) and x.dtype == np.float32 for x in inputs)
    expected = [np.asarray(Image.open(paths[i]), dtype=np.float32) / 127.5 - 1 for i in (0, 3, 6, 9)]
    for actual, image in zip(inputs, expected):
        np.testing.assert_allclose(actual[0], image.transpose(2, 0, 1), atol=1e-6)
    assert len(calibration_inputs(tmp_path / "in", channels=3, count=32, max_pixels=10**6)) == 9
    with pytest.raises(ValueError, match=r"1 usable calibration image\(s\).*at least 2"):
        calibration_inputs(paths[:1], channels=3, count=32, max_pixels=10**6)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        calibration_inputs(tmp_path / "missing", channels=3, count=32, max_pixels=10**6)


def test_calibration_inputs_from_a_list_of_each_kind(tmp_path):
    images = smooth_images(2, 16, seed=5)
    uint8 = model_to_uint8(images[0].numpy())
    inputs = calibration_inputs([Image.fromarray(uint8), uint8, images[1]], channels=3, count=8, max_pixels=10**6)
    assert [x.shape for x in inputs] == [(1, 3, 16, 16)] * 3
    np.testing.assert_array_equal(inputs[0], inputs[1])  # PIL and uint8 arrays read alike
    np.testing.assert_array_equal(inputs[2][0], images[1].numpy())  # float (C, H, W) in [-1, 1] as it is
    with pytest.raises(ValueError, match="this model takes 1-channel images"):
        calibration_inputs([uint8, uint8], channels=1, count=8, max_pixels=10**6)
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        calibration_inputs([images[0] * 3, images[1]], channels=3, count=8, max_pixels=10**6)
    with pytest.raises(ImageTooLarge, match=r"A calibration image: 16x16 .* \(max_pixels=100\)"):
        calibration_inputs([uint8, uint8], channels=3, count=8, max_pixels=100)


# ----- shipping the graphs ----------------------------------------------------------------------------------------
def test_save_pretrained_onnx_ships_both_graphs_and_loading_runs_them_without_export(trained, tmp_path, monkeypatch):
    source = with_int8(trained, tmp_path)
    Pix2Pix.from_pretrained(source).save_pretrained(tmp_path / "shipped", onnx=True)
    names = {path.name for path in (tmp_path / "shipped").iterdir()}
    assert {ONNX_NAME, INT8_ONNX_NAME, "model.safetensors", "config.json"} <= names
    assert (tmp_path / "shipped" / INT8_ONNX_NAME).read_bytes() == (source / INT8_ONNX_NAME).read_bytes()

    def no_export(*args, **kwargs):
        raise AssertionError("exported although the folder ships model.onnx for these weights")

    x = smooth_images(2, 32, seed=8)
    eager = Pix2Pix.from_pretrained(tmp_path / "shipped", backend="torch").translate_tensor(x)
    monkeypatch.setattr(export, "export_onnx", no_export)
    fp32 = Pix2Pix.from_pretrained(tmp_path / "shipped", precision="fp32")
    assert fp32.onnx_engine.runner.graph.path == tmp_path / "shipped" / ONNX_NAME
    assert (fp32.translate_tensor(x) - eager).abs().max() < 1e-4
    assert Pix2Pix.from_pretrained(tmp_path / "shipped").precision == "int8"
    monkeypatch.undo()

    # A model.onnx left beside other weights is not run: the weights are exported instead.
    other = tmp_path / "other"
    Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval()).save_pretrained(other)
    (other / ONNX_NAME).write_bytes((tmp_path / "shipped" / ONNX_NAME).read_bytes())
    loaded = Pix2Pix.from_pretrained(other, precision="fp32")
    assert loaded.onnx_engine.runner.graph is None
    expected = Pix2Pix(loaded.generator, backend="torch").translate_tensor(x)
    assert (loaded.translate_tensor(x) - expected).abs().max() < 1e-4


def test_save_pretrained_onnx_without_an_int8_graph_ships_fp32_only_and_never_a_stale_one(trained, tmp_path):
    pix2pix = Pix2Pix.from_pretrained(with_int8(trained, tmp_path), precision="int8")
    with torch.no_grad():
        pix2pix.generator.decoders[-1][1].bias.add_(0.25)
    pix2pix.save_pretrained(tmp_path / "changed", onnx=True)
    assert (tmp_path / "changed" / ONNX_NAME).is_file() and not (tmp_path / "changed" / INT8_ONNX_NAME).exists()
    pix2pix.save_pretrained(tmp_path / "plain")  # default: model.onnx where onnxruntime is installed, no int8
    assert [path.name for path in (tmp_path / "plain").glob("*.onnx")] == ["model.onnx"]
    pix2pix.save_pretrained(tmp_path / "bare", onnx=False)
    assert not list((tmp_path / "bare").glob("*.onnx"))


def test_push_to_hub_uploads_the_graphs_and_the_widget_images(trained, tmp_path, monkeypatch):
    monkeypatch.setattr("pix2pix_hub.inference.pipeline.HfApi", FakeHfApi)
    FakeHfApi.uploads, FakeHfApi.calls = {"me/int8": tmp_path / "remote"}, []
    folder = with_int8(trained, tmp_path)
    widget = tmp_path / "widget.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(widget)
    pix2pix = Pix2Pix.from_pretrained(folder)
    pix2pix.push_to_hub("me/int8", onnx=True, extra_files={"samples/input.png": widget})
    remote = tmp_path / "remote"
    assert (remote / ONNX_NAME).is_file() and (remote / INT8_ONNX_NAME).is_file()
    assert (remote / "samples" / "input.png").read_bytes() == widget.read_bytes()
    assert Pix2Pix.from_pretrained(remote).engine == pix2pix.engine
    pix2pix.push_to_hub("me/int8", onnx=False)  # a push without them deletes them: the repo mirrors the folder
    assert not list(remote.glob("*.onnx")) and not (remote / "samples").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("config.json", "not a free path"),
        ("../outside.png", "not a free path"),
        ("/abs.png", "not a free path"),
        ("discriminator/x.png", "not a free path"),
        ("extra/model.bin", "is a pickle"),
    ],
)
def test_extra_files_that_would_clash_or_escape_are_refused_before_writing(tmp_path, name, message):
    source = tmp_path / "file"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match=message):
        Pix2Pix(unet_128(ngf=8)).save_pretrained(tmp_path / "out", extra_files={name: source})
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="is not a file"):
        Pix2Pix(unet_128(ngf=8)).save_pretrained(tmp_path / "out", extra_files={"a.png": tmp_path / "missing"})


# ----- downloads --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [WITH_VNNI, AVX2_ONLY], ids=["vnni", "avx2-only"])
def test_download_patterns_fetch_the_graphs_only_where_they_may_run_whatever_the_cpu(monkeypatch, flags):
    monkeypatch.setattr("pix2pix_hub.inference.quantize.cpu_capabilities", lambda *args: flags)
    base = ["*.json", "*.safetensors", "*.md", "*.png"]
    assert download_patterns("auto", "cpu", "auto", None) == [*base, ONNX_NAME, INT8_ONNX_NAME]  # measured here
    assert download_patterns("auto", "cpu", "int8", None) == [*base, ONNX_NAME, INT8_ONNX_NAME]
    assert download_patterns("auto", "cpu", "fp32", None) == [*base, ONNX_NAME]
    assert download_patterns("torch", "cpu", "auto", None) == base
    assert download_patterns("auto", "cuda", "auto", None) == base
    assert not any(pattern.endswith((".bin", ".pt", ".pth", ".onnx*")) for pattern in base)


LOAD_FROM_HUB = """
import json, pix2pix_hub.inference.speed_choice as s
s.time_sessions = lambda *args, **kwargs: (30.0, 12.0, 3)  # int8 2.5x as fast "here"
from pix2pix_hub import Pix2Pix
pix2pix = Pix2Pix.from_pretrained("me/int8", backend={backend!r})
pix2pix.onnx_engine.wait_until_ready()  # the int8 choice is made in the background
print(json.dumps([pix2pix.engine, pix2pix.precision]))
"""


@pytest.mark.slow
def test_a_hub_repo_with_graphs_downloads_them_only_when_they_may_run(trained, tmp_path):
    folder = with_int8(trained, tmp_path)
    Pix2Pix.from_pretrained(folder).save_pretrained(tmp_path / "repo", onnx=True)
    with HubMirror(tmp_path / "hub") as hub:
        hub.add_model("me/int8", tmp_path / "repo")
        for backend, home in (("auto", "hf-auto"), ("torch", "hf-torch")):
            code = LOAD_FROM_HUB.format(backend=backend)
            env = {
                "HF_ENDPOINT": hub.endpoint,
                "HF_HOME": str(tmp_path / home),
                "PIX2PIX_HUB_CACHE": str(tmp_path / home),
            }
            result = run_python(code, **env)
            engine, precision = json.loads(result.stdout.strip().splitlines()[-1])
            downloaded = {p.name for p in (tmp_path / home / "hub").rglob("*") if p.is_file()}
            if backend == "auto":
                assert ENGINE_INT8.match(engine) and precision == "int8"
                assert {ONNX_NAME, INT8_ONNX_NAME} <= downloaded
            else:
                assert (engine, precision) == ("torch", "fp32")
                assert not {ONNX_NAME, INT8_ONNX_NAME} & downloaded
