"""ONNX (onnxruntime) against torch: the same model on the same files and threads, side by side.

Usage:
    python benchmarks/onnx_speed.py --model exp/an4/model.pt --manifest data/an4/test.jsonl [--threads 1 2]

Exports ``--model`` to ONNX in a temporary folder, then for each thread count times, on waveforms already in
memory (median of ``--repeats``), torch's ``Transcriber.emissions`` and onnxruntime's
``OnnxRecognizer.emissions`` (the front end in NumPy, then the encoder and log-softmax), and checks that their
log-probabilities agree (largest absolute difference) and that greedy transcripts of both are identical.
Prints the real-time factor of each and their ratio (ONNX / torch: below 1 is faster).
"""

from __future__ import annotations

import argparse
import statistics
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
        path = export_onnx(transcriber.recognizer, Path(tmp) / "model.onnx")
        print(f"{len(waves)} files, {audio:.1f} s of audio; ONNX file {path.stat().st_size / 2**20:.1f} MiB")
        print("threads  torch RTF  onnx RTF  onnx/torch  max |diff|  same greedy text")
        for threads in args.threads:
            torch.set_num_threads(threads)
            onnx = OnnxRecognizer(path, threads=threads)
            t_torch, ours = timed(lambda: transcriber.emissions(waves), args.repeats)
            t_onnx, theirs = timed(lambda o=onnx: o.emissions(waves), args.repeats)
            diff = max(float(np.abs(a - b).max()) for (a, _), (b, _) in zip(ours, theirs))
            same = sum(a == b for a, b in zip(texts(transcriber, ours), texts(transcriber, theirs)))
            print(
                f"{threads:7d}  {t_torch / audio:9.5f}  {t_onnx / audio:8.5f}  {t_onnx / t_torch:10.2f}  "
                f"{diff:10.2e}  {same}/{len(waves)}"
            )


if __name__ == "__main__":
    main()
