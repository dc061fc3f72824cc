"""Training orchestration: tokenizer, normalisation statistics, data, Lightning Trainer, automatic resume."""

from __future__ import annotations

import csv
import dataclasses
import errno
import fcntl
import json
import logging
import os
import random
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.strategies import StrategyRegistry
from pytorch_lightning.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from asr.audio import SAMPLE_RATE
from asr.checkpoint import load_checkpoint, model_spec, training_config
from asr.config import Config, save_config
from asr.data import AsrDataModule, AsrDataset, collate
from asr.errors import AudioFailure, ConfigError, OutputError, UsageError, first_line
from asr.features import CMVNAccumulator, LogMel
from asr.lightning import AtomicCheckpointIO, CTCModule
from asr.manifest import read_manifest
from asr.model import describe
from asr.outputs import check_output_dir
from asr.recognizer import Recognizer
from asr.spec import ModelSpec
from asr.text import CharTokenizer, SentencePieceTokenizer, Tokenizer
from asr.threads import ThreadRetuner, choose_threads

log = logging.getLogger(__name__)


LOCK_FILE = "train.lock"  # in exp_dir: held (flock) by the run training there, released when it ends or dies


class PeerFailure(RuntimeError):
    """A multi-process run stopped because one of its processes died or failed."""


class ExperimentBusy(OutputError):
    """Another training run holds the experiment folder (exit 6: the folder cannot be written now)."""


def _launcher() -> bool:
    """Whether this process started the run (not a rank that Lightning, torchrun or another node started)."""
    return all(os.environ.get(v, "0") == "0" for v in ("RANK", "LOCAL_RANK", "NODE_RANK"))


@contextmanager
def experiment_lock(exp: Path) -> Iterator[None]:
    """Hold ``exp/train.lock`` exclusively while training: a second run in ``exp`` gets
    :class:`ExperimentBusy` naming the holder (pid, host, start time). The lock is the kernel's (``flock``),
    so a run that dies, even by SIGKILL, releases it: a lock file left behind never blocks a later run.
    """
    check_output_dir(exp)
    path = exp / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise OutputError(f"{path}: cannot create the lock file ({e.strerror or first_line(e)})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode("utf-8", "replace").strip() or "holder unknown"
            raise ExperimentBusy(
                f"{exp}: another training run is using this exp_dir ({holder}); "
                "wait for it to end or choose another exp_dir"
            ) from None
        except OSError as e:  # a file system without locks: train unguarded rather than not at all
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            log.warning("%s: cannot lock (%s); make sure no other run uses this exp_dir", path, e.strerror)
        started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def check_resume(cfg: Config, tokenizer_data: dict[str, Any], last: Path) -> None:
    """:class:`ConfigError` unless ``cfg`` describes the model in ``last``: features, model, tokenizer, and
    the auxiliary CTC layer (whose output layer the training checkpoint holds)."""
    ckpt = load_checkpoint(last)
    stored = model_spec(ckpt, last)
    changed = []
    for section, now, then in (
        ("features", asdict(cfg.features), asdict(stored.features)),
        ("model", asdict(cfg.model), asdict(stored.model)),
    ):
        changed += [f"{section}.{k} {then.get(k)!r} -> {v!r}" for k, v in now.items() if then.get(k) != v]
    if stored.tokenizer != tokenizer_data:
        changed.append("the tokenizer (data.tokenizer, data.vocabulary, data.pieces or the training text)")
    aux_then = ((training_config(ckpt) or {}).get("aux_ctc") or {}).get("layer", 0)
    if aux_then != cfg.aux_ctc.layer:
        changed.append(f"aux_ctc.layer {aux_then!r} -> {cfg.aux_ctc.layer!r}")
    if changed:
        raise ConfigError(
            f"{last}: cannot resume with changed model settings ({'; '.join(changed)}); "
            "restore them or choose another exp_dir"
        )


def resolve_precision(precision: str, accelerator: str) -> str:
    """``precision`` with "auto" made concrete: bf16 autocast on a CUDA GPU that supports it (fp16 autocast
    on one that does not), and on a CPU only with AMX, where bf16 matrix work is fast; elsewhere on the CPU
    (without AMX, bf16 is emulated and many times slower than fp32) full fp32."""
    if precision != "auto":
        return precision
    if accelerator in ("auto", "cuda", "gpu") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if torch.cpu._is_amx_tile_supported() else "32-true"


def check_devices(cfg: Config) -> None:
    """The accelerator asked for exists here (else :class:`UsageError`); the strategy is Lightning's."""
    t = cfg.trainer
    if t.accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        raise UsageError(f"trainer.accelerator={t.accelerator}: no CUDA GPU on this machine; use cpu or auto")
    if t.accelerator == "mps" and not torch.backends.mps.is_available():
        raise UsageError("trainer.accelerator=mps: no Apple GPU (MPS) on this machine; use cpu or auto")
    if t.strategy != "auto" and t.strategy not in StrategyRegistry.available_strategies():
        raise ConfigError(
            f"trainer.strategy={t.strategy!r} is not a Lightning strategy (e.g. auto, ddp, ddp_spawn)"
        )


def check_data(data: AsrDataModule) -> None:
    """Read and filter the training and validation manifests now: :class:`DataError` if either is unusable."""
    for split in ("train", "val"):
        data.dataset(split)


def build_tokenizer(cfg: Config) -> Tokenizer:
    """The tokenizer ``cfg.data`` asks for; one learnt from text uses the training transcripts."""
    d = cfg.data
    if d.tokenizer == "char" and d.vocabulary == "english":
        return CharTokenizer.english()
    texts = [u.text for u in read_manifest(d.train_manifest)]
    if d.tokenizer == "sentencepiece":
        return SentencePieceTokenizer.train(texts, d.pieces, d.piece_type)
    return CharTokenizer.from_texts(texts)


def build_aux_tokenizer(cfg: Config, tokenizer: Tokenizer) -> CharTokenizer | None:
    """The characters of the auxiliary CTC loss (``aux_ctc``) under a piece model: every character of the
    training transcripts. None when it is off or the model's own units are characters."""
    if not cfg.aux_ctc.layer or isinstance(tokenizer, CharTokenizer):
        return None
    return CharTokenizer.from_texts(u.text for u in read_manifest(cfg.data.train_manifest))


@torch.inference_mode()
def compute_cmvn(
    recognizer: Recognizer,
    dataset: AsrDataset,
    max_utts: int,
    seed: int,
    workers: int,
    source: str = "training data",
) -> None:
    """Set the recogniser's global mean/std from up to ``max_utts`` random training utterances.

    :class:`AudioFailure` naming ``source`` when none of them can be read.
    """
    indices = list(range(len(dataset)))
    random.Random(seed).shuffle(indices)
    subset = torch.utils.data.Subset(dataset, indices[:max_utts])
    loader = DataLoader(subset, batch_size=16, collate_fn=collate, num_workers=workers)
    logmel = LogMel(recognizer.feature_config)
    acc = CMVNAccumulator(recognizer.feature_config.n_mels)
    unreadable = 0
    for batch in loader:
        unreadable += batch.skipped
        if len(batch):
            acc.add(*logmel(batch.waves, batch.wave_lens))
    if unreadable == len(subset):
        raise AudioFailure(
            f"{source}: none of the {unreadable} audio file(s) tried could be read (see above)"
        )
    recognizer.frontend.cmvn.set_stats(*acc.stats())
    log.info("normalisation statistics from %d utterances (%d frames)", len(subset), acc.frames)


def load_or_compute_cmvn(recognizer: Recognizer, dataset: AsrDataset, cfg: Config) -> None:
    """Set the recogniser's normalisation statistics from ``cfg.data.cmvn_stats``, computing the file once."""
    path = Path(cfg.data.cmvn_stats) if cfg.data.cmvn_stats else None
    features = dataclasses.asdict(cfg.features)
    if path is not None and path.is_file():
        stats = json.loads(path.read_text())
        # files from before the settings were written in them hold only the mel bins
        theirs = stats.get("features", {"n_mels": len(stats["mean"])})
        if differ := [
            f"{k} {theirs[k]} (the model: {v})" for k, v in features.items() if theirs.get(k, v) != v
        ]:
            raise ConfigError(
                f"{path}: statistics for other features, {', '.join(differ)}; delete the file or set "
                "data.cmvn_stats to another path"
            )
        recognizer.frontend.cmvn.set_stats(torch.tensor(stats["mean"]), torch.tensor(stats["std"]))
        log.info("normalisation statistics from %s", path)
        return
    compute_cmvn(
        recognizer, dataset, cfg.data.cmvn_max_utts, cfg.seed, cfg.data.num_workers, cfg.data.train_manifest
    )
    if path is not None:
        cmvn = recognizer.frontend.cmvn
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(
            json.dumps({"features": features, "mean": cmvn.mean.tolist(), "std": cmvn.std.tolist()}) + "\n"
        )
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


class FollowFreeCores(pl.Callback):
    """For ``trainer.threads=0``: sets the intra-op thread count between training steps to the cores other
    processes left free over the last few seconds (:class:`asr.threads.ThreadRetuner`), so that a process
    which starts or ends during training costs this one about one poll interval at the wrong count."""

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.retuner = ThreadRetuner(torch.get_num_threads())

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx
    ) -> None:
        threads = self.retuner.poll()
        if threads is not None:
            torch.set_num_threads(threads)
            log.info(
                "%d intra-op thread(s) from step %d: other processes took %.1f CPUs over the last %.0f s",
                threads,
                trainer.global_step,
                self.retuner.elsewhere,
                self.retuner.window,
            )


class AppendingCSVWriter(ExperimentWriter):
    """Lightning's CSV metrics writer, except that an existing ``metrics.csv`` is continued, not deleted.

    A row cut short by a kill is dropped; the header read back lets rows with the same columns append.
    """

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
        with open(path, newline="", encoding="utf-8") as f:
            self.metrics_keys = next(csv.reader(f), [])


class AppendingCSVLogger(CSVLogger):
    """A CSVLogger whose resumed run appends to ``metrics.csv`` (Lightning's own removes the file)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingCSVWriter(log_dir=self.log_dir)
        return self._experiment


def _rebase(path: str, old: str, new: str) -> str:
    """``path`` inside the folder ``old`` moved into ``new``; any other path unchanged."""
    if path and os.path.dirname(path) == old:
        return os.path.join(new, os.path.basename(path))
    return path


class MovableCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose saved file paths follow the experiment folder when it is copied or moved.

    Lightning keeps only ``best_model_path``, still naming the old folder, when the folder changed.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old = state_dict.get("dirpath")
        if old and self.dirpath and old != self.dirpath:
            new = self.dirpath
            state_dict = {
                **state_dict,
                "dirpath": new,
                "best_k_models": {
                    _rebase(p, old, new): v for p, v in state_dict.get("best_k_models", {}).items()
                },
                **{
                    key: _rebase(state_dict.get(key, ""), old, new)
                    for key in ("best_model_path", "kth_best_model_path", "last_model_path")
                },
            }
        super().load_state_dict(state_dict)


class LastCheckpoint(MovableCheckpoint):
    """Writes ``last.ckpt`` at the end of every training epoch, whatever the validation metric did
    (Lightning's ``save_last`` writes it only when another checkpoint is saved), and where a run stops
    mid-epoch (``max_time``, ``max_steps``): at that step, where Lightning resumes it mid-epoch. Written when
    the epoch's loop ends instead, it would count the epoch as done and resume at the next one, leaving the
    rest of this one's batches and schedule untrained."""

    def __init__(self, dirpath: Path) -> None:
        super().__init__(dirpath=dirpath, save_top_k=0, save_last=True, enable_version_counter=False)
        self._stopped_mid_epoch = False

    def _save_last_now(self, trainer: pl.Trainer) -> None:
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, *args: Any) -> None:
        stopping = trainer.should_stop or 0 < trainer.max_steps <= trainer.global_step
        if stopping and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._save_last_now(trainer)
            self._stopped_mid_epoch = True

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not self._stopped_mid_epoch:
            self._save_last_now(trainer)

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Nothing: the epoch's last.ckpt is written when the epoch ends, after its validation."""

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not self._stopped_mid_epoch:
            self._save_last_now(trainer)


class UnreadableData(pl.Callback):
    """Stops the run with :class:`AudioFailure` when no file of a training epoch or a validation could be read
    (each unreadable file is named as it is skipped): otherwise training would go on learning nothing."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.read = {"train": 0, "val": 0}
        self.skipped = {"train": 0, "val": 0}

    def _count(self, split: str, batch: Any) -> None:
        self.read[split] += len(batch)
        self.skipped[split] += batch.skipped

    def _check(self, split: str) -> None:
        read, skipped = self.read[split], self.skipped[split]
        self.read[split] = self.skipped[split] = 0
        if read == 0 and skipped:
            manifest = getattr(self.cfg.data, f"{split}_manifest")
            raise AudioFailure(
                f"{manifest}: none of the {skipped} audio file(s) read could be decoded (see above)"
            )

    def on_train_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx
    ) -> None:
        self._count("train", batch)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._check("train")

    def on_validation_batch_end(
        self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, idx, dataloader_idx=0
    ) -> None:
        if not trainer.sanity_checking:
            self._count("val", batch)

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._check("val")


def build_trainer(cfg: Config, callbacks: Sequence[pl.Callback] = ()) -> pl.Trainer:
    """The Lightning Trainer for ``cfg``, with ``callbacks`` added to the standard ones."""
    exp = Path(cfg.exp_dir)
    t = cfg.trainer
    checkpoint = MovableCheckpoint(
        dirpath=exp / "checkpoints",
        filename="best-{epoch:03d}-{step}",
        monitor=f"val/{t.select_by}",
        mode="min",
        save_top_k=t.keep_best,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    extra: list[pl.Callback] = [*callbacks]
    if t.average_last:
        extra.append(
            MovableCheckpoint(
                dirpath=exp / "checkpoints",
                filename="epoch-{epoch:03d}",
                monitor="step",  # keep the latest average_last
                mode="max",
                save_top_k=t.average_last,
                save_weights_only=True,  # for averaging only: resume reads last.ckpt
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
        )
    # after the other checkpoints (Lightning runs checkpoint callbacks in order): last.ckpt holds their state
    extra.append(LastCheckpoint(exp / "checkpoints"))
    if t.checkpoint_every_n_steps:
        extra.append(
            MovableCheckpoint(
                dirpath=exp / "checkpoints",
                filename="step-{step:08d}",
                every_n_train_steps=t.checkpoint_every_n_steps,
                monitor="step",  # keep the latest keep_last
                mode="max",
                save_top_k=t.keep_last,
                save_last=True,  # every checkpoint callback writes the one last.ckpt that resume reads
                auto_insert_metric_name=False,
                enable_version_counter=False,
            )
        )
    try:
        return pl.Trainer(
            default_root_dir=exp,
            max_epochs=t.max_epochs,
            max_steps=t.max_steps,
            max_time=t.max_time or None,
            precision=resolve_precision(t.precision, t.accelerator),
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
                UnreadableData(cfg),
                *([FollowFreeCores()] if t.threads == 0 else []),
                *extra,
            ],
            logger=[
                AppendingCSVLogger(exp, name="logs", version=""),
                TensorBoardLogger(exp, name="tensorboard", version=""),
            ],
            plugins=[AtomicCheckpointIO()],
            use_distributed_sampler=False,
        )
    except (MisconfigurationException, ValueError, RuntimeError) as e:  # devices this machine does not have
        raise UsageError(f"trainer.accelerator/devices/num_nodes: {first_line(e)}") from None


def train(cfg: Config, callbacks: Sequence[pl.Callback] = ()) -> list[Path]:
    """Train (or resume) the run in ``cfg.exp_dir``; returns the checkpoints whose mean is the run's model
    (:func:`asr.checkpoint.export_model`), in ``cfg.exp_dir`` even when the folder was copied or moved since
    the run started: the best by ``trainer.select_by``, or with ``trainer.average_last=K`` the last K epochs'.

    A resumed run continues exactly where ``last.ckpt`` left it: same step, LR schedule, sampler position
    (mid-epoch too) and random states, and appends to ``logs/metrics.csv``. ``last.ckpt`` is written at the
    end of every epoch and where ``max_time`` or ``max_steps`` stops the run. Before anything is written: the
    devices are checked (:class:`UsageError`), a resume whose feature, model or tokenizer settings differ from
    ``last.ckpt``'s is refused (:class:`ConfigError`), training and validation data that are missing or
    unusable are :class:`DataError`, and the run takes ``exp_dir``'s lock (:class:`ExperimentBusy` while
    another run holds it). ``callbacks`` are added to the trainer's.
    """
    pl.seed_everything(cfg.seed, workers=True)
    threads = choose_threads(cfg.trainer.threads)  # trainer.threads, or the cores idle now
    torch.set_num_threads(threads)
    log.info(
        "%d intra-op thread(s)%s", threads, "" if cfg.trainer.threads else ", for the cores idle at start"
    )
    exp = Path(cfg.exp_dir)
    tokenizer = build_tokenizer(cfg)
    recognizer = Recognizer(ModelSpec(cfg.features, cfg.model, tokenizer.to_dict()))
    log.info("%s (vocabulary %d)", describe(recognizer), tokenizer.vocab_size)
    data = AsrDataModule(cfg.data, tokenizer, recognizer.output_frames, seed=cfg.seed)
    last = exp / "checkpoints" / "last.ckpt"
    resume = last if last.is_file() else None
    check_devices(cfg)
    if resume is not None:
        check_resume(cfg, tokenizer.to_dict(), resume)
    check_data(data)
    with experiment_lock(exp) if _launcher() else nullcontext():
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
            module = CTCModule(recognizer, cfg, build_aux_tokenizer(cfg, tokenizer))
            trainer.fit(module, datamodule=data, ckpt_path=resume)
        except RuntimeError as e:
            if trainer.world_size == 1:
                raise
            raise PeerFailure(
                f"rank {trainer.global_rank}: another training process failed or was killed "
                f"({first_line(e)}); see the other ranks' logs, then rerun the same command to resume "
                f"from {last}"
            ) from e
    if cfg.trainer.average_last:
        epochs = sorted(last.parent.glob("epoch-*.ckpt"), key=lambda p: int(p.stem.split("-")[1]))
        return epochs[-cfg.trainer.average_last :] or [last]
    best = trainer.checkpoint_callback.best_model_path
    return [Path(best) if best and Path(best).is_file() else last]
