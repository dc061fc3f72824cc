"""Export a model to ONNX: the encoder, normalised log-mel features to CTC log-probabilities, in one graph.

The front end stays outside the graph: :class:`asr.onnx_model.OnnxRecognizer` computes the features in NumPy
(:mod:`asr.numpy_frontend`) with this model's own window and mel filterbank (those of its
:class:`asr.features.LogMel`), which the export writes into the file's metadata (``asr_frontend``) beside the
model spec (``asr_spec``), so the file alone is a model and runs without torch. The encoder is exported with
the TorchScript-based exporter (``dynamo=False``, opset 17): torch's dynamo exporter fixes an ``nn.LSTM``'s
time axis to the traced length, which then fails at any other length. Batch and time axes are dynamic.

``int8=True`` stores the weights of the LSTMs, the convolutions and the output layer as 8-bit integers with
activations quantised on the fly (onnxruntime's dynamic quantisation), a quarter of the size and faster on
the CPU, at a small cost in accuracy (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

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
        program = _export_bytes(recognizer.encoder, example)
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
