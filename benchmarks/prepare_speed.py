"""LibriSpeech manifest speed: utterances per second that asr.corpora.librispeech indexes.

Usage:
    python benchmarks/prepare_speed.py --utts 5000 --jobs 4          # target: >= 500 utt/s

Builds a fake subset in LibriSpeech's layout (``<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` plus
``<spk>-<chapter>.trans.txt``; 16 kHz FLAC of 2-20 s of noise) in a temporary folder, then times
``subset_entries``: reading the transcripts and every file's duration from its FLAC header, in parallel.
The files are written before the clock starts and are in the page cache, as on a second run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.corpora.librispeech import subset_entries


def make_subset(folder: Path, utts: int, per_chapter: int = 50, seed: int = 0) -> None:
    """``utts`` FLAC files of 2-20 s with transcripts, ``per_chapter`` to a chapter."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2 * 16000, 20 * 16000, size=utts)
    noise = (0.05 * rng.standard_normal(int(lengths.max()))).astype(np.float32)
    for start in range(0, utts, per_chapter):
        spk, chapter = 100 + start // per_chapter, 1000 + start // per_chapter
        d = folder / str(spk) / str(chapter)
        d.mkdir(parents=True)
        lines = []
        for i in range(start, min(start + per_chapter, utts)):
            utt = f"{spk}-{chapter}-{i - start:04d}"
            sf.write(d / f"{utt}.flac", noise[: lengths[i]], 16000, format="FLAC")
            lines.append(f"{utt} SOME WORDS OF TEXT {i}")
        (d / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utts", type=int, default=5000)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the best is reported")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "LibriSpeech" / "train-fake"
        make_subset(folder, args.utts)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            entries = subset_entries(folder, args.jobs)
            times.append(time.perf_counter() - start)
        assert len(entries) == args.utts
    best = min(times)
    print(
        f"manifest of {args.utts} utterances, {args.jobs} threads: {best:.2f} s, {args.utts / best:.0f} utt/s"
    )


if __name__ == "__main__":
    main()
