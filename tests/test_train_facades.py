"""End to end on the real facades pairs: a short training lowers validation L1, and the saved folder loads and
translates a label map."""

from __future__ import annotations

import pytest
from PIL import Image
from test_train_support import FACADES, reset_accelerate, run, tiny_config

from pix2pix_hub import Pix2Pix
from pix2pix_hub.hub.model_info import ModelInfo
from pix2pix_hub.training.data import load_datasets
from pix2pix_hub.training.setup import build_networks, make_accelerator
from pix2pix_hub.training.validation import validation_metrics

pytestmark = pytest.mark.skipif(not FACADES.is_dir(), reason=f"facades pairs not found at {FACADES}")


@pytest.mark.slow
def test_short_training_on_facades_learns_saves_and_translates(tmp_path):
    from accelerate.utils import set_seed

    # unet_128 at 128x128 with 8 filters; lr 1e-3 (5x the paper's) so 40 steps are enough to show learning.
    config = tiny_config(
        FACADES, tmp_path / "facades", netG="unet_128", ngf=8, ndf=8, load_size=143, crop_size=128, direction="BtoA",
        batch_size=2, lr=1e-3, max_train_steps=40, val_size=8, checkpointing_steps=1000, logging_steps=10,
        report_to="tensorboard",
    )  # fmt: skip
    # The untrained model, exactly as train() builds it (same seed), scored on the same held-out pairs.
    reset_accelerate()
    accelerator = make_accelerator(config)
    set_seed(config.seed)
    untrained, _ = build_networks(config)
    _, val_set = load_datasets(config, untrained.size_multiple)
    before = validation_metrics(untrained, val_set, accelerator)

    result = run(config)
    assert result.global_step == 40
    assert result.metrics["l1"] < before["l1"] - 0.005, (before, result.metrics)
    assert result.metrics["psnr"] > before["psnr"]

    pix2pix = Pix2Pix.from_pretrained(tmp_path / "facades")
    assert type(pix2pix.generator).__name__ == "UNetGenerator" and pix2pix.generator.num_downs == 7
    labels = Image.open(sorted(FACADES.glob("*.jpg"))[0]).convert("RGB")
    labels = labels.crop((labels.width // 2, 0, labels.width, labels.height)).resize((200, 150))  # B: the label map
    photo = pix2pix(labels)
    assert isinstance(photo, Image.Image) and photo.size == (200, 150) and photo.mode == "RGB"
    assert len(set(photo.getdata())) > 100  # an image, not a constant
    assert Image.open(tmp_path / "facades" / "samples.png").size == (3 * 132 + 4, 2 * 132 + 4)
    assert "direction `BtoA`" in (tmp_path / "facades" / "README.md").read_text()

    # Memory is reported every logging step and does not grow from step to step.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folders = {path.parent for path in (tmp_path / "facades" / "logs").rglob("events.out.tfevents.*")}
    logs = [EventAccumulator(str(folder)).Reload() for folder in folders]
    rss = [event.value for log in logs if "rss_mb" in log.Tags()["scalars"] for event in log.Scalars("rss_mb")]
    assert len(rss) == 4 and min(rss) > 50, rss
    assert rss[-1] - rss[1] < 64, rss  # MB between steps 20 and 40


@pytest.mark.slow
def test_quick_run_trains_on_the_dataset_it_is_given_from_any_working_directory(tmp_path):
    import subprocess
    import sys

    from test_train_support import REPO_ROOT

    script = REPO_ROOT / "scripts" / "train.py"
    command = [sys.executable, str(script), "--quick", "--dataset", str(FACADES), "--max_train_steps", "2"]
    command += ["--ngf", "8", "--ndf", "8"]
    command += ["--output_dir", "quick", "--report_to", "none"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "392 training and 8 validation pairs" in done.stdout
    pix2pix = Pix2Pix.from_pretrained(tmp_path / "quick")
    assert pix2pix.generator.num_downs == 7 and Image.open(tmp_path / "quick" / "samples.png").width > 0
    info = ModelInfo.load(tmp_path / "quick")
    assert (info.dataset, info.direction, info.resolution) == ("facades", "BtoA", 128)  # named, not a local path
