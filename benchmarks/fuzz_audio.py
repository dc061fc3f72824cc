"""A longer audio fuzz than the test suite's: mutated WAV/FLAC/OGG/MP3/SPH files and random bytes.

Usage:
    python benchmarks/fuzz_audio.py --cases 20000 [--seed 0] [--keep failures/]

Each case is a valid file with one to four byte-level mutations (overwrite, insert, delete, truncate;
positions skewed towards the header), or random bytes. ``asr.audio.load_audio`` must return a waveform or
raise ``AudioError``; anything else is a bug: the file is kept in ``--keep`` and the exit code is 1. Prints
outcome counts per container and cases per second. Each case runs in this process, so a crash in a native
decoder ends the run: rerun with the same ``--seed`` and a smaller ``--cases`` to find it.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE, AudioError, load_audio

SEEDS = [
    ("wav", "WAV", "PCM_16"),
    ("flac", "FLAC", "PCM_24"),
    ("ogg", "OGG", "VORBIS"),
    ("mp3", "MP3", "MPEG_LAYER_III"),
    ("sph", "NIST", "PCM_16"),
]


def mutate(data: bytes, mutations: list[tuple[str, float, bytes]]) -> bytes:
    """Apply byte-level mutations; positions are skewed towards the header, where parsers branch most.

    tests/test_fuzz.py draws its mutations with hypothesis and applies them with this function.
    """
    out = bytearray(data)
    for kind, where, chunk in mutations:
        at = int(where**3 * len(out))
        if kind == "overwrite":
            out[at : at + len(chunk)] = chunk
        elif kind == "insert":
            out[at:at] = chunk
        elif kind == "delete":
            del out[at : at + len(chunk)]
        else:
            del out[at:]
    return bytes(out)


def mutations(rng: random.Random) -> list[tuple[str, float, bytes]]:
    """One to four overwrites, inserts, deletes or truncations, for :func:`mutate`."""
    return [
        (
            rng.choice(("overwrite", "insert", "delete", "truncate")),
            rng.random(),
            bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))),
        )
        for _ in range(rng.randint(1, 4))
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=5000, help="files to try (default 5000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--keep", default="fuzz-failures", help="folder for files that raised anything else")
    args = p.parse_args()
    rng = random.Random(args.seed)
    counts: Counter[tuple[str, str]] = Counter()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        seconds = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
        wave = 0.5 * np.sin(2 * np.pi * 440 * seconds) * np.linspace(0, 1, len(seconds))
        seeds = {}
        for ext, fmt, subtype in SEEDS:
            sf.write(folder / f"seed.{ext}", wave, SAMPLE_RATE, format=fmt, subtype=subtype)
            seeds[ext] = (folder / f"seed.{ext}").read_bytes()
        start = time.perf_counter()
        for case in range(args.cases):
            ext = rng.choice([*seeds, "random"])
            if ext == "random":
                data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 1000)))
                path = folder / f"case.{rng.choice([e for e, _, _ in SEEDS])}"
            else:
                data = mutate(seeds[ext], mutations(rng))
                path = folder / f"case.{ext}"
            path.write_bytes(data)
            try:
                load_audio(path)
                outcome = "waveform"
            except AudioError:
                outcome = "AudioError"
            except Exception:  # the bug this script looks for
                outcome = "OTHER"
                failures += 1
                keep = Path(args.keep)
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, keep / f"case{case}{path.suffix}")
                print(f"case {case}: {traceback.format_exc().strip().splitlines()[-1]}", file=sys.stderr)
            counts[ext, outcome] += 1
        elapsed = time.perf_counter() - start
    print(f"{'source':8} {'waveform':>9} {'AudioError':>11} {'OTHER':>6}")
    for ext in [*seeds, "random"]:
        print(
            f"{ext:8} {counts[ext, 'waveform']:9d} {counts[ext, 'AudioError']:11d} {counts[ext, 'OTHER']:6d}"
        )
    print(
        f"{args.cases} cases in {elapsed:.1f} s ({args.cases / elapsed:.0f} per second), {failures} failures"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
