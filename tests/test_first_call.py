"""A fast first call: a saved model folder ships model.onnx, and a folder without one answers in torch while
onnxruntime is prepared in the background."""

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub import Pix2Pix, UNetGenerator
from pix2pix_hub.inference import export


def image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIX2PIX_HUB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def saved(folder, onnx=None):
    torch.manual_seed(0)
    return Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval()).save_pretrained(folder, onnx=onnx)


def test_save_pretrained_ships_model_onnx_by_default_and_from_pretrained_never_exports(tmp_path, cache, monkeypatch):
    folder = saved(tmp_path / "model")
    assert (folder / "model.onnx").is_file()
    assert not (saved(tmp_path / "bare", onnx=False) / "model.onnx").exists()
    monkeypatch.setattr(export, "export_onnx", lambda *args, **kwargs: pytest.fail("exported although shipped"))
    pix2pix = Pix2Pix.from_pretrained(folder)
    reference = np.asarray(Pix2Pix.from_pretrained(folder, backend="torch")(image()), dtype=np.int16)
    first = np.asarray(pix2pix(image()), dtype=np.int16)
    assert pix2pix.onnx_engine.wait_until_ready(timeout=60)
    assert pix2pix.onnx_engine.runner.graph.path == folder / "model.onnx"  # the shipped file, not an export
    later = np.asarray(pix2pix(image()), dtype=np.int16)
    assert np.abs(first - reference).max() == 0 and np.abs(later - reference).max() <= 1
    assert not cache.exists() or not list(cache.glob("*.onnx"))


def test_a_folder_without_model_onnx_answers_before_its_export_finishes(tmp_path, cache, monkeypatch):
    folder = saved(tmp_path / "model", onnx=False)
    release, started = threading.Event(), threading.Event()
    real_export = export.export_onnx

    def slow_export(*args, **kwargs):
        started.set()
        assert release.wait(60), "the test never released the export"
        return real_export(*args, **kwargs)

    monkeypatch.setattr(export, "export_onnx", slow_export)
    reference = Pix2Pix.from_pretrained(folder, backend="torch")
    pix2pix = Pix2Pix.from_pretrained(folder)
    assert pix2pix.engine == "onnxruntime" and not started.is_set()  # nothing exported at load
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    expected = reference.translate_tensor(x)
    assert torch.allclose(pix2pix.translate_tensor(x), expected, atol=1e-6)  # answered in torch, export held
    assert started.wait(30) and not pix2pix.onnx_engine.ready()  # the export started after the answer
    assert torch.allclose(pix2pix.translate_tensor(x), expected, atol=1e-6)  # still torch while it runs
    release.set()
    assert pix2pix.onnx_engine.wait_until_ready(timeout=60)
    assert pix2pix.onnx_engine.runner.session is not None
    assert torch.allclose(pix2pix.translate_tensor(x), expected, atol=1e-4)  # onnxruntime now, same outputs
    assert len(list(cache.glob("*.onnx"))) == 1  # exported once, into the cache: the next process skips it


def test_a_failed_background_export_is_a_warning_and_torch_goes_on(tmp_path, cache, monkeypatch):
    folder = saved(tmp_path / "model", onnx=False)

    def broken_export(*args, **kwargs):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(export, "export_onnx", broken_export)
    pix2pix = Pix2Pix.from_pretrained(folder)
    first = np.asarray(pix2pix(image()))
    with pytest.warns(UserWarning, match="exporter broke"):
        assert not pix2pix.onnx_engine.wait_until_ready(timeout=60)
    assert pix2pix.engine == "torch" and np.array_equal(np.asarray(pix2pix(image())), first)


def test_explicit_onnxruntime_and_fp32_load_their_graph_at_once(tmp_path, cache):
    folder = saved(tmp_path / "model", onnx=False)
    for options in ({"backend": "onnxruntime"}, {"precision": "fp32"}):
        pix2pix = Pix2Pix.from_pretrained(folder, **options)
        assert not pix2pix.onnx_engine.deferred
        pix2pix(image())
        assert pix2pix.onnx_engine.runner.session is not None  # the first call ran onnxruntime


def test_a_training_run_s_model_folder_ships_model_onnx(tmp_path, cache):
    from pix2pix_hub.training.publish import save_model_folder

    torch.manual_seed(0)
    pix2pix = Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval())
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    entries = save_model_folder(pix2pix, tmp_path / "run", "card", Image.new("RGB", (8, 8)))
    assert "model.onnx" in entries and (tmp_path / "run" / "model.onnx").is_file()
    assert (tmp_path / "run" / "checkpoints").is_dir()  # the run's own folders stay


EXIT_AFTER_ONE_CALL = """
import sys, time
import torch
from pix2pix_hub import Pix2Pix
from pix2pix_hub.inference import export
real_export = export.export_onnx
def slow_export(*args, **kwargs):
    time.sleep(1.0)
    return real_export(*args, **kwargs)
export.export_onnx = slow_export
pix2pix = Pix2Pix.from_pretrained(sys.argv[1])
pix2pix.translate_tensor(torch.zeros(1, 3, 32, 32))
print("answered", pix2pix.onnx_engine.deferred)
"""


def test_a_process_ending_during_the_background_export_waits_for_it_and_exits_cleanly(tmp_path, cache):
    """A process that exits right after its first answer (a one-image CLI call) neither aborts inside torch nor
    loses the export: it is in the cache for the next process."""
    import os
    import subprocess
    import sys

    folder = saved(tmp_path / "model", onnx=False)
    env = {**os.environ, "PIX2PIX_HUB_CACHE": str(cache)}
    result = subprocess.run(
        [sys.executable, "-c", EXIT_AFTER_ONE_CALL, str(folder)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "answered True" in result.stdout and len(list(cache.glob("*.onnx"))) == 1


def test_a_folder_with_model_int8_onnx_answers_before_int8_is_timed_then_switches_to_it(tmp_path, cache, monkeypatch):
    """The int8-against-fp32 timing runs in the background after the first answer; calls meanwhile run fp32; once
    int8 measured faster it runs, within its gate of fp32, and the choice is stored once and read back later."""
    import json

    from test_precision_choice import make_int8_model

    from pix2pix_hub.images.metrics import psnr_per_image
    from pix2pix_hub.inference import speed_choice

    folder = make_int8_model(tmp_path / "model")
    monkeypatch.setattr(speed_choice, "choices_path", lambda: tmp_path / "choices.json")
    release, started, timings = threading.Event(), threading.Event(), []

    def held_timing(fp32_session, int8_session, array, *args, **kwargs):
        timings.append(array.shape)
        started.set()
        assert release.wait(60), "the test never released the timing"
        return 30.0, 12.0, 3  # int8 2.5x as fast "here"

    monkeypatch.setattr(speed_choice, "time_sessions", held_timing)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    fp32 = Pix2Pix.from_pretrained(folder, backend="torch").translate_tensor(x)
    pix2pix = Pix2Pix.from_pretrained(folder)
    assert "measuring int8 against fp32" in pix2pix.engine and pix2pix.precision == "fp32" and not started.is_set()
    assert torch.allclose(pix2pix.translate_tensor(x), fp32, atol=1e-5)  # answered with the timing not started
    assert started.wait(30) and pix2pix.onnx_engine.ready()  # timing after the answer, the fp32 session open
    assert pix2pix.precision == "fp32" and "measuring" in pix2pix.engine
    assert torch.allclose(pix2pix.translate_tensor(x), fp32, atol=1e-4)  # fp32 onnxruntime while it is timed
    assert pix2pix.onnx_engine.runner.session is not None and pix2pix.onnx_engine.runner.precision == "fp32"
    release.set()
    assert pix2pix.onnx_engine.wait_until_ready(timeout=60)
    assert pix2pix.precision == "int8" and "2.5x fp32's speed on this CPU" in pix2pix.engine
    assert "measuring" not in pix2pix.engine and pix2pix.onnx_engine.speed.speedup == 2.5
    gate = pix2pix.int8_graph.report["min_psnr_db"]
    assert psnr_per_image(pix2pix.translate_tensor(x), fp32).min().item() >= gate  # int8 now, within the gate
    assert timings == [(1, 3, 64, 64)] and len(json.loads((tmp_path / "choices.json").read_text())) == 1
    again = Pix2Pix.from_pretrained(folder)
    assert again.onnx_engine.wait_until_ready(timeout=60) and again.precision == "int8"
    assert again.onnx_engine.speed.cached and len(timings) == 1  # read back: timed once
