"""A run's data: the training and validation pairs, the training batches, and where the data stands for a resume.

``load_training_data(config, size_multiple, accelerator)`` gives one of two ``TrainingData`` objects, which the
``Trainer`` uses alike:

    MapData      a dataset read whole (folders, parquet, Arrow, a Hub dataset): epochs of known length, ordered by
                 ``EpochShuffler``, its loader prepared by Accelerate (which shares each batch out to the
                 processes); a resumed run skips the batches its epoch has already seen.
    StreamData   ``--streaming``: this process's endless share of a stream (``data.streaming``), never prepared;
                 its position is saved in the checkpoint, and a resumed run continues from it.

Either way the validation pairs are a ``PairedDataset`` in memory. Plain functions of a ``TrainingConfig`` build
them (``load_datasets``, ``load_stream_datasets``), so tests and benchmarks load exactly what ``train()`` loads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from torch.utils.data import DataLoader, Sampler

from ..data import PairedDataset, PairedTransform, check_pairs, collate_pairs, load_pairs, split_pairs
from ..data.streaming import StreamingPairs, StreamLoader, first_rows, row_keys, take_validation
from .config import AUTO_VAL_MAX, AUTO_VAL_MIN, TrainingConfig
from .errors import DatasetError, MissingDatasetError

Batch = dict[str, torch.Tensor]


class TrainingData:
    """The pairs of one run (``train_set``, ``val_set``) and how its training batches come; see the module
    docstring. ``prepare`` must be called before ``updates_per_epoch``, ``batches`` and the state methods."""

    train_set: PairedDataset | StreamingPairs
    val_set: PairedDataset
    description: str  # how many training pairs, for the start-up line

    def __init__(self, config: TrainingConfig) -> None:
        self.config = config
        self.accelerator: Accelerator | None = None

    def prepare(self, accelerator: Accelerator, *objects: Any) -> tuple[Any, ...]:
        """``accelerator.prepare(*objects)`` (networks, optimizers) together with what the data needs prepared."""
        raise NotImplementedError

    @property
    def updates_per_epoch(self) -> int:
        """Optimizer updates in one epoch of this process (the learning-rate policy's epoch)."""
        raise NotImplementedError

    def batches(self, step: Callable[[], int], total_steps: int) -> Iterator[tuple[int, Batch | None]]:
        """``(epoch, batch)`` on the device from where the run stands (``step()``, read as the run goes) until
        ``total_steps``; ``None`` for a batch whose pairs were all skipped as unreadable (``--skip_bad_samples``)."""
        raise NotImplementedError

    def first_good_batch(self) -> Batch:
        """A one-pair batch of the first decodable training pair (on the CPU)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Where the data stands, for the checkpoint's trainer state (JSON values; called in every process)."""
        return {}

    def load_state_dict(self, trainer_state: dict[str, Any]) -> None:
        """Continue from ``state_dict()``'s entries of a checkpoint's trainer state."""

    @property
    def skipped_count(self) -> int:
        """Unreadable pairs skipped so far (``--skip_bad_samples``), training and validation."""
        return self.train_set.skipped_count + self.val_set.skipped_count

    @property
    def val_pairs_held_out(self) -> int:
        """How many pairs validation holds out of the training split (0: it validates on training pairs)."""
        return 0 if self.val_set.pairs is self.train_set.pairs else len(self.val_set)

    def calibration_set(self) -> PairedDataset:
        """Training pairs as validation sees them (no crop jitter, no flip), for ``--export_int8``'s calibration."""
        return PairedDataset(self.train_set.pairs, self.val_set.transform, seed=self.config.seed, skip_bad_samples=True)


class MapData(TrainingData):
    """A dataset of known length, shuffled per epoch by ``EpochShuffler``; its loader is prepared by Accelerate."""

    def __init__(self, config: TrainingConfig, train_set: PairedDataset, val_set: PairedDataset) -> None:
        super().__init__(config)
        self.train_set, self.val_set = train_set, val_set
        self.description = str(len(train_set))

    def prepare(self, accelerator: Accelerator, *objects: Any) -> tuple[Any, ...]:
        self.accelerator = accelerator
        self.sampler = EpochShuffler(len(self.train_set), self.config.seed)
        loader = make_loader(self.config, self.train_set, self.sampler, accelerator.device)
        *prepared, self.loader = accelerator.prepare(*objects, loader)
        return tuple(prepared)

    @property
    def updates_per_epoch(self) -> int:
        return math.ceil(len(self.loader) / self.config.gradient_accumulation_steps)

    def batches(self, step: Callable[[], int], total_steps: int) -> Iterator[tuple[int, Batch | None]]:
        """A resumed run skips the batches its epoch has already seen."""
        per_epoch = self.updates_per_epoch
        for epoch in range(step() // per_epoch, math.ceil(total_steps / per_epoch)):
            if step() >= total_steps:
                return
            self.train_set.set_epoch(epoch)
            self.sampler.set_epoch(epoch)
            loader = self.loader
            skip = (step() - epoch * per_epoch) * self.config.gradient_accumulation_steps
            if skip > 0:
                loader = self.accelerator.skip_first_batches(self.loader, skip)
            loader.set_epoch(epoch)
            for batch in loader:
                yield epoch, batch

    def first_good_batch(self) -> Batch:
        return collate_pairs([self.train_set.first_good_item()])  # a one-line BadSampleError when none is good


class StreamData(TrainingData):
    """``--streaming``: this process's share of the stream, batched by a ``StreamLoader`` (not prepared: the share
    is split already) whose position the checkpoint keeps."""

    description = "a stream of"

    def __init__(self, config: TrainingConfig, train_set: StreamingPairs, val_set: PairedDataset) -> None:
        super().__init__(config)
        self.train_set, self.val_set = train_set, val_set

    def prepare(self, accelerator: Accelerator, *objects: Any) -> tuple[Any, ...]:
        self.accelerator = accelerator
        self.loader = make_stream_loader(self.config, self.train_set, accelerator.device)
        return accelerator.prepare(*objects)

    @property
    def updates_per_epoch(self) -> int:
        return stream_updates_per_epoch(self.config)

    def batches(self, step: Callable[[], int], total_steps: int) -> Iterator[tuple[int, Batch | None]]:
        """Endless; a resumed stream starts where its checkpoint left it."""
        if step() >= total_steps:
            return
        for batch in self.loader:
            if batch is not None:
                batch = {key: value.to(self.accelerator.device) for key, value in batch.items()}
            yield self.loader.epoch, batch

    def first_good_batch(self) -> Batch:
        return self.train_set.first_good_batch()

    def state_dict(self) -> dict[str, Any]:
        """Every process's stream position, in the JSON file the main process writes."""
        return {"stream": gather_object([self.loader.state_dict()])}

    def load_state_dict(self, trainer_state: dict[str, Any]) -> None:
        """This process's position; written with another layout, the stream restarts its epoch (``StreamLoader``)."""
        streams = trainer_state.get("stream") or [None]
        stream = streams[min(self.accelerator.process_index, len(streams) - 1)]
        if stream is not None:
            self.loader.load_state_dict(stream)


def load_training_data(config: TrainingConfig, size_multiple: int, accelerator: Accelerator) -> TrainingData:
    """The run's ``MapData``, or its ``StreamData`` with ``--streaming`` (this process's share of the stream).
    The start-up line says how the validation pairs were chosen when ``--val_size`` was left unset."""
    if config.streaming:
        rank, world_size = accelerator.process_index, accelerator.num_processes
        return StreamData(config, *load_stream_datasets(config, size_multiple, rank, world_size))
    return MapData(config, *load_datasets(config, size_multiple, say=accelerator.print))


# ----- the datasets ----------------------------------------------------------------------------------------------
class EpochShuffler(Sampler[int]):
    """A permutation of ``range(size)`` drawn from ``(seed, epoch)`` only: identical in every process and after a
    resume, and it never touches the global RNG (which dropout uses and checkpoints restore)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


def held_out_count(val_size: float | None, total: int) -> int:
    """Pairs of ``total`` to hold out for validation: ``val_size`` pairs, or that fraction of them (at least 1, as
    ``split_pairs`` rounds); unset: ``AUTO_VAL_MAX`` but at most a tenth of them, and none (0: validate on the
    training pairs) when that would be fewer than ``AUTO_VAL_MIN``."""
    if val_size is None:
        count = min(AUTO_VAL_MAX, total // 10)
        return count if count >= AUTO_VAL_MIN else 0
    return max(1, int(round(total * val_size))) if val_size < 1 else int(val_size)


def make_transforms(config: TrainingConfig, size_multiple: int) -> tuple[PairedTransform, PairedTransform]:
    """``(train, validation)`` transforms: random crops and flips for training, deterministic for validation."""
    common = {"load_size": config.load_size, "crop_size": config.crop_size, "preprocess": config.preprocess}
    common.update(input_nc=config.input_nc, output_nc=config.output_nc, size_multiple=size_multiple)
    common.update(label_nc=config.label_nc, instance=config.instance, dontcare=config.contain_dontcare_label)
    train = PairedTransform(flip=not config.no_flip, train=True, **common)
    return train, PairedTransform(flip=False, train=False, **common)


def instance_column(config: TrainingConfig) -> str | None:
    """The dataset column of the instance maps with ``--instance`` (an I/ folder's is ``instance``), else None."""
    return config.column_instance if config.instance else None


def pairs_of(config: TrainingConfig, split: str, streaming: bool = False) -> Any:
    """``load_pairs`` of ``--dataset``'s ``split`` as ``config`` says (a stream with ``streaming``: nothing is
    cached, so ``--cache_dir`` does not apply)."""
    try:
        return load_pairs(
            config.dataset, split=split, direction=config.direction, column_a=config.column_a,
            column_b=config.column_b, streaming=streaming, cache_dir=None if streaming else config.cache_dir,
            column_instance=instance_column(config),
        )  # fmt: skip
    except FileNotFoundError as error:
        raise MissingDatasetError(f"--dataset {config.dataset}: {error}") from error


def load_datasets(
    config: TrainingConfig, size_multiple: int, say: Callable[[str], None] | None = None
) -> tuple[PairedDataset, PairedDataset]:
    """``(train, validation)`` ``PairedDataset``s; every pair is decoded once first (fail fast, rows named).
    ``say`` is told how the validation pairs were chosen when ``--val_size`` was left unset."""
    pairs = pairs_of(config, config.split)
    if config.validation_split:
        train_pairs, val_pairs = pairs, pairs_of(config, config.validation_split)
    else:
        train_pairs, val_pairs = hold_out(pairs, config, say)
    if config.max_train_samples is not None and config.max_train_samples < len(train_pairs):
        # After the split, so the validation pairs are the same as in the full run (or, when validation uses the
        # training pairs, the pairs actually trained on).
        same = val_pairs is train_pairs
        train_pairs = train_pairs.select(range(config.max_train_samples))
        val_pairs = train_pairs if same else val_pairs
    train_transform, val_transform = make_transforms(config, size_multiple)
    if not config.skip_bad_samples:  # decoding, sizes, label values and instance maps, each bad file named
        check_pairs(train_pairs, transform=train_transform)
        check_pairs(val_pairs, transform=val_transform)
    train = PairedDataset(train_pairs, train_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples)
    val = PairedDataset(val_pairs, val_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples)
    if config.skip_bad_samples:
        train.first_good_item()  # skipping every pair leaves nothing to train on: say so now, in one line
    return train, val


def hold_out(pairs: Any, config: TrainingConfig, say: Callable[[str], None] | None) -> tuple[Any, Any]:
    """``(train, validation)`` rows of ``pairs`` as ``--val_size`` asks; with none held out, both are all of it."""
    total = len(pairs)
    count = held_out_count(config.val_size, total)
    if count >= total:
        raise DatasetError(
            f"--val_size {config.val_size} leaves no training pairs: {config.dataset} has {total} pairs "
            f"in split {config.split!r}. Lower --val_size, or leave it unset to choose by the dataset's size."
        )
    if config.val_size is None and say is not None:
        if count:
            say(f"Holding out {count} of {total} pairs for validation (--val_size unset; pass it to choose).")
        else:
            say(
                f"Validating on the training pairs: {total} pairs are too few to hold some out (--val_size unset; "
                "pass --val_size or --validation_split to hold out pairs anyway)."
            )
    if count == 0:
        return pairs, pairs
    return split_pairs(pairs, val_size=count, seed=config.seed)


def load_stream_datasets(
    config: TrainingConfig, size_multiple: int, rank: int, world_size: int
) -> tuple[StreamingPairs, PairedDataset]:
    """``--streaming``: this process's share of the stream, and the validation pairs in memory: the first
    ``--val_size`` rows (unset: ``AUTO_VAL_MAX``) of ``--validation_split``, or of the stream itself (then never
    trained on, in any process)."""
    pairs = pairs_of(config, config.split, streaming=True)
    count = AUTO_VAL_MAX if config.val_size is None else int(config.val_size)
    if config.validation_split:
        val_pairs = first_rows(pairs_of(config, config.validation_split, streaming=True), count)
        held_out = frozenset()
    else:
        val_pairs = take_validation(pairs, count)
        held_out = row_keys(val_pairs)
    train_transform, val_transform = make_transforms(config, size_multiple)
    if not config.skip_bad_samples:
        check_pairs(val_pairs, transform=val_transform)  # the stream's own rows are checked as they come
    train = StreamingPairs(
        pairs, train_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples,
        shuffle_buffer=config.shuffle_buffer, rank=rank, world_size=world_size, exclude=held_out,
    )  # fmt: skip
    val = PairedDataset(val_pairs, val_transform, seed=config.seed, skip_bad_samples=config.skip_bad_samples)
    return train, val


# ----- the loaders -----------------------------------------------------------------------------------------------
def make_loader(config: TrainingConfig, dataset: PairedDataset, sampler: EpochShuffler, device: torch.device):
    """The training ``DataLoader`` (not yet prepared): ``sampler`` orders it, batches are ``collate_pairs``'s."""
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.dataloader_num_workers,
        collate_fn=collate_pairs,
        pin_memory=device.type == "cuda",
        # Its own generator: worker seeds must not consume the global RNG, or a resumed run would diverge.
        generator=torch.Generator().manual_seed(config.seed),
    )


def stream_updates_per_epoch(config: TrainingConfig) -> int:
    """``--streaming``: the learning-rate policy's epoch, ``--max_train_steps`` spread evenly over
    ``--n_epochs + --n_epochs_decay`` (a stream has no known length)."""
    return max(1, math.ceil(config.max_train_steps / max(1, config.n_epochs + config.n_epochs_decay)))


def make_stream_loader(config: TrainingConfig, dataset: StreamingPairs, device: torch.device) -> StreamLoader:
    """``--streaming``: batches of this process's share, on the CPU (``StreamData.batches`` moves them); never
    prepared."""
    pin_memory = device.type == "cuda"
    return StreamLoader(
        dataset, batch_size=config.batch_size, num_workers=config.dataloader_num_workers, pin_memory=pin_memory
    )
