"""Training from a stream (``load_pairs(..., streaming=True)``: a Hub id or local parquet shards) without reading
it all first, split between processes and DataLoader workers, and resumable at the exact sample.

    pairs = load_pairs("user/big-pairs", streaming=True)
    val = take_validation(pairs, 16)                                # the first 16 rows, in memory (map-style)
    train = StreamingPairs(pairs, transform, seed=0, shuffle_buffer=1000, rank=rank, world_size=world_size,
                           exclude=row_keys(val))
    loader = StreamLoader(train, batch_size=1, num_workers=2)
    for batch in loader: ...                                        # never ends: epochs follow one another
    state = loader.state_dict()                                     # JSON; loader.load_state_dict(state) resumes

How a process's stream is made, epoch by epoch (``epoch`` counts passes over this process's share):

1. the shards are put in an order drawn from ``(seed, epoch)`` (the same in every process), then
   ``datasets.distributed.split_dataset_by_node`` gives this process its part: whole shards when their number is a
   multiple of the number of processes, else every ``world_size``-th row;
2. in a DataLoader worker, ``datasets`` gives worker ``w`` of ``W`` the shards ``w, w + W, ...`` of that part
   (``StreamLoader`` starts at most as many workers as the part has shards, so none is idle);
3. the worker reads its rows in blocks of ``shuffle_buffer`` and yields each block in an order drawn from
   ``(seed, epoch, rank, worker, block)``; rows held out for validation (``exclude``) are passed over;
4. each row is decoded and transformed (the same ``PairedTransform`` and bad-sample handling as ``PairedDataset``)
   with a seed drawn from ``(seed, epoch, rank, worker, index)``, ``index`` counting the worker's rows this epoch.

Resume: a worker's position is the ``datasets`` state at the start of its current block (JSON: shard and row
numbers) and how many rows of the block it has given out. Resuming re-reads that one block (at most
``shuffle_buffer`` rows, not decoded) and continues with the next row. Blocks, not ``datasets``' own rolling
buffer, because that buffer's content is lost by ``load_state_dict`` (rows skipped, another order); a block is
rebuilt exactly. With the same seed, ``shuffle_buffer``, number of processes and of workers, a resumed run gets
exactly the batches, crops and flips the uninterrupted run would have got (``StreamLoader`` hands batches out in
the worker order the uninterrupted run had). Anything else changed: the stream restarts at the recorded epoch.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from .checks import BadSampleError, raw_rows
from .dataset import _PairsBase, collate_pairs
from .errors import PairsSourceError
from .transforms import PairedTransform

logger = logging.getLogger(__name__)
STATE_FORMAT = 1
# What a checkpoint's stream position must match to be continued exactly.
LAYOUT_KEYS = ("seed", "rank", "world_size", "num_workers", "shuffle_buffer")
Position = dict[str, Any]  # {"worker", "epoch", "block", "taken", "source"}: JSON values only
# A worker that gives nothing for this many epochs in a row has an empty share (or one all held out for
# validation). Not 1: with shards shared out anew each epoch, a worker may draw only held-out rows now and then.
IDLE_EPOCHS = 100


def stream_args_error(
    *, max_train_steps: int | None, val_size: float | None, validation_split: str | None, shuffle_buffer: int
) -> str | None:
    """Why a streamed run cannot be set up as asked, naming the flags, or ``None``: a schedule in epochs (a stream's
    length is not known before it has been read), a validation fraction, a buffer below one row."""
    if max_train_steps is None:
        return (
            "--streaming needs --max_train_steps: a stream's length is unknown until it has been read, so an epoch "
            "count (--n_epochs/--n_epochs_decay) cannot be turned into steps."
        )
    if validation_split is None and val_size is not None and (val_size < 1 or val_size != int(val_size)):
        return (
            f"--streaming holds out the first --val_size rows of the stream for validation: give a count (>= 1), "
            f"not the fraction {val_size}, or pass --validation_split NAME."
        )
    if shuffle_buffer < 1:
        return f"--shuffle_buffer must be at least 1 (1: rows in stream order); got {shuffle_buffer}."
    return None


def row_key(row: dict[str, Any]) -> bytes:
    """A digest of a raw row's two images (their bytes, or their paths when the row holds only paths)."""
    digest = hashlib.blake2b(digest_size=16)
    for name in ("input", "target"):
        value = row[name] or {}
        data = value.get("bytes") or str(value.get("path") or "").encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.digest()


def row_keys(pairs: Any) -> frozenset[bytes]:
    """``row_key`` of every row of ``pairs`` (a small dataset: the validation rows)."""
    return frozenset(row_key(row) for row in raw_rows(pairs))


def first_rows(pairs: Any, count: int) -> Any:
    """The first ``count`` rows of a stream (all, if it has fewer) as an in-memory ``datasets.Dataset`` with
    ``input``/``target`` images, for ``PairedDataset``: a validation split read as a stream."""
    import datasets

    rows = list(itertools.islice(raw_rows(pairs), count))
    features = datasets.Features({"input": datasets.Image(), "target": datasets.Image()})
    return datasets.Dataset.from_list(rows, features=features)


def take_validation(pairs: Any, count: int) -> Any:
    """The validation rows of a stream: ``first_rows(pairs, count)``.

    Not ``split_pairs``' ``skip``: ``IterableDataset.skip(n)`` divides ``n`` between the shards of each process
    and worker, so it passes over other rows than ``take(n)`` returns; ``StreamingPairs(exclude=row_keys(val))``
    passes over exactly these.

    Raises:
        PairsSourceError: when the stream has no rows left for training after them.
    """
    rows = sum(1 for _ in itertools.islice(raw_rows(pairs), count + 1))
    if rows <= count:
        raise PairsSourceError(
            f"--val_size {count} leaves no training pairs: the stream has only {rows} rows. Lower --val_size."
        )
    return first_rows(pairs, count)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class StreamingPairs(_PairsBase, torch.utils.data.IterableDataset):
    """This process's endless stream of training pairs, epoch after epoch (see the module docstring).

    Yields ``{"input": (input_nc, H, W), "target": (output_nc, H, W), "index": int, "position": Position}`` in
    [-1, 1], or ``{"position": Position}`` alone for a bad pair skipped with ``skip_bad_samples``; ``StreamLoader``
    batches them. ``pairs`` is ``load_pairs(..., streaming=True)``, unsplit: ``rank``/``world_size`` split it.
    """

    def __init__(
        self,
        pairs: Any,
        transform: PairedTransform,
        *,
        seed: int = 0,
        skip_bad_samples: bool = False,
        shuffle_buffer: int = 1000,
        rank: int = 0,
        world_size: int = 1,
        exclude: Iterable[bytes] = (),
    ) -> None:
        import datasets

        if not isinstance(pairs, datasets.IterableDataset):
            raise TypeError("StreamingPairs reads a stream: load_pairs(..., streaming=True); use PairedDataset.")
        super().__init__(pairs, transform, seed, skip_bad_samples)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must be in [0, world_size={world_size}).")
        if shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer={shuffle_buffer} must be at least 1.")
        self.pairs = raw_rows(pairs)
        self.shuffle_buffer = int(shuffle_buffer)
        self.rank, self.world_size = int(rank), int(world_size)
        self.exclude = frozenset(exclude)
        self.start: list[Position | None] = [None]  # where each worker begins; StreamLoader sets it

    def set_epoch(self, epoch: int) -> None:
        raise TypeError("A stream moves to its next epoch by itself; restore a position with StreamLoader.")

    def epoch_rows(self, epoch: int) -> Any:
        """This process's raw rows of ``epoch``: all shards in an order drawn from ``(seed, epoch)``, then split."""
        from datasets.distributed import split_dataset_by_node

        # buffer_size=1: only the shard order; the rows are shuffled in blocks (see the module docstring).
        # max_buffer_input_shards=1: reading several shards at once was far slower (docs/performance.md).
        shuffled = self.pairs.shuffle(seed=_seed(self.seed, epoch), buffer_size=1, max_buffer_input_shards=1)
        return split_dataset_by_node(shuffled, rank=self.rank, world_size=self.world_size)

    @property
    def shards_per_process(self) -> int:
        """Shards this process reads (all of them when they cannot be shared out whole)."""
        return self.epoch_rows(0).num_shards

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        start = self.start[worker] if worker < len(self.start) else None
        return self.items(worker, start)

    def items(self, worker: int, start: Position | None) -> Iterator[dict[str, Any]]:
        """Worker ``worker``'s items from ``start`` (``None``: the beginning), epoch after epoch, without end."""
        epoch = start["epoch"] if start else 0
        idle = 0
        while True:
            given = yield from self._epoch_items(epoch, worker, start)
            idle = 0 if given else idle + 1
            if idle == IDLE_EPOCHS:
                raise PairsSourceError(
                    f"Process {self.rank} of {self.world_size}, DataLoader worker {worker}, got no training pair in "
                    f"{IDLE_EPOCHS} epochs: its share of the stream ({self.shards_per_process} shards for this "
                    "process) is empty or held out for validation. Use fewer processes or workers, or a dataset in "
                    "more shards (parquet files, or IterableDataset.reshard())."
                )
            epoch, start = epoch + 1, None

    def _epoch_items(self, epoch: int, worker: int, start: Position | None):
        """One epoch of this worker's items (from ``start``); returns how many it gave."""
        rows = self.epoch_rows(epoch)
        block, skip, source = 0, 0, None  # skip: rows of the first block given out before the resume
        if start is not None:
            block, skip, source = start["block"], start["taken"], start["source"]
            if source is not None:
                rows.load_state_dict(source)
        stream = iter(rows)
        given = 0
        while chunk := list(itertools.islice(stream, self.shuffle_buffer)):
            order = np.random.default_rng([self.seed, epoch, self.rank, worker, block]).permutation(len(chunk))
            for taken in range(skip + 1, len(chunk) + 1):
                row = chunk[order[taken - 1]]
                if self.exclude and row_key(row) in self.exclude:
                    continue
                position = {"worker": worker, "epoch": epoch, "block": block, "taken": taken, "source": source}
                index = block * self.shuffle_buffer + taken - 1
                item = self._make(index, row, _seed(self.seed, epoch, self.rank, worker, index))
                given += 1
                yield {"position": position} if item is None else {**item, "position": position}
            block, skip, source = block + 1, 0, rows.state_dict()
        return given

    def first_good_batch(self) -> dict[str, torch.Tensor]:
        """A one-pair batch of the first decodable pair of epoch 0 (stands in for a batch of only bad pairs)."""
        for item in itertools.islice(self.items(0, None), 100_000):
            if "input" in item:
                return collate_pairs([without_position(item)])
        raise BadSampleError(
            "--skip_bad_samples skipped every pair of the stream (up to its first 100000 rows), so nothing is left "
            "to train on; `python -m pix2pix_hub.data SOURCE` says why each pair fails."
        )


def without_position(item: dict[str, Any]) -> dict[str, Any] | None:
    """A ``StreamingPairs`` item as ``PairedDataset`` gives it (``None`` for a skipped bad pair)."""
    return {key: value for key, value in item.items() if key != "position"} if "input" in item else None


def collate_stream(items: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, Position]:
    """``(collate_pairs batch or None, position after the last item)``: a batch is always one worker's items."""
    return collate_pairs([without_position(item) for item in items]), items[-1]["position"]


class StreamLoader:
    """Batches of a ``StreamingPairs`` through a DataLoader, with the position of what was handed out.

    Not for ``accelerator.prepare``: that would read the stream on one process and send slices to the others (or
    split it a second time); ``StreamingPairs`` is already this process's share. Batches stay on the CPU.
    Iterating again continues from the last batch handed out.
    """

    def __init__(
        self, dataset: StreamingPairs, *, batch_size: int, num_workers: int = 0, pin_memory: bool = False
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        # More workers than shards would sit idle (datasets gives each worker whole shards).
        self.num_workers = min(num_workers, dataset.shards_per_process)
        self.pin_memory = pin_memory
        self.positions: list[Position | None] = [None] * max(1, self.num_workers)
        self.next_worker = 0

    @property
    def epoch(self) -> int:
        """The epoch of the newest batch handed out (workers move on to the next epoch one by one)."""
        return max((p["epoch"] for p in self.positions if p is not None), default=0)

    def __iter__(self) -> Iterator[dict[str, Any] | None]:
        """Batches (``collate_pairs``'s; ``None`` when every pair of one was skipped as bad), without end."""
        self.dataset.start = list(self.positions)
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_stream,
            pin_memory=self.pin_memory,
            # Its own generator: worker seeds must not consume the global RNG, or a resumed run would diverge.
            generator=torch.Generator().manual_seed(self.dataset.seed),
        )
        # The DataLoader takes batches from its workers in turn starting with worker 0; a resumed run must start
        # with the worker whose turn it was, so early batches of the others wait here (at most one round).
        waiting: list[deque] = [deque() for _ in self.positions]
        for batch, position in loader:
            waiting[position["worker"]].append((batch, position))
            while waiting[self.next_worker]:
                batch, position = waiting[self.next_worker].popleft()
                self.positions[position["worker"]] = position
                self.next_worker = (self.next_worker + 1) % len(self.positions)
                yield batch
        raise RuntimeError("The training stream ended; it is meant to repeat epoch after epoch.")

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands after the last batch handed out: JSON values only (no pickle)."""
        data = self.dataset
        return {
            "format": STATE_FORMAT,
            "seed": data.seed,
            "rank": data.rank,
            "world_size": data.world_size,
            "num_workers": self.num_workers,
            "shuffle_buffer": data.shuffle_buffer,
            "next_worker": self.next_worker,
            "workers": [dict(p) if p is not None else None for p in self.positions],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s output. Written with another seed, buffer, number of processes or of
        workers, it cannot be continued exactly: the stream then restarts at the beginning of its epoch."""
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"Unknown stream state format {state.get('format')!r}; expected {STATE_FORMAT}.")
        current = self.state_dict()
        changed = [key for key in LAYOUT_KEYS if state.get(key) != current[key]]
        if changed:
            epoch = min((p["epoch"] for p in state["workers"] if p is not None), default=0)
            listed = ", ".join(f"{key} {state.get(key)} -> {current[key]}" for key in changed)
            logger.warning("The stream cannot continue exactly (%s): it restarts at epoch %d.", listed, epoch)
            restart = {"epoch": epoch, "block": 0, "taken": 0, "source": None}
            self.positions = [dict(restart, worker=w) for w in range(len(self.positions))]
            self.next_worker = 0
            return
        self.positions = [dict(p) if p is not None else None for p in state["workers"]]
        self.next_worker = int(state["next_worker"])
