"""onnxruntime-web, vendored into a static Space: the npm package at a pinned version, checked and cached.

The package's tarball comes from the npm registry (or the mirror ``$NPM_CONFIG_REGISTRY`` names; ``npm`` is not
needed), is checked against the ``sha512`` integrity npm records for that version, and the few files the page loads
are kept in ``$XDG_CACHE_HOME/pix2pix_hub/onnxruntime-web/<version>/`` (``~/.cache/...``), so a second build reads
them from there. The version is pinned here, with its integrity: a build never takes whatever the registry serves today.

The files (``ORT_WEB_FILES``): the WebAssembly build (``ort.wasm.min.mjs`` and its SIMD, threaded ``.wasm``, which
also runs single-threaded where the page is not cross-origin isolated) and the WebGPU build (``ort.webgpu.min.mjs``
with its ``asyncify`` ``.wasm``, which runs its CPU fallback too). A visitor's browser loads one of the two.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import urllib.request
from pathlib import Path

from ..fileio import write_bytes

ORT_WEB_VERSION = "1.31.1"
ORT_WEB_INTEGRITY = "sha512-5GeH+bWQ+HxM10z7erGlsWqryrwMbSvm/1tkIsKTT48g0fI19VXVVC435t4t7VsPdSQeS7NmuZPXrQ73k82URw=="
NPM_REGISTRY = "https://registry.npmjs.org"
ORT_WEB_PATH = "/onnxruntime-web/-/onnxruntime-web-{version}.tgz"
WASM_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
WEBGPU_FILES = ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
ORT_WEB_FILES = (*WASM_FILES, *WEBGPU_FILES, "package.json")  # package.json: its name, version, licence (MIT)
DOWNLOAD_TIMEOUT = 120


def ort_web_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pix2pix_hub/onnxruntime-web`` (``~/.cache/pix2pix_hub/onnxruntime-web``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pix2pix_hub" / "onnxruntime-web"


def tarball_url(version: str = ORT_WEB_VERSION) -> str:
    """The package's tarball on the npm registry, or on the mirror ``$NPM_CONFIG_REGISTRY`` names (npm's own
    setting): the integrity check makes any source safe."""
    registry = os.environ.get("NPM_CONFIG_REGISTRY") or NPM_REGISTRY
    return registry.rstrip("/") + ORT_WEB_PATH.format(version=version)


def check_integrity(data: bytes, integrity: str, what: str) -> None:
    """``ValueError`` unless ``data`` matches the npm ``integrity`` string (``sha512-<base64>``)."""
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode("ascii")
    if digest != expected:
        raise ValueError(
            f"{what} does not match its pinned {algorithm} integrity (a damaged or altered download): delete it "
            "and build again."
        )


def package_files(tarball: bytes, names: tuple[str, ...] = ORT_WEB_FILES) -> dict[str, bytes]:
    """The files ``names`` of an npm tarball (``package/dist/<name>``; ``package/package.json``)."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for member in archive.getmembers():
            parts = member.name.split("/")
            name = parts[-1]
            wanted = parts[1:] in (["dist", name], ["package.json"])
            if member.isfile() and name in names and wanted and name not in found:
                found[name] = archive.extractfile(member).read()
    missing = [name for name in names if name not in found]
    if missing:
        raise ValueError(f"the onnxruntime-web package lacks {', '.join(missing)}: pin another version.")
    return found


def download(url: str, timeout: float = DOWNLOAD_TIMEOUT) -> bytes:
    """The bytes at ``url`` (the npm registry)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def ort_web_files(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding ``ORT_WEB_FILES`` of onnxruntime-web ``ORT_WEB_VERSION``, downloaded and checked the
    first time, read from the cache after.

    Args:
        cache_dir: where the versions are kept (default ``ort_web_cache_dir()``).

    Returns:
        ``<cache_dir>/<version>``, holding every file of ``ORT_WEB_FILES``.

    Raises:
        RuntimeError: the registry cannot be reached and nothing is cached.
        ValueError: the tarball fails its integrity check, or lacks a file.
    """
    folder = Path(cache_dir or ort_web_cache_dir()) / ORT_WEB_VERSION
    if all((folder / name).is_file() for name in ORT_WEB_FILES):
        return folder
    url = tarball_url()
    try:
        tarball = download(url)
    except OSError as error:
        raise RuntimeError(
            f"could not download onnxruntime-web {ORT_WEB_VERSION} from {url} ({error}); a static Space vendors it, "
            f"so the build needs the npm registry once (then it is kept in {folder})."
        ) from None
    check_integrity(tarball, ORT_WEB_INTEGRITY, url)
    for name, data in package_files(tarball).items():
        write_bytes(folder / name, data)  # each file atomic: a stopped download never leaves a half file
    return folder
