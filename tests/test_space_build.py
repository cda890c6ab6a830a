"""``build_space``: a Space folder the Hub can build (front matter, requirements that do not need the package
index, the app files, an entry point serving the model), its errors, the push, the command; and (slow) the whole
flow from a freshly built wheel: install it into a new virtual environment, build the Space there, start it from
its folder and translate an image through gradio_client."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest
from fresh_wheel import assert_imported_from, build_wheel, offline_env, run, venv_with_this_environment
from huggingface_hub import SpaceCard
from onnx import TensorProto, helper
from packaging.requirements import Requirement
from PIL import Image

from pix2pix_hub import ModelInfo, Pix2Pix, unet_128
from pix2pix_hub.cli import main
from pix2pix_hub.fileio import OutputOverlap
from pix2pix_hub.hub import ort_web
from pix2pix_hub.hub.ort_web import ORT_WEB_FILES
from pix2pix_hub.hub.space_build import APP_FILES, ENTRY_POINT, build_space
from pix2pix_hub.hub.static_space import ISOLATION_HEADERS, PAGE_FILES, build_static_space
from pix2pix_hub.images.labels import label_palette
from pix2pix_hub.images.palettes import FACADES
from pix2pix_hub.images.reading import DEFAULT_MAX_PIXELS
from pix2pix_hub.inference.style import style_dim
from pix2pix_hub.models.spade import SPADEGenerator

gradio = pytest.importorskip("gradio")

REPO = Path(__file__).resolve().parents[1]
GIT_URL = "git+https://github.com/someone/pix2pix-hub@v0.1.0"


def fake_wheel(folder: Path, name: str = "pix2pix_hub", version: str = "0.1.0", metadata: str | None = None) -> Path:
    """A wheel holding only its metadata: ``Name``/``Version`` from ``metadata`` (default: the file name's)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            f"{name}-{version}.dist-info/METADATA",
            metadata or f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        )
        archive.writestr(f"{name}-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    return wheel


def written_requirements(folder: Path) -> list[Requirement]:
    """requirements.txt as pip reads it: every line but comments and options must be a valid requirement."""
    lines = (folder / "requirements.txt").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith(("#", "-"))]


def test_the_folder_has_the_app_and_a_front_matter_the_hub_reads(tmp_path):
    folder = build_space(tmp_path / "space", "alice/facades", git_url=GIT_URL)
    data = SpaceCard.load(folder / "README.md").data
    assert data.sdk == "gradio" and data.sdk_version == gradio.__version__
    assert data.app_file == ENTRY_POINT and (folder / data.app_file).is_file()
    assert data.models == ["alice/facades"] and data.preload_from_hub == ["alice/facades"]
    assert data.suggested_hardware == "cpu-basic"
    assert {"pix2pix", "image-to-image"} <= set(data.tags) and data.license == "other"
    assert len(data.short_description) <= 60
    for name in APP_FILES:  # the app itself, unchanged
        assert (folder / name).read_bytes() == (REPO / "spaces_app" / name).read_bytes()
    requirements = (folder / "requirements.txt").read_text().splitlines()
    assert f"pix2pix-hub @ {GIT_URL}" in requirements
    assert not any(line.startswith(("pix2pix-hub>", "pix2pix-hub=", "gradio")) for line in requirements)
    assert "os.environ.setdefault(\"MODEL_ID\", 'alice/facades')" in (folder / ENTRY_POINT).read_text()


def test_a_wheel_is_copied_in_and_required_by_its_url_in_the_space(tmp_path):
    wheel = fake_wheel(tmp_path / "dist")
    folder = build_space(tmp_path / "space", "alice/facades", wheel=wheel, space_id="alice/facades-demo")
    assert (folder / wheel.name).read_bytes() == wheel.read_bytes()
    url = f"https://huggingface.co/spaces/alice/facades-demo/resolve/main/{wheel.name}"
    assert f"pix2pix-hub @ {url}" in (folder / "requirements.txt").read_text().splitlines()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, "exactly one of wheel"),
        ({"git_url": GIT_URL, "wheel": "x.whl"}, ValueError, "exactly one of wheel"),
        ({"git_url": "git+https://github.com/someone/pix2pix-hub"}, ValueError, "must be pinned"),
        ({"wheel": "missing.whl", "space_id": "a/b"}, FileNotFoundError, "no wheel at missing.whl"),
        ({"wheel": "WHEEL"}, ValueError, "needs the Space id"),
    ],
)
def test_where_the_package_comes_from_must_work_on_a_space(tmp_path, kwargs, error, message):
    if kwargs.get("wheel") == "WHEEL":
        kwargs["wheel"] = fake_wheel(tmp_path / "dist")
    with pytest.raises(error, match=message):
        build_space(tmp_path / "space", "alice/facades", **kwargs)
    assert not (tmp_path / "space").exists()


def test_only_a_pix2pix_hub_wheel_whose_metadata_matches_its_name_is_accepted(tmp_path, capsys):
    def refused(wheel: Path, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            build_space(tmp_path / "space", "alice/facades", wheel=wheel, space_id="alice/demo")
        assert not (tmp_path / "space").exists()

    refused(fake_wheel(tmp_path / "other", "requests", "2.32.0"), r"a wheel of 'requests', not of pix2pix-hub")
    renamed = tmp_path / "renamed" / "pix2pix_hub-2.32.0-py3-none-any.whl"
    renamed.parent.mkdir()
    shutil.copyfile(tmp_path / "other" / "requests-2.32.0-py3-none-any.whl", renamed)
    refused(renamed, r"a wheel of 'requests', not of pix2pix-hub")
    metadata = "Metadata-Version: 2.1\nName: pix2pix-hub\nVersion: 0.1.0\n"
    refused(
        fake_wheel(tmp_path / "bumped", version="0.2.0", metadata=metadata),
        r"file name says pix2pix-hub 0\.2\.0, its metadata pix2pix-hub 0\.1\.0",
    )
    broken = tmp_path / "broken" / "pix2pix_hub-0.1.0-py3-none-any.whl"
    broken.parent.mkdir()
    broken.write_bytes(b"PK not really a zip")
    refused(broken, r"not a readable wheel")
    (tmp_path / "notes.whl").write_text("hello")
    refused(tmp_path / "notes.whl", r"not a wheel file name")
    (tmp_path / "dist.txt").write_text("hello")
    refused(tmp_path / "dist.txt", r"not a wheel file name")
    argv = ["space", "build", str(tmp_path / "space"), "--model", "alice/facades", "--space_id", "alice/demo"]
    assert run_command(*argv, "--wheel", str(tmp_path / "other" / "requests-2.32.0-py3-none-any.whl")) == 2
    error = capsys.readouterr().err.strip()
    assert "not of pix2pix-hub" in error and "\n" not in error
    folder = build_space(tmp_path / "space", "alice/facades", wheel=fake_wheel(tmp_path / "good"), space_id="a/b")
    assert "pix2pix-hub" in [requirement.name for requirement in written_requirements(folder)]


@pytest.mark.parametrize(
    "suffix",
    [" --no-deps", "\nrequests", " ; python_version < '3'", " #egg=x"],
)
def test_a_git_url_must_make_one_valid_requirement_line(tmp_path, capsys, suffix):
    with pytest.raises(ValueError, match="git_url"):
        build_space(tmp_path / "space", "alice/facades", git_url=GIT_URL + suffix)
    assert not (tmp_path / "space").exists()
    argv = ["space", "build", str(tmp_path / "space"), "--model", "alice/facades", "--git_url", GIT_URL + suffix]
    assert run_command(*argv) == 2
    assert "git_url" in capsys.readouterr().err and not (tmp_path / "space").exists()


def test_the_written_requirements_parse_and_name_pix2pix_hub(tmp_path):
    for url in (GIT_URL, GIT_URL + "#egg=pix2pix-hub", "git+ssh://git@github.com/someone/pix2pix-hub.git@0a1b2c3"):
        folder = build_space(tmp_path / "space", "alice/facades", git_url=url, overwrite=True)
        requirements = written_requirements(folder)
        assert [r.url for r in requirements if r.name == "pix2pix-hub"] == [url]


def test_the_model_must_be_a_hub_id_and_a_full_out_needs_overwrite(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(ValueError, match="Hub model id"):
        build_space(tmp_path / "space", str(tmp_path / "model"), git_url=GIT_URL)
    (tmp_path / "space").mkdir()
    (tmp_path / "space" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        build_space(tmp_path / "space", "alice/facades", git_url=GIT_URL)
    build_space(tmp_path / "space", "alice/facades", git_url=GIT_URL, overwrite=True)
    assert not (tmp_path / "space" / "notes.txt").exists()


class FakeHfApi:
    """Stands in for HfApi: records the Space it creates; uploads land in ``uploads``."""

    uploads: Path
    created: dict = {}

    def __init__(self, token=None):
        pass

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.created = {"repo_id": repo_id, **kwargs}
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, repo_id, folder_path, **kwargs):
        shutil.copytree(folder_path, self.uploads)
        return SimpleNamespace(commit_url=f"https://hub.local/spaces/{repo_id}/commit/1")


def test_push_creates_a_gradio_space_and_uploads_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("pix2pix_hub.hub.space_build.HfApi", FakeHfApi)
    FakeHfApi.uploads = tmp_path / "pushed"
    wheel = fake_wheel(tmp_path / "dist")
    build_space(tmp_path / "space", "alice/facades", wheel=wheel, push="alice/demo")
    assert FakeHfApi.created == {
        "repo_id": "alice/demo",
        "repo_type": "space",
        "space_sdk": "gradio",
        "private": None,
        "exist_ok": True,
    }
    assert sorted(p.name for p in FakeHfApi.uploads.iterdir()) == sorted(
        [*APP_FILES, ENTRY_POINT, "README.md", "requirements.txt", wheel.name]
    )
    assert "spaces/alice/demo/resolve/main/" in (FakeHfApi.uploads / "requirements.txt").read_text()


def run_command(*argv: str) -> int:
    return main(list(argv))


def test_space_build_command(tmp_path, capsys):
    assert run_command("space", "build", str(tmp_path / "s"), "--model", "alice/facades", "--git_url", GIT_URL) == 0
    assert "Wrote the Space folder" in capsys.readouterr().out
    assert run_command("space", "build", str(tmp_path / "t"), "--model", "alice/facades") == 2
    assert "exactly one of wheel" in capsys.readouterr().err


# ----- the static Space (tests/test_space_static.py runs its page in chromium) ---------------------------------------
@pytest.fixture
def fake_ort_web(tmp_path, monkeypatch) -> Path:
    """onnxruntime-web's files as stand-ins, so these tests neither download nor need the registry."""
    folder = tmp_path / "ort-web"
    folder.mkdir()
    for name in ORT_WEB_FILES:
        (folder / name).write_text(f"stand-in for {name}")
    monkeypatch.setattr("pix2pix_hub.hub.static_space.ort_web_files", lambda: folder)
    return folder


def model_with_graph(folder: Path, generator, info: ModelInfo | None = None) -> Path:
    """A model folder whose model.onnx is a one-node stand-in (the build reads its size and metadata, not its
    operators: exporting the generator would take seconds)."""
    Pix2Pix(generator, None, info=info).save_pretrained(folder, onnx=False)
    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "stand-in", [value], [output])
    onnx.save(helper.make_model(graph), folder / "model.onnx")
    return folder


def test_a_static_space_has_the_page_its_front_matter_and_the_models_facts(tmp_path, fake_ort_web):
    info = ModelInfo.for_training("facades", "BtoA", 256)
    model = model_with_graph(tmp_path / "model", unet_128(ngf=8), info)
    shutil.copyfile(model / "model.onnx", model / "model.int8.onnx")  # an fp32 graph under the int8 name
    folder = build_static_space(tmp_path / "space", "alice/facades", model_dir=model)
    card = SpaceCard.load(folder / "README.md").data
    assert card.sdk == "static" and (folder / card.app_file).is_file() and card.models == ["alice/facades"]
    assert card.custom_headers == ISOLATION_HEADERS and "image-to-image" in card.tags
    assert all((folder / name).is_file() for name in PAGE_FILES)
    assert all((folder / "ort" / name).read_bytes() == (fake_ort_web / name).read_bytes() for name in ORT_WEB_FILES)
    config = json.loads((folder / "space.json").read_text())
    generator = unet_128(ngf=8)
    assert config["generator"] == {
        "class": type(generator).__name__,
        "in_channels": generator.in_channels,
        "out_channels": generator.out_channels,
        "size_multiple": generator.size_multiple,
        "min_size": generator.min_size,
        "style_dim": 0,
    }
    assert config["info"] == info.to_dict() and config["max_pixels"] == DEFAULT_MAX_PIXELS
    assert config["model_base"] == "https://huggingface.co/alice/facades/resolve/main"
    assert config["graphs"] == {"fp32": {"file": "model.onnx", "bytes": (model / "model.onnx").stat().st_size}}
    assert config["default_graph"] == "fp32" and config["int8_note"] == "it is not an int8 graph"
    painter = config["painter"]
    assert painter["kind"] == "facades" and [c["name"] for c in painter["classes"]] == list(FACADES.names)
    assert [c["color"] for c in painter["classes"]] == FACADES.colors.tolist()


def test_a_label_map_model_paints_its_classes_and_an_image_model_of_another_kind_has_no_painter(tmp_path, fake_ort_web):
    labels = ModelInfo(direction="AtoB", label_nc=5)
    model = model_with_graph(tmp_path / "m", unet_128(ngf=8, in_channels=5), labels)
    config = json.loads((build_static_space(tmp_path / "s", "a/b", model_dir=model) / "space.json").read_text())
    assert config["painter"]["kind"] == "classes"
    assert [c["color"] for c in config["painter"]["classes"]] == label_palette(5).tolist()
    maps = ModelInfo(direction="AtoB", input="map", output="aerial photo", dataset="maps")
    model = model_with_graph(tmp_path / "n", unet_128(ngf=8), maps)
    config = json.loads((build_static_space(tmp_path / "t", "a/c", model_dir=model) / "space.json").read_text())
    assert config["painter"] is None


def test_a_style_encoders_code_length_reaches_the_page(tmp_path, fake_ort_web):
    generator = SPADEGenerator(in_channels=6, ngf=4, use_vae=True, z_dim=8, spade_hidden=8)
    info = ModelInfo(direction="AtoB", label_nc=5, contain_dontcare_label=True)
    model = model_with_graph(tmp_path / "m", generator, info)
    config = json.loads((build_static_space(tmp_path / "s", "a/b", model_dir=model) / "space.json").read_text())
    assert config["generator"]["style_dim"] == style_dim(generator) == 8  # the page feeds the zero code
    assert config["info"]["contain_dontcare_label"] is True and config["generator"]["class"] == "SPADEGenerator"


def test_a_static_space_needs_the_models_onnx_graph(tmp_path, fake_ort_web, capsys):
    model = Pix2Pix(unet_128(ngf=8), None).save_pretrained(tmp_path / "model", onnx=False)
    out = tmp_path / "space"
    assert run_command("space", "build", str(out), "--model", "a/b", "--static", "--model_dir", str(model)) == 2
    assert "has no model.onnx" in capsys.readouterr().err and not out.exists()
    argv = ("space", "build", str(out), "--model", "a/b")
    assert run_command(*argv, "--static", "--git_url", GIT_URL) == 2
    assert "for the Gradio Space" in capsys.readouterr().err
    assert run_command(*argv, "--git_url", GIT_URL, "--model_dir", str(model)) == 2
    assert "add --static" in capsys.readouterr().err
    with pytest.raises(OutputOverlap):  # replacing the folder would delete the model
        build_static_space(model / "space", "a/b", model_dir=model, overwrite=True)
    assert (model / "config.json").is_file()


def test_from_the_hub_the_page_loads_the_commit_read_and_the_space_is_pushed_static(
    tmp_path, monkeypatch, fake_ort_web
):
    repo = model_with_graph(tmp_path / "repo", unet_128(ngf=8), ModelInfo.for_training("facades", "BtoA", 256))
    sha = "0123456789abcdef0123456789abcdef01234567"

    class HubModelApi(FakeHfApi):
        def model_info(self, model_id, files_metadata=False):
            files = [SimpleNamespace(rfilename=p.name, size=p.stat().st_size) for p in repo.iterdir()]
            return SimpleNamespace(sha=sha, siblings=files)

    asked = []
    monkeypatch.setattr("pix2pix_hub.hub.static_space.HfApi", HubModelApi)
    monkeypatch.setattr("pix2pix_hub.hub.space_build.HfApi", HubModelApi)  # the push (space_build.push_space)
    monkeypatch.setattr(
        "pix2pix_hub.hub.static_space.hf_hub_download",
        lambda model_id, name, revision, token: asked.append((model_id, name, revision)) or str(repo / name),
    )
    FakeHfApi.uploads = tmp_path / "pushed"
    build_static_space(tmp_path / "space", "alice/facades", push="alice/browser")
    config = json.loads((FakeHfApi.uploads / "space.json").read_text())
    assert config["model_base"] == f"https://huggingface.co/alice/facades/resolve/{sha}"
    assert config["info"]["direction"] == "BtoA" and config["graphs"]["fp32"]["bytes"] > 0
    assert {name for _, name, revision in asked if revision == sha} == {"config.json", "pix2pix.json"}
    assert FakeHfApi.created["space_sdk"] == "static" and FakeHfApi.created["repo_id"] == "alice/browser"


def test_onnxruntime_web_is_checked_against_its_pinned_integrity_and_cached(tmp_path, monkeypatch):
    files = {f"package/dist/{name}": name.encode() for name in ORT_WEB_FILES if name != "package.json"}
    files["package/package.json"] = b'{"license": "MIT"}'
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    tarball = buffer.getvalue()
    downloads = []
    monkeypatch.delenv("NPM_CONFIG_REGISTRY", raising=False)
    monkeypatch.setattr(ort_web, "download", lambda url: downloads.append(url) or tarball)
    with pytest.raises(ValueError, match="does not match its pinned sha512 integrity"):
        ort_web.ort_web_files(tmp_path / "cache")
    assert not (tmp_path / "cache" / ort_web.ORT_WEB_VERSION).exists()
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    monkeypatch.setattr(ort_web, "ORT_WEB_INTEGRITY", f"sha512-{digest}")
    folder = ort_web.ort_web_files(tmp_path / "cache")
    assert (folder / "ort.wasm.min.mjs").read_bytes() == b"ort.wasm.min.mjs"
    assert ort_web.ort_web_files(tmp_path / "cache") == folder and len(downloads) == 2  # the second from the cache
    assert downloads[0] == f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{ort_web.ORT_WEB_VERSION}.tgz"
    monkeypatch.setenv("NPM_CONFIG_REGISTRY", "https://npm.mirror.example/")
    assert ort_web.tarball_url("1.0.0") == "https://npm.mirror.example/onnxruntime-web/-/onnxruntime-web-1.0.0.tgz"


# ----- the whole flow, from a fresh wheel ----------------------------------------------------------------------------
def cached_model(hf_home: Path, repo_id: str) -> None:
    """A tiny model in the Hugging Face cache, as the Space's ``preload_from_hub`` leaves it."""
    repo_dir = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    Pix2Pix(unet_128(ngf=8), None).save_pretrained(repo_dir / "snapshots" / revision)


@pytest.mark.slow
def test_a_space_built_from_a_fresh_wheel_serves_the_model_in_a_new_virtual_environment(tmp_path):
    gradio_client = pytest.importorskip("gradio_client")
    sys.path.insert(0, str(REPO / "spaces_app"))
    from local_server import free_port, wait_until_up

    wheel = build_wheel(tmp_path / "dist")
    venv, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    # This environment's torch and gradio are reused (no network); pix2pix-hub comes from the wheel only.
    python = venv_with_this_environment(venv, cwd=work, env=offline_env())
    env = offline_env(HF_HOME=str(tmp_path / "hf"), GRADIO_ANALYTICS_ENABLED="False")
    run(python, "-m", "pip", "install", "--no-deps", "--ignore-installed", wheel, cwd=work, env=env)
    build = f"build_space('space', 'me/tiny', wheel={str(wheel)!r}, space_id='me/demo')"
    run(python, "-c", f"from pix2pix_hub.hub.space_build import build_space; {build}", cwd=work, env=env)
    space = work / "space"
    assert_imported_from(python, venv, cwd=space, env=env)
    cached_model(tmp_path / "hf", "me/tiny")

    port = free_port()
    app_env = {**env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        app = subprocess.Popen([str(python), ENTRY_POINT], cwd=space, env=app_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(url, app, log, timeout=240)
            Image.new("RGB", (90, 60), (0, 48, 254)).save(tmp_path / "labels.png")
            client = gradio_client.Client(url, verbose=False)
            output = client.predict(gradio_client.handle_file(str(tmp_path / "labels.png")), api_name="/translate")
            assert Image.open(output).size == (90, 60)
            with urllib.request.urlopen(url + "/config", timeout=30) as response:
                assert "`me/tiny`" in response.read().decode()  # start.py's default: the model it was built for
        finally:
            app.terminate()
            app.wait(timeout=30)
