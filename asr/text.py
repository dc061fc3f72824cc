"""Text normalisation and the character tokenizer. The only place the CTC blank id is defined."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

BLANK_ID = 0
BLANK = "<blank>"
SPACE = " "
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


class TokenizerError(ValueError):
    """Text holding characters the tokenizer cannot represent."""


class CharTokenizer:
    """Characters to ids and back. Id 0 is the CTC blank, id 1 the word separator (space)."""

    def __init__(self, symbols: Sequence[str]) -> None:
        symbols = list(symbols)
        if BLANK in symbols or SPACE in symbols or len(set(symbols)) != len(symbols):
            raise TokenizerError("tokenizer symbols must be unique and exclude the blank and the space")
        if any(len(s) != 1 for s in symbols):
            raise TokenizerError("a character tokenizer's symbols are single characters")
        self.symbols = [BLANK, SPACE, *symbols]
        self._ids = {s: i for i, s in enumerate(self.symbols)}

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
    def vocab_size(self) -> int:
        return len(self.symbols)

    def unknown(self, text: str) -> list[tuple[int, str]]:
        """(position, character) of each character of normalised ``text`` that has no id."""
        return [(i, c) for i, c in enumerate(normalize_text(text)) if c not in self._ids]

    def encode(self, text: str) -> list[int]:
        """Normalise and map to ids; raises :class:`TokenizerError` listing characters it cannot map."""
        norm = normalize_text(text)
        try:
            return [self._ids[c] for c in norm]
        except KeyError:
            bad = ", ".join(f"{c!r} at {i}" for i, c in self.unknown(text)[:5])
            raise TokenizerError(f"characters outside the vocabulary: {bad} in {norm!r}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids (blanks already removed or not) to text with single spaces."""
        return " ".join("".join(self.symbols[i] for i in ids if i != BLANK_ID).split())

    def to_dict(self) -> dict:
        """Plain data for a checkpoint."""
        return {"kind": "char", "symbols": self.symbols[2:]}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        if d.get("kind") != "char":
            raise TokenizerError(f"unknown tokenizer kind {d.get('kind')!r}")
        return cls(d["symbols"])
