"""``images.reading``: headers before pixels, one size limit, EXIF orientation, and errors that name the file."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pix2pix_hub.images.reading import (
    DEFAULT_MAX_PIXELS,
    ImageTooLarge,
    UnreadableImage,
    bad_image_bytes,
    check_max_pixels,
    decode_image,
    image_extensions,
    load_image,
    open_image,
    read_header,
)


def test_the_size_limit_is_inclusive_and_its_error_carries_the_numbers():
    check_max_pixels((100, 50), 5000, "a.png")  # exactly at the limit: accepted
    expected = r"^a.png: 101x50 is 0\.00505 megapixels, above the limit of 0\.005 \(max_pixels=5000\)\. Downscale"
    with pytest.raises(ImageTooLarge, match=expected) as refused:
        check_max_pixels((101, 50), 5000, "a.png")
    assert (refused.value.size, refused.value.max_pixels) == ((101, 50), 5000)
    assert isinstance(refused.value, UnreadableImage) and isinstance(refused.value, ValueError)
    assert "\n" not in str(refused.value) and "--max_pixels" in str(refused.value)
    assert DEFAULT_MAX_PIXELS == 4096 * 4096


def test_headers_refuse_non_images_and_huge_images_before_decoding(tmp_path):
    (tmp_path / "text.png").write_bytes(b"not an image")
    with pytest.raises(UnreadableImage, match="text.png: not an image file"):
        read_header(tmp_path / "text.png", 10_000)
    Image.new("1", (7072, 7072)).save(tmp_path / "huge.png")  # 50 megapixels in a few KB
    with pytest.raises(ImageTooLarge, match="huge.png: 7072x7072 is 50.0 megapixels"):
        load_image(tmp_path / "huge.png", 3, 4096 * 4096)
    Image.new("RGB", (30, 20)).save(tmp_path / "ok.png")
    assert read_header(tmp_path / "ok.png", 600) == (30, 20)


def test_load_image_turns_the_image_upright_and_converts_channels(tmp_path):
    pixels = np.zeros((10, 30, 3), dtype=np.uint8)
    pixels[:, :5] = 255  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: "rotate 90 degrees clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "rotated.png", exif=exif)
    image = load_image(tmp_path / "rotated.png", 1, 10_000)
    assert image.mode == "L" and image.size == (10, 30)
    assert np.asarray(image)[:5].min() == 255 and np.asarray(image)[5:].max() == 0  # the left edge is now on top


def test_a_truncated_file_is_named_as_corrupt(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # the header survives
    with pytest.raises(UnreadableImage, match="cut.jpg: corrupt or truncated image"):
        load_image(tmp_path / "cut.jpg", 3, 10_000)


def test_placeholder_bytes_fail_with_their_reason_and_the_file_name():
    value = {"bytes": bad_image_bytes("odd.png is 9x6: needs an even width"), "path": "odd.png (left half)"}
    with pytest.raises(ValueError, match="^odd.png is 9x6: needs an even width$"):
        open_image(value)
    with pytest.raises(UnreadableImage, match=r"^row 3 input \(odd.png \(left half\)\): cannot read the image: odd"):
        decode_image(value, 10_000, "row 3 input")


def test_decoded_images_are_size_checked_too():
    with pytest.raises(ImageTooLarge, match="row 0 target: 200x100"):
        decode_image(Image.new("RGB", (200, 100)), 10_000, "row 0 target")


def test_image_extensions_are_what_pil_opens():
    extensions = image_extensions()
    assert {".png", ".jpg", ".jpeg", ".tif", ".webp"} <= extensions and ".txt" not in extensions


def test_an_image_pil_refuses_as_a_bomb_is_too_large_with_its_size(tmp_path):

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    with pytest.raises(ImageTooLarge, match="60000x60000 is 3600.0 megapixels") as refused:
        read_header(path, 4096 * 4096)
    assert refused.value.size == (60000, 60000)


def test_an_animated_file_is_refused_from_its_header(tmp_path):
    frames = [Image.new("RGB", (8, 8), (i * 100, 0, 0)) for i in range(2)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(UnreadableImage, match="anim.gif: an animated image \\(2 frames\\)"):
        read_header(tmp_path / "anim.gif", 10**6)
