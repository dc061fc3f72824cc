"""Padding of duration-bucketed batches (DurationBatchSampler) against plain shuffled batches.

Usage:
    python benchmarks/bucketing.py                         # LibriSpeech-like durations, target <= 10%
    python benchmarks/bucketing.py --manifest data/librispeech/train-clean-100.jsonl   # real durations
    python benchmarks/bucketing.py --manifest data/an4/train.jsonl --load --workers 1    # + loading speed

Padding fraction = padded audio / (batch size x longest item) summed over batches. Both samplers make the same
number of batches: the shuffled baseline uses the bucketing sampler's mean batch size.

With ``--load`` the files are read too, through the training DataLoader (our dataset and collate, pinned
memory when a GPU is present, ``--workers`` processes): audio-seconds of real audio delivered per second
and padded samples per second, for each sampler, one epoch each, the first ``--skip`` batches left out.

Without --manifest the durations are drawn from a parametric stand-in for train-clean-100, not from the
corpus itself: its published totals (28,539 utterances, 100.6 h, so a mean of 12.69 s; Panayotov et al.,
ICASSP 2015, Table 1), its range (about 1.3 s to 24.5 s) and its shape (most segments 11-17 s, as the
corpus was cut at pauses into segments of up to 35 s, with a tail of short ones): 80% normal(14.2 s, 1.6 s)
and 20% uniform(1.3 s, 12 s), clipped to [1.3 s, 24.5 s]. Pass a real manifest to measure the real thing.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

from asr.audio import SAMPLE_RATE
from asr.data import AsrDataset, DurationBatchSampler, collate, padding_fraction
from asr.manifest import read_manifest


def librispeech_like(n: int, seed: int = 0) -> list[float]:
    """``n`` durations (s) shaped like train-clean-100's (see the module docstring)."""
    rng = np.random.default_rng(seed)
    body = rng.normal(14.2, 1.6, n)
    tail = rng.uniform(1.3, 12.0, n)
    return np.clip(np.where(rng.random(n) < 0.8, body, tail), 1.3, 24.5).tolist()


def loading_speed(
    dataset: AsrDataset, batches: list[list[int]], workers: int, skip: int
) -> tuple[float, float]:
    """(real audio-seconds, padded audio-seconds) per second that a DataLoader over ``batches`` delivers."""
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
    )
    real = padded = 0
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        if i == skip:
            start = time.perf_counter()
        if i >= skip:
            real += int(batch.wave_lens.sum())
            padded += batch.waves.numel()
    elapsed = time.perf_counter() - start
    return real / SAMPLE_RATE / elapsed, padded / SAMPLE_RATE / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", help="take the durations from this manifest")
    p.add_argument(
        "--utts", type=int, default=28539, help="synthetic durations to draw (train-clean-100's count)"
    )
    p.add_argument("--batch-seconds", type=float, nargs="+", default=[300.0, 1200.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--load", action="store_true", help="also read the audio (needs --manifest)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers with --load")
    p.add_argument("--skip", type=int, default=2, help="batches left out of the --load timing")
    args = p.parse_args()
    if args.load and not args.manifest:
        p.error("--load needs --manifest")
    utts = read_manifest(args.manifest) if args.manifest else []
    durations = [u.duration for u in utts] if utts else librispeech_like(args.utts)
    dataset = AsrDataset([(u, []) for u in utts])
    source = args.manifest or "LibriSpeech-like synthetic durations"
    hours = sum(durations) / 3600
    print(f"{len(durations)} utterances, mean {np.mean(durations):.2f} s, {hours:.1f} h ({source})")
    for budget in args.batch_seconds:
        bucketed = list(DurationBatchSampler(durations, budget, seed=args.seed))
        size = max(1, round(len(durations) / len(bucketed)))
        order = list(range(len(durations)))
        random.Random(args.seed).shuffle(order)
        shuffled = [order[i : i + size] for i in range(0, len(order), size)]
        print(
            f"budget {budget:6.0f} s: {len(bucketed)} batches of {size} on average; "
            f"padding bucketed {100 * padding_fraction(bucketed, durations):.2f}%, "
            f"shuffled {100 * padding_fraction(shuffled, durations):.2f}%"
        )
        if args.load:
            for name, batches in (("bucketed", bucketed), ("shuffled", shuffled)):
                real, padded = loading_speed(dataset, batches, args.workers, args.skip)
                print(
                    f"  loading, {name}, {args.workers} worker(s): {real:.0f} audio-s/s of speech, "
                    f"{padded:.0f} audio-s/s padded into batches"
                )


if __name__ == "__main__":
    main()
