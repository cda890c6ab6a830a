"""``pix2pix-hub space build OUT --model user/name --static``: a static Space that runs the model in the browser.

The folder is files only (the Hub's ``sdk: static``): ``index.html``, the page's JavaScript modules and stylesheet
(from ``spaces_app/static/``, shipped in the wheel as ``pix2pix_hub/space_app/static/``), ``space.json`` (what the
page knows of the model, written here from the model's own files), ``README.md`` (the Space's front matter) and
onnxruntime-web under ``ort/`` (``ort_web``: pinned, vendored, no CDN). The visitor's browser downloads the model's
ONNX graph from the model repo, at the commit the Space was built against, and keeps it in its Cache Storage.

``space.json`` holds: the generator's channels and size rules (``size_multiple``, ``min_size``, read from
``config.json`` by building the network on the meta device: no weights), ``pix2pix.json`` (direction, input and
output), the graphs the page may load with their sizes (``model.int8.onnx`` only where it is an int8 graph that
passed its quality gate, recorded in its metadata, and was made from the same weights as ``model.onnx``), the
largest image accepted (``images.reading.DEFAULT_MAX_PIXELS``) and the painter's classes and colours
(``images.palettes.FACADES`` for a facades model, ``images.labels.label_palette`` for a label-map model).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import HfApi, SpaceCardData, hf_hub_download

from ..constants import CONFIG_NAME, FINGERPRINT_KEY, INT8_ONNX_NAME, MODEL_INFO_NAME, ONNX_NAME
from ..fileio import atomic_directory, check_output_apart, check_replaceable, write_json, write_text
from ..images.labels import label_palette
from ..images.palettes import FACADES
from ..images.reading import DEFAULT_MAX_PIXELS
from ..inference.quantize import REPORT_KEY, graph_facts, int8_quality_problem, int8_report
from ..inference.style import style_dim
from ..models.hub import read_config
from ..models.registry import GENERATOR_CLASSES
from .ids import is_hub_id
from .model_info import ModelInfo
from .ort_web import ORT_WEB_FILES, ORT_WEB_VERSION, WASM_FILES, WEBGPU_FILES, ort_web_files
from .space_build import push_space

PAGE_FILES = ("index.html", "app.js", "pix2pix.js", "style.css")
CONFIG_FILE = "space.json"
ORT_FOLDER = "ort"
STATIC_TAGS = ["pix2pix", "image-to-image", "gan", "pix2pix-hub", "onnxruntime-web", "static"]
# What a static Space may set (the Hub allows these three): cross-origin isolation, so onnxruntime-web can run
# threads (SharedArrayBuffer); the model, fetched with CORS from huggingface.co, is allowed under it.
ISOLATION_HEADERS = {
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "cross-origin",
}


def page_source() -> Path:
    """Where the page's files are: inside the installed package (wheel), or ``spaces_app/static/`` of a source
    checkout."""
    package = Path(__file__).resolve().parents[1]  # pix2pix_hub/: this module is in its hub/ folder
    for candidate in (package / "space_app" / "static", package.parent / "spaces_app" / "static"):
        if all((candidate / name).is_file() for name in PAGE_FILES):
            return candidate
    raise FileNotFoundError(
        f"the static page ({', '.join(PAGE_FILES)}) is neither in {package / 'space_app' / 'static'} nor in a "
        "source checkout; reinstall pix2pix-hub."
    )


def generator_facts(config_path: Path) -> dict[str, Any]:
    """The generator's channels and size rules, from its ``config.json`` (built on the meta device: no weights)."""
    config = read_config(config_path)
    name = config.get("_class_name", "UNetGenerator")
    if name not in GENERATOR_CLASSES:
        raise ValueError(f"{config_path} describes a {name!r}; a generator is one of {', '.join(GENERATOR_CLASSES)}.")
    with torch.device("meta"):
        generator = GENERATOR_CLASSES[name](**{k: v for k, v in config.items() if not k.startswith("_")})
    return {
        "class": name,
        "in_channels": int(generator.in_channels),
        "out_channels": int(generator.out_channels),
        "size_multiple": int(generator.size_multiple),
        "min_size": int(generator.min_size),
        "style_dim": style_dim(generator),  # a style encoder's code: the page feeds the zero code, Pix2Pix's default
    }


def int8_problem(int8_path: Path, fp32_path: Path | None) -> str | None:
    """Why the page must not load ``int8_path`` (one clause), or None: it must be an int8 graph, past its gate,
    made from the same weights as the fp32 graph (their recorded fingerprints) where that one is at hand."""
    metadata, kind = graph_facts(int8_path)
    if kind != "int8":
        return "it is not an int8 graph"
    problem = int8_quality_problem(int8_report(int8_path) if REPORT_KEY in metadata else None)
    if problem is None and fp32_path is not None:
        recorded = metadata.get(FINGERPRINT_KEY)
        if recorded is not None and recorded != graph_facts(fp32_path)[0].get(FINGERPRINT_KEY):
            problem = "it was made from other weights than model.onnx"
    return problem


def graph_entries(sizes: dict[str, int], int8_path: Path | None, fp32_path: Path | None) -> dict[str, Any]:
    """The graphs the page may load (``fp32`` always, ``int8`` when usable), their sizes, and the default."""
    if ONNX_NAME not in sizes:
        raise FileNotFoundError(
            f"the model has no {ONNX_NAME}, which the page runs: save it with Pix2Pix.save_pretrained (model "
            "folders ship it where onnx is installed) or pix2pix-hub export-onnx, and upload it."
        )
    graphs: dict[str, Any] = {"fp32": {"file": ONNX_NAME, "bytes": sizes[ONNX_NAME]}}
    note = None
    if int8_path is not None:
        note = int8_problem(int8_path, fp32_path)
        if note is None:
            report = int8_report(int8_path)
            graphs["int8"] = {
                "file": INT8_ONNX_NAME,
                "bytes": sizes[INT8_ONNX_NAME],
                "psnr_db": report["psnr_db"],
                "min_psnr_db": report["min_psnr_db"],
            }
    default = "int8" if "int8" in graphs else "fp32"
    return {"graphs": graphs, "default_graph": default, "int8_note": note}


def painter(info: ModelInfo, generator: dict[str, Any]) -> dict[str, Any] | None:
    """What the page's painter paints: a label-map model's classes, the facade classes for a facades model whose
    input is the label map, or nothing (an image model of another kind)."""
    if info.label_nc:
        colors = label_palette(info.label_nc).tolist()
        classes = [{"name": f"class {k}", "color": color} for k, color in enumerate(colors)]
        return {"kind": "classes", "classes": classes, "fill": 0}
    facades = info.dataset is None or "facades" in info.dataset.lower()
    takes_labels = info.input is None or "label" in info.input.lower()
    if generator["in_channels"] == 3 and facades and takes_labels:
        classes = [{"name": name, "color": color} for name, color in zip(FACADES.names, FACADES.colors.tolist())]
        return {"kind": "facades", "classes": classes, "fill": FACADES.names.index("wall")}
    return None


def page_config(
    model_id: str, model_base: str, folder: Path, sizes: dict[str, int], *, int8_path: Path | None
) -> dict[str, Any]:
    """``space.json``: everything the page knows of the model (see the module docstring)."""
    info = ModelInfo.load(folder)
    generator = generator_facts(folder / CONFIG_NAME)
    fp32_path = folder / ONNX_NAME if (folder / ONNX_NAME).is_file() else None
    return {
        "model_id": model_id,
        "model_base": model_base.rstrip("/"),
        **graph_entries(sizes, int8_path, fp32_path),
        "info": info.to_dict(),
        "generator": generator,
        "max_pixels": DEFAULT_MAX_PIXELS,
        "size_mode": "pad",
        "painter": painter(info, generator),
        "onnxruntime_web": {"version": ORT_WEB_VERSION, "wasm": list(WASM_FILES), "webgpu": list(WEBGPU_FILES)},
    }


def local_model(folder: Path) -> tuple[Path, dict[str, int], Path | None]:
    """A model folder on disk: the folder, its ONNX files' sizes, its int8 file (or None)."""
    if not (folder / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_NAME}: it is not a folder written by save_pretrained().")
    sizes = {name: (folder / name).stat().st_size for name in (ONNX_NAME, INT8_ONNX_NAME) if (folder / name).is_file()}
    return folder, sizes, folder / INT8_ONNX_NAME if INT8_ONNX_NAME in sizes else None


def hub_model(model_id: str, token: str | None) -> tuple[Path, dict[str, int], Path | None, str]:
    """A Hub model: its small files downloaded (and ``model.int8.onnx``, whose metadata holds its gate), its ONNX
    files' sizes and the commit they were read at (the page loads that commit's files)."""
    api = HfApi(token=token)
    repo = api.model_info(model_id, files_metadata=True)
    sizes = {s.rfilename: s.size for s in repo.siblings or [] if s.rfilename in (ONNX_NAME, INT8_ONNX_NAME)}
    config = Path(hf_hub_download(model_id, CONFIG_NAME, revision=repo.sha, token=token))
    names = {s.rfilename for s in repo.siblings or []}
    if MODEL_INFO_NAME in names:
        hf_hub_download(model_id, MODEL_INFO_NAME, revision=repo.sha, token=token)
    int8 = None
    if INT8_ONNX_NAME in sizes:
        int8 = Path(hf_hub_download(model_id, INT8_ONNX_NAME, revision=repo.sha, token=token))
    return config.parent, sizes, int8, repo.sha


def readme_text(model_id: str, config: dict[str, Any], *, license: str | None) -> str:
    """The static Space's card: front matter (``sdk: static``, the model, cross-origin isolation headers), then
    what the visitor downloads."""
    name = model_id.split("/")[-1]
    data = SpaceCardData(
        title=f"pix2pix {name} in the browser",
        sdk="static",
        app_file="index.html",
        license=license or "other",
        models=[model_id],
        tags=STATIC_TAGS,
        emoji="🏛️",
        colorFrom="blue",
        colorTo="yellow",
        pinned=False,
        short_description=f"pix2pix {name}, run in your browser"[:60],
        custom_headers=ISOLATION_HEADERS,
    )
    graph = config["graphs"][config["default_graph"]]
    body = f"""# pix2pix: {name}, in your browser

Image-to-image translation with [pix2pix](https://arxiv.org/abs/1611.07004) (Isola et al., CVPR 2017): the model
[{model_id}](https://huggingface.co/{model_id}) runs on your own machine with onnxruntime-web {ORT_WEB_VERSION}
(WebGPU where the browser has it, else WebAssembly SIMD). The page downloads `{graph["file"]}`
({graph["bytes"] / 1e6:.1f} MB) once and keeps it in the browser's cache.

Built by `pix2pix-hub space build OUT --model {model_id} --static` (pix2pix-hub's `docs/space.md`).
"""
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def build_static_space(
    out: str | os.PathLike,
    model_id: str,
    *,
    model_dir: str | os.PathLike | None = None,
    model_base: str | None = None,
    push: str | None = None,
    license: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a static Space folder for the Hub model ``model_id`` at ``out``, whole or not at all.

    Args:
        out: the folder to write; a non-empty one needs ``overwrite=True``; one that is, holds or lies inside
            ``model_dir`` is refused (``fileio.OutputOverlap``).
        model_id: the Hub model the page runs (``user/name``).
        model_dir: a local copy of that model to read its facts from, instead of the Hub.
        model_base: the URL the page downloads the model's files from (default: the model repo on the Hub, at the
            commit read, or at ``main`` with ``model_dir``).
        push: ``"user/space"``: also create that Space (static SDK) and upload the folder.
        license, private, token: the Space card's license; the Space repo's visibility and the Hub token.
        overwrite: replace a non-empty ``out``.

    Returns:
        The folder's path.
    """
    if not is_hub_id(model_id, namespaced=True):
        raise ValueError(f"model_id {model_id!r} must be a Hub model id (user/name): the page downloads it.")
    target = Path(out).expanduser()
    check_output_apart(target, {"model_dir": model_dir}, what="out")  # replaced whole: never over the model
    check_replaceable(target, overwrite=overwrite, what="out")
    source = page_source()
    if model_dir is not None:
        folder, sizes, int8 = local_model(Path(model_dir).expanduser())
        revision = "main"
    else:
        folder, sizes, int8, revision = hub_model(model_id, token)
    base = model_base or f"https://huggingface.co/{model_id}/resolve/{revision}"
    config = page_config(model_id, base, folder, sizes, int8_path=int8)
    runtime = ort_web_files()
    with atomic_directory(target) as staging:
        for name in PAGE_FILES:
            shutil.copyfile(source / name, staging / name)
        (staging / ORT_FOLDER).mkdir()
        for name in ORT_WEB_FILES:
            shutil.copyfile(runtime / name, staging / ORT_FOLDER / name)
        write_json(staging / CONFIG_FILE, config)
        write_text(staging / "README.md", readme_text(model_id, config, license=license))
    if push:
        push_space(target, push, sdk="static", private=private, token=token)
    return target
