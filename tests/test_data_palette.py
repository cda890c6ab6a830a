"""Colour-coded label maps -> class indices (``images.palettes``, ``dataset prepare --palette``): the real facades
label halves land on palette classes and far pixels are counted, drawn maps round-trip exactly (JPEG-compressed
ones away from edges), the nearest-colour search matches a per-pixel brute force, JSON palettes and their errors, and
the command end to end with its exit codes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from pix2pix_hub.cli import main
from pix2pix_hub.data import load_pairs, prepare_dataset
from pix2pix_hub.data.prepare import PreparedInfo, conversion_sentence, dataset_card
from pix2pix_hub.images.palettes import (
    FACADE_CLASSES,
    FACADES,
    FAR_DISTANCE,
    PaletteConversion,
    PaletteError,
    load_palette,
    nearest_classes,
)

REPO = Path(__file__).resolve().parents[1]
FACADES_DIR = REPO.parent / "shared" / "data" / "facades" / "train"
needs_facades = pytest.mark.skipif(not FACADES_DIR.is_dir(), reason=f"facades not found at {FACADES_DIR}")
SAMPLE = ("1.jpg", "10.jpg", "100.jpg", "200.jpg", "300.jpg")
OFF_PALETTE = (128, 128, 128)  # grey: far from every facades colour (checked where used)


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """Keep this module's Arrow caches out of ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


def label_half(name: str) -> Image.Image:
    """The colour label map (B, right half) of a real facades pair."""
    with Image.open(FACADES_DIR / name) as pair:
        pair = pair.convert("RGB")
        return pair.crop((pair.width // 2, 0, pair.width, pair.height))


def brute_force(rgb: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel distances to every colour, the obvious way: what the vectorised search must equal."""
    d = ((rgb.reshape(-1, 1, 3).astype(np.int64) - colors[None].astype(np.int64)) ** 2).sum(axis=2)
    return d.argmin(axis=1).reshape(rgb.shape[:2]), np.sqrt(d.min(axis=1)).reshape(rgb.shape[:2])


# ----- the real facades label maps --------------------------------------------------------------------------------
@needs_facades
def test_real_facades_labels_land_on_palette_classes():
    conversion = PaletteConversion(FACADES, "B")
    for name in SAMPLE:
        half = label_half(name)
        labels = conversion.convert(half, name)
        assert labels.mode == "L" and labels.size == half.size
        values = np.asarray(labels)
        assert values.max() < FACADES.label_nc
        expected, distances = brute_force(np.asarray(half), FACADES.colors)
        np.testing.assert_array_equal(values, expected)
        assert (distances <= FAR_DISTANCE).mean() > 0.5  # most pixels of each map are near a palette colour
    report = conversion.report
    assert report.files == len(SAMPLE) and report.pixels == len(SAMPLE) * 256 * 256
    assert {"wall", "window", "background"} <= set(report.classes_found()) <= set(FACADE_CLASSES)
    assert report.class_pixels.sum() == report.pixels
    assert 0 < report.far < report.pixels / 2  # most pixels are near a palette colour; edge smears are counted


@needs_facades
def test_an_off_palette_block_is_counted_and_named():
    grey = np.array(OFF_PALETTE)
    assert np.sqrt(((FACADES.colors.astype(int) - grey) ** 2).sum(axis=1)).min() > FAR_DISTANCE
    clean, planted = PaletteConversion(FACADES, "B"), PaletteConversion(FACADES, "B")
    for name in SAMPLE[:3]:
        clean.convert(label_half(name), name)
    half = np.asarray(label_half(SAMPLE[1])).copy()
    _, before = nearest_classes(half, FACADES.colors)
    block = (slice(20, 220), slice(30, 230))  # 200 x 200: the largest far share of the three
    half[block] = OFF_PALETTE
    for name in SAMPLE[:3]:
        image = Image.fromarray(half) if name == SAMPLE[1] else label_half(name)
        planted.convert(image, name)
    already_far = int((before[block] > FAR_DISTANCE).sum())
    assert planted.report.far - clean.report.far == 200 * 200 - already_far
    assert planted.report.worst_file == SAMPLE[1]
    summary = planted.report.summary()
    assert f"{planted.report.far} of {planted.report.pixels} pixels" in summary
    assert SAMPLE[1] in summary and f"more than {FAR_DISTANCE:g}" in summary


# ----- round trips and the search itself ------------------------------------------------------------------------
def test_drawn_palette_colours_round_trip_exactly():
    classes = np.random.default_rng(0).integers(0, FACADES.label_nc, (48, 64))
    conversion = PaletteConversion(FACADES, "A")
    labels = conversion.convert(Image.fromarray(FACADES.colors[classes]), "drawn")
    np.testing.assert_array_equal(np.asarray(labels), classes)
    assert conversion.report.far == 0 and conversion.report.worst_share == 0


def test_a_jpeg_compressed_map_keeps_its_classes_away_from_edges():
    blocks = np.random.default_rng(1).integers(0, FACADES.label_nc, (8, 8))
    classes = np.kron(blocks, np.ones((32, 32), dtype=np.int64))  # 256 x 256 of 32-px blocks
    buffer = io.BytesIO()
    Image.fromarray(FACADES.colors[classes]).save(buffer, format="JPEG", quality=75)
    labels = np.asarray(PaletteConversion(FACADES, "B").convert(Image.open(buffer), "jpeg"))
    inner = np.zeros((32, 32), dtype=bool)
    inner[8:-8, 8:-8] = True  # JPEG's 8x8 blocks and 2x chroma subsampling smear up to a block past an edge
    inner = np.tile(inner, (8, 8))
    np.testing.assert_array_equal(labels[inner], classes[inner])


def test_many_classes_many_colours_match_the_brute_force(tmp_path):
    """300 classes (16-bit output, several distance chunks) on noise: every pixel a different colour."""
    rng = np.random.default_rng(2)
    packed = rng.choice(1 << 24, size=300, replace=False)
    colors = np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1)
    path = tmp_path / "many.json"
    path.write_text(json.dumps({f"class {i}": c.tolist() for i, c in enumerate(colors)}))
    palette = load_palette(path)
    assert palette.label_nc == 300 and palette.name == "many"
    noise = rng.integers(0, 256, (128, 160, 3), dtype=np.uint8)
    classes, distances = nearest_classes(noise, palette.colors)
    expected, expected_distances = brute_force(noise, palette.colors)
    np.testing.assert_array_equal(classes, expected)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-6)
    drawn = PaletteConversion(palette, "A").convert(Image.fromarray(palette.colors[expected]), "drawn")
    assert drawn.mode.startswith("I")  # beyond 256 classes: 16-bit
    np.testing.assert_array_equal(np.asarray(drawn), expected)


# ----- JSON palettes --------------------------------------------------------------------------------------------
def test_json_palette_list_and_object_forms_agree(tmp_path):
    entries = [{"name": "sky", "color": [0, 0, 255]}, {"name": "grass", "color": [0, 200, 0]}]
    (tmp_path / "a.json").write_text(json.dumps(entries))
    (tmp_path / "b.json").write_text(json.dumps({"sky": [0, 0, 255], "grass": [0, 200, 0]}))
    first, second = load_palette(tmp_path / "a.json"), load_palette(str(tmp_path / "b.json"))
    assert first.names == second.names == ("sky", "grass")
    np.testing.assert_array_equal(first.colors, second.colors)
    assert load_palette("facades") is FACADES and FACADES.names == tuple(FACADE_CLASSES)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "not readable JSON"),
        ("[]", "0 classes"),
        ('[{"name": "sky"}]', "expected a list"),
        ('"sky"', "expected a list"),
        ('{"sky": [0, 0, 256]}', "0..255"),
        ('{"sky": [0, 0]}', "0..255"),
        ('{"sky": [0, 0, 1.5]}', "0..255"),
        ('{"sky": [0, 0, 255], "sky": [1, 1, 1]}', "listed twice"),
        ('[{"name": "a", "color": [1, 2, 3]}, {"name": "a", "color": [4, 5, 6]}]', "listed twice"),
        ('{"sky": [0, 0, 255], "sea": [0, 0, 255]}', "share the colour"),
    ],
)
def test_bad_palette_files_are_one_line_errors_naming_the_file(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(PaletteError) as error:
        load_palette(path)
    message = str(error.value)
    assert str(path) in message and words in message and "\n" not in message


def test_an_unknown_palette_name_lists_the_built_ins(tmp_path):
    with pytest.raises(PaletteError, match="facades"):
        load_palette(tmp_path / "missing.json")


def exit_status(argv: list[str]) -> int:
    """The command's exit status, whether it returned it or argparse ended it (a usage error of the flags)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code)


# ----- the prepare command ---------------------------------------------------------------------------------------
@pytest.fixture
def facades_source(tmp_path) -> Path:
    """Three real facades A|B pairs in a folder."""
    source = tmp_path / "facades"
    source.mkdir()
    for name in SAMPLE[:3]:
        shutil.copy(FACADES_DIR / name, source / name)
    return source


@needs_facades
def test_prepare_command_converts_the_label_side(facades_source, tmp_path, capsys):
    out = tmp_path / "classes"
    assert (
        main(["dataset", "prepare", str(facades_source), str(out), "--palette", "facades", "--direction", "BtoA"]) == 0
    )
    printed = capsys.readouterr().out
    assert "--label_nc 12" in printed and "Far pixels:" in printed and "more than 40" in printed
    rows = datasets.load_from_disk(str(out))["train"]
    assert len(rows) == 3
    for row in rows:
        assert row["imageB"].mode == "L" and np.asarray(row["imageB"]).max() < 12
        assert row["imageA"].mode == "RGB" and row["imageA"].size == row["imageB"].size
    name = sorted(facades_source.iterdir())[0].name
    expected = PaletteConversion(FACADES, "B").convert(label_half(name), name)
    np.testing.assert_array_equal(np.asarray(rows[0]["imageB"]), np.asarray(expected))
    pairs = load_pairs(str(out), direction="BtoA")  # the input side is the class map
    assert pairs[0]["input"].mode == "L"


@needs_facades
def test_prepare_api_folders_layout_and_card(tmp_path):
    """A/ B/ folders with the labels in A (a JSON palette): A becomes PNG class maps, B keeps its bytes."""
    source = tmp_path / "src"
    (source / "A").mkdir(parents=True)
    (source / "B").mkdir()
    for name in SAMPLE[:2]:
        label_half(name).save(source / "A" / name, quality=90)
        with Image.open(FACADES_DIR / name) as pair:
            pair.crop((0, 0, 256, 256)).save(source / "B" / name)
    palette = tmp_path / "cmp.json"
    palette.write_text(json.dumps([{"name": n, "color": list(c)} for n, c in FACADE_CLASSES.items()]))
    conversion = PaletteConversion(load_palette(palette), "A")
    prepared = prepare_dataset(source, tmp_path / "out", conversion=conversion)
    row = prepared["train"][0]
    assert row["imageA"].mode == "L" and np.asarray(row["imageA"]).max() < 12
    with Image.open(source / "B" / SAMPLE[0]) as original:  # the other side keeps its file's bytes
        assert row["imageB"].format == original.format == "JPEG"
    assert conversion.report.files == 2 and conversion.report.pixels == 2 * 256 * 256
    assert conversion.report.worst_file in {f"A/{name}" for name in SAMPLE[:2]}
    card = dataset_card(
        PreparedInfo("src", "A/ and B/ folders", {"train": 2}, labels=conversion_sentence(conversion)), "me/x"
    )
    assert "`imageA` holds class-index maps" in card and "--label_nc 12" in card and "0 wall" in card


@needs_facades
@pytest.mark.parametrize(
    "flags",
    [
        ["--label_side", "B"],  # without --palette
        ["--palette", "facades"],  # no side: neither --label_side nor --direction
        ["--palette", "facades", "--label_side", "B", "--far_distance", "0"],
        ["--palette", "nowhere.json", "--label_side", "B"],
    ],
)
def test_prepare_command_usage_errors_exit_2_and_write_nothing(facades_source, tmp_path, capsys, flags):
    out = tmp_path / "out"
    assert exit_status(["dataset", "prepare", str(facades_source), str(out), *flags]) == 2
    assert not out.exists()
    assert capsys.readouterr().err.count("\n") == 1


@needs_facades
def test_prepare_command_bad_palette_file_exits_2(facades_source, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"sky": [0, 0, 300]}')
    out = tmp_path / "out"
    assert main(["dataset", "prepare", str(facades_source), str(out), "--palette", str(bad), "--label_side", "B"]) == 2
    assert str(bad) in capsys.readouterr().err and not out.exists()
