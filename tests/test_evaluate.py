"""``evaluate``: known metric values, the files it writes, skipped rows and FID availability."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pix2pix_hub import Pix2Pix, resnet_6blocks
from pix2pix_hub.cli import main
from pix2pix_hub.evaluation import FidUnavailable, evaluate, fid_metric
from pix2pix_hub.image_io import UnreadableImage, decode_image


def noise_image(height: int, width: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def identity_rows(pix2pix: Pix2Pix, sizes: list[tuple[int, int]]) -> list[dict[str, Image.Image]]:
    """Pairs whose target is the model's own output: the answer is known (L1 0, PSNR at the cap, SSIM 1)."""
    inputs = [noise_image(h, w, seed) for seed, (h, w) in enumerate(sizes)]
    return [{"input": image, "target": pix2pix(image)} for image in inputs]


class PooledColours(nn.Module):
    """A stand-in for Inception: 12 features (2x2 mean colours) from uint8 ``(N, 3, H, W)``."""

    num_features = 12

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images.float() / 255, 2).flatten(1)


def test_output_equal_to_target_gives_l1_0_psnr_cap_ssim_1_and_writes_the_page(pix2pix, tmp_path):
    rows = identity_rows(pix2pix, [(40, 60), (33, 47), (40, 60)])
    report = evaluate(pix2pix, rows, tmp_path, batch_size=2, grid_rows=2)
    assert report["num_images"] == 3 and report["skipped"] == []
    assert report["mean"] == {"l1": 0.0, "psnr": 100.0, "ssim": pytest.approx(1.0, abs=1e-6)}
    assert [row["index"] for row in report["per_image"]] == [0, 1, 2]
    assert json.loads((tmp_path / "metrics.json").read_text()) == report
    page = (tmp_path / "index.html").read_text()
    for index in range(3):
        for kind in ("input", "output", "target"):
            assert f'src="images/{index:05d}_{kind}.png"' in page
            assert (tmp_path / "images" / f"{index:05d}_{kind}.png").is_file()
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "images" / "00001_output.png")), np.asarray(rows[1]["target"])
    )
    grid = Image.open(tmp_path / "grid.png")
    assert grid.height < 3 * 60 and grid.width > 3 * 60  # two rows of three cells (4-pixel gaps)
    assert "no Inception weights" not in page  # no note was given to evaluate()


def test_metrics_match_a_hand_computed_case(pix2pix, tmp_path):
    image = noise_image(32, 48, seed=3)
    target = noise_image(32, 48, seed=4)
    report = evaluate(pix2pix, [{"input": image, "target": target}], tmp_path)
    output = np.asarray(pix2pix(image), dtype=np.float64) / 255
    difference = output - np.asarray(target, dtype=np.float64) / 255
    row = report["per_image"][0]
    assert row["l1"] == pytest.approx(np.abs(difference).mean(), rel=1e-5)
    assert row["psnr"] == pytest.approx(-10 * np.log10((difference**2).mean()), rel=1e-5)
    assert -1 <= row["ssim"] < 0.2  # an unrelated noise target shares no structure with the output


def test_bad_rows_are_skipped_and_listed(pix2pix, tmp_path):
    class Rows(list):
        def __getitem__(self, index):
            if index == 1:
                raise OSError("broken image bytes")
            return super().__getitem__(index)

    good = identity_rows(pix2pix, [(32, 32)])[0]
    rows = Rows(
        [
            good,
            good,
            {"input": noise_image(32, 32, 1), "target": noise_image(30, 32, 2)},
            {"input": noise_image(4, 4, 1), "target": noise_image(4, 4, 2)},
        ]
    )
    report = evaluate(pix2pix, rows, tmp_path)
    assert report["num_images"] == 1
    reasons = {item["index"]: item["reason"] for item in report["skipped"]}
    assert sorted(reasons) == [1, 2, 3]
    assert "broken image bytes" in reasons[1]
    assert "differ in size" in reasons[2]
    assert "metrics failed on 4x4" in reasons[3]
    assert "row 2: input (32, 32) and target (32, 30) differ in size" in (tmp_path / "index.html").read_text()


def test_fid_from_a_local_feature_extractor(pix2pix, tmp_path):
    rows = identity_rows(pix2pix, [(32, 32)] * 4)
    same = evaluate(pix2pix, rows, tmp_path / "same", fid=fid_metric(feature=PooledColours()))
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and same["fid_note"] is None
    for row in rows:
        row["target"] = Image.eval(row["target"], lambda value: 255 - value // 2)
    different = evaluate(pix2pix, rows, tmp_path / "different", fid=fid_metric(feature=PooledColours()))
    assert different["fid"] > 0.01


def test_fid_without_weights_says_so(tmp_path):
    with pytest.raises(FidUnavailable, match="no Inception weights given.*--inception_weights"):
        fid_metric(None)
    with pytest.raises(FidUnavailable, match="is not a file"):
        fid_metric(tmp_path / "missing.pth")


def test_evaluate_cli_with_unusable_inception_weights_is_an_error(model_dir, tmp_path, capsys):
    code = main(["evaluate", str(model_dir), "--dataset", "x", "--inception_weights", str(tmp_path / "none.pth")])
    assert code == 2
    assert "is not a file" in capsys.readouterr().err


def test_dataset_images_are_size_checked_from_the_header_before_decoding(pix2pix, tmp_path):
    huge = io.BytesIO()
    Image.new("1", (7072, 7072)).save(huge, format="PNG")  # 50 megapixels in a few KB
    value = {"bytes": huge.getvalue(), "path": "photos/huge.png"}
    with pytest.raises(UnreadableImage, match=r"row 0 input \(photos/huge.png\): 7072x7072 is 50.0 megapixels"):
        decode_image(value, pix2pix.max_pixels, "row 0 input")
    with pytest.raises(UnreadableImage, match=r"broken.png\): cannot read the image"):
        decode_image({"bytes": b"\x89PNG\r\n\x1a\n broken", "path": "broken.png"}, pix2pix.max_pixels, "row 1 input")
    small = io.BytesIO()
    Image.new("RGB", (5, 3), (1, 2, 3)).save(small, format="PNG")
    assert decode_image({"bytes": small.getvalue(), "path": None}, 100, "row 2").getpixel((4, 2)) == (1, 2, 3)


def test_a_row_that_cannot_be_scored_is_skipped_not_fatal(tmp_path):
    # A 4x7 pair translates (the pipeline pads it past the ResNet's bottleneck) but is too small for SSIM's
    # window: only that row is skipped, with the reason.
    pix2pix = Pix2Pix(resnet_6blocks(ngf=8))
    rows = identity_rows(pix2pix, [(24, 24), (24, 24)])
    rows.insert(1, {"input": noise_image(7, 4, 5), "target": noise_image(7, 4, 6)})
    report = evaluate(pix2pix, rows, tmp_path, batch_size=3)
    assert [row["index"] for row in report["per_image"]] == [0, 2]
    assert report["mean"]["l1"] == 0.0
    assert [item["index"] for item in report["skipped"]] == [1]
    assert report["skipped"][0]["reason"].startswith("metrics failed on 4x7: SSIM needs images of at least 11x11")
