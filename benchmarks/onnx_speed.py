"""ONNX (onnxruntime) against torch: the same model on the same files and threads, side by side.

Usage:
    python benchmarks/onnx_speed.py --model exp/an4/model.pt --manifest data/an4/test.jsonl [--threads 1 2]

Exports ``--model`` to ONNX in a temporary folder, then for each thread count times, on waveforms already in
memory (median of ``--repeats``), torch's ``Transcriber.emissions`` and onnxruntime's
``OnnxRecognizer.emissions`` (the front end in NumPy, then the encoder and log-softmax), and checks that their
log-probabilities agree (largest absolute difference) and that greedy transcripts of both are identical.
The same for the int8 export (``asr export --int8``). Prints the real-time factor of each and their ratio
to torch's (below 1 is faster). Then the whole ``asr transcribe --manifest`` command on each of the three
models, start-up and file reading included (``OMP_NUM_THREADS`` sets the threads of both backends; the three
in turn, median of ``--repeats`` rounds), and whether its transcripts equal torch's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import asr
from asr.audio import SAMPLE_RATE, load_audio
from asr.decoding.greedy import greedy_hypotheses
from asr.manifest import read_manifest
from asr.onnx_export import export_onnx
from asr.onnx_model import OnnxRecognizer


def timed(run, repeats: int) -> tuple[float, object]:
    result, times = run(), []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def transcribe_command(model: Path | str, manifest: str, threads: int) -> tuple[float, str]:
    """Seconds of one ``asr transcribe --manifest`` process on ``threads`` threads, and what it printed."""
    command = [sys.executable, "-m", "asr.cli", "transcribe", "--manifest", manifest, "--model", str(model)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([*command, "--quiet"], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def texts(transcriber, emissions) -> list[str]:
    return [
        greedy_hypotheses(transcriber.tokenizer, torch.from_numpy(lp[None]), torch.tensor([n]))[0][0].text
        for lp, n in emissions
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    transcriber = asr.load_model(args.model)
    waves = [load_audio(u.audio_filepath) for u in read_manifest(args.manifest)]
    audio = sum(len(w) for w in waves) / SAMPLE_RATE
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            "onnx": export_onnx(transcriber.recognizer, Path(tmp) / "model.onnx"),
            "int8": export_onnx(transcriber.recognizer, Path(tmp) / "model.int8.onnx", int8=True),
        }
        sizes = ", ".join(f"{k} {p.stat().st_size / 2**20:.1f} MiB" for k, p in paths.items())
        print(f"{len(waves)} files, {audio:.1f} s of audio; {sizes}")
        print("threads  model  RTF      / torch  max |diff|  same greedy text")
        for threads in args.threads:
            torch.set_num_threads(threads)
            t_torch, ours = timed(lambda: transcriber.emissions(waves), args.repeats)
            ours_text = texts(transcriber, ours)
            print(f"{threads:7d}  torch  {t_torch / audio:.5f}")
            for name, path in paths.items():
                onnx = OnnxRecognizer(path, threads=threads)
                t_onnx, theirs = timed(lambda o=onnx: o.emissions(waves), args.repeats)
                diff = max(float(np.abs(a - b).max()) for (a, _), (b, _) in zip(ours, theirs))
                same = sum(a == b for a, b in zip(ours_text, texts(transcriber, theirs)))
                print(
                    f"{threads:7d}  {name:5s}  {t_onnx / audio:.5f}  {t_onnx / t_torch:7.2f}  {diff:10.2e}  "
                    f"{same}/{len(waves)}"
                )
        print("asr transcribe, whole process:")
        print("threads  model  RTF      / torch  same transcripts")
        models = {"torch": args.model, **paths}
        for threads in args.threads:
            runs = [
                {name: transcribe_command(m, args.manifest, threads) for name, m in models.items()}
                for _ in range(args.repeats)
            ]
            seconds = {name: statistics.median(run[name][0] for run in runs) for name in models}
            for name in models:
                same = runs[-1][name][1] == runs[-1]["torch"][1]
                print(
                    f"{threads:7d}  {name:5s}  {seconds[name] / audio:.5f}  "
                    f"{seconds[name] / seconds['torch']:7.2f}  {same}"
                )


if __name__ == "__main__":
    main()
