"""Hotwords, and word-LM scoring lexicon-free: a Python scorer standing in for flashlight's LM.

flashlight has no hotword option, but a Python subclass of its LM can stand in for it. With hotwords set,
:class:`WordScorer` scores every completed word itself (the n-gram LM if any, plus the word's bonus), so a
hotword gains its bonus each time a hypothesis completes it; with a lexicon, flashlight's lookahead (the trie
smeared with each word's score) favours it too. This Python scoring is slower than flashlight's own KenLM, so
it is used only when needed: with hotwords, and for a word LM lexicon-free.

:func:`check_hotwords` refuses a hotword the model cannot spell, as beam search does, without building one.
"""

from __future__ import annotations

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
            self.words.set_default_index(self.words.get_index(UNK))
            self.kenlm = KenLM(config.lm, self.words)
        self.lm_weight = config.lm_weight
        self.word_score = config.word_score if vocab is None else 0.0
        self.hotwords = dict(config.hotwords)
        self.texts = [tokenizer.token_text(i) for i in range(tokenizer.vocab_size)]
        self.starts, self.separator = tokenizer.word_start_ids, separator
        self.states: dict[LMState, tuple[LMState | None, str, float]] = {}  # -> (KenLM state, word, score)

    def _word(self, ken: LMState | None, word: str) -> tuple[LMState | None, float]:
        if not word:
            return ken, 0.0
        score = self.hotwords.get(word, 0.0) + self.word_score
        if self.kenlm is not None:
            ken, logp = self.kenlm.score(ken, self.words.get_index(word))
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
                self.states[child] = (ken, self.texts[token], score)
            else:
                self.states[child] = (ken, word + self.texts[token], 0.0)
        return child, self.states[child][2]

    def finish(self, state: LMState) -> tuple[LMState, float]:
        ken, word, _ = self.states[state]
        ken, score = self._word(ken, word)
        if self.kenlm is not None:
            _, logp = self.kenlm.finish(ken)
            score += self.lm_weight * logp
        return state.child(-1), score
