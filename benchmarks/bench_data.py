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
    stream                         ``--stream_pairs`` generated 256x256 JPEG pairs in parquet shards, read two ways at
                                   each worker count: ``streaming`` (StreamingPairs + StreamLoader, what --streaming
                                   trains from) and ``map`` (load_pairs into an Arrow cache + PairedDataset, shuffled
                                   like training): pairs/s over ``--stream_limit`` pairs after a warm-up, and the
                                   resident memory of the main process and of its workers sampled as it runs (flat:
                                   ``rss_growth_mb`` near 0)

``--max_seconds`` (default 60) bounds each timing: the epochs of a worker count, the pairs of a stream case and
the training steps stop once it has passed (at least one of each; the report says how many ran).

Prints progress on stderr; the last line on stdout is one JSON object.

    python benchmarks/bench_data.py [--source ../shared/data/facades/train] [--workers 0 2] [--train_steps 3]
                                    [--stream_pairs 10000] [--stream_limit 2000] [--stream_only]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import TimeBound, write_report  # this folder is on sys.path when the script runs
from PIL import Image
from torch.utils.data import DataLoader

from pix2pix_hub.data import PairedDataset, PairedTransform, check_pairs, collate_pairs, load_pairs
from pix2pix_hub.data.streaming import StreamingPairs, StreamLoader

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


# ----- the streaming case -----------------------------------------------------------------------------------------
def jpeg(array: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return {"bytes": buffer.getvalue(), "path": None}


def write_shards(folder: Path, count: int, shards: int, side: int) -> str:
    """``count`` pairs of ``side`` x ``side`` JPEGs (smooth colour blocks, B = A reversed and inverted) in ``shards``
    parquet files, about as large per pair as photos of that size compress to; returns their glob."""
    import datasets

    features = datasets.Features({"imageA": datasets.Image(), "imageB": datasets.Image()})
    rng = np.random.default_rng(0)
    for shard, ids in enumerate(np.array_split(np.arange(count), shards)):
        rows = {"imageA": [], "imageB": []}
        for _ in ids:
            blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
            a = np.kron(blocks, np.ones((side // 8, side // 8, 1), dtype=np.uint8))
            a = np.clip(a.astype(np.int16) + rng.integers(-12, 13, a.shape), 0, 255).astype(np.uint8)  # texture
            rows["imageA"].append(jpeg(a))
            rows["imageB"].append(jpeg(255 - a[:, :, ::-1]))
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"shard-{shard:03d}.parquet"))
    return str(folder / "*.parquet")


def worker_rss_mb() -> float:
    """Resident memory of this process's children (the DataLoader workers), summed, in MB (Linux; 0 elsewhere)."""
    total = 0
    for children in Path("/proc/self/task").glob("*/children"):
        for pid in children.read_text().split():
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue  # ended meanwhile
    return total * resource.getpagesize() / 2**20


def timed_pairs(batches, limit: int, warmup: int, max_seconds: float | None = None) -> dict:
    """Pairs/s over ``limit`` pairs of ``batches`` (fewer once ``max_seconds`` have passed) after ``warmup``
    pairs, with resident memory sampled about once a second: ``[[seconds, main MB, workers MB], ...]``."""
    from pix2pix_hub.performance import rss_mb

    counted, started, samples, last = -warmup, None, [], 0.0
    for batch in batches:
        counted += 0 if batch is None else batch["input"].shape[0]
        if started is None and counted >= 0:
            started, counted = time.perf_counter(), 0
        if started is not None:
            now = time.perf_counter() - started
            if now - last >= 1.0 or not samples:
                samples.append([round(now, 1), round(rss_mb() or 0.0, 1), round(worker_rss_mb(), 1)])
                last = now
            if counted >= limit or (max_seconds is not None and counted > 0 and now >= max_seconds):
                break
    seconds = time.perf_counter() - started
    growth = round((samples[-1][1] + samples[-1][2]) - (samples[0][1] + samples[0][2]), 1)
    return {"pairs_per_s": round(counted / seconds, 1), "pairs": counted, "rss_mb": samples, "rss_growth_mb": growth}


def stream_case(files: str, kind: str, workers: int, transform: PairedTransform, args) -> dict:
    """One way of reading the shards (``streaming`` or ``map``) at ``workers`` DataLoader workers."""
    if kind == "streaming":
        dataset = StreamingPairs(load_pairs(files, streaming=True), transform, shuffle_buffer=args.shuffle_buffer)
        batches = iter(StreamLoader(dataset, batch_size=args.batch_size, num_workers=workers))
    else:
        dataset = PairedDataset(load_pairs(files, cache_dir=args.map_cache), transform)
        loader = DataLoader(
            dataset, args.batch_size, shuffle=True, num_workers=workers, collate_fn=collate_pairs,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        batches = itertools.chain.from_iterable(itertools.repeat(loader))
    result = timed_pairs(batches, args.stream_limit, warmup=args.stream_warmup, max_seconds=args.max_seconds)
    del batches  # stops the workers
    log(f"{kind}, {workers} workers: {result['pairs_per_s']} pairs/s, memory growth {result['rss_growth_mb']} MB")
    return result


def streaming_benchmark(args) -> dict:
    """Streaming against map-style reading of the same generated parquet shards, at each worker count."""
    transform = PairedTransform(args.load_size, args.crop_size)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as folder:
        start = time.perf_counter()
        files = write_shards(Path(folder), args.stream_pairs, args.stream_shards, args.crop_size)
        size = sum(p.stat().st_size for p in Path(folder).glob("*.parquet"))
        log(f"{args.stream_pairs} pairs in {args.stream_shards} shards: {size / 2**20:.0f} MB, "
            f"{time.perf_counter() - start:.0f} s")  # fmt: skip
        args.map_cache = str(Path(folder) / "arrow-cache")
        start = time.perf_counter()
        load_pairs(files, cache_dir=args.map_cache)
        map_load = time.perf_counter() - start
        log(f"map-style: Arrow cache built in {map_load:.1f} s (streaming reads the shards as they are)")
        cases = {
            f"{kind}_{workers}_workers": stream_case(files, kind, workers, transform, args)
            for workers in args.workers
            for kind in ("streaming", "map")
        }
    return {
        "pairs": args.stream_pairs,
        "shards": args.stream_shards,
        "image_side": args.crop_size,
        "parquet_mb": round(size / 2**20, 1),
        "shuffle_buffer": args.shuffle_buffer,
        "timed_pairs": args.stream_limit,
        "map_cache_build_s": round(map_load, 1),
        "cases": cases,
    }


def train_step_seconds(steps: int, max_seconds: float | None = None) -> float:
    """Seconds per step of the paper model on random 256x256 pairs, the default training path (one warm-up step;
    fewer than ``steps`` timed once ``max_seconds`` have passed)."""
    from bench_train import default_step  # this folder is on sys.path when the script runs

    step = default_step(1)
    step()
    start, done = time.perf_counter(), 0
    for _ in TimeBound(max_seconds).loop(steps):
        step()
        done += 1
    return (time.perf_counter() - start) / done


def facades_benchmark(args) -> dict:
    """The A|B folder: loading, checking and one shuffled epoch per worker count."""
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
            epochs = TimeBound(args.max_seconds).loop(args.epochs)
            best = max(epoch_rate(dataset, workers, args.batch_size, epoch) for epoch in epochs)
            rates[str(workers)] = round(best, 1)
            log(f"{workers} workers: {best:.1f} pairs/s")
    return {
        "source": os.path.relpath(args.source) if os.path.exists(args.source) else args.source,
        "pairs": len(pairs),
        "load_first_s": round(load_first, 3),
        "load_cached_s": round(load_cached, 3),
        "check_s": round(check, 3),
        "pairs_per_s": rates,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(FACADES), help="paired source (default: the facades A|B folder)")
    parser.add_argument("--direction", default="BtoA")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch_size", type=int, default=1, help="1 = the paper")
    parser.add_argument("--epochs", type=int, default=2, help="passes per worker count (the best one is kept)")
    parser.add_argument("--load_size", type=int, default=286)
    parser.add_argument("--crop_size", type=int, default=256)
    parser.add_argument("--train_steps", type=int, default=3, help="paper-model steps to time (0: skip)")
    parser.add_argument("--stream_pairs", type=int, default=10_000, help="generated pairs in parquet (0: skip)")
    parser.add_argument("--stream_shards", type=int, default=16)
    parser.add_argument("--stream_limit", type=int, default=2000, help="pairs timed per case")
    parser.add_argument("--stream_warmup", type=int, default=50, help="pairs read before the clock starts")
    parser.add_argument("--shuffle_buffer", type=int, default=1000, help="the streaming case's --shuffle_buffer")
    parser.add_argument("--stream_only", action="store_true", help="skip the facades folder")
    parser.add_argument("--max_seconds", type=float, default=60.0, help="time bound of each timing")
    parser.add_argument("--json_out", help="also write the report to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    result = {"benchmark": "data", "load_size": args.load_size, "crop_size": args.crop_size}
    result["batch_size"] = args.batch_size
    if not args.stream_only:
        result.update(facades_benchmark(args))
    if args.stream_pairs:
        result["stream"] = streaming_benchmark(args)
    result.update(cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__)
    result.update(python=platform.python_version(), load_average=round(os.getloadavg()[0], 1))
    if args.train_steps:
        seconds = train_step_seconds(args.train_steps, args.max_seconds)
        log(f"paper train step: {seconds:.2f} s")
        result["train_step_s"] = round(seconds, 3)
        rates = dict(result.get("pairs_per_s", {}))
        rates.update({name: case["pairs_per_s"] for name, case in result.get("stream", {}).get("cases", {}).items()})
        result["data_vs_train_speed"] = {
            name: round(rate * seconds / args.batch_size, 1) for name, rate in rates.items()
        }
    result["max_seconds"] = args.max_seconds
    write_report(result, args.json_out)


if __name__ == "__main__":
    main()
