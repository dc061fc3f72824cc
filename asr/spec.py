"""What a model is, apart from how it was trained: the feature and encoder settings a model file carries.

The versioned :class:`ModelSpec` built on these sections is the work of the model-spec change; today the
sections are shared by the training config (``asr.config.Config``) and the recogniser.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FeatureConfig:
    n_mels: int = 80
    win_ms: float = 25.0
    hop_ms: float = 10.0
    cmvn_max_utts: int = 2000  # utterances sampled from the training manifest for global mean/variance


@dataclass
class ModelConfig:
    rnn_type: str = "lstm"  # lstm | gru | rnn (plain tanh RNN, for comparison)
    subsampling: int = 4  # 4 (two stride-2 convs) or 8 (three)
    conv_channels: int = 32
    hidden_size: int = 256  # per direction
    num_layers: int = 3
    bidirectional: bool = True
    projection: int = 0  # >0: a linear projection to this size after each layer (LSTMP-style)
    dropout: float = 0.1  # between layers
