"""What decoding is asked for and what it gives: :class:`DecoderConfig`, :class:`Hypothesis`, ``Emission``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from asr.errors import UsageError

KINDS = ("greedy", "beam")
Emission = tuple[np.ndarray, int]  # (T, V) float32 log-probabilities of one utterance, and its valid frames


class DecoderError(UsageError):
    """A decoder setting or file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class DecoderConfig:
    """How CTC log-probabilities become text. The beam fields are flashlight-text's options."""

    kind: str = "greedy"  # greedy | beam
    beam_size: int = 50  # hypotheses kept after each frame
    beam_size_token: int | None = None  # tokens tried per frame, the likeliest first; None: all
    beam_threshold: float = 25.0  # drop hypotheses scoring this much below the frame's best
    lm: str | None = None  # word n-gram LM: ARPA, or KenLM binary (which needs a lexicon)
    lexicon: str | None = None  # lines "word c h a r s |"; None with an lm: the lm's unigrams, spelled
    lexicon_free: bool = False  # with an lm: any string is a word (not the lm's: <unk> times its letters)
    lm_weight: float = 2.0  # times the LM's log10 probability
    word_score: float = 0.0  # added per word, with a lexicon, an lm or hotwords; positive favours more words
    nbest: int = 1  # hypotheses returned per utterance, distinct texts, best first
    hotwords: tuple[tuple[str, float], ...] = ()  # (word, bonus added to a hypothesis each time it has it)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DecoderError(f"decoder kind must be greedy or beam, got {self.kind!r}")
        if self.kind == "greedy" and (
            self.lm or self.lexicon or self.lexicon_free or self.nbest != 1 or self.hotwords
        ):
            raise DecoderError(
                "lm, lexicon, lexicon_free, hotwords and nbest > 1 need the beam decoder (kind='beam')"
            )
        for word, bonus in self.hotwords:
            if not word or word.split() != [word] or not math.isfinite(bonus):
                raise DecoderError(f"hotword {word!r}: need one word and a finite bonus, got bonus {bonus}")
        if self.lexicon_free and self.lexicon:
            raise DecoderError("give a lexicon or ask for lexicon-free decoding, not both")
        if self.beam_size < 1 or not 1 <= self.nbest <= self.beam_size:
            raise DecoderError(
                f"need 1 <= nbest <= beam_size, got nbest={self.nbest} beam_size={self.beam_size}"
            )
        if self.beam_size_token is not None and self.beam_size_token < 1:
            raise DecoderError(f"beam_size_token must be at least 1, got {self.beam_size_token}")
        if not self.beam_threshold > 0 or not math.isfinite(self.beam_threshold):
            raise DecoderError(f"beam_threshold must be a positive number, got {self.beam_threshold}")
        for name in ("lm_weight", "word_score"):
            if not math.isfinite(getattr(self, name)):
                raise DecoderError(f"{name} must be a finite number, got {getattr(self, name)}")


@dataclass
class Hypothesis:
    """One transcript of an utterance."""

    text: str
    score: float  # log domain, higher is better; comparable within one utterance and decoder
    tokens: list[int]  # token ids of ``text``, without leading, trailing or repeated word separators
