"""The authors' checkpoints (junyanz/pytorch-CycleGAN-and-pix2pix): reading, architecture inference, parity.

Parity is checked against ../shared/data/jz/ (checkpoints, inputs and outputs made by the authors' own code); the
rest uses state_dicts in the authors' layout made here from our networks, so it runs without that folder.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pix2pix_hub import PatchDiscriminator, Pix2Pix, ResnetGenerator, UNetGenerator
from pix2pix_hub.constants import MODEL_INFO_NAME, PICKLE_SUFFIXES
from pix2pix_hub.hub.authors import (
    build_from_authors,
    convert_authors_checkpoint,
    file_sha256,
    load_authors_checkpoint,
    load_authors_networks,
    read_authors_state_dict,
)
from pix2pix_hub.hub.authors_layout import (
    AuthorsCheckpointError,
    authors_discriminator_layout,
    authors_generator_layout,
    unet_modules,
)

JZ = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "jz"
MANIFEST = json.loads((JZ / "manifest.json").read_text()) if (JZ / "manifest.json").is_file() else []
needs_jz = pytest.mark.skipif(not MANIFEST, reason=f"the authors' checkpoints are not in {JZ}")
TOLERANCE = 1e-5  # issue 14: the authors' outputs within float rounding


# ----- state_dicts in the authors' layout, made from our networks ------------------------------------------------
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights, biases and batch-norm statistics, so a wrong mapping cannot hide behind zeros and ones."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.randn(value.shape, generator=generator) * 0.2)
                if name.endswith("running_var"):
                    value.abs_().add_(0.5)
    return model.eval()


def output_convs(model: nn.Module) -> list[nn.Module]:
    """The convs the authors give a bias whatever the norm."""
    if isinstance(model, UNetGenerator):
        return [model.decoders[-1][1]]
    if isinstance(model, ResnetGenerator):
        return [model.layers[-2]]
    return [model.layers[0]] if model.n_layers == 0 else [model.layers[0], model.layers[-1]]


def their_module(model: nn.Module, module: str) -> str:
    if isinstance(model, UNetGenerator):
        return unet_modules(model.num_downs)[module]
    if isinstance(model, ResnetGenerator):
        return module.replace("layers.", "model.", 1).replace(".block.", ".conv_block.")
    return module.replace("layers.", "net." if model.n_layers == 0 else "model.", 1)


def in_authors_layout(model: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """``model``'s weights under the authors' names, without the conv biases their layout lacks (which are set to
    zero in ``model``, so that it computes what the authors' network would)."""
    norm = model.config["norm"]
    kept = {id(conv) for conv in output_convs(model)}
    state_dict = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.bias is not None:
            if norm != "instance" and id(module) not in kept:
                with torch.no_grad():
                    module.bias.zero_()
                module.register_parameter("bias", None)  # drop it from the state_dict below
        for key, value in module.named_parameters(recurse=False):
            state_dict[f"{prefix}{their_module(model, name)}.{key}"] = value.detach().clone()
        for key, value in module.named_buffers(recurse=False):
            state_dict[f"{prefix}{their_module(model, name)}.{key}"] = value.detach().clone()
    return state_dict


def authors_checkpoint(model: nn.Module, path: Path, prefix: str = "") -> Path:
    """Write ``model`` (randomised) as the authors' save_networks would; returns the path. ``model`` is changed."""
    torch.save(in_authors_layout(model, prefix), path)
    return path


def outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


# ----- parity with the authors' own outputs -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    """Each generator fixture converted to a model folder; the discriminator goes with the U-Net (3 + 3 channels)."""
    folders = {}
    discriminator = next(entry for entry in MANIFEST if entry["kind"] == "D")
    for entry in MANIFEST:
        if entry["kind"] == "G":
            paired = JZ / discriminator["weights"] if entry["netG"].startswith("unet") else None
            folder = tmp_path_factory.mktemp("converted") / entry["name"]
            convert_authors_checkpoint(JZ / entry["weights"], folder, direction="BtoA", discriminator_path=paired)
            folders[entry["name"]] = folder
            if paired is not None:
                folders[discriminator["name"]] = folder
    return folders


def fixture_arrays(entry: dict) -> tuple[torch.Tensor, torch.Tensor]:
    arrays = np.load(JZ / entry["arrays"])
    assert entry["mode"] == "eval"
    return torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])


@needs_jz
@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("name", [entry["name"] for entry in MANIFEST if entry["kind"] == "G"])
def test_converted_generators_reproduce_the_authors_outputs(converted, name, backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    entry = next(entry for entry in MANIFEST if entry["name"] == name)
    x, y = fixture_arrays(entry)
    pix2pix = Pix2Pix.from_pretrained(converted[name], backend=backend)
    assert pix2pix.engine == backend
    config = pix2pix.generator.config
    assert (config["ngf"], config["norm"]) == (entry["ngf"], entry["norm"])
    assert (config["dropout"] > 0) == entry["use_dropout"]
    difference = (pix2pix.translate_tensor(x) - y).abs().max().item()
    assert difference < TOLERANCE, f"{name} on {backend}: max abs difference {difference:.2e}"


@needs_jz
def test_converted_discriminator_reproduces_the_authors_outputs(converted):
    entry = next(entry for entry in MANIFEST if entry["kind"] == "D")
    x, y = fixture_arrays(entry)
    discriminator = Pix2Pix.from_pretrained(converted[entry["name"]]).discriminator
    assert (discriminator.n_layers, discriminator.config["ndf"]) == (entry["n_layers_D"], entry["ndf"])
    assert (outputs(discriminator, x) - y).abs().max().item() < TOLERANCE


@needs_jz
def test_a_converted_folder_loads_holds_no_pickle_and_names_its_origin(converted):
    entry = next(entry for entry in MANIFEST if entry["netG"] == "unet_256")
    folder = converted[entry["name"]]
    assert not [path for path in folder.rglob("*") if path.name.endswith(PICKLE_SUFFIXES)]
    assert {"model.safetensors", "config.json", MODEL_INFO_NAME, "README.md"} <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / MODEL_INFO_NAME).read_text()) == {"direction": "BtoA", "base_model": entry["weights"]}
    card = (folder / "README.md").read_text()
    assert entry["weights"] in card and file_sha256(JZ / entry["weights"]) in card
    assert "BtoA" in card and "arxiv.org/abs/1611.07004" in card and "junyanz/pytorch-CycleGAN-and-pix2pix" in card
    assert json.loads((folder / "config.json").read_text())["dropout_offset"] == 1
    assert Pix2Pix.from_pretrained(folder).direction == "BtoA"


@needs_jz
def test_module_prefixes_are_stripped(tmp_path):
    entry = next(entry for entry in MANIFEST if entry["kind"] == "G")
    state_dict = torch.load(JZ / entry["weights"], weights_only=True)
    torch.save({f"module.{key}": value for key, value in state_dict.items()}, tmp_path / "latest_net_G.pth")
    assert read_authors_state_dict(tmp_path / "latest_net_G.pth").keys() == state_dict.keys()
    x, y = fixture_arrays(entry)
    generator, _ = load_authors_networks(tmp_path / "latest_net_G.pth")
    assert (outputs(generator, x) - y).abs().max().item() < TOLERANCE


# ----- architecture inference on every kind of network -------------------------------------------------------------
NETWORKS = {
    "unet_256 batch": lambda: UNetGenerator(num_downs=8, ngf=4, norm="batch"),
    "unet_128 instance 1->3": lambda: UNetGenerator(in_channels=1, num_downs=7, ngf=4, norm="instance"),
    "unet_32 none 4->1": lambda: UNetGenerator(in_channels=4, out_channels=1, num_downs=5, ngf=3, norm="none"),
    "resnet_6blocks batch dropout": lambda: ResnetGenerator(ngf=4, n_blocks=6, norm="batch", dropout=0.5),
    "resnet_2blocks none": lambda: ResnetGenerator(ngf=4, n_blocks=2, norm="none", dropout=0.0),
    "pixel batch": lambda: PatchDiscriminator(in_channels=4, ndf=4, n_layers=0, norm="batch"),
    "n_layers=4 instance": lambda: PatchDiscriminator(ndf=4, n_layers=4, norm="instance"),
    "n_layers=1 none": lambda: PatchDiscriminator(ndf=4, n_layers=1, norm="none"),
}


@pytest.mark.parametrize("kind", sorted(NETWORKS))
def test_every_architecture_is_inferred_and_computes_the_same(kind):
    original = randomize(NETWORKS[kind]())
    state_dict = in_authors_layout(original)
    if isinstance(original, PatchDiscriminator):
        converted = build_from_authors(state_dict, authors_discriminator_layout(state_dict))
        x = torch.rand(2, original.in_channels, 64, 64) * 2 - 1
        ignored = {"init_type", "init_gain"}
    else:
        converted = build_from_authors(state_dict, authors_generator_layout(state_dict))
        side = original.size_multiple if isinstance(original, UNetGenerator) else 16
        x = torch.rand(2, original.in_channels, side, side) * 2 - 1
        ignored = {"init_type", "init_gain", "dropout", "num_dropout", "dropout_offset"}  # U-Net dropout: not in keys
    assert {k: v for k, v in converted.config.items() if k not in ignored} == {
        k: v for k, v in original.config.items() if k not in ignored
    }
    assert torch.equal(outputs(converted, x), outputs(original, x))


def test_resnet_dropout_is_read_from_the_block_layout():
    state_dict = in_authors_layout(randomize(ResnetGenerator(ngf=4, n_blocks=3, norm="instance", dropout=0.5)))
    assert "model.10.conv_block.6.weight" in state_dict  # the second conv moves one place down, after the Dropout
    assert build_from_authors(state_dict, authors_generator_layout(state_dict)).config["dropout"] == 0.5


def test_a_converted_unet_drops_out_where_the_authors_unet_does(tmp_path):
    path = authors_checkpoint(randomize(UNetGenerator(num_downs=8, ngf=4)), tmp_path / "latest_net_G.pth")
    generator, _ = load_authors_networks(path)
    with_dropout = [any(isinstance(m, nn.Dropout) for m in block.modules()) for block in generator.decoders]
    assert with_dropout == [False, True, True, True, False, False, False, False]  # num_downs - 5 blocks, one out
    # And in the authors' train-mode test (dropout_at_test): the innermost block's output is the same whatever the
    # seed, the next one's is not.
    seen: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    for depth in seen:
        generator.decoders[depth].register_forward_hook(lambda _m, _i, out, d=depth: seen[d].append(out.clone()))
    pix2pix = Pix2Pix(generator, backend="torch")
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    for seed in (1, 2):
        torch.manual_seed(seed)
        pix2pix.translate_tensor(x, dropout_at_test=True)
    assert torch.equal(*seen[0]) and not torch.equal(*seen[1])


# ----- overrides and errors ----------------------------------------------------------------------------------------
@pytest.fixture()
def unet_256_state_dict() -> dict[str, torch.Tensor]:
    return in_authors_layout(randomize(UNetGenerator(num_downs=8, ngf=4)))


def test_flags_override_what_the_keys_cannot_say(unet_256_state_dict):
    layout = authors_generator_layout(unet_256_state_dict, no_dropout=True)
    generator = build_from_authors(unet_256_state_dict, layout)
    assert generator.config["dropout"] == 0.0 and not any(isinstance(m, nn.Dropout) for m in generator.modules())
    layout = authors_generator_layout(unet_256_state_dict, netG="unet_256", ngf=4, norm="batch", input_nc=3)
    assert layout.kwargs["num_downs"] == 8


@pytest.mark.parametrize(
    ("flags", "key", "words"),
    [
        ({"netG": "unet_128"}, "model.model.1.model.3.model.3.model.3.model.3.model.3.model.2.weight", "unet_128"),
        ({"ngf": 8}, "model.model.0.weight", "shape (4, 3, 4, 4)"),
        ({"norm": "instance"}, "model.model.1.model.2.weight", "instance norm"),
        ({"netG": "resnet_9blocks"}, "model.model.0.weight", "netG=resnet_9blocks"),
    ],
)
def test_a_flag_the_weights_contradict_names_the_first_key_that_does_not_fit(unet_256_state_dict, flags, key, words):
    with pytest.raises(AuthorsCheckpointError) as error:
        layout = authors_generator_layout(unet_256_state_dict, source="G.pth", **flags)
        build_from_authors(unet_256_state_dict, layout, "G.pth")
    assert repr(key) in str(error.value) and words in str(error.value) and "G.pth" in str(error.value)


def test_a_state_dict_that_fits_nothing_names_its_first_key():
    foreign = {"encoder.0.weight": torch.zeros(8, 3, 3, 3), "encoder.0.bias": torch.zeros(8)}
    with pytest.raises(AuthorsCheckpointError, match=r"first key 'encoder.0.weight' does not fit any"):
        authors_generator_layout(foreign)
    with pytest.raises(AuthorsCheckpointError, match=r"first key 'encoder.0.weight' does not fit any"):
        authors_discriminator_layout(foreign)


def test_an_extra_or_missing_key_is_named(unet_256_state_dict):
    extra = {**unet_256_state_dict, "model.model.9.weight": torch.zeros(1)}
    with pytest.raises(AuthorsCheckpointError, match=r"'model.model.9.weight' does not fit the authors' unet_256"):
        build_from_authors(extra, authors_generator_layout(extra))
    missing = {key: value for key, value in unet_256_state_dict.items() if key != "model.model.3.bias"}
    with pytest.raises(AuthorsCheckpointError, match=r"lacks 'model.model.3.bias'"):
        build_from_authors(missing, authors_generator_layout(missing))


def test_legacy_checkpoints_load_without_num_batches_tracked_and_with_instance_norm_statistics(tmp_path):
    batch = randomize(UNetGenerator(num_downs=6, ngf=4))
    old = {k: v for k, v in in_authors_layout(batch).items() if not k.endswith("num_batches_tracked")}
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.equal(outputs(build_from_authors(old, authors_generator_layout(old)), x), outputs(batch, x))
    instance = randomize(ResnetGenerator(ngf=4, n_blocks=1, norm="instance", dropout=0.0))
    legacy = in_authors_layout(instance)  # PyTorch < 0.4 saved running statistics on InstanceNorm layers
    legacy |= {"model.2.running_mean": torch.zeros(4), "model.2.running_var": torch.ones(4)}
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(outputs(build_from_authors(legacy, authors_generator_layout(legacy)), x), outputs(instance, x))


def test_a_discriminator_from_another_model_is_refused(tmp_path):
    generator = authors_checkpoint(randomize(UNetGenerator(in_channels=1, num_downs=5, ngf=4)), tmp_path / "G.pth")
    discriminator = authors_checkpoint(randomize(PatchDiscriminator(in_channels=6, ndf=4)), tmp_path / "D.pth")
    with pytest.raises(AuthorsCheckpointError, match=r"D.pth judges 6-channel pairs.*make 4 channels"):
        load_authors_networks(generator, discriminator)


def test_unknown_options_are_refused(tmp_path):
    path = authors_checkpoint(randomize(UNetGenerator(num_downs=5, ngf=4)), tmp_path / "G.pth")
    with pytest.raises(TypeError, match="n_downs"):
        load_authors_networks(path, n_downs=5)


# ----- reading files: only tensors ---------------------------------------------------------------------------------
class RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # unpickling would create the marker file


def test_a_pickle_that_needs_full_unpickling_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "latest_net_G.pth"
    torch.save({"model.model.0.weight": torch.zeros(1), "payload": RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(AuthorsCheckpointError) as error:
        read_authors_state_dict(path)
    message = str(error.value)
    assert "\n" not in message and "latest_net_G.pth" in message and "io.open" in message
    assert "arbitrary code" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ([torch.zeros(1)], "holds a list, not a state_dict"),
        ({}, "holds an empty dict"),
        ({"state_dict": {"model.1.weight": torch.zeros(1)}}, "entry 'state_dict' is of type dict, not a tensor"),
        ({"model.1.weight": torch.zeros(1), "epoch": 3}, "entry 'epoch' is of type int, not a tensor"),
    ],
)
def test_anything_but_a_flat_dict_of_tensors_is_refused(tmp_path, content, words):
    torch.save(content, tmp_path / "net.pth")
    with pytest.raises(AuthorsCheckpointError, match=words):
        read_authors_state_dict(tmp_path / "net.pth")


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "net.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(AuthorsCheckpointError, match="net.pth is not a PyTorch checkpoint"):
        read_authors_state_dict(tmp_path / "net.pth")


def test_conversion_end_to_end_without_the_fixtures(tmp_path):
    original = randomize(UNetGenerator(num_downs=6, ngf=4))
    path = authors_checkpoint(original, tmp_path / "latest_net_G.pth", prefix="module.")
    folder = convert_authors_checkpoint(path, tmp_path / "model", base_model="someone/facades_label2photo")
    assert json.loads((folder / MODEL_INFO_NAME).read_text()) == {"base_model": "someone/facades_label2photo"}
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    loaded = Pix2Pix.from_pretrained(folder, backend="torch")
    assert loaded.discriminator is None
    assert torch.equal(loaded.translate_tensor(x), outputs(original, x))


@pytest.mark.slow
def test_a_full_size_unet_256_gets_the_576_zero_biases_the_issue_counts(tmp_path):
    original = randomize(UNetGenerator(num_downs=8, ngf=64))
    state_dict = in_authors_layout(original)
    converted = build_from_authors(state_dict, authors_generator_layout(state_dict))
    their_parameters = sum(
        value.numel() for key, value in state_dict.items() if "running" not in key and "num_" not in key
    )
    assert sum(p.numel() for p in converted.parameters()) - their_parameters == 576
    assert converted.encoders[0].bias.abs().sum() == 0 and converted.encoders[-1][1].bias.abs().sum() == 0


def test_load_authors_checkpoint_gives_a_translator_with_its_facts(tmp_path):
    original = randomize(ResnetGenerator(ngf=4, n_blocks=2, norm="instance", dropout=0.0))
    path = authors_checkpoint(original, tmp_path / "latest_net_G.pth")
    pix2pix = load_authors_checkpoint(path, direction="AtoB", backend="torch")
    assert (pix2pix.direction, pix2pix.info.base_model) == ("AtoB", "latest_net_G.pth")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(pix2pix.translate_tensor(x), outputs(original, x))
    with pytest.raises(ValueError, match="direction='sideways'"):
        load_authors_checkpoint(path, direction="sideways")


# ----- the direction of a converted model ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "direction"),
    [
        ("checkpoints/facades_label2photo_pretrained/latest_net_G.pth", "BtoA"),
        ("models/map2sat.pth", "BtoA"),
        ("models/sat2map.pth", "AtoB"),
        ("my-edges2shoes-run/latest_net_G.pth", "AtoB"),
        ("day2night/latest_net_G.pth", "AtoB"),
    ],
)
def test_convert_records_the_published_models_direction_its_path_names(tmp_path, capsys, where, direction):
    from pix2pix_hub.cli import main

    path = tmp_path / where
    path.parent.mkdir(parents=True)
    authors_checkpoint(UNetGenerator(num_downs=5, ngf=2), path)
    assert main(["convert", str(path), str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / MODEL_INFO_NAME).read_text())["direction"] == direction
    note = capsys.readouterr().err
    assert f"direction: {direction}, inferred from" in note and "--direction AtoB|BtoA" in note


def test_convert_says_when_the_direction_is_unknown_and_how_to_set_it(tmp_path, capsys):
    from pix2pix_hub.cli import main

    path = authors_checkpoint(UNetGenerator(num_downs=5, ngf=2), tmp_path / "latest_net_G.pth")
    assert main(["convert", str(path), str(tmp_path / "out")]) == 0
    assert "direction" not in json.loads((tmp_path / "out" / MODEL_INFO_NAME).read_text())
    note = capsys.readouterr().err
    assert "direction of" in note and "is unknown" in note and "--direction AtoB|BtoA" in note
    assert "facades_label2photo BtoA" in note
    # Given explicitly, it wins over the path's name, without a note.
    (tmp_path / "facades_label2photo").mkdir()
    named = authors_checkpoint(UNetGenerator(num_downs=5, ngf=2), tmp_path / "facades_label2photo" / "g.pth")
    assert main(["convert", str(named), str(tmp_path / "mine"), "--direction", "AtoB"]) == 0
    assert json.loads((tmp_path / "mine" / MODEL_INFO_NAME).read_text())["direction"] == "AtoB"
    err = capsys.readouterr().err
    assert "inferred" not in err and "unknown" not in err
