"""PairedTransform: paper modes, one crop/flip for both images (checked on pixels), eval determinism, channels."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub.data import PairedTransform


def coordinate_image(width: int, height: int) -> Image.Image:
    """R = x, G = y, B = x ^ y: every pixel says where it came from (sizes up to 256)."""
    y, x = np.mgrid[0:height, 0:width]
    return Image.fromarray(np.stack([x, y, x ^ y], axis=-1).astype(np.uint8))


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, C) uint8, exactly inverting the transform's scaling."""
    return np.round((tensor.permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)


def test_paper_default_gives_256_crops_in_range():
    x, y = PairedTransform()(coordinate_image(200, 150), coordinate_image(200, 150), seed=3)
    assert x.shape == y.shape == (3, 256, 256)
    assert x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.9 and x.max() > 0.9


def test_crop_mode_cuts_the_same_window_from_both_images_and_flips_both():
    """Without resizing, every output pixel names its source pixel: check the window and the flip exactly."""
    source = coordinate_image(120, 100)
    inverted = Image.fromarray(255 - np.asarray(source))  # different content, same geometry
    transform = PairedTransform(crop_size=64, preprocess="crop")
    flips = set()
    for seed in range(12):
        x, y = transform(source, inverted, seed=seed)
        a, b = to_uint8(x), to_uint8(y)
        np.testing.assert_array_equal(b, 255 - a)  # target went through the same crop and flip
        xs, ys = a[..., 0].astype(int), a[..., 1].astype(int)
        assert (ys == ys[:, :1]).all() and np.array_equal(np.diff(ys[:, 0]), np.ones(63))  # rows contiguous
        step = np.diff(xs[0])
        assert (step == step[0]).all() and step[0] in (1, -1)  # contiguous columns, maybe mirrored
        flips.add(step[0] == -1)
        left, top = xs[0].min(), ys[0, 0]
        expected = np.asarray(source)[top : top + 64, left : left + 64]
        np.testing.assert_array_equal(a, expected[:, ::-1] if step[0] == -1 else expected)
    assert flips == {True, False}  # both outcomes happen over 12 seeds


def test_resize_and_crop_keeps_pairs_aligned():
    image = coordinate_image(256, 256)
    transform = PairedTransform()
    outputs = [transform(image, image.copy(), seed=seed) for seed in range(6)]
    for x, y in outputs:
        assert torch.equal(x, y)
    assert len({to_uint8(x).tobytes() for x, _ in outputs}) > 1  # the seed moves the crop


def test_same_seed_same_output_and_no_flip_flag():
    image = coordinate_image(100, 80)
    transform = PairedTransform(load_size=72, crop_size=64)
    assert torch.equal(transform(image, image, seed=5)[0], transform(image, image, seed=5)[0])
    no_flip = PairedTransform(load_size=64, crop_size=64, flip=False)
    reference = no_flip(image, image, seed=0)[0]
    for seed in range(1, 8):
        assert torch.equal(no_flip(image, image, seed=seed)[0], reference)  # nothing random left


def test_eval_is_a_deterministic_resize_to_crop_size():
    image = coordinate_image(200, 120)
    transform = PairedTransform(train=False)
    x, _ = transform(image, image, seed=1)
    assert torch.equal(x, transform(image, image, seed=99)[0])
    expected = np.asarray(image.resize((256, 256), Image.BICUBIC))
    np.testing.assert_array_equal(to_uint8(x), expected)


def test_crop_mode_eval_takes_the_centre():
    image = coordinate_image(100, 80)
    x, _ = PairedTransform(crop_size=32, preprocess="crop", train=False)(image, image)
    np.testing.assert_array_equal(to_uint8(x), np.asarray(image)[24:56, 34:66])


def test_scale_width_modes_follow_the_aspect_ratio():
    image = coordinate_image(200, 100)
    x, _ = PairedTransform(load_size=64, crop_size=16, preprocess="scale_width", size_multiple=8)(image, image)
    assert x.shape == (3, 32, 64)  # width = load_size, height 100 * 64 / 200 = 32
    tall = coordinate_image(100, 150)
    x, _ = PairedTransform(load_size=40, crop_size=32, preprocess="scale_width_and_crop")(tall, tall, seed=0)
    assert x.shape == (3, 32, 32)
    x, _ = PairedTransform(load_size=40, crop_size=32, preprocess="scale_width_and_crop", train=False)(tall, tall)
    assert x.shape == (3, 32, 32)


def test_none_keeps_size_but_rounds_to_size_multiple():
    image = coordinate_image(30, 21)
    x, _ = PairedTransform(preprocess="none", size_multiple=4, flip=False)(image, image)
    assert x.shape == (3, 20, 32)
    x, _ = PairedTransform(preprocess="none", flip=False)(image, image)
    np.testing.assert_array_equal(to_uint8(x), np.asarray(image))  # untouched at size_multiple=1


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"crop_size": 300, "load_size": 286}, "crop_size=300"),
        ({"preprocess": "zoom"}, "preprocess='zoom'"),
        ({"input_nc": 2}, "input_nc=2"),
        ({"output_nc": 5}, "output_nc=5"),
        ({"load_size": 0}, "load_size=0"),
        ({"crop_size": 250, "size_multiple": 4}, "crop_size=250"),
        ({"preprocess": "scale_width", "load_size": 30, "size_multiple": 8}, "load_size=30"),
    ],
)
def test_bad_arguments_are_named(kwargs, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        PairedTransform(**kwargs)


def test_image_smaller_than_crop_is_an_error_in_crop_mode_and_resized_up_otherwise():
    small = coordinate_image(100, 60)
    with pytest.raises(ValueError, match=r"100x60, smaller than crop_size=256"):
        PairedTransform(preprocess="crop")(small, small, seed=0)
    x, _ = PairedTransform()(small, small, seed=0)  # resize_and_crop resizes to load_size first
    assert x.shape == (3, 256, 256)


def test_pair_of_different_sizes_is_refused():
    with pytest.raises(ValueError, match=r"input is 64x64 but target is 64x32"):
        PairedTransform()(coordinate_image(64, 64), coordinate_image(64, 32), seed=0)


def roundtrip(image: Image.Image, fmt: str) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_channels_grayscale_rgba_palette_cmyk_and_16_bit():
    keep = PairedTransform(preprocess="none", flip=False)
    gray = Image.new("L", (8, 8), 200)
    x, _ = keep(gray, gray)
    assert x.shape == (3, 8, 8) and torch.allclose(x, torch.full_like(x, 200 / 127.5 - 1))

    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # fully transparent black -> composited on white
    x, _ = keep(clear, clear)
    assert torch.equal(x, torch.ones(3, 8, 8))

    palette = Image.new("RGB", (8, 8), (255, 0, 0)).convert("P")
    x, _ = keep(palette, palette)
    assert x[:, 0, 0].tolist() == [1.0, -1.0, -1.0]

    cmyk = roundtrip(Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG")  # no ink = white
    assert cmyk.mode == "CMYK"
    x, _ = keep(cmyk, cmyk)
    assert x.min() > 0.95

    deep = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    deep = roundtrip(deep, "PNG")
    assert deep.mode.startswith("I")
    x, _ = PairedTransform(preprocess="none", flip=False, input_nc=1, output_nc=1)(deep, deep)
    assert x.shape == (1, 8, 8) and torch.equal(x, torch.ones(1, 8, 8))  # scaled to 8 bits, not clipped


def test_colorization_gray_input_color_target():
    color = Image.new("RGB", (16, 16), (255, 0, 0))
    x, y = PairedTransform(preprocess="none", flip=False, input_nc=1, output_nc=3)(color, color)
    assert x.shape == (1, 16, 16) and y.shape == (3, 16, 16)
    assert x[0, 0, 0].item() == pytest.approx(76 / 127.5 - 1)  # ITU-R 601 luma of pure red
    assert y[:, 0, 0].tolist() == [1.0, -1.0, -1.0]


# ----- non-square data (pix2pixHD's Cityscapes: whole 2:1 images) --------------------------------------------
def two_to_one(width: int) -> Image.Image:
    """A smooth 2:1 RGB image (width x width/2) whose pixels still differ everywhere."""
    y, x = np.mgrid[0 : width // 2, 0:width]
    return Image.fromarray(np.stack([x % 256, y % 256, (x // 256) * 60], axis=-1).astype(np.uint8))


@pytest.mark.parametrize("multiple", [16, 32])  # GlobalGenerator (4 halvings), LocalEnhancer (5)
def test_scale_width_trains_on_whole_two_to_one_images(multiple):
    transform = PairedTransform(load_size=1024, preprocess="scale_width", size_multiple=multiple)
    x, y = transform(two_to_one(2048), two_to_one(2048), seed=0)
    assert x.shape == y.shape == (3, 512, 1024)  # the whole image at half size: no crop, no square
    same_size = two_to_one(1024)
    x, _ = PairedTransform(load_size=1024, preprocess="scale_width", flip=False)(same_size, same_size)
    np.testing.assert_array_equal(to_uint8(x), np.asarray(same_size))  # already 1024 wide: untouched
    x, _ = PairedTransform(load_size=1024, preprocess="scale_width", size_multiple=multiple)(
        two_to_one(1000), two_to_one(1000), seed=0
    )
    assert x.shape == (3, 512, 1024)  # 1000x500 scales to 1024x512
    wide = coordinate_image(240, 70)  # 1024 x 298.7: the height rounds to a multiple
    x, _ = PairedTransform(load_size=1024, preprocess="scale_width", size_multiple=multiple, train=False)(wide, wide)
    assert x.shape[2] == 1024 and x.shape[1] % multiple == 0 and abs(x.shape[1] - 298.7) <= multiple / 2


def test_scale_width_and_crop_cuts_squares_out_of_the_scaled_image():
    image = coordinate_image(256, 128)
    scaled = np.asarray(image.resize((128, 64), Image.BICUBIC))  # load_size 128: the 2:1 image at 128x64
    transform = PairedTransform(load_size=128, crop_size=64, preprocess="scale_width_and_crop", flip=False)
    lefts = set()
    for seed in range(8):
        x, y = transform(image, image, seed=seed)
        assert torch.equal(x, y) and x.shape == (3, 64, 64)
        window = to_uint8(x)
        left = next(left for left in range(65) if np.array_equal(scaled[:, left : left + 64], window))
        lefts.add(left)
    assert len(lefts) > 1  # the crop moves along the width
    x, _ = PairedTransform(load_size=128, crop_size=64, preprocess="scale_width_and_crop", train=False)(image, image)
    np.testing.assert_array_equal(to_uint8(x), scaled[:, 32:96])  # eval: centre of the undistorted image
