"""PairedDataset / check_pairs: reproducible seeds across DataLoader workers, every bad input named by row and
file (fail fast) or skipped and counted, 16-bit and CMYK files read correctly, collate_pairs."""

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from pix2pix_hub.data import (
    BadSampleError,
    PairedDataset,
    PairedIterableDataset,
    PairedTransform,
    PairsSourceError,
    check_pairs,
    collate_pairs,
    load_pairs,
    raw_rows,
    scan_pairs,
)

SMALL = PairedTransform(load_size=40, crop_size=32)


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """Keep this module's Arrow caches out of ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


def noise(width: int, height: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def folder_pairs(root, count: int = 6, size: tuple[int, int] = (48, 40)):
    """A/ and B/ folders with ``count`` PNG pairs named 0..count-1; returns the folder."""
    for i in range(count):
        for side, seed in (("A", i), ("B", 100 + i)):
            (root / side).mkdir(parents=True, exist_ok=True)
            noise(*size, seed).save(root / side / f"{i}.png")
    return root


def stack(items):
    return torch.stack([item["input"] for item in items]), torch.stack([item["target"] for item in items])


# ----- reproducibility --------------------------------------------------------------------------------------
def test_items_are_seeded_by_seed_epoch_and_index(tmp_path):
    pairs = load_pairs(folder_pairs(tmp_path))
    data = PairedDataset(pairs, SMALL, seed=7)
    first = data[2]
    assert set(first) == {"input", "target", "index"} and first["index"] == 2
    assert first["input"].shape == first["target"].shape == (3, 32, 32)
    assert torch.equal(first["input"], data[2]["input"])
    assert torch.equal(first["input"], PairedDataset(pairs, SMALL, seed=7)[2]["input"])  # a fresh process's view
    assert not torch.equal(first["input"], PairedDataset(pairs, SMALL, seed=8)[2]["input"])
    data.set_epoch(1)
    assert not torch.equal(first["input"], data[2]["input"])
    data.set_epoch(0)
    assert torch.equal(first["input"], data[2]["input"])


def test_two_workers_give_exactly_what_one_process_gives(tmp_path):
    data = PairedDataset(load_pairs(folder_pairs(tmp_path)), SMALL, seed=3)
    data.set_epoch(2)
    serial = stack([data[i] for i in range(len(data))])
    loader = DataLoader(data, batch_size=2, num_workers=2, collate_fn=collate_pairs)
    batches = list(loader)
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(6))
    assert torch.equal(torch.cat([b["input"] for b in batches]), serial[0])
    assert torch.equal(torch.cat([b["target"] for b in batches]), serial[1])


def test_streaming_pairs_through_the_iterable_dataset(tmp_path):
    pairs = load_pairs(folder_pairs(tmp_path, count=3), streaming=True)
    items = list(PairedIterableDataset(pairs, SMALL, seed=0))
    assert [item["index"] for item in items] == [0, 1, 2]
    again = list(PairedIterableDataset(pairs, SMALL, seed=0))
    assert torch.equal(stack(items)[0], stack(again)[0])


def test_streaming_pairs_are_shared_out_between_workers(tmp_path):
    """Each of 2 workers reads its own shards: every pair arrives exactly once."""
    pairs = load_pairs(folder_pairs(tmp_path, count=4, size=(32, 32)), streaming=True)
    crop_free = PairedTransform(preprocess="none", flip=False)
    loader = DataLoader(PairedIterableDataset(pairs, crop_free), batch_size=1, num_workers=2, collate_fn=collate_pairs)
    received = sorted(to_key(batch["input"][0]) for batch in loader)
    expected = sorted(to_key(crop_free(noise(32, 32, i), noise(32, 32, i))[0]) for i in range(4))
    assert received == expected


def to_key(tensor: torch.Tensor) -> bytes:
    return tensor.numpy().tobytes()


# ----- bad input: one folder with one bad pair of each kind -------------------------------------------------
def jpeg(image: Image.Image, path, **kwargs):
    image.save(path, format="JPEG", **kwargs)
    return path


@pytest.fixture
def bad_folder(tmp_path):
    """A/ B/ folders: rows 0 and 5 good, then truncated, corrupt, non-image, different sizes (rows 1-4)."""
    root = tmp_path / "bad"
    for side in "AB":
        (root / side).mkdir(parents=True)
    for name in ("0", "5"):
        noise(48, 40, 1).save(root / "A" / f"{name}.png")
        noise(48, 40, 2).save(root / "B" / f"{name}.png")
    full = jpeg(noise(48, 40, 3), root / "A" / "1.jpg").read_bytes()
    (root / "A" / "1.jpg").write_bytes(full[: len(full) // 2])  # truncated
    (root / "A" / "2.jpg").write_bytes(np.random.default_rng(0).bytes(3000))  # corrupt: random bytes
    (root / "A" / "3.png").write_text("this is a text file, not an image\n")  # non-image with an image name
    noise(40, 40, 4).save(root / "A" / "4.png")  # wrong size for its partner
    for name in ("1", "2", "3", "4"):
        noise(48, 40, 5).save(root / "B" / f"{name}.png")
    return root


EXPECTED_BAD = {1: "1.jpg", 2: "2.jpg", 3: "3.png", 4: "4.png"}


def test_check_pairs_names_every_bad_row_and_file(bad_folder):
    pairs = load_pairs(bad_folder)
    with pytest.raises(BadSampleError) as caught:
        check_pairs(pairs)
    message = str(caught.value)
    assert "4 of 6 pairs cannot be used" in message and "--skip_bad_samples" in message
    for row, name in EXPECTED_BAD.items():
        line = next(line for line in message.splitlines() if f"row {row}" in line)
        assert name in line
    assert "truncated" in message
    assert "input is 40x40 but target is 48x40" in message


@pytest.mark.parametrize(
    ("row", "reason"), [(1, "truncated"), (2, "cannot identify"), (3, "cannot identify"), (4, "40x40")]
)
def test_each_bad_pair_fails_with_its_row_and_file(bad_folder, row, reason):
    data = PairedDataset(load_pairs(bad_folder), SMALL)
    assert data[0] is not None
    with pytest.raises(BadSampleError) as caught:
        data[row]
    message = str(caught.value)
    assert f"row {row}" in message and EXPECTED_BAD[row] in message and reason in message


def test_odd_width_side_by_side_file_is_named(tmp_path):
    noise(16, 8, 0).save(tmp_path / "even.png")
    noise(17, 8, 0).save(tmp_path / "odd.png")
    pairs = load_pairs(tmp_path)  # loading works: the bad file becomes a row that fails with its reason
    with pytest.raises(BadSampleError, match=r"row 1: .*odd.png is 17x8: a side-by-side A\|B image needs an even"):
        check_pairs(pairs)
    data = PairedDataset(pairs, SMALL, skip_bad_samples=True)
    assert data[0] is not None and data[1] is None and data.skipped_count == 1


def test_image_smaller_than_the_crop_is_named(tmp_path):
    pairs = load_pairs(folder_pairs(tmp_path, count=2, size=(20, 20)))
    crop_only = PairedTransform(crop_size=32, preprocess="crop")
    with pytest.raises(BadSampleError, match=r"row 0 \(input .*0.png, target .*0.png\): image is 20x20, smaller"):
        check_pairs(pairs, transform=crop_only)
    with pytest.raises(BadSampleError, match=r"row 1 .*1.png.*smaller than crop_size=32"):
        PairedDataset(pairs, crop_only)[1]
    assert PairedDataset(pairs, SMALL)[1]["input"].shape == (3, 32, 32)  # resize_and_crop resizes up instead


def test_skip_bad_samples_counts_across_dataloader_workers(bad_folder):
    data = PairedDataset(load_pairs(bad_folder), SMALL, skip_bad_samples=True)
    loader = DataLoader(data, batch_size=3, num_workers=2, collate_fn=collate_pairs)
    batches = list(loader)
    kept = [index for batch in batches if batch is not None for index in batch["index"].tolist()]
    assert kept == [0, 5]
    assert data.skipped_count == 4  # counted in the workers, read in the main process
    data[1]
    assert data.skipped_count == 5


def test_collate_pairs_drops_none_and_stacks():
    item = {"input": torch.zeros(3, 4, 4), "target": torch.ones(1, 4, 4), "index": 3}
    batch = collate_pairs([None, item, item])
    assert batch["input"].shape == (2, 3, 4, 4) and batch["target"].shape == (2, 1, 4, 4)
    assert batch["index"].tolist() == [3, 3]
    assert collate_pairs([None, None]) is None


def test_missing_columns_are_listed():
    plain = datasets.Dataset.from_dict({"photo": ["a.png"], "label": ["b.png"]})
    with pytest.raises(ValueError, match=r"no 'input' and no 'target' column \(columns: photo, label\)"):
        PairedDataset(plain, SMALL)


# ----- deep and odd color files are read, not refused -------------------------------------------------------
def test_16_bit_and_cmyk_files_are_converted(tmp_path):
    for side in "AB":
        (tmp_path / side).mkdir()
    Image.fromarray(np.full((32, 32), 65535, dtype=np.uint16)).save(tmp_path / "A" / "deep.png")
    Image.new("CMYK", (32, 32), (0, 0, 0, 0)).save(tmp_path / "A" / "print.jpg", format="JPEG")
    Image.new("RGB", (32, 32), (255, 255, 255)).save(tmp_path / "B" / "deep.png")
    Image.new("RGB", (32, 32), (0, 0, 0)).save(tmp_path / "B" / "print.png")
    pairs = load_pairs(tmp_path)
    check_pairs(pairs)
    data = PairedDataset(pairs, PairedTransform(preprocess="none", flip=False))
    deep, cmyk = data[0], data[1]
    assert torch.equal(deep["input"], torch.ones(3, 32, 32))  # 16-bit white stays white (scaled, not clipped)
    assert cmyk["input"].min() > 0.95  # CMYK with no ink is white in RGB
    assert torch.equal(cmyk["target"], -torch.ones(3, 32, 32))


# ----- label maps and instance maps (pix2pixHD) -------------------------------------------------------------
def label_folders(root, labels: list[np.ndarray], with_instances: bool = True):
    """A/ class-index PNGs (mode L), B/ photos, I/ 16-bit instance ids (object k of class c: id 1000 c + k)."""
    for side in "ABI" if with_instances else "AB":
        (root / side).mkdir(parents=True, exist_ok=True)
    for i, classes in enumerate(labels):
        Image.fromarray(classes.astype(np.uint8), mode="L").save(root / "A" / f"{i}.png")
        noise(classes.shape[1], classes.shape[0], i).save(root / "B" / f"{i}.png")
        if with_instances:
            ids = (1000 * classes + (np.arange(classes.shape[1]) >= classes.shape[1] // 2)).astype(np.uint16)
            Image.fromarray(ids).save(root / "I" / f"{i}.png")
    return root


def test_instance_maps_from_an_i_folder_become_the_boundary_channel(tmp_path):
    classes = np.zeros((16, 32), dtype=np.int64)
    classes[8:] = 3  # two classes, top and bottom; each split in two instances left and right
    root = label_folders(tmp_path, [classes, classes])
    assert load_pairs(root).column_names == ["input", "target"]  # instances only when asked for
    pairs = load_pairs(root, column_instance="instance")
    assert pairs.column_names == ["input", "target", "instance"]
    transform = PairedTransform(preprocess="none", flip=False, label_nc=4, instance=True)
    item = PairedDataset(pairs, transform)[1]
    assert item["input"].shape == (5, 16, 32) and item["target"].shape == (3, 16, 32)
    np.testing.assert_array_equal(item["input"][:4].argmax(0).numpy(), classes)
    edges = item["input"][4].numpy()
    assert edges[[7, 8]].all() and edges[:, [15, 16]].all()  # the class border and the instance border
    assert edges.sum() == 2 * 32 + 2 * 16 - 4


def test_an_instance_map_missing_from_i_is_named(tmp_path):
    root = label_folders(tmp_path, [np.zeros((8, 8))] * 2)
    (root / "I" / "1.png").unlink()
    with pytest.raises(PairsSourceError, match=r"only in .*A: 1"):
        load_pairs(root, column_instance="instance")
    plain = label_folders(tmp_path / "plain", [np.zeros((8, 8))], with_instances=False)
    with pytest.raises(PairsSourceError, match=r"has no instance maps .* Put them in an I/ folder beside A/ and B/"):
        load_pairs(plain, column_instance="instance")


def test_bad_label_value_is_named_by_file(tmp_path):
    good, bad = np.zeros((8, 16)), np.zeros((8, 16))
    bad[2, 3] = 9
    root = label_folders(tmp_path, [good, bad, good], with_instances=False)
    data = PairedDataset(load_pairs(root), PairedTransform(preprocess="none", label_nc=8))
    assert data[0]["input"].shape == (8, 8, 16)
    with pytest.raises(BadSampleError) as caught:
        data[1]
    line = str(caught.value).splitlines()[0]
    assert line.startswith("row 1: label map ") and line.endswith(
        "label value 9 outside 0..7 (label_nc=8); raise --label_nc or fix the map."
    )
    assert str(root / "A" / "1.png") in line and "B" not in line.replace(str(root), "")
    skipping = PairedDataset(load_pairs(root), PairedTransform(preprocess="none", label_nc=8), skip_bad_samples=True)
    assert skipping[1] is None and skipping[2] is not None and skipping.skipped_count == 1


def test_two_to_one_label_pairs_batch_at_their_own_size(tmp_path):
    """2:1 label/photo pairs through scale_width: whole images, both sides multiples of the generator's 16."""
    classes = np.kron(np.arange(8).reshape(2, 4), np.ones((40, 40), dtype=np.int64))  # 160x80, 8 classes
    root = label_folders(tmp_path, [classes, classes[:, ::-1].copy()])
    # crop_size only floors the height here (the authors' scale_width): keep it at most the scaled height.
    transform = PairedTransform(
        load_size=128, crop_size=64, preprocess="scale_width", label_nc=8, instance=True, size_multiple=16
    )
    data = PairedDataset(load_pairs(root, column_instance="instance"), transform, seed=0)
    batch = next(iter(DataLoader(data, batch_size=2, collate_fn=collate_pairs)))
    assert batch["input"].shape == (2, 9, 64, 128) and batch["target"].shape == (2, 3, 64, 128)
    assert torch.equal(batch["input"][:, :8].sum(1), torch.ones(2, 64, 128))


def test_any_image_column_can_hold_the_instance_maps(tmp_path):
    from pix2pix_hub.data import SourceInfo, select_pairs

    root = label_folders(tmp_path, [np.zeros((8, 8))])
    files = {"label": [str(root / "A" / "0.png")], "photo": [str(root / "B" / "0.png")]}
    table = datasets.Dataset.from_dict({**files, "ids": [str(root / "I" / "0.png")], "caption": ["x"]})
    info = SourceInfo("parquet", "table.parquet", None, table.column_names)
    for direction, input_file in (("AtoB", "A"), ("BtoA", "B")):
        pairs = select_pairs(
            table, info, column_a="label", column_b="photo", direction=direction, column_instance="ids"
        )
        assert pairs.column_names == ["input", "target", "instance"]
        row = raw_rows(pairs)[0]
        assert row["input"]["path"].endswith(f"{input_file}/0.png")
        assert PairedDataset(pairs, SMALL).rows[0]["instance"]["path"].endswith("I/0.png")
    same = select_pairs(table, info, column_a="label", column_b="label", direction="AtoB", column_instance="ids")
    assert sorted(same.column_names) == ["input", "instance", "target"]
    with pytest.raises(PairsSourceError, match="column_instance='label' is also the input"):
        select_pairs(table, info, column_a="label", column_b="photo", direction="AtoB", column_instance="label")
    with pytest.raises(PairsSourceError, match=r"no instance maps \(no column 'inst'; columns: label, photo, ids"):
        select_pairs(table, info, column_a="label", column_b="photo", direction="AtoB", column_instance="inst")


def test_scan_pairs_names_every_bad_label_and_instance_map_by_its_file(tmp_path):
    """What `python -m pix2pix_hub.data` and check_pairs report with a label-map transform: each bad map by file."""
    good, bad = np.zeros((8, 8)), np.zeros((8, 8))
    bad[2, 3] = 9
    root = label_folders(tmp_path, [good, bad, good, good, good])
    Image.new("I;16", (4, 8)).save(root / "I" / "2.png")  # an instance map of another size
    (root / "I" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.new("RGB", (8, 8)).save(root / "A" / "4.png")  # colours, not class indices
    pairs = load_pairs(root, column_instance="instance")
    transform = PairedTransform(preprocess="none", label_nc=8, instance=True)
    report = scan_pairs(pairs, transform=transform)
    assert report.rows == 5 and len(report.bad) == 4
    labels, size, broken, colours = report.bad
    assert labels == (
        f"row 1: label map {root / 'A' / '1.png'}: label value 9 outside 0..7 (label_nc=8); raise --label_nc or fix "
        "the map."
    )
    assert size == f"row 2: instance map {root / 'I' / '2.png'}: the instance map is 4x8 but the input is 8x8."
    assert broken.startswith(f"row 3: cannot read the instance map {root / 'I' / '3.png'}: ")
    assert colours.startswith(f"row 4: label map {root / 'A' / '4.png'}: the label map is a RGB image")
    assert scan_pairs(pairs, transform=PairedTransform(preprocess="none", label_nc=10, instance=True)).bad == [
        size,
        broken,
        colours,
    ]  # label_nc 10 takes class 9
    assert scan_pairs(pairs).bad == []  # without a transform only decoding and sizes are checked
    with pytest.raises(BadSampleError, match=r"4 of 5 pairs cannot be used:\n  row 1: label map "):
        check_pairs(pairs, transform=transform)


def test_data_command_names_each_bad_label_and_instance_map_by_its_file(tmp_path, capsys):
    from pix2pix_hub.data.__main__ import main as data_main

    good, bad = np.zeros((8, 8)), np.zeros((8, 8))
    bad[2, 3] = 9
    root = label_folders(tmp_path / "bad", [good, bad, good])
    Image.new("I;16", (4, 8)).save(root / "I" / "2.png")  # an instance map of another size
    assert data_main([str(root), "--label_nc", "8", "--instance"]) == 1
    out = capsys.readouterr().out
    assert "bad pairs: 2" in out and "checked: 3 pairs, 1 readable" in out
    assert f"row 1: label map {root / 'A' / '1.png'}: label value 9 outside 0..7 (label_nc=8)" in out
    assert f"row 2: instance map {root / 'I' / '2.png'}: the instance map is 4x8 but the input is 8x8." in out
    assert data_main([str(root), "--label_nc", "10"]) == 0  # class 9 fits, instance maps unchecked without --instance
    assert data_main([str(root)]) == 0  # images: only decoding and sizes
    capsys.readouterr()
    assert data_main([str(root), "--instance", "--column_instance", "ids"]) == 2
    assert "no column 'ids'" in capsys.readouterr().err
    fine = label_folders(tmp_path / "good", [good, good])
    assert data_main([str(fine), "--label_nc", "8", "--instance"]) == 0
    assert "bad pairs" not in capsys.readouterr().out


# ----- every pair bad in the same way ------------------------------------------------------------------------------
def test_pairs_that_all_fail_alike_get_the_likely_fix_not_skipping(tmp_path):
    labels = PairedTransform(preprocess="none", label_nc=3)
    pairs = load_pairs(folder_pairs(tmp_path / "rgb", count=4))  # RGB photos given as class-index maps
    with pytest.raises(BadSampleError) as refused:
        check_pairs(pairs, transform=labels)
    message = str(refused.value)
    assert "all 4 pairs fail the same way" in message and "the label map is a RGB image" in message
    assert "not class-index maps" in message and "without --label_nc" in message
    assert "--skip_bad_samples" not in message and "\n" not in message
    # Some good, some bad: skipping them is a way forward, and it is offered.
    (tmp_path / "rgb" / "A" / "0.png").write_bytes(b"not a png")
    with pytest.raises(BadSampleError, match="--skip_bad_samples"):
        check_pairs(load_pairs(tmp_path / "rgb"), transform=SMALL)


def test_skipping_every_pair_ends_in_one_line_saying_so(tmp_path):
    pairs = load_pairs(folder_pairs(tmp_path / "rgb", count=4))
    dataset = PairedDataset(pairs, PairedTransform(preprocess="none", label_nc=3), skip_bad_samples=True)
    with pytest.raises(BadSampleError) as refused:
        dataset.first_good_item()
    message = str(refused.value)
    assert "--skip_bad_samples skipped all 4 pairs" in message and "not class-index maps" in message
    assert "\n" not in message
    fine = PairedDataset(load_pairs(tmp_path / "rgb"), SMALL, skip_bad_samples=True)
    assert fine.first_good_item()["index"] == 0
