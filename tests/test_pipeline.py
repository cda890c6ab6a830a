"""Calling Pix2Pix on images: kinds in = kinds out, any size, batches, channels, test-time dropout, limits."""

import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pix2pix_hub import Pix2Pix, ResnetGenerator, UNetGenerator, unet_128
from pix2pix_hub.images.arrays import convert_image, model_to_uint8, tensor_to_uint8, uint8_to_model, uint8_to_tensor
from pix2pix_hub.images.reading import ImageTooLarge


@pytest.fixture(scope="module")
def pix2pix() -> Pix2Pix:
    torch.manual_seed(0)
    return Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval())


def random_image(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(array[:, :, 0] if channels == 1 else array, mode=mode)


@pytest.mark.parametrize("size", [(600, 400), (33, 17), (1, 1), (32, 32)])
@pytest.mark.parametrize("size_mode", ["pad", "resize"])
def test_any_size_comes_back_the_same_size(pix2pix, size, size_mode):
    output = pix2pix(random_image(*size), size_mode=size_mode)
    assert isinstance(output, Image.Image) and output.size == size and output.mode == "RGB"


def test_padding_does_not_change_an_already_fitting_image(pix2pix):
    image = random_image(64, 32)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        direct = pix2pix.generator(x)
    assert torch.allclose(pix2pix.translate_tensor(x), direct, atol=1e-6)
    assert torch.allclose(pix2pix.translate_tensor(x, size_mode="resize"), direct, atol=1e-6)


def test_kinds_round_trip(pix2pix):
    image = random_image(40, 24)
    uint8 = np.array(image)
    out_uint8 = pix2pix(uint8)
    assert out_uint8.dtype == np.uint8 and out_uint8.shape == (24, 40, 3)
    assert np.array_equal(out_uint8, np.asarray(pix2pix(image)))
    out_float = pix2pix(uint8.astype(np.float32) / 255)
    assert out_float.dtype == np.float32 and out_float.shape == (24, 40, 3)
    assert 0 <= out_float.min() and out_float.max() <= 1
    assert np.abs(out_float * 255 - out_uint8).max() <= 1.0
    tensor = torch.from_numpy(uint8).permute(2, 0, 1).float() / 127.5 - 1
    out_tensor = pix2pix(tensor)
    assert out_tensor.shape == (3, 24, 40) and out_tensor.min() >= -1 and out_tensor.max() <= 1


def test_lists_of_mixed_sizes_keep_order_and_match_single_calls(pix2pix):
    images = [random_image(40, 24, seed=1), random_image(17, 50, seed=2), random_image(40, 24, seed=3)]
    outputs = pix2pix(images)
    assert [o.size for o in outputs] == [(40, 24), (17, 50), (40, 24)]
    for image, output in zip(images, outputs):
        assert np.array_equal(np.asarray(pix2pix(image)), np.asarray(output))


def test_grayscale_and_four_channel_models():
    gray = Pix2Pix(unet_128(in_channels=1, out_channels=3, ngf=4).eval())  # colorization: L -> RGB
    out = gray(random_image(50, 30, "RGB"))  # RGB input is converted to L
    assert out.mode == "RGB" and out.size == (50, 30)
    assert gray(np.zeros((30, 50), np.uint8)).shape == (30, 50, 3)
    rgba = Pix2Pix(ResnetGenerator(in_channels=4, out_channels=1, ngf=4, n_blocks=1).eval())
    out = rgba(random_image(21, 13, "RGBA"))
    assert out.mode == "L" and out.size == (21, 13)


def test_wrong_channel_counts_are_clear_errors(pix2pix):
    with pytest.raises(ValueError, match=r"takes 3-channel images; got an array of shape \(8, 8, 4\)"):
        pix2pix(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match=r"takes 3-channel images; got a tensor of shape \(1, 1, 8, 8\)"):
        pix2pix.translate_tensor(torch.zeros(1, 1, 8, 8))
    with pytest.raises(TypeError, match="Cannot translate a str"):
        pix2pix("photo.png")


def test_huge_images_are_refused_before_any_work():
    small_limit = Pix2Pix(UNetGenerator(num_downs=3, ngf=4).eval(), max_pixels=100 * 100)
    expected = r"image: 101x100 is 0\.0101 megapixels, above the limit of 0\.01 \(max_pixels=10000\)"
    with pytest.raises(ImageTooLarge, match=expected):
        small_limit(np.zeros((100, 101, 3), np.uint8))
    with pytest.raises(ImageTooLarge, match=r"^images\[1\]: 101x100 is"):
        small_limit([np.zeros((8, 8, 3), np.uint8), Image.new("RGB", (101, 100))])
    with pytest.raises(ImageTooLarge, match=r"^the tensor: 101x100 is"):
        small_limit.translate_tensor(torch.zeros(1, 3, 100, 101))


def test_bad_size_mode_is_named():
    with pytest.raises(ValueError, match="size_mode='crop'.*pad, resize"):
        Pix2Pix(UNetGenerator(num_downs=3, ngf=4), size_mode="crop")


def test_dropout_at_test_varies_outputs_but_leaves_the_model_untouched(pix2pix):
    image = random_image(32, 32)
    state = {k: v.clone() for k, v in pix2pix.generator.state_dict().items()}
    torch.manual_seed(1)
    first = np.asarray(pix2pix(image, dropout_at_test=True))
    second = np.asarray(pix2pix(image, dropout_at_test=True))
    assert not np.array_equal(first, second)
    assert not pix2pix.generator.training
    for key, value in pix2pix.generator.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert np.array_equal(np.asarray(pix2pix(image)), np.asarray(pix2pix(image)))  # default is deterministic


@pytest.mark.parametrize(
    ("mode", "array"),
    [
        ("I;16", np.full((4, 4), 65535, np.uint16)),
        ("CMYK", np.zeros((4, 4, 4), np.uint8)),
        ("RGBA", np.zeros((4, 4, 4), np.uint8)),  # fully transparent -> composited on white
    ],
)
def test_odd_image_modes_convert_to_rgb(mode, array):
    image = Image.fromarray(array, mode=mode) if mode != "CMYK" else Image.frombytes("CMYK", (4, 4), array.tobytes())
    converted = np.asarray(convert_image(image, 3))
    assert converted.shape == (4, 4, 3)
    assert converted.min() == 255  # white: full 16-bit, empty CMYK ink, transparent on white


def test_palette_images_convert():
    palette = Image.new("P", (4, 4))
    palette.putpalette([255, 0, 0] * 256)
    assert np.asarray(convert_image(palette, 3))[0, 0].tolist() == [255, 0, 0]


def test_onnxruntime_backend_matches_torch_and_follows_weight_changes():
    torch.manual_seed(0)
    generator = UNetGenerator(num_downs=4, ngf=4).eval()
    fast, reference = Pix2Pix(generator, backend="onnxruntime"), Pix2Pix(generator)
    x = torch.rand(3, 3, 48, 40) * 2 - 1
    assert (fast.translate_tensor(x) - reference.translate_tensor(x)).abs().max() < 1e-4
    with torch.no_grad():
        generator.decoders[-1][1].bias.add_(0.5)  # an in-place change, as an optimizer step makes
    assert (fast.translate_tensor(x) - reference.translate_tensor(x)).abs().max() < 1e-4
    with pytest.raises(ValueError, match="backend='tensorrt'"):
        Pix2Pix(generator, backend="tensorrt")


@pytest.mark.parametrize("size", [(1, 1), (4, 4), (7, 3)])
def test_resnet_generator_handles_images_smaller_than_its_bottleneck(size):
    pix2pix = Pix2Pix(ResnetGenerator(ngf=4, n_blocks=1).eval())
    for size_mode in ("pad", "resize"):
        assert pix2pix(random_image(*size), size_mode=size_mode).size == size


def test_torch_calls_do_not_touch_the_weights_the_onnx_backend_watches():
    from pix2pix_hub.inference.onnx_engine import weights_version

    generator = UNetGenerator(num_downs=3, ngf=4).eval()
    before = weights_version(generator)
    Pix2Pix(generator)(random_image(16, 16))
    assert weights_version(generator) == before


def test_default_runs_onnxruntime_on_cpu_and_matches_eager_torch():
    torch.manual_seed(0)
    generator = UNetGenerator(num_downs=4, ngf=4).eval()
    default, eager = Pix2Pix(generator), Pix2Pix(generator, backend="torch")
    assert (default.engine, eager.engine) == ("onnxruntime", "torch")
    image = random_image(40, 36)
    fast, reference = np.asarray(default(image), dtype=int), np.asarray(eager(image), dtype=int)
    assert np.abs(fast - reference).max() <= 1  # uint8 rounding of outputs equal within 1e-4
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    assert (default.translate_tensor(x) - eager.translate_tensor(x)).abs().max() < 1e-4


def test_default_falls_back_to_torch_when_onnxruntime_fails(monkeypatch):
    from pix2pix_hub.inference.onnx_engine import OnnxGenerator

    def broken(self, batch):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(OnnxGenerator, "__call__", broken)
    generator = UNetGenerator(num_downs=3, ngf=4).eval()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    auto = Pix2Pix(generator)
    with pytest.warns(UserWarning, match="unsupported operator"):
        output = auto.translate_tensor(x)
    assert torch.equal(output, Pix2Pix(generator, backend="torch").translate_tensor(x))
    assert auto.engine == "torch"  # decided once, not retried on every call
    with pytest.raises(RuntimeError, match="unsupported operator"):
        Pix2Pix(generator, backend="onnxruntime").translate_tensor(x)


def test_numpy_conversions_are_the_torch_ones_bit_for_bit():
    every_level = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=3)
    assert np.array_equal(uint8_to_model(every_level)[0], uint8_to_tensor(every_level[0]).numpy())
    # Around every rounding boundary (k + 0.5) / 127.5 - 1, and outside [-1, 1].
    boundaries = (np.arange(-2, 258, dtype=np.float32) + 0.5) / np.float32(127.5) - 1
    values = np.concatenate([boundaries, np.nextafter(boundaries, 2), np.nextafter(boundaries, -2)])
    values = np.resize(values, 3 * 28 * 28).reshape(3, 28, 28).astype(np.float32)
    assert np.array_equal(model_to_uint8(values), tensor_to_uint8(torch.from_numpy(values)))


def test_uint8_images_on_onnxruntime_equal_the_tensor_path_exactly():
    torch.manual_seed(0)
    pix2pix = Pix2Pix(UNetGenerator(num_downs=3, ngf=4).eval(), batch_size=2)
    images = [random_image(20, 12, seed=1), random_image(16, 16, seed=2), random_image(20, 12, seed=3)]
    images += [random_image(3, 2, seed=4), random_image(20, 12, seed=5)]  # 3x2: too small to reflect
    arrays = [np.asarray(image) for image in images]
    outputs = pix2pix(images + arrays[:1])  # PIL images and a uint8 array: the numpy path
    for image, array, output in zip(images + arrays[:1], arrays + arrays[:1], outputs):
        expected = tensor_to_uint8(pix2pix.translate_tensor(uint8_to_tensor(array)[None])[0])
        assert type(output) is type(image) and np.array_equal(np.asarray(output), expected)


def test_exports_are_cached_by_weights_and_pruned(tmp_path, monkeypatch):
    from pix2pix_hub.inference import export, onnx_engine

    monkeypatch.setenv("PIX2PIX_HUB_CACHE", str(tmp_path))
    torch.manual_seed(0)
    generator = UNetGenerator(num_downs=3, ngf=4).eval()
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    first = Pix2Pix(generator).translate_tensor(x)
    (graph,) = tmp_path.glob("*.onnx")

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds these weights")

    monkeypatch.setattr(export, "export_onnx", no_export)
    assert torch.equal(Pix2Pix(generator).translate_tensor(x), first)  # a new process would do the same
    monkeypatch.undo()
    monkeypatch.setenv("PIX2PIX_HUB_CACHE", str(tmp_path))

    for _ in range(onnx_engine.CACHE_KEEP + 1):
        with torch.no_grad():
            generator.decoders[-1][1].bias.add_(0.1)  # new weights: a new key
        Pix2Pix(generator).translate_tensor(x)
    graphs = list(tmp_path.glob("*.onnx"))
    assert len(graphs) == onnx_engine.CACHE_KEEP and graph not in graphs  # the oldest went first


def test_a_shipped_graph_reaches_onnxruntime_as_bytes_read_from_the_file(tmp_path, monkeypatch):
    """A repo's ONNX file is read whole first: onnxruntime never opens a path, so a graph cannot point it at other
    files (external data, resolved beside the file)."""
    from pix2pix_hub.inference import export

    torch.manual_seed(0)
    Pix2Pix(UNetGenerator(num_downs=3, ngf=4).eval()).save_pretrained(tmp_path / "shipped", onnx=True)
    opened = []
    real_session = export.onnx_session

    def recording_session(graph, *args, **kwargs):
        opened.append(graph)
        return real_session(graph, *args, **kwargs)

    monkeypatch.setattr(export, "onnx_session", recording_session)
    monkeypatch.setattr(export, "export_onnx", lambda *args, **kwargs: pytest.fail("exported instead of shipped"))
    pix2pix = Pix2Pix.from_pretrained(tmp_path / "shipped", precision="fp32")
    pix2pix.translate_tensor(torch.zeros(1, 3, 8, 8))
    assert opened == [(tmp_path / "shipped" / "model.onnx").read_bytes()]


# ----- nothing silently wrong (issue 13) -------------------------------------------------------------------------
ORIENTATION = 0x0112  # the EXIF tag; 6: the camera was turned, show the pixels rotated 90 degrees clockwise


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_exif_orientation_is_applied_like_the_cli_and_the_space(tmp_path, backend):
    torch.manual_seed(0)
    model = Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval(), backend=backend)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    random_image(40, 24).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    upright = ImageOps.exif_transpose(Image.open(tmp_path / "photo.jpg"))
    with Image.open(tmp_path / "photo.jpg") as photo:
        output = model(photo)
    assert output.size == upright.size == (24, 40)
    np.testing.assert_array_equal(np.asarray(output), np.asarray(model(upright)))


def test_floats_and_tensors_outside_their_range_are_refused(pix2pix):
    levels = np.asarray(random_image(16, 16), dtype=np.float32)  # 0..255: not the [0, 1] floats stand for
    with pytest.raises(ValueError, match=r"values in \[0, 1\]; got 0\.\.255"):
        pix2pix(levels)
    tensor = torch.from_numpy(levels).permute(2, 0, 1)
    with pytest.raises(ValueError, match=r"values in \[-1, 1\]"):
        pix2pix(tensor)
    with pytest.raises(ValueError, match=r"values in \[-1, 1\]"):
        pix2pix.translate_tensor(tensor[None])
    with pytest.raises(ValueError, match="NaN"):
        pix2pix(np.full((16, 16, 3), np.nan, dtype=np.float32))
    rounded = levels / 255
    rounded[0, 0] = [1 + 1e-6, -1e-6, 0.5]  # rounding noise is fine
    assert pix2pix(rounded).shape == (16, 16, 3)
    assert pix2pix(torch.from_numpy(rounded * 2 - 1 + 1e-6).permute(2, 0, 1)).shape == (3, 16, 16)


def test_an_animated_gif_is_refused_and_a_camera_mpo_is_its_main_picture(pix2pix, tmp_path):
    frames = [random_image(24, 16, seed=seed) for seed in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(ValueError, match="3 frames"):
        pix2pix(Image.open(tmp_path / "anim.gif"))
    # A phone's MPO JPEG holds the photo and a preview: n_frames 2, yet one picture.
    frames[0].save(tmp_path / "photo.mpo", format="MPO", save_all=True, append_images=[frames[1]])
    with Image.open(tmp_path / "photo.mpo") as photo:
        assert photo.format == "MPO" and photo.n_frames == 2
        output = pix2pix(photo)
    np.testing.assert_array_equal(np.asarray(output), np.asarray(pix2pix(Image.open(tmp_path / "photo.mpo").copy())))


def write_blank_png(path, width: int, height: int) -> None:
    """A valid 16-bit grayscale PNG of zeros, compressed row by row: a few hundred KB on disk, never in memory."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row = zlib.compressobj(9), bytes(1 + 2 * width)  # filter byte 0, then the row's samples
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)))
        data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
        file.write(chunk(b"IDAT", data) + chunk(b"IEND", b""))


MAX_PIXELS_SCRIPT = """
import resource, sys
from PIL import Image, ImageOps
from pix2pix_hub import Pix2Pix, UNetGenerator

model = Pix2Pix(UNetGenerator(num_downs=5, ngf=8).eval(), backend=sys.argv[2])
image = Image.open(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    model(image)
except ValueError as error:
    print(error)
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_max_pixels_is_checked_from_the_header_before_decoding(tmp_path, backend):
    """A 12000x12000 16-bit PNG (288 MB decoded, 3.5 GB on its way to a tensor) is refused for the size its header
    states: the peak resident memory of the process calling the model does not grow by more than 20 MB."""

    write_blank_png(tmp_path / "huge.png", 12000, 12000)
    assert (tmp_path / "huge.png").stat().st_size < 1_000_000
    result = subprocess.run(
        [sys.executable, "-c", MAX_PIXELS_SCRIPT, str(tmp_path / "huge.png"), backend],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    message, peaks = result.stdout.strip().splitlines()
    assert "12000x12000" in message and "max_pixels" in message
    before_kb, after_kb = map(int, peaks.split())
    assert after_kb - before_kb < 20_000


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_malformed_config_json_is_named_in_the_error(tmp_path, text):

    folder = Pix2Pix(UNetGenerator(num_downs=5, ngf=8)).save_pretrained(tmp_path / "model")
    (folder / "config.json").write_text(text)
    for load in (Pix2Pix.from_pretrained, UNetGenerator.from_pretrained):
        with pytest.raises(ValueError, match=re.escape(str(folder / "config.json"))):
            load(folder)


# ----- devices and dtypes: off the CPU the networks run in torch ------------------------------------------------------
def test_from_pretrained_moves_both_networks_to_the_device_it_is_given(tmp_path, monkeypatch):
    """Loaded on the CPU, then moved: a recording ``Module.to`` shows the move without a GPU."""
    from pix2pix_hub import PatchDiscriminator

    torch.manual_seed(0)
    folder = Pix2Pix(UNetGenerator(num_downs=5, ngf=8), PatchDiscriminator(ndf=4, n_layers=1)).save_pretrained(
        tmp_path / "model", onnx=False
    )
    moves = []
    real_to = torch.nn.Module.to

    def recording_to(module, *args, **kwargs):
        target = args[0] if args else kwargs.get("device")
        if isinstance(target, (str, torch.device)) and torch.device(target).type == "cuda":
            moves.append((type(module).__name__, torch.device(target)))
            return module  # no GPU here: the move is recorded, not made
        return real_to(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", recording_to)
    Pix2Pix.from_pretrained(folder, device="cuda:1", backend="torch")
    assert moves == [("UNetGenerator", torch.device("cuda:1")), ("PatchDiscriminator", torch.device("cuda:1"))]
    monkeypatch.undo()
    on_cpu = Pix2Pix.from_pretrained(folder, device="cpu")
    assert on_cpu.device.type == "cpu" and on_cpu.discriminator is not None


def test_onnxruntime_and_int8_are_refused_off_the_cpu_and_in_half_precision(tmp_path):
    from pix2pix_hub.inference.precision import check_device

    with pytest.raises(ValueError, match=r"backend='onnxruntime' runs the generator on the CPU.*on cuda"):
        check_device("onnxruntime", "auto", "cuda")
    with pytest.raises(ValueError, match=r"precision='int8' runs the generator on onnxruntime on the CPU.*cuda:1"):
        check_device("auto", "int8", torch.device("cuda:1"))
    check_device("auto", "auto", "cuda")  # auto runs torch there
    check_device("torch", "fp32", "cuda")
    folder = Pix2Pix(UNetGenerator(num_downs=5, ngf=8)).save_pretrained(tmp_path / "model", onnx=False)
    with pytest.raises(ValueError, match=r"precision='int8'.*the model is on cuda"):
        Pix2Pix.from_pretrained(folder, device="cuda", precision="int8")  # refused before anything is loaded
    with pytest.raises(ValueError, match=r"backend='onnxruntime'.*the model is on cuda"):
        Pix2Pix.from_pretrained(folder, device="cuda", backend="onnxruntime")
    half = UNetGenerator(num_downs=5, ngf=8).to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"backend='onnxruntime'.*weights are bfloat16, not float32"):
        Pix2Pix(half, backend="onnxruntime")
    later = Pix2Pix(UNetGenerator(num_downs=5, ngf=8), backend="onnxruntime")
    later.to(torch.bfloat16)
    with pytest.raises(ValueError, match=r"backend='onnxruntime'.*bfloat16"):
        later(random_image(32, 32))  # not torch in its place


def test_a_bfloat16_generator_takes_float_inputs_and_gives_float32_images():
    torch.manual_seed(0)
    generator = UNetGenerator(num_downs=5, ngf=8).eval()
    image = random_image(40, 24)
    reference = np.asarray(Pix2Pix(generator, backend="torch")(image), dtype=np.float32)
    pix2pix = Pix2Pix(generator)
    pix2pix.generator.to(torch.bfloat16)
    output = pix2pix(image)
    assert pix2pix.engine == "torch" and output.size == image.size and output.mode == "RGB"
    difference = np.abs(np.asarray(output, dtype=np.float32) - reference)
    assert difference.mean() < 3 and difference.max() < 40  # bf16 keeps ~3 significant digits
    tensor = pix2pix.translate_tensor(uint8_to_tensor(np.asarray(image))[None])
    assert tensor.dtype == torch.float32 and tensor.shape == (1, 3, 24, 40)


@pytest.mark.cuda
def test_on_cuda_the_model_runs_there_in_fp32_and_half_precision(tmp_path):
    torch.manual_seed(0)
    folder = Pix2Pix(UNetGenerator(num_downs=5, ngf=8)).save_pretrained(tmp_path / "model")
    image = random_image(40, 24)
    on_cpu = np.asarray(Pix2Pix.from_pretrained(folder, backend="torch")(image), dtype=np.float32)
    on_gpu = Pix2Pix.from_pretrained(folder, device="cuda")
    assert on_gpu.device.type == "cuda" and on_gpu.engine == "torch"
    assert np.abs(np.asarray(on_gpu(image), dtype=np.float32) - on_cpu).max() <= 2
    on_gpu.generator.to(torch.float16)
    assert np.abs(np.asarray(on_gpu(image), dtype=np.float32) - on_cpu).mean() < 3
    with pytest.raises(ValueError, match="precision='int8'"):
        Pix2Pix.from_pretrained(folder, device="cuda", precision="int8")
    with pytest.raises(ValueError, match="backend='onnxruntime'"):
        Pix2Pix.from_pretrained(folder, device="cuda", backend="onnxruntime")
