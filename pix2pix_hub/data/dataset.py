"""torch datasets over ``load_pairs`` output: decode, paired transform, reproducible per-sample seeds.

A sample's randomness comes from ``(seed, epoch, index)`` only, so the same sample gets the same crop and flip
whatever the DataLoader worker or process that draws it. Bad samples raise with the row and file named, or,
with ``skip_bad_samples``, come back as ``None`` (dropped by ``collate_pairs``) and are counted; when no pair is
left, ``first_good_item`` says so in one line (and why, when they all fail alike). A label map with a class outside
``label_nc`` is named by its file and the bad values.

Pairs may carry a third image column, ``instance`` (``load_pairs(column_instance=...)``, an ``I/`` folder beside
``A/`` and ``B/``): with a ``PairedTransform(instance=True)`` each sample's instance map is decoded and passed to it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate, get_worker_info

from ..images.labels import LabelMapError
from .checks import (
    BadSampleError,
    describe_row,
    failure_reason,
    label_map_problem,
    nothing_left,
    open_instance,
    open_pair,
    raw_rows,
)
from .transforms import PairedTransform

logger = logging.getLogger(__name__)
# One counter slot per DataLoader worker (slot 0: the main process), each written by one process only, so the
# shared count needs no lock. Worker ids beyond this wrap around (a lost count there is possible, not a crash).
COUNTER_SLOTS = 64


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 32-bit seed for one sample of one epoch (independent of worker and process)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class SkipCounter:
    """How many bad samples were skipped, summed over DataLoader workers (shared memory) of this process."""

    def __init__(self) -> None:
        self.slots = torch.zeros(COUNTER_SLOTS, dtype=torch.int64).share_memory_()
        self.rows: list[str] = []  # this process's skipped rows, for the log

    def add(self, where: str) -> None:
        worker = get_worker_info()
        self.slots[0 if worker is None else 1 + worker.id % (COUNTER_SLOTS - 1)] += 1
        self.rows.append(where)

    @property
    def count(self) -> int:
        return int(self.slots.sum())


class _PairsBase:
    def __init__(self, pairs: Any, transform: PairedTransform, seed: int, skip_bad_samples: bool) -> None:
        if not callable(transform):
            raise TypeError(f"transform must be a PairedTransform (or a callable like it), not {transform!r}.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative integer.")
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.skip_bad_samples = bool(skip_bad_samples)
        self.skipped = SkipCounter()

    def set_epoch(self, epoch: int) -> None:
        """Use a new set of random crops and flips (call before each epoch, in every process)."""
        self.epoch = int(epoch)

    @property
    def skipped_count(self) -> int:
        """Bad samples skipped so far by this process and its DataLoader workers."""
        return self.skipped.count

    def _make(self, index: int, row: dict[str, Any], seed: int) -> dict[str, Any] | None:
        item, failure = self._attempt(index, row, seed)
        return item if failure is None else self._bad(failure.message, failure.error)

    def _attempt(self, index: int, row: dict[str, Any], seed: int) -> tuple[dict[str, Any] | None, Failure | None]:
        """``(item, None)``, or ``(None, why)`` for a pair that cannot be decoded or transformed."""
        source = None
        try:
            source, target = open_pair(index, row)
            if getattr(self.transform, "instance", False):
                x, y = self.transform(source, target, seed=seed, instance_image=open_instance(index, row))
            else:
                x, y = self.transform(source, target, seed=seed)
        except BadSampleError as error:
            return None, Failure(str(error), error, source)
        except LabelMapError as error:
            return None, Failure(label_map_problem(index, row, error), error, source)
        except ValueError as error:
            return None, Failure(f"{describe_row(index, row)}: {error}", error, source)
        return {"input": x, "target": y, "index": index}, None

    def _bad(self, message: str, error: Exception) -> None:
        if not self.skip_bad_samples:
            raise BadSampleError(
                f"{message}\nRun `python -m pix2pix_hub.data SOURCE` to list every bad pair, or skip them with "
                "--skip_bad_samples."
            ) from error
        self.skipped.add(message)
        logger.warning("skipping bad sample: %s", message)
        return None


class Failure:
    """Why one pair cannot be used: the line naming it, the error, and its input image when that decoded."""

    def __init__(self, message: str, error: Exception, source: Any) -> None:
        self.message, self.error = message, error
        self.input_mode = None if source is None else source.mode


class PairedDataset(_PairsBase, torch.utils.data.Dataset):
    """Map-style pairs: ``dataset[i] -> {"input": (C, H, W), "target": (output_nc, H, W), "index": i}`` with
    ``C = transform.input_channels`` (``input_nc``, or ``label_nc`` [+ 1 with instance maps]).

    ``pairs`` is a ``datasets.Dataset`` with ``input``/``target`` image columns (``load_pairs``), and ``instance``
    for instance maps. Images are in [-1, 1], one-hot label maps in {0, 1}; the crop and flip of sample ``i``
    depend only on ``(seed, epoch, i)``.
    """

    def __init__(
        self, pairs: Any, transform: PairedTransform, *, seed: int = 0, skip_bad_samples: bool = False
    ) -> None:
        import datasets

        if isinstance(pairs, datasets.IterableDataset):
            raise TypeError("PairedDataset needs a map-style dataset; wrap a streaming one in PairedIterableDataset.")
        super().__init__(pairs, transform, seed, skip_bad_samples)
        self.pairs = pairs
        self.rows = raw_rows(pairs)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for {len(self)} pairs")
        index %= len(self)
        return self._make(index, self.rows[index], sample_seed(self.seed, self.epoch, index))

    def first_good_item(self) -> dict[str, Any]:
        """The first pair that decodes and transforms, as ``dataset[i]`` gives it (the pairs before it are
        neither counted nor logged again).

        Returns:
            The item.

        Raises:
            BadSampleError: one line when no pair can be used (with ``skip_bad_samples``: nothing to train on),
                saying why, and what to change when they all fail the same way.
        """
        failures = []
        for index in range(len(self)):
            item, failure = self._attempt(index, self.rows[index], sample_seed(self.seed, self.epoch, index))
            if failure is None:
                return item
            failures.append(failure)
        if not failures:
            raise BadSampleError("the dataset has no pairs.")
        modes = {failure.input_mode for failure in failures if failure.input_mode is not None}
        reasons = [failure_reason(failure.error) for failure in failures]
        raise nothing_left([failure.message for failure in failures], reasons, self.transform, modes)


class PairedIterableDataset(_PairsBase, torch.utils.data.IterableDataset):
    """Streaming pairs (``load_pairs(..., streaming=True)``): yields the same dicts as ``PairedDataset``.

    DataLoader workers read disjoint shards of the stream (``datasets`` shards it itself); ``index`` counts
    within a worker's shard, and the seed is drawn from ``(seed, epoch, worker id, rank, index)``, so a run
    is reproducible with the same number of workers and processes. Split a stream between processes with
    ``datasets.distributed.split_dataset_by_node`` before wrapping it.
    """

    def __init__(
        self, pairs: Any, transform: PairedTransform, *, seed: int = 0, skip_bad_samples: bool = False
    ) -> None:
        super().__init__(pairs, transform, seed, skip_bad_samples)
        self.pairs = pairs

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.pairs, "set_epoch"):
            self.pairs.set_epoch(epoch)  # reshuffles a shuffled stream

    def __iter__(self):
        worker = get_worker_info()
        worker_id = 0 if worker is None else worker.id
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        for index, row in enumerate(raw_rows(self.pairs)):
            seed = int(np.random.SeedSequence([self.seed, self.epoch, worker_id, rank, index]).generate_state(1)[0])
            item = self._make(index, row, seed)
            if item is not None:
                yield item


def collate_pairs(items: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack samples into ``{"input": (N, C, H, W), "target": (N, C, H, W), "index": (N,)}``, dropping ``None``.

    Returns ``None`` when every sample of the batch was skipped: a training loop then moves on to the next batch.
    """
    kept = [item for item in items if item is not None]
    if not kept:
        return None
    if get_worker_info() is not None:
        return default_collate(kept)  # in a worker: one thread, and it stacks straight into shared memory
    # In the main process torch.stack wakes the intra-op thread pool, which costs far more than the copy on a busy
    # CPU; numpy stacks the same floats without it.
    batch = {}
    for key in kept[0]:
        values = [item[key] for item in kept]
        if isinstance(values[0], torch.Tensor) and not values[0].requires_grad:
            batch[key] = torch.from_numpy(np.stack([value.numpy() for value in values]))
        else:
            batch[key] = default_collate(values)
    return batch
