"""Beam search speed: this project's decoder (flashlight via torchaudio) against pyctcdecode, same emissions.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/decode_speed.py [--utterances 200] [--seconds 10] [--beam 50]

Both decoders get the same synthetic emissions: ``--seconds`` of 40 ms frames that spell a sentence of the
LM's training text (1-3 frames a character, blanks between), its tokens given probability 0.5-0.95 and the
rest spread at random. The LM is a word n-gram of ``--order`` (modified Kneser-Ney, :mod:`asr.lm`) over
``--sentences`` random sentences of a Zipf-distributed vocabulary. Each decoder runs in this one process on
one thread, so utterances per second is per core. Reported: no LM, and with the LM (ours: lexicon from the
LM's words, and lexicon-free; pyctcdecode: its KenLM scorer, which needs the ``kenlm`` Python module).

pyctcdecode is not a dependency of this project: ``pip install pyctcdecode kenlm`` to compare.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from asr.decoding import DecodePool, DecoderConfig, Emission
from asr.lm import build_arpa
from asr.metrics import score
from asr.text import BLANK_ID, CharTokenizer

FRAME_S = 0.04
TARGET = 20.0  # utterances per second per core, on 10 s emissions (issue 4)


def sentences(rng: np.random.Generator, count: int, vocab_size: int = 2000) -> list[str]:
    """Random sentences of 5-25 words from a Zipf-distributed vocabulary of made-up words."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = sorted({"".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(vocab_size)})
    p = 1 / np.arange(1, len(vocab) + 1)
    return [" ".join(rng.choice(vocab, rng.integers(5, 26), p=p / p.sum())) for _ in range(count)]


def emission(rng: np.random.Generator, text: str, tok: CharTokenizer, frames: int) -> tuple[np.ndarray, str]:
    """(frames, V) log-probabilities spelling as much of ``text`` as fits, then blanks; and what they spell
    (the reference for WER: the path's greedy reading)."""
    path: list[int] = []
    for i, c in enumerate(tok.encode(text)):
        if i and path and path[-1] == c:
            path.append(BLANK_ID)
        path += [c] * int(rng.integers(1, 4)) + [BLANK_ID] * int(rng.integers(0, 2))
    path = (path + [BLANK_ID] * frames)[:frames]
    probs = rng.dirichlet(np.full(tok.vocab_size, 0.3), size=frames)
    top = rng.uniform(0.5, 0.95, size=frames)
    probs *= ((1 - top) / (1 - probs[np.arange(frames), path]))[:, None]
    probs[np.arange(frames), path] = top
    spelled = [c for i, c in enumerate(path) if c != BLANK_ID and (i == 0 or path[i - 1] != c)]
    return np.log(np.maximum(probs, 1e-12)).astype(np.float32), tok.decode(spelled)


def rate(decode: Callable[[], list[str]], references: list[str]) -> tuple[float, float]:
    """Utterances per second of ``decode()`` (after a warm-up run) and the WER of its transcripts."""
    decode()  # warm-up (builds decoders, loads the LM)
    start = time.perf_counter()
    hypotheses = decode()
    seconds = time.perf_counter() - start
    return len(references) / seconds, score(references, hypotheses)[0].wer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utterances", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0, help="emission length (default 10 s)")
    p.add_argument("--beam", type=int, default=50)
    p.add_argument("--order", type=int, default=4)
    p.add_argument("--sentences", type=int, default=20000, help="LM training sentences (default 20000)")
    p.add_argument("--lm-weight", type=float, default=0.5, help="times the LM's log10 probability")
    p.add_argument("--word-score", type=float, default=1.0)
    args = p.parse_args()
    torch.set_num_threads(1)

    rng = np.random.default_rng(0)
    tok = CharTokenizer.english()
    text = sentences(rng, args.sentences)
    frames = round(args.seconds / FRAME_S)
    made = [emission(rng, text[rng.integers(len(text))], tok, frames) for _ in range(args.utterances)]
    emissions: list[Emission] = [(e, frames) for e, _ in made]
    references = [r for _, r in made]
    tmp = Path(tempfile.mkdtemp())
    lm = tmp / "lm.arpa"
    lm.write_text(build_arpa(text, args.order))
    print(
        f"{args.utterances} utterances of {args.seconds:g} s ({frames} frames, {tok.vocab_size} tokens); "
        f"beam {args.beam}; {args.order}-gram LM over {args.sentences} sentences; 1 thread"
    )

    rows: list[tuple[str, tuple[float, float]]] = []
    beam = DecoderConfig(
        kind="beam", beam_size=args.beam, lm_weight=args.lm_weight, word_score=args.word_score
    )
    with DecodePool(tok) as pool:
        for name, config in (
            ("ours, no LM", beam),
            ("ours, LM + lexicon", replace(beam, lm=str(lm))),
            ("ours, LM lexicon-free", replace(beam, lm=str(lm), lexicon_free=True)),
        ):
            rows.append(
                (name, rate(lambda c=config: [h[0].text for h in pool.decode(c, emissions)], references))
            )

    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError:
        print("pyctcdecode is not installed (pip install pyctcdecode kenlm): no comparison")
    else:
        labels = ["", " ", *tok.symbols[2:]]  # pyctcdecode's blank is "", its word separator " "
        plain = build_ctcdecoder(labels)
        rows.append(
            (
                "pyctcdecode, no LM",
                rate(lambda: [plain.decode(e, beam_width=args.beam) for e, _ in emissions], references),
            )
        )
        try:
            import kenlm  # noqa: F401  (pyctcdecode's LM scorer needs it)
        except ImportError:
            print("the kenlm Python module is not installed: pyctcdecode runs without an LM only")
        else:
            # pyctcdecode's alpha weights the LM's natural log, ours its log10; beta is the word score
            with_lm = build_ctcdecoder(
                labels, kenlm_model_path=str(lm), alpha=args.lm_weight / np.log(10), beta=args.word_score
            )
            rows.append(
                (
                    "pyctcdecode, LM",
                    rate(
                        lambda: [with_lm.decode(e, beam_width=args.beam) for e, _ in emissions],
                        references,
                    ),
                )
            )
    for name, (value, wer) in rows:
        print(f"{name:<24} {value:8.1f} utt/s/core  ({args.seconds * value:7.0f}x real time)  WER {wer:6.2%}")
    print(f"target: >= {TARGET:g} utt/s/core on 10 s emissions")


if __name__ == "__main__":
    main()
