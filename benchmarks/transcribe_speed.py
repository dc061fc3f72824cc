"""Transcription speed: real-time factor on a manifest, and process start to first output of `asr transcribe`.

Usage:
    python benchmarks/transcribe_speed.py --model exp/an4/model.pt --manifest data/an4/test.jsonl

Real-time factor = compute seconds / audio seconds (lower is faster), greedy decoding, measured after the
model is loaded: "model" times the batched forward pass and decoding on waveforms already in memory, "files"
adds reading and resampling the files. Start-up is the wall time of a fresh `asr transcribe FILE` process
until it exits (import, load, one short file), median of 3 runs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch

from asr.audio import load_audio
from asr.checkpoint import load_model
from asr.inference import transcribe_files
from asr.manifest import read_manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    start = time.perf_counter()
    model = load_model(args.model)
    load_s = time.perf_counter() - start
    utts = read_manifest(args.manifest)
    paths = [u.audio_filepath for u in utts]
    waves = [load_audio(path) for path in paths]
    audio_s = sum(len(w) for w in waves) / 16000
    model.transcribe(waves[:4])  # warm-up

    def timed(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    rtf_model = timed(lambda: model.transcribe(waves)) / audio_s
    rtf_files = timed(lambda: transcribe_files(model, paths)) / audio_s
    short = min(paths, key=lambda path: len(load_audio(path)))
    startup = []
    for _ in range(3):
        t = time.perf_counter()
        command = [sys.executable, "-m", "asr.cli", "transcribe", short, "--model", args.model]
        subprocess.run(command, check=True, capture_output=True)
        startup.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"files: {len(paths)}, audio {audio_s:.1f} s; torch threads {torch.get_num_threads()}")
    print(f"model load: {load_s:.2f} s")
    print(f"real-time factor, model only: {rtf_model:.4f}  ({1 / rtf_model:.0f}x faster than real time)")
    print(f"real-time factor, with file reading: {rtf_files:.4f}")
    print(f"process start to output, one short file: {statistics.median(startup):.2f} s")
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
