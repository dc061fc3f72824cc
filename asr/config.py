"""The one typed schema for every setting. YAML files in conf/ and ``key=value`` overrides only set values.

OmegaConf validates YAML and overrides against these dataclasses: an unknown key or a value of the wrong
type is an error that names the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from asr.errors import ConfigError, first_line
from asr.spec import FeatureConfig, ModelConfig

@dataclass
class SpecAugmentConfig:
    freq_masks: int = 2
    freq_width: int = 27  # widest frequency mask, in mel bins (LibriSpeech "LD" policy of Park et al. 2019)
    time_masks: int = 2
    time_width: float = 0.05  # widest time mask as a fraction of the utterance (adaptive masking)
    time_max_frames: int = 100  # and never wider than this
    # Masks apply from this optimiser step on. Clean features early let CTC leave its all-blank start sooner:
    # on AN4, 24% test WER after 3 minutes with masks from step 1000, 52% with them from the start.
    start_step: int = 0


@dataclass
class DataConfig:
    train_manifest: str = ""
    val_manifest: str = ""
    test_manifest: str = ""
    max_batch_seconds: float = 200.0  # padded audio seconds per batch (the bucketing sampler's budget)
    min_duration: float = 0.1
    max_duration: float = 20.0
    num_workers: int = 2
    vocabulary: str = "english"  # english (a-z, apostrophe, space) or "from_data" (characters of train text)
    # Speed perturbation of training audio, e.g. [0.9, 1.0, 1.1] (Ko et al. 2015); empty for none. Each batch
    # gets one factor drawn from (seed, epoch, batch), so a resumed run sees the same audio. Batches are
    # packed as if slowed by the smallest factor, so max_batch_seconds holds for every factor.
    speed_perturb: list[float] = field(default_factory=list)
    sortagrad: bool = False  # first epoch shortest batches first (Amodei et al. 2016), then shuffled
    # Global mean/std file (JSON): loaded when it exists, else computed from the training data and written
    # there, so runs on the same data compute it once. Empty: computed per run, kept only in the checkpoint.
    cmvn_stats: str = ""


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 300
    final_lr_ratio: float = 0.02  # cosine decay from lr to lr * final_lr_ratio at the last step
    grad_clip: float = 5.0


@dataclass
class TrainerConfig:
    max_epochs: int = 30
    max_steps: int = -1
    max_time: str = ""  # DD:HH:MM:SS wall-clock cap, empty for none
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    accelerator: str = "auto"
    devices: str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"  # Lightning strategy: auto, ddp, ddp_spawn, ...
    accumulate_grad_batches: int = 1
    checkpoint_every_n_steps: int = 0  # >0: also write last.ckpt every this many optimiser steps
    keep_last: int = 0  # with checkpoint_every_n_steps: keep this many step-*.ckpt (to average the last K)
    keep_best: int = 1  # best-*.ckpt kept by validation WER (to average the best K)
    val_every_n_epochs: int = 1
    log_every_n_steps: int = 20
    progress_bar: bool = True  # with the training loss in it, which costs a host-GPU sync every step
    threads: int = 0  # torch intra-op threads on CPU; 0 keeps torch's default


@dataclass
class Config:
    exp_dir: str = "exp/run"  # checkpoints, logs and the resolved config are written here
    seed: int = 1234
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Build a :class:`Config` from defaults, an optional YAML file and ``a.b=value`` overrides."""
    try:
        merged = OmegaConf.structured(Config)
        if path is not None:
            if not Path(path).is_file():
                raise ConfigError(f"{path}: config file not found")
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        if overrides:
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(overrides))
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{path or 'config'}: {_describe(e)}") from None
    validate(cfg)
    return cfg


def _describe(e: OmegaConfBaseException) -> str:
    message = first_line(e)
    key = getattr(e, "full_key", None)
    return f"{key}: {message}" if key and key not in message else message


def validate(cfg: Config) -> None:
    """Check values that types alone cannot."""
    if cfg.model.rnn_type not in ("lstm", "gru", "rnn"):
        raise ConfigError(f"model.rnn_type must be lstm, gru or rnn, got {cfg.model.rnn_type!r}")
    if cfg.model.subsampling not in (4, 8):
        raise ConfigError(f"model.subsampling must be 4 or 8, got {cfg.model.subsampling}")
    if cfg.data.vocabulary not in ("english", "from_data"):
        raise ConfigError(f"data.vocabulary must be english or from_data, got {cfg.data.vocabulary!r}")
    if cfg.data.min_duration >= cfg.data.max_duration:
        raise ConfigError("data.min_duration must be below data.max_duration")
    if any(not 0.5 <= f <= 2.0 for f in cfg.data.speed_perturb):
        raise ConfigError(f"data.speed_perturb factors must lie in [0.5, 2], got {cfg.data.speed_perturb}")
    if cfg.trainer.checkpoint_every_n_steps < 0 or cfg.trainer.keep_last < 0 or cfg.trainer.keep_best < 1:
        raise ConfigError("need trainer.checkpoint_every_n_steps >= 0, keep_last >= 0 and keep_best >= 1")


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
    """Write the resolved config as YAML."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
