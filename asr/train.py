"""Training orchestration: tokenizer, normalisation statistics, data, Lightning Trainer, automatic resume."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from torch.utils.data import DataLoader

from asr.audio import SAMPLE_RATE
from asr.config import Config, save_config
from asr.data import AsrDataModule, AsrDataset, collate
from asr.features import CMVNAccumulator, LogMel
from asr.lightning import AtomicCheckpointIO, CTCModule
from asr.manifest import read_manifest
from asr.model import describe
from asr.recognizer import Recognizer
from asr.text import CharTokenizer

log = logging.getLogger(__name__)


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
        if batch is not None:
            acc.add(*logmel(batch.waves, batch.wave_lens))
    recognizer.frontend.cmvn.set_stats(*acc.stats())
    log.info("normalisation statistics from %d utterances (%d frames)", len(subset), acc.frames)


class AudioThroughput(pl.Callback):
    """Logs training speed in audio-seconds per wall-clock second (this rank), per epoch."""

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start, self.audio = time.perf_counter(), 0.0

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx
    ) -> None:
        if batch is not None:
            self.audio += float(batch.wave_lens.sum()) / SAMPLE_RATE

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        speed = self.audio / max(time.perf_counter() - self.start, 1e-9)
        module.log("train/audio_sec_per_sec", speed, batch_size=1)
        log.info("epoch %d: %.0f audio-seconds per second", trainer.current_epoch, speed)


def build_trainer(cfg: Config) -> pl.Trainer:
    exp = Path(cfg.exp_dir)
    t = cfg.trainer
    checkpoint = ModelCheckpoint(
        dirpath=exp / "checkpoints",
        filename="best-{epoch:03d}-{step}",
        monitor="val/wer",
        mode="min",
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
    )
    return pl.Trainer(
        default_root_dir=exp,
        max_epochs=t.max_epochs,
        max_steps=t.max_steps,
        max_time=t.max_time or None,
        precision=t.precision,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        accumulate_grad_batches=t.accumulate_grad_batches,
        check_val_every_n_epoch=t.val_every_n_epochs,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar,
        callbacks=[checkpoint, LearningRateMonitor(logging_interval="step"), AudioThroughput()],
        logger=[
            CSVLogger(exp, name="logs", version=""),
            TensorBoardLogger(exp, name="tensorboard", version=""),
        ],
        plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False,
    )


def train(cfg: Config) -> Path:
    """Train (or resume) the run in ``cfg.exp_dir``; returns the best checkpoint's path."""
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
        compute_cmvn(
            recognizer, data.dataset("train"), cfg.features.cmvn_max_utts, cfg.seed, cfg.data.num_workers
        )
    else:
        log.info("resuming from %s", resume)
    trainer = build_trainer(cfg)
    if trainer.is_global_zero:
        save_config(cfg, exp / "config.yaml")
    trainer.fit(CTCModule(recognizer), datamodule=data, ckpt_path=resume)
    best = trainer.checkpoint_callback.best_model_path
    return Path(best) if best else last
