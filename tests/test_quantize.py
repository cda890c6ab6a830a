"""int8 inference core: the sub-pixel rewrite equals the original graph, int8 on a small trained model stays
within the PSNR gate (and is refused above it), the report travels in the file, CPU detection from cpuinfo."""

from __future__ import annotations

import collections
import platform

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix_hub import UNetGenerator
from pix2pix_hub.constants import FINGERPRINT_KEY
from pix2pix_hub.images.arrays import model_to_uint8
from pix2pix_hub.images.metrics import psnr_per_image
from pix2pix_hub.inference.export import export_onnx, onnx_session
from pix2pix_hub.inference.onnx_engine import weights_fingerprint
from pix2pix_hub.inference.onnx_rewrite import subpixel_rewrite
from pix2pix_hub.inference.quantize import (
    QuantizationQualityError,
    int8_is_fast,
    int8_report,
    onnx_metadata,
    quantize_generator,
    quantize_int8,
)
from pix2pix_hub.models.registry import build_generator
from pix2pix_hub.performance import cpu_capabilities, cpu_name


def op_counts(model: onnx.ModelProto) -> collections.Counter:
    return collections.Counter(node.op_type for node in model.graph.node)


def randomize(generator: nn.Module) -> nn.Module:
    """Non-trivial biases and batch-norm statistics (fresh ones are 0 and 1), so the folding is really tested."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in [*generator.named_parameters(), *generator.named_buffers()]:
            if name.endswith("bias"):
                tensor.uniform_(-0.2, 0.2)
            elif name.endswith("running_mean"):
                tensor.uniform_(-0.5, 0.5)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif tensor.ndim == 1 and tensor.is_floating_point():  # batch-norm weights
                tensor.uniform_(0.5, 1.5)
    return generator.eval()


@pytest.mark.parametrize(
    ("preset", "norm", "side"),
    [
        ("unet_128", "batch", 128),
        ("unet_128", "instance", 128),
        ("unet_256", "batch", 256),
        ("resnet_6blocks", "batch", 64),
        ("resnet_6blocks", "instance", 64),
    ],
)
def test_subpixel_rewrite_equals_the_original_graph(tmp_path, preset, norm, side):
    generator = randomize(build_generator(preset, ngf=4, norm=norm))
    export_onnx(generator, tmp_path / "fp32.onnx", check=False)
    original = onnx.load(tmp_path / "fp32.onnx")
    rewritten = subpixel_rewrite(original)
    onnx.checker.check_model(rewritten)
    onnx.save(rewritten, tmp_path / "subpixel.onnx")

    before, after = op_counts(original), op_counts(rewritten)
    assert before["ConvTranspose"] in (2, 7, 8) and after["ConvTranspose"] == 0
    assert after["DepthToSpace"] == before["ConvTranspose"]
    assert after["BatchNormalization"] == 0  # the decoder's norms are folded (the encoder's the exporter folds)
    assert after["InstanceNormalization"] == before["InstanceNormalization"]
    assert {entry.key for entry in rewritten.metadata_props} == {entry.key for entry in original.metadata_props}

    reference, candidate = onnx_session(tmp_path / "fp32.onnx"), onnx_session(tmp_path / "subpixel.onnx")
    rng = np.random.default_rng(0)
    for shape in [(1, 3, side, side), (2, 3, side, 2 * side)]:
        batch = rng.uniform(-1, 1, shape).astype(np.float32)
        expected = reference.run(None, {"input": batch})[0]
        actual = candidate.run(None, {"input": batch})[0]
        assert actual.shape == expected.shape == shape
        assert np.abs(actual - expected).max() < 1e-5


def test_transposed_convs_of_other_shapes_are_left_alone(tmp_path):
    layers = nn.Sequential(nn.ConvTranspose2d(3, 4, 3, stride=3), nn.ConvTranspose2d(4, 3, 4, 2, 1, groups=1))
    torch.onnx.export(
        layers.eval(), (torch.zeros(1, 3, 8, 8),), tmp_path / "g.onnx", dynamo=False, input_names=["input"]
    )
    rewritten = subpixel_rewrite(onnx.load(tmp_path / "g.onnx"))
    assert op_counts(rewritten)["ConvTranspose"] == 1  # the stride-3 one
    assert op_counts(rewritten)["DepthToSpace"] == 1
    onnx.save(rewritten, tmp_path / "subpixel.onnx")
    batch = np.random.default_rng(0).uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    expected = onnx_session(tmp_path / "g.onnx").run(None, {"input": batch})[0]
    actual = onnx_session(tmp_path / "subpixel.onnx").run(None, {"input": batch})[0]
    assert np.abs(actual - expected).max() < 1e-5


# --- int8 on a small trained model --------------------------------------------------------------------------------


def smooth_images(count: int, side: int, seed: int) -> torch.Tensor:
    """``(count, 3, side, side)`` in [-1, 1]: bicubic upsampling of coarse random colours."""
    coarse = torch.rand(count, 3, 6, 6, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False).clamp(-1, 1)


def target_of(images: torch.Tensor) -> torch.Tensor:
    """A smooth, non-trivial translation to learn: mixed colours, a soft curve, a blur."""
    mix = torch.tensor([[0.2, 0.7, 0.1], [0.6, -0.3, 0.4], [-0.5, 0.2, 0.8]])
    mixed = torch.tanh(1.5 * torch.einsum("oc,nchw->nohw", mix, images))
    return F.avg_pool2d(mixed, 5, 1, 2, count_include_pad=False)


def train_tiny_translator(steps: int = 300) -> UNetGenerator:
    """A 5-level U-Net (ngf 8) trained ``steps`` steps on 32x32 ``smooth_images`` to ``target_of`` (~3 s), so its
    activations are those of a trained model (what calibration is about)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: a second thread only adds contention on a shared CPU
    try:
        torch.manual_seed(0)
        generator = UNetGenerator(num_downs=5, ngf=8)
        optimizer = torch.optim.Adam(generator.parameters(), 2e-3, betas=(0.5, 0.999))
        for step in range(steps):
            images = smooth_images(4, 32, seed=step)
            loss = (generator(images) - target_of(images)).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    assert loss.item() < 0.06  # it learned the mapping
    return generator


@pytest.fixture(scope="module")
def trained_generator():
    return train_tiny_translator().eval()


@pytest.fixture(scope="module")
def trained(trained_generator, tmp_path_factory):
    """``train_tiny_translator()`` exported to fp32 ONNX, and 12 calibration images as uint8 ``(H, W, 3)`` arrays
    (the last 4 held out)."""
    folder = tmp_path_factory.mktemp("trained")
    export_onnx(trained_generator, folder / "fp32.onnx", check=False)
    calibration = [model_to_uint8(image) for image in smooth_images(12, 32, seed=10_000).numpy()]
    return folder / "fp32.onnx", calibration


def test_int8_of_a_trained_model_passes_the_gate_and_carries_its_report(trained, tmp_path):
    fp32_path, calibration = trained
    report = quantize_int8(fp32_path, tmp_path / "model.int8.onnx", calibration)
    assert report["psnr_db"] >= 40.0 and report["psnr_db_mean"] >= report["psnr_db"]
    assert report["calibration_inputs"] == 9 and report["held_out_inputs"] == 3 and report["min_psnr_db"] == 40.0
    assert report["bytes"] == (tmp_path / "model.int8.onnx").stat().st_size < fp32_path.stat().st_size / 2
    # Both graphs were timed here: their medians and fp32's over int8's (what "auto" checks) travel with the file.
    assert report["fp32_median_ms"] > 0 and report["int8_median_ms"] > 0
    ratio = report["fp32_median_ms"] / report["int8_median_ms"]
    assert report["speedup_vs_fp32"] == pytest.approx(ratio, rel=0.03, abs=0.01)  # each rounded

    stored = int8_report(tmp_path / "model.int8.onnx")
    assert stored == {key: value for key, value in report.items() if key not in ("path", "bytes")}
    assert int8_report(fp32_path) is None

    quantized = onnx.load(tmp_path / "model.int8.onnx")
    counts = op_counts(quantized)
    assert counts["ConvTranspose"] == 0 and counts["QuantizeLinear"] > 0 and counts["DepthToSpace"] == 5
    # Inputs it has not seen, at another size and batch: int8 stays as close to fp32 as on the held-out ones.
    batch = smooth_images(4, 64, seed=20_000).numpy()
    expected = onnx_session(fp32_path).run(None, {"input": batch})[0]
    actual = onnx_session(tmp_path / "model.int8.onnx").run(None, {"input": batch})[0]
    assert actual.shape == expected.shape
    assert psnr_per_image(torch.from_numpy(actual), torch.from_numpy(expected)).min() >= 40.0


def test_the_gate_refuses_below_the_threshold_with_the_figure(trained, tmp_path):
    fp32_path, calibration = trained
    passed = quantize_int8(fp32_path, tmp_path / "passed.onnx", calibration, held_out=4)
    threshold = passed["psnr_db"] + 1.0
    with pytest.raises(QuantizationQualityError, match=rf"{passed['psnr_db']:.1f} dB PSNR .* not written") as error:
        quantize_int8(fp32_path, tmp_path / "refused.onnx", calibration, held_out=4, min_psnr_db=threshold)
    assert error.value.psnr_db == passed["psnr_db"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["passed.onnx"]  # no file, no temporary left


def test_quantize_generator_pads_the_inputs_records_the_weights_and_leaves_the_model_as_it_was(
    trained_generator, tmp_path
):
    """The one route to an int8 file: from the generator itself (as ``Pix2Pix.quantize`` and the end of training
    call it), with inputs as the training data gives them, at sides that are not multiples of 32."""
    generator = trained_generator.train()  # as at the end of a run
    inputs = [image[:, :40, :44] for image in smooth_images(8, 48, seed=30_000).numpy()]
    try:
        report = quantize_generator(generator, tmp_path / "g.int8.onnx", inputs)
        assert generator.training  # the export switched it to eval mode and back
    finally:
        generator.eval()
    assert report["psnr_db"] >= 40.0 and (report["calibration_inputs"], report["held_out_inputs"]) == (6, 2)
    assert onnx_metadata(tmp_path / "g.int8.onnx")[FINGERPRINT_KEY] == weights_fingerprint(generator)
    assert int8_report(tmp_path / "g.int8.onnx")["psnr_db"] == report["psnr_db"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["g.int8.onnx"]  # no scratch export left beside it


def test_calibration_inputs_are_checked(trained, tmp_path):
    fp32_path, calibration = trained
    with pytest.raises(ValueError, match=r"expected a uint8 image \(H, W, 3\)"):
        quantize_int8(fp32_path, tmp_path / "q.onnx", [image[:, :, :1] for image in calibration])
    with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
        quantize_int8(
            fp32_path, tmp_path / "q.onnx", [image.astype(np.float32).transpose(2, 0, 1) for image in calibration]
        )
    with pytest.raises(ValueError, match="held_out=12"):
        quantize_int8(fp32_path, tmp_path / "q.onnx", calibration, held_out=12)
    assert list(tmp_path.iterdir()) == []


# --- CPU capabilities ---------------------------------------------------------------------------------------------

XEON_FLAGS = "fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"


def fake_cpuinfo(tmp_path, flags: str, key: str = "flags"):
    text = "".join(f"processor\t: {cpu}\nmodel name\t: Test CPU\n{key}\t\t: {flags}\n\n" for cpu in range(2))
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("flags", "expected", "fast"),
    [
        (XEON_FLAGS, {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"}, True),
        ("fpu sse2 avx avx2 fma avx_vnni", {"avx2", "avx_vnni"}, True),
        ("fpu sse2 avx avx2 fma avx512f avx512bw", {"avx2", "avx512f"}, False),
        ("fpu sse2 avx avx2 fma", {"avx2"}, False),
    ],
    ids=["sapphire-rapids", "alder-lake", "skylake-x", "avx2-only"],
)
def test_capabilities_from_cpuinfo_flags(tmp_path, flags, expected, fast):
    capabilities = cpu_capabilities(fake_cpuinfo(tmp_path, flags))
    assert {name for name, value in capabilities.items() if value is True} == expected
    assert capabilities["source"] == str(tmp_path / "cpuinfo")
    assert int8_is_fast(capabilities) is fast


def test_cpu_name_from_cpuinfo_or_platform(tmp_path):
    assert cpu_name(fake_cpuinfo(tmp_path, XEON_FLAGS)) == "Test CPU"
    assert cpu_name(tmp_path / "missing") == (platform.processor() or platform.machine())


def test_capabilities_on_a_cpu_without_x86_flags(tmp_path):
    capabilities = cpu_capabilities(fake_cpuinfo(tmp_path, "fp asimd asimddp i8mm bf16", key="Features"))
    assert not any(value is True for value in capabilities.values())
    assert int8_is_fast(capabilities) is False


def test_capabilities_fall_back_to_torch_without_cpuinfo(tmp_path, monkeypatch):
    answers = {"_is_avx2_supported": True, "_is_avx512_supported": True, "_is_vnni_supported": False}
    for name in ("_is_avx2_supported", "_is_avx512_supported", "_is_vnni_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda name=name: answers.get(name, False), raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    capabilities = cpu_capabilities(tmp_path / "missing")
    assert capabilities == {
        "avx2": True,
        "avx512f": True,
        "avx512_vnni": False,
        "avx_vnni": False,
        "avx512_bf16": False,
        "amx_int8": True,
        "amx_bf16": True,
        "source": "torch",
    }
    assert int8_is_fast(capabilities) is True  # AMX's int8 tiles
    assert set(cpu_capabilities()) == set(capabilities)  # this machine's cpuinfo answer has the same entries
