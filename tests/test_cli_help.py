"""The installed ``pix2pix-hub`` script: help text, argument checks, and no heavy imports at start-up."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from pix2pix_hub.cli import main


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
