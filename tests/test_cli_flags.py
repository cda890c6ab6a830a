"""One spelling per flag across the commands (``--dataset SOURCE``, ``--push_to_hub --hub_model_id``), the old
spellings still understood, and the one error policy (``commands.policy``) every command reports through."""

from __future__ import annotations

import argparse

import pytest

from pix2pix_hub.cli import build_parser, main
from pix2pix_hub.commands import export_onnx, translate
from pix2pix_hub.commands.options import DATASET_IS_INPUT, hub_repo, push_problem
from pix2pix_hub.commands.policy import (
    DEBUG_ENV,
    EXIT_DATA,
    EXIT_USAGE,
    CommandError,
    debug_wanted,
    exit_code_of,
    guarded,
    reported_as,
)
from pix2pix_hub.data import PairsSourceError
from pix2pix_hub.inference.batch import OutputConflict
from pix2pix_hub.training.errors import ConfigError, DatasetError, TrainingInterrupted


def parse(*words: str) -> argparse.Namespace:
    return build_parser().parse_args(list(words))


@pytest.mark.parametrize(
    ("words", "source", "output"),
    [
        (("m", "out", "--dataset", "facades"), "facades", "out"),  # the spelling every command shares
        (("m", "--dataset", "facades", "out"), "facades", "out"),
        (("m", "facades", "out", "--dataset"), "facades", "out"),  # the old one: a bare switch after INPUT OUTPUT
        (("m", "facades", "out", "--dataset", "--quiet"), "facades", "out"),
    ],
)
def test_translate_reads_a_dataset_in_the_new_and_the_old_spelling(words, source, output):
    args = parse("translate", *words)
    assert translate.check(args) is None
    assert (args.input if args.dataset is DATASET_IS_INPUT else args.dataset, args.output) == (source, output)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (("m", "in", "out", "--dataset", "facades"), "not both"),
        (("m", "out"), "required: input"),
        (("m", "out", "--dataset"), "INPUT is missing"),
        (("m", "in", "out", "--batch_size", "0"), "--batch_size must be positive"),
    ],
)
def test_translate_refuses_what_it_cannot_read(words, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["translate", *words])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.splitlines()) == 1
    assert "pix2pix-hub translate --help" in err


def test_export_int8_calibrates_on_dataset_source_or_on_calibration_with_the_old_switch():
    args = parse("export-onnx", "m", "o.onnx", "--int8", "--dataset", "pairs")
    assert export_onnx.check(args) is None and args.dataset == "pairs" and args.calibration is None
    args = parse("export-onnx", "m", "o.onnx", "--int8", "--calibration", "pairs", "--dataset")
    assert export_onnx.check(args) is None and args.dataset is DATASET_IS_INPUT
    args = parse("export-onnx", "m", "o.onnx", "--int8", "--calibration", "dir", "--dataset", "pairs")
    assert "not both" in export_onnx.check(args)
    assert "read by --int8 only" in export_onnx.check(parse("export-onnx", "m", "o.onnx", "--dataset", "pairs"))


@pytest.mark.parametrize("command", [("convert", "G.pth", "out"), ("dataset", "prepare", "src", "out")])
def test_push_to_hub_is_a_switch_with_hub_model_id_and_the_old_value_still_works(command):
    new = parse(*command, "--push_to_hub", "--hub_model_id", "me/x")
    old = parse(*command, "--push_to_hub", "me/x")
    assert push_problem(new) is None and push_problem(old) is None and hub_repo(new) == hub_repo(old) == "me/x"
    assert "needs --hub_model_id" in push_problem(parse(*command, "--push_to_hub"))
    assert "different repos" in push_problem(parse(*command, "--push_to_hub", "me/x", "--hub_model_id", "me/y"))
    named = parse(*command, "--hub_model_id", "me/x")  # the card's name only: nothing is uploaded
    assert not named.push_to_hub and hub_repo(named) == "me/x"


# ----- the policy --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "code"),
    [
        (CommandError("flag"), EXIT_USAGE),
        (CommandError("data", EXIT_DATA), EXIT_DATA),
        (ConfigError("x"), EXIT_USAGE),
        (DatasetError("x"), EXIT_DATA),
        (PairsSourceError("x"), EXIT_DATA),
        (OutputConflict("x"), EXIT_USAGE),
        (TrainingInterrupted(15, 3, "ckpt"), 143),
        (RuntimeError("a bug"), EXIT_DATA),
    ],
)
def test_exit_codes(error, code):
    assert exit_code_of(error) == code


def test_guarded_reports_one_line_and_debug_propagates(capsys):
    def fail(error):
        def call():
            raise error

        return call

    assert guarded(fail(PairsSourceError("no pairs\n  here")), debug=False) == EXIT_DATA
    assert capsys.readouterr().err == "error: no pairs here\n"
    assert guarded(fail(KeyError("k")), debug=False) == EXIT_DATA
    assert capsys.readouterr().err == "error: KeyError: 'k' (--debug shows the traceback)\n"
    assert guarded(fail(TrainingInterrupted(2, 3, "ckpt")), debug=False) == 130
    assert capsys.readouterr().err.startswith("SIGINT: stopped at step 3")
    assert guarded(fail(KeyboardInterrupt()), debug=False, interrupted="Stopped.") == 130
    assert capsys.readouterr().err == "Stopped.\n"
    with pytest.raises(KeyError):
        guarded(fail(KeyError("k")), debug=True)
    assert guarded(lambda: 7, debug=False) == 7


def test_reported_as_gives_a_library_error_the_commands_verdict():
    with pytest.raises(CommandError) as caught, reported_as(EXIT_USAGE, ValueError):
        raise ValueError("pass exactly one of wheel or git_url")
    assert caught.value.exit_code == EXIT_USAGE and isinstance(caught.value.__cause__, ValueError)


def test_the_debug_variable(monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert not debug_wanted(False) and debug_wanted(True)
    monkeypatch.setenv(DEBUG_ENV, "0")
    assert not debug_wanted(False)
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert debug_wanted(False)
