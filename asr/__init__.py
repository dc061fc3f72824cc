"""A toolkit for CTC-trained bidirectional recurrent speech recognisers.

``asr.load_model(path, device)`` loads a model file as an :class:`asr.inference.Transcriber`, the one
inference API. Importing ``asr`` alone imports no torch, so the ``asr`` command's ``--help`` is quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asr.inference import Transcriber


def load_model(model: str | Path, device: str = "cpu") -> Transcriber:
    """Load a model file (exported, or a training checkpoint) as a :class:`~asr.inference.Transcriber`."""
    from asr.inference import Transcriber

    return Transcriber.load(model, device)


__all__ = ["load_model"]
