"""Training pix2pix with Accelerate: ``TrainingConfig`` (the arguments), ``train`` (the loop), ``train_step``.

Run it through ``accelerate launch scripts/train.py`` (see docs/training.md). Importing ``pix2pix_hub`` does
not import this package; accelerate and datasets are imported only when ``train`` runs.
"""

from .config import TrainingConfig, config_from_args
from .loop import TrainingResult, train, train_step

__all__ = ["TrainingConfig", "TrainingResult", "config_from_args", "train", "train_step"]
