"""What can go wrong in a training run that is the user's to fix, and how the command line reports it.

Two kinds, told apart by a base class so the commands' error policy (``commands.policy``) can print one line and
choose the exit code without a traceback: a ``UsageError`` (a flag, a folder in the wrong state: exit 2) and a
``DataError`` (the dataset or a checkpoint's files: exit 1). Each concrete error also derives from the built-in
exception callers expect (``ValueError``, ``FileExistsError``...), so ``except ValueError`` keeps working. Anything
else is a bug and keeps its traceback. ``TrainingInterrupted`` is not an error: a run stopped by SIGTERM/SIGINT
after saving a checkpoint.
"""

from __future__ import annotations

import signal


class UsageError(Exception):
    """A mistake in the arguments or in the state of a folder given: the command line exits with 2."""

    exit_code = 2


class DataError(Exception):
    """The data (dataset, checkpoint files) cannot be used as given: the command line exits with 1."""

    exit_code = 1


class ConfigError(UsageError, ValueError):
    """Arguments that contradict each other, the base model or the checkpoint to resume."""


class OutputDirError(UsageError, FileExistsError):
    """``--output_dir`` holds another run's checkpoints or model files."""


class OutputDirNotWritable(UsageError, PermissionError):
    """``--output_dir`` cannot be created or written."""


class MissingCheckpointError(UsageError, FileNotFoundError):
    """``--resume_from_checkpoint`` names a folder that does not exist."""


class MissingPackageError(UsageError, ImportError):
    """A flag needs a package that is not installed."""


class CheckpointError(DataError, ValueError):
    """A checkpoint's files are missing, damaged, or in a format that could run code when read (a pickle)."""


class DatasetError(DataError, ValueError):
    """The dataset cannot be trained on as asked (e.g. too few pairs for ``--val_size``)."""


class MissingDatasetError(DataError, FileNotFoundError):
    """``--dataset`` names a path that does not exist."""


class MainProcessError(RuntimeError):
    """An error the main process hit in a check only it runs, raised again in the other processes; ``exit_code``
    is the original's (None: it was not a user error)."""

    def __init__(self, message: str, exit_code: int | None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT stopped the run after the current step; ``checkpoint`` holds everything up to ``step``."""

    def __init__(self, signal_number: int, step: int, checkpoint: str) -> None:
        self.signal_number = signal_number
        self.step = step
        self.checkpoint = checkpoint
        name = signal.Signals(signal_number).name
        super().__init__(
            f"{name}: stopped at step {step} and saved {checkpoint}. Resume with the same command plus "
            f"--resume_from_checkpoint latest (same --output_dir)."
        )

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (SIGTERM 143, SIGINT 130)."""
        return 128 + self.signal_number
