"""A user's mistakes end the training command with one clear line, no traceback, and the right exit status (2 for
usage, 1 for data); --debug / PIX2PIX_DEBUG=1 show the traceback. Small datasets train."""

from __future__ import annotations

import math

import pytest
from PIL import Image
from test_train_support import make_aligned_pairs, reset_accelerate, run, tiny_config

from pix2pix_hub.commands.train import main
from pix2pix_hub.training import TrainingConfig
from pix2pix_hub.training.data import held_out_count
from pix2pix_hub.training.errors import ConfigError, DatasetError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_aligned_pairs(tmp_path_factory.mktemp("pairs") / "train", count=10)


def tiny_argv(data, output, *extra: str) -> list[str]:
    return [
        "--dataset", str(data), "--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--load_size", "36",
        "--crop_size", "32", "--batch_size", "2", "--max_train_steps", "1", "--dataloader_num_workers", "0",
        "--report_to", "none", "--no_allocator_tuning", "--output_dir", str(output), *extra,
    ]  # fmt: skip


def exit_of(argv: list[str], capsys) -> tuple[int, str]:
    """Run the command line; its exit status and its message: what it printed to stderr from the line starting
    with "error: " (above it: progress bars), after checking that no traceback was printed."""
    capsys.readouterr()
    reset_accelerate()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    reset_accelerate()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith("\n")
    lines = err.splitlines()
    first = max(i for i, line in enumerate(lines) if line.startswith("error: "))
    return exited.value.code, "\n".join(lines[first:])


@pytest.mark.parametrize("flag", ["--lr", "--beta1", "--lambda_l1", "--init_gain", "--val_size"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused(flag, value):
    name = flag[2:]
    with pytest.raises(ConfigError, match=rf"--{name} -?(nan|inf) is not a finite number"):
        TrainingConfig(**{name: float(value)}).check()


def make_folders(root, names_a, names_b):
    for side, names in (("A", names_a), ("B", names_b)):
        (root / side).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (40, 40), "red").save(root / side / name)
    return root


def test_usage_errors_exit_2_with_one_line(data, tmp_path, capsys):
    code, err = exit_of(tiny_argv(data, tmp_path / "a", "--lr", "nan"), capsys)
    assert (code, err) == (2, "error: --lr nan is not a finite number.")
    # an output folder holding checkpoints
    run(tiny_config(data, tmp_path / "b", max_train_steps=1))
    code, err = exit_of(tiny_argv(data, tmp_path / "b"), capsys)
    assert code == 2 and err.startswith("error: --output_dir") and "already holds checkpoints" in err
    # resuming with other architecture flags
    code, err = exit_of(tiny_argv(data, tmp_path / "b", "--ngf", "8", "--resume_from_checkpoint", "latest"), capsys)
    assert code == 2 and err.startswith("error: Cannot resume") and "--ngf 4 (now 8)" in err


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unmatched", "unmatched file names"),
        ("empty", "no images"),
        ("bad_pair", "cannot read"),
        ("column", "has no column 'nope'"),
        ("too_small", "--val_size 20 leaves no training pairs"),
        ("missing", "no such folder or file"),
    ],
)
def test_data_errors_exit_1_with_one_line(case, message, data, tmp_path, capsys):
    extra: list[str] = []
    source = data
    if case == "unmatched":
        source = make_folders(tmp_path / "ab", ["1.png", "2.png", "3.png"], ["1.png", "2.png", "4.png"])
    elif case == "empty":
        source = (tmp_path / "empty").resolve()
        source.mkdir()
    elif case == "bad_pair":
        source = make_aligned_pairs(tmp_path / "bad", count=10)
        (source / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    elif case == "column":
        extra = ["--column_a", "nope"]
        import datasets

        source = tmp_path / "saved"
        datasets.Dataset.from_dict({"imageA": ["x"], "imageB": ["y"]}).save_to_disk(str(source))
    elif case == "too_small":
        extra = ["--val_size", "20"]
    else:
        source = tmp_path / "nowhere"
    code, err = exit_of(tiny_argv(source, tmp_path / "out", *extra), capsys)
    assert code == 1, err
    assert message in err and err.startswith("error: ")


def test_debug_shows_the_traceback(data, tmp_path, monkeypatch, capsys):
    reset_accelerate()
    with pytest.raises(ConfigError, match="--lr nan"):
        main(tiny_argv(data, tmp_path, "--lr", "nan", "--debug"))
    monkeypatch.setenv("PIX2PIX_DEBUG", "1")
    with pytest.raises(DatasetError, match="--val_size 20"):
        main(tiny_argv(data, tmp_path / "out", "--val_size", "20"))
    reset_accelerate()


# ----- issue 13 item 13: --val_size adapts to small datasets -------------------------------------------------------
@pytest.mark.parametrize(
    ("val_size", "total", "expected"),
    [(None, 400, 16), (None, 100, 10), (None, 20, 2), (None, 19, 0), (None, 3, 0), (5, 3, 5), (0.1, 3, 1)],
)
def test_default_val_size_is_16_pairs_at_most_a_tenth_and_none_below_20(val_size, total, expected):
    assert held_out_count(val_size, total) == expected


def test_a_three_pair_dataset_trains_and_validates_on_its_training_pairs(tmp_path, capsys):
    small = make_aligned_pairs(tmp_path / "small", count=3)
    result = run(tiny_config(small, tmp_path / "out", val_size=None, batch_size=1, max_train_steps=2))
    assert result.global_step == 2 and math.isfinite(result.metrics["l1"])
    out = capsys.readouterr().out
    assert "Validating on the training pairs: 3 pairs are too few" in out
    assert "3 training and 3 validation pairs" in out
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| val_size | `0` |" in card  # what was held out, not "None"


def test_rgb_inputs_as_label_maps_say_so_and_skipping_them_all_is_one_line(data, tmp_path, capsys):
    code, err = exit_of(tiny_argv(data, tmp_path / "out", "--label_nc", "3"), capsys)
    assert code == 1 and err.startswith("error: ") and "\n" not in err
    assert "all 10 pairs fail the same way" in err and "not class-index maps" in err
    assert "--skip_bad_samples" not in err  # skipping every pair is no way forward
    code, err = exit_of(tiny_argv(data, tmp_path / "out", "--label_nc", "3", "--skip_bad_samples"), capsys)
    assert code == 1 and err.startswith("error: ") and "\n" not in err
    assert "--skip_bad_samples skipped all" in err and "not class-index maps" in err
    assert "RuntimeError" not in err
