"""``evaluate`` and ``translate --dataset`` on a folder of side-by-side A|B images read by ``load_pairs``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix_hub import Pix2Pix
from pix2pix_hub.cli import main

SIZES = [(40, 56), (33, 47), (40, 56)]  # (height, width) of each half


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


def write_identity_pairs(model_dir: Path, folder: Path) -> list[Image.Image]:
    """A|B files whose B half is the model's output for the A half: metrics are known exactly."""
    pix2pix = Pix2Pix.from_pretrained(model_dir)
    folder.mkdir(parents=True)
    targets = []
    for index, (height, width) in enumerate(SIZES):
        source = Image.fromarray(np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8))
        target = pix2pix(source)
        pair = Image.new("RGB", (2 * width, height))
        pair.paste(source, (0, 0))
        pair.paste(target, (width, 0))
        pair.save(folder / f"{index + 1}.png")
        targets.append(target)
    return targets


def test_evaluate_cli_known_case(model_dir, tmp_path, capsys):
    write_identity_pairs(model_dir, tmp_path / "data" / "test")
    out = tmp_path / "results"
    argv = [
        "evaluate",
        str(model_dir),
        "--dataset",
        str(tmp_path / "data"),
        "--split",
        "test",
        "--output_dir",
        str(out),
    ]
    assert main([*argv, "--quiet", "--batch_size", "2"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["num_images"] == 3 and report["split"] == "test"
    assert report["mean"] == {"l1": 0.0, "psnr": 100.0, "ssim": pytest.approx(1.0, abs=1e-6)}
    assert [row["l1"] for row in report["per_image"]] == [0.0, 0.0, 0.0]
    assert report["fid"] is None and "--inception_weights" in report["fid_note"]
    assert "FID not computed" in captured.err
    assert json.loads((out / "metrics.json").read_text()) == report
    assert report["model"] == str(model_dir) and report["direction"] == "AtoB"
    assert (
        f"<title>pix2pix results: {model_dir} on {tmp_path / 'data'} (test)</title>" in (out / "index.html").read_text()
    )
    assert (out / "grid.png").is_file()
    assert Image.open(out / "images" / "00001_output.png").size == (47, 33)


def test_evaluate_cli_skips_a_corrupt_pair_and_exits_1(model_dir, tmp_path, capsys):
    write_identity_pairs(model_dir, tmp_path / "data")
    (tmp_path / "data" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    argv = ["evaluate", str(model_dir), "--dataset", str(tmp_path / "data"), "--output_dir", str(tmp_path / "r")]
    assert main([*argv, "--quiet"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["num_images"] == 3 and [item["index"] for item in report["skipped"]] == [3]
    assert "9.png" in report["skipped"][0]["reason"]
    assert "1 row(s) could not be evaluated" in captured.err


def test_evaluate_cli_unknown_split_is_a_clear_error(model_dir, tmp_path, capsys):
    write_identity_pairs(model_dir, tmp_path / "data" / "train")
    argv = ["evaluate", str(model_dir), "--dataset", str(tmp_path / "data"), "--output_dir", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "split 'test'" in err and "train" in err


def test_translate_a_dataset_writes_one_image_per_row(model_dir, tmp_path):
    targets = write_identity_pairs(model_dir, tmp_path / "data" / "test")
    argv = ["translate", str(model_dir), str(tmp_path / "data"), str(tmp_path / "out"), "--dataset", "--quiet"]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "00001.png")), np.asarray(targets[1]))
    # BtoA translates the B halves instead: same sizes, other pixels.
    assert main([*argv[:3], str(tmp_path / "out_b"), "--dataset", "--quiet", "--direction", "BtoA"]) == 0
    b_output = np.asarray(Image.open(tmp_path / "out_b" / "00001.png"))
    assert b_output.shape == (33, 47, 3) and not np.array_equal(b_output, np.asarray(targets[1]))
    # --dataset SOURCE, as evaluate and train spell it: the same rows.
    assert (
        main(["translate", str(model_dir), str(tmp_path / "out_c"), "--dataset", str(tmp_path / "data"), "--quiet"])
        == 0
    )
    assert file_bytes(tmp_path / "out_c") == file_bytes(tmp_path / "out")


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}
