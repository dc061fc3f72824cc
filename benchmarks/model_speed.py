"""Training-step speed of model variants on the same batches, side by side in one process.

Usage:
    python benchmarks/model_speed.py --config recipes/mini_librispeech/conf/mini.yaml \
        --manifest data/mls_prep/train-clean-5-dev2-train.jsonl \
        --variant "" --variant model.hidden_size=320 --variant model.num_layers=5 \
        --variant "model.rnn_type=gru model.hidden_size=320"

Each ``--variant`` is a space-separated list of ``key=value`` overrides of ``--config`` ("" for the config as
it is). The step is ``CTCModule.fit_step`` (features, SpecAugment, encoder, CTC, backward, clipping, fused
AdamW; no loader) in the precision ``trainer.precision=auto`` gives here, on ``--batches`` length-sorted
batches of ``--batch-seconds`` padded audio held in memory (``benchmarks/peer_deepspeech.py``'s). One pass
warms up, then ``--steps`` timed steps cycle through them. Prints each variant's parameters, unpadded
audio-seconds per second and its ratio to the first variant's. Run it with nothing else busy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

# benchmarks/, this script's folder
from peer_deepspeech import cycled_rate, make_batches, our_batch, ours_step

from asr.audio import SAMPLE_RATE
from asr.model import count_parameters
from asr.train import resolve_precision


def rate(config: str, overrides: list[str], raw: list, steps: int, bf16: bool) -> tuple[int, float]:
    """(parameters, audio-s/s) of one variant's training step on ``raw`` batches."""
    torch.manual_seed(0)
    step, module, tokenizer = ours_step(config, bf16, overrides)
    batches = [our_batch(b, tokenizer) for b in raw]
    audio = [int(b.wave_lens.sum()) / SAMPLE_RATE for b in batches]
    return count_parameters(module), cycled_rate(step, batches, audio, steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="recipes/mini_librispeech/conf/mini.yaml")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--variant", action="append", default=[], help="overrides, space-separated")
    p.add_argument("--batch-seconds", type=float, default=240.0)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--steps", type=int, default=12)
    args = p.parse_args()
    variants = args.variant or [""]
    bf16 = resolve_precision("auto", "cpu") == "bf16-mixed"
    raw, _ = make_batches(args.manifest, args.batches, args.batch_seconds)
    print(f"{args.batches} batches x {args.batch_seconds:g} s, {args.steps} timed steps, bf16 {bf16}")
    print(f"{'variant':<44}{'parameters':>12}{'audio-s/s':>11}{'/ first':>9}")
    first = None
    for variant in variants:
        params, r = rate(args.config, variant.split(), raw, args.steps, bf16)
        first = first or r
        print(f"{variant or '(the config)':<44}{params / 1e6:>11.2f}M{r:>11.1f}{r / first:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
