"""``precision="auto"`` decides by timing int8 against fp32 on the running machine, once: a slow and a fast int8
session choose differently, the timing stays within its budget, and the answer is remembered per CPU model,
onnxruntime version and weights (a change of any of them measures again; a new process reads it back)."""

from __future__ import annotations

import json
import time
import types

import numpy as np
import onnxruntime
import pytest
import torch
from hub_mirror import run_python
from test_int8_pipeline import fake_int8_speed

from pix2pix_hub import ModelInfo, Pix2Pix, UNetGenerator
from pix2pix_hub.constants import INT8_ONNX_NAME
from pix2pix_hub.inference import speed_choice
from pix2pix_hub.inference.speed_choice import (
    DEFAULT_MEASURE_SIDE,
    MAX_MEASURE_SIDE,
    MEASURE_BUDGET_S,
    MEASURE_CALLS,
    measure_shape,
    measure_speed,
    time_sessions,
)

REAL_CHOICES_PATH = speed_choice.choices_path  # the ONNX cache's file, before any test points it elsewhere


class SleepySession:
    """An onnxruntime session's surface whose ``run`` takes ``ms`` milliseconds (a real sleep, not a fake clock)."""

    def __init__(self, ms: float) -> None:
        self.ms, self.runs = ms, 0

    def get_inputs(self) -> list:
        return [types.SimpleNamespace(name="input")]

    def run(self, outputs, feeds: dict) -> list:
        self.runs += 1
        time.sleep(self.ms / 1000)
        return [feeds["input"]]


def make_int8_model(folder, seed: int = 0):
    """A tiny U-Net folder (resolution 64) with a model.int8.onnx of its weights (far above the gate: untrained)."""
    torch.manual_seed(seed)
    info = ModelInfo(direction="AtoB", resolution=64)
    Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval(), info=info).save_pretrained(folder)
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(8)]
    with pytest.MonkeyPatch.context() as patch:  # quantize() measures too: not what these tests count
        fake_int8_speed(patch, folder.parent / f"quantize-{seed}")
        Pix2Pix.from_pretrained(folder, precision="fp32").quantize(images, path=folder / INT8_ONNX_NAME)
    return folder


@pytest.fixture(scope="module")
def int8_folder(tmp_path_factory):
    return make_int8_model(tmp_path_factory.mktemp("choice") / "model")


# ----- the timing -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("int8_ms", "expected"), [(4.0, "int8"), (16.0, "fp32")], ids=["fast-int8", "slow-int8"])
def test_a_fast_and_a_slow_int8_session_choose_differently(tmp_path, monkeypatch, int8_ms, expected):
    monkeypatch.setattr(speed_choice, "choices_path", lambda: tmp_path / "choices.json")
    fp32, int8 = SleepySession(10.0), SleepySession(int8_ms)
    measured = measure_speed(fp32, int8, (1, 3, 8, 8), key="k")
    assert measured.chosen == expected and not measured.cached
    assert measured.int8_ms == pytest.approx(int8_ms, abs=3) and measured.fp32_ms == pytest.approx(10.0, abs=3)
    # One warm-up, then each timed call right after an untimed one of the same engine.
    assert fp32.runs == int8.runs == 1 + 2 * MEASURE_CALLS == 1 + 2 * measured.calls


def test_the_timing_stays_within_its_budget_and_a_huge_model_uses_its_warm_up_calls():
    array = np.zeros((1, 3, 8, 8), np.float32)
    start = time.perf_counter()
    fp32_ms, int8_ms, calls = time_sessions(SleepySession(150), SleepySession(100), array, budget_s=0.8)
    assert time.perf_counter() - start < 0.8 + 0.3 and calls == 1  # the warm-ups and 1 round fit, not 2 rounds
    fp32, int8 = SleepySession(400), SleepySession(200)
    start = time.perf_counter()
    fp32_ms, int8_ms, calls = time_sessions(fp32, int8, array, budget_s=0.5)
    assert calls == 1 and fp32.runs == int8.runs == 1  # warm-ups alone exceed the budget: they are the measurement
    assert fp32_ms > int8_ms and time.perf_counter() - start < 0.5 + 0.3


def test_timed_calls_hold_the_turn_so_that_calls_answered_meanwhile_never_overlap_them():
    """In the background timing, a model's own calls (``OnnxGenerator.turn``) wait for the round in progress."""
    import threading

    from pix2pix_hub.inference.onnx_engine import OnnxGenerator

    turn = threading.Lock()

    class HeldSession(SleepySession):
        def run(self, outputs, feeds: dict) -> list:
            assert turn.locked(), "a timed call ran outside its turn"
            return super().run(outputs, feeds)

    time_sessions(HeldSession(2), HeldSession(1), np.zeros((1, 3, 8, 8), np.float32), budget_s=0.5, turn=turn)
    assert not turn.locked()
    runner = OnnxGenerator(UNetGenerator(num_downs=5, ngf=8).eval())
    runner.session = SleepySession(0)  # a session whose run returns its input
    runner.open_session = lambda: runner.session
    runner.turn = turn
    answered = threading.Event()
    with turn:  # a timing round in progress
        caller = threading.Thread(target=lambda: (runner(np.ones((1, 3, 8, 8), np.float32)), answered.set()))
        caller.start()
        assert not answered.wait(0.2)  # the call waits for the round
    assert answered.wait(5)
    caller.join()


def test_the_timing_input_is_the_model_s_resolution_fitted_to_the_generator_and_bounded():
    assert measure_shape(3, 256, 256, 256) == (1, 3, 256, 256)
    assert measure_shape(1, None, 32, 32) == (1, 1, DEFAULT_MEASURE_SIDE, DEFAULT_MEASURE_SIDE)
    assert measure_shape(3, 100, 32, 32) == (1, 3, 128, 128)  # up to the multiple
    assert measure_shape(3, 64, 16, 128) == (1, 3, 128, 128)  # at least min_size
    assert measure_shape(36, 2048, 64, 64) == (1, 36, MAX_MEASURE_SIDE, MAX_MEASURE_SIDE)  # a huge model: bounded


def test_a_real_model_is_timed_at_its_own_resolution_within_the_budget(int8_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(speed_choice, "choices_path", lambda: tmp_path / "choices.json")
    seen = []
    real = speed_choice.time_sessions

    def recording(fp32_session, int8_session, array, *args, **kwargs):
        start = time.perf_counter()
        result = real(fp32_session, int8_session, array, *args, **kwargs)
        seen.append((array.shape, time.perf_counter() - start))
        return result

    monkeypatch.setattr(speed_choice, "time_sessions", recording)
    pix2pix = Pix2Pix.from_pretrained(int8_folder)
    assert not seen and "measuring" in pix2pix.engine  # timed in the background, after the first answer
    pix2pix.translate_tensor(torch.zeros(1, 3, 64, 64))
    assert pix2pix.onnx_engine.wait_until_ready(timeout=60) and "measuring" not in pix2pix.engine
    ((shape, seconds),) = seen
    assert shape == (1, 3, 64, 64) and seconds < MEASURE_BUDGET_S + 0.5
    speed = pix2pix.onnx_engine.speed
    assert pix2pix.precision == speed.chosen and speed.fp32_ms > 0 and speed.int8_ms > 0
    assert json.loads((tmp_path / "choices.json").read_text())  # remembered


# ----- remembered per machine -------------------------------------------------------------------------------------
def test_a_second_load_reads_the_choice_back_and_a_changed_cpu_runtime_or_weights_measure_again(
    int8_folder, tmp_path, monkeypatch
):
    timings = fake_int8_speed(monkeypatch, tmp_path)
    first = Pix2Pix.from_pretrained(int8_folder)
    assert first.precision == "int8" and len(timings.shapes) == 1
    timings.speedup = 0.5  # a new timing would now choose fp32: a read-back keeps int8
    again = Pix2Pix.from_pretrained(int8_folder)
    assert again.precision == "int8" and again.onnx_engine.speed.cached and len(timings.shapes) == 1
    monkeypatch.setattr(speed_choice, "cpu_name", lambda *args: "Another CPU")
    assert Pix2Pix.from_pretrained(int8_folder).precision == "fp32" and len(timings.shapes) == 2
    monkeypatch.setattr(onnxruntime, "__version__", "0.0.test")
    timings.speedup = 2.0
    assert Pix2Pix.from_pretrained(int8_folder).precision == "int8" and len(timings.shapes) == 3
    other = make_int8_model(tmp_path / "other", seed=1)
    timings.speedup = 0.5
    assert Pix2Pix.from_pretrained(other).precision == "fp32" and len(timings.shapes) == 4
    entries = json.loads((tmp_path / "choices.json").read_text())
    assert len(entries) == 4 and {entry["cpu"] for entry in entries.values()} >= {"Another CPU"}


def test_an_unreadable_choices_file_is_measured_again(int8_folder, tmp_path, monkeypatch):
    timings = fake_int8_speed(monkeypatch, tmp_path)
    (tmp_path / "choices.json").write_text("{not json")
    assert Pix2Pix.from_pretrained(int8_folder).precision == "int8" and len(timings.shapes) == 1
    assert len(json.loads((tmp_path / "choices.json").read_text())) == 1


READ_BACK = """
import json, torch
torch.set_num_threads({threads})
import pix2pix_hub.inference.speed_choice as s
def refuse(*args, **kwargs):
    raise AssertionError("timed again although this machine's choice is cached")
s.time_sessions = refuse
from pix2pix_hub import Pix2Pix
pix2pix = Pix2Pix.from_pretrained({folder!r})
pix2pix.onnx_engine.wait_until_ready()
print(json.dumps([pix2pix.precision, pix2pix.engine, pix2pix.onnx_engine.speed.cached]))
"""


def test_a_new_process_uses_the_cached_choice_without_timing(int8_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("PIX2PIX_HUB_CACHE", str(tmp_path / "cache"))
    timings = fake_int8_speed(monkeypatch, tmp_path)
    monkeypatch.setattr(speed_choice, "choices_path", REAL_CHOICES_PATH)
    first = Pix2Pix.from_pretrained(int8_folder)
    assert first.precision == "int8" and (tmp_path / "cache" / speed_choice.CHOICES_NAME).is_file()
    code = READ_BACK.format(threads=torch.get_num_threads(), folder=str(int8_folder))
    result = run_python(code, PIX2PIX_HUB_CACHE=str(tmp_path / "cache"))
    precision, engine, cached = json.loads(result.stdout.strip().splitlines()[-1])
    assert (precision, engine, cached) == ("int8", first.engine, True) and len(timings.shapes) == 1
