"""Where the training loop's pieces used to live; kept so existing imports keep working.

The run is ``trainer.py`` (``Trainer``, ``train``, ``TrainingResult``), the step ``step.py`` (``train_step``,
``StepParts``), the set-up ``setup.py`` (``build_networks``, ``make_adam``, ``LRFactor``, ``EpochShuffler``, ...)
and the end of a run ``publish.py``.
"""

from __future__ import annotations

from .publish import publish, save_model_folder
from .setup import (
    EpochShuffler,
    LRFactor,
    build_networks,
    check_output_dir,
    check_tracker,
    first_good_batch,
    load_datasets,
    make_accelerator,
    make_adam,
    on_main_then_everywhere,
    tracker_config,
)
from .step import StepParts, train_step
from .trainer import TrainingResult, train

__all__ = [
    "EpochShuffler",
    "LRFactor",
    "StepParts",
    "TrainingResult",
    "build_networks",
    "check_output_dir",
    "check_tracker",
    "first_good_batch",
    "load_datasets",
    "make_accelerator",
    "make_adam",
    "on_main_then_everywhere",
    "publish",
    "save_model_folder",
    "tracker_config",
    "train",
    "train_step",
]
