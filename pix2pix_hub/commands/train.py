"""The training command line: ``python scripts/train.py ...`` / ``accelerate launch scripts/train.py ...``.

Parses the arguments into a ``TrainingConfig``, applies the process-wide settings that a library call must not
change behind its caller's back (glibc's allocator, unless ``--no_allocator_tuning`` or ``--plain_eager``), and
runs ``train``. A mistake of the user's ends the process with one line and no traceback: exit status 2 for a flag
or a folder in the wrong state, 1 for data that cannot be used; ``--debug`` (or ``PIX2PIX_DEBUG=1``) shows the
traceback instead. SIGTERM/Ctrl-C save a checkpoint first and exit with 143/130.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..data import BadSampleError
from ..data.sources import DatasetUnavailableError, PairsSourceError
from ..images.labels import LabelMapError
from ..performance import tune_allocator
from ..training.config import config_from_args, training_parser
from ..training.errors import DataError, TrainingInterrupted, UsageError
from ..training.trainer import TrainingResult, train

DEBUG_ENV = "PIX2PIX_DEBUG"
# The data package's errors about the dataset itself (it knows nothing of exit codes): exit status 1.
DATA_ERRORS = (DataError, BadSampleError, PairsSourceError, LabelMapError, DatasetUnavailableError)


def exit_code_of(error: BaseException) -> int | None:
    """The exit status for a user's mistake (2 usage, 1 data, 128 + signal for an interrupted run); None for
    anything else, which is a bug and keeps its traceback."""
    if isinstance(error, UsageError | TrainingInterrupted):
        return error.exit_code
    if isinstance(error, DATA_ERRORS):
        return DataError.exit_code
    return getattr(error, "exit_code", None)  # MainProcessError: the main process's error, in another process


def main(argv: list[str] | None = None, command: list[str] | None = None) -> TrainingResult:
    """Train from the command line ``argv`` (``sys.argv[1:]`` when None); returns what ``train`` returns.

    ``command`` is the whole command line as typed, for the model card; by default ``sys.argv`` when ``argv`` is
    None (an entry point that passes ``argv`` itself passes ``command=sys.argv`` too).
    """
    if command is None and argv is None:
        command = typed_command(sys.argv)
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    parser = training_parser()
    parser.add_argument("--debug", action="store_true", help=f"Show the traceback of an error ({DEBUG_ENV}=1 too).")
    try:
        config = config_from_args(argv, parser)
        if config.allocator_tuning:
            tune_allocator()
        return train(config, command)
    except KeyboardInterrupt:
        if debug:
            raise
        # Ctrl-C outside the loop (set-up, final validation or publishing): inside it, StopSignals handles it.
        sys.exit(_report("Interrupted outside the training loop; the checkpoints written so far are kept.", 130))
    except Exception as error:
        code = exit_code_of(error)
        if debug or code is None:
            raise
        prefix = "" if isinstance(error, TrainingInterrupted) else "error: "
        sys.exit(_report(f"{prefix}{error}", code))


def typed_command(words: list[str]) -> list[str]:
    """``sys.argv`` as the user typed it: ``python -m pix2pix_hub.train`` runs this package's ``train.py``, whose
    path is in ``argv[0]``."""
    program = Path(words[0]) if words else Path()
    if program.name in ("train.py", "__main__.py") and program.parent.name == "pix2pix_hub":
        return ["python", "-m", "pix2pix_hub.train", *words[1:]]
    return list(words)


def _report(message: str, code: int) -> int:
    print(message, file=sys.stderr)
    return code


if __name__ == "__main__":
    main()
