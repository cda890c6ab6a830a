"""Pairs per second through decode + paired augmentation (facades, 286 -> 256 crop + flip), 0 and 2 workers.

Measured:
    load_first_s / load_cached_s   load_pairs on the A|B folder: splitting the files into a fresh Arrow cache, then
                                   opening that cache again
    check_s                        check_pairs: decoding every pair once
    pairs_per_s[workers]           one shuffled epoch through DataLoader(PairedDataset, batch_size, collate_pairs),
                                   worker start-up included
    train_step_s                   one training step of the paper model (unet_256 + 70x70 PatchGAN, batch 1, 256x256,
                                   the default path of bench_train.py), for the goal: data at least 10x faster than
                                   training

Prints progress on stderr; the last line on stdout is one JSON object.

    python benchmarks/bench_data.py [--source ../shared/data/facades/train] [--workers 0 2] [--train_steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pix2pix_hub.data import PairedDataset, PairedTransform, check_pairs, collate_pairs, load_pairs

FACADES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "facades" / "train"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def epoch_rate(dataset: PairedDataset, workers: int, batch_size: int, epoch: int) -> float:
    """Pairs per second for one shuffled pass (worker start-up included)."""
    dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(epoch)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, collate_fn=collate_pairs, generator=generator
    )
    start = time.perf_counter()
    count = sum(batch["input"].shape[0] for batch in loader if batch is not None)
    return count / (time.perf_counter() - start)


def train_step_seconds(steps: int) -> float:
    """Seconds per step of the paper model on random 256x256 pairs, the default training path (one warm-up step)."""
    from bench_train import default_step  # this folder is on sys.path when the script runs

    step = default_step(1)
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(FACADES), help="paired source (default: the facades A|B folder)")
    parser.add_argument("--direction", default="BtoA")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch_size", type=int, default=1, help="1 = the paper")
    parser.add_argument("--epochs", type=int, default=2, help="passes per worker count (the best one is kept)")
    parser.add_argument("--load_size", type=int, default=286)
    parser.add_argument("--crop_size", type=int, default=256)
    parser.add_argument("--train_steps", type=int, default=3, help="paper-model steps to time (0: skip)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-data-") as cache:
        start = time.perf_counter()
        pairs = load_pairs(args.source, direction=args.direction, cache_dir=cache)
        load_first = time.perf_counter() - start
        start = time.perf_counter()
        pairs = load_pairs(args.source, direction=args.direction, cache_dir=cache)
        load_cached = time.perf_counter() - start
        log(f"load_pairs: {len(pairs)} pairs, {load_first:.2f} s first, {load_cached:.3f} s cached")
        start = time.perf_counter()
        check_pairs(pairs)
        check = time.perf_counter() - start
        log(f"check_pairs: {check:.2f} s")

        dataset = PairedDataset(pairs, PairedTransform(args.load_size, args.crop_size), seed=0)
        rates = {}
        for workers in args.workers:
            best = max(epoch_rate(dataset, workers, args.batch_size, epoch) for epoch in range(args.epochs))
            rates[str(workers)] = round(best, 1)
            log(f"{workers} workers: {best:.1f} pairs/s")

    result = {
        "benchmark": "data",
        "source": os.path.relpath(args.source) if os.path.exists(args.source) else args.source,
        "pairs": len(pairs),
        "load_size": args.load_size,
        "crop_size": args.crop_size,
        "batch_size": args.batch_size,
        "load_first_s": round(load_first, 3),
        "load_cached_s": round(load_cached, 3),
        "check_s": round(check, 3),
        "pairs_per_s": rates,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if args.train_steps:
        seconds = train_step_seconds(args.train_steps)
        log(f"paper train step: {seconds:.2f} s")
        result["train_step_s"] = round(seconds, 3)
        result["data_vs_train_speed"] = {w: round(rate * seconds / args.batch_size, 1) for w, rate in rates.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
