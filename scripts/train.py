"""Train pix2pix: ``accelerate launch scripts/train.py --dataset huggan/facades --direction BtoA``.

Argument parsing only: every flag is a field of ``pix2pix_hub.training.TrainingConfig`` (defaults: the paper's
facades setup); the loop is ``pix2pix_hub.training.train``. ``--quick`` trains a small model on the local facades
pairs in a few minutes on a CPU. Flags and launch lines for several GPUs or machines: docs/training.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None):
    from pix2pix_hub.training import config_from_args, train

    try:
        config = config_from_args(argv, repo_root=REPO_ROOT)
    except ValueError as error:
        sys.exit(f"error: {error}")
    return train(config)


if __name__ == "__main__":
    main()
