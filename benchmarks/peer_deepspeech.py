"""Training throughput against a peer: deepspeech.pytorch's DeepSpeech (3x BiLSTM-256) vs ours, same batches.

Usage:
    python benchmarks/peer_deepspeech.py [--manifest data/an4/train.jsonl] [--config conf/small.yaml]
        [--deepspeech-src /tmp/deepspeech_src] [--batches 8] [--batch-seconds 200] [--threads 2]

Both systems train on the SAME padded batches of waveforms held in memory (AN4 train audio, or a synthetic
corpus when the manifest is missing), fp32 on the CPU, in one process. Batches are length-sorted buckets
of about ``--batch-seconds`` of padded audio (asr.data.DurationBatchSampler), picked evenly across the
length range. Each system computes its own features inside the timed step:

- ``deepspeech``: deepspeech.pytorch's own ``DeepSpeech`` LightningModule (its model.py, imported, not
  re-implemented), BiDirectionalConfig(hidden_size=256, hidden_layers=3), its default SpectConfig and
  AdamConfig. Step = its loader's features (|STFT|, 20 ms Hamming window, 10 ms hop, 161 bins, log1p,
  per-utterance mean/std normalisation as in its training data module; computed here with torch.stft on
  the padded batch instead of librosa per file), its ``forward``, log_softmax and its own criterion
  (CTCLoss, reduction='sum', as in its ``training_step``), backward, gradient clipping at its AN4 config's
  400, its ``configure_optimizers`` optimizer (AdamW).
- ``ours fp32`` / ``ours bf16``: asr's training step outside Lightning (``CTCModule.fit_step``: log-mel
  features, SpecAugment, encoder, CTC in fp32, backward, gradient clipping at the config's grad_clip) with
  the config's optimiser (``build_optimizer``: fused AdamW); bf16 is CPU autocast. No Lightning Trainer,
  no loader (as gpu_check's ``preloaded`` figure).

Reported: audio-seconds (unpadded) per second, median over the batches after one warm-up step on the first
batch; the ratio ours / deepspeech; parameter counts; peak resident memory of the process.

deepspeech.pytorch is not a dependency and its code is not in this repository. Get it (read-only) with:
    git clone https://github.com/SeanNaren/deepspeech.pytorch /tmp/deepspeech_src
(measured at commit b88a631ef6b96553e16bbaa5bd6a621435bed278). Only these files of it are imported:
deepspeech_pytorch/{__init__,model,enums,decoder,validation}.py,
deepspeech_pytorch/configs/{__init__,train_config,lightning_config}.py, and labels.json.
Its pinned requirements are NOT installed. Imports that a training step never uses are stubbed only when
they are not installed: ``six`` (its decoder's ``xrange``) and ``Levenshtein`` (its WER metric).
train_config.py does not import on Python >= 3.11 (dataclass instances as field defaults, e.g.
``spect: SpectConfig = SpectConfig()``); it is executed from its own text with exactly those defaults
rewritten to ``field(default_factory=...)``, every value unchanged. pytorch_lightning, omegaconf and
torchmetrics are this project's own dependencies.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import resource
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

from asr.audio import load_audio
from asr.config import load_config
from asr.data import Batch, DurationBatchSampler
from asr.lightning import CTCModule, build_optimizer
from asr.manifest import read_manifest
from asr.recognizer import Recognizer
from asr.spec import ModelSpec
from asr.synth import make_corpus
from asr.text import CharTokenizer

RATE = 16000
GIT_URL = "https://github.com/SeanNaren/deepspeech.pytorch"
DS_FILES = [
    "deepspeech_pytorch/__init__.py",
    "deepspeech_pytorch/model.py",
    "deepspeech_pytorch/enums.py",
    "deepspeech_pytorch/decoder.py",
    "deepspeech_pytorch/validation.py",
    "deepspeech_pytorch/configs/__init__.py",
    "deepspeech_pytorch/configs/train_config.py",
    "deepspeech_pytorch/configs/lightning_config.py",
    "labels.json",
]


# ---------------------------------------------------------------------------------------------- peer setup


def missing_source(src: Path) -> str:
    missing = [f for f in DS_FILES if not (src / f).is_file()]
    if not missing:
        return ""
    return (
        f"deepspeech.pytorch source not found in {src} (missing: {', '.join(missing)}).\n"
        f"Get it with:\n    git clone {GIT_URL} {src}\n"
        "or copy just these files of it there (same relative paths):\n    "
        + "\n    ".join(DS_FILES)
        + "\nthen rerun with --deepspeech-src pointing at that folder. Do not install its requirements."
    )


def _stub_if_missing(name: str, **attrs) -> str | None:
    """Put a module with ``attrs`` in sys.modules when ``name`` cannot be imported; its name if stubbed."""
    try:
        importlib.import_module(name)
        return None
    except ImportError:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        return name


def _load_train_config(src: Path) -> None:
    """Execute its train_config.py with dataclass-instance defaults turned into default_factory (3.11+)."""
    path = src / "deepspeech_pytorch" / "configs" / "train_config.py"
    text = path.read_text()
    fixed = re.sub(
        r"^(\s+\w+:\s*(\w+)\s*=\s*)\2\(\)\s*$",
        r"\1field(default_factory=\2)",
        text,
        flags=re.MULTILINE,
    )
    name = "deepspeech_pytorch.configs.train_config"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(fixed, str(path), "exec"), module.__dict__)


def _register_package(name: str, folder: Path) -> None:
    """Make the package in ``folder`` importable as ``name`` (its submodules too) without editing sys.path."""
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def load_deepspeech(src: Path):
    """Import its model module from ``src``; returns (model module, train_config module, stubbed names)."""
    stubbed = [
        _stub_if_missing("six"),
        _stub_if_missing("six.moves", xrange=range),
        _stub_if_missing("Levenshtein", distance=lambda a, b: 0),
    ]
    if "six" in stubbed:
        sys.modules["six"].moves = sys.modules["six.moves"]
    _register_package("deepspeech_pytorch", src / "deepspeech_pytorch")
    importlib.import_module("deepspeech_pytorch.configs")
    _load_train_config(src)
    model = importlib.import_module("deepspeech_pytorch.model")
    cfgs = sys.modules["deepspeech_pytorch.configs.train_config"]
    return model, cfgs, [s for s in stubbed if s]


def deepspeech_spectrogram(waves: torch.Tensor, wave_lens: torch.Tensor, spect_cfg) -> tuple:
    """Its loader's features for a padded batch: (B, 1, 161, T) and the frame counts.

    As SpectrogramParser.compute_spectrogram + SpectrogramDataset (normalize=True) + _collate_fn:
    |STFT| (librosa.stft defaults: centred, zero padding, periodic window), log1p, mean/std over each
    utterance's own frames, zero-padded to the longest.
    """
    n_fft = int(spect_cfg.sample_rate * spect_cfg.window_size)
    hop = int(spect_cfg.sample_rate * spect_cfg.window_stride)
    window = getattr(torch, f"{spect_cfg.window.value}_window")(n_fft)
    spec = torch.stft(
        waves, n_fft, hop, n_fft, window, center=True, pad_mode="constant", return_complex=True
    ).abs()
    spec = torch.log1p(spec)  # (B, F, T)
    frames = 1 + wave_lens // hop
    valid = (torch.arange(spec.shape[-1]) < frames[:, None])[:, None, :]  # (B, 1, T)
    count = frames * spec.shape[1]
    mean = (spec * valid).sum((1, 2)) / count
    var = (((spec - mean[:, None, None]) * valid) ** 2).sum((1, 2)) / (count - 1)
    spec = ((spec - mean[:, None, None]) / var.sqrt()[:, None, None]) * valid
    return spec[:, None], frames


# ---------------------------------------------------------------------------------------------- batches


def make_batches(manifest: Path, count: int, budget: float) -> tuple[list[dict], str]:
    utts = read_manifest(manifest)
    sampler = DurationBatchSampler([u.duration for u in utts], budget, shuffle=False)
    buckets = sampler.batches
    if count < len(buckets):
        picks = sorted({round(i * (len(buckets) - 1) / max(1, count - 1)) for i in range(count)})
        buckets = [buckets[i] for i in picks]
    batches = []
    for bucket in buckets:
        items = [(torch.from_numpy(load_audio(utts[i].audio_filepath)), utts[i].text) for i in bucket]
        items.sort(key=lambda it: it[0].numel(), reverse=True)  # its pack_padded_sequence needs this order
        lens = torch.tensor([w.numel() for w, _ in items])
        waves = torch.zeros(len(items), int(lens.max()))
        for i, (w, _) in enumerate(items):
            waves[i, : w.numel()] = w
        batches.append({"waves": waves, "wave_lens": lens, "texts": [t for _, t in items]})
    total = sum(u.duration for u in utts)
    return batches, f"{manifest}: {len(utts)} utterances, {total / 3600:.2f} h"


def our_batch(b: dict, tokenizer: CharTokenizer) -> Batch:
    tokens = [tokenizer.encode(t) for t in b["texts"]]
    targets = torch.zeros(len(tokens), max(map(len, tokens)), dtype=torch.long)
    for i, t in enumerate(tokens):
        targets[i, : len(t)] = torch.tensor(t)
    lens = torch.tensor([len(t) for t in tokens])
    return Batch(b["waves"], b["wave_lens"], targets, lens, [""] * len(tokens), b["texts"])


def ds_targets(b: dict, labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """As its SpectrogramDataset.parse_transcript (unknown characters dropped) and _collate_fn."""
    index = {c: i for i, c in enumerate(labels)}
    tokens = [[index[c] for c in t.upper() if c in index] for t in b["texts"]]
    flat = torch.tensor([i for t in tokens for i in t], dtype=torch.long)
    return flat, torch.tensor([len(t) for t in tokens], dtype=torch.int)


# ---------------------------------------------------------------------------------------------- timing


def measure(step, batches: list, audio_seconds: list[float]) -> float:
    """Median audio-seconds per second of ``step(batch)`` over ``batches``, after one warm-up step."""
    step(batches[0])
    speeds = []
    for batch, seconds in zip(batches, audio_seconds):
        start = time.perf_counter()
        step(batch)
        speeds.append(seconds / (time.perf_counter() - start))
    return statistics.median(speeds)


def cycled_rate(
    step, batches: list, audio_seconds: list[float], steps: int, warmed=None, after_step=None
) -> float:
    """Audio-seconds per second of ``step(batch)`` over ``steps`` steps cycling through ``batches``, after
    one untimed pass over them. ``warmed()``, if given, runs after that pass; ``after_step(i)`` after each
    timed step ``i`` (from 1), inside the timing."""
    for batch in batches:
        step(batch)
    if warmed is not None:
        warmed()
    total, start = 0.0, time.perf_counter()
    for i in range(steps):
        step(batches[i % len(batches)])
        total += audio_seconds[i % len(batches)]
        if after_step is not None:
            after_step(i + 1)
    return total / (time.perf_counter() - start)


def ours_step(config: str, bf16: bool, overrides: list[str] | None = None):
    cfg = load_config(config, overrides)
    tokenizer = CharTokenizer.english()
    module = CTCModule(Recognizer(ModelSpec(cfg.features, cfg.model, tokenizer.to_dict())), cfg).train()
    optimizer = build_optimizer(module, cfg.optim)

    def step(batch: Batch) -> None:
        module.fit_step(batch, optimizer, torch.bfloat16 if bf16 else None)

    return step, module, tokenizer


def deepspeech_step(ds, cfgs, labels: list[str]):
    spect_cfg = cfgs.SpectConfig()
    model = ds.DeepSpeech(
        labels=labels,
        model_cfg=cfgs.BiDirectionalConfig(hidden_size=256, hidden_layers=3),
        precision=32,
        optim_cfg=cfgs.AdamConfig(),
        spect_cfg=spect_cfg,
    ).train()
    optimizers, _schedulers = model.configure_optimizers()
    opt = optimizers[0]

    def step(batch: tuple) -> None:
        waves, wave_lens, targets, target_sizes = batch
        inputs, frames = deepspeech_spectrogram(waves, wave_lens, spect_cfg)
        input_percentages = frames.float() / inputs.size(3)
        loss = model.training_step((inputs, targets, input_percentages, target_sizes), 0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 400.0)  # its an4.yaml gradient_clip_val
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, model


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, default=Path("data/an4/train.jsonl"))
    p.add_argument("--config", default="conf/small.yaml")
    p.add_argument("--deepspeech-src", type=Path, default=Path("/tmp/deepspeech_src"))
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-seconds", type=float, default=200.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    problem = missing_source(args.deepspeech_src)
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds, cfgs, stubbed = load_deepspeech(args.deepspeech_src)
    labels = json.loads((args.deepspeech_src / "labels.json").read_text())

    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if not manifest.is_file():
            print(f"{manifest} not found: synthetic corpus instead")
            manifest = make_corpus(Path(tmp) / "corpus", 600, 10, 10)["train"]
        batches, corpus = make_batches(manifest, args.batches, args.batch_seconds)
    audio = [float(b["wave_lens"].sum()) / RATE for b in batches]
    padded = [b["waves"].numel() / RATE for b in batches]
    print(f"corpus: {corpus}; torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(
        f"batches: {len(batches)}, utterances {[len(b['texts']) for b in batches]}, "
        f"audio {sum(audio):.0f} s ({sum(audio) / sum(padded):.0%} of {sum(padded):.0f} s padded)"
    )
    print(f"deepspeech.pytorch from {args.deepspeech_src}; stubbed imports: {', '.join(stubbed) or 'none'}")

    ds_run, ds_model = deepspeech_step(ds, cfgs, labels)
    ds_batches = [(b["waves"], b["wave_lens"], *ds_targets(b, labels)) for b in batches]
    rows = [("deepspeech.pytorch 3x BiLSTM-256 fp32", count(ds_model), measure(ds_run, ds_batches, audio))]
    print(f"{rows[0][0]}: {rows[0][2]:.1f} audio-s/s", flush=True)
    del ds_run, ds_model, ds_batches
    for name, bf16 in (("fp32", False), ("bf16 autocast", True)):
        run, module, tokenizer = ours_step(args.config, bf16)
        ours = [our_batch(b, tokenizer) for b in batches]
        rows.append((f"ours {Path(args.config).stem} {name}", count(module), measure(run, ours, audio)))
        print(f"{rows[-1][0]}: {rows[-1][2]:.1f} audio-s/s", flush=True)

    base = rows[0][2]
    print()
    print(f"{'system':<40}{'params':>10}{'audio-s/s':>11}{'vs deepspeech':>15}")
    for name, params, speed in rows:
        print(f"{name:<40}{params / 1e6:>9.2f}M{speed:>11.1f}{speed / base:>14.1f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
