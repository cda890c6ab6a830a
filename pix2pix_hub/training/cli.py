"""The training command line: ``python scripts/train.py ...`` / ``accelerate launch scripts/train.py ...``.

Parses the arguments into a ``TrainingConfig``, applies the process-wide settings that a library call must not
change behind its caller's back (glibc's allocator, unless ``--no_allocator_tuning`` or ``--plain_eager``), and
runs ``train``. A bad argument ends the process with one line naming it, not a traceback.
"""

from __future__ import annotations

import sys

from ..performance import tune_allocator
from .config import config_from_args
from .trainer import TrainingResult, train


def main(argv: list[str] | None = None) -> TrainingResult:
    """Train from the command line ``argv`` (``sys.argv[1:]`` when None); returns what ``train`` returns."""
    try:
        config = config_from_args(argv)
    except ValueError as error:
        sys.exit(f"error: {error}")
    if config.allocator_tuning:
        tune_allocator()
    return train(config)


if __name__ == "__main__":
    main()
