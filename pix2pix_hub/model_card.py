"""Fill the top-level ``model_card.md`` template with a model's real configuration, data and metrics."""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from huggingface_hub import ModelCardData

if TYPE_CHECKING:
    from .pipeline import Pix2Pix

TEMPLATE_NAME = "model_card.md"


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
    pix2pix: Pix2Pix,
    *,
    repo_id: str = "user/pix2pix-model",
    dataset: str | None = None,
    direction: str | None = None,
    training_config: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    sample_grid: str | None = None,
    license: str = "mit",
) -> str:
    """The README.md text of a model repo: YAML metadata plus usage, configuration, metrics and samples."""
    generator = pix2pix.generator
    config = dict(getattr(generator, "_hub_mixin_config", None) or {})
    tags = ["pix2pix", "image-to-image", "gan", "pix2pix-hub", type(generator).__name__]
    metadata = ModelCardData(
        library_name="pix2pix-hub",
        pipeline_tag="image-to-image",
        license=license,
        tags=tags,
        datasets=[dataset] if dataset and not Path(dataset).exists() else None,
        metrics=sorted(metrics) if metrics else None,
    )
    n_params = sum(p.numel() for p in generator.parameters())
    model_rows = {"generator": type(generator).__name__, "parameters": f"{n_params:,}", **config}
    if pix2pix.discriminator is not None:
        model_rows["discriminator"] = f"PatchDiscriminator, {pix2pix.discriminator.receptive_field}px receptive field"
    summary = f"Trained on `{dataset}`" if dataset else "Not trained by pix2pix-hub's training script"
    summary += f", direction `{direction}`." if direction else "."
    training = markdown_table(training_config) if training_config else "No training configuration was recorded."
    if training_config:
        training = "| argument | value |\n|---|---|\n" + training
    evaluation = "No metrics were recorded."
    if metrics:
        evaluation = "Validation split:\n\n| metric | value |\n|---|---|\n" + "\n".join(
            f"| {name} | {value:.4f} |" for name, value in metrics.items()
        )
    samples = f"## Samples\n\ninput | output | target\n\n![samples]({sample_grid})" if sample_grid else ""
    discriminator_note = (
        "The discriminator is in `discriminator/` for fine-tuning."
        if pix2pix.discriminator is not None
        else "No discriminator is included."
    )
    return Template(template_path().read_text(encoding="utf-8")).substitute(
        metadata=metadata.to_yaml(),
        title=f"pix2pix: {repo_id.split('/')[-1]}",
        summary=summary,
        repo_id=repo_id,
        model_table=markdown_table(model_rows),
        discriminator_note=discriminator_note,
        training=training,
        evaluation=evaluation,
        samples=samples,
    )
