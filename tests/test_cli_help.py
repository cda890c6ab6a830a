"""The installed ``pix2pix-hub`` script: help text, argument checks, and no heavy imports at start-up."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from typing import Any

import pytest

from pix2pix_hub import cli
from pix2pix_hub.cli import build_parser, main
from pix2pix_hub.training.arguments import add_arguments


def test_console_script_lists_the_commands():
    script = shutil.which("pix2pix-hub")
    assert script is not None, "pix2pix-hub is not installed: run `pip install -e .`"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in ("translate", "evaluate", "export-onnx"):
        assert command in result.stdout


def test_cli_module_does_not_import_datasets_gradio_or_accelerate():
    code = (
        "import sys, pix2pix_hub.cli as cli; cli.build_parser(); "
        "print(sorted(m for m in ('datasets', 'gradio', 'accelerate', 'onnxruntime') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["translate", "m", "i", "o", "--batch_size", "0"], "--batch_size must be positive"),
        (["translate", "m", "i", "o", "--size_mode", "tile"], "invalid choice: 'tile'"),
        (["evaluate", "m"], "--dataset"),
        (["export-onnx", "m"], "required: output"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# ----- every command in one place: help, the docstring, one error policy, consistent flags -------------------------
def leaf_parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every runnable command's parser by its words (``("dataset", "check")``)."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= leaf_parsers(sub, (*words, name))
    return found or {words: parser}


COMMAND_WORDS = sorted(leaf_parsers(build_parser()))


def test_the_commands_are_all_registered():
    expected = {("translate",), ("evaluate",), ("export-onnx",), ("convert",), ("train",)}
    expected |= {("dataset", "check"), ("dataset", "prepare"), ("space", "build")}
    assert set(COMMAND_WORDS) == expected


@pytest.mark.parametrize("words", [(), ("dataset",), ("space",), *COMMAND_WORDS], ids=" ".join)
def test_every_command_has_its_help(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: pix2pix-hub {' '.join(words)}".rstrip())


def test_the_module_docstring_lists_every_command():
    for words in COMMAND_WORDS:
        assert f"pix2pix-hub {' '.join(words)} " in cli.__doc__, words


def test_usage_errors_are_one_line_naming_the_commands_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["dataset", "check", "x", "--rows", "many"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: argument --rows: invalid int value") and "pix2pix-hub dataset check --help" in err


def value_kinds(action: argparse.Action) -> set[str]:
    """What a flag takes: "switch" (no value) and/or the type of its value; nargs="?" takes either."""
    if action.nargs == 0:
        return {"switch"}
    kind = getattr(action.type, "__name__", "str") if action.type is not None else "str"
    return {kind, "switch"} if action.nargs == "?" else {kind}


def test_a_flag_of_the_same_name_takes_the_same_kind_of_value_in_every_command():
    parsers = dict(leaf_parsers(build_parser()))
    parsers[("train",)] = add_arguments(argparse.ArgumentParser())  # the training command's own flags
    kinds: dict[str, dict[tuple[str, ...], set[str]]] = {}
    for words, parser in parsers.items():
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    kinds.setdefault(flag, {})[words] = value_kinds(action)
    differing = {flag: by for flag, by in kinds.items() if not set.intersection(*by.values())}
    assert differing == {}
    assert set.intersection(*kinds["--dataset"].values()) == {"str"}
    assert set.intersection(*kinds["--push_to_hub"].values()) == {"switch"}
