"""Fill the top-level ``model_card.md`` template with a model's real configuration, data and metrics.

The card's YAML is the contract other tools read: the usual Hub keys plus the model's facts (``ModelInfo``) under
the key ``pix2pix``. The prose below it is for people only; nothing parses it back.

This module depends on the networks and ``ModelInfo`` only: ``pipeline`` imports it, never the other way round.
"""

from __future__ import annotations

import os
from pathlib import Path
from string import Template
from typing import Any, Protocol

from huggingface_hub import ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from torch import nn

from .constants import PICKLE_SUFFIXES
from .model_info import ModelInfo, dataset_name

TEMPLATE_NAME = "model_card.md"
CARD_KEY = "pix2pix"  # the YAML key holding ModelInfo.to_dict()


class Translator(Protocol):
    """What the card reads from a ``Pix2Pix`` (a protocol, so this module needs no import of ``pipeline``)."""

    generator: nn.Module
    discriminator: nn.Module | None
    info: ModelInfo


def template_path() -> Path:
    """The template: shipped inside the wheel, or at the repository root in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / TEMPLATE_NAME, here.parent / TEMPLATE_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{TEMPLATE_NAME} not found next to {here}; reinstall pix2pix-hub.")


def markdown_table(rows: dict[str, Any]) -> str:
    return "\n".join(f"| {key} | `{value}` |" for key, value in rows.items())


def render_model_card(
    pix2pix: Translator,
    *,
    repo_id: str = "user/pix2pix-model",
    info: ModelInfo | None = None,
    dataset: str | None = None,
    direction: str | None = None,
    training_config: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    sample_grid: str | None = None,
    license: str = "mit",
) -> str:
    """The README.md text of a model repo for ``pix2pix`` (a ``Pix2Pix``): see ``render_card``.

    The facts come from ``info`` (default ``pix2pix.info``); ``dataset`` and ``direction`` are the older way of
    passing them and only fill in what the record leaves unknown.
    """
    info = pix2pix.info if info is None else info
    if dataset is not None or direction is not None:
        info = with_fallback(info, dataset, direction)
    return render_card(
        pix2pix.generator,
        pix2pix.discriminator,
        info,
        repo_id=repo_id,
        training_config=training_config,
        metrics=metrics,
        sample_grid=sample_grid,
        license=license,
    )


def with_fallback(info: ModelInfo, dataset: str | None, direction: str | None) -> ModelInfo:
    """``info`` with its unknown fields taken from a (dataset, direction) pair, as a training run would record."""
    legacy = ModelInfo.for_training(dataset, info.direction or direction, info.resolution)
    return ModelInfo(**{**legacy.to_dict(), **info.to_dict()})


def render_card(
    generator: nn.Module,
    discriminator: nn.Module | None,
    info: ModelInfo,
    *,
    repo_id: str = "user/pix2pix-model",
    training_config: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    sample_grid: str | None = None,
    license: str = "mit",
) -> str:
    """YAML metadata (with ``info`` under ``pix2pix``) plus usage, configuration, metrics and samples.

    No local path reaches the card: a local dataset is named by its folder (``info.dataset``), and path-like
    training arguments are shown by name (``public_value``).
    """
    tags = ["pix2pix", "image-to-image", "gan", "pix2pix-hub", type(generator).__name__]
    metadata = ModelCardData(
        library_name="pix2pix-hub",
        pipeline_tag="image-to-image",
        license=license,
        tags=tags,
        datasets=[info.dataset] if info.dataset and info.dataset_on_hub else None,
        metrics=sorted(metrics) if metrics else None,
        base_model=info.base_model if is_hub_model_id(info.base_model) else None,
        **{CARD_KEY: info.to_dict() or None},
    )
    return Template(template_path().read_text(encoding="utf-8")).substitute(
        metadata=metadata.to_yaml(),
        title=f"pix2pix: {repo_id.split('/')[-1]}",
        summary=summary(info),
        repo_id=repo_id,
        model_table=markdown_table(model_rows(generator, discriminator)),
        discriminator_note=(
            "The discriminator is in `discriminator/` for fine-tuning."
            if discriminator is not None
            else "No discriminator is included."
        ),
        training=training_table(training_config),
        evaluation=evaluation_table(metrics),
        samples=f"## Samples\n\ninput | output | target\n\n![samples]({sample_grid})" if sample_grid else "",
    )


def summary(info: ModelInfo) -> str:
    """One sentence for people: what the model was trained on and which way it translates."""
    text = f"Trained on `{info.dataset}`" if info.dataset else "Not trained by pix2pix-hub's training script"
    if info.resolution:
        text += f" at {info.resolution}x{info.resolution}"
    if info.direction:
        text += f", direction `{info.direction}`"
        if info.input and info.output:
            text += f" ({info.input} → {info.output})"
    return text + "."


def model_rows(generator: nn.Module, discriminator: nn.Module | None) -> dict[str, Any]:
    n_params = sum(p.numel() for p in generator.parameters())
    rows = {"generator": type(generator).__name__, "parameters": f"{n_params:,}", **generator.config}
    if discriminator is not None:
        rows["discriminator"] = f"{type(discriminator).__name__}, {discriminator.receptive_field}px receptive field"
    return rows


def training_table(training_config: dict[str, Any] | None) -> str:
    if not training_config:
        return "No training configuration was recorded."
    rows = {key: public_value(value) for key, value in training_config.items()}
    return "| argument | value |\n|---|---|\n" + markdown_table(rows)


def evaluation_table(metrics: dict[str, float] | None) -> str:
    if not metrics:
        return "No metrics were recorded."
    return "Validation split:\n\n| metric | value |\n|---|---|\n" + "\n".join(
        f"| {name} | {value:.4f} |" for name, value in metrics.items()
    )


def public_value(value: Any) -> Any:
    """A training argument as a card may show it: local paths by their folder's name (``dataset_name``'s rule),
    Hub ids and everything else as they are."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and ("/" in value or os.sep in value)):
        return dataset_name(os.fspath(value))
    return value


def is_hub_model_id(name: str | None) -> bool:
    """``user/name`` that the Hub accepts as ``base_model``; a file name (``latest_net_G.pth``) or a local path is
    kept in the ``pix2pix`` record only."""
    if not name or name.count("/") != 1 or name.endswith(PICKLE_SUFFIXES) or Path(name).exists():
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True
