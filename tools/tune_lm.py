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
import dataclasses
import sys
from collections.abc import Sequence

import numpy as np
import torch

from asr.audio import AudioError, load_audio
from asr.checkpoint import CheckpointError, load_model
from asr.decode import DecodePool, DecoderConfig, DecoderError, Emission, decode_batch
from asr.manifest import ManifestError, read_manifest
from asr.metrics import ErrorCounts, score
from asr.recognizer import Recognizer
from asr.text import CharTokenizer


@torch.inference_mode()
def compute_emissions(model: Recognizer, waves: Sequence[np.ndarray], batch_size: int = 16) -> list[Emission]:
    """Each waveform's (T, V) float32 log-probabilities and T, batched by similar length."""
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    out: list[Emission] = [(np.empty(0, np.float32), 0)] * len(waves)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        log_probs, lens = model(*model.pad([waves[i] for i in idx]))  # (B, T, V), (B,)
        log_probs, lens = log_probs.float().cpu().numpy(), lens.tolist()
        for row, i in enumerate(idx):
            out[i] = (np.ascontiguousarray(log_probs[row, : lens[row]]), lens[row])
    return out


def grid_search(
    tokenizer: CharTokenizer,
    emissions: Sequence[Emission],
    references: Sequence[str],
    base: DecoderConfig,
    lm_weights: Sequence[float],
    word_scores: Sequence[float],
    processes: int = 1,
) -> list[tuple[float, float, ErrorCounts]]:
    """Corpus error counts of ``base`` with each (lm_weight, word_score), in grid order."""
    results = []
    with DecodePool(tokenizer, processes) as pool:
        for weight in lm_weights:
            for word_score in word_scores:
                config = dataclasses.replace(base, lm_weight=weight, word_score=word_score)
                hyps = [h[0].text if h else "" for h in pool.decode(config, emissions)]
                results.append((weight, word_score, score(references, hyps)[0]))
    return results


def best(results: Sequence[tuple[float, float, ErrorCounts]]) -> tuple[float, float, ErrorCounts]:
    """The pair with the lowest WER, then the lowest CER."""
    return min(results, key=lambda r: (r[2].wer, r[2].cer))


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
        emissions = compute_emissions(model, waves)
        references = [u.text for u in utts]
        greedy = [h[0].text for h in decode_batch(model.tokenizer, DecoderConfig(), emissions)]
        print(_line("greedy                            ", score(references, greedy)[0]))
        results = grid_search(
            model.tokenizer, emissions, references, base, args.lm_weights, args.word_scores, args.processes
        )
    except (CheckpointError, ManifestError, AudioError, DecoderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for weight, word_score, counts in results:
        print(_line(f"lm_weight {weight:6.2f}  word_score {word_score:6.2f}", counts))
    weight, word_score, counts = best(results)
    print(_line(f"best: --lm-weight {weight:g} --word-score {word_score:g}", counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
