"""Build a word n-gram LM (ARPA, interpolated modified Kneser-Ney) and its lexicon from a text corpus.

Usage:
    python tools/build_lm.py corpus.txt --order 3 --out lm.arpa [--lexicon lexicon.txt]

The corpus holds one sentence per line, normalised with ``asr.text.normalize_text``; the estimation is
``asr.lm.build_arpa``. The lexicon spells each word with its characters and the word separator, for
``asr.decoding``. An output that is the corpus (or the other output), through links too, is refused before
anything is read; both are written atomically. Exit codes are ``asr.errors``': 2 usage, 5 an unreadable or
unusable corpus, 6 an output that cannot be written.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from asr.decoding.lexicon import write_lexicon
from asr.errors import DataError, first_line, run_main
from asr.lm import FALLBACK_DISCOUNTS, build_arpa, discounts
from asr.outputs import refuse_overwrite, write_text_atomic
from asr.text import normalize_text

__all__ = ["FALLBACK_DISCOUNTS", "build_arpa", "discounts", "main"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", help="text file, one sentence per line")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    p.add_argument("--out", required=True, help="ARPA file to write")
    p.add_argument("--lexicon", help="also write the lexicon (word, then its characters and '|') here")
    args = p.parse_args(argv)
    if args.order < 2:
        p.error("--order must be at least 2 (KenLM loads no unigram-only model)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    refuse_overwrite(args.out, [args.corpus])
    if args.lexicon:
        refuse_overwrite(args.lexicon, [args.corpus, args.out])
    try:
        sentences = Path(args.corpus).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"{args.corpus}: cannot read the corpus ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{args.corpus}: not valid UTF-8 (byte {e.start})") from None
    try:
        arpa = build_arpa(sentences, args.order)
    except ValueError as e:
        raise DataError(f"{args.corpus}: {first_line(e)}") from None
    write_text_atomic(args.out, arpa)
    counts = re.findall(r"^ngram (\d+)=(\d+)$", arpa, re.MULTILINE)
    print(f"wrote {args.out}: " + ", ".join(f"{c} {n}-grams" for n, c in counts))
    if args.lexicon:
        n = write_lexicon(args.lexicon, sorted({w for s in sentences for w in normalize_text(s).split()}))
        print(f"wrote {args.lexicon}: {n} words")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
