"""Lexicon and ARPA readers, and the character lexicon writer.

A lexicon file has lines "word tok tok ... |": a word, then its spelling in the model's tokens, ending with
flashlight's word separator ``|`` (our space). An ARPA file's 1-gram section gives an LM's words.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from asr.decoding.config import DecoderError
from asr.outputs import write_text_atomic

SEPARATOR = "|"  # flashlight's word boundary token, standing for our space
UNK = "<unk>"  # the LM's unknown word
SENTENCE_MARKS = ("<s>", "</s>")


def spell(word: str) -> list[str]:
    """A word's spelling in a character lexicon: its characters, then the word separator."""
    return [*word, SEPARATOR]


def write_lexicon(path: str | Path, words: Iterable[str]) -> int:
    """Write one "word<TAB>c h a r s |" line per word, atomically; returns the number written."""
    lines = [f"{w}\t{' '.join(spell(w))}\n" for w in words]
    write_text_atomic(path, "".join(lines))
    return len(lines)


def read_lexicon(path: str | Path) -> dict[str, list[list[str]]]:
    """Word -> its spellings (token lists), from "word tok tok ..." lines."""
    lexicon: dict[str, list[list[str]]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DecoderError(f"{path}: cannot read the lexicon ({e.strerror})") from None
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise DecoderError(f"{path}:{line}: the lexicon is not UTF-8 text") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DecoderError(f"{path}:{number}: expected a word and its spelling, got {line!r}")
        lexicon.setdefault(fields[0], []).append(fields[1:])
    return lexicon


def arpa_unigrams(path: str | Path) -> list[str]:
    """The words of an ARPA file's 1-gram section."""
    words: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = enumerate(f, 1)
            first = next((line.strip() for _, line in lines if line.strip()), "")
            if first != "\\data\\":
                raise DecoderError(f"{path}: not an ARPA file (a KenLM binary LM needs a lexicon file)")
            for _, line in lines:
                if line.strip() == "\\1-grams:":
                    break
            for number, line in lines:
                fields = line.split()
                if not fields or fields[0].startswith("\\"):
                    break
                if len(fields) < 2:
                    raise DecoderError(
                        f"{path}:{number}: expected a 1-gram 'log10-probability word [backoff]', "
                        f"got {line.strip()!r}"
                    )
                words.append(fields[1])
    except OSError as e:
        raise DecoderError(f"{path}: cannot read the LM ({e.strerror})") from None
    return words
