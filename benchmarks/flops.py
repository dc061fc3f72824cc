"""Floating-point operations of a model preset per second of audio, counted from its shapes.

Usage:
    python benchmarks/flops.py conf/small.yaml conf/large.yaml

Multiply-adds count as two operations. Counted: the subsampling convolutions and their output projection,
the RNN layers' input and recurrent matrix products (at half the rate above ``model.reduce_after``), the
optional projections and the output layer.
Not counted: features, element-wise gate arithmetic, the softmax and CTC (all small beside these). One
training step costs about three forward passes (forward, and backward for inputs and for weights).
"""

from __future__ import annotations

import argparse

from asr.config import Config, load_config
from asr.features import hop_samples
from asr.model import KERNEL, conv_output_length
from asr.spec import SUBSAMPLING_CONVS
from asr.text import CharTokenizer

GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def forward_flops_per_second(cfg: Config, vocab_size: int | None = None) -> dict[str, float]:
    """Forward FLOPs per audio-second of ``cfg``'s model, split into conv, rnn and output."""
    m = cfg.model
    vocab_size = vocab_size or CharTokenizer.english().vocab_size
    frames = 16000 / hop_samples(cfg.features)  # feature frames per second
    num_convs = SUBSAMPLING_CONVS[m.subsampling]
    conv, t, f, c_in = 0.0, frames, cfg.features.n_mels, 1
    for i in range(num_convs):
        t, f = t / 2, conv_output_length(f, 1)  # per-second rate halves; frequency shrinks exactly
        conv += 2 * KERNEL * KERNEL * c_in * m.conv_channels * t * f
        c_in = m.conv_channels
        if i == num_convs - 1:
            layer_out = m.projection or m.hidden_size * (2 if m.bidirectional else 1)
            conv += 2 * m.conv_channels * f * layer_out * t
    directions = 2 if m.bidirectional else 1
    rnn_out = m.hidden_size * directions
    layer_in = m.projection or rnn_out
    rnn = 0.0
    for i in range(m.num_layers):
        if i and i == m.reduce_after:  # pyramidal: pairs of frames from here on
            t, layer_in = t / 2, 2 * (m.projection or rnn_out)
        rnn += directions * 2 * GATES[m.rnn_type] * m.hidden_size * (layer_in + m.hidden_size) * t
        if m.projection:
            rnn += 2 * rnn_out * m.projection * t
        layer_in = m.projection or rnn_out
    return {"conv": conv, "rnn": rnn, "output": 2 * layer_in * vocab_size * t}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+")
    args = p.parse_args()
    print(f"{'config':<40}{'fwd GFLOP/s-audio':>18}{'rnn share':>11}{'train GFLOP/s-audio':>21}")
    for path in args.configs:
        parts = forward_flops_per_second(load_config(path))
        total = sum(parts.values())
        print(f"{path:<40}{total / 1e9:>18.2f}{parts['rnn'] / total:>11.0%}{3 * total / 1e9:>21.2f}")


if __name__ == "__main__":
    main()
