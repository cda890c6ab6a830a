"""Lower precision on a CPU (issue 18): bf16 autocast training with fp32 weights and validation, the start-up note
on native bf16, and ``--export_int8`` at the end of training with its PSNR gate both ways."""

from __future__ import annotations

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from test_train_support import make_aligned_pairs, run, tiny_config

from pix2pix_hub import Pix2Pix
from pix2pix_hub.constants import INT8_ONNX_NAME
from pix2pix_hub.training.advice import cpu_precision_note

NO_BF16 = {"avx512_bf16": False, "amx_bf16": False}
AVX512_BF16 = {"avx512_bf16": True, "amx_bf16": False}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_aligned_pairs(tmp_path_factory.mktemp("pairs") / "train", count=10)


def test_the_start_up_note_follows_the_cpus_bf16_support():
    assert "--mixed_precision bf16" in cpu_precision_note("no", AVX512_BF16)
    assert "--mixed_precision bf16" not in cpu_precision_note("no", NO_BF16)
    assert not cpu_precision_note("bf16", AVX512_BF16).startswith("Warning")
    assert cpu_precision_note("bf16", NO_BF16).startswith("Warning: this CPU has no native bf16")
    assert cpu_precision_note("fp16", AVX512_BF16).startswith("Warning")
    assert "has native bf16" in cpu_precision_note("no", {"avx512_bf16": False, "amx_bf16": True})


def test_bf16_training_on_a_cpu_saves_finite_fp32_weights(data, tmp_path, capsys):
    result = run(tiny_config(data, tmp_path, max_train_steps=3, mixed_precision="bf16"))
    printed = capsys.readouterr().out
    assert "mixed precision bf16" in printed and "native bf16" in printed
    weights = load_file(tmp_path / "model.safetensors")
    floats = [t for name, t in weights.items() if not name.endswith("num_batches_tracked")]
    assert floats and all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in floats)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.metrics.values())
    card = ModelCard.load(tmp_path / "README.md")
    assert "| mixed_precision | `bf16` |" in card.text
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert Pix2Pix.from_pretrained(tmp_path, backend="torch").translate_tensor(x).dtype == torch.float32


@pytest.mark.parametrize("threshold, written", [(0.0, True), (1000.0, False)])
def test_export_int8_writes_the_int8_model_or_reports_the_refusal(data, tmp_path, capsys, threshold, written):
    pytest.importorskip("onnxruntime")
    from pix2pix_hub.inference.quantize import int8_report

    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / INT8_ONNX_NAME
    stale.write_bytes(b"an earlier run's")  # must never survive: it belongs to other weights
    config = tiny_config(
        data, tmp_path / "out", max_train_steps=2, export_int8=True, int8_min_psnr=threshold, overwrite_output_dir=True
    )
    run(config)
    printed = capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file()  # the fp32 model is saved either way
    if written:
        report = int8_report(stale)
        assert report["min_psnr_db"] == 0.0 and report["calibration_inputs"] == 6  # 8 training pairs, 2 held back
        assert f"Wrote {stale}" in printed
    else:
        assert not stale.exists()
        assert "--export_int8 refused" in printed and "below the 1000 dB threshold" in printed
