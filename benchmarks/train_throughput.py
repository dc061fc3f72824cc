"""Training throughput (audio-seconds per second) of a config, fp32 vs bf16, next to a bare-step baseline.

Usage:
    python benchmarks/train_throughput.py --train-manifest data/an4/train.jsonl [--config conf/small.yaml]
    python benchmarks/train_throughput.py            # makes a synthetic corpus if no manifest is given

"ours" is the full Lightning training loop (data loading, features, SpecAugment, model, CTC loss, AdamW),
measured over the second and later epochs. "bare" is the baseline the targets quote: a fused
3-layer BiLSTM step (nn.LSTM, padded, no features, no loader) on batches of the same shape, measured in
the same process. Peak resident memory is reported for the whole process.
"""

from __future__ import annotations

import argparse
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from asr.config import load_config
from asr.manifest import read_manifest
from asr.synth import make_corpus
from asr.train import train


def ours(config: str, manifest: Path, precision: str, epochs: int, workers: int, exp: Path) -> float:
    """Median per-epoch audio-seconds per second of the real training loop, first epoch excluded."""
    cfg = load_config(
        config,
        [
            f"data.train_manifest={manifest}",
            f"data.val_manifest={manifest}",
            f"exp_dir={exp}",
            f"trainer.precision={precision}",
            f"trainer.max_epochs={epochs}",
            f"trainer.val_every_n_epochs={epochs}",
            f"data.num_workers={workers}",
            "trainer.progress_bar=false",
        ],
    )
    train(cfg)
    rows = (exp / "logs" / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("train/audio_sec_per_sec")
    speeds = [float(r.split(",")[col]) for r in rows[1:] if r.split(",")[col]]
    return statistics.median(speeds[1:])


def bare(hidden: int, layers: int, batch: int, seconds: float, bf16: bool, repeats: int = 5) -> float:
    """Audio-seconds per second of a bare fused BiLSTM forward+backward+AdamW step at 4x subsampling."""
    frames = int(seconds * 25)  # 100 frames/s after 4x subsampling
    lstm = torch.nn.LSTM(2 * hidden, hidden, num_layers=layers, bidirectional=True, batch_first=True)
    opt = torch.optim.AdamW(lstm.parameters())
    x = torch.randn(batch, frames, 2 * hidden)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y, _ = lstm(x)
        y.float().square().mean().backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return batch * seconds / statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/small.yaml")
    p.add_argument("--train-manifest", type=Path)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.train_manifest or make_corpus(Path(tmp) / "corpus", 600, 10, 10)["train"]
        utts = read_manifest(manifest)
        mean_dur = statistics.mean(u.duration for u in utts)
        cfg = load_config(args.config)
        batch = max(1, int(cfg.data.max_batch_seconds / mean_dur))
        print(
            f"corpus: {len(utts)} utterances, {sum(u.duration for u in utts) / 3600:.2f} h; "
            f"threads {torch.get_num_threads()}"
        )
        print(f"{'precision':<12}{'ours a-s/s':>12}{'bare a-s/s':>12}{'ours/bare':>11}")
        for precision, bf16 in (("32-true", False), ("bf16-mixed", True)):
            speed = ours(args.config, manifest, precision, args.epochs, args.workers, Path(tmp) / precision)
            base = bare(cfg.model.hidden_size, cfg.model.num_layers, batch, mean_dur, bf16)
            print(f"{precision:<12}{speed:>12.0f}{base:>12.0f}{speed / base:>11.2f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
