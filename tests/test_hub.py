"""Saving and loading through the Hub mixin: safetensors round trips, offline cache, HTTP mirror, push, refusals."""

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
import yaml
from hub_mirror import HubMirror, run_python
from huggingface_hub.utils import filter_repo_objects
from PIL import Image

from pix2pix_hub import PatchDiscriminator, Pix2Pix, ResnetGenerator, UNetGenerator, fileio, unet_128
from pix2pix_hub.inference.model_folder import ALLOWED_PATTERNS
from pix2pix_hub.inference.pipeline import push_folder
from pix2pix_hub.models import DISCRIMINATOR_CLASSES, WeightsNotFoundError

LOAD_AND_TRANSLATE = """
import numpy as np, torch
from pix2pix_hub import Pix2Pix
pix2pix = Pix2Pix.from_pretrained("some-user/some-repo")
pix2pix.onnx_engine.wait_until_ready()  # onnxruntime, as the model that wrote the expected outputs
x = torch.from_numpy(np.load({inputs!r}))
np.save({outputs!r}, pix2pix.translate_tensor(x).numpy())
print(type(pix2pix.generator).__name__, pix2pix.discriminator is not None)
"""


def perturb_batch_norm(model: torch.nn.Module) -> None:
    """Give running stats non-default values so a round trip that dropped buffers would show."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize(
    ("model", "shape"),
    [
        (UNetGenerator(num_downs=5, ngf=8, in_channels=1, out_channels=3, norm="batch"), (2, 1, 64, 64)),
        (ResnetGenerator(ngf=8, n_blocks=2, norm="instance"), (2, 3, 32, 32)),
        (PatchDiscriminator(in_channels=6, ndf=8, n_layers=2), (2, 6, 64, 64)),
    ],
    ids=["unet", "resnet", "discriminator"],
)
def test_save_then_load_reproduces_outputs_exactly(tmp_path, model, shape):
    perturb_batch_norm(model)
    model.eval()
    x = torch.randn(shape)
    with torch.no_grad():
        expected = model(x)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == type(model).__name__
    loaded = type(model).from_pretrained(tmp_path)
    assert not loaded.training  # from_pretrained returns eval mode
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)


def test_config_carries_every_constructor_argument(tmp_path):
    UNetGenerator(in_channels=4, out_channels=1, num_downs=6, ngf=16, norm="instance", dropout=0.2).save_pretrained(
        tmp_path
    )
    loaded = UNetGenerator.from_pretrained(tmp_path)  # no flags needed
    config = json.loads((tmp_path / "config.json").read_text())
    assert {k: config[k] for k in ("in_channels", "out_channels", "num_downs", "ngf", "norm", "dropout")} == {
        "in_channels": 4,
        "out_channels": 1,
        "num_downs": 6,
        "ngf": 16,
        "norm": "instance",
        "dropout": 0.2,
    }
    assert loaded(torch.zeros(1, 4, 64, 64)).shape == (1, 1, 64, 64)


def test_loading_a_discriminator_as_a_generator_fails_loudly(tmp_path):
    PatchDiscriminator(ndf=8).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="describes a PatchDiscriminator, not a UNetGenerator"):
        UNetGenerator.from_pretrained(tmp_path)


def test_config_with_unknown_keys_is_refused(tmp_path):
    UNetGenerator(num_downs=3, ngf=4).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "use_attention": True}))
    with pytest.raises(ValueError, match=r"config.json has keys UNetGenerator does not accept: use_attention"):
        UNetGenerator.from_pretrained(tmp_path)


def test_mismatched_weights_are_refused_strictly(tmp_path):
    UNetGenerator(num_downs=3, ngf=4).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "ngf": 8}))
    with pytest.raises(RuntimeError):
        UNetGenerator.from_pretrained(tmp_path)


def test_pickle_only_repo_is_refused_without_unpickling(tmp_path):
    generator = UNetGenerator(num_downs=3, ngf=4)
    generator.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(generator.state_dict(), tmp_path / "pytorch_model.bin")
    for load in (UNetGenerator.from_pretrained, Pix2Pix.from_pretrained):
        with pytest.raises(WeightsNotFoundError, match=r"only pickled weights \(pytorch_model.bin\).*arbitrary code"):
            load(tmp_path)


def test_folder_without_weights_or_config_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        Pix2Pix.from_pretrained(tmp_path)
    UNetGenerator(num_downs=3, ngf=4).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError, match="has no model.safetensors"):
        Pix2Pix.from_pretrained(tmp_path)


def tiny_pix2pix() -> Pix2Pix:
    generator = unet_128(ngf=8)
    discriminator = PatchDiscriminator(in_channels=6, ndf=8)
    perturb_batch_norm(generator)
    return Pix2Pix(generator.eval(), discriminator.eval())


def test_pix2pix_repo_is_also_a_plain_generator_repo(tmp_path):
    pix2pix = tiny_pix2pix()
    pix2pix.save_pretrained(tmp_path / "repo")
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    generator = UNetGenerator.from_pretrained(tmp_path / "repo")
    with torch.no_grad():
        assert torch.equal(generator(x), pix2pix.generator(x))
    again = Pix2Pix.from_pretrained(tmp_path / "repo")
    assert again.discriminator is not None and again.onnx_engine.wait_until_ready()  # onnxruntime on both sides
    assert torch.equal(again.translate_tensor(x), pix2pix.translate_tensor(x))
    assert Pix2Pix.from_pretrained(tmp_path / "repo", load_discriminator=False).discriminator is None


def test_model_card_has_real_metadata(tmp_path):
    from PIL import Image

    from pix2pix_hub.hub.model_card import render_model_card

    pix2pix = tiny_pix2pix()
    card = render_model_card(
        pix2pix,
        repo_id="me/facades",
        dataset="huggan/facades",
        direction="BtoA",
        training_config={"lambda_l1": 100.0, "lr": 0.0002},
        metrics={"l1": 0.21, "psnr": 13.2, "ssim": 0.31},
        sample_grid="samples.png",
    )
    pix2pix.save_pretrained(tmp_path, card=card, sample_grid=Image.new("RGB", (30, 10)))
    text = (tmp_path / "README.md").read_text()
    metadata = yaml.safe_load(text.split("---")[1])
    assert metadata["library_name"] == "pix2pix-hub"
    assert metadata["pipeline_tag"] == "image-to-image"
    assert metadata["datasets"] == ["huggan/facades"]
    assert metadata["metrics"] == ["l1", "psnr", "ssim"]
    # The old keyword arguments still make the machine-readable record (with the sides facades is known to have).
    assert metadata["pix2pix"] == {
        "dataset": "huggan/facades",
        "dataset_on_hub": True,
        "direction": "BtoA",
        "input": "CMP facade labels",
        "output": "photo",
    }
    assert "pix2pix" in metadata["tags"] and metadata["license"]
    assert 'Pix2Pix.from_pretrained("me/facades")' in text
    assert "| lambda_l1 | `100.0` |" in text and "| psnr | 13.2000 |" in text
    assert "![samples](samples.png)" in text and (tmp_path / "samples.png").is_file()


def test_model_card_snippet_runs(tmp_path):
    from PIL import Image

    pix2pix = tiny_pix2pix()
    pix2pix.save_pretrained(tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text()
    snippet = card.split("```python\n")[1].split("```")[0]
    snippet = snippet.replace('"user/pix2pix-model"', repr(str(tmp_path / "model")))
    Image.new("RGB", (200, 150), (90, 30, 200)).save(tmp_path / "input.png")
    run_python(snippet, cwd=tmp_path)
    assert Image.open(tmp_path / "output.png").size == (200, 150)


def write_offline_cache(hf_home: Path, repo_id: str, folder: Path) -> None:
    """A Hugging Face cache entry made by hand: refs/main points at a snapshot holding the files."""
    repo_dir = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    shutil.copytree(folder, repo_dir / "snapshots" / revision)


@pytest.fixture
def saved_repo(tmp_path):
    pix2pix = tiny_pix2pix()
    pix2pix.save_pretrained(tmp_path / "repo")
    inputs = torch.rand(2, 3, 96, 160) * 2 - 1
    import numpy as np

    np.save(tmp_path / "inputs.npy", inputs.numpy())
    return pix2pix, tmp_path, pix2pix.translate_tensor(inputs)


def assert_subprocess_translation(tmp_path: Path, expected: torch.Tensor, **env: str) -> str:
    import numpy as np

    code = LOAD_AND_TRANSLATE.format(inputs=str(tmp_path / "inputs.npy"), outputs=str(tmp_path / "outputs.npy"))
    result = run_python(code, **env)
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "outputs.npy")), expected)
    return result.stdout


def test_hub_id_loads_offline_from_a_populated_cache(saved_repo):
    _, tmp_path, expected = saved_repo
    write_offline_cache(tmp_path / "hf", "some-user/some-repo", tmp_path / "repo")
    stdout = assert_subprocess_translation(tmp_path, expected, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    assert "UNetGenerator True" in stdout


def test_hub_id_offline_and_not_cached_fails_clearly(tmp_path):
    code = "from pix2pix_hub import Pix2Pix; Pix2Pix.from_pretrained('some-user/missing')"
    with pytest.raises(AssertionError, match="LocalEntryNotFoundError|offline"):
        run_python(code, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")


@pytest.mark.slow
def test_hub_id_downloads_over_http_from_a_local_mirror_and_never_fetches_pickles(saved_repo):
    pix2pix, tmp_path, expected = saved_repo
    torch.save({}, tmp_path / "repo" / "pytorch_model.bin")  # a booby trap: must never be downloaded
    with HubMirror(tmp_path / "hub") as hub:
        hub.add_model("some-user/some-repo", tmp_path / "repo")
        stdout = assert_subprocess_translation(
            tmp_path, expected, HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf")
        )
    assert "UNetGenerator True" in stdout
    downloaded = {p.name for p in (tmp_path / "hf" / "hub").rglob("*") if p.is_file()}
    assert "model.safetensors" in downloaded and "pytorch_model.bin" not in downloaded


class FakeHfApi:
    """Stands in for HfApi: uploads land in a local folder that the test then serves."""

    uploads: dict[str, Path] = {}
    calls: list[dict] = []

    def __init__(self, token=None):
        self.token = token

    def create_repo(self, repo_id, private=None, exist_ok=False, **kwargs):
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def create_branch(self, repo_id, branch, exist_ok=False, **kwargs):
        self.calls.append({"create_branch": branch})

    def upload_folder(self, repo_id, folder_path, delete_patterns=None, create_pr=False, **kwargs):
        """As the Hub: the folder's files (those matching ``allow_patterns``) go up; with ``delete_patterns="*"``
        the repo's other files go, ``.gitattributes`` stays."""
        self.calls.append({"delete_patterns": delete_patterns, "create_pr": create_pr, **kwargs})
        folder_path = Path(folder_path)
        files = [p.relative_to(folder_path).as_posix() for p in folder_path.rglob("*") if p.is_file()]
        uploaded = set(filter_repo_objects(files, allow_patterns=kwargs.get("allow_patterns")))
        destination = self.uploads[repo_id]
        if delete_patterns == "*" and destination.is_dir():
            for path in sorted(destination.rglob("*"), reverse=True):
                relative = path.relative_to(destination)
                if path.is_file() and relative.name != ".gitattributes" and relative.as_posix() not in uploaded:
                    path.unlink()
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
        for name in uploaded:
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder_path / name, destination / name)
        url = f"https://hub.local/{repo_id}/discussions/1" if create_pr else None
        return type("CommitInfo", (), {"commit_url": f"https://hub.local/{repo_id}/commit/1", "pr_url": url})()


@pytest.mark.slow
def test_push_to_hub_uploads_a_repo_that_loads_back_over_http(saved_repo, monkeypatch):
    pix2pix, tmp_path, expected = saved_repo
    monkeypatch.setattr("pix2pix_hub.inference.pipeline.HfApi", FakeHfApi)
    FakeHfApi.uploads = {"some-user/some-repo": tmp_path / "pushed"}
    url = pix2pix.push_to_hub("some-user/some-repo")
    assert url.endswith("/commit/1")
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in (tmp_path / "pushed").iterdir()}
    assert not list((tmp_path / "pushed").rglob("*.bin"))
    with HubMirror(tmp_path / "hub") as hub:
        hub.add_model("some-user/some-repo", tmp_path / "pushed")
        assert_subprocess_translation(tmp_path, expected, HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf"))


def test_single_model_push_goes_through_the_mixin(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.hub_mixin.HfApi", FakeHfApi)
    FakeHfApi.uploads = {"me/d": tmp_path / "pushed"}
    PatchDiscriminator(ndf=8).push_to_hub("me/d")
    assert PatchDiscriminator.from_pretrained(tmp_path / "pushed").n_layers == 3


def test_import_does_not_pull_training_or_ui_libraries():
    code = "import sys, pix2pix_hub; print(sorted(m for m in ('gradio', 'datasets', 'accelerate') if m in sys.modules))"
    assert run_python(code).stdout.strip() == "[]"


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_saved_folders_get_the_permissions_of_a_normal_write(tmp_path, mask, file_mode, dir_mode):
    previous = os.umask(mask)
    try:
        tiny_pix2pix().save_pretrained(tmp_path / "repo", sample_grid=Image.new("RGB", (6, 2)))
    finally:
        os.umask(previous)
    paths = [tmp_path / "repo", *(tmp_path / "repo").rglob("*")]
    assert {p.name for p in paths} >= {"model.safetensors", "pix2pix.json", "README.md", "samples.png", "discriminator"}
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == (dir_mode if path.is_dir() else file_mode), path


def test_a_failed_save_leaves_the_old_folder_untouched_and_no_temporary(tmp_path, monkeypatch):
    tiny_pix2pix().save_pretrained(tmp_path / "repo")
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "repo").rglob("*") if p.is_file()}

    def broken_save(self, save_directory, **kwargs):
        Path(save_directory).mkdir()
        (Path(save_directory) / "model.safetensors").write_bytes(b"half")  # a partly written folder
        raise OSError("disk full")

    monkeypatch.setattr(PatchDiscriminator, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        tiny_pix2pix().save_pretrained(tmp_path / "repo")
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "repo").rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no staging folder left beside it
    assert not [p for p in tmp_path.rglob(f"{fileio.TEMP_MARK}*")]


def test_networks_are_rebuilt_through_the_registry(tmp_path, monkeypatch):
    class WideDiscriminator(PatchDiscriminator):
        pass

    monkeypatch.setitem(DISCRIMINATOR_CLASSES, "WideDiscriminator", WideDiscriminator)
    Pix2Pix(unet_128(ngf=8), WideDiscriminator(ndf=8)).save_pretrained(tmp_path / "repo")
    assert type(Pix2Pix.from_pretrained(tmp_path / "repo").discriminator) is WideDiscriminator
    monkeypatch.delitem(DISCRIMINATOR_CLASSES, "WideDiscriminator")
    with pytest.raises(ValueError, match=r"describes a 'WideDiscriminator'; a discriminator is one of"):
        Pix2Pix.from_pretrained(tmp_path / "repo")


def test_allowed_patterns_never_match_a_pickle_in_any_folder():
    from huggingface_hub.utils import filter_repo_objects

    files = ["config.json", "pix2pix.json", "model.safetensors", "README.md", "samples.png"]
    files += ["discriminator/config.json", "discriminator/model.safetensors"]
    pickles = ["pytorch_model.bin", "discriminator/pytorch_model.bin", "discriminator/model.pt", "weights.pkl"]
    assert sorted(filter_repo_objects(files + pickles, allow_patterns=ALLOWED_PATTERNS)) == sorted(files)


def test_a_second_push_removes_stale_files_keeps_gitattributes_and_names_the_repo(tmp_path, monkeypatch):
    monkeypatch.setattr("pix2pix_hub.inference.pipeline.HfApi", FakeHfApi)
    FakeHfApi.uploads, FakeHfApi.calls = {"alice/x": tmp_path / "remote"}, []
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    torch.manual_seed(0)
    Pix2Pix(unet_128(ngf=8), PatchDiscriminator(ndf=8)).push_to_hub("alice/x")
    assert (tmp_path / "remote" / "discriminator" / "model.safetensors").is_file()
    url = Pix2Pix(unet_128(ngf=8)).push_to_hub("alice/x", branch="v2", create_pr=True)
    assert url == "https://hub.local/alice/x/discussions/1"
    assert not (tmp_path / "remote" / "discriminator").exists()
    assert (tmp_path / "remote" / ".gitattributes").is_file()
    assert {"create_branch": "v2"} in FakeHfApi.calls
    assert FakeHfApi.calls[-1]["revision"] == "v2" and FakeHfApi.calls[-1]["create_pr"] is True
    card = (tmp_path / "remote" / "README.md").read_text()
    assert 'from_pretrained("alice/x")' in card and "user/pix2pix-model" not in card


def test_push_folder_uploads_a_written_folder_once_and_only_the_files_asked_for(tmp_path, monkeypatch):
    monkeypatch.setattr("pix2pix_hub.inference.pipeline.HfApi", FakeHfApi)
    FakeHfApi.uploads, FakeHfApi.calls = {"alice/run": tmp_path / "remote"}, []
    (tmp_path / "remote").mkdir()
    (tmp_path / "remote" / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (tmp_path / "remote" / "stale.png").write_bytes(b"an earlier push")
    run = tiny_pix2pix().save_pretrained(tmp_path / "run")  # a training run's output_dir holds more than the model
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "model.safetensors").write_bytes(b"a checkpoint")

    def written_again(*args, **kwargs):
        raise AssertionError("push_folder serialised the model again")

    monkeypatch.setattr(Pix2Pix, "save_pretrained", written_again)
    monkeypatch.setattr(UNetGenerator, "save_pretrained", written_again)
    model_files = ["config.json", "model.safetensors", "pix2pix.json", "README.md", "discriminator/*"]
    url = push_folder(run, "alice/run", branch="v1", create_pr=True, allow_patterns=model_files)
    assert url == "https://hub.local/alice/run/discussions/1"
    pushed = {p.relative_to(tmp_path / "remote").as_posix() for p in (tmp_path / "remote").rglob("*") if p.is_file()}
    expected = {"config.json", "model.safetensors", "pix2pix.json", "README.md", ".gitattributes"}
    assert expected <= pushed and "discriminator/model.safetensors" in pushed
    assert not any(name.startswith("checkpoints/") or name == "stale.png" for name in pushed)
    assert {"create_branch": "v1"} in FakeHfApi.calls and FakeHfApi.calls[-1]["revision"] == "v1"
    assert (tmp_path / "remote" / "model.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()
