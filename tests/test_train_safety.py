"""Checkpoints that cannot run code, output folders that are never silently replaced, and stopping on a signal."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_support import REPO_ROOT, make_aligned_pairs, run, tiny_config

from pix2pix_hub import Pix2Pix
from pix2pix_hub.training import checkpoint as ckpt
from pix2pix_hub.training.errors import CheckpointError, OutputDirError, TrainingInterrupted
from pix2pix_hub.training.signals import StopSignals


class Planted:
    """Unpickling this creates ``path``: the proof that a pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_aligned_pairs(tmp_path_factory.mktemp("pairs") / "train", count=10)


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A 2-step run with its checkpoint-2, copied afresh for each test that changes it."""
    output = tmp_path_factory.mktemp("finished") / "run"
    result = run(tiny_config(data, output, max_train_steps=2, checkpointing_steps=2))
    return output, result


@pytest.fixture
def run_copy(finished, tmp_path):
    output = tmp_path / "run"
    shutil.copytree(finished[0], output)
    return output


# ----- issue 13 item 1: nothing is unpickled ------------------------------------------------------------------------
@pytest.mark.parametrize("planted_name", ["random_states_0.pkl", "custom_checkpoint_0.pkl", "discriminator/x.bin"])
def test_a_planted_pickle_is_refused_and_never_run(data, run_copy, tmp_path, planted_name):
    marker = tmp_path / "pickle-ran"
    planted = ckpt.checkpoints_dir(run_copy) / "checkpoint-2" / planted_name
    planted.write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(CheckpointError, match=rf"Refusing to resume .* holds {planted_name}.*can run arbitrary code"):
        run(tiny_config(data, run_copy, max_train_steps=3, resume_from_checkpoint="latest"))
    assert not marker.exists()
    pickle.loads(planted.read_bytes())  # the planted file does run when unpickled: the check above is not vacuous
    assert marker.exists()


@pytest.mark.parametrize("part", ["rng_state_0.safetensors", "schedules.json", "optimizer_generator.safetensors"])
def test_a_damaged_part_is_an_error_naming_it_and_runs_nothing(data, run_copy, tmp_path, part):
    marker = tmp_path / "pickle-ran"
    path = ckpt.checkpoints_dir(run_copy) / "checkpoint-2" / part
    path.write_bytes(pickle.dumps(Planted(marker)))  # a pickle under a safe name is only ever parsed as data
    with pytest.raises(CheckpointError, match=rf"{part} is damaged"):
        run(tiny_config(data, run_copy, max_train_steps=3, resume_from_checkpoint="latest"))
    assert not marker.exists()


def test_a_missing_rng_state_is_an_error_naming_it(data, run_copy):
    (ckpt.checkpoints_dir(run_copy) / "checkpoint-2" / "rng_state_0.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"rng_state_0\.safetensors is missing"):
        run(tiny_config(data, run_copy, max_train_steps=3, resume_from_checkpoint="latest"))


def test_rng_state_holds_tensors_and_json_only(finished):
    from safetensors import safe_open

    path = ckpt.checkpoints_dir(finished[0]) / "checkpoint-2" / "rng_state_0.safetensors"
    tensors = load_file(path)
    assert tensors["torch"].dtype == torch.uint8 and tensors["torch"].numel() > 1000
    with safe_open(str(path), "pt") as file:
        assert set(file.metadata()) == {"python", "numpy"}


# ----- issue 14 item 4: a checkpoint is a model --------------------------------------------------------------------
def test_a_checkpoint_loads_as_a_model(finished):
    output, result = finished
    loaded = Pix2Pix.from_pretrained(ckpt.checkpoints_dir(output) / "checkpoint-2", backend="torch")
    assert loaded.info == result.pix2pix.info and loaded.discriminator is not None
    for name, value in result.pix2pix.generator.state_dict().items():
        assert torch.equal(loaded.generator.state_dict()[name], value), name
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded.translate_tensor(x), result.pix2pix.translate_tensor(x))


# ----- issue 13 item 4: another run's files are not silently replaced ---------------------------------------------
def test_a_folder_holding_a_model_but_no_checkpoints_needs_overwrite(data, run_copy):
    shutil.rmtree(ckpt.checkpoints_dir(run_copy))
    weights = (run_copy / "model.safetensors").read_bytes()
    with pytest.raises(
        OutputDirError, match=r"already holds another model \(.*model\.safetensors.*--overwrite_output_dir"
    ):
        run(tiny_config(data, run_copy, max_train_steps=1, seed=1))
    assert (run_copy / "model.safetensors").read_bytes() == weights  # untouched
    with pytest.raises(OutputDirError):  # "latest" with no checkpoint is a new run too
        run(tiny_config(data, run_copy, max_train_steps=1, resume_from_checkpoint="latest"))
    run(tiny_config(data, run_copy, max_train_steps=1, seed=1, overwrite_output_dir=True))
    assert (run_copy / "model.safetensors").read_bytes() != weights


def test_a_folder_with_unrelated_files_is_fine(data, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    assert run(tiny_config(data, tmp_path, max_train_steps=1)).global_step == 1
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ----- issue 25 item 0: a failing run replaces nothing ----------------------------------------------------------------
def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "mistake, error",
    [
        ({"dataset": "/no/such/dataset"}, FileNotFoundError),
        ({"init_from": "/no/such/model"}, ValueError),
        ({"lambda_vgg": 10.0, "vgg_weights": "/no/such/vgg19.safetensors"}, ValueError),
    ],
    ids=["dataset", "init_from", "vgg_weights"],
)
def test_a_run_that_fails_before_training_leaves_an_overwritten_folder_untouched(data, run_copy, mistake, error):
    before = snapshot(run_copy)
    with pytest.raises(error):
        run(tiny_config(data, run_copy, max_train_steps=1, overwrite_output_dir=True, **mistake))
    assert snapshot(run_copy) == before


def test_a_run_that_fails_before_its_first_checkpoint_keeps_the_old_one(data, run_copy, monkeypatch):
    from pix2pix_hub.training import trainer

    def fails(*args, **kwargs):
        raise RuntimeError("out of memory in the first step")

    monkeypatch.setattr(trainer, "train_step", fails)
    before = snapshot(run_copy)
    with pytest.raises(RuntimeError, match="out of memory"):
        run(tiny_config(data, run_copy, max_train_steps=1, overwrite_output_dir=True))
    assert snapshot(run_copy) == before


def test_a_first_checkpoint_that_cannot_be_written_puts_the_old_ones_back(data, run_copy, monkeypatch):
    def disk_full(folder, *args, **kwargs):
        (Path(folder) / ckpt.OPTIMIZER_FILES[0]).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt, "save_training_state", disk_full)
    before = snapshot(run_copy)
    with pytest.raises(OSError, match="No space left"):
        run(tiny_config(data, run_copy, max_train_steps=1, overwrite_output_dir=True))
    assert snapshot(run_copy) == before


def test_quick_with_a_typo_in_the_dataset_exits_1_and_keeps_the_folder(run_copy, capsys):
    from pix2pix_hub.commands.train import main

    before = snapshot(run_copy)
    with pytest.raises(SystemExit) as stopped:
        main(["--quick", "--dataset", "/no/such/dataset", "--output_dir", str(run_copy), "--report_to", "none"])
    assert stopped.value.code == 1 and "/no/such/dataset" in capsys.readouterr().err
    assert snapshot(run_copy) == before


def test_a_good_run_with_overwrite_replaces_the_old_checkpoints(data, run_copy):
    old = (ckpt.checkpoints_dir(run_copy) / "checkpoint-2" / "model.safetensors").read_bytes()
    run(tiny_config(data, run_copy, max_train_steps=1, seed=1, checkpointing_steps=1, overwrite_output_dir=True))
    assert [p.name for p in ckpt.checkpoints_dir(run_copy).iterdir()] == ["checkpoint-1"]
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".tmp-")]
    assert (run_copy / "model.safetensors").read_bytes() != old


def test_init_from_inside_the_checkpoints_an_overwrite_would_delete_is_refused(data, run_copy):
    source = ckpt.checkpoints_dir(run_copy) / "checkpoint-2"
    before = snapshot(run_copy)
    with pytest.raises(ValueError, match=rf"--init_from {source} .*--overwrite_output_dir would delete"):
        run(tiny_config(data, run_copy, max_train_steps=1, init_from=str(source), overwrite_output_dir=True))
    assert snapshot(run_copy) == before


# ----- issue 13 item 5: SIGTERM and Ctrl-C ---------------------------------------------------------------------------
def test_first_signal_is_recorded_and_a_second_ctrl_c_exits_at_once(monkeypatch):
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals(announce=False) as stop:
        assert signal.getsignal(signal.SIGTERM) == stop.handle
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == signal.SIGTERM and not exits
        stop.handle(signal.SIGTERM)  # a repeated SIGTERM changes nothing
        assert not exits
        stop.handle(signal.SIGINT)  # a second Ctrl-C: out now
        assert exits == [130]
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handlers are back


def test_interrupted_says_how_to_resume_and_exits_128_plus_the_signal():
    stop = TrainingInterrupted(signal.SIGTERM, 7, "out/checkpoints/checkpoint-7")
    assert stop.exit_code == 143 and TrainingInterrupted(signal.SIGINT, 7, "x").exit_code == 130
    assert "SIGTERM: stopped at step 7 and saved out/checkpoints/checkpoint-7" in str(stop)
    assert "--resume_from_checkpoint latest" in str(stop)


def train_command(data: Path, output: Path, steps: int) -> list[str]:
    return [
        sys.executable, str(REPO_ROOT / "scripts" / "train.py"), "--dataset", str(data), "--netG", "resnet_6blocks",
        "--ngf", "4", "--ndf", "4", "--load_size", "36", "--crop_size", "32", "--batch_size", "2", "--val_size", "2",
        "--max_train_steps", str(steps), "--checkpointing_steps", "1000", "--validation_steps", "1000",
        "--num_validation_images", "2", "--dataloader_num_workers", "0", "--report_to", "none", "--plain_eager",
        "--output_dir", str(output),
    ]  # fmt: skip


def weights_of(folder: Path) -> dict[str, torch.Tensor]:
    return {**load_file(folder / "model.safetensors"), **load_file(folder / "discriminator" / "model.safetensors")}


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_run_saves_a_checkpoint_and_resuming_ends_as_an_uninterrupted_run(data, tmp_path, signal_number):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    interrupted = tmp_path / "interrupted"
    # Far more steps than it can do before the signal, however fast the machine: the signal lands mid-run.
    process = subprocess.Popen(
        train_command(data, interrupted, 100_000), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in process.stdout:  # the loop starts right after this line
        if line.startswith("pix2pix:"):
            break
    time.sleep(2)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signal_number, stderr[-3000:]
    assert "Traceback" not in stderr and "--resume_from_checkpoint latest" in stderr
    saved = ckpt.list_checkpoints(interrupted)
    assert len(saved) == 1, (saved, stderr[-2000:])
    stopped_at = ckpt.checkpoint_step(saved[0])
    assert stopped_at >= 1 and not (interrupted / "model.safetensors").exists()  # stopped, not finished

    # max_train_steps only says where to stop (the schedule is by epochs): resume to 5 steps past the signal, and
    # compare with a run that trains those steps without a break.
    steps = stopped_at + 5
    resume = [*train_command(data, interrupted, steps), "--resume_from_checkpoint", "latest"]
    resumed = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    straight = subprocess.run(
        train_command(data, tmp_path / "straight", steps), env=env, capture_output=True, text=True, timeout=600
    )
    assert straight.returncode == 0, straight.stderr[-3000:]
    expected, actual = weights_of(tmp_path / "straight"), weights_of(interrupted)
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
