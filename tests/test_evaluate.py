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

from pix2pix_hub import ModelInfo, Pix2Pix, resnet_6blocks
from pix2pix_hub.cli import main
from pix2pix_hub.images.labels import labels_to_image
from pix2pix_hub.images.reading import UnreadableImage, decode_image
from pix2pix_hub.inference.evaluation import FidUnavailable, evaluate, fid_metric
from pix2pix_hub.models.hd import GlobalGenerator


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


def test_evaluate_refuses_an_output_folder_inside_the_data_or_the_model(model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    (data / "A").mkdir(parents=True)
    (data / "B").mkdir()
    Image.new("RGB", (128, 128)).save(data / "A" / "x.png")
    Image.new("RGB", (128, 128)).save(data / "B" / "x.png")
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    model_files = sorted(path.name for path in model_dir.iterdir())
    for output, named in ((data / "results", "--dataset"), (data, "--dataset"), (model_dir, "MODEL")):
        code = main(["evaluate", str(model_dir), "--dataset", str(data), "--output_dir", str(output)])
        error = capsys.readouterr().err.strip()
        assert code == 2 and len(error.splitlines()) == 1
        assert named in error and str(output) in error
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before  # nothing written
    assert sorted(path.name for path in model_dir.iterdir()) == model_files


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


# ----- label-map models (pix2pixHD) -------------------------------------------------------------------------------
LABEL_NC = 8


def label_map_model(instance: bool) -> Pix2Pix:
    """A tiny pix2pixHD-style model taking 8-class maps (and instance maps), on torch so outputs are exact."""
    torch.manual_seed(0)
    generator = GlobalGenerator(in_channels=LABEL_NC + int(instance), ngf=4, n_downsample=2, n_blocks=1).eval()
    return Pix2Pix(generator, info=ModelInfo(direction="AtoB", label_nc=LABEL_NC, instance=instance), backend="torch")


def write_label_pairs(pix2pix: Pix2Pix, root, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """A/ class-index PNGs (mode L), I/ 16-bit instance ids, B/ the model's output for both: what the metrics of
    an evaluation that reads and encodes them as the pipeline does are known to be (L1 0)."""
    for side in "ABI":
        (root / side).mkdir(parents=True)
    maps = []
    for index, (height, width) in enumerate(sizes):
        rng = np.random.default_rng(index)
        labels = np.kron(rng.integers(0, LABEL_NC, (height // 8, width // 8)), np.ones((8, 8), np.int64))
        ids = (1000 * labels + (np.arange(width) >= width // 3)).astype(np.uint16)  # a boundary across classes
        Image.fromarray(labels.astype(np.uint8), "L").save(root / "A" / f"{index}.png")
        Image.fromarray(ids).save(root / "I" / f"{index}.png")
        pix2pix(Image.fromarray(labels.astype(np.uint8), "L"), instance=ids).save(root / "B" / f"{index}.png")
        maps.append(labels)
    return maps


def test_a_label_map_model_is_evaluated_on_its_class_maps_and_instance_maps(tmp_path):
    from pix2pix_hub.data import load_pairs

    pix2pix = label_map_model(instance=True)
    maps = write_label_pairs(pix2pix, tmp_path / "data", [(32, 48), (32, 48), (24, 40)])
    Image.fromarray(np.full((16, 16), 9, np.uint8), "L").save(tmp_path / "data" / "A" / "3.png")  # class 9 of 8
    Image.new("RGB", (16, 16)).save(tmp_path / "data" / "B" / "3.png")
    Image.new("I;16", (16, 16)).save(tmp_path / "data" / "I" / "3.png")
    pairs = load_pairs(tmp_path / "data", column_instance="instance")
    report = evaluate(pix2pix, pairs, tmp_path / "out", batch_size=2)
    assert [row["index"] for row in report["per_image"]] == [0, 1, 2]
    assert report["mean"] == {"l1": 0.0, "psnr": 100.0, "ssim": pytest.approx(1.0, abs=1e-6)}
    [bad] = report["skipped"]
    assert bad["index"] == 3 and "label value 9 outside 0..7" in bad["reason"] and "--label_nc" not in bad["reason"]
    shown = np.asarray(Image.open(tmp_path / "out" / "images" / "00002_input.png"))
    np.testing.assert_array_equal(shown, np.asarray(labels_to_image(maps[2], LABEL_NC)))  # the map, in its colours
    without_ids = evaluate(pix2pix, pairs.remove_columns("instance"), tmp_path / "by-class", limit=3)
    assert without_ids["mean"]["l1"] > 0  # the class boundaries alone are not the instance maps: they were read


def test_evaluate_cli_on_a_label_map_model_writes_finite_metrics(tmp_path, capsys):
    pix2pix = label_map_model(instance=True)
    pix2pix.save_pretrained(tmp_path / "model")
    write_label_pairs(pix2pix, tmp_path / "data", [(32, 48), (24, 40)])
    Image.new("RGB", (40, 24)).save(tmp_path / "data" / "B" / "0.png")  # row 0's map is 48x32: skipped
    noise = np.random.default_rng(0).integers(0, 256, (24, 40, 3), np.uint8)  # a target the model does not make
    Image.fromarray(noise).save(tmp_path / "data" / "B" / "1.png")
    argv = ["evaluate", str(tmp_path / "model"), "--dataset", str(tmp_path / "data"), "--split", "train"]
    argv += ["--output_dir", str(tmp_path / "out"), "--backend", "torch", "--quiet"]
    assert main(argv) == 1  # a skipped row is exit status 1; the other is scored
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["num_images"] == 1 and [item["index"] for item in report["skipped"]] == [0]
    assert all(np.isfinite(report["mean"][name]) and report["mean"][name] > 0 for name in ("l1", "psnr"))
    assert np.isfinite(report["mean"]["ssim"]) and report["mean"]["ssim"] < 0.5
    capsys.readouterr()
    image_model = tmp_path / "image-model"
    Pix2Pix(GlobalGenerator(ngf=4, n_downsample=2, n_blocks=1)).save_pretrained(image_model)
    assert main(["evaluate", str(image_model), "--dataset", str(tmp_path / "data"), "--column_instance", "I"]) == 2
    assert "--column_instance is for label-map models" in capsys.readouterr().err
