"""Self-contained checkpoints: atomic writes, safe loads, export for inference.

A checkpoint holds ``asr`` (the config and tokenizer as plain data) and ``state_dict`` (the recogniser's
weights and normalisation statistics). Lightning's training checkpoints carry the same two entries (the
weights under the ``recognizer.`` prefix) plus optimiser and loop state. Everything is loaded with
``weights_only=True``: a file that would need to run code to load is refused.
"""

from __future__ import annotations

import glob
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from asr.config import from_dict, to_dict
from asr.errors import first_line
from asr.recognizer import Recognizer
from asr.text import CharTokenizer

PREFIX = "recognizer."


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or a full disk leaves the previous file at ``path`` untouched; a write that fails raises
    ``OSError`` with a one-line message naming ``path``. Temporary files orphaned by a killed writer are
    removed (one process writes a given path at a time, as Lightning's rank 0 does).
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for orphan in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            orphan.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        raise OSError(
            e.errno, f"{path}: cannot save the checkpoint ({e.strerror or first_line(e)})"
        ) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _unpickler_detail(e: pickle.UnpicklingError) -> str:
    """torch's weights-only refusal is a paragraph; its one informative line names the offending object."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    detail = [line for line in lines if line.startswith(("Unsupported", "Trying to", "Can only"))]
    return (detail or lines or ["unpickling failed"])[0]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with one-line errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, not a weights-only checkpoint ({_unpickler_detail(e)}): "
            "the file is corrupt or holds objects that would run code when loaded"
        ) from None
    except Exception as e:  # torch.load on arbitrary bytes raises many types (struct.error, EOFError, ...)
        raise CheckpointError(f"{path}: not a readable checkpoint ({first_line(e)})") from None
    if not isinstance(ckpt, dict) or "asr" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(f"{path}: not an asr checkpoint (no 'asr' and 'state_dict' entries)")
    return ckpt


def recognizer_state(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The recogniser's weights from a training or an exported checkpoint."""
    state = ckpt["state_dict"]
    if any(k.startswith(PREFIX) for k in state):
        return {k[len(PREFIX) :]: v for k, v in state.items() if k.startswith(PREFIX)}
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Recognizer:
    """Load a checkpoint (training or exported) as a :class:`Recognizer` in eval mode on ``device``."""
    ckpt = load_checkpoint(path)
    try:
        cfg = from_dict(ckpt["asr"]["config"])
        model = Recognizer(cfg, CharTokenizer.from_dict(ckpt["asr"]["tokenizer"]))
        model.load_state_dict(recognizer_state(ckpt))
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: inconsistent checkpoint ({first_line(e)})") from None
    return model.to(device).eval()


def checkpoint_payload(model: Recognizer) -> dict[str, Any]:
    """The ``asr`` entry describing ``model``: config and tokenizer as plain data."""
    return {"config": to_dict(model.cfg), "tokenizer": model.tokenizer.to_dict()}


def export_model(src: str | Path, dest: str | Path) -> None:
    """Write an inference-only checkpoint (no optimiser or loop state) from a training checkpoint."""
    model = load_model(src)
    save_atomic({"asr": checkpoint_payload(model), "state_dict": model.state_dict()}, dest)
