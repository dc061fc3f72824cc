"""What a model is, apart from how it was trained: the versioned :class:`ModelSpec` a model file carries.

A spec holds the sample rate, the feature and encoder settings, the tokenizer (with its kind) and the global
normalisation statistics: everything :class:`asr.recognizer.Recognizer` is built from, nothing of training.
The training config (``asr.config.Config``) embeds the feature and model sections and checks them with the
functions here; a model file stores it beside the spec for provenance only.

Also here: the sample and frame arithmetic those settings imply (window and hop in samples, feature frames,
the frames left after the convolutional subsampling and the pyramidal reduction), shared by the checks, both
front ends and the encoder.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from asr.audio import SAMPLE_RATE
from asr.errors import ConfigError

FORMAT_VERSION = 1  # the model file format this code writes; it reads this and the unversioned one before it
RNN_TYPES = ("lstm", "gru", "rnn")
SUBSAMPLING_CONVS = {2: 1, 4: 2, 8: 3}  # subsampling factor -> stride-2 convolutions
KERNEL = 3  # the subsampling convolutions' kernel and stride, over time and frequency
STRIDE = 2
LOG_FLOOR = 1e-6  # added to the mel power before its log, by both front ends (torch and NumPy)


@dataclass
class FeatureConfig:
    n_mels: int = 80
    win_ms: float = 25.0
    hop_ms: float = 10.0


@dataclass
class ModelConfig:
    rnn_type: str = "lstm"  # lstm | gru | rnn (plain tanh RNN, for comparison)
    subsampling: int = 4  # 2 (one stride-2 conv), 4 (two) or 8 (three)
    conv_channels: int = 32
    hidden_size: int = 256  # per direction
    num_layers: int = 3
    bidirectional: bool = True
    projection: int = 0  # >0: a linear projection to this size after each layer (LSTMP-style)
    dropout: float = 0.1  # between layers
    # A LayerNorm on each RNN layer's input (the subsampling's output, then each layer's)
    layer_norm: bool = False
    # Pyramidal: after this many RNN layers (0: never), pairs of frames are concatenated, so the layers above
    # run at half the frame rate (Listen, Attend and Spell's pyramidal BiLSTM)
    reduce_after: int = 0
    # Self-conditioned CTC (Nozaki and Komatsu 2021): after this RNN layer (0: never), the layer's own CTC
    # posteriors over the model's units, through a linear map, are added to its output before the next layer
    # reads it. Training's intermediate CTC loss (aux_ctc.layer, the same layer) is taken on those posteriors.
    condition_layer: int = 0

    # absent from older model files: the default
    LATER: ClassVar[frozenset[str]] = frozenset({"layer_norm", "reduce_after", "condition_layer"})

    @property
    def frame_factor(self) -> int:
        """Feature frames per output frame: the subsampling, times 2 with the pyramidal reduction."""
        return self.subsampling * (2 if self.reduce_after else 1)

    @property
    def min_frames(self) -> int:
        """The fewest feature frames that yield one output frame (two after the convolutions when reduced)."""
        return min_conv_input(SUBSAMPLING_CONVS[self.subsampling], 2 if self.reduce_after else 1)


def window_samples(cfg: FeatureConfig) -> int:
    return round(SAMPLE_RATE * cfg.win_ms / 1000)


def hop_samples(cfg: FeatureConfig) -> int:
    return round(SAMPLE_RATE * cfg.hop_ms / 1000)


def num_frames(num_samples: Any, cfg: FeatureConfig) -> Any:
    """Frames of a non-centred STFT over ``num_samples`` (an int, or an integer NumPy array or torch tensor):
    0 for a clip shorter than one window."""
    frames = (num_samples - window_samples(cfg)) // hop_samples(cfg) + 1
    return max(frames, 0) if isinstance(frames, int) else frames.clip(min=0)


def conv_output_length(lens: Any, num_convs: int) -> Any:
    """Frames (an int or an integer tensor) after ``num_convs`` unpadded stride-2, kernel-3 convolutions (0
    when too short)."""
    for _ in range(num_convs):
        lens = (lens - KERNEL) // STRIDE + 1
        lens = max(lens, 0) if isinstance(lens, int) else lens.clamp_min(0)
    return lens


def min_conv_input(num_convs: int, outputs: int = 1) -> int:
    """The fewest frames that ``num_convs`` subsampling convolutions turn into ``outputs`` frames."""
    frames = outputs
    for _ in range(num_convs):
        frames = (frames - 1) * STRIDE + KERNEL
    return frames


def min_samples(frames: int, cfg: FeatureConfig) -> int:
    """The fewest samples that make ``frames`` feature frames (``frames`` >= 1)."""
    return window_samples(cfg) + (frames - 1) * hop_samples(cfg)


def _positive(value: object, name: str, kind: type = int) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or (kind is int and not isinstance(value, int)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(
            f"{name} must be a positive {'integer' if kind is int else 'number'}, got {value!r}"
        )


def check_features(cfg: FeatureConfig, section: str = "features") -> None:
    """:class:`ConfigError` naming the setting unless the feature settings describe usable frames."""
    _positive(cfg.n_mels, f"{section}.n_mels")
    _positive(cfg.win_ms, f"{section}.win_ms", float)
    _positive(cfg.hop_ms, f"{section}.hop_ms", float)
    hop, win = hop_samples(cfg), window_samples(cfg)
    if hop < 1:
        raise ConfigError(f"{section}.hop_ms={cfg.hop_ms} is less than one sample at {SAMPLE_RATE} Hz")
    if win < hop:
        raise ConfigError(f"{section}.win_ms={cfg.win_ms} must be at least {section}.hop_ms={cfg.hop_ms}")
    if win > SAMPLE_RATE:
        raise ConfigError(f"{section}.win_ms={cfg.win_ms} is longer than one second")


def check_model(cfg: ModelConfig, n_mels: int, section: str = "model") -> None:
    """:class:`ConfigError` naming the setting unless the encoder can be built for ``n_mels`` bins."""
    if cfg.rnn_type not in RNN_TYPES:
        raise ConfigError(f"{section}.rnn_type must be {', '.join(RNN_TYPES)}, got {cfg.rnn_type!r}")
    if cfg.subsampling not in SUBSAMPLING_CONVS or isinstance(cfg.subsampling, bool):
        raise ConfigError(f"{section}.subsampling must be 2, 4 or 8, got {cfg.subsampling!r}")
    for name in ("conv_channels", "hidden_size", "num_layers"):
        _positive(getattr(cfg, name), f"{section}.{name}")
    if not isinstance(cfg.projection, int) or isinstance(cfg.projection, bool) or cfg.projection < 0:
        raise ConfigError(
            f"{section}.projection must be 0 (none) or a positive integer, got {cfg.projection!r}"
        )
    for name in ("reduce_after", "condition_layer"):
        layer = getattr(cfg, name)
        if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < cfg.num_layers:
            raise ConfigError(
                f"{section}.{name} must be 0 (never) or a layer below the top one of "
                f"{section}.num_layers={cfg.num_layers}, got {layer!r}"
            )
    for name in ("bidirectional", "layer_norm"):
        if not isinstance(getattr(cfg, name), bool):
            raise ConfigError(f"{section}.{name} must be true or false, got {getattr(cfg, name)!r}")
    dropout = cfg.dropout
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(f"{section}.dropout must lie in [0, 1), got {dropout!r}")
    fewest = min_conv_input(SUBSAMPLING_CONVS[cfg.subsampling])  # over frequency: one bin's worth
    if n_mels < fewest:
        raise ConfigError(
            f"{section}.subsampling={cfg.subsampling} needs at least {fewest} mel bins, got {n_mels}"
        )


def _section(cls: type, d: object, name: str) -> Any:
    """A spec section from plain data: every field present, of its type, and nothing else."""
    if not isinstance(d, dict):
        raise ConfigError(f"spec {name}: expected a mapping, got {type(d).__name__}")
    known = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(d) - set(known))
    missing = [k for k in known if k not in d and k not in getattr(cls, "LATER", ())]
    if unknown or missing:
        problem = (
            f"unknown key(s) {', '.join(map(str, unknown))}" if unknown else f"missing {', '.join(missing)}"
        )
        raise ConfigError(f"spec {name}: {problem}")
    for key, value in d.items():  # every key is known; a LATER one may be absent
        kind = known[key]  # annotations are strings (postponed evaluation)
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
        }[kind]
        if not ok:
            raise ConfigError(f"spec {name}.{key}: expected {kind}, got {value!r}")
    return cls(**{k: float(v) if known[k] == "float" else v for k, v in d.items()})


@dataclass(frozen=True)
class ModelSpec:
    """What a model file carries besides the weights, and what a :class:`~asr.recognizer.Recognizer` is built
    from. ``tokenizer`` is the tokenizer's plain data (``asr.text.tokenizer_from_dict``); ``cmvn`` the
    global mean and standard deviation per mel bin (None: not computed yet, identity normalisation)."""

    features: FeatureConfig
    model: ModelConfig
    tokenizer: dict[str, Any]
    cmvn: dict[str, list[float]] | None = None
    sample_rate: int = SAMPLE_RATE
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        """Check every section: :class:`ConfigError` naming the setting."""
        if self.version != FORMAT_VERSION:
            raise ConfigError(f"spec version {self.version!r}: this asr reads version {FORMAT_VERSION}")
        if self.sample_rate != SAMPLE_RATE:
            raise ConfigError(f"spec sample_rate {self.sample_rate!r}: this asr runs at {SAMPLE_RATE} Hz")
        check_features(self.features)
        check_model(self.model, self.features.n_mels)
        if not isinstance(self.tokenizer, dict) or not isinstance(self.tokenizer.get("kind"), str):
            raise ConfigError("spec tokenizer: expected a mapping with a 'kind'")
        if self.cmvn is not None:
            self._check_cmvn()

    def _check_cmvn(self) -> None:
        cmvn, n = self.cmvn, self.features.n_mels
        if not isinstance(cmvn, dict) or set(cmvn) != {"mean", "std"}:
            raise ConfigError("spec cmvn: expected a mapping of 'mean' and 'std'")
        for key in ("mean", "std"):
            values = cmvn[key]
            if not isinstance(values, list) or len(values) != n:
                raise ConfigError(f"spec cmvn.{key}: expected {n} values (features.n_mels)")
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ConfigError(f"spec cmvn.{key}: values must be finite numbers")
        if min(cmvn["std"]) <= 0:
            raise ConfigError("spec cmvn.std: values must be positive")

    @property
    def min_samples(self) -> int:
        """The shortest input that yields one output frame."""
        return min_samples(self.model.min_frames, self.features)

    @property
    def frame_seconds(self) -> float:
        """One output frame's duration: the feature hop, in whole samples, times the frames per output."""
        return hop_samples(self.features) * self.model.frame_factor / SAMPLE_RATE

    def to_dict(self) -> dict[str, Any]:
        """Plain data (safe in a ``weights_only`` checkpoint). A model setting added later (``LATER``) is
        written only when it differs from its default, so a model that does not use it stays readable by
        releases from before it."""
        unused = {k for k in ModelConfig.LATER if getattr(self.model, k) == getattr(ModelConfig, k)}
        return {
            "version": self.version,
            "sample_rate": self.sample_rate,
            "features": asdict(self.features),
            "model": {k: v for k, v in asdict(self.model).items() if k not in unused},
            "tokenizer": self.tokenizer,
            "cmvn": self.cmvn,
        }

    @classmethod
    def from_dict(cls, d: object) -> ModelSpec:
        """Inverse of :meth:`to_dict`; :class:`ConfigError` for anything missing, unknown or out of range."""
        if not isinstance(d, dict):
            raise ConfigError(f"spec: expected a mapping, got {type(d).__name__}")
        unknown = sorted(
            map(str, set(d) - {"version", "sample_rate", "features", "model", "tokenizer", "cmvn"})
        )
        if unknown:
            raise ConfigError(f"spec: unknown key(s) {', '.join(unknown)}")
        missing = [k for k in ("version", "features", "model", "tokenizer") if k not in d]
        if missing:
            raise ConfigError(f"spec: missing {', '.join(missing)}")
        return cls(
            _section(FeatureConfig, d["features"], "features"),
            _section(ModelConfig, d["model"], "model"),
            d["tokenizer"],
            d.get("cmvn"),
            d.get("sample_rate", SAMPLE_RATE),
            d["version"],
        )
