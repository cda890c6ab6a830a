"""Fill the top-level ``model_card.md`` template with a model's real configuration, data and metrics.

The card's YAML is the contract other tools read: the usual Hub keys plus the model's facts (``ModelInfo``) under
the key ``pix2pix``. The prose below it is for people only; nothing parses it back.

This module depends on the networks and ``ModelInfo`` only: ``pipeline`` imports it, never the other way round.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from importlib import metadata as package_metadata
from pathlib import Path
from string import Template
from typing import Any, Protocol

from huggingface_hub import EvalResult, ModelCardData
from PIL import Image
from torch import nn

from ..fileio import save_image
from ..models.hd import GlobalGenerator, LocalEnhancer
from ..models.spade import UPSAMPLINGS, SPADEGenerator
from .ids import is_hub_id
from .model_info import ModelInfo, dataset_name

TEMPLATE_NAME = "model_card.md"
CARD_KEY = "pix2pix"  # the YAML key holding ModelInfo.to_dict()
# The tags PyTorchModelHubMixin gives every repo it writes: the Hub counts the mixin's users by them.
MIXIN_TAGS = ["model_hub_mixin", "pytorch_model_hub_mixin"]
# The widget's example, as paths inside the repo (``save_widget_images`` writes them).
WIDGET_INPUT, WIDGET_OUTPUT = "samples/input.png", "samples/output.png"
METRIC_NAMES = {"l1": "L1", "psnr": "PSNR", "ssim": "SSIM", "fid": "FID"}
VERSIONED = ("pix2pix-hub", "torch", "huggingface_hub")  # always listed; accelerate and datasets after training
UNKNOWN_LICENSE_NOTE = (
    "The license was not set when this card was written (`license: other`). A trained model inherits the terms "
    "of its training data: the CMP facades, for example, are distributed for research use only. Ask the "
    "model's owner before other uses; they can state the license with `--license`."
)


class Translator(Protocol):
    """What the card reads from a ``Pix2Pix`` (a protocol, so this module needs no import of ``pipeline``)."""

    generator: nn.Module
    discriminator: nn.Module | None
    info: ModelInfo


def template_path() -> Path:
    """The template: shipped inside the wheel, or at the repository root in a source checkout."""
    here = Path(__file__).resolve().parents[1]  # the package folder: hub/ is one level below it
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
    license: str | None = None,
    command: str | Sequence[str] | None = None,
    widget_images: tuple[str, str] | None = None,
    versions: dict[str, str] | None = None,
) -> str:
    """The README.md text of a model repo for ``pix2pix`` (a ``Pix2Pix``): ``render_card`` of its networks.

    Args:
        pix2pix: the model (its generator, discriminator and ``info``).
        info: the model's facts (default ``pix2pix.info``).
        dataset: the older way of passing the dataset; fills in only what ``info`` leaves unknown.
        direction: likewise for the direction.
        repo_id, training_config, metrics, sample_grid, license, command, widget_images, versions: as
            ``render_card`` takes them.

    Returns:
        The card's text: YAML front matter and Markdown.
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
        command=command,
        widget_images=widget_images,
        versions=versions,
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
    license: str | None = None,
    command: str | Sequence[str] | None = None,
    widget_images: tuple[str, str] | None = None,
    versions: dict[str, str] | None = None,
) -> str:
    """A model card: YAML metadata (with ``info`` under ``pix2pix``) plus usage, configuration, metrics, samples.

    No local path reaches the card: a local dataset is named by its folder (``info.dataset``), and path-like
    arguments and command-line words by their names (``public_value``, ``public_command``).

    Args:
        generator: the generator (its class, size and config fill the model table).
        discriminator: the discriminator shipped with it, or None.
        info: the model's facts.
        repo_id: the repo the card is for (its usage snippet loads it).
        training_config: the arguments shown in the training table, as the caller chose them (training shows
            all but ``training.publish.LOCAL_RUN_OPTIONS``); None: "not recorded".
        metrics: validation metrics (the text and the ``model-index``).
        sample_grid: the path of the sample grid inside the repo.
        license: a Hub license id; None writes ``other`` with a note.
        command: the command line that trained the model.
        widget_images: an (input, output) pair of image paths inside the repo for the Hub's widget
            (``save_widget_images``).
        versions: library versions to list (default the installed ones).

    Returns:
        The card's text.
    """
    metadata = card_metadata(generator, info, repo_id, training_config, metrics, license, widget_images)
    return Template(template_path().read_text(encoding="utf-8")).substitute(
        metadata=metadata.to_yaml(),
        title=f"pix2pix: {repo_id.split('/')[-1]}",
        summary=summary(info),
        repo_id=repo_id,
        styles=styles_section(generator, repo_id),
        model_table=markdown_table(model_rows(generator, discriminator, info)),
        discriminator_note=(
            "The discriminator is in `discriminator/` for fine-tuning."
            if discriminator is not None
            else "No discriminator is included."
        ),
        training=training_table(training_config),
        command=command_block(command),
        versions=versions_table(library_versions(training_config is not None) if versions is None else versions),
        evaluation=evaluation_table(metrics, training_config),
        samples=f"## Samples\n\ninput | output | target\n\n![samples]({sample_grid})" if sample_grid else "",
        license=f"`{license}`." if license else UNKNOWN_LICENSE_NOTE,
    )


def card_metadata(
    generator: nn.Module,
    info: ModelInfo,
    repo_id: str,
    training_config: dict[str, Any] | None,
    metrics: dict[str, float] | None,
    license: str | None,
    widget_images: tuple[str, str] | None,
) -> ModelCardData:
    """The card's YAML: what the Hub reads (library, task, tags, dataset, base model, license, eval results,
    widget) and the model's facts under ``pix2pix``."""
    name = repo_id.split("/")[-1]
    results = eval_results(metrics, info, training_config)
    extra: dict[str, Any] = {CARD_KEY: info.to_dict() or None}
    if widget_images:
        source, output = widget_images
        extra["widget"] = [{"src": source, "output": {"url": output}, "example_title": f"{info.input or 'input'}"}]
    return ModelCardData(
        library_name="pix2pix-hub",
        pipeline_tag="image-to-image",
        license=license or "other",
        tags=["pix2pix", "image-to-image", "gan", "pix2pix-hub", *model_tags(generator, info), *MIXIN_TAGS],
        datasets=[info.dataset] if info.dataset and info.dataset_on_hub else None,
        metrics=sorted(metrics) if metrics else None,
        base_model=info.base_model if is_hub_id(info.base_model, namespaced=True) else None,
        model_name=name if results else None,
        eval_results=results,
        **extra,
    )


def eval_results(
    metrics: dict[str, float] | None, info: ModelInfo, training_config: dict[str, Any] | None
) -> list[EvalResult] | None:
    """The validation metrics as the Hub's ``model-index`` entries.

    Args:
        metrics: metric name -> value.
        info: the model's facts; its dataset (the Hub id, or a local dataset's folder name) is the results'.
        training_config: its ``validation_split`` is the results' split when the run validated on one (otherwise
            pairs held out of the training split, which the card's text says).

    Returns:
        One ``EvalResult`` per metric; None without metrics or a named dataset.
    """
    if not metrics or not info.dataset:
        return None
    split = (training_config or {}).get("validation_split")
    return [
        EvalResult(
            task_type="image-to-image",
            task_name="Image-to-Image",
            dataset_type=info.dataset,
            dataset_name=info.dataset,
            dataset_split=split,
            metric_type=metric,
            metric_name=METRIC_NAMES.get(metric, metric),
            metric_value=float(value),
            verified=False,  # self-reported by the training run
        )
        for metric, value in metrics.items()
    ]


def save_widget_images(folder: str | os.PathLike, source: Image.Image, output: Image.Image) -> tuple[str, str]:
    """Write a widget example (an input and the model's output) into a repo folder; returns the paths inside the
    repo, to pass as ``widget_images``."""
    for image, name in ((source, WIDGET_INPUT), (output, WIDGET_OUTPUT)):
        save_image(image, Path(folder) / name, "PNG")
    return WIDGET_INPUT, WIDGET_OUTPUT


def summary(info: ModelInfo) -> str:
    """One sentence for people: what the model was trained on and which way it translates."""
    text = f"Trained on `{info.dataset}`" if info.dataset else "Not trained by pix2pix-hub's training script"
    if info.resolution:
        text += f" at {info.resolution}x{info.resolution}"
    if info.direction:
        text += f", direction `{info.direction}`"
        if info.input and info.output:
            text += f" ({info.input} → {info.output})"
    text += "."
    if info.label_nc:
        text += (
            f" Its input is a **class-index map**, not a picture: a PNG of mode L, P or 16-bit (or an integer array)"
            f" whose pixel value k is class k of {info.label_nc}, one-hot encoded as pix2pixHD does"
        )
        if info.contain_dontcare_label:
            text += f", with a don't-care class (value {info.label_nc}, or 255) of its own channel"
        text += (
            "; `pix2pix(labels, instance=ids)` adds an instance-id map's boundaries (without one, the class "
            "boundaries serve)."
            if info.instance
            else "."
        )
    return text


def model_rows(generator: nn.Module, discriminator: nn.Module | None, info: ModelInfo | None = None) -> dict[str, Any]:
    n_params = sum(p.numel() for p in generator.parameters())
    rows = {"generator": type(generator).__name__, "parameters": f"{n_params:,}"}
    described = architecture(generator)
    rows |= {"architecture": described} if described else {}
    if info is not None and info.label_nc:
        dontcare = " + 1 don't-care channel (contain_dontcare_label)" if info.contain_dontcare_label else ""
        boundaries = " + 1 instance-boundary channel" if info.instance else ""
        rows["input"] = f"class-index map: label_nc={info.label_nc} one-hot channels{dontcare}{boundaries}"
    rows |= generator.config
    if discriminator is not None:
        rows["discriminator"] = f"{type(discriminator).__name__}, {discriminator.receptive_field}px receptive field"
    return rows


def architecture(generator: nn.Module) -> str | None:
    """pix2pixHD's generators in words (their config alone reads as numbers); None for the others, whose class
    and config say it (U-Net depth, ResNet blocks)."""
    config = generator.config
    if isinstance(generator, GlobalGenerator):
        ngf, halvings, blocks = config["ngf"], config["n_downsample"], config["n_blocks"]
        return (
            f"pix2pixHD global generator (G1, --netG global): c7s1-{ngf}, {halvings} stride-2 convs (n_downsample), "
            f"{blocks} residual blocks (n_blocks) at width {ngf * 2**halvings}, {halvings} transposed convs, "
            f"c7s1 + Tanh; sides padded to multiples of {generator.size_multiple}"
        )
    if isinstance(generator, LocalEnhancer):
        enhancers, halvings = config["n_local_enhancers"], config["n_downsample_global"]
        return (
            f"pix2pixHD local enhancer (G2, --netG local): a global generator of width "
            f"{config['ngf'] * 2**enhancers} ({halvings} stride-2 convs, {config['n_blocks_global']} residual "
            f"blocks) on the input downsampled {2**enhancers}x, then {enhancers} full-resolution branch(es) of "
            f"{config['n_blocks_local']} residual blocks adding its features; sides padded to multiples of "
            f"{generator.size_multiple}"
        )
    if isinstance(generator, SPADEGenerator):
        return spade_architecture(generator)
    return None


def spade_architecture(generator: SPADEGenerator) -> str:
    """GauGAN's generator in words: where it starts, its blocks and upsamplings, spectral norm, the encoder."""
    config, multiple = generator.config, generator.size_multiple
    start = (
        f"a style code (z_dim={generator.z_dim}) through a linear layer"
        if generator.encoder is not None
        else "the label map downsampled"
    )
    encoder = (
        f"a style encoder (6 stride-2 convs, instance norm, to the mean and log-variance of a {generator.z_dim}-d "
        "code) is part of the weights"
        if generator.encoder is not None
        else "no style encoder (one output per label map)"
    )
    return (
        f"GauGAN SPADE generator (--netG spade, Park et al. 2019): starts from {start} at 1/{multiple} of the "
        f"sides, then {len(generator.blocks)} SPADE residual blocks with {UPSAMPLINGS[generator.num_upsampling_layers]}"
        f" nearest 2x upsamplings (num_upsampling_layers={generator.num_upsampling_layers}); every normalization "
        f"({config.get('norm')}, parameter-free) is scaled and shifted per pixel from the label map (hidden width "
        f"{config.get('spade_hidden')}); spectral norm {'on' if config.get('spectral_norm') else 'off'}; {encoder}; "
        f"sides padded to multiples of {multiple}"
    )


def styles_section(generator: nn.Module, repo_id: str) -> str:
    """The card's "Styles" section for a SPADE generator (how to pick a style, with code); "" for others."""
    if not isinstance(generator, SPADEGenerator):
        return ""
    if generator.encoder is None:
        return (
            "## Styles\n\nThis GauGAN (SPADE) generator has no style encoder: each label map gives one output. "
            "(Models trained with `--use_vae` take a style photo or a seed.)"
        )
    return f"""## Styles

This GauGAN (SPADE) generator has a style encoder: the same label map renders in many styles, each a
{generator.z_dim}-d code. Pick one per call (one style serves every image of a call):

```python
labels = Image.open("labels.png")                       # a class-index map
photo = pix2pix(labels)                                 # the zero code (the prior's mean): the default
photo = pix2pix(labels, seed=7)                         # a code sampled with seed 7: same seed, same output
photo = pix2pix(labels, style=Image.open("style.jpg"))  # the style of a photo (the encoder's mean), any size
```

From the shell: `pix2pix-hub translate {repo_id} labels/ outputs/ --seed 7` (or `--style style.jpg`);
`pix2pix-hub evaluate` uses the zero code unless given `--seed` or `--style`. The exported `model.onnx` takes the
code as a second input, `z` of shape `(N, {generator.z_dim})`.

GauGAN: Park, Liu, Wang and Zhu, "Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR 2019
([arXiv:1903.07291](https://arxiv.org/abs/1903.07291)); this implementation is written from the paper."""


def model_tags(generator: nn.Module, info: ModelInfo) -> list[str]:
    """The generator's class, and for pix2pixHD's generators and label-map inputs the tags a search for them finds."""
    tags = [type(generator).__name__]
    tags += ["pix2pixhd"] if isinstance(generator, (GlobalGenerator, LocalEnhancer)) else []
    tags += ["spade", "gaugan"] if isinstance(generator, SPADEGenerator) else []
    return tags + (["semantic-image-synthesis"] if info.label_nc else [])


def training_table(training_config: dict[str, Any] | None) -> str:
    if not training_config:
        return "No training configuration was recorded."
    rows = {key: public_value(value) for key, value in training_config.items()}
    return "| argument | value |\n|---|---|\n" + markdown_table(rows)


def evaluation_table(metrics: dict[str, float] | None, training_config: dict[str, Any] | None = None) -> str:
    if not metrics:
        return "No metrics were recorded."
    return f"{validation_source(training_config)}\n\n| metric | value |\n|---|---|\n" + "\n".join(
        f"| {name} | {value:.4f} |" for name, value in metrics.items()
    )


def validation_source(training_config: dict[str, Any] | None) -> str:
    """Which pairs the metrics were measured on, in words."""
    config = training_config or {}
    if config.get("validation_split"):
        return f"Validation split `{config['validation_split']}`:"
    if "val_size" in config:
        return f"Validation pairs ({config['val_size']}) held out of the training split `{config.get('split')}`:"
    return "Validation split:"


def command_block(command: str | Sequence[str] | None) -> str:
    if not command:
        return "The command line was not recorded."
    return f"```bash\n{public_command(command)}\n```\n\nLocal paths are shown by their folder's name."


def public_command(command: str | Sequence[str]) -> str:
    """A command line with every local path replaced by its name (``/home/me/data/facades/train`` ->
    ``facades``, ``scripts/train.py`` -> ``train.py``); flags, values and Hub ids unchanged."""
    words = shlex.split(command) if isinstance(command, str) else [str(word) for word in command]
    return shlex.join(public_word(word) for word in words)


def public_word(word: str) -> str:
    if word.startswith("--") and "=" in word:
        flag, value = word.split("=", 1)
        return f"{flag}={public_word(value)}"
    local = word.startswith(("/", "~", "./", "../")) or ("/" in word and Path(word).exists())
    if not local:
        return word
    path = Path(word).expanduser()
    return path.name if path.suffix and not path.is_dir() else dataset_name(word) or path.name


def library_versions(trained: bool = False) -> dict[str, str]:
    """Installed versions of the libraries a card names (``"not installed"`` for a missing one)."""
    names = [*VERSIONED, *(("accelerate", "datasets") if trained else ())]
    versions = {}
    for name in names:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def versions_table(versions: dict[str, str]) -> str:
    return "| library | version |\n|---|---|\n" + "\n".join(f"| {name} | {v} |" for name, v in versions.items())


def public_value(value: Any) -> Any:
    """A training argument as a card may show it: local paths by their folder's name (``dataset_name``'s rule),
    Hub ids and everything else as they are."""
    if isinstance(value, os.PathLike) or (isinstance(value, str) and ("/" in value or os.sep in value)):
        return dataset_name(os.fspath(value))
    return value
