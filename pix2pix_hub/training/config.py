"""``TrainingConfig``: the one record of a training run's arguments.

The command line is generated from its fields (``training.arguments``), ``check`` refuses inconsistent values
(``training.config_checks``), checkpoints store it as ``training_config.json``, and the model card prints it.
Defaults are the paper's facades setup (Isola et al. 2017, section 4 and the authors' code): unet_256 + 70x70
PatchGAN, batch norm, N(0, 0.02) init, vanilla GAN loss, L1 weight 100, Adam 2e-4 (0.5, 0.999), batch 1,
286 -> 256 random crop + flip, 100 + 100 epochs (linear decay).
pix2pixHD's options (Wang et al. 2018; docs/high-resolution.md) are fields of the same record, named as its flags:
``--netG global|local``, ``--netD multiscale --num_D``, ``--lambda_feat``, ``--lambda_vgg``, ``--niter_fix_global``,
``--label_nc``, ``--instance``. SPADE's (Park et al. 2019, GauGAN; docs/semantic-synthesis.md) likewise:
``--netG spade --use_vae --lambda_kl --z_dim --num_upsampling_layers``, ``--norm_D``, ``--TTUR``/``--no_TTUR``,
``--contain_dontcare_label``; ``--preset spade`` sets the paper's recipe (``training.presets``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..constants import (
    COMPILE_MODES,
    DIRECTIONS,
    GAN_MODES,
    INIT_TYPES,
    LR_POLICIES,
    MIXED_PRECISION,
    NORMS,
    PREPROCESS_MODES,
    TRACKERS,
)
from ..inference.quantize import DEFAULT_MIN_PSNR_DB
from ..models.registry import DISCRIMINATOR_PRESETS, GENERATOR_PRESETS, discriminator_class_of
from .config_checks import check_config, check_shapes
from .presets import DISCRIMINATOR_NORMS, PRESETS, UPSAMPLING_CHOICES

# Registered discriminators this loop does not train (none now: the multi-scale one trains with per-scale losses).
UNTRAINED_DISCRIMINATORS: tuple[str, ...] = ()
# The registry's names (importing ``models`` registers every preset): the ``--netG``/``--netD`` choices.
GENERATORS = tuple(GENERATOR_PRESETS)
DISCRIMINATORS = tuple(name for name in DISCRIMINATOR_PRESETS if name not in UNTRAINED_DISCRIMINATORS)
# Fields that define the networks' shapes: a checkpoint with other values cannot be resumed.
ARCHITECTURE_FIELDS = (
    "netG", "netD", "n_layers_D", "num_D", "norm", "ngf", "ndf", "input_nc", "output_nc", "label_nc", "instance",
    "no_dropout", "norm_D", "use_vae", "z_dim", "spade_hidden", "num_upsampling_layers", "spectral_norm_G",
    "no_spectral_norm_G", "contain_dontcare_label",
)  # fmt: skip
# --val_size unset: this many pairs, but at most a tenth of the data; fewer than AUTO_VAL_MIN: none held out.
AUTO_VAL_MAX = 16
AUTO_VAL_MIN = 2


def _arg(help: str, choices: tuple[str, ...] | None = None, **kwargs: Any) -> dict[str, Any]:
    return {"help": help, "choices": choices, **kwargs}


@dataclass
class TrainingConfig:
    """Every argument of a training run; the paper's facades setup by default (see module docstring)."""

    # data
    dataset: str = field(
        default="huggan/facades",
        metadata=_arg("Hub dataset id, aligned A|B image folder, A/ B/ folders, save_to_disk folder or parquet file."),
    )
    split: str = field(default="train", metadata=_arg("Split of --dataset to train on (a subfolder for folders)."))
    validation_split: str | None = field(
        default=None, metadata=_arg("Split to validate on (e.g. 'val'); unset: hold out --val_size training pairs.")
    )
    val_size: float | None = field(
        default=None,
        metadata=_arg(
            "Pairs held out of the training split for validation: a count (>= 1) or a fraction; unset: "
            f"{AUTO_VAL_MAX} pairs but at most 10%% of the data, none (validate on training pairs) below "
            f"{AUTO_VAL_MIN * 10} pairs."
        ),
    )
    direction: str = field(default="AtoB", metadata=_arg("AtoB or BtoA (facades labels -> photo is BtoA).", DIRECTIONS))
    column_a: str = field(default="imageA", metadata=_arg("Dataset column holding the A images."))
    column_b: str = field(default="imageB", metadata=_arg("Dataset column holding the B images."))
    input_nc: int = field(default=3, metadata=_arg("Input channels: 1 (grayscale) or 3 (RGB)."))
    output_nc: int = field(default=3, metadata=_arg("Output channels: 1 (grayscale) or 3 (RGB)."))
    label_nc: int = field(
        default=0,
        metadata=_arg(
            "Inputs are class-index label maps (mode L or P PNGs) of this many classes, fed one-hot (pix2pixHD's "
            "--label_nc); 0: the input is an image (--input_nc)."
        ),
    )
    instance: bool = field(
        default=False,
        metadata=_arg(
            "Add each input's instance-id map (an I/ folder beside A/ and B/, or --column_instance) as a boundary "
            "channel (pix2pixHD's default; its --no_instance is this flag left off)."
        ),
    )
    column_instance: str = field(default="instance", metadata=_arg("Dataset column holding the instance maps."))
    contain_dontcare_label: bool = field(
        default=False,
        metadata=_arg(
            "The label maps hold one more class, index --label_nc (or 255), the 'don't care' pixels, fed as its own "
            "one-hot channel (SPADE's flag)."
        ),
    )
    preprocess: str = field(default="resize_and_crop", metadata=_arg("Training augmentation.", PREPROCESS_MODES))
    load_size: int = field(default=286, metadata=_arg("Resize images to this size before cropping."))
    crop_size: int = field(default=256, metadata=_arg("Random crop size: the training resolution."))
    no_flip: bool = field(default=False, metadata=_arg("Do not flip training pairs horizontally."))
    skip_bad_samples: bool = field(default=False, metadata=_arg("Skip and count unreadable pairs instead of failing."))
    max_train_samples: int | None = field(
        default=None, metadata=_arg("Train on the first N training pairs only (taken after the validation split).")
    )
    cache_dir: str | None = field(
        default=None, metadata=_arg("Where `datasets` caches Hub datasets (unset: its default, HF_DATASETS_CACHE).")
    )
    dataloader_num_workers: int = field(default=2, metadata=_arg("DataLoader worker processes per training process."))
    streaming: bool = field(
        default=False,
        metadata=_arg(
            "Read --dataset as a stream (Hub id, parquet files), nothing downloaded first; needs --max_train_steps."
        ),
    )
    shuffle_buffer: int = field(
        default=1000, metadata=_arg("--streaming: rows shuffled together per DataLoader worker (and the shard order).")
    )
    # networks
    netG: str = field(default="unet_256", metadata=_arg("Generator preset.", GENERATORS))
    netD: str = field(
        default="basic",
        metadata=_arg(
            "basic: 70x70 PatchGAN; n_layers: --n_layers_D; pixel: 1x1; image: whole image; multiscale: pix2pixHD's "
            "--num_D PatchGANs at halving scales.",
            DISCRIMINATORS,
        ),
    )
    n_layers_D: int = field(
        default=3, metadata=_arg("Discriminator depth when --netD n_layers; each scale's with --netD multiscale.")
    )
    num_D: int = field(default=2, metadata=_arg("Scales of --netD multiscale (pix2pixHD: 2, or 3 at 2048x1024)."))
    ngf: int = field(default=64, metadata=_arg("Generator filters in the first conv layer."))
    ndf: int = field(default=64, metadata=_arg("Discriminator filters in the first conv layer."))
    norm: str = field(
        default="batch",
        metadata=_arg("Normalisation layers (--netG spade: the parameter-free norm inside each SPADE).", NORMS),
    )
    norm_D: str | None = field(
        default=None,
        metadata=_arg(
            "The discriminator's normalisation; unset: --norm. spectralinstance: spectral norm on its convs and "
            "instance norm (SPADE's --norm_D).",
            DISCRIMINATOR_NORMS,
        ),
    )
    num_upsampling_layers: str = field(
        default="normal",
        metadata=_arg(
            "--netG spade: 5 (normal), 6 (more) or 7 (most) upsamplings from the lowest resolution (SPADE's flag).",
            UPSAMPLING_CHOICES,
        ),
    )
    spectral_norm_G: bool = field(default=False, metadata=_arg("--netG spade: spectral norm on G's convs (preset: on)"))
    no_spectral_norm_G: bool = field(default=False, metadata=_arg("No spectral norm on G's convs, even with a preset."))
    use_vae: bool = field(
        default=False,
        metadata=_arg(
            "--netG spade: train a style encoder with it (mu, log-variance of a --z_dim code, KL term): multi-modal "
            "outputs, a style picked by an image or a seed (SPADE's flag)."
        ),
    )
    z_dim: int = field(default=256, metadata=_arg("--use_vae: dimension of the style code."))
    spade_hidden: int = field(default=128, metadata=_arg("--netG spade: width of each SPADE's conv net (paper: 128)."))
    no_dropout: bool = field(default=False, metadata=_arg("No dropout in the generator."))
    init_type: str = field(default="normal", metadata=_arg("Weight initialisation.", INIT_TYPES))
    init_gain: float = field(default=0.02, metadata=_arg("Scale of the normal/xavier/orthogonal init."))
    init_from: str | None = field(
        default=None,
        metadata=_arg(
            "Fine-tune: start G (and D, when it has one) from this model (Hub id or folder, e.g. a converted one), "
            "with its architecture; architecture flags not given follow it, one given must match it."
        ),
    )
    # objective and optimisation
    gan_mode: str | None = field(
        default=None,
        metadata=_arg(
            "GAN objective; unset: lsgan with --netD multiscale (pix2pixHD's), vanilla otherwise (the paper's).",
            GAN_MODES,
        ),
    )
    lambda_l1: float = field(default=100.0, metadata=_arg("Weight of the L1 term in the generator loss."))
    lambda_gp: float = field(default=10.0, metadata=_arg("Gradient penalty weight (wgangp only)."))
    lambda_feat: float = field(
        default=10.0,
        metadata=_arg("Weight of pix2pixHD's feature-matching loss with --netD multiscale; 0 turns it off."),
    )
    lambda_vgg: float = field(
        default=0.0, metadata=_arg("Weight of pix2pixHD's VGG19 perceptual loss (it uses 10); needs --vgg_weights.")
    )
    vgg_weights: str | None = field(
        default=None,
        metadata=_arg(
            "VGG19 weights for --lambda_vgg: a .safetensors file of torchvision's vgg19 state dict, a folder "
            "holding model.safetensors, or a Hub repo id (e.g. timm/vgg19.tv_in1k)."
        ),
    )
    lambda_kl: float = field(
        default=0.05, metadata=_arg("--use_vae: weight of the KL term of the style code (SPADE's 0.05).")
    )
    niter_fix_global: int = field(
        default=0,
        metadata=_arg("--netG local: train only the local enhancer (not its global generator) for the first N epochs."),
    )
    lr: float = field(
        default=2e-4, metadata=_arg("Adam learning rate of both networks (with --TTUR: G's is half, D's twice it).")
    )
    TTUR: bool = field(
        default=False,
        metadata=_arg(
            "Two time-scale update rule (Heusel et al. 2017, as SPADE): G learns at --lr / 2, D at --lr * 2 "
            "(--preset spade: on)."
        ),
    )
    no_TTUR: bool = field(default=False, metadata=_arg("One learning rate, --lr, for both, even with a preset."))
    beta1: float = field(default=0.5, metadata=_arg("Adam beta1."))
    beta2: float = field(default=0.999, metadata=_arg("Adam beta2."))
    batch_size: int = field(default=1, metadata=_arg("Pairs per process per step."))
    gradient_accumulation_steps: int = field(default=1, metadata=_arg("Micro-batches accumulated per update."))
    n_epochs: int = field(default=100, metadata=_arg("Epochs at the initial learning rate."))
    n_epochs_decay: int = field(default=100, metadata=_arg("Epochs of learning-rate decay after --n_epochs."))
    lr_policy: str = field(default="linear", metadata=_arg("Learning-rate schedule.", LR_POLICIES))
    lr_decay_iters: int = field(default=50, metadata=_arg("Epochs between x0.1 steps (--lr_policy step)."))
    max_train_steps: int | None = field(
        default=None, metadata=_arg("Stop after this many updates (overrides the epoch count).")
    )
    seed: int = field(default=0, metadata=_arg("Seed of weights, shuffling, augmentation and dropout."))
    mixed_precision: str | None = field(
        default=None,
        metadata=_arg(
            "no|fp16|bf16; unset: the launcher's choice (accelerate launch --mixed_precision).", MIXED_PRECISION
        ),
    )
    no_fused_adam: bool = field(default=False, metadata=_arg("Use torch's default Adam, not the fused kernel."))
    no_winograd: bool = field(default=False, metadata=_arg("Run every conv directly, none by Winograd (CPU)."))
    no_allocator_tuning: bool = field(
        default=False, metadata=_arg("Leave glibc's allocator as it is (read by the command line, not by train()).")
    )
    plain_eager: bool = field(
        default=False,
        metadata=_arg(
            "All of --no_fused_adam, --no_winograd and --no_allocator_tuning: the plain eager loop, same maths."
        ),
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=_arg(
            "Recompute both networks' activations in the backward pass instead of keeping them: less memory at "
            "high resolution for about one more forward pass per step; same results."
        ),
    )
    # GPU speed switches, each off until measured (docs/performance.md)
    channels_last: bool = field(
        default=False, metadata=_arg("Networks and batches in channels_last memory format (GPU tensor cores).")
    )
    cudnn_benchmark: bool = field(
        default=False, metadata=_arg("Let cuDNN time its convolution algorithms once for the run's fixed sizes.")
    )
    tf32: bool = field(
        default=False, metadata=_arg("fp32 matmuls and convolutions on TF32 tensor cores (NVIDIA Ampere and later).")
    )
    compile: bool = field(
        default=False,
        metadata=_arg("torch.compile both networks (the compile time is printed after the first step)."),
    )
    compile_mode: str = field(
        default="default",
        metadata=_arg("With --compile: torch.compile's mode; reduce-overhead: CUDA graphs (CUDA).", COMPILE_MODES),
    )
    ddp_timeout: int = field(
        default=3600,
        metadata=_arg(
            "Seconds the processes of a multi-process run wait for each other (the main process alone loads the "
            "data, writes checkpoints and publishes)."
        ),
    )
    # output, checkpoints, logging
    output_dir: str = field(
        default="outputs/pix2pix", metadata=_arg("Model folder; also holds checkpoints/ and logs/.")
    )
    checkpointing_steps: int = field(default=500, metadata=_arg("Save a resumable state every N updates."))
    checkpoints_total_limit: int | None = field(default=3, metadata=_arg("Keep only the newest N checkpoints."))
    overwrite_output_dir: bool = field(
        default=False,
        metadata=_arg(
            "Start afresh in an --output_dir that holds another run (its checkpoints are deleted, its model "
            "files replaced at the end)."
        ),
    )
    resume_from_checkpoint: str | None = field(
        default=None, metadata=_arg("'latest' or a checkpoint folder to continue from.")
    )
    validation_steps: int = field(default=500, metadata=_arg("Validate (metrics + sample grid) every N updates."))
    num_validation_images: int = field(default=4, metadata=_arg("Rows of the input | output | target grid."))
    logging_steps: int = field(default=10, metadata=_arg("Log losses every N updates."))
    logging_dir: str | None = field(default=None, metadata=_arg("The tracker's log folder (unset: OUTPUT_DIR/logs)."))
    report_to: str = field(default="tensorboard", metadata=_arg("Experiment tracker (all work offline).", TRACKERS))
    tracker_project_name: str = field(default="pix2pix", metadata=_arg("Project/run name given to the tracker."))
    push_to_hub: bool = field(default=False, metadata=_arg("Upload the final model folder to --hub_model_id."))
    hub_model_id: str | None = field(default=None, metadata=_arg("Hub repo id, e.g. user/facades."))
    hub_private_repo: bool = field(default=False, metadata=_arg("Create the --hub_model_id repo as private."))
    license: str = field(
        default="other",
        metadata=_arg(
            "License in the model card (a Hub license id, e.g. mit, cc-by-4.0). A model inherits its data's terms; "
            "'other' adds a note saying so."
        ),
    )
    export_int8: bool = field(
        default=False,
        metadata=_arg(
            "Also write model.int8.onnx (static int8, calibrated on training inputs) into the model folder; "
            "refused, with the figure, when its outputs are below --int8_min_psnr from fp32's (needs the onnx extra)."
        ),
    )
    int8_min_psnr: float = field(
        default=DEFAULT_MIN_PSNR_DB, metadata=_arg("Quality gate of --export_int8: PSNR (dB) from the fp32 outputs.")
    )
    quick: bool = field(
        default=False, metadata=_arg("Small fast CPU run: unet_128 at 128x128, 400 steps (see docs/training.md).")
    )
    preset: str | None = field(
        default=None,
        metadata=_arg(
            "A paper's whole recipe; spade: GauGAN's networks, losses and optimiser (docs/semantic-synthesis.md). "
            "Each flag given explicitly wins over it.",
            PRESETS,
        ),
    )

    # The fields given explicitly, where known (``mark_given``); not a field, so no checkpoint, card or command line
    # holds it, and ``dataclasses.replace`` drops it (see ``given_fields``).
    _given = None

    def __post_init__(self) -> None:
        # --gan_mode unset: the discriminator's own recipe. Resolved here, so the checkpoint and the card record
        # the objective used (and dataclasses.replace keeps it, as it keeps any value given).
        if self.gan_mode is None:
            self.gan_mode = default_gan_mode(self.netD)

    def mark_given(self, names: Iterable[str]) -> None:
        """Record which fields were given explicitly, whatever their values (``config_from_args``: the flags that
        appeared on the command line)."""
        given = frozenset(names)
        unknown = sorted(given - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"Unknown training arguments {', '.join(unknown)}.")
        self._given = given

    def given_fields(self) -> frozenset[str]:
        """The fields the user set, which ``--init_from`` must not silently override.

        From the command line (``config_from_args``): every flag typed, even at its default value (``--ngf 64``),
        and none that only ``--quick`` set. Built in Python (``TrainingConfig(...)``, ``replace``): the fields whose
        value differs from the default (a keyword at its default value counts as unset), unless ``mark_given``
        recorded them.

        Returns:
            The field names.
        """
        if self._given is not None:
            return self._given
        defaults = {**asdict(TrainingConfig()), "gan_mode": default_gan_mode(self.netD)}
        return frozenset(name for name, value in asdict(self).items() if value != defaults[name])

    @property
    def multiscale(self) -> bool:
        """pix2pixHD's discriminator: per-scale GAN losses and, with ``lambda_feat``, feature matching."""
        return is_multiscale(self.netD)

    @property
    def feature_matching(self) -> bool:
        return self.multiscale and self.lambda_feat > 0

    @property
    def learning_rates(self) -> tuple[float, float]:
        """``(G's, D's)``: ``--lr`` for both; with TTUR (``--TTUR``, not ``--no_TTUR``) ``lr / 2`` and ``lr * 2``."""
        two_timescale = self.TTUR and not self.no_TTUR
        return (self.lr / 2, self.lr * 2) if two_timescale else (self.lr, self.lr)

    def check(self) -> None:
        """Refuse inconsistent arguments before any data or model work (``config_checks.check_config``).

        Raises:
            ConfigError: naming the flags to change. With ``--init_from``, ``check_shapes`` waits until the model's
                architecture is adopted (``base_model.adopt_architecture``).
        """
        check_config(self)

    def check_shapes(self) -> None:
        """The crop fits the resized image, and both networks fit the crop."""
        check_shapes(self)

    # The speed-ups, each with its own switch; --plain_eager turns them all off. Same maths either way.
    @property
    def fused_adam(self) -> bool:
        return not (self.no_fused_adam or self.plain_eager)

    @property
    def winograd(self) -> bool:
        return not (self.no_winograd or self.plain_eager)

    @property
    def allocator_tuning(self) -> bool:
        """Process-wide, so only entry points (``commands.train``) read it; ``train()`` never changes the process."""
        return not (self.no_allocator_tuning or self.plain_eager)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Rebuild from ``asdict`` output (a checkpoint's ``training_config.json``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown training arguments {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
        return cls(**values)


def default_gan_mode(net_d: str) -> str:
    """``--gan_mode`` left unset: LSGAN for pix2pixHD's multi-scale discriminator (its recipe), vanilla otherwise
    (the paper's)."""
    return "lsgan" if is_multiscale(net_d) else "vanilla"


def is_multiscale(net_d: str) -> bool:
    """Whether ``--netD net_d`` judges at several scales (pix2pixHD's: LSGAN and feature matching), as its class
    declares; an unknown name is not (``check`` refuses it)."""
    return net_d in DISCRIMINATOR_PRESETS and discriminator_class_of(net_d).multiscale


def fields_by_name() -> dict[str, dataclasses.Field]:
    """``TrainingConfig``'s fields by name (their metadata holds each flag's help and choices)."""
    return {f.name: f for f in fields(TrainingConfig)}
