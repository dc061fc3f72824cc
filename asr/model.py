"""The acoustic model: convolutional subsampling, stacked (bi)directional RNN layers, linear output.

No Lightning here: ``Encoder.forward(feats, feat_lens) -> (log_probs, out_lens)`` is plain PyTorch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asr.spec import (
    KERNEL,
    RNN_TYPES,
    STRIDE,
    SUBSAMPLING_CONVS,
    ModelConfig,
    conv_output_length,
)

RNN_CLASSES = dict(zip(RNN_TYPES, (nn.LSTM, nn.GRU, nn.RNN)))


class Subsampling(nn.Module):
    """(B, T, F) -> (B, T', D) with stride-2 convolutions over time and frequency.

    The convolutions have no time padding, so an output frame depends only on its utterance's frames:
    padding a batch never changes the valid outputs.
    """

    def __init__(self, in_features: int, channels: int, out_features: int, factor: int) -> None:
        super().__init__()
        self.num_convs = SUBSAMPLING_CONVS[factor]
        layers, c_in = [], 1
        for _ in range(self.num_convs):
            layers += [nn.Conv2d(c_in, channels, KERNEL, STRIDE), nn.GELU()]
            c_in = channels
        self.convs = nn.Sequential(*layers)
        freq = conv_output_length(in_features, self.num_convs)
        self.out = nn.Linear(channels * freq, out_features)

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        x = self.convs(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.shape
        x = self.out(x.permute(0, 2, 1, 3).reshape(b, t, c * f))  # (B, T', C*F') -> (B, T', D)
        return x, conv_output_length(lens, self.num_convs)


def reverse_padded(x: Tensor, lens: Tensor) -> Tensor:
    """Reverse each sequence of (B, T, D) within its length; padding stays at the end.

    Whole frames are copied by their row in (B * T, D), one index per frame (an ONNX ``Gather``), not one
    per value (``GatherElements`` over an expanded index)."""
    b, t = x.shape[:2]
    steps = torch.arange(t, device=x.device)[None, :]  # (1, T)
    lens = lens.to(x.device)[:, None]  # (B, 1)
    index = torch.where(steps < lens, lens - 1 - steps, steps)  # (B, T)
    rows = index + t * torch.arange(b, device=x.device)[:, None]
    return x.flatten(0, 1).index_select(0, rows.flatten()).view_as(x)


def stack_pairs(x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T, D), lens (B,) -> (B, T // 2, 2 * D), lens // 2: each pair of frames concatenated into one.
    An odd last frame is dropped, so an output frame depends only on its utterance's frames."""
    b, t, d = x.shape
    half = t // 2
    return x[:, : 2 * half].reshape(b, half, 2 * d), lens // 2


def open_forget_gates(lstm: nn.LSTM) -> None:
    """Start every forget gate's bias at 1 (Jozefowicz et al. 2015): the cell keeps its state from the first
    step instead of halving it. On AN4 this shortened CTC's all-blank start (benchmarks/RESULTS.md)."""
    h = lstm.hidden_size
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            getattr(lstm, f"bias_ih_l{layer}")[h : 2 * h].fill_(1.0)  # gate order i, f, g, o
            getattr(lstm, f"bias_hh_l{layer}")[h : 2 * h].zero_()


class RNNLayer(nn.Module):
    """One (bi)directional RNN layer on a padded batch, exact for every sequence in it.

    Each direction runs the fused padded kernel (oneDNN, cuDNN) with the padding at the end of the
    sequence, which a forward recurrence never reads before the valid frames; the backward direction runs
    on each sequence reversed within its length. This gives the outputs of packed sequences at the speed of
    the padded kernels. Measured alternatives: on CPU, oneDNN's packed path is several times slower; on an
    H200, cuDNN's packed bidirectional call ran the RNN layers at 60 TFLOP/s against 105 for this, and
    overlapping the two directions on two CUDA streams gained nothing (benchmarks/RESULTS.md). The ONNX
    export writes the layer as one recurrent node over both directions instead (:mod:`asr.onnx_export`).
    """

    def __init__(self, rnn_type: str, input_size: int, hidden_size: int, bidirectional: bool) -> None:
        super().__init__()
        rnn_cls = RNN_CLASSES[rnn_type]
        self.forward_rnn = rnn_cls(input_size, hidden_size, batch_first=True)
        self.backward_rnn = rnn_cls(input_size, hidden_size, batch_first=True) if bidirectional else None
        for rnn in (self.forward_rnn, self.backward_rnn):
            if isinstance(rnn, nn.LSTM):
                open_forget_gates(rnn)

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        """(B, T, D), lens (B,) -> (B, T, H * directions)."""
        y, _ = self.forward_rnn(x)
        if self.backward_rnn is None:
            return y
        y_back, _ = self.backward_rnn(reverse_padded(x, lens))
        return torch.cat([y, reverse_padded(y_back, lens)], dim=-1)


class Encoder(nn.Module):
    """Log-mel frames -> CTC log-probabilities over the vocabulary."""

    def __init__(self, cfg: ModelConfig, n_mels: int, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        rnn_out = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        layer_out = cfg.projection or rnn_out
        self.subsampling = Subsampling(n_mels, cfg.conv_channels, layer_out, cfg.subsampling)
        # the layer above a pyramidal reduction reads pairs of frames
        inputs = [2 * layer_out if i and i == cfg.reduce_after else layer_out for i in range(cfg.num_layers)]
        self.rnns = nn.ModuleList(
            RNNLayer(cfg.rnn_type, n, cfg.hidden_size, cfg.bidirectional) for n in inputs
        )
        self.projections = nn.ModuleList(
            nn.Linear(rnn_out, cfg.projection) if cfg.projection else nn.Identity()
            for _ in range(cfg.num_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(n) if cfg.layer_norm else nn.Identity() for n in inputs)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Linear(layer_out, vocab_size)
        if cfg.condition_layer:  # self-conditioned CTC: the layer's own posteriors, mapped back to its width
            self.inter_output = nn.Linear(layer_out, vocab_size)
            self.condition = nn.Linear(vocab_size, layer_out)

    def output_length(self, feat_lens: Tensor | int) -> Tensor | int:
        lens = conv_output_length(feat_lens, self.subsampling.num_convs)
        return lens // 2 if self.cfg.reduce_after else lens

    def layer_outputs(
        self, feats: Tensor, feat_lens: Tensor
    ) -> tuple[list[Tensor], list[Tensor], Tensor | None]:
        """feats (B, T, F), feat_lens (B,) -> each RNN layer's output (B, T', D), after its projection, and
        its lengths (B,) (halved above ``model.reduce_after``); with ``model.condition_layer``, that layer's
        CTC log-probabilities (B, T', V) float32 (else None), whose posteriors its output carries upward."""
        x, lens = self.subsampling(feats, feat_lens)  # (B, T', D)
        outputs, out_lens, inter = [], [], None
        for i, (norm, rnn, proj) in enumerate(zip(self.norms, self.rnns, self.projections)):
            if i and i == self.cfg.reduce_after:
                x, lens = stack_pairs(x, lens)  # (B, T' / 2, 2D)
            x = proj(rnn(self.dropout(norm(x)), lens))  # (B, T', D)
            outputs.append(x)
            out_lens.append(lens)
            if i + 1 == self.cfg.condition_layer:
                inter = self.log_probs(x, self.inter_output)
                x = x + self.condition(inter.exp().to(x.dtype))
        return outputs, out_lens, inter

    def log_probs(self, x: Tensor, output: nn.Linear | None = None) -> Tensor:
        """A layer's output (B, T', D), the top one's by default -> CTC log-probabilities (B, T', V), float32,
        through ``output`` (the model's output layer by default)."""
        return F.log_softmax((output or self.output)(self.dropout(x)).float(), dim=-1)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """feats (B, T, F), feat_lens (B,) -> log_probs (B, T', V) float32, out_lens (B,)."""
        outputs, lens, _ = self.layer_outputs(feats, feat_lens)
        return self.log_probs(outputs[-1]), lens[-1]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def describe(module: nn.Module) -> str:
    """One line: parameter count in millions."""
    return f"{type(module).__name__}: {count_parameters(module) / 1e6:.2f} M parameters"
