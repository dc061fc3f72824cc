"""Padding of duration-bucketed batches (DurationBatchSampler) against plain shuffled batches.

Usage:
    python benchmarks/bucketing.py                         # LibriSpeech-like durations, target <= 10%
    python benchmarks/bucketing.py --manifest data/librispeech/train-clean-100.jsonl   # real durations

Padding fraction = padded audio / (batch size x longest item) summed over batches. Both samplers make the same
number of batches: the shuffled baseline uses the bucketing sampler's mean batch size.

Without --manifest the durations are drawn from a parametric stand-in for train-clean-100, not from the
corpus itself: its published totals (28,539 utterances, 100.6 h, so a mean of 12.69 s; Panayotov et al.,
ICASSP 2015, Table 1), its range (about 1.3 s to 24.5 s) and its shape (most segments 11-17 s, as the
corpus was cut at pauses into segments of up to 35 s, with a tail of short ones): 80% normal(14.2 s, 1.6 s)
and 20% uniform(1.3 s, 12 s), clipped to [1.3 s, 24.5 s]. Pass a real manifest to measure the real thing.
"""

from __future__ import annotations

import argparse
import random

import numpy as np

from asr.data import DurationBatchSampler, padding_fraction
from asr.manifest import read_manifest


def librispeech_like(n: int, seed: int = 0) -> list[float]:
    """``n`` durations (s) shaped like train-clean-100's (see the module docstring)."""
    rng = np.random.default_rng(seed)
    body = rng.normal(14.2, 1.6, n)
    tail = rng.uniform(1.3, 12.0, n)
    return np.clip(np.where(rng.random(n) < 0.8, body, tail), 1.3, 24.5).tolist()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", help="take the durations from this manifest")
    p.add_argument(
        "--utts", type=int, default=28539, help="synthetic durations to draw (train-clean-100's count)"
    )
    p.add_argument("--batch-seconds", type=float, nargs="+", default=[300.0, 1200.0])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    durations = (
        [u.duration for u in read_manifest(args.manifest)] if args.manifest else librispeech_like(args.utts)
    )
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


if __name__ == "__main__":
    main()
