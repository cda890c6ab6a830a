"""Training pix2pix with Accelerate: ``TrainingConfig`` (the arguments), ``train`` (the run), ``train_step``.

Run it through ``accelerate launch scripts/train.py`` (see docs/training.md); the entry point is
``pix2pix_hub.commands.train.main``. Needs the ``train`` extra (accelerate, datasets, tqdm); importing ``pix2pix_hub``
does not import this package.
"""

from .arguments import config_from_args
from .config import TrainingConfig
from .errors import TrainingInterrupted
from .step import StepParts, train_step
from .trainer import Trainer, TrainingResult, train

__all__ = [
    "StepParts",
    "Trainer",
    "TrainingConfig",
    "TrainingInterrupted",
    "TrainingResult",
    "config_from_args",
    "train",
    "train_step",
]
