"""Hotwords, and word-LM scoring lexicon-free: a Python scorer standing in for flashlight's LM.

flashlight has no hotword option, but a Python subclass of its LM can stand in for it. With hotwords set,
:class:`WordScorer` scores every completed word itself (the n-gram LM if any, plus the word's bonus), so a
hotword gains its bonus each time a hypothesis completes it; with a lexicon, flashlight's lookahead (the trie
smeared with each word's score) favours it too. This Python scoring is slower than flashlight's own KenLM, so
it is used only when needed: with hotwords, and for a word LM lexicon-free.

:func:`check_hotwords` refuses a hotword the model cannot spell, as beam search does, without building one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from flashlight.lib.text.decoder import LM, LMState
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from asr.decoding.config import DecoderConfig, DecoderError
from asr.decoding.lexicon import UNK, arpa_unigrams
from asr.text import Tokenizer, TokenizerError


def check_hotwords(tokenizer: Tokenizer, hotwords: Iterable[tuple[str, float]]) -> None:
    """:class:`DecoderError`, with beam search's message, for the first hotword ``tokenizer`` cannot spell."""
    for word, _ in hotwords:
        try:
            tokenizer.spell(word)
        except TokenizerError:
            raise DecoderError(f"hotword {word!r}: has characters the model cannot spell") from None


class WordScorer(LM):
    """Whole-word scores for flashlight: ``lm_weight`` times the n-gram LM's log10 probability (when there is
    an LM), plus the word's hotword bonus, plus ``word_score`` when lexicon-free.

    Lexicon-free, a word outside the LM's vocabulary is scored as the LM's ``<unk>`` times the probability of
    its spelling, one of the tokenizer's letters (or the word's end) at a time, uniformly: ``<unk>`` alone
    gave any string the same score, so search glued words together, one unknown word costing less than the
    words it replaced. Each letter is charged as it comes, and an LM word is refunded its letters when it is
    complete, so the beam does not keep partial words whose cost is yet to come.

    With a lexicon (``vocab``: the words in flashlight's word-id order) flashlight asks for each completed
    word by id and adds ``word_score`` itself. Lexicon-free, flashlight asks after every token, so the
    tokens of a word are scored as one word when the next word starts (the separator, id ``separator``, or
    a word-start piece of ``tokenizer``) and at the end; a word LM given to flashlight directly would score
    tokens as words. Give flashlight ``lm_weight=1``.
    """

    def __init__(
        self, config: DecoderConfig, tokenizer: Tokenizer, separator: int, vocab: Sequence[str] | None
    ) -> None:
        super().__init__()
        self.by_id = list(vocab) if vocab is not None else None
        self.kenlm: KenLM | None = None
        if config.lm is not None:
            words = self.by_id if self.by_id is not None else arpa_unigrams(config.lm)
            self.words = Dictionary(words if UNK in words else [*words, UNK])
            self.unk = self.words.get_index(UNK)
            self.words.set_default_index(self.unk)
            self.kenlm = KenLM(config.lm, self.words)
        self.lm_weight = config.lm_weight
        self.word_score = config.word_score if vocab is None else 0.0
        self.hotwords = dict(config.hotwords)
        self.texts = [tokenizer.token_text(i) for i in range(tokenizer.vocab_size)]
        self.open_vocabulary = self.kenlm is not None and vocab is None
        self.spelling_log10 = -math.log10(len(tokenizer.letters) + 1)  # each letter, and the word's end
        self.letter = self.lm_weight * self.spelling_log10 if self.open_vocabulary else 0.0
        self.starts, self.separator = tokenizer.word_start_ids, separator
        self.states: dict[LMState, tuple[LMState | None, str, float]] = {}  # -> (KenLM state, word, score)

    def _word(self, ken: LMState | None, word: str) -> tuple[LMState | None, float]:
        """The score of completing ``word``, less what its letters were charged as they came."""
        if not word:
            return ken, 0.0
        score = self.hotwords.get(word, 0.0) + self.word_score - self.letter * len(word)
        if self.kenlm is not None:
            index = self.words.get_index(word)
            ken, logp = self.kenlm.score(ken, index)
            if index == self.unk and self.open_vocabulary:
                logp += self.spelling_log10 * (len(word) + 1)
            score += self.lm_weight * logp
        return ken, score

    def start(self, start_with_nothing: bool) -> LMState:
        self.states.clear()  # flashlight decodes one utterance at a time
        state = LMState()
        ken = self.kenlm.start(start_with_nothing) if self.kenlm is not None else None
        self.states[state] = (ken, "", 0.0)
        return state

    def score(self, state: LMState, token: int) -> tuple[LMState, float]:
        child = state.child(token)
        if child not in self.states:
            ken, word, _ = self.states[state]
            if self.by_id is not None or token == self.separator:  # a word is complete
                ken, score = self._word(ken, self.by_id[token] if self.by_id is not None else word)
                self.states[child] = (ken, "", score)
            elif token in self.starts:  # a word-start piece completes the word before it
                ken, score = self._word(ken, word)
                text = self.texts[token]
                self.states[child] = (ken, text, score + self.letter * len(text))
            else:
                text = self.texts[token]
                self.states[child] = (ken, word + text, self.letter * len(text))
        return child, self.states[child][2]

    def finish(self, state: LMState) -> tuple[LMState, float]:
        ken, word, _ = self.states[state]
        ken, score = self._word(ken, word)
        if self.kenlm is not None:
            _, logp = self.kenlm.finish(ken)
            score += self.lm_weight * logp
        return state.child(-1), score
