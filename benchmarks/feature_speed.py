"""Feature extraction throughput: our batched torchaudio log-mel against librosa one file at a time.

Usage:
    python benchmarks/feature_speed.py [--manifest data/an4/train.jsonl] [--files 400] [--repeats 3]

Both compute the same 80-bin log-mel frames (25 ms Hann window, 10 ms hop, power spectrum, no centring)
from waveforms already in memory, so file reading is not timed. "ours" is ``asr.features.LogMel`` on
length-sorted padded batches of about 200 s (as in training); "librosa" is ``librosa.feature.melspectrogram``
on each file. Reported: audio-seconds per second (median of ``--repeats``) and the ratio; the two outputs
are also compared, so the speed-up is not bought with different features.
"""

from __future__ import annotations

import argparse
import statistics
import time

import librosa
import numpy as np
import torch

from asr.audio import SAMPLE_RATE, load_audio
from asr.config import FeatureConfig
from asr.features import LOG_FLOOR, LogMel, hop_samples, window_samples
from asr.manifest import read_manifest


def ours(waves: list[np.ndarray], batch_seconds: float) -> list[torch.Tensor]:
    logmel = LogMel(FeatureConfig())
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    out: list[torch.Tensor] = [torch.empty(0)] * len(waves)
    start = 0
    with torch.inference_mode():
        while start < len(order):
            end = start + 1
            while (
                end < len(order) and len(waves[order[end]]) * (end - start + 1) <= batch_seconds * SAMPLE_RATE
            ):
                end += 1
            idx = order[start:end]
            lens = torch.tensor([len(waves[i]) for i in idx])
            batch = torch.zeros(len(idx), int(lens.max()))
            for row, i in enumerate(idx):
                batch[row, : len(waves[i])] = torch.from_numpy(waves[i])
            feats, feat_lens = logmel(batch, lens)
            for row, i in enumerate(idx):
                out[i] = feats[row, : feat_lens[row]]
            start = end
    return out


def with_librosa(waves: list[np.ndarray]) -> list[np.ndarray]:
    cfg = FeatureConfig()
    win, hop = window_samples(cfg), hop_samples(cfg)
    return [
        np.log(
            librosa.feature.melspectrogram(
                y=w,
                sr=SAMPLE_RATE,
                n_fft=win,
                hop_length=hop,
                win_length=win,
                center=False,
                power=2.0,
                n_mels=cfg.n_mels,
                htk=True,
                norm=None,
            )
            + LOG_FLOOR
        ).T
        for w in waves
    ]


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", default="data/an4/train.jsonl")
    p.add_argument("--files", type=int, default=400)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-seconds", type=float, default=200.0)
    args = p.parse_args()
    waves = [load_audio(u.audio_filepath) for u in read_manifest(args.manifest)[: args.files]]
    audio = sum(map(len, waves)) / SAMPLE_RATE
    a, b = ours(waves, args.batch_seconds), with_librosa(waves)
    diff = max(float(np.abs(x.numpy() - y).max()) for x, y in zip(a, b))
    t_ours = median_seconds(lambda: ours(waves, args.batch_seconds), args.repeats)
    t_librosa = median_seconds(lambda: with_librosa(waves), args.repeats)
    print(f"{len(waves)} files, {audio:.0f} s of audio; torch threads {torch.get_num_threads()}")
    print(f"ours (batched torchaudio): {audio / t_ours:9.0f} audio-s/s")
    print(f"librosa (file by file):    {audio / t_librosa:9.0f} audio-s/s")
    print(f"ours / librosa: {t_librosa / t_ours:.1f}x; largest difference of the log-mel values: {diff:.2e}")


if __name__ == "__main__":
    main()
