"""CTC decoding, without torch: greedy search, and beam search with a lexicon, a word LM and hotwords.

- :mod:`asr.decoding.config`: :class:`DecoderConfig` (what is asked for), :class:`Hypothesis`, ``Emission``;
- :mod:`asr.decoding.greedy`: best-path decoding (the only one), batched, on NumPy arrays or torch tensors;
- :mod:`asr.decoding.beam`: :class:`~asr.decoding.beam.BeamSearch`, flashlight-text's decoder, used directly;
- :mod:`asr.decoding.lexicon`: lexicon and ARPA readers, the character lexicon writer, ``<unk>``;
- :mod:`asr.decoding.hotwords`: the word scorer for hotwords (and a word LM lexicon-free), the spelling check;
- :mod:`asr.decoding.pool`: :class:`DecodePool`, many utterances over worker processes; :class:`BeamCache`,
  beam searches kept built for reuse.

The inference API (``asr.inference.Transcriber``) decodes through these; so do LM tuning and the recipes.
"""

from asr.decoding.config import DecoderConfig, DecoderError, Emission, Hypothesis
from asr.decoding.lexicon import UNK
from asr.decoding.pool import BeamCache, DecodePool

__all__ = ["UNK", "BeamCache", "DecodePool", "DecoderConfig", "DecoderError", "Emission", "Hypothesis"]
