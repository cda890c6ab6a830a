"""Datasets in and out: the imagefolder + metadata.jsonl layout read as pairs (not as A|B halves), ``prepare_dataset``
on A/ B/ folders, A|B folders and the authors' train/ val/ test/ layout (original bytes kept, PNG halves exact), the
real facades folder, the dataset card, ``push_to_hub`` through a stand-in HfApi into the offline Hub mirror, and
the ``dataset prepare`` command."""

from __future__ import annotations

import io
import json
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import pytest
import yaml
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from hub_mirror import HubMirror, run_python
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, DatasetCard
from PIL import Image

from pix2pix_hub.cli import main
from pix2pix_hub.data import BadSampleError, PairsSourceError, load_pairs, prepare_dataset

REPO = Path(__file__).resolve().parents[1]
FACADES = REPO.parent / "shared" / "data" / "facades" / "train"
needs_facades = pytest.mark.skipif(not FACADES.is_dir(), reason=f"facades not found at {FACADES}")


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """Keep this module's Arrow caches out of ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


def noise(width: int, height: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def save(image: Image.Image, path: Path, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    return path


def side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    pair = Image.new("RGB", (a.width + b.width, a.height))
    pair.paste(a, (0, 0))
    pair.paste(b, (a.width, 0))
    return pair


def stored(dataset: datasets.Dataset, row: int, column: str) -> dict:
    """The raw ``{"bytes", "path"}`` value of a cell, without decoding."""
    return dataset.cast_column(column, datasets.Image(decode=False))[row][column]


def authors_layout(root: Path, counts: dict[str, int]) -> Path:
    """train/ val/ test/ folders of 8x6 | 8x6 side-by-side PNGs; pair i of a split is noise(seed) | noise(50+seed)."""
    for split, count in counts.items():
        for i in range(count):
            seed = 10 * len(split) + i
            save(side_by_side(noise(8, 6, seed), noise(8, 6, 50 + seed)), root / split / f"{i}.png")
    return root


# ----- imagefolder + metadata.jsonl ------------------------------------------------------------------------------
def imagefolder(root: Path, count: int) -> Path:
    """``count`` pairs in the datasets imagefolder layout: a/ and b/ files named in metadata.jsonl."""
    lines = []
    for i in range(count):
        save(noise(8, 6, i), root / "a" / f"{i}.png")
        save(noise(8, 6, 100 + i), root / "b" / f"{i}.png")
        lines.append(json.dumps({"imageA_file_name": f"a/{i}.png", "imageB_file_name": f"b/{i}.png", "note": "x"}))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_imagefolder_with_two_image_columns_gives_its_pairs_not_halves(tmp_path):
    root = imagefolder(tmp_path / "pairs", 3)
    pairs = load_pairs(root)
    assert len(pairs) == 3  # read as side-by-side images these would be 6 bogus pairs
    assert pairs.column_names == ["input", "target"]
    np.testing.assert_array_equal(pixels(pairs[2]["input"]), pixels(noise(8, 6, 2)))
    np.testing.assert_array_equal(pixels(pairs[2]["target"]), pixels(noise(8, 6, 102)))
    swapped = load_pairs(root, direction="BtoA")
    np.testing.assert_array_equal(pixels(swapped[0]["input"]), pixels(noise(8, 6, 100)))


def test_imagefolder_splits_are_subfolders_and_streaming_works(tmp_path):
    imagefolder(tmp_path / "train", 3)
    imagefolder(tmp_path / "test", 1)
    assert len(load_pairs(tmp_path, split="train")) == 3
    test = load_pairs(tmp_path, split="test", streaming=True)
    rows = list(test)
    assert len(rows) == 1
    np.testing.assert_array_equal(pixels(rows[0]["target"]), pixels(noise(8, 6, 100)))


def test_imagefolder_metadata_without_file_name_keys_says_which_keys(tmp_path):
    save(noise(8, 6, 0), tmp_path / "0.png")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"imageA": "0.png", "imageB": "0.png"}) + "\n")
    with pytest.raises(PairsSourceError, match="imageA_file_name"):
        load_pairs(tmp_path)


# ----- prepare_dataset ---------------------------------------------------------------------------------------------
def test_a_b_folders_keep_the_files_own_bytes(tmp_path):
    for i in (1, 2, 10):
        save(noise(16, 12, i), tmp_path / "src" / "A" / f"{i}.jpg", quality=80)
        save(noise(16, 12, 100 + i), tmp_path / "src" / "B" / f"{i}.png")
    prepared = prepare_dataset(tmp_path / "src", tmp_path / "out")
    assert list(prepared) == ["train"]
    train = prepared["train"]
    assert train.features == datasets.Features({"imageA": datasets.Image(), "imageB": datasets.Image()})
    assert len(train) == 3
    for row, i in enumerate((1, 2, 10)):  # natural order of the names
        cell_a, cell_b = stored(train, row, "imageA"), stored(train, row, "imageB")
        assert cell_a["bytes"] == (tmp_path / "src" / "A" / f"{i}.jpg").read_bytes()
        assert cell_b["bytes"] == (tmp_path / "src" / "B" / f"{i}.png").read_bytes()
        assert cell_a["path"] == f"{i}.jpg"  # the name only: no local path in the dataset
    assert datasets.load_from_disk(str(tmp_path / "out"))["train"].num_rows == 3
    assert len(load_pairs(tmp_path / "out")) == 3


def test_a_b_folders_with_split_subfolders_become_splits(tmp_path):
    for split, count in (("train", 2), ("val", 1)):
        for i in range(count):
            save(noise(8, 8, i), tmp_path / "src" / split / "A" / f"{i}.png")
            save(noise(8, 8, 100 + i), tmp_path / "src" / split / "B" / f"{i}.png")
    prepared = prepare_dataset(tmp_path / "src", tmp_path / "out")
    assert {name: len(split) for name, split in prepared.items()} == {"train": 2, "val": 1}
    val = load_pairs(tmp_path / "out", split="val", direction="BtoA")
    np.testing.assert_array_equal(pixels(val[0]["input"]), pixels(noise(8, 8, 100)))


def test_authors_layout_gives_one_split_per_folder_of_exact_png_halves(tmp_path):
    source = authors_layout(tmp_path / "facades", {"train": 3, "val": 2, "test": 1})
    prepared = prepare_dataset(source, tmp_path / "out", direction="BtoA")
    assert {name: len(split) for name, split in prepared.items()} == {"test": 1, "train": 3, "val": 2}
    cell = stored(prepared["val"], 1, "imageB")
    assert cell["path"] == "1_B.png"
    half = Image.open(io.BytesIO(cell["bytes"]))
    assert half.format == "PNG"
    np.testing.assert_array_equal(pixels(half), pixels(noise(8, 6, 50 + 31)))  # val is 3 letters: seed 31
    pairs = load_pairs(tmp_path / "out", split="test", direction="BtoA")
    np.testing.assert_array_equal(pixels(pairs[0]["input"]), pixels(noise(8, 6, 90)))
    np.testing.assert_array_equal(pixels(pairs[0]["target"]), pixels(noise(8, 6, 40)))


def test_a_cmyk_side_by_side_file_becomes_rgb_png_halves(tmp_path):
    original = side_by_side(noise(8, 6, 0), noise(8, 6, 1)).convert("CMYK")
    save(original, tmp_path / "src" / "0.jpg", quality=95)
    prepared = prepare_dataset(tmp_path / "src", tmp_path / "out")
    half = Image.open(io.BytesIO(stored(prepared["train"], 0, "imageB")["bytes"]))
    assert (half.format, half.mode) == ("PNG", "RGB")
    decoded = Image.open(tmp_path / "src" / "0.jpg").convert("RGB")
    np.testing.assert_array_equal(pixels(half), pixels(decoded)[:, 8:])


def test_prepare_refuses_bad_input_before_writing(tmp_path):
    save(Image.new("RGB", (9, 4)), tmp_path / "odd" / "0.png")
    with pytest.raises(PairsSourceError, match=r"0\.png.*even width"):
        prepare_dataset(tmp_path / "odd", tmp_path / "out")
    save(noise(8, 8, 0), tmp_path / "mismatch" / "A" / "0.png")
    save(noise(8, 6, 0), tmp_path / "mismatch" / "B" / "0.png")
    with pytest.raises(BadSampleError, match="input is 8x8 but target is 8x6"):
        prepare_dataset(tmp_path / "mismatch", tmp_path / "out")
    save(side_by_side(noise(4, 4, 0), noise(4, 4, 1)), tmp_path / "names" / "my-split" / "0.png")
    with pytest.raises(PairsSourceError, match="my-split"):
        prepare_dataset(tmp_path / "names", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(PairsSourceError, match="no pairs found"):
        prepare_dataset(tmp_path / "empty", tmp_path / "out")
    # An imagefolder is a dataset already: never cut its files in half.
    with pytest.raises(PairsSourceError, match="is a datasets imagefolder"):
        prepare_dataset(imagefolder(tmp_path / "folder" / "train", 2).parent, tmp_path / "out")


def test_a_non_empty_out_is_replaced_only_with_overwrite(tmp_path):
    source = authors_layout(tmp_path / "src", {"train": 1})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        prepare_dataset(source, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
    prepare_dataset(source, tmp_path / "out", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dataset_dict.json", "train"]


@needs_facades
@pytest.mark.slow
def test_the_facades_train_folder_round_trips_pixel_for_pixel(tmp_path):
    prepared = prepare_dataset(FACADES, tmp_path / "facades-pairs", direction="BtoA")
    loaded = datasets.load_from_disk(str(tmp_path / "facades-pairs"))
    assert list(loaded) == ["train"] and len(loaded["train"]) == 400 == len(prepared["train"])
    original = pixels(Image.open(FACADES / "1.jpg"))  # natural order: row 0
    row_a, row_b = stored(loaded["train"], 0, "imageA"), stored(loaded["train"], 0, "imageB")
    np.testing.assert_array_equal(pixels(Image.open(io.BytesIO(row_a["bytes"]))), original[:, :256])
    np.testing.assert_array_equal(pixels(Image.open(io.BytesIO(row_b["bytes"]))), original[:, 256:])
    size = sum(p.stat().st_size for p in (tmp_path / "facades-pairs").rglob("*") if p.is_file())
    assert size < 80e6, f"{size / 1e6:.0f} MB: the PNG halves should stay near 3x the 20 MB of JPEGs"


# ----- the dataset card and the Hub ----------------------------------------------------------------------------------
class FakeHub:
    """Stands in for HfApi, in pix2pix_hub and inside datasets' push_to_hub: commits land in ``folder``."""

    folder: Path
    pending: dict[str, bytes] = {}

    def __init__(self, *args, **kwargs):
        pass

    def repo_info(self, repo_id, repo_type=None, revision=None, **kwargs):
        return SimpleNamespace(id=repo_id, sha="0" * 40)

    def create_repo(self, repo_id, repo_type=None, private=None, exist_ok=False, **kwargs):
        self.folder.mkdir(parents=True, exist_ok=True)
        return SimpleNamespace(repo_id=repo_id)

    def upload_file(self, path_or_fileobj, path_in_repo, repo_id, repo_type=None, **kwargs):
        self.create_commit(repo_id, [CommitOperationAdd(path_in_repo, path_or_fileobj)])

    def preupload_lfs_files(self, repo_id, additions, **kwargs):
        for addition in additions:  # datasets deletes the shard's temporary file right after this call
            with addition.as_file() as file:
                self.pending[addition.path_in_repo] = file.read()

    def create_commit(self, repo_id, operations, **kwargs):
        for operation in operations:
            target = self.folder / operation.path_in_repo
            if isinstance(operation, CommitOperationDelete):
                target.unlink()
                continue
            data = self.pending.pop(operation.path_in_repo, None)
            if data is None:
                with operation.as_file() as file:
                    data = file.read()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return SimpleNamespace(commit_url=f"https://hub.local/datasets/{repo_id}/commit/1")


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    FakeHub.folder = tmp_path / "pushed"
    FakeHub.pending = {}
    for where in ("pix2pix_hub.data.prepare", "datasets.dataset_dict", "datasets.arrow_dataset"):
        monkeypatch.setattr(f"{where}.HfApi", FakeHub)
    # push_to_hub reads the repo's current card and files through an HfFileSystem: here, the pushed folder.
    monkeypatch.setattr("datasets.dataset_dict.HfFileSystem", lambda **kwargs: LocalFileSystem())
    monkeypatch.setattr(
        "datasets.dataset_dict.DirFileSystem", lambda fs, path: DirFileSystem(path=str(FakeHub.folder), fs=fs)
    )
    return FakeHub.folder


def test_the_dataset_card_has_hub_metadata_counts_and_no_local_path(tmp_path, fake_hub):
    source = authors_layout(tmp_path / "facades", {"train": 3, "test": 1})
    prepare_dataset(source, tmp_path / "out", direction="BtoA", push_to_hub="me/facades-pairs")
    text = (fake_hub / "README.md").read_text()
    assert str(tmp_path) not in text
    card = DatasetCard(text)
    assert card.data.license == "other" and "research use only" in card.text
    assert card.data.task_categories == ["image-to-image"] and "pix2pix" in card.data.tags
    # push_to_hub merged its own metadata into the card pushed before it.
    assert [c["config_name"] for c in card.data.configs] == ["default"]
    assert {s["name"]: s["num_examples"] for s in card.data.dataset_info["splits"]} == {"test": 1, "train": 3}
    assert "| `train` | 3 |" in card.text and "| `test` | 1 |" in card.text
    assert "`imageA` (photo) and `imageB` (CMP facade labels)" in card.text  # facades' known sides
    assert "Direction: `BtoA`, `imageB` is the input" in card.text
    assert 'load_pairs("me/facades-pairs", split="train", direction="BtoA")' in card.text
    assert sorted(p.name for p in (fake_hub / "data").iterdir()) == [
        "test-00000-of-00001.parquet",
        "train-00000-of-00001.parquet",
    ]


@pytest.mark.slow
def test_a_pushed_dataset_loads_back_by_its_hub_id_through_the_mirror(tmp_path, fake_hub):
    source = authors_layout(tmp_path / "src", {"train": 3, "val": 2})
    prepare_dataset(source, tmp_path / "out", push_to_hub="me/pairs", license="cc-by-4.0")
    assert yaml.safe_load((fake_hub / "README.md").read_text().split("---")[1])["license"] == "cc-by-4.0"
    code = textwrap.dedent(
        """
        import json, numpy as np
        from pix2pix_hub.data import check_pairs, load_pairs
        pairs = load_pairs("me/pairs", split="val", direction="BtoA")
        check_pairs(pairs)
        print(json.dumps({"rows": len(pairs), "input1": np.asarray(pairs[1]["input"]).tolist()}))
        """
    )
    with HubMirror(tmp_path / "mirror") as hub:
        hub.add_dataset("me/pairs", fake_hub)
        result = run_python(code, HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf-home"))
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["rows"] == 2
    assert loaded["input1"] == pixels(noise(8, 6, 50 + 31)).tolist()  # BtoA: B of val pair 1


# ----- the command -------------------------------------------------------------------------------------------------
def run_command(*argv: str) -> int:
    return main(list(argv))


def test_dataset_prepare_command(tmp_path, capsys):
    source = authors_layout(tmp_path / "src", {"train": 2, "test": 1})
    assert run_command("dataset", "prepare", str(source), str(tmp_path / "out"), "--direction", "AtoB") == 0
    assert "test: 1, train: 2 pairs" in capsys.readouterr().out
    assert run_command("dataset", "prepare", str(source), str(tmp_path / "out")) == 2  # not empty
    assert "overwrite" in capsys.readouterr().err
    shutil.rmtree(source / "train")
    shutil.rmtree(source / "test")
    assert run_command("dataset", "prepare", str(source), str(tmp_path / "other")) == 1  # the data: exit 1
    assert "no pairs found" in capsys.readouterr().err
    assert run_command("dataset", "prepare", str(tmp_path / "nowhere"), str(tmp_path / "other")) == 2
    assert "no such folder" in capsys.readouterr().err


# ----- ambiguous layouts --------------------------------------------------------------------------------------------
def test_a_stray_image_beside_split_folders_is_refused_naming_both(tmp_path):
    source = authors_layout(tmp_path / "src", {"train": 5, "val": 3})
    save(noise(8, 6, 7), source / "preview.jpg")
    with pytest.raises(PairsSourceError) as refused:
        prepare_dataset(source, tmp_path / "out")
    message = str(refused.value)
    assert "\n" not in message
    for fragment in ("split folders train/, val/", "1 image at the top (preview.jpg)", "Move preview.jpg away"):
        assert fragment in message
    assert not (tmp_path / "out").exists()
    assert run_command("dataset", "prepare", str(source), str(tmp_path / "out")) == 1
    (source / "preview.jpg").unlink()  # what the error says to do: then every split folder is read
    prepared = prepare_dataset(source, tmp_path / "out")
    assert {name: len(split) for name, split in prepared.items()} == {"train": 5, "val": 3}


def test_a_b_folders_beside_other_pairs_are_refused(tmp_path):
    save(noise(8, 8, 0), tmp_path / "src" / "A" / "0.png")
    save(noise(8, 8, 1), tmp_path / "src" / "B" / "0.png")
    save(side_by_side(noise(8, 6, 2), noise(8, 6, 3)), tmp_path / "src" / "extra.png")
    with pytest.raises(PairsSourceError, match=r"A/ and B/ folders.*1 image at the top.*extra\.png"):
        prepare_dataset(tmp_path / "src", tmp_path / "out")
    (tmp_path / "src" / "extra.png").unlink()
    authors_layout(tmp_path / "src", {"test": 2})
    with pytest.raises(PairsSourceError, match=r"A/ and B/ folders.*split folders test/"):
        prepare_dataset(tmp_path / "src", tmp_path / "out")
    save(noise(8, 8, 4), tmp_path / "sub" / "A" / "0.png")
    save(noise(8, 8, 5), tmp_path / "sub" / "B" / "0.png")
    save(noise(8, 8, 6), tmp_path / "sub" / "A" / "train" / "1.png")
    save(noise(8, 8, 7), tmp_path / "sub" / "B" / "train" / "1.png")
    with pytest.raises(PairsSourceError, match=r"images directly in A/ and B/.*split folders A/train/"):
        prepare_dataset(tmp_path / "sub", tmp_path / "out")
    authors_layout(tmp_path / "split", {"val": 1})
    save(noise(8, 8, 8), tmp_path / "split" / "train" / "A" / "0.png")
    save(noise(8, 8, 9), tmp_path / "split" / "train" / "B" / "0.png")
    save(side_by_side(noise(8, 6, 2), noise(8, 6, 3)), tmp_path / "split" / "train" / "x.png")
    with pytest.raises(PairsSourceError, match=r"A/ and B/ folders and 1 image at the top \(x\.png\) in .*train"):
        prepare_dataset(tmp_path / "split", tmp_path / "out")
    assert not (tmp_path / "out").exists()
