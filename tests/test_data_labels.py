"""Label maps (pix2pixHD inputs): one-hot classes, nearest-neighbour resizing that keeps classes exact, instance
boundary maps against hand cases, bad label values named, the input channel count, palette colours."""

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub.data import PairedTransform
from pix2pix_hub.images.labels import (
    MODEL_HINT,
    LabelMapError,
    check_label_channels,
    check_labels,
    colors_to_labels,
    encode_label_input,
    encode_label_map,
    index_array,
    input_channels,
    instance_edges,
    label_indices,
    label_map_size,
    label_palette,
    labels_to_image,
    one_hot,
    resize_nearest,
)
from pix2pix_hub.models.hd import GlobalGenerator


def label_image(array, mode: str = "L") -> Image.Image:
    image = Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L")
    if mode == "P":
        image = image.convert("P")  # keeps the indices; the palette is greyscale
        image.putpalette([value for k in range(256) for value in (255 - k, k, 0)])  # colours unlike the indices
    return image


def test_one_hot_of_a_tiny_map():
    labels = np.array([[0, 2], [1, 2]])
    encoded = one_hot(labels, 3)
    expected = np.array(
        [
            [[1, 0], [0, 0]],  # class 0
            [[0, 0], [1, 0]],  # class 1
            [[0, 1], [0, 1]],  # class 2
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(encoded, expected)
    assert encoded.dtype == np.float32


@pytest.mark.parametrize("mode", ["L", "P"])
def test_palette_images_give_their_indices_not_their_colours(mode):
    labels = np.array([[0, 1, 2, 7]] * 2)
    np.testing.assert_array_equal(index_array(label_image(labels, mode)), labels)


def test_sixteen_bit_instance_ids_are_read_whole():
    ids = np.array([[1000, 1000], [40000, 7]], dtype=np.uint16)
    np.testing.assert_array_equal(index_array(Image.fromarray(ids)), ids.astype(np.int64))


def test_colour_label_maps_are_refused():
    with pytest.raises(LabelMapError, match=r"RGB image; it must hold one integer per pixel"):
        index_array(Image.new("RGB", (4, 4)))


def test_instance_edges_against_a_hand_case():
    ids = np.array(
        [
            [1, 1, 1, 2],
            [1, 1, 1, 2],
            [3, 3, 1, 2],
            [3, 3, 1, 1],
        ]
    )
    expected = np.array(
        [
            [0, 0, 1, 1],  # 1 | 2 across the last column pair
            [1, 1, 1, 1],  # the 1s above the 3s border them too
            [1, 1, 1, 1],
            [0, 1, 1, 1],  # the 3 in the corner touches only 3s
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(instance_edges(ids), expected)
    assert not instance_edges(np.full((3, 5), 9)).any()  # one instance: no boundary


def test_bad_label_values_are_named():
    with pytest.raises(LabelMapError, match=r"label value 9 outside 0\.\.7 \(label_nc=8\)"):
        check_labels(np.array([[0, 9], [7, 1]]), 8)
    with pytest.raises(LabelMapError, match=r"label values 8, 200 outside 0\.\.7"):
        check_labels(np.array([[8, 200, 200]]), 8)
    check_labels(np.array([[0, 7]]), 8)


def test_the_bad_label_message_ends_with_the_hint_for_its_reader():
    with pytest.raises(LabelMapError, match=r"\(label_nc=8\); raise --label_nc or fix the map\.$"):
        check_labels(np.array([[9]]), 8)  # training: the model can still change
    with pytest.raises(LabelMapError, match=r"\(label_nc=8\); the model has no other classes: fix the map"):
        check_labels(np.array([[9]]), 8, hint=MODEL_HINT)
    with pytest.raises(LabelMapError) as at_inference:
        encode_label_input(np.array([[0, 9]]), 8, instance=False)
    assert str(at_inference.value).endswith(f"; {MODEL_HINT}.") and "--label_nc" not in str(at_inference.value)


def test_a_users_map_is_read_in_any_index_form_and_checked_before_resizing():
    labels = np.kron(np.array([[0, 1], [2, 3]]), np.ones((3, 3), dtype=np.int64))  # 6x6
    for form in (labels, label_image(labels), label_image(labels, "P"), np.asarray(labels_to_image(labels, 4))):
        np.testing.assert_array_equal(label_indices(form, 4), labels)
    with pytest.raises(LabelMapError, match="not the model's class colours"):
        label_indices(np.full((6, 6, 3), 7, np.uint8), 4)
    assert label_map_size(labels) == label_map_size(label_image(labels)) == (6, 6)
    with pytest.raises(LabelMapError, match=r"2-D integer array .*shape \(6,\)"):
        label_map_size(np.zeros(6, np.int64))
    encoded = encode_label_input(labels, 4, instance=True, size=(2, 4))
    assert encoded.shape == (5, 2, 4)
    np.testing.assert_array_equal(encoded[:4].argmax(0).numpy(), [[0, 0, 1, 1], [2, 2, 3, 3]])
    lone_bad = labels.copy()
    lone_bad[1, 1] = 7  # a pixel the 2x4 nearest resize would drop: still refused
    with pytest.raises(LabelMapError, match="label value 7"):
        encode_label_input(lone_bad, 4, instance=False, size=(2, 4))
    with pytest.raises(LabelMapError, match=r"instance map is \(6, 3\) but the label map \(6, 6\)") as caught:
        encode_label_input(labels, 4, instance=True, instance_ids=np.zeros((3, 6), np.int64))
    assert caught.value.side == "instance"


def test_recorded_label_maps_must_fit_the_generators_channels():
    check_label_channels(3, None, None)  # an image model: nothing recorded, nothing to check
    check_label_channels(9, 8, True)
    with pytest.raises(
        ValueError, match="label_nc=8 with instance maps needs a generator taking 9 channels; it takes 8"
    ):
        check_label_channels(8, 8, True)
    with pytest.raises(ValueError, match="label_nc=8 needs a generator taking 8 channels; it takes 9"):
        check_label_channels(9, 8, False)


def test_nearest_resizing_is_exact_on_block_maps():
    blocks = np.kron(np.array([[0, 1], [2, 3]]), np.ones((4, 4), dtype=np.int64))  # 8x8, four 4x4 classes
    np.testing.assert_array_equal(resize_nearest(blocks, (4, 4)), np.kron([[0, 1], [2, 3]], np.ones((2, 2))))
    np.testing.assert_array_equal(resize_nearest(blocks, (16, 8)), np.repeat(blocks, 2, axis=1))
    odd = resize_nearest(blocks, (5, 3))  # non-integer scales: still only values that were there
    assert odd.shape == (3, 5) and set(np.unique(odd)) <= {0, 1, 2, 3}


def test_resized_label_maps_stay_one_hot_with_only_their_own_classes():
    """Through every resizing mode, each output pixel has exactly one class, and only classes of the input: a
    bilinear or bicubic resize would blend indices into classes that are not there (or between two channels)."""
    rng = np.random.default_rng(0)
    labels = np.kron(rng.integers(0, 3, (6, 9)) * 2, np.ones((5, 5), dtype=np.int64))  # classes 0, 2, 4 only
    image = label_image(labels)  # 45x30
    target = Image.new("RGB", image.size)
    for preprocess in ("resize_and_crop", "scale_width", "scale_width_and_crop", "none"):
        transform = PairedTransform(load_size=64, crop_size=32, preprocess=preprocess, label_nc=6, size_multiple=8)
        x, y = transform(image, target, seed=1)
        assert x.shape[0] == 6 and x.shape[1:] == y.shape[1:]
        assert torch.equal(x.sum(0), torch.ones(x.shape[1:]))  # exactly one class per pixel
        assert set(x.argmax(0).unique().tolist()) <= {0, 2, 4}
        assert set(torch.unique(x).tolist()) == {0.0, 1.0}


def test_label_maps_follow_the_same_crop_and_flip_as_the_target():
    """A coordinate image as target and its x coordinate as classes: the argmax must equal the target's red."""
    y_grid, x_grid = np.mgrid[0:40, 0:48]
    labels = label_image(x_grid)
    target = Image.fromarray(np.stack([x_grid, y_grid, x_grid], axis=-1).astype(np.uint8))
    transform = PairedTransform(crop_size=24, preprocess="crop", label_nc=48)
    for seed in range(6):
        x, y = transform(labels, target, seed=seed)
        red = np.round((y[0].numpy() + 1) * 127.5).astype(int)
        np.testing.assert_array_equal(x.argmax(0).numpy(), red)


def test_instance_channel_is_computed_after_the_crop():
    ids = np.zeros((32, 32), dtype=np.uint16)
    ids[:, 16:] = 1000  # two instances, a vertical boundary at x = 15 | 16
    labels = label_image(np.zeros((32, 32)))
    transform = PairedTransform(preprocess="none", flip=False, label_nc=2, instance=True)
    x, _ = transform(labels, Image.new("RGB", (32, 32)), instance_image=Image.fromarray(ids))
    assert x.shape == (3, 32, 32) and transform.input_channels == 3
    edges = x[2].numpy()
    assert edges[:, [15, 16]].all() and edges.sum() == 2 * 32


def test_instance_maps_are_required_and_sized_like_the_input():
    transform = PairedTransform(preprocess="none", label_nc=2, instance=True)
    labels, target = label_image(np.zeros((8, 8))), Image.new("RGB", (8, 8))
    with pytest.raises(LabelMapError, match="instance=True needs an instance map"):
        transform(labels, target)
    with pytest.raises(LabelMapError, match="instance map is 8x4 but the input is 8x8"):
        transform(labels, target, instance_image=Image.new("L", (8, 4)))


@pytest.mark.parametrize(
    ("input_nc", "label_nc", "instance", "channels"),
    [(3, 0, False, 3), (1, 0, False, 1), (3, 35, False, 35), (3, 8, True, 9)],
)
def test_input_channel_count(input_nc, label_nc, instance, channels):
    assert input_channels(input_nc, label_nc, instance) == channels
    transform = PairedTransform(preprocess="none", input_nc=input_nc, label_nc=label_nc, instance=instance)
    assert transform.input_channels == channels
    source = label_image(np.ones((16, 32))) if label_nc else Image.new("RGB", (32, 16))
    x, _ = transform(source, Image.new("RGB", (32, 16)), instance_image=Image.new("L", (32, 16)))
    assert x.shape == (channels, 16, 32)


def test_a_generator_built_for_the_channel_count_takes_the_input():
    transform = PairedTransform(preprocess="none", label_nc=8, instance=True, size_multiple=4)
    x, _ = transform(
        label_image(np.arange(64).reshape(8, 8) % 8), Image.new("RGB", (8, 8)), instance_image=Image.new("L", (8, 8))
    )
    generator = GlobalGenerator(in_channels=transform.input_channels, ngf=4, n_downsample=2, n_blocks=1)
    assert generator(x[None]).shape == (1, 3, 8, 8)


def test_bad_label_nc_is_named():
    with pytest.raises(ValueError, match=r"label_nc=-1"):
        PairedTransform(label_nc=-1)


def test_check_maps_finds_bad_labels_before_training():
    transform = PairedTransform(preprocess="none", label_nc=4)
    transform.check_maps(label_image([[0, 3]]), None)
    with pytest.raises(LabelMapError, match="label value 5 outside 0..3"):
        transform.check_maps(label_image([[0, 5]]), None)


def test_encode_label_map_for_inference():
    labels = np.array([[0, 0, 1], [0, 2, 1]])
    encoded = encode_label_map(labels, 3, instance=True)
    assert encoded.shape == (4, 2, 3)
    np.testing.assert_array_equal(encoded[:3].argmax(0).numpy(), labels)
    np.testing.assert_array_equal(encoded[3].numpy(), instance_edges(labels))  # classes stand in for instances
    with pytest.raises(LabelMapError, match="label value 3"):
        encode_label_map(labels + 1, 3)


def test_palette_is_voc_and_round_trips_through_colours():
    palette = label_palette(5)
    assert palette.tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert len({tuple(colour) for colour in label_palette(256)}) == 256
    labels = np.random.default_rng(0).integers(0, 20, (6, 7))
    painted = np.asarray(labels_to_image(labels, 20))
    np.testing.assert_array_equal(colors_to_labels(painted, 20), labels)
    smudged = np.clip(painted.astype(int) + 9, 0, 255).astype(np.uint8)  # anti-aliasing snaps to the class
    np.testing.assert_array_equal(colors_to_labels(smudged, 20), labels)
    np.testing.assert_array_equal(np.asarray(labels_to_image(torch.from_numpy(one_hot(labels, 20)), 20)), painted)
