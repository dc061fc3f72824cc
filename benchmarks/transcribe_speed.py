"""Transcription speed: real-time factor on a manifest, and process start to first output of `asr transcribe`;
with --long-minutes, real-time factor and peak memory of `asr transcribe` on one long generated file.

Usage:
    python benchmarks/transcribe_speed.py --model exp/an4/model.pt --manifest data/an4/test.jsonl
    python benchmarks/transcribe_speed.py --model exp/an4/model.pt --long-minutes 60

Real-time factor = compute seconds / audio seconds (lower is faster), greedy decoding, measured after the
model is loaded: "model" times the batched forward pass and decoding on waveforms already in memory, "files"
adds reading and resampling the files. Start-up is the wall time of a fresh `asr transcribe FILE` process
until it exits (import, load, one short file), median of 3 runs.

Long file: eSpeak NG sentences with pauses, repeated to ``--long-minutes``, written block by block as 16-bit
WAV, then one `asr transcribe LONG.wav` process (windows of 30 s, the default); its wall time from start to
exit (start-up included) over the audio duration is the real-time factor, and its peak resident memory is the
process's own (targets: RTF <= 0.03, under 2 GB).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from asr.audio import SAMPLE_RATE, load_audio
from asr.inference import Transcriber
from asr.manifest import read_manifest

SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "please put the red book on the kitchen table",
    "we waited at the station until the last train left",
    "seven green bottles stood on the wall near the window",
)


def write_long_file(path: Path, minutes: float) -> float:
    """Speech repeated to ``minutes``, written a piece at a time; returns the duration in seconds."""
    from asr.synth import synthesize

    pause = np.zeros(SAMPLE_RATE // 3, np.float32)
    piece = np.concatenate([x for text in SENTENCES for x in (synthesize(text), pause)])
    total = int(minutes * 60 * SAMPLE_RATE)
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, "PCM_16") as f:
        for start in range(0, total, len(piece)):
            f.write(piece[: total - start])
    return total / SAMPLE_RATE


def long_file(model: str, minutes: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        duration = write_long_file(path, minutes)
        command = [sys.executable, "-m", "asr.cli", "transcribe", str(path), "--model", model, "--quiet"]
        t = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child's, in MiB
    print(f"long file: {duration / 60:.1f} min of audio, `asr transcribe` process (start-up included)")
    print(f"real-time factor: {wall / duration:.4f}  ({wall:.1f} s wall; target <= 0.03)")
    print(f"peak resident memory of that process: {peak:.0f} MiB (target < 2048)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", help="time transcription of this manifest's files")
    p.add_argument("--long-minutes", type=float, help="time one generated file this long, e.g. 60")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.long_minutes:
        long_file(args.model, args.long_minutes)
    if args.manifest:
        manifest(args)
    if not (args.manifest or args.long_minutes):
        p.error("give --manifest, --long-minutes or both")


def manifest(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    model = Transcriber.load(args.model)
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
    rtf_files = timed(lambda: model.transcribe(paths)) / audio_s
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
