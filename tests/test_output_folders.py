"""Output folders of the commands that write one whole (``convert``, ``dataset prepare``, ``space build``): an output
that is, contains or lies inside an input is refused before anything is written, ``--overwrite`` or not; ``.`` (an
empty current folder) is a valid output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_authors import authors_checkpoint, randomize

from pix2pix_hub import PatchDiscriminator, Pix2Pix, UNetGenerator, fileio
from pix2pix_hub.cli import main


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def authors_run(folder: Path) -> Path:
    """A folder as the authors' training leaves it: G and D checkpoints and a loss log."""
    folder.mkdir(parents=True)
    authors_checkpoint(randomize(UNetGenerator(num_downs=7, ngf=4)), folder / "latest_net_G.pth")
    authors_checkpoint(randomize(PatchDiscriminator(in_channels=6, ndf=4)), folder / "latest_net_D.pth")
    (folder / "loss_log.txt").write_text("epoch 1 ...\n")
    return folder


def aligned_folder(folder: Path, count: int = 2) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)).save(folder / f"{index}.jpg")
    return folder


def fake_wheel(folder: Path) -> Path:
    wheel = folder / "pix2pix_hub-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK not really a zip")  # refused for what it holds only after the folder check
    return wheel


def the_error(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


# ----- the rule, in one helper ---------------------------------------------------------------------------------------
def test_check_output_apart_names_the_relation_and_both_paths(tmp_path, monkeypatch):
    source = tmp_path / "run"
    (source / "sub").mkdir(parents=True)
    (source / "latest_net_G.pth").write_bytes(b"x")
    link = tmp_path / "link"
    link.symlink_to(source)
    cases = [  # (output, input, relation)
        (source, source, "is"),
        (link, source, "is"),  # a symlink to the input is the input
        (source / "sub" / "..", source, "is"),
        (source / "sub", source, "lies inside"),
        (link / "sub", source, "lies inside"),
        (tmp_path, source, "contains"),
        (source, source / "latest_net_G.pth", "contains"),
    ]
    for output, given, relation in cases:
        with pytest.raises(fileio.OutputOverlap) as raised:
            fileio.check_output_apart(output, {"SOURCE": given})
        message = str(raised.value)
        assert message.startswith(f"OUT {output}") and "\n" not in message
        assert f" {relation} SOURCE {given}: " in message, message
    fileio.check_output_apart(tmp_path / "elsewhere", {"SOURCE": source, "--discriminator": None})
    fileio.check_output_apart(source / "latest_net_G.pth.d", {"SOURCE": source / "latest_net_G.pth"})
    monkeypatch.chdir(source)
    with pytest.raises(fileio.OutputOverlap, match=rf"^OUT \. \({source}\) is SOURCE {source}: "):
        fileio.check_output_apart(".", {"SOURCE": source})


# ----- item 1: convert into the folder of the checkpoints ------------------------------------------------------------
@pytest.mark.parametrize("overwrite", [True, False])
def test_convert_into_the_checkpoints_folder_is_refused_and_deletes_nothing(tmp_path, capsys, overwrite):
    run = authors_run(tmp_path / "run")
    before = snapshot(run)
    argv = ["convert", str(run / "latest_net_G.pth"), str(run), "--discriminator", str(run / "latest_net_D.pth")]
    assert main(argv + (["--overwrite"] if overwrite else [])) == 2
    line = the_error(capsys)
    assert f"OUT {run} contains SOURCE {run / 'latest_net_G.pth'}" in line
    assert snapshot(run) == before
    assert sorted(p.name for p in run.iterdir()) == ["latest_net_D.pth", "latest_net_G.pth", "loss_log.txt"]


def test_convert_inside_the_discriminators_folder_is_refused(tmp_path, capsys):
    run = authors_run(tmp_path / "run")
    (run / "d").mkdir()
    (run / "latest_net_D.pth").rename(run / "d" / "net_D.pth")
    before = snapshot(run)
    argv = ["convert", str(run / "latest_net_G.pth"), str(run / "d"), "--discriminator", str(run / "d" / "net_D.pth")]
    assert main(argv + ["--overwrite"]) == 2
    assert f"contains --discriminator {run / 'd' / 'net_D.pth'}" in the_error(capsys)
    assert snapshot(run) == before


# ----- item 2: dataset prepare into its own source -------------------------------------------------------------------
@pytest.mark.parametrize("out", [".", "sub", ".."])
def test_dataset_prepare_into_its_source_is_refused_and_deletes_nothing(tmp_path, capsys, monkeypatch, out):
    source = aligned_folder(tmp_path / "photos")
    (source / "sub").mkdir()
    before = snapshot(source)
    monkeypatch.chdir(source)
    assert main(["dataset", "prepare", str(source), out, "--overwrite"]) == 2
    line = the_error(capsys)
    assert f"SOURCE {source}" in line and f"OUT {out}" in line
    assert snapshot(source) == before


def test_space_build_over_its_wheel_is_refused(tmp_path, capsys):
    dist = tmp_path / "dist"
    dist.mkdir()
    wheel = fake_wheel(dist)
    before = snapshot(dist)
    assert main(["space", "build", str(dist), "--model", "a/b", "--wheel", str(wheel), "--space_id", "a/s",
                 "--overwrite"]) == 2  # fmt: skip
    assert f"OUT {dist} contains --wheel {wheel}" in the_error(capsys)
    assert snapshot(dist) == before


# ----- item 10: "." as the output ------------------------------------------------------------------------------------
def test_convert_into_an_empty_current_folder(tmp_path, monkeypatch, capsys):
    run = authors_run(tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    assert main(["convert", str(run / "latest_net_G.pth"), ".", "--direction", "AtoB"]) == 0
    assert Path.cwd() == out and (out / "model.safetensors").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]
    assert Pix2Pix.from_pretrained(out, backend="torch").direction == "AtoB"
    capsys.readouterr()
    # A non-empty current folder cannot be swapped out from under the user: refused, even with --overwrite.
    before = snapshot(out)
    assert main(["convert", str(run / "latest_net_G.pth"), ".", "--overwrite"]) == 2
    assert f"OUT . ({out}) is the current folder" in the_error(capsys)
    assert snapshot(out) == before


def test_dataset_prepare_into_an_empty_current_folder(tmp_path, monkeypatch):
    import datasets

    source = aligned_folder(tmp_path / "photos")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    assert main(["dataset", "prepare", str(source), "."]) == 0
    assert Path.cwd() == out
    assert len(datasets.load_from_disk(str(out))["train"]) == 2


def test_space_build_into_an_empty_current_folder(tmp_path, monkeypatch):
    out = tmp_path / "space"
    out.mkdir()
    monkeypatch.chdir(out)
    assert main(["space", "build", ".", "--model", "a/b", "--git_url",
                 "git+https://github.com/a/pix2pix-hub@v1.0.0"]) == 0  # fmt: skip
    assert (out / "app.py").is_file() and (out / "requirements.txt").is_file()


def test_atomic_directory_fills_an_empty_current_folder_and_refuses_a_full_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with fileio.atomic_directory(".") as staging:
        (staging / "a.txt").write_text("a")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and Path.cwd() == tmp_path
    with pytest.raises(FileExistsError, match="is the current folder"), fileio.atomic_directory(".") as staging:
        (staging / "b.txt").write_text("b")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
