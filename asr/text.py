"""Text normalisation, the tokenizer interface with its character and SentencePiece implementations, and
CTC's label rules.

The only place the CTC blank id and the character tokenizer's word separator (the space) are defined.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from asr.errors import DataError, UsageError, first_line

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

    @property
    @abstractmethod
    def letters(self) -> frozenset[str]:
        """The characters words can be spelled with."""

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

    @property
    def word_start_ids(self) -> frozenset[int]:
        """Ids of the tokens that begin a word (word-start pieces); empty where a separator divides words."""
        return frozenset()

    def token_text(self, i: int) -> str:
        """The letters token ``i`` adds to a word."""
        return self.symbols[i]

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

    @property
    def letters(self) -> frozenset[str]:
        return frozenset(self._symbols[SPACE_ID + 1 :])

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


WORD_START = "\u2581"  # SentencePiece's mark on a piece that starts a word ("▁")
PIECE_TYPES = ("unigram", "bpe")


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece subword units (Kudo and Richardson 2018). Id 0 is the CTC blank, id 1 the piece model's
    ``<unk>`` (never a training target), id k+1 the model's piece k.

    There is no separator token: a piece starting with ``▁`` starts a word. The serialised piece model
    travels in the model spec (base64), so a model file is self-contained.
    """

    kind = "sentencepiece"

    def __init__(self, model: bytes) -> None:
        import sentencepiece

        self._model = bytes(model)
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._model)
        except (RuntimeError, OSError) as e:
            raise TokenizerError(f"not a SentencePiece model ({first_line(e)})") from None
        if self._sp.unk_id() != 0 or self._sp.bos_id() != -1 or self._sp.eos_id() != -1:
            raise TokenizerError("a piece model for CTC has <unk> at id 0 and no <s> or </s> pieces")
        pieces = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        self._symbols = [BLANK, *pieces]
        self._chars = frozenset(c for p in pieces[1:] for c in p if c != WORD_START)
        self._starts = frozenset(i for i, p in enumerate(self._symbols) if p.startswith(WORD_START))

    @classmethod
    def train(
        cls, texts: Iterable[str], vocab_size: int, model_type: str = "unigram"
    ) -> SentencePieceTokenizer:
        """A piece model of up to ``vocab_size`` pieces (``<unk>`` included) from the normalised ``texts``.

        Deterministic: the same texts in the same order give the same model, byte for byte. Every character
        of the texts is covered, so training text always encodes, and so are a-z and the apostrophe, so
        English text outside the training set does too.
        """
        import sentencepiece

        if model_type not in PIECE_TYPES:
            raise TokenizerError(f"piece model type {model_type!r}: choose {' or '.join(PIECE_TYPES)}")
        sentences = [t for t in (normalize_text(t) for t in texts) if t]
        if not sentences:
            raise TokenizerError("no training text to learn pieces from")
        out = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=out,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                required_chars="".join(ENGLISH),
                unk_id=0,
                bos_id=-1,
                eos_id=-1,
                pad_id=-1,
                normalization_rule_name="identity",  # normalize_text has done it
                split_digits=True,
                num_threads=1,  # multi-threaded training is not reproducible
                hard_vocab_limit=False,  # a small corpus gets fewer pieces rather than an error
                minloglevel=2,
            )
        except RuntimeError as e:
            raise TokenizerError(
                f"cannot train a {vocab_size}-piece {model_type} model: {first_line(e)}"
            ) from None
        return cls(out.getvalue())

    @property
    def symbols(self) -> list[str]:
        return self._symbols

    @property
    def separator_id(self) -> None:
        return None

    @property
    def letters(self) -> frozenset[str]:
        return self._chars

    def unknown(self, text: str) -> list[tuple[int, str]]:
        return [(i, c) for i, c in enumerate(normalize_text(text)) if c != SPACE and c not in self._chars]

    def encode(self, text: str) -> list[int]:
        norm = normalize_text(text)
        if bad := self.unknown(norm):
            shown = ", ".join(f"{c!r} at {i}" for i, c in bad[:5])
            raise TokenizerError(f"characters outside the vocabulary: {shown} in {norm!r}")
        return [i + 1 for i in self._sp.encode(norm)]

    def decode(self, ids: Iterable[int]) -> str:
        pieces = [i - 1 for i in ids if i != BLANK_ID]
        return " ".join(self._sp.decode(pieces).split())

    def spell(self, word: str) -> list[int]:
        """The word's pieces, the first one marked as a word start (the word as it is, not normalised)."""
        if not word or any(c.isspace() for c in word):
            raise TokenizerError(f"{word!r} is not one word")
        if bad := [c for c in word if c not in self._chars]:
            raise TokenizerError(f"{word!r}: character {bad[0]!r} outside the vocabulary")
        return [i + 1 for i in self._sp.encode(word)]

    @property
    def word_start_ids(self) -> frozenset[int]:
        return self._starts

    def token_text(self, i: int) -> str:
        return self._symbols[i].removeprefix(WORD_START)

    def word_spans(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """A word starts at each ``▁`` piece (or at the first piece) and runs to the next word's start."""
        starts = [k for k, i in enumerate(ids) if k == 0 or i in self._starts]
        return list(zip(starts, [*starts[1:], len(ids)]))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": base64.b64encode(self._model).decode("ascii")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SentencePieceTokenizer:
        if d.get("kind") != cls.kind or not isinstance(d.get("model"), str):
            raise TokenizerError(f"not a SentencePiece tokenizer: kind {d.get('kind')!r}")
        try:
            model = base64.b64decode(d["model"], validate=True)
        except binascii.Error:
            raise TokenizerError("the SentencePiece model is not valid base64") from None
        return cls(model)


TOKENIZERS: dict[str, type[Tokenizer]] = {
    CharTokenizer.kind: CharTokenizer,
    SentencePieceTokenizer.kind: SentencePieceTokenizer,
}


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
