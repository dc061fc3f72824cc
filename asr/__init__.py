"""A toolkit for CTC-trained bidirectional recurrent speech recognisers."""

from asr.checkpoint import load_model

__all__ = ["load_model"]
