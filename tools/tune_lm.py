"""Grid search of beam search's LM weight and word score on a dev manifest.

Usage:
    python tools/tune_lm.py dev.jsonl --model exp/an4/model.pt --lm lm.arpa [--lexicon lexicon.txt]
        [--lexicon-free] [--lm-weights=0,0.5,1,2,3] [--word-scores=-1,0,1,2] [--beam-size 50]
        [--beam-size-token N]
        [--processes 2] [--device cpu]

The model runs once over the manifest; its log-probabilities are then beam-decoded with every
(lm_weight, word_score) pair, spread over --processes worker processes (asr.tuning, which the recipes use
too; its grid is the default). Prints the corpus WER/CER of greedy decoding and of each pair, then the pair
chosen: the one off the grid's edges whose 3 x 3 neighbourhood has the lowest mean WER (asr.tuning.choose).
Unreadable audio files are reported and left out (exit 1 at the end).
A list starting with a negative value needs "=": --word-scores=-1,0,1.
"""

from __future__ import annotations

import argparse
import sys

from asr.cli import add_beam_arguments, beam_config
from asr.decoding import DecodePool
from asr.errors import EXIT_AUDIO, run_main
from asr.inference import Transcriber
from asr.metrics import ErrorCounts
from asr.tuning import LM_WEIGHTS, WORD_SCORES, tune_lm


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None


def _line(name: str, c: ErrorCounts) -> str:
    return f"{name}  WER {100 * c.wer:6.2f}% ({c.word_errors}/{c.words})  CER {100 * c.cer:6.2f}%"


def parser() -> argparse.ArgumentParser:
    """The command line; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="dev JSONL manifest")
    p.add_argument("--model", required=True, help="model file (exported or a training checkpoint)")
    add_beam_arguments(p, lm_required=True)
    p.add_argument("--lm-weights", type=_floats, default=list(LM_WEIGHTS), help="comma-separated")
    p.add_argument("--word-scores", type=_floats, default=list(WORD_SCORES), help="comma-separated")
    p.add_argument("--processes", type=int, default=1, help="decoding worker processes (default 1)")
    p.add_argument("--device", default="cpu", help="torch device for the model (default cpu)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    base = beam_config(args, kind="beam")
    transcriber = Transcriber.load(args.model, args.device)
    emitted = transcriber.emit(args.manifest)
    for error in emitted.skipped:
        print(f"skipped: {error}", file=sys.stderr)
    print(_line("greedy                            ", transcriber.score(emitted)))
    with DecodePool(transcriber.tokenizer, args.processes) as pool:
        tuned = tune_lm(emitted, base, pool, args.lm_weights, args.word_scores)
    for point in tuned.grid:
        print(_line(f"lm_weight {point.lm_weight:6.2f}  word_score {point.word_score:6.2f}", point.counts))
    best = tuned.best
    print(_line(f"best: --lm-weight {best.lm_weight:g} --word-score {best.word_score:g}", best.counts))
    return EXIT_AUDIO if emitted.skipped else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
