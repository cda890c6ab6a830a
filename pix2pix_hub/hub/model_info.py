"""``ModelInfo``: the machine-readable facts of a trained translator, beside ``config.json`` as ``pix2pix.json``.

``config.json`` says what the network *is* (its constructor arguments); ``pix2pix.json`` says what it *does*:
which side of the data is its input, what the input and output images are, what it was trained on and at which
resolution. The model card's YAML carries the same record (key ``pix2pix``); the Space and ``Pix2Pix.info`` read
it from the file, never from the card's prose.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

from ..constants import DIRECTIONS, MODEL_INFO_NAME, check_choice
from ..fileio import write_json
from .ids import is_hub_id

# What the two sides of well-known datasets are, for people reading a card or a Space: (A, B).
KNOWN_SIDES = {"facades": ("photo", "CMP facade labels")}


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a translator; every field may be unknown (None) for a model not trained by this package.

    ``direction``: ``AtoB``/``BtoA`` (which dataset side was the input); ``input``/``output``: what the images
    are, e.g. ``"CMP facade labels"`` -> ``"photo"``; ``dataset``: a Hub dataset id, or a local folder's name
    (``dataset_on_hub`` says which); ``resolution``: the training crop size in pixels; ``base_model``: the model
    it was fine-tuned or converted from; ``label_nc``: the number of classes of a label-map input (pix2pixHD: the
    input is a class-index image, one-hot encoded; None or 0 for an image input); ``instance``: whether an
    instance-id map comes with it (turned into a boundary channel); ``contain_dontcare_label``: whether the label
    map holds a don't-care class (index ``label_nc``, or 255) with its own one-hot channel (SPADE's flag).
    """

    direction: str | None = None
    input: str | None = None
    output: str | None = None
    dataset: str | None = None
    dataset_on_hub: bool | None = None
    resolution: int | None = None
    base_model: str | None = None
    label_nc: int | None = None
    instance: bool | None = None
    contain_dontcare_label: bool | None = None

    def __post_init__(self) -> None:
        for name, kind in FIELD_KINDS.items():
            value = getattr(self, name)
            # bool is an int in Python: a resolution of `true` is still a mistake.
            if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
                raise ValueError(f"{name} must be {kind.__name__} or null; got {value!r}.")
        if self.direction is not None:
            check_choice("direction", self.direction, DIRECTIONS)
        if self.label_nc is not None and self.label_nc < 1:
            raise ValueError(f"label_nc must be the number of classes (>= 1) or null; got {self.label_nc}.")

    @classmethod
    def for_training(
        cls,
        dataset: str | None,
        direction: str | None,
        resolution: int | None,
        base_model: str | None = None,
        label_nc: int = 0,
        instance: bool = False,
        dontcare: bool = False,
    ) -> ModelInfo:
        """The record a training run writes: the dataset named without any local path, sides filled in for
        datasets whose sides are known (facades); ``contain_dontcare_label`` recorded only when true."""
        name = dataset_name(dataset)
        on_hub = None if dataset is None else name == dataset
        sides = next((pair for key, pair in KNOWN_SIDES.items() if name and key in name.lower()), None)
        source, target = (sides if direction == "AtoB" else sides[::-1]) if sides and direction else (None, None)
        labels = (label_nc, instance) if label_nc else (None, None)
        dontcare_label = True if label_nc and dontcare else None
        return cls(direction, source, target, name, on_hub, resolution, base_model, *labels, dontcare_label)

    def to_dict(self) -> dict[str, Any]:
        """The known fields only (what the card's YAML and ``pix2pix.json`` hold)."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = MODEL_INFO_NAME) -> ModelInfo:
        """The record ``to_dict`` wrote; unknown keys and wrong values are errors naming ``source``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source} has unknown keys {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None

    def save(self, folder: str | os.PathLike) -> Path:
        return write_json(Path(folder) / MODEL_INFO_NAME, self.to_dict())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ModelInfo:
        """From ``folder/pix2pix.json``; an empty record when the folder has none (older or foreign models)."""
        path = Path(folder) / MODEL_INFO_NAME
        if not path.is_file():
            return cls()
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); re-save the model or delete the file.") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a JSON object.")
        return cls.from_dict(values, str(path))


# Each field's type without its None: what __post_init__ checks a loaded record against.
FIELD_KINDS: dict[str, type] = {name: get_args(hint)[0] for name, hint in get_type_hints(ModelInfo).items()}

SPLIT_FOLDERS = ("train", "val", "validation", "test")


def dataset_name(dataset: str | None) -> str | None:
    """A dataset as it may be published: a Hub id as it is, a local path by its folder (or file) name.

    Returns:
        The name; a split folder is named by its parent (``../data/facades/train`` -> ``facades``: the split is
        recorded with the training arguments). None for no dataset.
    """
    if not dataset:
        return None
    if is_hub_id(dataset):
        return dataset
    path = Path(dataset).expanduser().resolve()
    return path.parent.name if path.name.lower() in SPLIT_FOLDERS and path.parent.name else path.stem or path.name
