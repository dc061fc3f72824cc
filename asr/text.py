"""Text normalisation, the tokenizer interface and its character implementation, and CTC's label rules.

The only place the CTC blank id and the character tokenizer's word separator (the space) are defined.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from asr.errors import DataError, UsageError

BLANK_ID = 0
BLANK = "<blank>"
SPACE = " "
SPACE_ID = 1  # the character tokenizer's word separator
ENGLISH = tuple("abcdefghijklmnopqrstuvwxyz'")

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_DROP = re.compile(r"[^\w\s']+")  # punctuation and symbols become word breaks
_QUOTE = re.compile(r"(?<![\w])'+|'+(?![\w])")  # apostrophes that are quotes, not inside a word


def normalize_text(text: str) -> str:
    """Lower-case, unify apostrophes, drop punctuation and collapse spaces.

    Apostrophes inside words stay ("don't"); quotes and all other punctuation become spaces. Letters with
    diacritics and digits are kept: the tokenizer reports them if it cannot represent them.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = _DROP.sub(" ", text).replace("_", " ")
    text = _QUOTE.sub(" ", text)
    return " ".join(text.split())


def ctc_min_frames(tokens: Sequence[int]) -> int:
    """Fewest output frames CTC needs for a label: one per token plus a blank between repeats."""
    return len(tokens) + sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)


class TokenizerError(DataError):
    """Text or a tokenizer description the tokenizer cannot use; the message says which characters or keys."""


class Tokenizer(ABC):
    """What a model's output ids mean, and how words are made of them. Id 0 is always the CTC blank.

    A model spec stores a tokenizer as :meth:`to_dict` (whose ``kind`` names the class) and
    :func:`tokenizer_from_dict` rebuilds it. Words are delimited either by a separator token between them
    (:attr:`separator_id`, the character tokenizer's space) or, when that is None, by the tokens themselves
    (a subword tokenizer whose pieces mark word starts): beam search lexicons use :meth:`spell`, word
    timings :meth:`word_spans`, so neither assumes a space token.
    """

    kind: ClassVar[str]

    @property
    @abstractmethod
    def symbols(self) -> list[str]:
        """The token string of each id, the blank's first."""

    @property
    def vocab_size(self) -> int:
        return len(self.symbols)

    @property
    @abstractmethod
    def separator_id(self) -> int | None:
        """The token between words, or None when tokens mark word boundaries themselves."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Normalise and map to ids; raises :class:`TokenizerError` for text it cannot represent."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Ids (blanks removed or not) to text, words separated by single spaces."""

    @abstractmethod
    def unknown(self, text: str) -> list[tuple[int, str]]:
        """(position, character) of each character of normalised ``text`` that cannot be represented."""

    @abstractmethod
    def spell(self, word: str) -> list[int]:
        """The ids of one word as a lexicon spells it, no separator; :class:`TokenizerError` if it cannot."""

    @abstractmethod
    def word_spans(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """[start, end) positions in ``ids`` of each word's tokens, separators left out."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain data for a model spec, with ``kind``."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> Tokenizer:
        """Inverse of :meth:`to_dict`."""

    def tidy(self, ids: Sequence[int]) -> list[int]:
        """Ids without leading, trailing or repeated separators (beam search opens and closes with one)."""
        sep = self.separator_id
        out: list[int] = []
        for i in ids:
            if i != sep or (out and out[-1] != sep):
                out.append(i)
        return out[:-1] if out and out[-1] == sep else out


class CharTokenizer(Tokenizer):
    """Characters to ids and back. Id 0 is the CTC blank, id 1 (:data:`SPACE_ID`) the space between words."""

    kind = "char"

    def __init__(self, symbols: Sequence[str]) -> None:
        symbols = list(symbols)
        if not all(isinstance(s, str) for s in symbols):
            raise TokenizerError("a character tokenizer's symbols are strings")
        if BLANK in symbols or SPACE in symbols or len(set(symbols)) != len(symbols):
            raise TokenizerError("tokenizer symbols must be unique and exclude the blank and the space")
        if any(len(s) != 1 for s in symbols):
            raise TokenizerError("a character tokenizer's symbols are single characters")
        self._symbols = [BLANK, SPACE, *symbols]
        self._ids = {s: i for i, s in enumerate(self._symbols)}

    @classmethod
    def english(cls) -> CharTokenizer:
        """a-z and the apostrophe."""
        return cls(ENGLISH)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        """Every character of the normalised texts, sorted."""
        chars = set()
        for text in texts:
            chars.update(normalize_text(text))
        chars.discard(SPACE)
        return cls(sorted(chars))

    @property
    def symbols(self) -> list[str]:
        return self._symbols

    @property
    def separator_id(self) -> int:
        return SPACE_ID

    def unknown(self, text: str) -> list[tuple[int, str]]:
        return [(i, c) for i, c in enumerate(normalize_text(text)) if c not in self._ids]

    def encode(self, text: str) -> list[int]:
        norm = normalize_text(text)
        try:
            return [self._ids[c] for c in norm]
        except KeyError:
            bad = ", ".join(f"{c!r} at {i}" for i, c in self.unknown(text)[:5])
            raise TokenizerError(f"characters outside the vocabulary: {bad} in {norm!r}") from None

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join("".join(self._symbols[i] for i in ids if i != BLANK_ID).split())

    def spell(self, word: str) -> list[int]:
        """The word's characters as they are (not normalised: a lexicon spells exactly)."""
        if not word or any(c.isspace() for c in word):
            raise TokenizerError(f"{word!r} is not one word")
        try:
            return [self._ids[c] for c in word]
        except KeyError as e:
            raise TokenizerError(f"{word!r}: character {e.args[0]!r} outside the vocabulary") from None

    def word_spans(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        spans, start = [], None
        for k, i in enumerate([*ids, SPACE_ID]):
            if i != SPACE_ID and start is None:
                start = k
            elif i == SPACE_ID and start is not None:
                spans.append((start, k))
                start = None
        return spans

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "symbols": self._symbols[2:]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CharTokenizer:
        if d.get("kind") != cls.kind or not isinstance(d.get("symbols"), list):
            raise TokenizerError(f"not a character tokenizer: kind {d.get('kind')!r}")
        return cls(d["symbols"])


TOKENIZERS: dict[str, type[Tokenizer]] = {CharTokenizer.kind: CharTokenizer}


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    """The tokenizer a model spec describes, by its ``kind``."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in TOKENIZERS:
        raise TokenizerError(f"unknown tokenizer kind {kind!r}; known: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[kind].from_dict(d)


HOTWORD_BONUS = 3.0  # a hotword's default bonus (natural log): its probability times e^3, about 20


def parse_hotword(value: str) -> tuple[str, float]:
    """WORD or WORD:BONUS -> (normalised word, bonus); :class:`UsageError` when the bonus is not a number."""
    word, _, bonus = value.rpartition(":") if ":" in value else (value, "", str(HOTWORD_BONUS))
    try:
        return normalize_text(word), float(bonus)
    except ValueError:
        raise UsageError(f"hotword {value!r}: expected WORD or WORD:BONUS") from None
