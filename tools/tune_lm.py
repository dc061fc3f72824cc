"""Grid search of beam search's LM weight and word score on a dev manifest.

Usage:
    python tools/tune_lm.py dev.jsonl --model exp/an4/model.pt --lm lm.arpa [--lexicon lexicon.txt]
        [--lexicon-free] [--lm-weights=0,0.5,1,2,3] [--word-scores=-1,0,1,2] [--beam-size 50]
        [--processes 2] [--device cpu]

The model runs once over the manifest; its log-probabilities are then beam-decoded with every
(lm_weight, word_score) pair, spread over --processes worker processes. Prints the corpus WER/CER of greedy
decoding and of each pair, then the best pair (lowest WER, then lowest CER). Exits 1 if an audio file cannot
be read or a file is unusable. A list starting with a negative value needs "=": --word-scores=-1,0,1.
"""

from __future__ import annotations

import argparse
import sys

from asr.audio import AudioError, load_audio
from asr.checkpoint import CheckpointError, load_model
from asr.decode import DecoderConfig, DecoderError, decode_batch
from asr.lm import best_weights, tune_weights
from asr.manifest import ManifestError, read_manifest
from asr.metrics import ErrorCounts, score


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def _line(name: str, c: ErrorCounts) -> str:
    return f"{name}  WER {100 * c.wer:6.2f}% ({c.word_errors}/{c.words})  CER {100 * c.cer:6.2f}%"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="dev JSONL manifest")
    p.add_argument("--model", required=True, help="checkpoint (training or exported)")
    p.add_argument("--lm", required=True, help="word n-gram LM (ARPA, or KenLM binary with --lexicon)")
    p.add_argument("--lexicon", help="lexicon file (default: the LM's unigrams)")
    p.add_argument("--lexicon-free", action="store_true", help="any character string is a word")
    p.add_argument(
        "--lm-weights", type=_floats, default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0], help="comma-separated"
    )
    p.add_argument("--word-scores", type=_floats, default=[-1.0, 0.0, 1.0, 2.0], help="comma-separated")
    p.add_argument("--beam-size", type=int, default=50)
    p.add_argument("--processes", type=int, default=1, help="decoding worker processes (default 1)")
    p.add_argument("--device", default="cpu", help="torch device for the model (default cpu)")
    args = p.parse_args(argv)
    try:
        model = load_model(args.model, args.device)
        utts = read_manifest(args.manifest)
        waves = [load_audio(u.audio_filepath) for u in utts]
        base = DecoderConfig(
            kind="beam",
            beam_size=args.beam_size,
            lm=args.lm,
            lexicon=args.lexicon,
            lexicon_free=args.lexicon_free,
        )
        emissions = model.emissions(waves)
        references = [u.text for u in utts]
        greedy = [h[0].text for h in decode_batch(model.tokenizer, DecoderConfig(), emissions)]
        print(_line("greedy                            ", score(references, greedy)[0]))
        results = tune_weights(
            model.tokenizer, emissions, references, base, args.lm_weights, args.word_scores, args.processes
        )
    except (CheckpointError, ManifestError, AudioError, DecoderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for weight, word_score, counts in results:
        print(_line(f"lm_weight {weight:6.2f}  word_score {word_score:6.2f}", counts))
    weight, word_score, counts = best_weights(results)
    print(_line(f"best: --lm-weight {weight:g} --word-score {word_score:g}", counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
