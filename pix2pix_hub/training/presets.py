"""``--preset``: a paper's whole recipe in one flag, each value overridable by a flag given explicitly.

``spade`` is GauGAN's (Park et al., CVPR 2019, "Semantic Image Synthesis with Spatially-Adaptive Normalization",
section 4 and appendix A): the SPADE generator with spectral norm, pix2pixHD's multi-scale discriminator with
spectral norm + instance norm and 4 layers a scale, the hinge loss, feature matching (10) and, when VGG weights are
given, the perceptual loss (10), no L1 term, Adam (0, 0.9) and the two time-scale update rule (G at ``lr / 2``, D
at ``lr * 2``). docs/semantic-synthesis.md maps each value to SPADE's own flag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..constants import NORMS

if TYPE_CHECKING:
    from .config import TrainingConfig

# The recipes --preset names.
PRESETS = ("spade",)
# SPADE's generator depths (5, 6, 7 upsamplings) and the discriminator norms: --norm's, or spectral norm + instance.
UPSAMPLING_CHOICES = ("normal", "more", "most")
DISCRIMINATOR_NORMS = (*NORMS, "spectralinstance")

SPADE_RECIPE: dict[str, Any] = {
    "netG": "spade",
    "spectral_norm_G": True,
    "netD": "multiscale",
    "num_D": 2,
    "n_layers_D": 4,
    "norm_D": "spectralinstance",
    "gan_mode": "hinge",
    "lambda_l1": 0.0,  # the paper's objective has no L1 term
    "lambda_feat": 10.0,
    "lr": 2e-4,
    "TTUR": True,
    "beta1": 0.0,
    "beta2": 0.9,
}
VGG_WEIGHT = 10.0  # the perceptual loss's weight, set only where --vgg_weights gives it weights


def preset_values(name: str, vgg_weights: str | None = None) -> dict[str, Any]:
    """The fields ``--preset name`` sets; with ``vgg_weights`` also ``lambda_vgg`` (nothing is downloaded by
    itself, so without weights the recipe goes without the perceptual loss, and says so)."""
    if name != "spade":
        raise ValueError(f"--preset {name!r} is not known; choose spade.")
    values = dict(SPADE_RECIPE)
    if vgg_weights:
        values["lambda_vgg"] = VGG_WEIGHT
    return values


def preset_summary(config: TrainingConfig) -> str | None:
    """The start-up line of a run with ``--preset``: what it set, what the flags given instead chose; None
    without a preset."""
    if not config.preset:
        return None
    given = config.given_fields() - {"preset"}
    values = preset_values(config.preset, config.vgg_weights)
    set_here = [f"--{name} {_shown(getattr(config, name))}" for name in values if name not in given]
    kept = [f"--{name} {_shown(getattr(config, name))}" for name in values if name in given]
    lr_g, lr_d = config.learning_rates
    line = f"--preset {config.preset} set {', '.join(set_here)} (learning rates: G {lr_g:g}, D {lr_d:g})"
    if kept:
        line += f"; given instead: {', '.join(kept)}"
    if "lambda_vgg" not in values:
        line += "; no VGG loss (the paper's weight 10 needs --vgg_weights)"
    return line + "."


def _shown(value: Any) -> str:
    return (
        ("on" if value else "off")
        if isinstance(value, bool)
        else f"{value:g}"
        if isinstance(value, float)
        else str(value)
    )


def generator_options(config: TrainingConfig) -> dict[str, Any]:
    """``--netG spade``'s constructor options beyond the common ones (none for the other generators)."""
    if config.netG != "spade":
        return {}
    return {
        "num_upsampling_layers": config.num_upsampling_layers,
        "use_vae": config.use_vae,
        "z_dim": config.z_dim,
        "spade_hidden": config.spade_hidden,
        "spectral_norm": config.spectral_norm_G and not config.no_spectral_norm_G,
    }
