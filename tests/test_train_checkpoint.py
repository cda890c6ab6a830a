"""Checkpoints: exact resume, crash safety while writing, retention, and refusing a foreign architecture."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from test_train_support import assert_same_state, make_aligned_pairs, run, state_of, tiny_config

from pix2pix_hub.training import checkpoint as ckpt


class Killed(BaseException):
    """Like SIGKILL, not an ``Exception``: no ``except Exception`` on the way may swallow it."""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_aligned_pairs(tmp_path_factory.mktemp("pairs") / "train", count=10)


def test_resume_continues_exactly(data, tmp_path):
    # 8 pairs per epoch at batch 2 = 4 updates; 6 steps cross an epoch boundary, and resuming at step 3 starts
    # mid-epoch, so the data position, the RNG (dropout) and the optimizer state all have to come back.
    straight = run(tiny_config(data, tmp_path / "straight", max_train_steps=6, checkpointing_steps=100))
    first = run(tiny_config(data, tmp_path / "resumed", max_train_steps=3, checkpointing_steps=100))
    assert first.global_step == 3
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "resumed")] == ["checkpoint-3"]
    resumed = run(
        tiny_config(
            data, tmp_path / "resumed", max_train_steps=6, checkpointing_steps=100, resume_from_checkpoint="latest"
        )
    )
    assert resumed.global_step == 6
    assert_same_state(state_of(straight), state_of(resumed))
    # and not trivially: three more steps did change the weights
    changed = state_of(first)
    assert any(not torch.equal(changed[name], value) for name, value in state_of(resumed).items())


def test_streamed_resume_continues_exactly(data, tmp_path):
    # --streaming: the stream's position (not the step) says where the data stands; it is saved with the checkpoint
    # and restored, so the resumed run sees the batches, crops and flips of the uninterrupted one.
    stream = {"streaming": True, "shuffle_buffer": 4, "checkpointing_steps": 100}
    straight = run(tiny_config(data, tmp_path / "straight", max_train_steps=6, **stream))
    run(tiny_config(data, tmp_path / "resumed", max_train_steps=3, **stream))
    state = ckpt.read_json(tmp_path / "resumed" / "checkpoints" / "checkpoint-3" / ckpt.STATE_FILE)
    assert [position["rank"] for position in state["stream"]] == [0]
    resumed = run(tiny_config(data, tmp_path / "resumed", max_train_steps=6, resume_from_checkpoint="latest", **stream))
    assert resumed.global_step == 6
    assert_same_state(state_of(straight), state_of(resumed))


def test_kill_during_checkpoint_write_keeps_the_previous_one(data, tmp_path, monkeypatch):
    real_save = ckpt.save_training_state
    calls = []

    def dies_on_second_checkpoint(folder, *args, **kwargs):
        calls.append(folder)
        if len(calls) == 2:
            # Write part of the files, then die, as a process killed mid-write would.
            (Path(folder) / ckpt.OPTIMIZER_FILES[0]).write_bytes(b"half a file")
            raise Killed("killed while writing checkpoint-4")
        return real_save(folder, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_training_state", dies_on_second_checkpoint)
    output = tmp_path / "run"
    with pytest.raises(Killed):
        run(tiny_config(data, output, max_train_steps=4, checkpointing_steps=2))
    leftovers = sorted(p.name for p in ckpt.checkpoints_dir(output).iterdir())
    assert leftovers == [".tmp-checkpoint-4", "checkpoint-2"]
    assert ckpt.resolve_resume(output, "latest").name == "checkpoint-2"

    monkeypatch.setattr(ckpt, "save_training_state", real_save)
    resumed = run(tiny_config(data, output, max_train_steps=4, checkpointing_steps=2, resume_from_checkpoint="latest"))
    assert resumed.global_step == 4
    assert sorted(p.name for p in ckpt.checkpoints_dir(output).iterdir()) == ["checkpoint-2", "checkpoint-4"]
    straight = run(tiny_config(data, tmp_path / "straight", max_train_steps=4, checkpointing_steps=100))
    assert_same_state(state_of(straight), state_of(resumed))


def test_total_limit_keeps_the_newest(data, tmp_path):
    run(tiny_config(data, tmp_path, max_train_steps=5, checkpointing_steps=1, checkpoints_total_limit=2))
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-4", "checkpoint-5"]
    saved = ckpt.read_json(tmp_path / "checkpoints" / "checkpoint-5" / ckpt.CONFIG_FILE)
    assert saved["checkpoints_total_limit"] == 2 and saved["netG"] == "resnet_6blocks"
    state = ckpt.read_json(tmp_path / "checkpoints" / "checkpoint-5" / ckpt.STATE_FILE)
    assert state["global_step"] == 5 and state["epoch"] == 1 and state["num_processes"] == 1
    folder = tmp_path / "checkpoints" / "checkpoint-5"
    for name in (
        "model.safetensors", "discriminator/model.safetensors", *ckpt.OPTIMIZER_FILES, "rng_state_0.safetensors"
    ):  # fmt: skip
        assert (folder / name).is_file(), name
    # the two lr schedulers, in JSON
    assert [s["last_epoch"] for s in ckpt.read_json(folder / ckpt.SCHEDULES_FILE)["lr_schedulers"]] == [5, 5]
    # nothing in a format that could run code when read
    assert {p.suffix for p in folder.rglob("*") if p.is_file()} <= {".safetensors", ".json", ".md"}


# A checkpoint's files, by what each holds (the model folder, then what resuming needs).
CHECKPOINT_FILES = (
    "config.json", "model.safetensors", "discriminator/model.safetensors", *ckpt.OPTIMIZER_FILES, ckpt.SCHEDULES_FILE,
    "rng_state_0.safetensors", ckpt.CONFIG_FILE, ckpt.STATE_FILE,
)  # fmt: skip


def test_a_kill_while_rotating_out_the_oldest_never_leaves_a_partial_checkpoint(data, tmp_path, monkeypatch):
    real_rmtree = shutil.rmtree

    def killed_midway(path, *args, **kwargs):
        path = Path(path)
        if (path / "model.safetensors").is_file() and (path / ckpt.STATE_FILE).is_file():
            for name in CHECKPOINT_FILES[:-2]:  # as rmtree goes: some files gone, the JSON ones not yet
                (path / name).unlink()
            raise Killed(f"killed while deleting {path.name}")
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(Killed):
        run(tiny_config(data, tmp_path, max_train_steps=3, checkpointing_steps=1, checkpoints_total_limit=2))
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    folder = ckpt.checkpoints_dir(tmp_path)
    named = [p for p in folder.iterdir() if ckpt.checkpoint_step(p) is not None]
    assert sorted(p.name for p in named) == ["checkpoint-2", "checkpoint-3"]
    for path in named:
        assert [name for name in CHECKPOINT_FILES if not (path / name).is_file()] == [], path.name
    # The half-deleted one is under a temporary name, which the next start clears.
    resumed = run(tiny_config(data, tmp_path, max_train_steps=4, checkpointing_steps=1, checkpoints_total_limit=2,
                              resume_from_checkpoint="latest"))  # fmt: skip
    assert resumed.global_step == 4
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-3", "checkpoint-4"]


def test_resuming_an_incomplete_checkpoint_names_the_missing_files(data, tmp_path):
    run(tiny_config(data, tmp_path, max_train_steps=2, checkpointing_steps=2))
    partial = ckpt.checkpoints_dir(tmp_path) / "checkpoint-2"
    for name in ("model.safetensors", ckpt.OPTIMIZER_FILES[1]):
        (partial / name).unlink()
    with pytest.raises(ValueError, match=r"checkpoint-2 is not a complete checkpoint: model\.safetensors, "
                       r"optimizer_discriminator\.safetensors are missing") as raised:  # fmt: skip
        run(tiny_config(data, tmp_path, max_train_steps=3, resume_from_checkpoint=str(partial)))
    assert raised.value.exit_code == 1 and "\n" not in str(raised.value)


def test_resume_refuses_another_architecture(data, tmp_path):
    run(tiny_config(data, tmp_path, max_train_steps=2))
    shutil.rmtree(tmp_path / "samples")
    with pytest.raises(ValueError, match=r"--ngf 4 \(now 8\)"):
        run(tiny_config(data, tmp_path, ngf=8, max_train_steps=4, resume_from_checkpoint="latest"))
    assert not (tmp_path / "samples").exists()  # rejected before any work


def test_resume_from_missing_or_partial_checkpoint(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        run(tiny_config(data, tmp_path, resume_from_checkpoint=str(tmp_path / "nowhere")))
    partial = tmp_path / "checkpoints" / "checkpoint-7"
    partial.mkdir(parents=True)
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        run(tiny_config(data, tmp_path, resume_from_checkpoint=str(partial)))
    assert ckpt.resolve_resume(tmp_path, "latest") is None


def test_fresh_run_will_not_mix_with_old_checkpoints(data, tmp_path):
    run(tiny_config(data, tmp_path, max_train_steps=2))
    with pytest.raises(FileExistsError, match="--resume_from_checkpoint latest"):
        run(tiny_config(data, tmp_path, max_train_steps=2))
    result = run(tiny_config(data, tmp_path, max_train_steps=1, overwrite_output_dir=True))
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-1"]
    assert result.global_step == 1
