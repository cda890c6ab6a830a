"""Paired data for pix2pix on 🤗 datasets: sources, paired transforms, torch datasets, fail-fast checks.

    pairs = load_pairs("huggan/facades", direction="BtoA")        # or a folder, A/ B/ folders, parquet, ...
    check_pairs(pairs)                                              # every row decodes, sizes match
    prepare_dataset("facades/", "facades-pairs")                    # imageA/imageB splits, save_to_disk (+ Hub)
    train, val = split_pairs(pairs, val_size=0.1)
    data = PairedDataset(train, PairedTransform(286, 256), seed=0)  # {"input", "target", "index"} in [-1, 1]
    loader = DataLoader(data, batch_size=1, shuffle=True, num_workers=2, collate_fn=collate_pairs)

``datasets`` is imported when a function needs it; ``import pix2pix_hub`` alone never imports this package.
"""

from ..images.reading import open_image
from .checks import BadSampleError, PairsReport, check_pairs, open_pair, raw_rows, scan_pairs
from .dataset import PairedDataset, PairedIterableDataset, collate_pairs, sample_seed
from .errors import DatasetUnavailableError, PairsSourceError
from .prepare import prepare_dataset
from .sources import DIRECTIONS, SourceInfo, load_pairs, open_source, select_pairs, split_pairs
from .transforms import PREPROCESS_MODES, PairedTransform

__all__ = [
    "DIRECTIONS",
    "PREPROCESS_MODES",
    "BadSampleError",
    "DatasetUnavailableError",
    "PairedDataset",
    "PairedIterableDataset",
    "PairedTransform",
    "PairsReport",
    "PairsSourceError",
    "SourceInfo",
    "check_pairs",
    "collate_pairs",
    "load_pairs",
    "open_image",
    "open_pair",
    "open_source",
    "prepare_dataset",
    "raw_rows",
    "sample_seed",
    "scan_pairs",
    "select_pairs",
    "split_pairs",
]
