"""Training orchestration: tokenizer, normalisation statistics, data, Lightning Trainer, automatic resume."""

from __future__ import annotations

import json
import logging
import os
import random
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader

from asr.audio import SAMPLE_RATE
from asr.config import Config, save_config
from asr.data import AsrDataModule, AsrDataset, collate
from asr.errors import first_line
from asr.features import CMVNAccumulator, LogMel
from asr.lightning import AtomicCheckpointIO, CTCModule
from asr.manifest import read_manifest
from asr.model import describe
from asr.recognizer import Recognizer
from asr.text import CharTokenizer

log = logging.getLogger(__name__)


class PeerFailure(RuntimeError):
    """A multi-process run stopped because one of its processes died or failed."""


def build_tokenizer(cfg: Config) -> CharTokenizer:
    if cfg.data.vocabulary == "english":
        return CharTokenizer.english()
    return CharTokenizer.from_texts(u.text for u in read_manifest(cfg.data.train_manifest))


@torch.inference_mode()
def compute_cmvn(recognizer: Recognizer, dataset: AsrDataset, max_utts: int, seed: int, workers: int) -> None:
    """Set the recogniser's global mean/std from up to ``max_utts`` random training utterances."""
    indices = list(range(len(dataset)))
    random.Random(seed).shuffle(indices)
    subset = torch.utils.data.Subset(dataset, indices[:max_utts])
    loader = DataLoader(subset, batch_size=16, collate_fn=collate, num_workers=workers)
    logmel = LogMel(recognizer.cfg.features)
    acc = CMVNAccumulator(recognizer.cfg.features.n_mels)
    for batch in loader:
        if len(batch):
            acc.add(*logmel(batch.waves, batch.wave_lens))
    recognizer.frontend.cmvn.set_stats(*acc.stats())
    log.info("normalisation statistics from %d utterances (%d frames)", len(subset), acc.frames)


def load_or_compute_cmvn(recognizer: Recognizer, dataset: AsrDataset, cfg: Config) -> None:
    """Set the recogniser's normalisation statistics from ``cfg.data.cmvn_stats``, computing the file once."""
    path = Path(cfg.data.cmvn_stats) if cfg.data.cmvn_stats else None
    if path is not None and path.is_file():
        stats = json.loads(path.read_text())
        if len(stats["mean"]) != cfg.features.n_mels:
            raise ValueError(
                f"{path}: statistics for {len(stats['mean'])} mel bins, the model has "
                f"{cfg.features.n_mels}; delete the file or set data.cmvn_stats to another path"
            )
        recognizer.frontend.cmvn.set_stats(torch.tensor(stats["mean"]), torch.tensor(stats["std"]))
        log.info("normalisation statistics from %s", path)
        return
    compute_cmvn(recognizer, dataset, cfg.features.cmvn_max_utts, cfg.seed, cfg.data.num_workers)
    if path is not None:
        cmvn = recognizer.frontend.cmvn
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"mean": cmvn.mean.tolist(), "std": cmvn.std.tolist()}) + "\n")
        os.replace(tmp, path)


class RNGState(pl.Callback):
    """Saves the torch, CUDA, Python and NumPy random states in checkpoints and restores them on resume.

    Lightning does not, so without this a resumed run draws different dropout and SpecAugment masks. The
    states are applied when training starts (after model set-up and the sanity check), so the first step
    after resuming draws what it would have drawn in an uninterrupted run.
    """

    def __init__(self) -> None:
        self.pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, gauss = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending = state

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self.pending is None:
            return
        s, self.pending = self.pending, None
        torch.set_rng_state(s["torch"])
        if s["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda"])
        random.setstate(s["python"])
        name, keys, pos, has_gauss, gauss = s["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


class AudioThroughput(pl.Callback):
    """Logs training speed in audio-seconds per wall-clock second (this rank), per epoch.

    Validation inside the epoch is not counted, and the audio is summed on the device, so measuring adds
    no host-device synchronisation to the training step.
    """

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.on_train_epoch_start(trainer, module)  # a run resumed mid-epoch starts no epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start, self.paused, self.samples = time.perf_counter(), 0.0, torch.zeros((), dtype=torch.long)

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx
    ) -> None:
        self.samples = self.samples.to(batch.wave_lens.device) + batch.wave_lens.sum()

    def on_validation_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.validation_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit" and not trainer.sanity_checking:
            self.paused += time.perf_counter() - self.validation_start

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        elapsed = time.perf_counter() - self.start - self.paused
        speed = float(self.samples) / SAMPLE_RATE / max(elapsed, 1e-9)
        module.log("train/audio_sec_per_sec", speed, batch_size=1)
        log.info("epoch %d: %.0f audio-seconds per second", trainer.current_epoch, speed)


def build_trainer(cfg: Config, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """The Lightning Trainer for ``cfg``, with ``callbacks`` added to the standard ones."""
    exp = Path(cfg.exp_dir)
    t = cfg.trainer
    checkpoint = ModelCheckpoint(
        dirpath=exp / "checkpoints",
        filename="best-{epoch:03d}-{step}",
        monitor="val/wer",
        mode="min",
        save_top_k=t.keep_best,
        save_last=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,  # both checkpoint callbacks write the one last.ckpt that resume reads
    )
    extra: list[pl.Callback] = list(callbacks)
    if t.checkpoint_every_n_steps:
        extra.append(
            ModelCheckpoint(
                dirpath=exp / "checkpoints",
                filename="step-{step:08d}",
                every_n_train_steps=t.checkpoint_every_n_steps,
                monitor="step",  # keep the latest keep_last
                mode="max",
                save_top_k=t.keep_last,
                save_last=True,
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
        )
    return pl.Trainer(
        default_root_dir=exp,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        max_time=t.max_time or None,
        precision=t.precision,
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        accumulate_grad_batches=t.accumulate_grad_batches,
        check_val_every_n_epoch=t.val_every_n_epochs,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar,
        callbacks=[
            checkpoint,
            LearningRateMonitor(logging_interval="step"),
            AudioThroughput(),
            RNGState(),
            *extra,
        ],
        logger=[
            CSVLogger(exp, name="logs", version=""),
            TensorBoardLogger(exp, name="tensorboard", version=""),
        ],
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
    )


def train(cfg: Config, callbacks: Sequence[pl.Callback] = ()) -> Path:
    """Train (or resume) the run in ``cfg.exp_dir``; returns the best checkpoint's path.

    A resumed run continues exactly where ``last.ckpt`` left it: same step, LR schedule, sampler position
    (mid-epoch too) and random states. ``callbacks`` are added to the trainer's.
    """
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    exp = Path(cfg.exp_dir)
    tokenizer = build_tokenizer(cfg)
    recognizer = Recognizer(cfg, tokenizer)
    log.info("%s (vocabulary %d)", describe(recognizer), tokenizer.vocab_size)
    data = AsrDataModule(cfg.data, tokenizer, recognizer.output_frames, seed=cfg.seed)
    last = exp / "checkpoints" / "last.ckpt"
    resume = last if last.is_file() else None
    if resume is None:
        load_or_compute_cmvn(recognizer, data.dataset("train"), cfg)
    else:
        log.info("resuming from %s", resume)
        # the DataModule restores the sampler's position, which Lightning cannot see
        warnings.filterwarnings(
            "ignore", message="You're resuming from a checkpoint that ended before the epoch"
        )
    trainer = build_trainer(cfg, callbacks)
    if trainer.is_global_zero:
        save_config(cfg, exp / "config.yaml")
    try:
        trainer.fit(CTCModule(recognizer), datamodule=data, ckpt_path=resume)
    except RuntimeError as e:
        if trainer.world_size == 1:
            raise
        raise PeerFailure(
            f"rank {trainer.global_rank}: another training process failed or was killed ({first_line(e)}); "
            f"see the other ranks' logs, then rerun the same command to resume from {last}"
        ) from e
    best = trainer.checkpoint_callback.best_model_path
    return Path(best) if best else last
