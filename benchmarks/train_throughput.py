"""Training throughput (audio-seconds per second) of a config: fp32 vs bf16 next to a bare-step baseline, or
the training loop's rate across batch budgets on AN4 and a corpus of longer utterances, side by side.

Usage:
    python benchmarks/train_throughput.py --train-manifest data/an4/train.jsonl [--config conf/small.yaml]
    python benchmarks/train_throughput.py            # AN4 from ../shared/data/an4 if there, else synthetic
    python benchmarks/train_throughput.py --batch-seconds 60 120 200 300 \
        --train-manifest data/librispeech/train.jsonl [--an4 ../shared/data/an4] [--steps N] [--warmup 3]

Without ``--batch-seconds``: "ours" is the full Lightning training loop (data loading, features, SpecAugment,
model, CTC loss, AdamW), measured over the second and later epochs. "bare" is the baseline the targets quote:
a fused BiLSTM step of the config's width, depth, subsampling and pyramidal reduction (nn.LSTM, padded, no
features, no loader) on batches of the same shape, measured in the same process. Peak resident memory is
reported for the whole process.

With ``--batch-seconds B ...`` (alone: 60 120 200 300): for each budget ``data.max_batch_seconds=B``, the same
training loop (``asr.train.train``; its loader workers, shuffled duration buckets, checkpoint at each epoch
end) runs in a fresh process, once on AN4 and once on ``--train-manifest`` (e.g. LibriSpeech's 12 s utterances
against AN4's 3 s), in that order for each budget. ``--warmup`` steps, then ``--steps`` timed steps (default:
enough for about 5000 s of padded audio at that budget, about 20 s each on the project's CPU in bf16; the
default run should take about 5 minutes there, by RESULTS.md's rates). Precision: ``--precision`` (``auto``:
bf16 with AMX, else fp32, as ``asr.train.resolve_precision``). Reported for each corpus and budget: the
intra-op threads the run trained with (``trainer.threads`` as the config sets it), utterances per step,
unpadded audio-seconds per second and steps per second over the timed steps, and the peak resident memory of
that training process (its loader workers not included).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from asr.audio import SAMPLE_RATE
from asr.config import load_config
from asr.corpora.an4 import prepare_an4
from asr.data import Batch
from asr.manifest import read_manifest, write_manifest
from asr.spec import ModelConfig
from asr.synth import make_corpus
from asr.train import resolve_precision, train

ROOT = Path(__file__).resolve().parent.parent
AN4_TREE = ROOT.parent / "shared" / "data" / "an4"  # CMU's layout (../shared/README.md)
BUDGETS = [60.0, 120.0, 200.0, 300.0]
TIMED_SECONDS = 5000.0  # padded audio a budget's timed steps cover by default


def default_manifest(work: Path, an4: Path = AN4_TREE) -> Path:
    """AN4's training manifest, prepared in ``work`` from the CMU tree ``an4`` when there is one; else the
    training manifest of a synthetic corpus (600 utterances, eSpeak NG) made in ``work``."""
    if (an4 / "etc").is_dir():
        return prepare_an4(work / "an4", an4)["train"]
    return make_corpus(work / "corpus", 600, 10, 10)["train"]


def describe(manifest: Path) -> str:
    """``manifest``'s utterance count, hours and mean duration, in one line."""
    durations = [u.duration for u in read_manifest(manifest)]
    return (
        f"{manifest}: {len(durations)} utterances, {sum(durations) / 3600:.2f} h, "
        f"mean {statistics.mean(durations):.1f} s"
    )


# ---------------------------------------------------------------------------------- fp32 / bf16 vs bare


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


def bare(model: ModelConfig, batch: int, seconds: float, bf16: bool, repeats: int = 5) -> float:
    """Audio-seconds per second of a bare fused BiLSTM forward+backward+AdamW step of ``model``'s width,
    depth, subsampling and pyramidal reduction (the layers above ``reduce_after`` read pairs of frames)."""
    frames = int(seconds * 100) // model.subsampling  # 100 feature frames a second
    below = model.reduce_after or model.num_layers
    stacks = [
        torch.nn.LSTM(2 * model.hidden_size, model.hidden_size, below, batch_first=True, bidirectional=True)
    ]
    if below < model.num_layers:
        above = model.num_layers - below
        stacks.append(
            torch.nn.LSTM(
                4 * model.hidden_size, model.hidden_size, above, batch_first=True, bidirectional=True
            )
        )
    opt = torch.optim.AdamW([p for lstm in stacks for p in lstm.parameters()])
    x = torch.randn(batch, frames, 2 * model.hidden_size)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y, _ = stacks[0](x)
            if len(stacks) > 1:
                y, _ = stacks[1](y[:, : y.shape[1] // 2 * 2].reshape(batch, -1, 4 * model.hidden_size))
        y.float().square().mean().backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return batch * seconds / statistics.median(times[1:])


def precision_table(args: argparse.Namespace, manifest: Path, work: Path) -> None:
    """The default mode: ours vs bare, fp32 and bf16, one process."""
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
        speed = ours(args.config, manifest, precision, args.epochs, args.workers, work / precision)
        base = bare(cfg.model, batch, mean_dur, bf16)
        print(f"{precision:<12}{speed:>12.0f}{base:>12.0f}{speed / base:>11.2f}", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


# ---------------------------------------------------------------------------------- batch budgets


class StepClock(pl.Callback):
    """Wall time, steps, utterances and unpadded audio samples of the steps after the first ``skip``."""

    def __init__(self, skip: int) -> None:
        self.skip, self.seen, self.steps, self.utts, self.samples = skip, 0, 0, 0, 0
        self.start = self.end = 0.0

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch: Batch, idx: int
    ) -> None:
        self.seen += 1
        if self.seen == self.skip:
            self.start = time.perf_counter()
        elif self.seen > self.skip:
            self.steps, self.utts = self.steps + 1, self.utts + len(batch)
            self.samples += int(batch.wave_lens.sum())
            self.end = time.perf_counter()


def loop_run(run: dict) -> dict:
    """One budget on one corpus, in this (fresh) process: the training loop's timed steps and peak memory.

    ``run``: config, manifest, val_manifest, cmvn (statistics file, computed by the first run on a corpus),
    exp, budget, precision, workers, warmup, steps.
    """
    cfg = load_config(
        run["config"],
        [
            f"data.train_manifest={run['manifest']}",
            f"data.val_manifest={run['val_manifest']}",
            f"data.cmvn_stats={run['cmvn']}",
            "data.cmvn_max_utts=200",  # the statistics' values do not change the speed
            f"data.max_batch_seconds={run['budget']}",
            f"data.num_workers={run['workers']}",
            f"exp_dir={run['exp']}",
            f"trainer.precision={run['precision']}",
            f"trainer.max_steps={run['warmup'] + run['steps']}",
            "trainer.max_epochs=-1",
            "trainer.val_every_n_epochs=1000000",  # no validation inside the timed steps
            "trainer.progress_bar=false",
        ],
    )
    clock = StepClock(run["warmup"])
    train(cfg, callbacks=[clock])
    seconds = clock.end - clock.start
    return {
        "steps": clock.steps,
        "utts": clock.utts,
        "audio": clock.samples / SAMPLE_RATE,
        "seconds": seconds,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def in_fresh_process(run: dict, work: Path) -> dict:
    """:func:`loop_run` in a new Python process (its own peak memory); its result. Lightning's messages are
    shown only when the process fails."""
    result = work / "result.json"
    script = str(Path(__file__).resolve())
    command = [sys.executable, script, "--loop-run", json.dumps(run), "--result", str(result)]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"a run failed (exit {done.returncode}; its messages are above): {run}")
    return json.loads(result.read_text())


def budget_table(args: argparse.Namespace, corpora: list[Path], work: Path) -> None:
    """The ``--batch-seconds`` mode: every budget on every corpus, each in a fresh process."""
    budgets = args.batch_seconds or BUDGETS
    precision = resolve_precision(args.precision, "cpu")
    for manifest in corpora:
        print(describe(manifest))
    print(f"precision {precision}; loader workers {args.workers}")
    print(
        f"{'corpus':<24}{'budget s':>9}{'threads':>8}{'steps':>7}{'utts/step':>10}{'audio-s/s':>11}"
        f"{'steps/s':>9}{'peak MiB':>10}",
        flush=True,
    )
    val = {}
    for i, manifest in enumerate(corpora):
        val[manifest] = work / f"val{i}.jsonl"
        entries = read_manifest(manifest)[:2]  # read only by Lightning's sanity check before training
        write_manifest(
            val[manifest],
            [{"audio_filepath": u.audio_filepath, "duration": u.duration, "text": u.text} for u in entries],
        )
    for budget in budgets:
        steps = args.steps or math.ceil(TIMED_SECONDS / budget)
        for i, manifest in enumerate(corpora):
            run = {
                "config": args.config,
                "manifest": str(manifest),
                "val_manifest": str(val[manifest]),
                "cmvn": str(work / f"cmvn{i}.json"),
                "exp": str(work / f"exp{i}_{budget:g}"),
                "budget": budget,
                "precision": precision,
                "workers": args.workers,
                "warmup": args.warmup,
                "steps": steps,
            }
            r = in_fresh_process(run, work)
            name = f"{manifest.parent.name}/{manifest.stem}"
            print(
                f"{name:<24}{budget:>9g}{r['threads']:>8}{r['steps']:>7}{r['utts'] / r['steps']:>10.1f}"
                f"{r['audio'] / r['seconds']:>11.1f}{r['steps'] / r['seconds']:>9.2f}{r['peak_mib']:>10.0f}",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="conf/small.yaml")
    p.add_argument("--train-manifest", type=Path, help="with --batch-seconds: the corpus beside AN4")
    p.add_argument("--epochs", type=int, default=3, help="without --batch-seconds: epochs per precision")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--batch-seconds",
        type=float,
        nargs="*",
        help=f"batch budgets to compare (alone: {' '.join(f'{b:g}' for b in BUDGETS)})",
    )
    p.add_argument("--an4", type=Path, default=AN4_TREE, help="the AN4 tree (CMU layout); else synthetic")
    p.add_argument("--steps", type=int, help=f"timed steps per run (default: {TIMED_SECONDS:g} s / budget)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (at least 1)")
    p.add_argument("--precision", default="auto", help="with --batch-seconds: trainer.precision")
    p.add_argument("--loop-run", help=argparse.SUPPRESS)  # one budget_table run, in its own process
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.warmup < 1 or (args.steps is not None and args.steps < 1):
        p.error("--warmup and --steps must be at least 1: timing starts at the end of a step")
    logging.basicConfig(level=logging.WARNING)
    if args.loop_run:
        args.result.write_text(json.dumps(loop_run(json.loads(args.loop_run))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.batch_seconds is None:
            precision_table(args, args.train_manifest or default_manifest(work, args.an4), work)
        else:
            corpora = [default_manifest(work, args.an4)]
            if args.train_manifest:
                corpora.append(args.train_manifest)
            budget_table(args, corpora, work)


if __name__ == "__main__":
    main()
