"""Beam search: flashlight-text's CTC decoder (through torchaudio), with a lexicon and a word n-gram LM.

Token ids are shared with flashlight: our blank (id 0) is its blank, the tokenizer's word separator its
``|``, every other id a token. :class:`DecoderConfig` chooses how words are formed:

- lexicon: only words of a ``lexicon`` file, or with an ARPA ``lm`` alone the LM's unigrams, each spelled by
  the tokenizer then ``|``;
- lexicon-free (no lexicon and no ``lm``, or ``lexicon_free=True``): any token string is a word; an ``lm``
  scores the tokens since the last separator as one word when a separator (or the end) comes.

Scores are the emissions' natural-log probabilities plus ``lm_weight`` times the LM's log10 probabilities
plus ``word_score`` per word. Hotwords go through :class:`asr.decoding.hotwords.WordScorer`; hotwords
outside the lexicon are added to it.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch
from torch import Tensor
from torchaudio.models.decoder import CTCDecoder as FlashlightDecoder
from torchaudio.models.decoder import CTCHypothesis, ctc_decoder

from asr.decoding.config import DecoderConfig, DecoderError, Hypothesis
from asr.decoding.hotwords import WordScorer
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
        if tokenizer.separator_id is None:
            raise DecoderError(
                f"beam search needs a word separator token, which a {tokenizer.kind} tokenizer lacks"
            )
        if config.lm is not None and not Path(config.lm).is_file():
            raise DecoderError(f"{config.lm}: LM file not found")
        self.tokenizer, self.config = tokenizer, config
        self.separator = tokenizer.separator_id
        symbols = list(tokenizer.symbols)
        symbols[self.separator] = SEPARATOR  # ids shared with ours
        self.lexicon = self._lexicon(symbols)
        try:
            self._decoder = self._flashlight(symbols)
        except RuntimeError as e:  # KenLM's: the last line of its message says what is wrong
            if config.lm is None:
                raise
            raise DecoderError(f"{config.lm}: cannot load the LM: {str(e).splitlines()[-1]}") from None

    def _spell(self, word: str, symbols: list[str]) -> list[str] | None:
        """The word in token strings then the separator, or None when the tokenizer cannot spell it."""
        try:
            return [symbols[i] for i in self.tokenizer.spell(word)] + [SEPARATOR]
        except TokenizerError:
            return None

    def _lexicon(self, symbols: list[str]) -> Lexicon | None:
        """The lexicon to search with (None: lexicon-free), hotwords added, without spellings using unknown
        tokens."""
        config = self.config
        hotwords = {}
        for word, _ in config.hotwords:
            hotwords[word] = self._spell(word, symbols)
            if hotwords[word] is None:
                raise DecoderError(f"hotword {word!r}: has characters the model cannot spell")
        if config.lexicon is not None:
            lexicon = read_lexicon(config.lexicon)
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

    def _flashlight(self, symbols: list[str]) -> FlashlightDecoder:
        """torchaudio's flashlight decoder; lexicon and word list go through temporary files."""
        config, lexicon = self.config, self.lexicon
        words = None if lexicon is None else [*lexicon, *([] if UNK in lexicon else [UNK])]  # word-id order
        lm, lm_weight = config.lm, config.lm_weight
        if config.hotwords or (lexicon is None and config.lm is not None):
            lm, lm_weight = WordScorer(config, symbols, self.separator, words), 1.0
        options = dict(
            tokens=symbols,
            lm=lm,
            nbest=config.beam_size,  # all final hypotheses: those of the same text are merged later
            beam_size=config.beam_size,
            beam_size_token=config.beam_size_token,
            beam_threshold=config.beam_threshold,
            lm_weight=lm_weight,
            word_score=config.word_score,
            blank_token=BLANK,
            sil_token=SEPARATOR,
            unk_word=UNK,
        )
        if lexicon is None or words is None:
            return ctc_decoder(lexicon=None, **options)
        with tempfile.TemporaryDirectory() as tmp:
            path, word_list = Path(tmp) / "lexicon.txt", Path(tmp) / "words.txt"
            path.write_text(
                "".join(f"{w} {' '.join(s)}\n" for w, ss in lexicon.items() for s in ss), encoding="utf-8"
            )
            word_list.write_text("".join(f"{w}\n" for w in words), encoding="utf-8")
            return ctc_decoder(lexicon=str(path), lm_dict=str(word_list), **options)

    def __call__(self, log_probs: Tensor) -> list[Hypothesis]:
        """log_probs (T, V) of one utterance's valid frames -> up to ``nbest`` hypotheses, best first."""
        row = log_probs.detach().float().cpu()
        if self.lexicon is not None:
            # Lexicon words end with the separator, which our model does not emit after the last word:
            # one more frame allowing only the separator or blank lets the last word end.
            end = torch.full((1, row.shape[1]), float("-inf"))
            end[0, [BLANK_ID, self.separator]] = 0.0
            row = torch.cat([row, end])
        return self._hypotheses(self._decoder(row[None].contiguous())[0])

    def _hypotheses(self, results: list[CTCHypothesis]) -> list[Hypothesis]:
        best: dict[str, Hypothesis] = {}
        for r in sorted(results, key=lambda r: -r.score):
            tokens = self.tokenizer.tidy(r.tokens.tolist())
            text = self.tokenizer.decode(tokens)
            if text not in best:
                best[text] = Hypothesis(text, float(r.score), tokens)
            if len(best) == self.config.nbest:
                break
        return list(best.values())
