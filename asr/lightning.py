"""The LightningModule: CTC loss, optimiser and schedule, one shared step, corpus-level validation WER."""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from lightning_fabric.plugins import TorchCheckpointIO
from torch import Tensor, nn

from asr.batching import zero_pad
from asr.checkpoint import checkpoint_payload, load_checkpoint, save_atomic
from asr.config import Config, OptimConfig
from asr.data import Batch
from asr.decoding.greedy import greedy_ids
from asr.features import change_speed, lengths_mask, spec_augment
from asr.metrics import ErrorCounts, score
from asr.recognizer import Recognizer
from asr.text import BLANK_ID, Tokenizer

log = logging.getLogger(__name__)


def warmup_cosine(step: int, warmup: int, total: int, final_ratio: float, hold: int = 0) -> float:
    """Learning-rate multiplier of step ``step`` (from 0): linear warm-up to 1, held at 1 for ``hold`` steps,
    then cosine decay to ``final_ratio`` at step ``total`` (warm-up, stable, decay when ``hold`` > 0)."""
    if step < warmup:
        return (step + 1) / warmup
    start = warmup + hold
    if step < start:
        return 1.0
    progress = min(1.0, (step - start) / max(1, total - start))
    return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(module: nn.Module, o: OptimConfig) -> torch.optim.AdamW:
    """Fused AdamW with the config's learning rate, betas and weight decay (none on biases and norm gains).

    Fused: one kernel for all parameters, and it can skip a step on the device (``found_inf``).
    """
    decay = [p for p in module.parameters() if p.ndim >= 2]
    no_decay = [p for p in module.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=o.lr,
        betas=tuple(o.betas),
        fused=True,
    )


def clip_or_skip(module: nn.Module, optimizer: torch.optim.Optimizer, max_norm: float) -> Tensor:
    """Clip the gradients by global norm; a non-finite or zero norm makes the fused optimiser skip a step.

    A zero norm means no rank had a readable file (DDP sums the gradients first): AdamW would still move the
    weights by its moments and weight decay. The decision stays on the device: the fused AdamW reads
    ``found_inf`` and leaves weights, moments and its step count untouched, so the training step never waits
    for the GPU. Returns the norm before clipping.
    """
    params = [p for p in module.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.found_inf = (~torch.isfinite(norm) | (norm == 0)).float()
    return norm


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes atomically and loads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        save_atomic(checkpoint, path)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict:
        return load_checkpoint(path, map_location or "cpu")


def ctc_loss_sum(
    log_probs: Tensor, out_lens: Tensor, targets: Tensor, target_lens: Tensor
) -> tuple[Tensor, Tensor]:
    """A batch's summed CTC loss in fp32 and the target tokens it covers, of log_probs (B, T', V).

    An utterance with fewer frames than its labels need (one each, plus a blank between two equal labels)
    has no alignment: it adds neither loss nor tokens, so it does not dilute the loss per token.
    """
    with torch.autocast(log_probs.device.type, enabled=False):
        losses = F.ctc_loss(
            log_probs.float().transpose(0, 1),  # (T', B, V)
            targets,
            out_lens,
            target_lens,
            blank=BLANK_ID,
            reduction="none",
            zero_infinity=True,
        )
    aligned = out_lens >= padded_ctc_min_frames(targets, target_lens)
    return torch.where(aligned, losses, 0.0).sum(), torch.where(aligned, target_lens, 0).sum()  # no host sync


def padded_ctc_min_frames(targets: Tensor, target_lens: Tensor) -> Tensor:
    """:func:`asr.text.ctc_min_frames` of each row of zero-padded targets (B, L), on their device: (B,)."""
    inside = torch.arange(1, targets.shape[1], device=targets.device) < target_lens[:, None]
    return target_lens + ((targets[:, 1:] == targets[:, :-1]) & inside).sum(1)


def per_token(loss_sum: Tensor, tokens: Tensor) -> Tensor:
    return loss_sum / tokens.clamp_min(1)


def mean_frame_entropy(log_probs: Tensor, out_lens: Tensor) -> Tensor:
    """The mean entropy in nats, in fp32, of log_probs (B, T', V)'s distributions over each utterance's
    first ``out_lens`` frames: padding does not count."""
    log_probs = log_probs.float()
    entropy = -(log_probs.exp() * log_probs).sum(-1)  # (B, T')
    valid = lengths_mask(out_lens, log_probs.shape[1])
    return torch.where(valid, entropy, 0.0).sum() / valid.sum().clamp_min(1)


class CTCModule(pl.LightningModule):
    """Trains a :class:`Recognizer` with CTC; evaluates greedy WER/CER.

    With ``aux_ctc.layer`` set, a second CTC loss reads that layer's output through its own output layer
    (``aux_output``, kept in training checkpoints, not in the model file), over ``aux_tokenizer``'s units:
    characters under a piece model (train.py passes them), the model's own units when none is given. With
    ``model.condition_layer`` (self-conditioned CTC) the loss is taken on the encoder's own posteriors at that
    layer instead, which the layers above read and the model file keeps.
    """

    def __init__(self, recognizer: Recognizer, cfg: Config, aux_tokenizer: Tokenizer | None = None) -> None:
        super().__init__()
        self.recognizer = recognizer
        self.cfg = cfg
        self.aux_tokenizer = aux_tokenizer
        if cfg.aux_ctc.layer and not cfg.model.condition_layer:
            width = recognizer.encoder.output.in_features
            vocab = (aux_tokenizer or recognizer.tokenizer).vocab_size
            self.aux_output = nn.Linear(width, vocab)
        self._skipped = torch.zeros((), dtype=torch.long)  # kept on the training device: no host sync
        self._skipped_reported = 0
        self._unreadable = 0  # training files skipped this epoch because they could not be read
        self._eval_counts = ErrorCounts()
        self._eval_loss = torch.zeros(2, dtype=torch.float64)  # (sum of losses, target tokens)
        self._clean: list[Tensor] = []  # the RNN weights without noise while a noisy batch trains

    @property
    def skipped_steps(self) -> int:
        """Optimiser steps skipped because the loss or a gradient was not finite."""
        return int(self._skipped)

    def forward(self, waves: Tensor, wave_lens: Tensor) -> tuple[Tensor, Tensor]:
        return self.recognizer(waves, wave_lens)

    def _encode(self, batch: Batch, train: bool) -> tuple[list[Tensor], list[Tensor], Tensor | None]:
        """Features (+speed perturbation and, from ``specaug.start_step``, VTLP and SpecAugment when
        training), then :meth:`asr.model.Encoder.layer_outputs`."""
        waves, wave_lens = batch.waves, batch.wave_lens  # (B, S)
        if train:
            waves, wave_lens = change_speed(waves, wave_lens, batch.speed)
        augment = train and self.global_step >= self.cfg.specaug.start_step
        vtlp = self.cfg.specaug.vtlp if augment else 0.0
        warp = 1 + vtlp * (2 * torch.rand(len(wave_lens), device=waves.device) - 1) if vtlp else None
        feats, feat_lens = self.recognizer.frontend(waves, wave_lens, warp)  # (B, T, F)
        if augment:
            feats = spec_augment(feats, feat_lens, self.cfg.specaug)
        return self.recognizer.encoder.layer_outputs(feats, feat_lens)

    def _shared_step(
        self, batch: Batch, train: bool
    ) -> tuple[tuple[Tensor, Tensor], Tensor, Tensor, tuple[list[Tensor], list[Tensor], Tensor | None]]:
        """The encoder's CTC loss (:func:`ctc_loss_sum`), log_probs (B, T', V), out_lens (B,), and
        :meth:`asr.model.Encoder.layer_outputs` (for the auxiliary loss)."""
        encoded = self._encode(batch, train)
        outputs, lens, _ = encoded
        log_probs = self.recognizer.encoder.log_probs(outputs[-1])  # (B, T', V)
        loss = ctc_loss_sum(log_probs, lens[-1], batch.targets, batch.target_lens)
        return loss, log_probs, lens[-1], encoded

    def _aux_targets(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The batch's targets in the auxiliary loss's units: (B, L) zero-padded, lengths (B,)."""
        if self.aux_tokenizer is None:
            return batch.targets, batch.target_lens
        ids = [torch.tensor(self.aux_tokenizer.encode(t), dtype=torch.long) for t in batch.texts]
        lens = torch.tensor([len(i) for i in ids], dtype=torch.long)
        return zero_pad(ids, width=1).to(batch.targets.device), lens.to(batch.target_lens.device)

    def train_loss(self, batch: Batch) -> Tensor:
        """The training loss of a non-empty batch, with the training augmentation: CTC per target token, or
        its mix with the auxiliary CTC loss (``aux_ctc``), less ``optim.confidence_penalty`` times the top
        CTC's mean frame entropy (:func:`mean_frame_entropy`)."""
        ctc, log_probs, out_lens, (outputs, lens, inter) = self._shared_step(batch, train=True)
        loss = per_token(*ctc)
        aux = self.cfg.aux_ctc
        if aux.layer:
            if inter is None:
                inter = self.recognizer.encoder.log_probs(outputs[aux.layer - 1], self.aux_output)
            targets, target_lens = self._aux_targets(batch)
            aux_loss = per_token(*ctc_loss_sum(inter, lens[aux.layer - 1], targets, target_lens))
            loss = (1 - aux.weight) * loss + aux.weight * aux_loss
        penalty = self.cfg.optim.confidence_penalty
        if penalty:
            loss = loss - penalty * mean_frame_entropy(log_probs, out_lens)
        return loss

    def fit_step(
        self, batch: Batch, optimizer: torch.optim.Optimizer, autocast: torch.dtype | None = None
    ) -> Tensor:
        """One training step without a Trainer (benchmarks): the loss (under ``autocast`` when given), its
        backward, :func:`clip_or_skip` at ``optim.grad_clip``, the optimiser step. Returns the loss.

        Outside a Trainer ``global_step`` stays 0, so SpecAugment applies only when ``specaug.start_step``
        is 0.
        """
        device = batch.waves.device.type
        with torch.autocast(device, dtype=autocast) if autocast else contextlib.nullcontext():
            loss = self.train_loss(batch)
        loss.backward()
        clip_or_skip(self, optimizer, self.cfg.optim.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        self._unreadable += batch.skipped
        if not len(batch):  # every file of the batch was unreadable: a zero gradient keeps DDP ranks in step
            return sum(p.sum() for p in self.parameters()) * 0.0
        o = self.cfg.optim
        if o.weight_noise and self.global_step >= o.weight_noise_start:
            self._add_weight_noise(o.weight_noise)
        loss = self.train_loss(batch)
        # the progress bar reads its values on the host after every step: a GPU sync, so only when it is shown
        self.log("train/loss", loss.detach(), prog_bar=self.cfg.trainer.progress_bar, batch_size=len(batch))
        return loss

    def _noisy_weights(self) -> list[Tensor]:
        return [p for p in self.recognizer.encoder.rnns.parameters() if p.ndim >= 2]

    @torch.no_grad()
    def _add_weight_noise(self, std: float) -> None:
        """Keep the clean RNN weight matrices and add Gaussian noise to them (``optim.weight_noise``)."""
        weights = self._noisy_weights()
        self._clean = [w.detach().clone() for w in weights]
        for w in weights:
            w.add_(torch.randn_like(w), alpha=std)

    @torch.no_grad()
    def on_after_backward(self) -> None:
        """Put the clean weights back once the gradient at the noisy ones is taken: the step moves them."""
        for w, clean in zip(self._noisy_weights(), self._clean):
            w.copy_(clean)
        self._clean = []

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None
    ) -> None:
        """Clip by global norm; skip the step when the loss or a gradient is not finite (``clip_or_skip``).

        Gradients are already summed across DDP ranks here, so every rank takes the same decision.
        """
        norm = clip_or_skip(self, optimizer, self.cfg.optim.grad_clip)
        self._skipped = self._skipped.to(norm.device) + ~torch.isfinite(norm)
        self.log("train/grad_norm", norm, batch_size=1)
        self.log("train/skipped_steps", self._skipped.float(), batch_size=1)

    def on_train_epoch_end(self) -> None:
        if self._unreadable:
            log.warning(
                "epoch %d: %d unreadable training file(s) skipped (each named above)",
                self.current_epoch,
                self._unreadable,
            )
            self._unreadable = 0
        skipped = self.skipped_steps
        if skipped > self._skipped_reported:
            log.warning(
                "epoch %d: %d step(s) skipped for a non-finite loss or gradient (%d in all)",
                self.current_epoch,
                skipped - self._skipped_reported,
                skipped,
            )
            self._skipped_reported = skipped

    def _eval_step(self, batch: Batch) -> None:
        if not len(batch):
            return
        (loss, tokens), log_probs, out_lens, _ = self._shared_step(batch, train=False)
        self._eval_loss += torch.stack([loss.double(), tokens.double()]).cpu()
        hyps = [self.recognizer.tokenizer.decode(ids) for ids in greedy_ids(log_probs, out_lens)]
        self._eval_counts = self._eval_counts + score(batch.texts, hyps)[0]

    def _eval_epoch_end(self, stage: str) -> None:
        """Sum counts over ranks once, then log WER/CER and the loss per target token."""
        totals = torch.tensor(self._eval_counts.as_list() + self._eval_loss.tolist(), dtype=torch.float64)
        totals = self.trainer.strategy.reduce(totals.to(self.device), reduce_op="sum").cpu()
        counts = ErrorCounts(*(int(v) for v in totals[:6].tolist()))
        loss = totals[6] / totals[7].clamp_min(1)
        self.log_dict(
            {f"{stage}/loss": float(loss), f"{stage}/wer": counts.wer, f"{stage}/cer": counts.cer},
            prog_bar=stage == "val",
            sync_dist=False,
        )
        self.last_eval = counts
        self._eval_counts = ErrorCounts()
        self._eval_loss.zero_()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self) -> dict:
        o = self.cfg.optim
        optimizer = build_optimizer(self, o)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = min(o.warmup_steps, max(1, total // 5))
        hold = int(o.hold_fraction * (total - warmup))
        last = total - 1  # steps count from 0: the last one trains at lr * final_lr_ratio
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup, last, o.final_lr_ratio, hold)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["asr"] = checkpoint_payload(self.recognizer, self.cfg)
        checkpoint["skipped_steps"] = self.skipped_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._skipped_reported = int(checkpoint.get("skipped_steps", 0))
        self._skipped = torch.tensor(self._skipped_reported)
