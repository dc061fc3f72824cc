"""Export a model to ONNX: the encoder, normalised log-mel features to CTC log-probabilities, in one graph.

The front end stays outside the graph: :class:`asr.onnx_model.OnnxRecognizer` computes the features in NumPy
(:mod:`asr.numpy_frontend`) with this model's own window and mel filterbank (those of its
:class:`asr.features.LogMel`), which the export writes into the file's metadata (``asr_frontend``) beside the
model spec (``asr_spec``), so the file alone is a model and runs without torch. The encoder is exported with
the TorchScript-based exporter (``dynamo=False``, opset 17): torch's dynamo exporter fixes an ``nn.LSTM``'s
time axis to the traced length, which then fails at any other length. Batch and time axes are dynamic.

Each RNN layer becomes one ONNX ``LSTM`` (``GRU``, ``RNN``) node running both directions, given each
sequence's length (``sequence_lens``), instead of the two one-way RNNs and the reversals within each length
that :class:`asr.model.RNNLayer` runs in torch, where oneDNN's padded kernels are the fast path.

``int8=True`` stores the weights of the LSTMs, the convolutions and the output layer as 8-bit integers with
activations quantised on the fly (onnxruntime's dynamic quantisation), a quarter of the size and faster on
the CPU, at a small cost in accuracy (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import copy
import io
import json
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

from asr.model import RNNLayer
from asr.numpy_frontend import frontend_constants
from asr.onnx_model import FEATURE_INPUTS, FRONTEND_KEY, SPEC_KEY
from asr.outputs import write_bytes_atomic
from asr.recognizer import Recognizer

OPSET = 17


def export_onnx(recognizer: Recognizer, dest: str | Path, int8: bool = False) -> Path:
    """Write ``recognizer``'s encoder as an ONNX model, with its spec and front end constants in the metadata
    (its weights in 8 bits with ``int8``); returns ``dest``."""
    import onnx

    recognizer = recognizer.cpu().float().eval()
    feats = torch.zeros(2, 98, recognizer.spec.features.n_mels)  # (B, T, n_mels)
    example = feats, torch.tensor([98, 73])
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        program = _export_bytes(_with_onnx_rnns(recognizer.encoder), example)
    model = onnx.load_model_from_string(program)
    mel = recognizer.frontend.logmel.mel
    metadata = {
        SPEC_KEY: json.dumps(recognizer.spec.to_dict()),
        FRONTEND_KEY: frontend_constants(mel.spectrogram.window.tolist(), mel.mel_scale.fb.tolist()),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    write_bytes_atomic(dest, _quantized(model) if int8 else model.SerializeToString())
    return Path(dest)


# ONNX's recurrent node for each torch RNN class, and its gates in torch's order (LSTM: i f g o -> i o f c;
# GRU: r z n -> z r h)
_ONNX_RNNS = {nn.LSTM: ("LSTM", (0, 3, 1, 2)), nn.GRU: ("GRU", (1, 0, 2)), nn.RNN: ("RNN", (0,))}


def _onnx_rnn_op(layer: RNNLayer, op: str) -> type[torch.autograd.Function]:
    """``layer`` as an autograd function that exports as one ONNX recurrent node over the padded batch:
    its ``forward`` runs the torch layer (the tracer needs its output), its ``symbolic`` is the export."""
    direction = "forward" if layer.backward_rnn is None else "bidirectional"
    attrs = {"hidden_size_i": layer.forward_rnn.hidden_size, "direction_s": direction}
    if op == "GRU":
        attrs["linear_before_reset_i"] = 1  # torch's GRU applies the reset gate after the matrix product

    class OnnxRNNOp(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lens, w, r, b):
            return layer(x, lens)

        @staticmethod
        def symbolic(g, x, lens, w, r, b):
            steps = g.op("Transpose", x, perm_i=[1, 0, 2])  # (T, B, D)
            seq_lens = g.op("Cast", lens, to_i=6)  # int32
            outputs = 3 if op == "LSTM" else 2
            y = g.op(op, steps, w, r, b, seq_lens, outputs=outputs, **attrs)[0]  # (T, directions, B, H)
            y = g.op("Transpose", y, perm_i=[2, 0, 1, 3])  # (B, T, directions, H)
            return g.op("Reshape", y, g.op("Constant", value_t=torch.tensor([0, 0, -1])))

    return OnnxRNNOp


class _OnnxRNNLayer(nn.Module):
    """An :class:`RNNLayer` with its weights in ONNX's layout (directions first, gates in ONNX's order), run
    in torch as it is and exported as one recurrent node."""

    def __init__(self, layer: RNNLayer) -> None:
        super().__init__()
        rnns = [rnn for rnn in (layer.forward_rnn, layer.backward_rnn) if rnn is not None]
        op, order = _ONNX_RNNS[type(layer.forward_rnn)]
        self.op = _onnx_rnn_op(layer, op)

        def gates(t: Tensor) -> Tensor:
            chunks = t.chunk(len(order))
            return torch.cat([chunks[i] for i in order])

        self.register_buffer("w", torch.stack([gates(rnn.weight_ih_l0) for rnn in rnns]))
        self.register_buffer("r", torch.stack([gates(rnn.weight_hh_l0) for rnn in rnns]))
        biases = [torch.cat([gates(rnn.bias_ih_l0), gates(rnn.bias_hh_l0)]) for rnn in rnns]
        self.register_buffer("b", torch.stack(biases))

    def forward(self, x: Tensor, lens: Tensor) -> Tensor:
        return self.op.apply(x, lens, self.w, self.r, self.b)


def _with_onnx_rnns(encoder: nn.Module) -> nn.Module:
    """A copy of ``encoder`` whose RNN layers export as one ONNX recurrent node each."""
    encoder = copy.deepcopy(encoder).requires_grad_(False)
    encoder.rnns = nn.ModuleList(_OnnxRNNLayer(layer) for layer in encoder.rnns)
    return encoder


def _quantized(model: object) -> bytes:
    """``model`` with int8 weights and dynamically quantised activations (metadata kept)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize_dynamic(model, out, weight_type=QuantType.QInt8)
        return out.read_bytes()


def _export_bytes(encoder: nn.Module, example: tuple[Tensor, Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(
        encoder,
        example,
        buffer,
        dynamo=False,
        opset_version=OPSET,
        input_names=FEATURE_INPUTS,
        output_names=["log_probs", "out_lens"],
        dynamic_axes={
            FEATURE_INPUTS[0]: {0: "batch", 1: "frames"},
            FEATURE_INPUTS[1]: {0: "batch"},
            "log_probs": {0: "batch", 1: "out_frames"},
            "out_lens": {0: "batch"},
        },
    )
    return buffer.getvalue()
