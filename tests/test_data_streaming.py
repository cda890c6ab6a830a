"""Streaming training data (pix2pix_hub.data.streaming) on generated parquet shards: shares of processes and
workers are disjoint and complete every epoch, shuffling is reproducible, the position is JSON and a resume
continues the exact sequence (0 and 2 workers), validation rows are held out, bad rows are handled."""

from __future__ import annotations

import io
import itertools
import json
import logging

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix_hub.data import BadSampleError, PairedDataset, PairedTransform, PairsSourceError, load_pairs
from pix2pix_hub.data.streaming import (
    StreamingPairs,
    StreamLoader,
    row_keys,
    stream_args_error,
    take_validation,
)

SIDE = 12
IDS_ONLY = PairedTransform(preprocess="none", flip=False)  # the target's colour is the pair's id
AUGMENTED = PairedTransform(load_size=14, crop_size=12)  # random crops and flips, to check they replay too


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """Keep this module's Arrow caches out of ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
        yield


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def pair_bytes(pair_id: int) -> tuple[bytes, bytes]:
    """Input: noise drawn from the id (crops and flips show); target: one colour that spells the id."""
    noise = np.random.default_rng(pair_id).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    colour = np.zeros((SIDE, SIDE, 3), dtype=np.uint8)
    colour[..., 0], colour[..., 1] = pair_id % 256, pair_id // 256
    return png(noise), png(colour)


def make_shards(folder, count: int = 120, shards: int = 6, bad: tuple[int, ...] = ()) -> str:
    """``shards`` parquet files holding pairs ``0..count-1`` in order (``bad`` ids: undecodable input bytes);
    returns the glob ``load_pairs`` takes."""
    folder.mkdir(parents=True, exist_ok=True)
    features = datasets.Features({"imageA": datasets.Image(), "imageB": datasets.Image()})
    for shard, ids in enumerate(np.array_split(np.arange(count), shards)):
        rows = {"imageA": [], "imageB": []}
        for pair_id in ids.tolist():
            a, b = pair_bytes(pair_id)
            rows["imageA"].append({"bytes": b"not an image" if pair_id in bad else a, "path": f"{pair_id}.png"})
            rows["imageB"].append({"bytes": b, "path": f"{pair_id}-b.png"})
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"shard-{shard:02d}.parquet"))
    return str(folder / "*.parquet")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"))


def ids_of(target: torch.Tensor) -> list[int]:
    """Pair ids spelled by the targets' colour: ``(N, 3, H, W)`` in [-1, 1] -> N ids."""
    values = ((target[:, :, 0, 0] + 1) * 127.5).round().long()
    return (values[:, 0] + 256 * values[:, 1]).tolist()


def epochs_of(dataset: StreamingPairs, epochs: int) -> list[list[int]]:
    """The ids the main process (no workers) reads in each of the first ``epochs`` epochs, in order."""
    seen: list[list[int]] = [[] for _ in range(epochs)]
    for item in dataset.items(0, None):
        if item["position"]["epoch"] == epochs:
            return seen
        seen[item["position"]["epoch"]] += ids_of(item["target"][None])
    raise AssertionError("unreachable: the stream has no end")


def batches(loader: StreamLoader, count: int) -> list[dict]:
    return list(itertools.islice(loader, count))


# ----- shares, shuffling ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shard_count", [6, 5])  # 6: whole shards per process; 5: every other row per process
def test_two_processes_get_disjoint_complete_shares_every_epoch(tmp_path, shard_count):
    pairs = load_pairs(make_shards(tmp_path, count=60, shards=shard_count), streaming=True)
    ranks = [
        epochs_of(StreamingPairs(pairs, IDS_ONLY, seed=1, shuffle_buffer=8, rank=r, world_size=2), 2) for r in (0, 1)
    ]
    for epoch in (0, 1):
        first, second = ranks[0][epoch], ranks[1][epoch]
        assert first and second
        assert not set(first) & set(second)
        assert sorted(first + second) == list(range(60))
    assert ranks[0][0] != ranks[0][1]  # a new order every epoch


def test_shuffling_is_reproducible_per_seed_and_mixes_shards(shards):
    pairs = load_pairs(shards, streaming=True)
    first = epochs_of(StreamingPairs(pairs, IDS_ONLY, seed=5, shuffle_buffer=16), 2)
    again = epochs_of(StreamingPairs(pairs, IDS_ONLY, seed=5, shuffle_buffer=16), 2)
    other = epochs_of(StreamingPairs(pairs, IDS_ONLY, seed=6, shuffle_buffer=16), 2)
    assert first == again
    assert first != other
    assert sorted(first[0]) == sorted(first[1]) == list(range(120))
    assert first[0] != sorted(first[0]) and first[0][:16] != sorted(first[0][:16])  # rows and blocks shuffled
    in_order = epochs_of(StreamingPairs(pairs, IDS_ONLY, seed=5, shuffle_buffer=1), 1)[0]
    runs = [in_order[i : i + 20] for i in range(0, 120, 20)]
    assert all(run == list(range(run[0], run[0] + 20)) for run in runs)  # buffer 1: each shard in order...
    assert [run[0] for run in runs] != sorted(run[0] for run in runs)  # ...and the shards in a drawn order


def test_two_workers_read_disjoint_shards_and_each_pair_once_per_epoch(shards):
    dataset = StreamingPairs(load_pairs(shards, streaming=True), IDS_ONLY, seed=2, shuffle_buffer=8)
    loader = StreamLoader(dataset, batch_size=4, num_workers=2)
    ids = [pair_id for batch in batches(loader, 30) for pair_id in ids_of(batch["target"])]
    assert sorted(ids) == list(range(120))  # 30 batches of 4: exactly one epoch of 120 pairs
    assert loader.positions[0]["worker"] == 0 and loader.positions[1]["worker"] == 1


def test_more_workers_than_shards_are_not_started(tmp_path):
    dataset = StreamingPairs(load_pairs(make_shards(tmp_path, count=12, shards=2), streaming=True), IDS_ONLY)
    assert StreamLoader(dataset, batch_size=2, num_workers=4).num_workers == 2
    two_ranks = StreamingPairs(load_pairs(str(tmp_path / "*.parquet"), streaming=True), IDS_ONLY, rank=1, world_size=2)
    assert StreamLoader(two_ranks, batch_size=2, num_workers=4).num_workers == 1


# ----- resume -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
def test_resume_continues_the_exact_sequence(shards, workers):
    """Stopped after 13 batches and resumed from the JSON state: the same pairs, crops and flips as one run, across
    the end of an epoch (120 pairs = 40 batches of 3)."""
    pairs = load_pairs(shards, streaming=True)

    def loader() -> StreamLoader:
        dataset = StreamingPairs(pairs, AUGMENTED, seed=4, shuffle_buffer=16)
        return StreamLoader(dataset, batch_size=3, num_workers=workers)

    whole = batches(loader(), 50)
    stopped = loader()
    head = batches(stopped, 13)
    state = json.loads(json.dumps(stopped.state_dict()))
    resumed = loader()
    resumed.load_state_dict(state)
    tail = batches(resumed, 37)
    assert resumed.epoch == 1
    for expected, got in zip(whole, head + tail, strict=True):
        assert ids_of(expected["target"]) == ids_of(got["target"])
        assert torch.equal(expected["input"], got["input"])  # the same crop and flip of the same pair
        assert torch.equal(expected["index"], got["index"])


def test_iterating_again_continues_where_the_last_batch_left(shards):
    dataset = StreamingPairs(load_pairs(shards, streaming=True), IDS_ONLY, seed=4, shuffle_buffer=16)
    loader = StreamLoader(dataset, batch_size=5)
    whole = [ids_of(b["target"]) for b in batches(StreamLoader(dataset, batch_size=5), 6)]
    assert [ids_of(b["target"]) for b in batches(loader, 2) + batches(loader, 4)] == whole


def test_a_state_from_another_layout_restarts_its_epoch(shards, caplog):
    pairs = load_pairs(shards, streaming=True)
    one_worker = StreamLoader(StreamingPairs(pairs, IDS_ONLY, seed=4, shuffle_buffer=16), batch_size=4)
    batches(one_worker, 35)  # into epoch 1
    state = one_worker.state_dict()
    assert one_worker.epoch == 1 and set(json.loads(json.dumps(state))) >= {"workers", "next_worker", "seed"}
    other_buffer = StreamLoader(StreamingPairs(pairs, IDS_ONLY, seed=4, shuffle_buffer=8), batch_size=4)
    with caplog.at_level(logging.WARNING, logger="pix2pix_hub.data.streaming"):
        other_buffer.load_state_dict(state)
    assert "shuffle_buffer 16 -> 8" in caplog.text and "restarts at epoch 1" in caplog.text
    first = batches(other_buffer, 1)[0]
    fresh_epoch_1 = epochs_of(StreamingPairs(pairs, IDS_ONLY, seed=4, shuffle_buffer=8), 2)[1]
    assert ids_of(first["target"]) == fresh_epoch_1[:4]
    with pytest.raises(ValueError, match="format"):
        other_buffer.load_state_dict({"format": 99})


# ----- validation rows --------------------------------------------------------------------------------------
def test_validation_rows_never_reach_training_in_any_process(shards):
    pairs = load_pairs(shards, streaming=True)
    val = take_validation(pairs, 7)
    assert len(val) == 7
    validation = PairedDataset(val, IDS_ONLY)  # what the trainer validates on
    assert ids_of(torch.stack([validation[i]["target"] for i in range(7)])) == list(range(7))  # the stream's first
    held_out = row_keys(val)
    shares = [
        epochs_of(StreamingPairs(pairs, IDS_ONLY, rank=r, world_size=2, exclude=held_out, shuffle_buffer=8), 2)
        for r in (0, 1)
    ]
    for epoch in (0, 1):
        assert sorted(shares[0][epoch] + shares[1][epoch]) == list(range(7, 120))


def test_a_stream_too_short_for_its_validation_rows_is_refused(tmp_path):
    pairs = load_pairs(make_shards(tmp_path, count=4, shards=1), streaming=True)
    with pytest.raises(PairsSourceError, match="--val_size 4 leaves no training pairs: the stream has only 4 rows"):
        take_validation(pairs, 4)


def test_a_share_that_is_all_validation_rows_is_an_error(tmp_path):
    pairs = load_pairs(make_shards(tmp_path, count=3, shards=1), streaming=True)
    held_out = row_keys(take_validation(pairs, 2))
    dataset = StreamingPairs(pairs, IDS_ONLY, rank=0, world_size=2, exclude=held_out)  # rank 0: rows 0 and 2
    with pytest.raises(PairsSourceError, match="got no training pair in 100 epochs"):
        list(itertools.islice(StreamingPairs(pairs, IDS_ONLY, rank=1, world_size=2, exclude=held_out), 1))
    assert [ids_of(item["target"][None])[0] for item in itertools.islice(dataset, 3)] == [2, 2, 2]


# ----- bad rows and arguments -------------------------------------------------------------------------------
def test_bad_rows_fail_with_their_file_named_or_are_skipped_and_counted(tmp_path):
    pairs = load_pairs(make_shards(tmp_path, count=12, shards=2, bad=(3, 4, 5)), streaming=True)
    strict = StreamLoader(StreamingPairs(pairs, IDS_ONLY, shuffle_buffer=1), batch_size=3)
    with pytest.raises(BadSampleError, match=r"cannot read the input image 3\.png"):
        batches(strict, 4)
    lenient = StreamingPairs(pairs, IDS_ONLY, shuffle_buffer=1, skip_bad_samples=True)
    loader = StreamLoader(lenient, batch_size=3)
    got = batches(loader, 8)  # 12 rows a epoch, 3 a batch: rows 3-5 are one batch, all bad
    assert sum(batch is None for batch in got) == 2  # once per epoch
    good = sorted(i for batch in got[:4] if batch is not None for i in ids_of(batch["target"]))
    assert good == [0, 1, 2, 6, 7, 8, 9, 10, 11]
    assert lenient.skipped_count == 6
    assert loader.epoch == 1
    assert ids_of(lenient.first_good_batch()["target"]) == ids_of(got[0]["target"])[:1]  # epoch 0's first pair


def test_stream_arguments_that_cannot_work_are_refused(shards):
    ok = {"max_train_steps": 10, "val_size": 16, "validation_split": None, "shuffle_buffer": 1000}
    assert stream_args_error(**ok) is None
    assert stream_args_error(**{**ok, "val_size": None}) is None  # unset: the trainer picks a count
    assert stream_args_error(**{**ok, "val_size": 0.1, "validation_split": "val", "shuffle_buffer": 1}) is None
    assert "--streaming needs --max_train_steps" in stream_args_error(**{**ok, "max_train_steps": None})
    assert "give a count (>= 1), not the fraction 0.1" in stream_args_error(**{**ok, "val_size": 0.1})
    assert "--shuffle_buffer must be at least 1" in stream_args_error(**{**ok, "shuffle_buffer": 0})
    with pytest.raises(TypeError, match="streaming=True"):
        StreamingPairs(datasets.Dataset.from_dict({"input": [], "target": []}), IDS_ONLY)
    with pytest.raises(TypeError, match="next epoch by itself"):
        StreamingPairs(load_pairs(shards, streaming=True), IDS_ONLY).set_epoch(1)
