"""``pix2pix-hub train ...`` = ``python scripts/train.py ...`` = ``accelerate launch -m pix2pix_hub.train ...``.

Parses the arguments into a ``TrainingConfig``, applies the process-wide settings that a library call must not
change behind its caller's back (glibc's allocator, unless ``--no_allocator_tuning`` or ``--plain_eager``), and
runs ``train``. Errors follow the commands' policy (``policy``): one line, exit 2 for a flag or a folder in the
wrong state, 1 for data that cannot be used, ``--debug`` shows the traceback. SIGTERM/Ctrl-C save a checkpoint
first and exit with 143/130.

Training (accelerate, datasets) is imported when the command runs, not when ``pix2pix-hub --help`` builds the
parser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..performance import tune_allocator
from .policy import DEBUG_ENV, EXIT_OK, CommandParser, debug_wanted, guarded

if TYPE_CHECKING:
    from ..training.trainer import TrainingResult

INTERRUPTED = "Interrupted outside the training loop; the checkpoints written so far are kept."


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train",
        add_help=False,  # `pix2pix-hub train --help` is the training command's own help
        help="train a model: the flags of scripts/train.py (`pix2pix-hub train --help`)",
    )
    train.add_argument("arguments", nargs=argparse.REMAINDER)
    train.set_defaults(run=run, check=lambda args: None, usage_error=train.error)


def run(args: argparse.Namespace) -> int:
    return run_arguments(args.arguments)


def run_arguments(arguments: list[str]) -> int:
    """``pix2pix-hub train ARGUMENTS...``: 0 when trained (a mistake ends the process with its exit status)."""
    main(arguments, command=["pix2pix-hub", "train", *arguments], prog="pix2pix-hub train")
    return EXIT_OK


def main(argv: list[str] | None = None, command: list[str] | None = None, prog: str | None = None) -> TrainingResult:
    """Train from the command line ``argv`` (``sys.argv[1:]`` when None); returns what ``train`` returns.

    Args:
        argv: the flags, one per ``TrainingConfig`` field, plus ``--debug``.
        command: the whole command line as typed, for the model card; by default ``sys.argv`` when ``argv`` is
            None (an entry point that passes ``argv`` itself passes ``command=sys.argv`` too).
        prog: the program's name in usage lines (default: the script's).

    Returns:
        The ``TrainingResult``; a user's mistake ends the process (``SystemExit``) with one line instead.
    """
    if command is None and argv is None:
        command = typed_command(sys.argv)
    argv = sys.argv[1:] if argv is None else argv
    debug = debug_wanted("--debug" in argv)
    outcome = guarded(lambda: run_training(argv, command, prog), debug=debug, interrupted=INTERRUPTED)
    if isinstance(outcome, int):
        sys.exit(outcome)
    return outcome


def run_training(argv: list[str], command: list[str] | None, prog: str | None) -> TrainingResult:
    from ..training.arguments import add_arguments, config_from_args
    from ..training.trainer import train

    parser = add_arguments(CommandParser(prog=prog, description="Train pix2pix (run under `accelerate launch`)."))
    parser.add_argument("--debug", action="store_true", help=f"Show the traceback of an error ({DEBUG_ENV}=1 too).")
    config = config_from_args(argv, parser)
    if config.allocator_tuning:
        tune_allocator()
    return train(config, command)


def typed_command(words: list[str]) -> list[str]:
    """``sys.argv`` as the user typed it: ``python -m pix2pix_hub.train`` runs this package's ``train.py``, whose
    path is in ``argv[0]``."""
    program = Path(words[0]) if words else Path()
    if program.name in ("train.py", "__main__.py") and program.parent.name == "pix2pix_hub":
        return ["python", "-m", "pix2pix_hub.train", *words[1:]]
    return list(words)
