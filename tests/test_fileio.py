"""fileio: atomic writes get the permissions a normal write gets, and an interrupted write leaves nothing half-done."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from pix2pix_hub import fileio


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one after."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


WRITERS = {
    "bytes": lambda path: fileio.write_bytes(path, b"\x00" * 10),
    "text": lambda path: fileio.write_text(path, "hello"),
    "json": lambda path: fileio.write_json(path, {"a": 1}),
    "image": lambda path: fileio.save_image(Image.new("RGB", (4, 4)), path),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_files_and_folders_follow_the_umask(tmp_path, umask, kind, mask, file_mode, dir_mode):
    umask(mask)
    path = WRITERS[kind](tmp_path / "new" / f"out.{'png' if kind == 'image' else 'dat'}")
    assert mode(path) == file_mode
    assert mode(path.parent) == dir_mode
    with fileio.atomic_directory(tmp_path / "folder") as staging:
        (staging / "inner.txt").write_text("x")
    assert mode(tmp_path / "folder") == dir_mode
    assert mode(tmp_path / "folder" / "inner.txt") == file_mode


def test_a_failed_write_keeps_the_old_content_and_leaves_no_temporary(tmp_path):
    path = fileio.write_text(tmp_path / "file.txt", "old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with fileio.atomic_file(path, "w") as file:
            file.write("half of the new")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_a_failed_folder_write_keeps_the_old_folder(tmp_path):
    folder = tmp_path / "model"
    with fileio.atomic_directory(folder) as staging:
        (staging / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with fileio.atomic_directory(folder) as staging:
            (staging / "weights").write_text("v2, half")
            raise RuntimeError("killed")
    assert (folder / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with fileio.atomic_directory(folder) as staging:
        (staging / "weights").write_text("v2")
    assert (folder / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_kill_9_mid_write_never_leaves_a_partial_file(tmp_path):
    """A writer killed with SIGKILL while writing up to 512 MB: the destination is the old file, whole."""
    path = tmp_path / "big.bin"
    fileio.write_bytes(path, b"A" * 1024)
    script = textwrap.dedent(
        f"""
        import sys
        from pix2pix_hub import fileio
        with fileio.atomic_file({str(path)!r}) as file:
            print("writing", flush=True)
            for _ in range(512):
                file.write(b"B" * (1 << 20))
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == b"writing"
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert path.read_bytes() == b"A" * 1024
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(fileio.TEMP_MARK)]
    fileio.remove_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin"]
    assert len(leftovers) <= 1  # the killed writer's own temporary file, hidden and now cleaned up


def test_move_entries_keeps_the_destinations_other_entries(tmp_path):
    source, destination = tmp_path / "src", tmp_path / "dst"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("new a")
    (source / "sub" / "b.txt").write_text("new b")
    (destination / "sub").mkdir(parents=True)
    (destination / "sub" / "stale.txt").write_text("old")
    (destination / "keep.txt").write_text("keep")
    fileio.move_entries(source, destination)
    assert (destination / "a.txt").read_text() == "new a"
    assert sorted(p.name for p in (destination / "sub").iterdir()) == ["b.txt"]  # a folder is replaced whole
    assert (destination / "keep.txt").read_text() == "keep"


def test_remove_directory_never_leaves_a_half_deleted_folder_under_its_name(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoint-15"
    folder.mkdir()
    for name in ("model.safetensors", "trainer_state.json"):
        (folder / name).write_text(name)
    real_rmtree = fileio.shutil.rmtree

    def killed_midway(path, *args, **kwargs):
        (Path(path) / "model.safetensors").unlink()
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(fileio.shutil, "rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        fileio.remove_directory(folder)
    monkeypatch.setattr(fileio.shutil, "rmtree", real_rmtree)
    left = list(tmp_path.iterdir())
    assert not folder.exists() and len(left) == 1 and left[0].name.startswith(fileio.TEMP_MARK)
    fileio.remove_temporaries(tmp_path)  # what the next start does
    assert not list(tmp_path.iterdir())


def test_check_replaceable_asks_for_overwrite_and_refuses_a_file(tmp_path):
    fileio.check_replaceable(tmp_path / "new", overwrite=False)
    fileio.check_replaceable(tmp_path, overwrite=False)  # empty
    (tmp_path / "a.txt").write_text("a")
    with pytest.raises(FileExistsError, match=rf"^OUT {tmp_path} exists and is not empty; .*--overwrite"):
        fileio.check_replaceable(tmp_path, overwrite=False)
    fileio.check_replaceable(tmp_path, overwrite=True)
    with pytest.raises(FileExistsError, match=r"a\.txt is a file, not a folder"):
        fileio.check_replaceable(tmp_path / "a.txt", overwrite=True, what="out")
