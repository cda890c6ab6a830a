"""The default CPU path (Winograd convs, fused Adam, tuned allocator) at the paper's widths is deterministic: two
runs with the same seed end with identical weights, and a run killed with -9 and resumed ends as an uninterrupted
one. The other training tests use 4-filter networks, below the width where Winograd is used; these do not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_support import REPO_ROOT, make_aligned_pairs

from pix2pix_hub.training import checkpoint as ckpt

STEPS = 8


def command(data: Path, output: Path, steps: int, *extra: str) -> list[str]:
    """The paper's discriminator (70x70 PatchGAN, ndf 64: its 256 -> 512 stride-1 conv runs by Winograd) and a
    ResNet generator whose 64-channel 3x3 block convs run by Winograd too; small crops keep it quick."""
    return [
        sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "--dataset", str(data), "--netG", "resnet_6blocks",
        "--ngf", "16", "--ndf", "64", "--load_size", "72", "--crop_size", "64", "--batch_size", "2",
        "--val_size", "2", "--max_train_steps", str(steps), "--validation_steps", "1000", "--num_validation_images",
        "2", "--dataloader_num_workers", "0", "--report_to", "none", "--output_dir", str(output), *extra,
    ]  # fmt: skip


def weights_of(folder: Path) -> dict[str, torch.Tensor]:
    return {**load_file(folder / "model.safetensors"), **load_file(folder / "discriminator" / "model.safetensors")}


def assert_identical(expected: dict[str, torch.Tensor], actual: dict[str, torch.Tensor]) -> None:
    assert expected.keys() == actual.keys()
    differ = {name: (expected[name] - actual[name]).abs().max().item() for name in expected}
    differ = {name: value for name, value in differ.items() if value or not torch.equal(expected[name], actual[name])}
    assert not differ, f"{len(differ)} tensors differ, e.g. {sorted(differ.items())[:3]}"


@pytest.mark.slow
def test_default_path_at_paper_widths_is_deterministic_and_exactly_resumable(tmp_path):
    data = make_aligned_pairs(tmp_path / "pairs", count=10, size=80)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runs = []
    for name in ("first", "second"):
        done = subprocess.run(command(data, tmp_path / name, STEPS), env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(weights_of(tmp_path / name))
    assert_identical(runs[0], runs[1])

    # kill -9 right after checkpoint-3 is complete (many more steps asked, so it is still running then)
    killed = tmp_path / "killed"
    extra = ("--checkpointing_steps", "3", "--checkpoints_total_limit", "1000")
    process = subprocess.Popen(command(data, killed, 100_000, *extra), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    third = ckpt.checkpoints_dir(killed) / "checkpoint-3"
    deadline = time.monotonic() + 600
    while not ckpt.is_complete(third) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert ckpt.is_complete(third), process.stderr.read()[-3000:]
    resume = command(data, killed, STEPS, *extra, "--resume_from_checkpoint", str(third))
    done = subprocess.run(resume, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_identical(runs[0], weights_of(killed))
