"""load_pairs on every source kind (facades A|B files, A/ B/ folders, save_to_disk, parquet, Hub id via a local
mirror and the offline cache), direction, columns, split_pairs, the summary command, and source errors."""

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import numpy as np
import pytest
from hub_mirror import HubMirror, run_python
from PIL import Image

from pix2pix_hub.data import (
    DatasetUnavailableError,
    PairsSourceError,
    check_pairs,
    load_pairs,
    split_pairs,
)
from pix2pix_hub.data.__main__ import main as data_main

REPO = Path(__file__).resolve().parents[1]
FACADES = REPO.parent / "shared" / "data" / "facades" / "train"
needs_facades = pytest.mark.skipif(not FACADES.is_dir(), reason=f"facades not found at {FACADES}")


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """Keep this module's Arrow caches out of ~/.cache (module-scoped, so the facades fixture uses it too)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


def noise(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "L": 1}[mode]
    array = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(array.squeeze(-1) if channels == 1 else array)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    pair = Image.new("RGB", (a.width + b.width, a.height))
    pair.paste(a, (0, 0))
    pair.paste(b, (a.width, 0))
    return pair


def png_bytes(image: Image.Image) -> dict:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def small_dataset(n: int = 3, a: str = "imageA", b: str = "imageB") -> datasets.Dataset:
    """n pairs of 16x12 PNGs stored as bytes; A is noise seed i, B noise seed 100 + i."""
    features = datasets.Features({a: datasets.Image(), b: datasets.Image(), "caption": datasets.Value("string")})
    return datasets.Dataset.from_dict(
        {
            a: [png_bytes(noise(16, 12, i)) for i in range(n)],
            b: [png_bytes(noise(16, 12, 100 + i)) for i in range(n)],
            "caption": [f"pair {i}" for i in range(n)],
        },
        features=features,
    )


# ----- side-by-side A|B files --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def facades(datasets_cache):
    return load_pairs(FACADES)


@needs_facades
def test_facades_400_pairs_split_into_exact_halves(facades):
    assert len(facades) == 400
    assert facades.features == datasets.Features({"input": datasets.Image(), "target": datasets.Image()})
    original = pixels(Image.open(FACADES / "1.jpg"))  # natural order: 1.jpg is row 0
    assert original.shape == (256, 512, 3)
    row = facades[0]
    np.testing.assert_array_equal(pixels(row["input"]), original[:, :256])  # AtoB: input = A = left photo
    np.testing.assert_array_equal(pixels(row["target"]), original[:, 256:])


@needs_facades
def test_facades_btoa_swaps_and_the_parent_folder_picks_the_split(facades):
    swapped = load_pairs(FACADES.parent, split="train", direction="BtoA")
    assert len(swapped) == 400
    np.testing.assert_array_equal(pixels(swapped[5]["input"]), pixels(facades[5]["target"]))
    np.testing.assert_array_equal(pixels(swapped[5]["target"]), pixels(facades[5]["input"]))
    with pytest.raises(PairsSourceError, match=r"split 'test' not found .*available subfolders: train"):
        load_pairs(FACADES.parent, split="test")


def test_aligned_folder_with_splits_and_streaming(tmp_path):
    for split, seeds in (("train", [0, 1, 2]), ("val", [7])):
        for seed in seeds:
            save(side_by_side(noise(8, 6, seed), noise(8, 6, 50 + seed)), tmp_path / split / f"{seed}.png")
    val = load_pairs(tmp_path, split="val")
    assert len(val) == 1
    np.testing.assert_array_equal(pixels(val[0]["input"]), pixels(noise(8, 6, 7)))
    np.testing.assert_array_equal(pixels(val[0]["target"]), pixels(noise(8, 6, 57)))
    train = load_pairs(tmp_path / "train", direction="BtoA")
    assert len(train) == 3
    np.testing.assert_array_equal(pixels(train[2]["input"]), pixels(noise(8, 6, 52)))
    stream = load_pairs(tmp_path, split="train", streaming=True)
    assert isinstance(stream, datasets.IterableDataset)
    rows = list(stream)
    assert len(rows) == 3
    np.testing.assert_array_equal(pixels(rows[1]["input"]), pixels(noise(8, 6, 1)))


def test_aligned_cache_is_refreshed_when_a_file_changes(tmp_path):
    file = save(side_by_side(noise(8, 6, 0), noise(8, 6, 1)), tmp_path / "0.png")
    first = load_pairs(tmp_path)
    save(side_by_side(noise(8, 6, 2), noise(8, 6, 3)), file)
    second = load_pairs(tmp_path)
    np.testing.assert_array_equal(pixels(first[0]["input"]), pixels(noise(8, 6, 0)))
    np.testing.assert_array_equal(pixels(second[0]["input"]), pixels(noise(8, 6, 2)))


# ----- A/ and B/ folders -------------------------------------------------------------------------------------
def test_a_b_folders_matched_by_name_any_extension(tmp_path):
    for i in (1, 2, 10):
        save(noise(8, 8, i), tmp_path / "A" / f"{i}.png")
        save(noise(8, 8, 100 + i), tmp_path / "B" / f"{i}.bmp")
    (tmp_path / "A" / "notes.txt").write_text("not an image, ignored")
    pairs = load_pairs(tmp_path)
    assert len(pairs) == 3
    np.testing.assert_array_equal(pixels(pairs[2]["input"]), pixels(noise(8, 8, 10)))  # natural order 1, 2, 10
    np.testing.assert_array_equal(pixels(pairs[2]["target"]), pixels(noise(8, 8, 110)))
    swapped = load_pairs(tmp_path, direction="BtoA")
    np.testing.assert_array_equal(pixels(swapped[0]["input"]), pixels(noise(8, 8, 101)))


@pytest.mark.parametrize("layout", ["A/train", "train/A"])
def test_a_b_folders_with_splits(tmp_path, layout):
    for split in ("train", "test"):
        side_a = layout.replace("train", split)
        save(noise(8, 8, 1), tmp_path / side_a / f"{split}.png")
        save(noise(8, 8, 2), tmp_path / side_a.replace("A", "B") / f"{split}.png")
    pairs = load_pairs(tmp_path, split="test")
    assert (
        len(pairs) == 1
        and Path(pairs.cast_column("input", datasets.Image(decode=False))[0]["input"]["path"]).stem == "test"
    )


def test_unmatched_names_are_listed(tmp_path):
    for name in ("1", "2", "3"):
        save(noise(4, 4, 0), tmp_path / "A" / f"{name}.png")
    for name in ("1", "4"):
        save(noise(4, 4, 0), tmp_path / "B" / f"{name}.png")
    with pytest.raises(PairsSourceError, match=r"only in .*A: 2, 3; only in .*B: 4"):
        load_pairs(tmp_path)


# ----- datasets artifacts ------------------------------------------------------------------------------------
def test_save_to_disk_dataset_and_dataset_dict(tmp_path):
    small_dataset(3).save_to_disk(str(tmp_path / "flat"))
    pairs = load_pairs(tmp_path / "flat", direction="BtoA")
    assert pairs.column_names == ["input", "target"] and len(pairs) == 3
    np.testing.assert_array_equal(pixels(pairs[1]["input"]), pixels(noise(16, 12, 101)))
    datasets.DatasetDict({"train": small_dataset(3), "test": small_dataset(2)}).save_to_disk(str(tmp_path / "dict"))
    assert len(load_pairs(tmp_path / "dict", split="test")) == 2
    with pytest.raises(PairsSourceError, match=r"split 'val' .*available splits: train, test"):
        load_pairs(tmp_path / "dict", split="val")


def test_parquet_with_custom_columns_and_unknown_column_error(tmp_path):
    file = tmp_path / "pairs.parquet"
    small_dataset(4, a="photo", b="label").to_parquet(str(file))
    pairs = load_pairs(file, column_a="label", column_b="photo")
    assert pairs.column_names == ["input", "target"] and len(pairs) == 4
    np.testing.assert_array_equal(pixels(pairs[3]["input"]), pixels(noise(16, 12, 103)))
    with pytest.raises(PairsSourceError, match=r"no column 'imageA' or 'imageB'; available columns: photo, label"):
        load_pairs(file)
    with pytest.raises(PairsSourceError, match=r"column 'caption' .*not images"):
        load_pairs(file, column_a="caption", column_b="photo")


def test_same_column_twice_gives_identical_input_and_target(tmp_path):
    small_dataset(2).save_to_disk(str(tmp_path / "d"))
    pairs = load_pairs(tmp_path / "d", column_a="imageA", column_b="imageA")
    assert pairs.features == datasets.Features({"input": datasets.Image(), "target": datasets.Image()})
    np.testing.assert_array_equal(pixels(pairs[1]["input"]), pixels(pairs[1]["target"]))


# ----- errors ------------------------------------------------------------------------------------------------
def test_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder or file"):
        load_pairs(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no parquet file"):
        load_pairs(tmp_path / "missing.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PairsSourceError, match=r"no images .* in .*empty"):
        load_pairs(tmp_path / "empty")
    (tmp_path / "only_a" / "A").mkdir(parents=True)
    with pytest.raises(PairsSourceError, match="has A/ but no B/"):
        load_pairs(tmp_path / "only_a")
    with pytest.raises(ValueError, match="direction='AB'"):
        load_pairs(tmp_path, direction="AB")
    with pytest.raises(PairsSourceError, match="is a file"):
        load_pairs(save(noise(4, 4, 0), tmp_path / "x.png"))


def test_uncached_hub_id_offline_says_so_and_shows_the_path_option(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DatasetUnavailableError, match=r"not in the local cache.*--dataset PATH"):
        load_pairs("nobody/no-such-dataset", cache_dir=str(tmp_path))


# ----- split_pairs -------------------------------------------------------------------------------------------
def test_split_pairs_is_disjoint_complete_and_seeded(tmp_path):
    pairs = small_dataset(10).add_column("row", list(range(10)))
    train, val = split_pairs(pairs, val_size=0.3, seed=1)
    assert (len(train), len(val)) == (7, 3)
    rows = {name: list(part["row"]) for name, part in (("train", train), ("val", val))}
    assert sorted(rows["train"] + rows["val"]) == list(range(10))
    assert list(split_pairs(pairs, val_size=3, seed=1)[1]["row"]) == rows["val"]
    assert any(list(split_pairs(pairs, val_size=3, seed=s)[1]["row"]) != rows["val"] for s in range(2, 6))
    for bad in (0, 10, 1.5, True):
        with pytest.raises(ValueError, match="val_size"):
            split_pairs(pairs, val_size=bad)


# ----- the summary command -----------------------------------------------------------------------------------
@needs_facades
def test_summary_command_reads_the_400_facades_pairs(facades, tmp_path, capsys):
    preview = tmp_path / "preview.png"
    status = data_main([str(FACADES), "--direction", "BtoA", "--preview", str(preview)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "pairs: 400" in out and "400 readable" in out and "input sizes: 256x256 (400)" in out
    assert "input = B (right half)" in out
    grid = Image.open(preview)
    assert grid.size == (2 * 256 + 3 * 4, 4 * 256 + 5 * 4)  # 4 rows of input | target, 4 px padding
    first_input = pixels(grid)[4 : 4 + 256, 4 : 4 + 256]
    np.testing.assert_array_equal(first_input, pixels(Image.open(FACADES / "1.jpg"))[:, 256:])  # labels first


def test_summary_command_as_module_lists_bad_pairs(tmp_path):
    save(side_by_side(noise(8, 6, 0), noise(8, 6, 1)), tmp_path / "good.png")
    save(noise(9, 6, 0), tmp_path / "odd.png")
    result = subprocess.run(
        [sys.executable, "-m", "pix2pix_hub.data", str(tmp_path), "--cache_dir", str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "pairs: 2" in result.stdout and "1 readable" in result.stdout
    assert "odd.png is 9x6" in result.stdout and "even width" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "pix2pix_hub.data", str(tmp_path / "nope")], capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 2 and "no such folder" in missing.stderr


def test_preview_onto_an_image_of_the_source_is_refused_before_anything_is_written(tmp_path, capsys):
    source = tmp_path / "pairs"
    for i in range(2):
        save(side_by_side(noise(8, 6, i), noise(8, 6, 10 + i)), source / f"{i}.jpg")
    before = {path.name: path.read_bytes() for path in source.iterdir()}
    for target in (source / "1.jpg", source / "new.png"):  # replaced, or read as a pair next time
        assert data_main([str(source), "--cache_dir", str(tmp_path / "cache"), "--preview", str(target)]) == 2
        assert "would replace or add an image of the source" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in source.iterdir()} == before
    assert data_main([str(source), "--cache_dir", str(tmp_path / "cache"), "--preview", str(tmp_path / "p.png")]) == 0


# ----- a Hub id, through a local mirror, then from the offline cache ----------------------------------------
@pytest.mark.slow
def test_hub_id_downloads_through_a_mirror_then_loads_offline_from_the_cache(tmp_path):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    small_dataset(3).to_parquet(str(repo / "data" / "train-00000-of-00001.parquet"))
    small_dataset(1).to_parquet(str(repo / "data" / "test-00000-of-00001.parquet"))
    (repo / "README.md").write_text(
        textwrap.dedent(
            """\
            ---
            configs:
            - config_name: default
              data_files:
              - split: train
                path: data/train-*
              - split: test
                path: data/test-*
            ---
            # three noise pairs
            """
        )
    )
    code = textwrap.dedent(
        """
        import json, numpy as np
        from pix2pix_hub.data import load_pairs, check_pairs, DatasetUnavailableError
        pairs = load_pairs("user/noise-pairs", split="{split}", direction="BtoA")
        check_pairs(pairs)
        result = {{"rows": len(pairs), "columns": pairs.column_names,
                   "input0": np.asarray(pairs[0]["input"]).tolist()}}
        try:
            load_pairs("user/never-downloaded")
        except DatasetUnavailableError as error:
            result["error"] = str(error)
        print(json.dumps(result))
        """
    )
    hf_home = str(tmp_path / "hf-home")
    with HubMirror(tmp_path / "mirror") as hub:
        hub.add_dataset("user/noise-pairs", repo)
        online = run_python(code.format(split="train"), HF_ENDPOINT=hub.endpoint, HF_HOME=hf_home)
    offline = run_python(code.format(split="test"), HF_HUB_OFFLINE="1", HF_HOME=hf_home)
    first, second = (json.loads(r.stdout.strip().splitlines()[-1]) for r in (online, offline))
    assert first["rows"] == 3 and second["rows"] == 1
    assert first["columns"] == second["columns"] == ["input", "target"]
    expected = pixels(noise(16, 12, 100)).tolist()  # BtoA: input is B of row 0
    assert first["input0"] == expected and second["input0"] == expected
    assert "HF_HUB_OFFLINE=1" in second["error"] and "--dataset PATH" in second["error"]


def test_check_pairs_passes_on_a_good_source(tmp_path):
    small_dataset(2).save_to_disk(str(tmp_path / "d"))
    check_pairs(load_pairs(tmp_path / "d"))  # no error; the failing cases live in test_data_dataset.py
