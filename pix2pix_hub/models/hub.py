"""``HubModel``: the PyTorchModelHubMixin base of every pix2pix network, hardened for safe loading.

What it adds to the mixin (see ../shared/notes/verified-stack.md for the traps it closes):
- ``config.json`` also records ``_class_name``, so loading a discriminator into a generator fails loudly;
- unknown config keys are an error, not silently dropped;
- weights load with ``strict=True`` and only from ``model.safetensors``; pickled weights are refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError
from safetensors.torch import load_model
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..constants import CONFIG_NAME, PAPER_URL, PICKLE_SUFFIXES, WEIGHTS_NAME
from ..fileio import write_bytes, write_json


class WeightsNotFoundError(FileNotFoundError):
    """A model folder or repo has no ``model.safetensors`` (perhaps only refused pickle weights)."""


def pickle_refusal(location: str, pickles: list[str]) -> str:
    names = ", ".join(sorted(pickles)) or "pytorch_model.bin"
    return (
        f"{location} holds no {WEIGHTS_NAME}, only pickled weights ({names}). pix2pix_hub loads safetensors "
        "only: unpickling a downloaded file can run arbitrary code. If these are the authors' checkpoints "
        "(latest_net_G.pth from junyanz/pytorch-CycleGAN-and-pix2pix), convert them: `pix2pix-hub convert "
        "latest_net_G.pth OUT [--discriminator latest_net_D.pth] [--direction BtoA]`."
    )


def read_config(path: Path) -> dict[str, Any]:
    """A ``config.json`` as a dict; ``ValueError`` naming the file when it is not a JSON object."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); re-save the model.") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object (the network's constructor arguments).")
    return config


def resolve_weights(model_id: str, **download_kwargs: Any) -> str:
    """Return a local path to ``model.safetensors`` of a folder or Hub repo, refusing pickle-only repos."""
    if os.path.isdir(model_id):
        path = os.path.join(model_id, WEIGHTS_NAME)
        if os.path.isfile(path):
            return path
        pickles = [name for name in os.listdir(model_id) if name.endswith(PICKLE_SUFFIXES)]
        if pickles:
            raise WeightsNotFoundError(pickle_refusal(f"Folder {model_id}", pickles))
        raise WeightsNotFoundError(
            f"Folder {model_id} has no {WEIGHTS_NAME}. Point to a folder written by save_pretrained()."
        )
    try:
        return hf_hub_download(repo_id=model_id, filename=WEIGHTS_NAME, **download_kwargs)
    except EntryNotFoundError as error:
        raise WeightsNotFoundError(pickle_refusal(f"Hub repo {model_id}", [])) from error


class HubModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pix2pix-hub",
    paper_url=PAPER_URL,
    pipeline_tag="image-to-image",
    license="mit",
    tags=["pix2pix", "image-to-image", "gan"],
):
    """Base class: an ``nn.Module`` whose constructor arguments are its config.json."""

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (what ``config.json`` holds, without ``_class_name``): a copy."""
        return dict(getattr(self, "_hub_mixin_config", None) or {})

    def _save_pretrained(self, save_directory: Path) -> None:
        # Serialised in memory and written through fileio: safetensors' own file writer makes files owner-only
        # (0600) whatever the umask. The bytes are what save_model writes (these networks share no tensors).
        tensors = {name: tensor.contiguous() for name, tensor in self.state_dict().items()}
        write_bytes(save_directory / WEIGHTS_NAME, safetensors_bytes(tensors))
        write_json(save_directory / CONFIG_NAME, {**self.config, "_class_name": type(self).__name__})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> HubModel:
        """The mixin's loader (a local folder or a Hub id), with an error that names a damaged ``config.json``."""
        folder = Path(pretrained_model_name_or_path)
        if (folder / CONFIG_NAME).is_file():
            read_config(folder / CONFIG_NAME)  # the mixin's own json.load would not say which file
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:  # a Hub repo's file, read from the cache
            raise ValueError(f"{pretrained_model_name_or_path}/{CONFIG_NAME} is not valid JSON ({error}).") from None

    @classmethod
    def check_config(cls, config: dict[str, Any] | None, source: str) -> None:
        """Refuse configs of another class or with keys this class does not take."""
        if config is None:
            raise FileNotFoundError(f"{source} has no {CONFIG_NAME}; cannot rebuild {cls.__name__}.")
        saved_class = config.get("_class_name")
        if saved_class is not None and saved_class != cls.__name__:
            raise ValueError(
                f"{source}/{CONFIG_NAME} describes a {saved_class}, not a {cls.__name__}: "
                f"load it with {saved_class}.from_pretrained()."
            )
        accepted = set(cls._hub_mixin_init_parameters) - {"self"}
        unknown = sorted(key for key in config if not key.startswith("_") and key not in accepted)
        if unknown:
            raise ValueError(
                f"{source}/{CONFIG_NAME} has keys {cls.__name__} does not accept: {', '.join(unknown)}. "
                f"Accepted keys: {', '.join(sorted(accepted))}."
            )

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None = None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> HubModel:
        cls.check_config(config, model_id)
        weights = resolve_weights(
            model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        model = cls(**model_kwargs)
        load_model(model, weights, strict=strict, device=str(torch.device(map_location)))
        return model.eval()
