"""Dataset, the named ``Batch``, collate, the duration-bucketing batch sampler, the DataModule."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from asr.audio import AudioError, load_audio
from asr.batching import pack_sorted, zero_pad
from asr.config import DataConfig
from asr.errors import DataError, first_line
from asr.manifest import Utterance, read_manifest
from asr.text import Tokenizer, TokenizerError, ctc_min_frames

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """A padded batch. Every padded tensor travels with its lengths."""

    waves: Tensor  # (B, S) float32, zero-padded
    wave_lens: Tensor  # (B,) int64 samples
    targets: Tensor  # (B, L) int64 token ids, zero-padded
    target_lens: Tensor  # (B,) int64
    ids: list[str]
    texts: list[str]
    skipped: int = 0  # items of this batch dropped because their audio file could not be read
    speed: float = 1.0  # speed perturbation factor, applied on the training device (features.change_speed)

    def __len__(self) -> int:
        return len(self.ids)

    def pin_memory(self) -> Batch:
        return Batch(
            self.waves.pin_memory(),
            self.wave_lens.pin_memory(),
            self.targets.pin_memory(),
            self.target_lens.pin_memory(),
            self.ids,
            self.texts,
            self.skipped,
            self.speed,
        )


@dataclass
class Item:
    wave: Tensor  # (S,)
    tokens: list[int]
    id: str
    text: str
    speed: float = 1.0


def select_utterances(
    utts: Sequence[Utterance],
    tokenizer: Tokenizer,
    output_frames: Callable[[float], int],
    min_duration: float = 0.0,
    max_duration: float = math.inf,
    source: str = "manifest",
) -> list[tuple[Utterance, list[int]]]:
    """Keep the utterances that can be trained on, logging a count for each reason one is dropped.

    ``output_frames(duration)`` is the model's output frame count for that much audio. :class:`DataError`,
    with the count per reason, when none is left.
    """
    kept, short, long, unknown, unfit = [], 0, 0, 0, 0
    for utt in utts:
        if utt.duration < min_duration:
            short += 1
            continue
        if utt.duration > max_duration:
            long += 1
            continue
        try:
            tokens = tokenizer.encode(utt.text)
        except TokenizerError as e:
            unknown += 1
            if unknown <= 5:
                log.warning("%s:%d: skipped, %s", source, utt.line, e)
            continue
        if ctc_min_frames(tokens) > output_frames(utt.duration):
            unfit += 1
            continue
        kept.append((utt, tokens))
    dropped = {
        f"shorter than {min_duration}s": short,
        f"longer than {max_duration}s": long,
        "with characters outside the vocabulary": unknown,
        "with a label too long for their frames": unfit,
    }
    for reason, n in dropped.items():
        if n:
            log.warning("%s: dropped %d utterance(s) %s", source, n, reason)
    log.info("%s: %d of %d utterances kept", source, len(kept), len(utts))
    if not kept:
        reasons = ", ".join(f"{n} {reason}" for reason, n in dropped.items() if n)
        raise DataError(
            f"{source}: no usable utterances" + (f" (of {len(utts)}: {reasons})" if reasons else "")
        )
    return kept


class AsrDataset(Dataset):
    """Utterances with their token ids. An unreadable audio file is reported and yields ``None``.

    With ``cache_bytes`` the decoded waveforms are kept in memory until they fill that many bytes, so each
    file is read and decoded once per process (a DataLoader worker keeps its own cache across epochs when
    the workers are persistent).

    An item is asked for by index, or by (index, speed factor) for speed perturbation: the factor travels
    with the item and is applied to the whole batch on the training device. Any other failure
    while reading the audio is raised as a RuntimeError naming the file, the original error as its cause,
    so that it names the file even from a DataLoader worker.
    """

    def __init__(self, entries: Sequence[tuple[Utterance, list[int]]], cache_bytes: int = 0) -> None:
        self.entries = list(entries)
        self.cache_bytes, self.cached_bytes = cache_bytes, 0
        self.cache: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def durations(self) -> list[float]:
        return [u.duration for u, _ in self.entries]

    def __getitem__(self, key: int | tuple[int, float]) -> Item | None:
        index, speed = key if isinstance(key, tuple) else (key, 1.0)
        utt, tokens = self.entries[index]
        wave = self.cache.get(index)
        if wave is None:
            try:
                wave = torch.from_numpy(load_audio(utt.audio_filepath))
            except AudioError as e:
                log.warning("skipped: %s", e)
                return None
            except Exception as e:
                raise RuntimeError(f"{utt.audio_filepath}: {type(e).__name__}: {first_line(e)}") from e
            if self.cached_bytes + wave.nbytes <= self.cache_bytes:
                self.cache[index] = wave
                self.cached_bytes += wave.nbytes
        return Item(wave, tokens, utt.id, utt.text, speed)


def collate(items: Sequence[Item | None]) -> Batch:
    """Pad items into a :class:`Batch`, dropping unreadable ones and counting them in ``Batch.skipped``
    (which reaches the main process from DataLoader workers). The batch is empty if no item is left."""
    skipped = len(items)
    items = [it for it in items if it is not None]
    skipped -= len(items)
    if not items:
        empty = torch.zeros(0, dtype=torch.long)
        return Batch(torch.zeros(0, 0), empty, torch.zeros(0, 1, dtype=torch.long), empty, [], [], skipped)
    wave_lens = torch.tensor([it.wave.numel() for it in items], dtype=torch.long)
    target_lens = torch.tensor([len(it.tokens) for it in items], dtype=torch.long)
    waves = zero_pad([it.wave for it in items])
    targets = zero_pad([torch.tensor(it.tokens, dtype=torch.long) for it in items], width=1)
    ids, texts = [it.id for it in items], [it.text for it in items]
    return Batch(waves, wave_lens, targets, target_lens, ids, texts, skipped, items[0].speed)


class DurationBatchSampler(Sampler[list]):
    """Batches of similar-length utterances, filled up to ``max_batch_seconds`` of padded audio.

    Utterances are sorted by duration and cut into batches whose longest item times their count stays
    within the budget, so padding is small. Each epoch the order of batches is shuffled with
    ``seed + epoch`` (the same on every rank). Under DDP the batch list is padded to a multiple of the
    world size by repeating its first batches, and rank r takes batches r, r + world, ...: ranks see
    disjoint data and the same number of steps. ``sorted_first_epoch`` runs epoch 0 shortest first
    (SortaGrad).

    With ``speeds`` (speed perturbation factors) each batch is a list of (index, factor) pairs, one factor
    per batch drawn from ``seed + epoch``; batches are packed as if every utterance were slowed by the
    smallest factor, so the budget holds. :meth:`state_dict` / :meth:`load_state_dict` save and restore the
    epoch and the position in it, so an interrupted epoch resumes with the next unseen batch.
    """

    def __init__(
        self,
        durations: Sequence[float],
        max_batch_seconds: float,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        sorted_first_epoch: bool = False,
        pad_to_replicas: bool = True,
        speeds: Sequence[float] = (),
    ) -> None:
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self.num_replicas, self.rank = num_replicas, rank
        self.sorted_first_epoch, self.pad_to_replicas = sorted_first_epoch, pad_to_replicas
        self.speeds = list(speeds)
        slowest = min(self.speeds, default=1.0)
        self.batches = pack_sorted([d / slowest for d in durations], max_batch_seconds)
        self.start = 0  # batches of this epoch to skip at the next iteration (set when resuming)

    @property
    def sampler(self) -> DurationBatchSampler:
        """This sampler: Lightning calls ``set_epoch`` on a loader's ``batch_sampler.sampler`` at the start of
        each epoch, and would not otherwise find this one (each epoch would repeat the first one's order)."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Iterate ``epoch`` from its start (a resumed epoch, already set, keeps its position)."""
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def state_dict(self, position: int) -> dict[str, int]:
        """The state after ``position`` batches of this epoch (the next epoch's start when it is over)."""
        if position >= len(self):
            return {"epoch": self.epoch + 1, "position": 0}
        return {"epoch": self.epoch, "position": position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a :meth:`state_dict`: the next iteration starts at its position in its epoch."""
        self.epoch, self.start = int(state["epoch"]), int(state["position"])

    def _epoch_batches(self) -> list[list]:
        batches: list[list] = list(self.batches)
        if self.shuffle and not (self.sorted_first_epoch and self.epoch == 0):
            random.Random(self.seed + self.epoch).shuffle(batches)
        if self.speeds:
            rng = random.Random(f"speed-{self.seed}-{self.epoch}")
            batches = [[(i, s) for i in b] for b, s in zip(batches, rng.choices(self.speeds, k=len(batches)))]
        if self.pad_to_replicas and self.num_replicas > 1:
            extra = -len(batches) % self.num_replicas
            batches += batches[:extra]
        return batches[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list]:
        # not a one-shot position: a loader with workers iterates its sampler twice when it starts
        return iter(self._epoch_batches()[self.start :])

    def __len__(self) -> int:
        n = len(self.batches)
        if self.pad_to_replicas:
            return math.ceil(n / self.num_replicas)
        return len(range(self.rank, n, self.num_replicas))


def padding_fraction(batches: Sequence[Sequence[int]], durations: Sequence[float]) -> float:
    """Fraction of padded audio in a list of batches."""
    total = sum(max(durations[i] for i in b) * len(b) for b in batches)
    real = sum(durations[i] for b in batches for i in b)
    return 1.0 - real / total if total else 0.0


class AsrDataModule(pl.LightningDataModule):
    """Train/val/test loaders from the manifests named in :class:`DataConfig`."""

    def __init__(
        self, cfg: DataConfig, tokenizer: Tokenizer, output_frames: Callable[[float], int], seed: int = 0
    ) -> None:
        super().__init__()
        self.cfg, self.tokenizer, self.output_frames, self.seed = cfg, tokenizer, output_frames, seed
        self.datasets: dict[str, AsrDataset] = {}
        self.train_sampler: DurationBatchSampler | None = None
        self._resume_state: dict[str, int] | None = None

    def dataset(self, split: str) -> AsrDataset:
        """The filtered dataset of ``split`` (train, val or test), built once."""
        if split not in self.datasets:
            path = getattr(self.cfg, f"{split}_manifest")
            if not path:
                raise DataError(f"data.{split}_manifest is not set")
            lo, hi = (self.cfg.min_duration, self.cfg.max_duration) if split == "train" else (0.0, math.inf)
            entries = select_utterances(read_manifest(path), self.tokenizer, self.output_frames, lo, hi, path)
            self.datasets[split] = AsrDataset(entries, int(self.cfg.audio_cache_gb * 2**30))
        return self.datasets[split]

    def _loader(self, split: str, sampler: DurationBatchSampler) -> DataLoader:
        return DataLoader(
            self.dataset(split),
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.cfg.num_workers,
            persistent_workers=self.cfg.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(self.seed),  # leaves the global RNG to the model
        )

    def _eval_loader(self, split: str) -> DataLoader:
        durations = self.dataset(split).durations
        sampler = DurationBatchSampler(
            durations, self.cfg.max_batch_seconds, shuffle=False, pad_to_replicas=False
        )
        return self._loader(split, sampler)

    def train_dataloader(self) -> DataLoader:
        self.train_sampler = DurationBatchSampler(
            self.dataset("train").durations,
            self.cfg.max_batch_seconds,
            seed=self.seed,
            sorted_first_epoch=self.cfg.sortagrad,
            speeds=self.cfg.speed_perturb,
        )
        if self._resume_state is not None:
            self.train_sampler.load_state_dict(self._resume_state)
            self._resume_state = None
        return self._loader("train", self.train_sampler)

    def state_dict(self) -> dict[str, int]:
        """The training sampler's epoch and position (batches this rank has trained on this epoch)."""
        if self.train_sampler is None or self.trainer is None:
            return {}
        position = self.trainer.fit_loop.epoch_loop.batch_progress.current.ready
        return self.train_sampler.state_dict(position)

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Called by Lightning on resume, before the training loader is built."""
        self._resume_state = dict(state) if state else None

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
