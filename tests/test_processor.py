"""The image processor: size rules, grouping by size, input kinds in and out, the numpy path, limits, label maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub.images.labels import label_palette
from pix2pix_hub.images.reading import ImageTooLarge
from pix2pix_hub.inference.generate import generator_mode
from pix2pix_hub.inference.processor import (
    ImageProcessor,
    Kind,
    fit_to_multiple,
    group_by_size,
    pad_box,
    pad_to_multiple,
    resize_target,
    restore_size,
)


def processor(**options) -> ImageProcessor:
    return ImageProcessor(**{"in_channels": 3, "size_multiple": 8, "min_size": 16, **options})


def identity_run(processor: ImageProcessor, images, *args, channels: int = 3, **options):
    """preprocess -> a generator passing its first ``channels`` through -> postprocess: out is what went in."""
    prepared = processor.preprocess(images, *args, **options)
    outputs = [group.restore(group.batch[:, :channels]) for group in prepared.groups]
    return processor.postprocess(outputs, prepared), prepared


def test_group_by_size_keeps_order_within_and_between_groups():
    assert group_by_size([(2, 3), (4, 4), (2, 3), (1, 1), (4, 4)]) == [[0, 2], [1, 4], [3]]
    assert group_by_size([]) == []


@pytest.mark.parametrize(("height", "width"), [(33, 17), (1, 1), (3, 2), (16, 16), (40, 9)])
def test_numpy_padding_equals_the_torch_padding_and_both_crop_back(height, width):
    batch = torch.rand(2, 3, height, width) * 2 - 1
    fitted, restore = fit_to_multiple(batch, 8, "pad", 16)
    padded, (top, left) = pad_to_multiple(batch.numpy(), 8, 16)
    assert fitted.shape[-1] % 8 == 0 and fitted.shape[-2] % 8 == 0 and min(fitted.shape[-2:]) >= 16
    np.testing.assert_array_equal(padded, fitted.numpy())
    assert torch.equal(restore(fitted), batch)
    box_top, _, box_left, _, _ = pad_box(height, width, 8, 16)
    assert (top, left) == (box_top, box_left)


def test_resize_mode_takes_the_nearest_multiples_and_restores_the_size():
    assert resize_target(33, 17, 8, 16) == (32, 16)
    assert resize_target(3, 101, 8, 16) == (16, 104)
    batch = torch.rand(1, 3, 33, 17)
    fitted, restore = fit_to_multiple(batch, 8, "resize", 16)
    assert fitted.shape[-2:] == (32, 16) and restore(fitted).shape[-2:] == (33, 17)
    assert restore_size(torch.zeros(3, 32, 16), (33, 17)).shape == (3, 33, 17)


@pytest.mark.parametrize("size_mode", ["pad", "resize"])
def test_every_kind_comes_back_as_it_went_in(size_mode):
    rng = np.random.default_rng(0)
    uint8 = rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)
    inputs = [
        Image.fromarray(uint8),
        uint8,
        uint8.astype(np.float32) / 255,
        torch.from_numpy(uint8 / 127.5 - 1).float().permute(2, 0, 1),
    ]
    outputs, prepared = identity_run(processor(), inputs, size_mode=size_mode)
    assert [plan.kind for plan in prepared.plans] == [Kind.PIL, Kind.UINT8, Kind.FLOAT, Kind.TENSOR]
    assert len(prepared.groups) == 1 and prepared.groups[0].batch.shape[0] == 4  # one size: one batch
    assert isinstance(outputs[0], Image.Image) and outputs[0].size == (30, 21)
    assert outputs[1].dtype == np.uint8 and outputs[1].shape == (21, 30, 3)
    assert outputs[2].dtype == np.float32 and outputs[2].shape == (21, 30, 3)
    assert isinstance(outputs[3], torch.Tensor) and outputs[3].shape == (3, 21, 30)
    if size_mode == "pad":  # nothing interpolated: exact
        assert np.array_equal(np.asarray(outputs[0]), uint8) and np.array_equal(outputs[1], uint8)
        assert np.abs(outputs[2] - uint8 / 255).max() < 1e-6


def test_the_numpy_path_prepares_without_torch_and_matches_the_tensor_path():
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size, dtype=np.uint8) for size in [(12, 20, 3), (5, 7, 3), (12, 20, 3)]]
    images[1] = Image.fromarray(images[1])
    numpy_outputs, numpy_prepared = identity_run(processor(), images, numpy=True)
    torch_outputs, torch_prepared = identity_run(processor(), images, numpy=False)
    assert all(isinstance(group.batch, np.ndarray) for group in numpy_prepared.groups)
    assert all(isinstance(group.batch, torch.Tensor) for group in torch_prepared.groups)
    assert [group.indices for group in numpy_prepared.groups] == [[0, 2], [1]]
    for fast, reference in zip(numpy_outputs, torch_outputs):
        assert type(fast) is type(reference) and np.array_equal(np.asarray(fast), np.asarray(reference))
    # Floats, tensors or "resize" take the tensor path whatever numpy says.
    mixed, prepared = identity_run(processor(), [images[0], images[0] / 255.0], numpy=True)
    assert isinstance(prepared.groups[0].batch, torch.Tensor) and mixed[1].dtype == np.float32


def test_grayscale_outputs_are_two_dimensional_arrays_on_both_paths():
    gray = processor(in_channels=1)
    for numpy in (True, False):
        (output,), _ = identity_run(gray, [np.zeros((9, 9), np.uint8)], numpy=numpy)
        assert output.shape == (9, 9)


def test_inputs_above_max_pixels_are_refused_before_conversion_naming_which():
    small = processor(max_pixels=100)
    with pytest.raises(ImageTooLarge, match=r"^image: 11x10 is"):
        small.preprocess([np.zeros((10, 11, 3), np.uint8)])
    with pytest.raises(ImageTooLarge, match=r"^images\[1\]: 11x10 is .*\(max_pixels=100\)"):
        small.preprocess([np.zeros((5, 5, 3), np.uint8), Image.new("RGB", (11, 10))])
    with pytest.raises(ImageTooLarge, match=r"^the tensor: 11x10"):
        small.fit_batch(torch.zeros(1, 3, 10, 11), "pad")
    assert small.preprocess([np.zeros((10, 10, 3), np.uint8)]).plans[0].size == (10, 10)  # at the limit


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="Cannot translate a str"):
        processor().preprocess(["photo.png"])
    with pytest.raises(ValueError, match=r"takes 3-channel images; got an array of shape \(4, 4, 2\)"):
        processor().preprocess([np.zeros((4, 4, 2), np.uint8)])
    with pytest.raises(ValueError, match=r"Tensors must be \(C, H, W\) in a list"):
        processor().preprocess([torch.zeros(1, 3, 4, 4)])
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        processor().preprocess([np.full((4, 4, 3), 2.0, np.float32)])
    with pytest.raises(ValueError, match="instance= is for label-map models"):
        processor().instance_maps(np.zeros((4, 4)), 1, False)


def test_label_maps_are_one_hot_encoded_at_the_size_the_generator_takes():
    labels = np.random.default_rng(2).integers(0, 5, (20, 13))
    maps = processor(in_channels=6, label_nc=5, instance=True)
    for size_mode, fitted in (("pad", (24, 16)), ("resize", (16, 16))):
        outputs, prepared = identity_run(maps, [labels, Image.fromarray(labels.astype(np.uint8))], size_mode=size_mode)
        (group,) = prepared.groups
        assert group.batch.shape == (2, 6, *fitted)
        assert set(group.batch[:, :5].unique().tolist()) <= {0.0, 1.0}
        assert [plan.kind for plan in prepared.plans] == [Kind.UINT8, Kind.PIL]
        assert outputs[0].shape == (20, 13, 3) and outputs[1].size == (13, 20)
    colours = Image.fromarray(label_palette(5)[labels])
    assert torch.equal(maps.preprocess([colours]).groups[0].batch, maps.preprocess([labels]).groups[0].batch)
    with pytest.raises(ValueError, match="a list of 2 maps"):
        maps.instance_maps([labels], 2, True)
    with pytest.raises(ImageTooLarge, match="^instance map: 30x30"):
        processor(in_channels=6, label_nc=5, instance=True, max_pixels=400).preprocess([labels], [np.zeros((30, 30))])


def test_generator_mode_restores_the_mode_and_leaves_batch_norm_statistics_alone():
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.BatchNorm2d(3), torch.nn.Dropout(0.5)).train()
    state = {name: value.clone() for name, value in network.state_dict().items()}
    with generator_mode(network):
        assert not network.training
        network(torch.rand(2, 3, 4, 4))
    assert network.training
    with generator_mode(network, dropout_at_test=True):
        assert network.training
        network(torch.rand(2, 3, 4, 4) * 5)
    assert all(torch.equal(value, state[name]) for name, value in network.state_dict().items())
