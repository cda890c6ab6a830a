"""The benchmarks stay runnable and bounded: which variants run where (emulated bf16 skipped unless asked), the
time bound on their loops, and the GPU check's ``--smoke`` mode on a CPU (so the script cannot rot)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

AVX2_ONLY = {"avx2": True, "avx512f": False, "avx512_vnni": False, "avx_vnni": False, "avx512_bf16": False}
AVX2_ONLY |= {"amx_int8": False, "amx_bf16": False, "source": "test"}
WITH_BF16 = AVX2_ONLY | {"avx512f": True, "avx512_vnni": True, "avx512_bf16": True}


@pytest.mark.cuda
def test_cuda_marker_probe():
    """What ``pytest -m cuda`` (benchmarks/bench_gpu.py) checks first: the GPU is there and computes."""
    x = torch.arange(4.0, device="cuda")
    assert (x * 2).sum().item() == 12.0


def test_bench_train_skips_emulated_bf16_unless_asked():
    import bench_train

    variants, skipped, notes = bench_train.variant_plan(include_emulated=False, capabilities=AVX2_ONLY)
    assert variants == ["plain_eager", "default"]
    assert "emulated" in skipped["default_bf16"] and "--include_emulated" in skipped["default_bf16"]
    assert notes == {}

    variants, skipped, notes = bench_train.variant_plan(include_emulated=True, capabilities=AVX2_ONLY)
    assert variants == ["plain_eager", "default", "default_bf16"] and skipped == {}
    assert "--include_emulated" in notes["default_bf16"]

    variants, skipped, notes = bench_train.variant_plan(include_emulated=False, capabilities=WITH_BF16)
    assert variants == ["plain_eager", "default", "default_bf16"] and skipped == {} and notes == {}


def test_bench_train_report_without_bf16_has_no_bf16_ratio():
    import bench_train

    results = {
        "plain_eager": {"train_step_s": 2.0, "infer_s": 0.2, "images_per_s_batch4": 1.0},
        "default": {"train_step_s": 1.0, "infer_s": 0.1, "images_per_s_batch4": 1.5},
    }
    ratios = bench_train.speedups(results, [4, 8])
    assert ratios == pytest.approx({"train_step": 2.0, "infer": 2.0, "images_per_s_batch4": 1.5})
    results["default_bf16"] = {"train_step_s": 0.5, "images_per_s_batch4": 3.0}
    assert bench_train.speedups(results, [4])["bf16_train_step"] == pytest.approx(2.0)


def test_bench_gpu_keeps_what_the_cuda_tests_said_when_their_timeout_stops_them(tmp_path):
    import bench_gpu

    slow = tmp_path / "test_slow_cuda.py"
    slow.write_text(
        "import time, pytest\n"
        "pytestmark = pytest.mark.cuda\n"
        "def test_quick():\n    pass\n"
        "def test_broken():\n    assert False\n"
        "def test_stuck():\n    time.sleep(60)\n"
    )
    (tmp_path / "conftest.py").write_text(
        "def pytest_configure(config):\n    config.addinivalue_line('markers', 'cuda: a GPU test')\n"
    )
    args = bench_gpu.parse_args(["--smoke", "--device", "cpu", "--tests", str(slow), "--tests_timeout", "5"])
    result = bench_gpu.tests_section(args, bench_gpu.TimeBound(600))
    assert "stopped after 5 s" in result["error"]
    ended = {name.split("::")[-1]: outcome for name, outcome in result["ended_before_the_stop"].items()}
    assert ended == {"test_quick": "PASSED", "test_broken": "FAILED"}


def test_bench_gpu_precisions_follow_native_bf16(monkeypatch):
    import bench_common
    import bench_gpu

    args = bench_gpu.parse_args(["--smoke", "--device", "cpu"])
    monkeypatch.setattr(bench_gpu, "cpu_bf16_emulated", lambda: bench_common.cpu_bf16_emulated(AVX2_ONLY))
    run, skipped, _ = bench_gpu.precisions(args)
    assert run == ["fp32"] and "--include_emulated" in skipped["bf16"]
    args.include_emulated = True
    assert bench_gpu.precisions(args)[0] == ["fp32", "bf16"]
    monkeypatch.setattr(bench_gpu, "cpu_bf16_emulated", lambda: bench_common.cpu_bf16_emulated(WITH_BF16))
    args.include_emulated = False
    assert bench_gpu.precisions(args)[0] == ["fp32", "bf16"]
    assert "7.5" in bench_common.cuda_bf16_emulated((7, 5)) and bench_common.cuda_bf16_emulated((9, 0)) is None


def test_time_bound_stops_loops_early_but_keeps_one_call():
    from bench_common import TimeBound, timed_calls

    bound = TimeBound(0.0)
    assert list(bound.loop(10)) == [0] and bound.stopped_early
    bound = TimeBound(0.05)
    times = timed_calls(lambda: time.sleep(0.02), 100, bound)
    assert 1 <= len(times) < 10 and bound.report()["stopped_early"]
    unbounded = TimeBound(None)
    assert len(timed_calls(lambda: None, 5, unbounded)) == 5 and not unbounded.stopped_early


def test_bench_gpu_switches_absent_are_not_available_and_cuda_ones_need_cuda():
    import bench_gpu

    args = bench_gpu.parse_args(["--smoke", "--device", "cpu"])
    switches = {name: {"field": None, "on": None, "default_on": False} for name in bench_gpu.SWITCHES}
    usable, reasons = bench_gpu.usable_switches(args, switches)
    assert usable == [] and all(reason.startswith("not available") for reason in reasons.values())

    switches = {name: {"field": name, "on": True, "default_on": False} for name in bench_gpu.SWITCHES}
    usable, reasons = bench_gpu.usable_switches(args, switches)
    assert usable == ["channels_last"]
    assert reasons["cudnn_benchmark"] == reasons["tf32"] == reasons["cuda_graphs"] == "needs CUDA"
    assert "--compile_on_cpu" in reasons["compile"]
    settings = bench_gpu.switch_settings(switches, ("channels_last",))
    assert settings == {"channels_last": True, "cudnn_benchmark": False, "tf32": False, "compile": False} | {
        "cuda_graphs": False
    }


def test_bench_gpu_applies_channels_last_itself_where_the_library_did_not():
    import bench_gpu

    from pix2pix_hub.models import PatchDiscriminator, unet_128

    class Parts:
        generator, discriminator = unet_128(ngf=4), PatchDiscriminator(ndf=4)

    parts = Parts()
    batch = {"input": torch.rand(1, 3, 128, 128)}
    assert bench_gpu.switch_effect("channels_last", parts) is False
    parts, batch = bench_gpu.apply_switch("channels_last", parts, batch)
    assert bench_gpu.switch_effect("channels_last", parts) is True
    assert batch["input"].is_contiguous(memory_format=torch.channels_last)


def test_bench_gpu_cuda_graphs_case_is_compile_reduce_overhead_compared_with_plain_and_compile():
    import bench_gpu

    switches = bench_gpu.probe_switches()
    assert switches["cuda_graphs"]["field"] == "compile_mode" and not switches["cuda_graphs"]["default_on"]
    settings = bench_gpu.switch_settings(switches, ("cuda_graphs",))
    assert settings["compile"] is True and settings["compile_mode"] == "reduce-overhead"
    assert bench_gpu.switch_settings(switches, ("compile",))["compile_mode"] == "default"
    cpu = bench_gpu.parse_args(["--smoke", "--device", "cpu"])
    reason = bench_gpu.usable_switches(cpu, switches)[1]["cuda_graphs"]
    train = {"switches_not_measured": {"cuda_graphs": reason}, "cases": {}, "cases_skipped": {}}
    assert bench_gpu.graphs_comparison(train, ["fp32"])["skipped"].startswith("needs CUDA")
    cases = {f"fp32-{label}-b1": {"step_s": s} for label, s in (("baseline", 0.02), ("compile", 0.015))}
    cases["fp32-cuda_graphs-b1"] = {"step_s": 0.01}
    train = {"switches_not_measured": {}, "cases": cases, "cases_skipped": {"bf16-cuda_graphs-b1": "time budget"}}
    compared = bench_gpu.graphs_comparison(train, ["fp32", "bf16"])
    assert compared["fp32"]["speedup_vs_baseline"] == 2.0 and compared["fp32"]["speedup_vs_compile"] == 1.5
    assert compared["fp32"]["pays"] and "speedup_vs_plain_eager" not in compared["fp32"]
    assert compared["bf16"]["not_measured"] == "time budget" and not compared["bf16"]["pays"]
    cases["fp32-cuda_graphs-b1"] = {"step_s": 0.0149}  # faster than compile by under 3%: does not pay
    assert not bench_gpu.graphs_comparison(train, ["fp32"])["fp32"]["pays"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU smoke run; a GPU runs the full check")
def test_bench_gpu_smoke_runs_on_cpu_in_seconds(tmp_path):
    """``bench_gpu.py --smoke``: every section runs on a CPU, the report names what ran, and the CUDA-marked test
    of this file is selected and skipped (the marker is defined and honoured)."""
    out = tmp_path / "gpu-check.json"
    command = [sys.executable, str(BENCHMARKS / "bench_gpu.py"), "--smoke", "--json_out", str(out)]
    command += ["--tests", "tests/test_benchmarks.py"]
    started = time.monotonic()
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == report
    assert report["complete"] and report["smoke"] and report["device"] == "cpu"
    tests = report["tests"]
    assert tests["ok"] and tests["skipped"] == 1 and tests["passed"] == 0 and tests["failed"] == []
    cases = report["train"]["cases"]
    assert all("error" not in case for case in cases.values()), cases
    assert cases["fp32-baseline-b1"]["step_s"] > 0 and cases["fp32-plain_eager-b1"]["step_s"] > 0
    assert ("bf16-baseline-b1" in cases) == (report["machine"]["native_bf16"])
    not_measured = report["train"]["switches_not_measured"]
    for name in ("channels_last", "cudnn_benchmark", "tf32", "compile", "cuda_graphs"):
        assert name in not_measured or any(name in case["switches"] for case in cases.values()), name
    assert report["projection"]["minutes"]["fp32-baseline-b1"] > 0
    assert report["inference"]["sizes"]["fp32"]["128"]["image_ms"] > 0
    assert time.monotonic() - started < 60


def test_every_benchmark_has_a_time_bound_and_a_json_file_option():
    """A new benchmark script gets the bound too (``bench_common.TimeBound``): none may loop without one."""
    scripts = sorted(path for path in BENCHMARKS.glob("bench_*.py") if path.name != "bench_common.py")
    assert len(scripts) >= 8
    for script in scripts:
        text = script.read_text()
        assert "--max_seconds" in text or "--budget_s" in text, f"{script.name} has no time bound option"
        assert "--json_out" in text, f"{script.name} cannot write its report to a file"


def test_bench_gpu_skips_what_its_budget_has_no_room_for(tmp_path):
    """A spent budget: no case starts, each is listed with why, and the report is still whole."""
    command = [sys.executable, str(BENCHMARKS / "bench_gpu.py"), "--smoke", "--tests", "--budget_s", "0.001"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["complete"] and report["train"]["cases"] == {}
    skipped = report["train"]["cases_skipped"]
    assert "fp32-baseline-b1" in skipped and all(reason.startswith("time budget") for reason in skipped.values())
    assert report["inference"]["sizes"]["fp32"]["128"] == "skipped: time budget"
    assert report["tests"] == {"skipped": "no --tests paths given"}


def test_bench_gpu_reads_and_restores_tf32_whichever_api_set_it():
    """A library that sets TF32 through torch's new ``fp32_precision`` API must not make the benchmark's reading of
    the flags raise (torch refuses a legacy read after a new-API write), and each case starts from the same flags."""
    import bench_gpu

    initial = bench_gpu.backend_flags()
    try:
        if bench_gpu.new_tf32_api():
            torch.backends.cuda.matmul.fp32_precision = "tf32"
        else:
            torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        assert bench_gpu.tf32_on() is True
        changed = bench_gpu.backend_flags()
        assert not any(str(value).startswith("unreadable") for value in changed.values()), changed
    finally:
        bench_gpu.restore_flags(initial)
    assert bench_gpu.backend_flags() == initial and bench_gpu.tf32_on() is False


def run_benchmark(script: str, arguments: list[str], out: Path, timeout: float = 120) -> dict:
    """Run ``benchmarks/<script>`` with ``arguments``; its report (stdout's last line, checked equal to ``out``)."""
    command = [sys.executable, str(BENCHMARKS / script), *arguments, "--json_out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert json.loads(out.read_text()) == report
    return report


@pytest.mark.slow
def test_bench_spade_smoke_runs_the_cases_asked_in_seconds(tmp_path):
    """``bench_spade.py --smoke``: each asked case runs in its own process at 128x128, the report names them with
    positive times and memory, and a case with its ``-ckpt`` twin gets a checkpointing comparison."""
    cases = ["spade-128x128", "spade-128x128-ckpt", "hd-128x128"]
    started = time.monotonic()
    report = run_benchmark("bench_spade.py", ["--smoke", "--only", *cases], tmp_path / "spade.json")
    assert report["settings"]["smoke"] and report["settings"]["steps"] == 1 and report["cases_skipped"] == {}
    assert [case["name"] for case in report["cases"]] == cases
    for case in report["cases"]:
        assert case["step_s"] > 0 and case["step_cpu_s"] > 0 and case["peak_rss_mb"] > 0, case
        assert (case["width"], case["height"]) == (128, 128) and "--ngf 4" in case["flags"]
        assert "loss_G_GAN" in case["losses"] and ("loss_G_KL" in case["losses"]) == (case["model"] == "spade")
    assert "--preset spade" in report["cases"][0]["flags"] and "--gradient_checkpointing" in report["cases"][1]["flags"]
    (saving,) = report["checkpointing"]
    assert saving["case"] == "spade-128x128" and saving["time_ratio"] > 0 and saving["memory_ratio"] > 0
    assert time.monotonic() - started < 90


CHROMIUM = Path("/usr/bin/chromium")
FACADES_TRAIN = ROOT.parent / "shared" / "data" / "facades" / "train"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: apt-get install -y chromium")
@pytest.mark.skipif(not FACADES_TRAIN.is_dir(), reason=f"{FACADES_TRAIN} not found")
def test_bench_static_space_smoke_measures_every_page_variant_and_python(tmp_path):
    """``bench_static_space.py --smoke``: the page in headless chromium (fp32 and int8, with and without the
    isolation headers) and ``Pix2Pix`` in Python on the same file, each with positive times; the download sizes
    are the model files'; every page figure has its Python baseline and ratio; the CPU is named."""
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("onnxruntime")
    started = time.monotonic()
    report = run_benchmark("bench_static_space.py", ["--smoke"], tmp_path / "static.json")
    assert report["settings"]["smoke"] and report["model"]["generator"] == "unet_256"
    assert report["machine"]["cpu_model"] and report["machine"]["chromium"] and report["machine"]["onnxruntime"]
    graphs = ["fp32", "int8"] if "int8_gate" in report["model"] else ["fp32"]
    assert graphs == ["fp32", "int8"] or "below its gate" in report["model"]["int8_skipped"]
    assert list(report["python"]) == graphs
    assert sorted(report["download_bytes"]) == sorted(
        {"fp32": "model.onnx", "int8": "model.int8.onnx"}[g] for g in graphs
    )
    assert all(size > 0 for size in report["download_bytes"].values())
    assert sorted(report["page"]) == sorted(f"{g}-{mode}" for g in graphs for mode in ("threads", "1thread"))
    for name, page in report["page"].items():
        graph, mode = name.split("-")
        assert page["graph"] == graph and page["engine"].startswith("WebAssembly SIMD"), page
        assert (page["threads"] == 1) == (mode == "1thread" or (report["machine"]["cpu_count"] or 1) == 1)
        assert page["median_ms"] > 0 and page["first_run_ms"] > 0 and len(page["runs_ms"]) == 1
        assert 0 < page["download_ms"] < page["ready_ms"] < page["first_image_ms"]
        assert report["page_vs_python"][name] == pytest.approx(
            page["median_ms"] / report["python"][graph]["median_ms"], abs=0.01
        )
    assert all(python["median_ms"] > 0 for python in report["python"].values())
    assert report["python"]["fp32"]["engine"] == "onnxruntime"
    assert any("Pix2Pix" in text for text in report["compared_against"].values())
    assert time.monotonic() - started < 90
