"""``inference.batch``: job planning, tiny-image padding, the batch-then-one-by-one retry, skipping, not stopping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix_hub.images.reading import UnreadableImage
from pix2pix_hub.inference.batch import (
    TINY_SIDE,
    Job,
    NoImagesFound,
    Plan,
    batches,
    file_jobs,
    pad_tiny,
    translate_jobs,
    translate_with_retry,
)


def noise(height: int, width: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


class FlipModel:
    """Stands in for ``Pix2Pix``: mirrors images; fails on any call that includes an image 40 pixels wide."""

    in_channels, max_pixels = 3, 10_000

    def __init__(self) -> None:
        self.calls: list[int] = []  # images per call

    def __call__(self, images, **options):
        batch = images if isinstance(images, list) else [images]
        self.calls.append(len(batch))
        if any(image.width == 40 for image in batch):
            raise RuntimeError("cannot take 40 pixels")
        outputs = [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for image in batch]
        return outputs if isinstance(images, list) else outputs[0]


def test_a_failing_batch_is_retried_one_by_one_and_only_the_bad_image_fails():
    model = FlipModel()
    images = [noise(16, 20, 0), noise(16, 40, 1), noise(16, 20, 2)]
    outputs = translate_with_retry(model, images)
    assert model.calls == [3, 1, 1, 1]
    assert isinstance(outputs[1], RuntimeError) and "40 pixels" in str(outputs[1])
    for image, output in ((images[0], outputs[0]), (images[2], outputs[2])):
        np.testing.assert_array_equal(np.asarray(output), np.asarray(image)[:, ::-1])
    assert translate_with_retry(model, []) == [] and model.calls == [3, 1, 1, 1]


def test_translate_jobs_skips_what_cannot_be_read_translated_or_written(tmp_path):
    def reads(image):
        return lambda channels, max_pixels: image

    def unreadable(channels, max_pixels):
        raise UnreadableImage("broken.png: corrupt or truncated image")

    (tmp_path / "taken.png").mkdir()  # a folder where the output file should go
    jobs = [
        Job("good", tmp_path / "good.png", reads(noise(16, 20))),
        Job("broken", tmp_path / "broken.png", unreadable),
        Job("wide", tmp_path / "wide.png", reads(noise(16, 40))),
        Job("taken", tmp_path / "taken.png", reads(noise(16, 20))),
    ]
    warnings: list[str] = []
    plan = Plan(jobs, bad=["huge.png: refused"])
    result = translate_jobs(FlipModel(), plan, batch_size=3, warn=warnings.append)
    assert result.written == 1 and (tmp_path / "good.png").is_file()
    assert result.bad[0] == "huge.png: refused" and result.bad[1] == "broken.png: corrupt or truncated image"
    assert result.bad[2].startswith("wide: translation failed (RuntimeError: cannot take 40 pixels)")
    assert result.bad[3].startswith(f"taken: cannot write {tmp_path / 'taken.png'}")
    assert warnings == [f"skipped {message}" for message in result.bad]


@pytest.mark.parametrize("size", [(1, 1), (40, 3), (5, 20)])
def test_tiny_images_are_edge_padded_and_the_box_crops_them_back(size):
    image = noise(size[1], size[0])
    padded, box = pad_tiny(image)
    assert min(padded.size) >= TINY_SIDE
    np.testing.assert_array_equal(np.asarray(padded.crop(box)), np.asarray(image))


def test_tiny_padding_keeps_untouched_images_as_they_are():
    image = noise(TINY_SIDE, 30)
    padded, box = pad_tiny(image)
    assert padded is image and box is None


def test_file_jobs_plan_a_folder(tmp_path):
    source = tmp_path / "in"
    for name, (height, width) in {"b.png": (20, 20), "sub/a.jpg": (30, 10), "c.png": (20, 20)}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        noise(height, width).save(source / name)
    (source / "notes.txt").write_text("not an image")
    (source / "fake.png").write_bytes(b"not an image either")
    (source / ".hidden").mkdir()
    noise(8, 8).save(source / ".hidden" / "skip.png")
    noise(8, 8).save(source / "out.png")  # a file, not the output folder: it is translated

    plan = file_jobs(source, source / "out", ext="webp", max_pixels=10_000)
    assert plan.ignored == 1
    assert [Path(job.name).relative_to(source).as_posix() for job in plan.jobs] == [
        "out.png",  # sorted by size (width, height), then name: same sizes fill whole batches
        "sub/a.jpg",
        "b.png",
        "c.png",
    ]
    assert [job.output.relative_to(source / "out").as_posix() for job in plan.jobs] == [
        "out.webp",
        "sub/a.webp",
        "b.webp",
        "c.webp",
    ]
    assert len(plan.bad) == 1 and "fake.png: not an image file" in plan.bad[0]
    assert plan.jobs[1].read(1, 10_000).mode == "L"


def test_file_jobs_for_one_image_and_for_an_empty_folder(tmp_path):
    noise(10, 12).save(tmp_path / "photo.png")
    (only,) = file_jobs(tmp_path / "photo.png", tmp_path / "outdir", max_pixels=10_000).jobs
    assert only.output == tmp_path / "outdir" / "photo.png" and only.size == (12, 10)
    (named,) = file_jobs(tmp_path / "photo.png", tmp_path / "result.jpg", max_pixels=10_000).jobs
    assert named.output == tmp_path / "result.jpg"
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoImagesFound, match="No images found under"):
        file_jobs(tmp_path / "empty", tmp_path / "out", max_pixels=10_000)


def test_batches_draw_lazily():
    drawn = []

    def items():
        for item in range(5):
            drawn.append(item)
            yield item

    chunks = batches(items(), 2)
    assert next(chunks) == [0, 1] and drawn == [0, 1]  # evaluate decodes rows only as batches fill
    assert list(chunks) == [[2, 3], [4]]
