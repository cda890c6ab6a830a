"""The error policy of every command: one line on stderr, an exit status that says whose mistake it was.

    0    done
    1    the data: a dataset, image or checkpoint that cannot be used as given (also: some inputs were skipped)
    2    the usage: a flag, a path that does not exist, an output that would replace something
    130  Ctrl-C; 128 + N for a run stopped by signal N (training saves a checkpoint first)

An error carrying ``exit_code`` (``CommandError``, training's ``UsageError``/``DataError``) says its status itself;
the library's data errors (``DATA_ERRORS``) give 1; anything else is unexpected: 1, and the line names its type.
``--debug`` or ``PIX2PIX_DEBUG=1`` lets the error propagate with its traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from ..data import BadSampleError, DatasetUnavailableError, PairsSourceError
from ..fileio import OutputOverlap
from ..hub.authors_layout import AuthorsCheckpointError
from ..images.labels import LabelMapError
from ..images.reading import UnreadableImage
from ..inference.batch import OutputConflict
from ..inference.export import ParityError
from ..inference.quantize import QuantizationQualityError

EXIT_OK, EXIT_DATA, EXIT_USAGE = 0, 1, 2
SIGNAL_BASE = 128  # the shell's status for a process ended by signal N is 128 + N
EXIT_INTERRUPTED = SIGNAL_BASE + 2  # SIGINT: Ctrl-C
DEBUG_ENV = "PIX2PIX_DEBUG"  # set (to anything but 0): errors propagate with their traceback, as --debug does
DATA_ERRORS = (
    AuthorsCheckpointError,
    BadSampleError,
    DatasetUnavailableError,
    LabelMapError,
    PairsSourceError,
    ParityError,
    QuantizationQualityError,
    UnreadableImage,
)
USAGE_ERRORS = (OutputConflict, OutputOverlap)
T = TypeVar("T")


class CommandError(Exception):
    """A command's own verdict on its arguments or data: the message is the whole report (default: usage, 2)."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line too (exit 2), pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {one_line(message)} (`{self.prog} --help` lists the options)\n")


def add_command(subparsers: Any, name: str, run: Callable[[argparse.Namespace], int], **kwargs: Any) -> Any:
    """A subcommand's parser with the options every command has (``--debug``); ``run(args)`` returns the status.

    Args:
        subparsers: what ``add_subparsers`` returned (the top level's, or a command group's such as ``dataset``).
        name: the word that selects the command.
        run: the handler; ``check(args)`` (set with ``set_defaults``) may first return a usage problem of the
            flags together, which ends the command as an argparse error does.
        kwargs: ``help``, ``description``... as ``add_parser`` takes them.

    Returns:
        The new parser, for the command's own arguments.
    """
    parser = subparsers.add_parser(name, **kwargs)
    parser.add_argument("--debug", action="store_true", help=f"show the traceback of an error (also: {DEBUG_ENV}=1)")
    parser.set_defaults(run=run, check=lambda args: None, usage_error=parser.error)
    return parser


def debug_wanted(flag: bool) -> bool:
    """``--debug`` given, or ``PIX2PIX_DEBUG`` set to anything but empty or 0."""
    return flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def exit_code_of(error: BaseException) -> int:
    """The exit status for ``error`` (see the module docstring)."""
    code = getattr(error, "exit_code", None)
    if isinstance(code, int):
        return code
    return EXIT_USAGE if isinstance(error, USAGE_ERRORS) else EXIT_DATA


def is_expected(error: BaseException) -> bool:
    """Whether ``error`` is one the commands report as a user's mistake (its message suffices)."""
    return isinstance(getattr(error, "exit_code", None), int) or isinstance(error, DATA_ERRORS + USAGE_ERRORS)


def guarded(call: Callable[[], T], *, debug: bool, interrupted: str = "Interrupted.") -> T | int:
    """``call()``'s result, or the exit status after reporting its error in one line on stderr.

    Args:
        call: the command's work.
        debug: let errors (and Ctrl-C) propagate with their traceback instead.
        interrupted: the line printed for Ctrl-C.

    Returns:
        What ``call`` returned, or the exit status of the error it raised.
    """
    try:
        return call()
    except KeyboardInterrupt:
        if debug:
            raise
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - one line for the user; --debug shows the traceback
        if debug:
            raise
        code = exit_code_of(error)
        if not is_expected(error):
            print(f"error: {type(error).__name__}: {one_line(error)} (--debug shows the traceback)", file=sys.stderr)
        elif code > SIGNAL_BASE:  # stopped by a signal after saving: a report, not an error
            print(one_line(error), file=sys.stderr)
        else:
            print(f"error: {one_line(error)}", file=sys.stderr)
        return code


@contextmanager
def reported_as(exit_code: int, *kinds: type[BaseException]) -> Iterator[None]:
    """Turn the library's ``kinds`` of error into a ``CommandError`` with ``exit_code``: where a command knows
    what a generic error means (a ``ValueError`` of ``build_space`` is about its arguments: usage)."""
    try:
        yield
    except kinds as error:
        if isinstance(error, CommandError):
            raise
        raise CommandError(one_line(error), exit_code) from error


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def one_line(error: BaseException | str) -> str:
    return " ".join(str(error).split()) or type(error).__name__
