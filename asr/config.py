"""The one typed schema for every setting. YAML files in conf/ and ``key=value`` overrides only set values.

OmegaConf validates YAML and overrides against these dataclasses: an unknown key or a value of the wrong
type is an error that names the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asr.batching import MAX_BATCH_SECONDS
from asr.errors import ConfigError, first_line
from asr.outputs import write_text_atomic
from asr.spec import FeatureConfig, ModelConfig, check_features, check_model
from asr.text import PIECE_TYPES


@dataclass
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 27  # widest frequency mask, in mel bins (LibriSpeech "LD" policy of Park et al. 2019)
    time_masks: int = 2
    time_width: float = 0.05  # widest time mask as a fraction of the utterance (adaptive masking)
    time_max_frames: int = 100  # and never wider than this
    # Vocal tract length perturbation: each utterance's spectrum warped by a factor drawn uniformly from
    # [1 - vtlp, 1 + vtlp] (Jaitly and Hinton 2013 drew from [0.9, 1.1]); 0: off.
    vtlp: float = 0.0
    # Masks apply from this optimiser step on. Clean features early let CTC leave its all-blank start sooner
    # (measured on AN4: benchmarks/RESULTS.md, "Time to accuracy").
    start_step: int = 0


@dataclass
class DataConfig:
    train_manifest: str = ""
    val_manifest: str = ""
    test_manifest: str = ""
    max_batch_seconds: float = MAX_BATCH_SECONDS  # padded audio seconds per batch (the sampler's budget)
    min_duration: float = 0.1
    max_duration: float = 20.0
    num_workers: int = 2
    # Decoded audio kept in memory, up to this many GB per loader process (each worker keeps its own copy;
    # 1 GB holds about 4.6 h of 16 kHz audio), so later epochs skip reading and decoding the files. 0: off.
    audio_cache_gb: float = 0.0
    tokenizer: str = "char"  # char | sentencepiece (subword pieces learnt from the training transcripts)
    vocabulary: str = "english"  # char: english (a-z, apostrophe, space) or "from_data" (train text's)
    pieces: int = 256  # sentencepiece: the vocabulary size (<unk> included, the CTC blank not)
    piece_type: str = "unigram"  # sentencepiece: unigram | bpe
    # Speed perturbation of training audio, e.g. [0.9, 1.0, 1.1] (Ko et al. 2015); empty for none. Each batch
    # gets one factor drawn from (seed, epoch, batch), so a resumed run sees the same audio. Batches are
    # packed as if slowed by the smallest factor, so max_batch_seconds holds for every factor.
    speed_perturb: list[float] = field(default_factory=list)
    sortagrad: bool = False  # first epoch shortest batches first (Amodei et al. 2016), then shuffled
    # Global mean/std file (JSON): loaded when it exists, else computed from the training data and written
    # there, so runs on the same data compute it once. Empty: computed per run, kept only in the checkpoint.
    cmvn_stats: str = ""
    cmvn_max_utts: int = 2000  # training utterances sampled to compute the global mean/variance


@dataclass
class AuxCTCConfig:
    """A character CTC loss on a lower layer's output beside the main loss: hierarchical CTC (Sanabria and
    Metze 2018) under a piece model, intermediate CTC (Lee and Watanabe 2021) under a character one. For
    training only: its output layer is not part of the model file, but for self-conditioned CTC
    (``model.condition_layer``), whose posteriors at that layer the model itself uses."""

    layer: int = 0  # the RNN layer (1 to model.num_layers - 1) whose output it reads; 0: off
    weight: float = 0.3  # the training loss is (1 - weight) * main CTC + weight * this one


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 300
    final_lr_ratio: float = 0.02  # cosine decay from lr to lr * final_lr_ratio at the last step
    hold_fraction: float = 0.0  # share of the steps after warm-up held at the peak before the decay starts
    grad_clip: float = 5.0
    # Weight noise (Graves et al. 2013): Gaussian noise of this std added to the RNN layers' weight matrices
    # for each training batch, the gradient taken at the noisy weights and the step applied to the clean
    # ones; 0: off. From weight_noise_start (an optimiser step), once the model has left CTC's blank start.
    weight_noise: float = 0.0
    weight_noise_start: int = 0
    # Confidence penalty (Pereyra et al. 2017): the loss minus this weight times the mean entropy, in nats, of
    # the top CTC's output distributions over the batch's unpadded frames; it discourages over-confident
    # frames. 0: off.
    confidence_penalty: float = 0.0


@dataclass
class TrainerConfig:
    max_epochs: int = 30
    max_steps: int = -1
    max_time: str = ""  # DD:HH:MM:SS wall-clock cap, empty for none
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed | auto (asr.train.resolve_precision)
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # Lightning strategy: auto, ddp, ddp_spawn, ...
    accumulate_grad_batches: int = 1
    checkpoint_every_n_steps: int = 0  # >0: also write last.ckpt every this many optimiser steps
    keep_last: int = 0  # with checkpoint_every_n_steps: keep this many step-*.ckpt (to average the last K)
    # The dev metric that picks the best checkpoints: cer (default), wer or loss. Not wer by default: early
    # in training WER can exceed 100% (insertions of word fragments) while a near-blank model scores 100%,
    # so best-by-WER keeps the blank model; a blank model's CER is 100% too, and any model that has learnt
    # some spelling beats it.
    select_by: str = "cer"
    keep_best: int = 1  # best-*.ckpt kept by the select_by metric (to average the best K)
    # K > 0: the run's model is the mean of its weights at the end of its last K epochs (epoch-*.ckpt, weights
    # only), not the best checkpoint by select_by. A small dev set picks by its noise: on AN4 (51 dev files)
    # the epoch with the lowest dev CER gave 8.07% test WER on average over 6 runs, the last one 6.49%.
    average_last: int = 0
    val_every_n_epochs: int = 1
    log_every_n_steps: int = 20
    progress_bar: bool = True  # with the training loss in it, which costs a host-GPU sync every step
    # torch intra-op threads on CPU; 0: one per core idle when training starts, chosen again every few seconds
    # from the cores other processes leave free (asr.threads). A busy core in the pool stalls every step:
    # beside one busy process, 2 threads trained at 0.04 of the idle rate, 1 at 0.65
    # (benchmarks/train_contention.py). Set it for bit-exact reruns on a machine whose load changes.
    threads: int = 0


@dataclass
class Config:
    exp_dir: str = "exp/run"  # checkpoints, logs and the resolved config are written here
    seed: int = 1234
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    aux_ctc: AuxCTCConfig = field(default_factory=AuxCTCConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build a :class:`Config` from defaults, an optional YAML file and ``a.b=value`` overrides.

    Any problem (a missing or unreadable file, YAML syntax, an unknown key, a wrong type, an invalid value)
    is a one-line :class:`ConfigError` naming the file or override and the key.
    """
    merged = OmegaConf.structured(Config)
    if path is not None:
        merged = _merge(merged, _read_yaml(Path(path)), str(path))
    for override in overrides or []:
        if "=" not in override:
            raise ConfigError(f"override {override!r} is not of the form key=value")
        try:
            parsed = OmegaConf.from_dotlist([override])
        except yaml.YAMLError as e:
            raise ConfigError(f"override {override!r}: invalid YAML value ({_yaml_problem(e)})") from None
        except OmegaConfBaseException as e:
            raise ConfigError(f"override {override!r}: {_describe(e)}") from None
        merged = _merge(merged, parsed, f"override {override!r}")
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{path or 'config'}: {_describe(e)}") from None
    validate(cfg)
    return cfg


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        return OmegaConf.load(path)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML ({_yaml_problem(e)})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror or first_line(e)})") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{path}: {_describe(e)}") from None


def _yaml_problem(e: yaml.YAMLError) -> str:
    return getattr(e, "problem", None) or first_line(e)


def _merge(base: DictConfig, update: Any, source: str) -> DictConfig:
    """``update`` merged over ``base`` one top-level section at a time, so that an error names its section."""
    if not isinstance(update, DictConfig):
        raise ConfigError(f"{source}: not a mapping of settings (a YAML {type(update).__name__})")
    for key in update:
        try:
            base = OmegaConf.merge(base, OmegaConf.masked_copy(update, [key]))
        except OmegaConfBaseException as e:
            problem = _describe(e)
            raise ConfigError(
                f"{source}: {problem if str(key) in problem else f'{key}: {problem}'}"
            ) from None
    return base


def _describe(e: OmegaConfBaseException) -> str:
    message = first_line(e)
    key = getattr(e, "full_key", None)
    return f"{key}: {message}" if key and key not in message else message


PRECISIONS = (
    "auto",  # bf16-mixed where the hardware runs it fast (a GPU with bf16, a CPU with AMX), else 32-true
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    "32",
    "16",
    "bf16",
    "64",
)
SELECT_BY = ("cer", "wer", "loss")  # the validation metrics a best checkpoint can be chosen by
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps", "tpu")
_MAX_TIME = re.compile(r"^\d+:\d{1,2}:\d{1,2}:\d{1,2}$")


def _finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _devices_ok(value: str) -> bool:
    """Lightning's ``devices``: auto, a count (-1 for all) or a list of device indices."""
    text = value.strip()
    if text == "auto":
        return True
    items = [p.strip() for p in text.strip("[]").split(",") if p.strip()]
    if not items or not all(re.fullmatch(r"-?\d+", p) for p in items):
        return False
    numbers = [int(p) for p in items]
    if "," not in text and not text.startswith("["):
        return numbers[0] == -1 or numbers[0] >= 1
    return all(n >= 0 for n in numbers) and len(set(numbers)) == len(numbers)


# (key, test of its value, what the value must be): every setting whose type alone does not make it valid
_RULES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("exp_dir", lambda v: bool(v.strip()), "a folder path"),
    ("seed", lambda v: 0 <= v < 2**32, "in [0, 2^32)"),
    ("specaug.freq_masks", lambda v: v >= 0, ">= 0"),
    ("specaug.freq_width", lambda v: v >= 0, ">= 0"),
    ("specaug.time_masks", lambda v: v >= 0, ">= 0"),
    ("specaug.time_width", lambda v: _finite(v) and 0 <= v <= 1, "a fraction in [0, 1]"),
    ("specaug.time_max_frames", lambda v: v >= 0, ">= 0"),
    ("specaug.start_step", lambda v: v >= 0, ">= 0"),
    ("specaug.vtlp", lambda v: _finite(v) and 0 <= v <= 0.5, "in [0, 0.5]"),
    ("data.max_batch_seconds", lambda v: _finite(v) and v > 0, "a number of seconds > 0"),
    ("data.min_duration", lambda v: _finite(v) and v >= 0, "a number of seconds >= 0"),
    ("data.max_duration", lambda v: v > 0, "a number of seconds > 0"),
    ("data.num_workers", lambda v: v >= 0, ">= 0"),
    ("data.audio_cache_gb", lambda v: _finite(v) and v >= 0, "a number of GB >= 0 (0: off)"),
    ("data.cmvn_max_utts", lambda v: v >= 1, ">= 1"),
    ("data.tokenizer", lambda v: v in ("char", "sentencepiece"), "char or sentencepiece"),
    ("data.vocabulary", lambda v: v in ("english", "from_data"), "english or from_data"),
    ("data.pieces", lambda v: 2 <= v <= 65536, "a vocabulary size in [2, 65536]"),
    ("data.piece_type", lambda v: v in PIECE_TYPES, " or ".join(PIECE_TYPES)),
    ("data.speed_perturb", lambda v: all(_finite(f) and 0.5 <= f <= 2.0 for f in v), "factors in [0.5, 2]"),
    ("aux_ctc.layer", lambda v: v >= 0, ">= 0 (0: off)"),
    ("aux_ctc.weight", lambda v: _finite(v) and 0 < v < 1, "a weight in (0, 1)"),
    ("optim.lr", lambda v: _finite(v) and v > 0, "a learning rate > 0"),
    ("optim.weight_decay", lambda v: _finite(v) and v >= 0, ">= 0"),
    ("optim.betas", lambda v: all(_finite(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    ("optim.warmup_steps", lambda v: v >= 0, ">= 0"),
    ("optim.final_lr_ratio", lambda v: _finite(v) and 0 <= v <= 1, "a ratio in [0, 1]"),
    ("optim.hold_fraction", lambda v: _finite(v) and 0 <= v < 1, "a share in [0, 1)"),
    ("optim.grad_clip", lambda v: _finite(v) and v > 0, "a gradient norm > 0"),
    ("optim.weight_noise", lambda v: _finite(v) and v >= 0, "a standard deviation >= 0"),
    ("optim.weight_noise_start", lambda v: v >= 0, ">= 0"),
    ("optim.confidence_penalty", lambda v: _finite(v) and v >= 0, "a weight >= 0"),
    ("trainer.max_epochs", lambda v: v == -1 or v >= 1, ">= 1 (or -1: no limit, with trainer.max_steps)"),
    ("trainer.max_steps", lambda v: v == -1 or v >= 1, ">= 1 (or -1: no limit)"),
    ("trainer.max_time", lambda v: not v or bool(_MAX_TIME.match(v)), "empty or DD:HH:MM:SS"),
    ("trainer.precision", lambda v: v in PRECISIONS, "one of " + ", ".join(PRECISIONS)),
    ("trainer.accelerator", lambda v: v in ACCELERATORS, "one of " + ", ".join(ACCELERATORS)),
    ("trainer.devices", _devices_ok, "auto, a count >= 1 (-1: all) or a list of device indices like 0,1"),
    ("trainer.num_nodes", lambda v: v >= 1, ">= 1"),
    ("trainer.accumulate_grad_batches", lambda v: v >= 1, ">= 1"),
    ("trainer.checkpoint_every_n_steps", lambda v: v >= 0, ">= 0 (0: off)"),
    ("trainer.keep_last", lambda v: v >= 0, ">= 0"),
    ("trainer.select_by", lambda v: v in SELECT_BY, " or ".join(SELECT_BY)),
    ("trainer.keep_best", lambda v: v >= 1, ">= 1"),
    ("trainer.average_last", lambda v: v >= 0, ">= 0 (0: the best checkpoint by select_by)"),
    ("trainer.val_every_n_epochs", lambda v: v >= 1, ">= 1"),
    ("trainer.log_every_n_steps", lambda v: v >= 1, ">= 1"),
    ("trainer.threads", lambda v: v >= 0, ">= 0 (0: one per idle core, followed while training)"),
]


def _value(cfg: Config, key: str) -> Any:
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def validate(cfg: Config) -> None:
    """Check every value that its type alone does not make valid; :class:`ConfigError` names the key."""
    for key, ok, must in _RULES:
        value = _value(cfg, key)
        if not ok(value):
            shown = list(value) if isinstance(value, (list, tuple)) else value
            raise ConfigError(f"{key}={shown!r} is invalid: must be {must}")
    check_features(cfg.features)
    check_model(cfg.model, cfg.features.n_mels)
    if cfg.data.min_duration >= cfg.data.max_duration:
        d = cfg.data
        raise ConfigError(
            f"data.min_duration={d.min_duration!r} must be below data.max_duration={d.max_duration!r}"
        )
    if cfg.aux_ctc.layer >= cfg.model.num_layers:
        raise ConfigError(
            f"aux_ctc.layer={cfg.aux_ctc.layer} must be below model.num_layers={cfg.model.num_layers} "
            "(the top layer has the main loss)"
        )
    condition = cfg.model.condition_layer
    if condition and (cfg.aux_ctc.layer != condition or cfg.data.tokenizer != "char"):
        raise ConfigError(
            f"model.condition_layer={condition} needs aux_ctc.layer={condition} (got {cfg.aux_ctc.layer}) "
            f"and data.tokenizer=char (got {cfg.data.tokenizer}): the intermediate loss is taken on that "
            "layer's posteriors over the model's own units"
        )
    reduce = cfg.model.reduce_after
    if reduce and cfg.aux_ctc.layer > reduce and cfg.data.tokenizer != "char":
        raise ConfigError(
            f"aux_ctc.layer={cfg.aux_ctc.layer} is above model.reduce_after={reduce}: its characters would "
            f"have half the frames; put it at or below layer {reduce}"
        )
    if cfg.trainer.max_epochs == -1 and cfg.trainer.max_steps == -1:
        raise ConfigError("trainer.max_epochs=-1 and trainer.max_steps=-1: training would never end; set one")


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of primitives (safe to store in a ``weights_only`` checkpoint)."""
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def from_dict(d: dict[str, Any]) -> Config:
    """Inverse of :func:`to_dict`; keys unknown to this version are an error."""
    try:
        cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), d))
    except OmegaConfBaseException as e:
        raise ConfigError(f"stored config: {_describe(e)}") from None
    validate(cfg)
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically: :class:`~asr.errors.OutputError` naming the file)."""
    write_text_atomic(path, OmegaConf.to_yaml(OmegaConf.structured(cfg)))
