"""Accepted values and file names: the one list of each, read by the models, data, training, the CLI and the card.

Imports nothing from the package, so any layer can read it.
"""

from __future__ import annotations

from huggingface_hub import constants as hub_constants

# ----- values users choose ----------------------------------------------------------------------------------------
NORMS = ("batch", "instance", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
GAN_MODES = ("vanilla", "lsgan", "wgangp", "hinge")
LR_POLICIES = ("linear", "step", "cosine", "constant")
DIRECTIONS = ("AtoB", "BtoA")
PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
TRACKERS = ("tensorboard", "trackio", "wandb", "none")
MIXED_PRECISION = ("no", "fp16", "bf16")
# torch.compile modes of --compile_mode; "reduce-overhead" adds CUDA graphs (CUDA only).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
SIZE_MODES = ("pad", "resize")
BACKENDS = ("auto", "onnxruntime", "torch")
# The generator's number format on onnxruntime: "auto" uses a shipped int8 graph where the CPU makes it faster.
PRECISIONS = ("auto", "int8", "fp32")
CHANNEL_COUNTS = (1, 3, 4)

# ----- files of a model folder (see pipeline.py) ------------------------------------------------------------------
WEIGHTS_NAME = hub_constants.SAFETENSORS_SINGLE_FILE  # "model.safetensors"
CONFIG_NAME = hub_constants.CONFIG_NAME  # "config.json"
CARD_NAME = "README.md"
MODEL_INFO_NAME = "pix2pix.json"  # direction, dataset, resolution...: model_info.ModelInfo
DISCRIMINATOR_DIR = "discriminator"
SAMPLES_NAME = "samples.png"
ONNX_NAME = "model.onnx"  # optional: the generator as an fp32 ONNX graph, so a Space need not export it at start
INT8_ONNX_NAME = "model.int8.onnx"  # optional: the generator quantized to int8 (quantize.py), with its PSNR
# ONNX metadata key of both files: a hash of the weights they were made from (onnx_engine.weights_fingerprint), so a
# graph left beside other weights is never run.
FINGERPRINT_KEY = "weights_fingerprint"
# Weight files that need unpickling: refused everywhere, never downloaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

PAPER_URL = "https://arxiv.org/abs/1611.07004"


def check_choice(name: str, value: object, choices: tuple) -> None:
    """Raise a ValueError naming the argument and the accepted values."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {', '.join(map(str, choices))}.")
