"""GPU check: the CUDA training and transcription paths, with speed and memory figures, in a few minutes.

Usage:
    python benchmarks/gpu_check.py OUT_DIR [--configs conf/small.yaml conf/large.yaml] [--epochs 4]

Needs one CUDA GPU and the project's own dependencies, nothing more. Writes OUT_DIR/gpu_check.json and
OUT_DIR/gpu_check.md and prints the table. For each config and precision (fp32, bf16 autocast):

- ``loop``: the real training loop (``asr.train.train``: FLAC files read by 12 loader workers, the
  config's speed perturbation, features and SpecAugment on the GPU, encoder, CTC in fp32, fused AdamW,
  checkpointing and one validation at the end) on a generated corpus of noise with LibriSpeech-like
  durations; audio-seconds per second in the steady state of the last epoch (its 7th step to its last;
  the per-epoch figures the training log reports are kept in the JSON), peak GPU memory the allocator's.
- ``preloaded``: the same module's training step on exactly the loop's timed batches (rebuilt from their
  utterance ids and speed factors, in the loop's order), moved to the GPU beforehand (no loader, no
  Lightning): one warm-up pass, then the mean of two timed passes. loop / preloaded shows what the data
  path and the Lightning loop cost.
- traces: ``OUT_DIR/loop_<preset>_<precision>_x<batch scale>.json.gz`` is a torch.profiler trace of the
  last epoch's steps 3-5 (timing starts after them), ``preloaded_...`` one of the same three batches
  preloaded; ``step_trace.py`` reduces each to the device's busy fraction and its longest idle gaps, with
  the host work inside them (in the JSON and the report).
- ``loop_syncs_per_step`` (JSON): where one whole step of the loop waits for the GPU (CUDA sync debug mode).
- ``supply``: audio-seconds per second the training DataLoader alone delivers with 12 workers, and with 1
  (no GPU work): what the loop can be fed, and what one worker reads.
- ``bare``: a fused bidirectional cuDNN LSTM stack of the same size on padded input, forward + backward +
  AdamW, no features, no CTC; the baseline a hand-written script would get.
- ``rnn TFLOP/s``: matrix FLOPs of the RNN layers (forward + backward, counted as 3x forward) per second of
  the RNN stack alone, as a fraction of the card's bf16 matrix-product throughput (8192^3, timed in this
  run).
- the large preset once more in bf16 with four times its batch, since GPU memory allows it.

Before the figures, an exactness check on the device: a padded batch against its items one at a time.

Transcription: the real-time factor of greedy transcription of 10 s files in length-sorted batches, and of
one 10-minute file in a single pass, for each config (random weights: speed does not depend on them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import soundfile as sf
import torch
from flops import forward_flops_per_second  # flops.py and step_trace.py: this script's folder
from step_trace import device_timeline, read_trace
from torch.utils.data import DataLoader

from asr.config import Config, load_config
from asr.data import AsrDataModule, Batch, collate
from asr.inference import Transcriber
from asr.lightning import CTCModule, build_optimizer
from asr.manifest import write_manifest
from asr.model import stack_pairs
from asr.recognizer import Recognizer
from asr.spec import ModelSpec
from asr.text import CharTokenizer
from asr.train import train

RATE = 16000
WORDS = np.array(
    [
        "the",
        "of",
        "and",
        "to",
        "a",
        "in",
        "that",
        "he",
        "was",
        "it",
        "his",
        "i",
        "is",
        "with",
        "for",
        "as",
        "had",
        "you",
        "her",
        "on",
        "be",
        "at",
        "by",
        "not",
        "this",
    ]
)
DEVICE = torch.device("cuda")  # --device cpu runs the same code on the CPU, as a quick check of the script


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def reset_peak() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE.type == "cuda" else float("nan")


def make_corpus(folder: Path, count: int, seed: int = 0) -> Path:
    """``count`` FLAC files of quiet noise, 2-17 s (mean about 11 s), with random word transcripts."""
    durations = np.clip(np.random.default_rng(seed).normal(11.5, 3.5, count), 2.0, 16.9)
    folder.mkdir(parents=True, exist_ok=True)

    def write(i: int) -> dict:
        rng = np.random.default_rng([seed, i])  # one generator per file: the writers run in threads
        path = folder / f"{i:05d}.flac"
        samples = int(durations[i] * RATE)
        sf.write(path, (rng.standard_normal(samples) * 0.05).astype(np.float32), RATE)
        words = rng.choice(WORDS, max(1, int(durations[i] * 2.7)))
        return {"audio_filepath": str(path), "duration": samples / RATE, "text": " ".join(words)}

    with ThreadPoolExecutor(16) as pool:
        utts = list(pool.map(write, range(count)))
    write_manifest(folder / "train.jsonl", utts)
    write_manifest(folder / "val.jsonl", utts[:64])
    return folder / "train.jsonl"


class SteadyState(pl.Callback):
    """Audio-seconds per second of the last training epoch, from its ``skip``-th step to its last.

    Epoch starts (loader workers filling their first batches) and the validation after the last step are
    left out: in a real run an epoch has thousands of steps, here a few dozen. The audio is summed on the
    device and the GPU synchronised at the two ends only, so measuring adds no host sync to the steps.
    ``batches`` keeps the timed steps' utterance ids and speed factors, for the preloaded replay.
    """

    def __init__(self, skip: int) -> None:
        self.skip, self.speed, self.steps, self.batches = skip, float("nan"), 0, []

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start, self.samples, self.steps, self.batches = None, 0, 0, []

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx
    ) -> None:
        if idx + 1 == self.skip:
            sync()
            self.start = time.perf_counter()
        elif self.start is not None:
            self.samples = batch.wave_lens.sum() + self.samples
            self.steps += 1
            self.batches.append((batch.ids, batch.speed))
        if self.start is not None and idx + 1 == trainer.num_training_batches:
            sync()
            self.speed = int(self.samples) / RATE / (time.perf_counter() - self.start)


def profiler() -> torch.profiler.profile:
    """A torch.profiler recording host operators, and the GPU's kernels and copies when on a GPU."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if DEVICE.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    return torch.profiler.profile(activities=activities)


def save_trace(prof: torch.profiler.profile, path: Path, prefix: str) -> dict:
    """Write the trace as ``path`` (gzipped JSON) and return its device timeline (step_trace.py)."""
    raw = path.with_suffix("")
    prof.export_chrome_trace(str(raw))
    with open(raw, "rb") as src, gzip.open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    raw.unlink()
    return device_timeline(read_trace(path), annotation_prefix=prefix)


class LoopProfile(pl.Callback):
    """A profiler trace of steps ``first`` to ``first + count - 1`` of the last epoch, with the host time
    of each step marked "loop: step" and the time between steps (Lightning's hooks, the next batch's fetch
    and copy) marked "loop: between steps". ``batches`` keeps the profiled steps' ids and speed factors."""

    def __init__(self, first: int, count: int, path: Path) -> None:
        self.first, self.count, self.path = first, count, path
        self.batches: list = []
        self.timeline: dict = {}
        self.prof: torch.profiler.profile | None = None
        self.mark: torch.profiler.record_function | None = None

    def _annotate(self, name: str | None) -> None:
        if self.mark is not None:
            self.mark.__exit__(None, None, None)
        self.mark = torch.profiler.record_function(name).__enter__() if name else None

    def on_train_batch_start(self, trainer: pl.Trainer, module: pl.LightningModule, batch, idx) -> None:
        if trainer.current_epoch != trainer.max_epochs - 1:
            return
        if idx == self.first:
            self.prof = profiler().__enter__()
        if self.prof is not None:
            self._annotate("loop: step")

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx
    ) -> None:
        if self.prof is None:
            return
        self.batches.append((batch.ids, batch.speed))
        if idx + 1 < self.first + self.count:
            self._annotate("loop: between steps")
            return
        self._annotate(None)
        sync()
        self.prof.__exit__(None, None, None)
        self.timeline = save_trace(self.prof, self.path, "loop:")
        self.prof = None


class SyncAudit(pl.Callback):
    """Records where the loop waits for the GPU: CUDA's sync debug mode is on for one whole step of the
    first epoch (from the end of step ``at`` to the end of the next: hooks, batch fetch, copy, step)."""

    def __init__(self, at: int = 3) -> None:
        self.at, self.sites = at, Counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx
    ) -> None:
        if DEVICE.type != "cuda" or trainer.current_epoch != 0:
            return
        if idx == self.at:
            self.recorder = warnings.catch_warnings(record=True)
            self.records = self.recorder.__enter__()
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        elif idx == self.at + 1:
            torch.cuda.set_sync_debug_mode(0)
            self.recorder.__exit__(None, None, None)
            for w in self.records:
                if "synchroniz" in str(w.message):
                    self.sites[f"{Path(w.filename).name}:{w.lineno}"] += 1


def loader_supply(config: str, corpus: Path, workers: int, batches: int, extra: list[str]) -> float:
    """Audio-seconds per second the training DataLoader alone delivers (pinned when a GPU is present)
    with ``workers`` workers, from its 3rd batch to its ``batches``-th: what the loop can be fed."""
    cfg = load_config(config, [f"data.train_manifest={corpus}", f"data.num_workers={workers}", *extra])
    module = AsrDataModule(cfg.data, CharTokenizer.english(), lambda d: 10**9, seed=0)
    samples, start = 0, None
    for i, batch in enumerate(module.train_dataloader()):
        if i == 2:
            start = time.perf_counter()
        elif start is not None:
            samples += int(batch.wave_lens.sum())
        if i + 1 == batches:
            break
    return samples / RATE / (time.perf_counter() - start)


PROFILE_FIRST, PROFILE_COUNT = 3, 3  # the last epoch's steps 3-5 are profiled, and timed from step 6 on


def loop_speed(
    config: str, corpus: Path, precision: str, epochs: int, exp: Path, extra: list[str], trace: Path
) -> dict:
    """The real training loop: steady-state audio-seconds per second in its last epoch, peak memory, a
    profiler trace of three steps before the timed ones, and the batches of both (for the replay)."""
    cfg = load_config(
        config,
        [
            f"data.train_manifest={corpus}",
            f"data.val_manifest={corpus.parent / 'val.jsonl'}",
            f"exp_dir={exp}",
            f"trainer.precision={precision}",
            f"trainer.max_epochs={epochs}",
            f"trainer.val_every_n_epochs={epochs}",
            "trainer.progress_bar=false",
            "data.num_workers=12",
            "features.cmvn_max_utts=200",
            *extra,
        ],
    )
    reset_peak()
    profile = LoopProfile(PROFILE_FIRST, PROFILE_COUNT, trace)
    steady, audit = SteadyState(PROFILE_FIRST + PROFILE_COUNT), SyncAudit()
    start = time.perf_counter()
    train(cfg, callbacks=[profile, steady, audit])
    wall = time.perf_counter() - start
    rows = [r.split(",") for r in (exp / "logs" / "metrics.csv").read_text().splitlines()]
    col, wer = rows[0].index("train/audio_sec_per_sec"), rows[0].index("val/wer")
    return {
        "loop_audio_s_per_s": steady.speed,
        "loop_steady_steps": steady.steps,
        "loop_syncs_per_step": dict(audit.sites),
        "loop_epochs": [float(r[col]) for r in rows[1:] if r[col]],
        "loop_peak_gib": peak_gib(),
        "loop_wall_s": wall,
        "loop_trace": profile.timeline,
        "val_wer_reported": any(r[wer] for r in rows[1:]),
        "timed_batches": steady.batches,
        "profiled_batches": profile.batches,
    }


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after two warm-ups, with the GPU synchronised."""
    times = []
    for i in range(repeats + 2):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def recognizer_for(cfg: Config) -> Recognizer:
    """A freshly initialised recogniser of the config's model, with the English characters."""
    return Recognizer(ModelSpec(cfg.features, cfg.model, CharTokenizer.english().to_dict()))


def replay_batches(
    recognizer: Recognizer, cfg: Config, recorded: list[tuple[list[str], float]]
) -> list[Batch]:
    """The loop's batches rebuilt from their utterance ids and speed factors, in order, on the device."""
    data = AsrDataModule(cfg.data, recognizer.tokenizer, recognizer.output_frames, seed=0)
    dataset = data.dataset("train")
    index = {utt.id: i for i, (utt, _) in enumerate(dataset.entries)}
    sampler = [[(index[u], speed) for u in ids] for ids, speed in recorded]
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=12)
    return [
        Batch(
            b.waves.to(DEVICE),
            b.wave_lens.to(DEVICE),
            b.targets.to(DEVICE),
            b.target_lens.to(DEVICE),
            [],
            [],
            speed=b.speed,
        )
        for b in loader
    ]


def preloaded_speed(
    config: str, bf16: bool, extra: list[str], timed_batches: list, profiled_batches: list, trace: Path
) -> dict:
    """The module's training step alone (no loader, no Lightning) on exactly the loop's timed batches,
    rebuilt and moved to the GPU first: one warm-up pass, then two timed passes (audio-seconds per second
    of each; the GPU is synchronised only at a pass's two ends, as in the loop), then a profiler trace of
    the loop's three profiled batches."""
    if not timed_batches:  # an epoch too short for a steady state at this batch size
        return {"preloaded_audio_s_per_s": float("nan"), "preloaded_passes": [], "preloaded_trace": {}}
    cfg = load_config(config, extra)
    recognizer = recognizer_for(cfg)
    module = CTCModule(recognizer, cfg).to(DEVICE).train()
    batches = replay_batches(recognizer, cfg, timed_batches)
    optimizer = build_optimizer(module, cfg.optim)

    def step(batch: Batch) -> None:
        module.fit_step(batch, optimizer, torch.bfloat16 if bf16 else None)

    seconds = sum(int(b.wave_lens.sum()) for b in batches) / RATE

    def one_pass() -> float:
        sync()
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        sync()
        return seconds / (time.perf_counter() - start)

    passes = [one_pass() for _ in range(3)][1:]  # the first pass warms up
    profiled = replay_batches(recognizer, cfg, profiled_batches)  # loaded before the trace starts
    sync()
    with profiler() as prof:
        for batch in profiled:
            with torch.profiler.record_function("preloaded: step"):
                step(batch)
        sync()
    return {
        "preloaded_audio_s_per_s": statistics.mean(passes),
        "preloaded_passes": passes,
        "preloaded_trace": save_trace(prof, trace, "preloaded:"),
    }


def bare_speed(cfg: Config, bf16: bool, batch: int, seconds: float) -> float:
    """Audio-seconds per second of a fused bidirectional cuDNN stack of the same size, padded input."""
    m = cfg.model
    lstm = torch.nn.LSTM(2 * m.hidden_size, m.hidden_size, m.num_layers, batch_first=True, bidirectional=True)
    lstm = lstm.to(DEVICE)
    opt = torch.optim.AdamW(lstm.parameters())
    x = torch.randn(batch, int(seconds * 25), 2 * m.hidden_size, device=DEVICE)

    def step() -> None:
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=bf16):
            y, _ = lstm(x)
        y.float().square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return batch * seconds / timed(step, 5)


def rnn_tflops(cfg: Config, batch: int, seconds: float) -> float:
    """TFLOP/s inside our RNN layers (bf16 autocast), forward + backward."""
    encoder = recognizer_for(cfg).encoder.to(DEVICE)
    frames = int(seconds * 25)
    width = encoder.rnns[0].forward_rnn.input_size
    x = torch.randn(batch, frames, width, device=DEVICE, requires_grad=True)
    lens = torch.from_numpy(np.linspace(frames * 0.9, frames, batch).astype(np.int64)).to(DEVICE)

    def step() -> None:
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            y, y_lens = x, lens
            layers = zip(encoder.norms, encoder.rnns, encoder.projections)
            for i, (norm, rnn, proj) in enumerate(layers):
                if i and i == cfg.model.reduce_after:  # pyramidal: pairs of frames from here on
                    y, y_lens = stack_pairs(y, y_lens)
                y = proj(rnn(norm(y), y_lens))
        y.float().sum().backward()

    flops = 3 * forward_flops_per_second(cfg)["rnn"] * float(lens.sum()) / 25
    return flops / timed(step, 5) / 1e12


def cuda_checks() -> dict:
    """Exactness on this device: a padded batch equals its items one at a time."""
    torch.manual_seed(0)
    cfg = load_config(None, ["model.hidden_size=64", "model.num_layers=2", "model.dropout=0"])
    encoder = recognizer_for(cfg).encoder.to(DEVICE).eval()
    feats, lens = torch.randn(4, 400, 80, device=DEVICE), torch.tensor([400, 350, 200, 57], device=DEVICE)
    with torch.no_grad():
        out, out_lens = encoder(feats, lens)
        diff = max(
            float((out[i, : out_lens[i]] - encoder(feats[i : i + 1, :n], lens[i : i + 1])[0][0]).abs().max())
            for i, n in enumerate(lens.tolist())
        )
    return {"padded_vs_single_max_diff": diff}


def matmul_tflops() -> float:
    """Measured bf16 dense matrix-product throughput of this card (8192^3)."""
    n = 8192 if DEVICE.type == "cuda" else 1024
    a = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=DEVICE, dtype=torch.bfloat16)
    return 2 * n**3 / timed(lambda: a @ b, 10) / 1e12


@torch.inference_mode()
def transcribe_rtf(cfg: Config) -> dict:
    """Real-time factor of greedy GPU transcription: 64 files of 10 s, and one 10-minute file."""
    model = Transcriber(recognizer_for(cfg).to(DEVICE))
    rng = np.random.default_rng(2)
    short = [(rng.standard_normal(10 * RATE) * 0.05).astype(np.float32) for _ in range(64)]
    long = [(rng.standard_normal(600 * RATE) * 0.05).astype(np.float32)]
    out = {}
    for name, waves in (("rtf_10s_x64", short), ("rtf_10min", long)):
        reset_peak()
        seconds = timed(lambda w=waves: model.transcribe(w), 3)  # greedy
        out[name] = seconds / (sum(map(len, waves)) / RATE)
        out[f"{name}_peak_gib"] = peak_gib()
    return out


def busy(timeline: dict) -> str:
    """ "busy% of span ms" from a step_trace timeline, or n/a when nothing was profiled."""
    if not timeline:
        return "n/a"
    return f"{timeline['busy_fraction']:.1%} of {timeline['span_ms']:.0f} ms"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--configs", nargs="+", default=["conf/small.yaml", "conf/large.yaml"])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--utterances", type=int, default=1200)
    p.add_argument("--device", default="cuda", help="cpu: a quick check of this script without a GPU")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device")
    args.out.mkdir(parents=True, exist_ok=True)
    env = {
        "gpu": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    env["bf16_matmul_tflops"] = matmul_tflops()
    env |= cuda_checks()
    print(json.dumps(env), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_corpus(Path(tmp) / "corpus", args.utterances)
        supply = {
            c: {
                "supply_12_workers": loader_supply(c, corpus, 12, 10**9, []),
                "supply_1_worker": loader_supply(c, corpus, 1, 10, []),
            }
            for c in args.configs
        }
        print(json.dumps(supply), flush=True)
        runs = [(c, p, 1) for c in args.configs for p in ("32-true", "bf16-mixed")]
        runs += [(args.configs[-1], "bf16-mixed", 4)]  # the large preset with 4x the batch: GPU memory allows
        for config, precision, scale in runs:
            cfg = load_config(config)
            budget = cfg.data.max_batch_seconds * scale
            cfg = load_config(config, [f"data.max_batch_seconds={budget}"])
            seconds = 11.5
            batch = max(1, int(budget / seconds))
            bf16 = precision == "bf16-mixed"
            fwd = sum(forward_flops_per_second(cfg).values())
            row = {"config": config, "precision": precision, "batch": batch} | supply[config]
            exp = Path(tmp) / f"{len(rows)}"
            extra = [f"data.max_batch_seconds={budget}"]
            tag = f"{Path(config).stem}_{'bf16' if bf16 else 'fp32'}_x{scale}"
            row |= loop_speed(
                config, corpus, precision, args.epochs, exp, extra, args.out / f"loop_{tag}.json.gz"
            )
            row |= preloaded_speed(
                config,
                bf16,
                [f"data.train_manifest={corpus}", *extra],
                row.pop("timed_batches"),
                row.pop("profiled_batches"),
                args.out / f"preloaded_{tag}.json.gz",
            )
            row["bare_audio_s_per_s"] = bare_speed(cfg, bf16, batch, seconds)
            row["loop_train_tflops"] = 3 * fwd * row["loop_audio_s_per_s"] / 1e12
            if bf16:
                row["rnn_tflops"] = rnn_tflops(cfg, batch, seconds)
                row["rnn_fraction"] = row["rnn_tflops"] / env["bf16_matmul_tflops"]
                if scale == 1:
                    row |= transcribe_rtf(cfg)
            rows.append(row)
            print(json.dumps(row), flush=True)
            (args.out / "gpu_check.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    lines = [
        f"GPU check on {env['gpu']} (torch {env['torch']}, cuDNN {env['cudnn']}), {env['date']}; "
        f"bf16 matrix product {env['bf16_matmul_tflops']:.0f} TFLOP/s",
        "",
        "| config | precision | batch | loop a-s/s | preloaded a-s/s | loop/preloaded | bare a-s/s | "
        "loop/bare | peak GiB | train TFLOP/s | loader supply a-s/s, 12 workers / 1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['precision']} | {r['batch']} | {r['loop_audio_s_per_s']:.0f} | "
            f"{r['preloaded_audio_s_per_s']:.0f} | "
            f"{r['loop_audio_s_per_s'] / r['preloaded_audio_s_per_s']:.2f} | "
            f"{r['bare_audio_s_per_s']:.0f} | {r['loop_audio_s_per_s'] / r['bare_audio_s_per_s']:.2f} | "
            f"{r['loop_peak_gib']:.1f} | {r['loop_train_tflops']:.1f} | "
            f"{r['supply_12_workers']:.0f} / {r['supply_1_worker']:.0f} |"
        )
    lines += [
        "",
        "Device busy in three profiled steps (loop: the last epoch's steps 3-5; preloaded: the same",
        "batches), and the loop's longest idle gaps with the phase and the host work they overlapped most:",
        "",
        "| config | precision | batch | busy, loop | busy, preloaded | longest gaps of the loop |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        loop, pre = r["loop_trace"], r["preloaded_trace"]
        gaps = "; ".join(
            f"{g['ms']:.1f} ms {g['phase']}: {', '.join(g['host'][:2])}" for g in loop.get("gaps", [])[:3]
        )
        lines.append(
            f"| {r['config']} | {r['precision']} | {r['batch']} | {busy(loop)} | {busy(pre)} | {gaps} |"
        )
    lines += [
        "",
        "| config | batch | RNN TFLOP/s (fraction of the matrix product's) |",
        "| --- | --- | --- |",
    ]
    for r in rows:
        if "rnn_tflops" in r:
            lines.append(
                f"| {r['config']} | {r['batch']} | {r['rnn_tflops']:.0f} ({r['rnn_fraction']:.0%}) |"
            )
    lines += [
        "",
        "| config | RTF 10 s x64 | peak GiB | RTF 10 min | peak GiB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "rtf_10s_x64" in r:
            lines.append(
                f"| {r['config']} | {r['rtf_10s_x64']:.5f} | {r['rtf_10s_x64_peak_gib']:.2f} | "
                f"{r['rtf_10min']:.5f} | {r['rtf_10min_peak_gib']:.2f} |"
            )
    lines += ["", f"exactness on the device: {json.dumps({k: env[k] for k in env if 'diff' in k})}"]
    (args.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
