"""Beam search: flashlight-text's CTC decoder, with a lexicon and a word n-gram LM, on NumPy emissions.

Token ids are shared with flashlight: our blank (id 0) is its blank, the tokenizer's word separator its
``|``, every other id a token. A tokenizer without a separator (word-start pieces) gets a ``|`` after its
last id: flashlight needs one. Lexicon-free, its log-probability is -inf and it never fires. With a lexicon,
flashlight ends a word on its last token and goes back to the trie's root, where holding a token over more
frames means repeating ``|``, not the word's last piece: so each word is spelled twice, ending on its last
piece (the next word may follow at once) and with a ``|`` after it that scores as the blank (the last piece
may be held over frames first), and only a held last piece right before the next word pays a blank's score.
:class:`DecoderConfig` chooses how words are formed:

- lexicon: only words of a ``lexicon`` file, or with an ARPA ``lm`` alone the LM's unigrams, each spelled by
  the tokenizer (then ``|`` where the tokenizer has a separator);
- lexicon-free (no lexicon and no ``lm``, or ``lexicon_free=True``): any token string is a word; an ``lm``
  scores the tokens of a word as one word when the next word starts (a separator or a word-start piece) or
  the utterance ends.

Scores are the emissions' natural-log probabilities plus ``lm_weight`` times the LM's log10 probabilities
plus ``word_score`` per word. Hotwords go through :class:`asr.decoding.hotwords.WordScorer`; hotwords
outside the lexicon are added to it.

flashlight-text's Python bindings are used directly (the decoder, its options, the lexicon trie, KenLM), as
torchaudio's ``ctc_decoder`` wraps them, so beam search imports no torch.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
from flashlight.lib.text.decoder import (
    LM,
    CriterionType,
    DecodeResult,
    LexiconDecoder,
    LexiconDecoderOptions,
    LexiconFreeDecoder,
    LexiconFreeDecoderOptions,
    SmearingMode,
    Trie,
    ZeroLM,
)
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from asr.batching import to_numpy
from asr.decoding.config import DecoderConfig, DecoderError, Hypothesis
from asr.decoding.hotwords import WordScorer, check_hotwords
from asr.decoding.lexicon import SENTENCE_MARKS, SEPARATOR, UNK, arpa_unigrams, read_lexicon
from asr.text import BLANK, BLANK_ID, Tokenizer, TokenizerError

log = logging.getLogger(__name__)

Lexicon = dict[str, list[list[str]]]  # word -> its spellings in token strings, each ending with SEPARATOR


class BeamSearch:
    """flashlight's beam search over one utterance's CTC log-probabilities, per a beam :class:`DecoderConfig`.

    Raises :class:`DecoderError` for an LM or lexicon that cannot be used.
    """

    def __init__(self, tokenizer: Tokenizer, config: DecoderConfig) -> None:
        if config.kind != "beam":
            raise DecoderError(f"BeamSearch needs a beam decoder config, got kind={config.kind!r}")
        if config.lm is not None and not Path(config.lm).is_file():
            raise DecoderError(f"{config.lm}: LM file not found")
        self.tokenizer, self.config = tokenizer, config
        symbols = list(tokenizer.symbols)
        self.virtual_separator = tokenizer.separator_id is None
        if self.virtual_separator:  # word-start pieces: a separator for flashlight that never fires
            self.separator = len(symbols)
            symbols.append(SEPARATOR)
        else:
            self.separator = tokenizer.separator_id
            symbols[self.separator] = SEPARATOR  # ids shared with ours
        self.lexicon = self._lexicon(symbols)
        try:
            self._decoder = self._flashlight(symbols)
        except RuntimeError as e:  # KenLM's: the last line of its message says what is wrong
            if config.lm is None:
                raise
            raise DecoderError(f"{config.lm}: cannot load the LM: {str(e).splitlines()[-1]}") from None

    def _spell(self, word: str, symbols: list[str]) -> list[str] | None:
        """The word in token strings (then the separator, where the tokenizer has one), or None when the
        tokenizer cannot spell it."""
        try:
            return [symbols[i] for i in self.tokenizer.spell(word)] + (
                [] if self.virtual_separator else [SEPARATOR]
            )
        except TokenizerError:
            return None

    def _lexicon(self, symbols: list[str]) -> Lexicon | None:
        """The lexicon to search with (None: lexicon-free), hotwords added, without spellings using unknown
        tokens."""
        config = self.config
        check_hotwords(self.tokenizer, config.hotwords)
        hotwords = {word: self._spell(word, symbols) for word, _ in config.hotwords}
        if config.lexicon is not None:
            lexicon = read_lexicon(config.lexicon)
            if self.virtual_separator:  # a lexicon file spells in characters: respell its words in pieces
                lexicon = {w: [s] if (s := self._spell(w, symbols)) else [] for w in lexicon}
        elif config.lm is not None and not config.lexicon_free:
            words = [w for w in arpa_unigrams(config.lm) if w not in (*SENTENCE_MARKS, UNK)]
            lexicon = {w: [s] if (s := self._spell(w, symbols)) else [] for w in words}
        else:
            return None
        known = set(symbols)
        kept = {w: [s for s in spellings if known.issuperset(s)] for w, spellings in lexicon.items()}
        kept = {w: spellings for w, spellings in kept.items() if spellings}
        if not kept:
            raise DecoderError("the lexicon has no word the tokenizer can spell")
        if len(kept) < len(lexicon):
            log.warning(
                "lexicon: %d of %d words need tokens outside the vocabulary, dropped",
                len(lexicon) - len(kept),
                len(lexicon),
            )
        for word, spelling in hotwords.items():
            kept.setdefault(word, [spelling])
        return kept

    def _flashlight(self, symbols: list[str]) -> LexiconDecoder | LexiconFreeDecoder:
        """flashlight's decoder: lexicon-free, or on the lexicon's trie smeared with its words' LM scores."""
        config, lexicon = self.config, self.lexicon
        tokens = Dictionary(symbols)
        self.blank, separator = tokens.get_index(BLANK), tokens.get_index(SEPARATOR)
        beam = dict(
            beam_size=config.beam_size,
            beam_size_token=config.beam_size_token or len(symbols),
            beam_threshold=config.beam_threshold,
            sil_score=0.0,
            log_add=False,
            criterion_type=CriterionType.CTC,
        )
        words = None if lexicon is None else Dictionary([*lexicon, *([] if UNK in lexicon else [UNK])])
        lm: LM
        lm_weight = config.lm_weight
        if config.hotwords or (lexicon is None and config.lm is not None):
            vocab = None if words is None else [words.get_entry(i) for i in range(words.index_size())]
            lm, lm_weight = WordScorer(config, self.tokenizer, self.separator, vocab), 1.0
        elif config.lm is not None:
            lm = KenLM(config.lm, words)
        else:
            lm = ZeroLM()
        self._lm = lm  # the decoder holds it by reference only: keep it alive as long as the decoder
        if lexicon is None or words is None:
            options = LexiconFreeDecoderOptions(lm_weight=lm_weight, **beam)
            return LexiconFreeDecoder(options, lm, separator, self.blank, [])
        trie = Trie(tokens.index_size(), separator)
        start = lm.start(False)
        for word, spellings in lexicon.items():
            word_id = words.get_index(word)
            _, score = lm.score(start, word_id)
            for spelling in spellings:
                ids = [tokens.get_index(t) for t in spelling]
                trie.insert(ids, word_id, score)
                if self.virtual_separator:  # the same word, with a held last piece (module docstring)
                    trie.insert([*ids, separator], word_id, score)
        trie.smear(SmearingMode.MAX)
        options = LexiconDecoderOptions(
            lm_weight=lm_weight, word_score=config.word_score, unk_score=float("-inf"), **beam
        )
        return LexiconDecoder(options, trie, lm, separator, self.blank, words.get_index(UNK), [], False)

    def __call__(self, log_probs: Any) -> list[Hypothesis]:
        """log_probs (T, V) of one utterance's valid frames (a NumPy array or a torch tensor) -> up to
        ``nbest`` hypotheses, best first."""
        rows = to_numpy(log_probs).astype(np.float32, copy=False)
        if self.virtual_separator:  # flashlight's separator, after our last id: the blank, or never emitted
            sep = (
                rows[:, BLANK_ID : BLANK_ID + 1]
                if self.lexicon is not None
                else np.full_like(rows[:, :1], -np.inf)
            )
            rows = np.concatenate([rows, sep], axis=1)
        if self.lexicon is not None:
            # Lexicon words can end with the separator, which our model does not emit after the last word:
            # one more frame allowing only the separator or blank lets the last word end.
            end = np.full((1, rows.shape[1]), -np.inf, dtype=np.float32)
            end[0, [BLANK_ID, self.separator]] = 0.0
            rows = np.concatenate([rows, end])
        rows = np.ascontiguousarray(rows)
        results = self._decoder.decode(rows.ctypes.data, rows.shape[0], rows.shape[1])
        return self._hypotheses(results[: self.config.beam_size])

    def _hypotheses(self, results: list[DecodeResult]) -> list[Hypothesis]:
        best: dict[str, Hypothesis] = {}
        for r in sorted(results, key=lambda r: -r.score):
            path = [
                t
                for t, _ in itertools.groupby(r.tokens)
                if t != self.blank and not (self.virtual_separator and t == self.separator)
            ]
            tokens = self.tokenizer.tidy(path)
            text = self.tokenizer.decode(tokens)
            if text not in best:
                best[text] = Hypothesis(text, float(r.score), tokens)
            if len(best) == self.config.nbest:
                break
        return list(best.values())
