"""Does ``torch.compile`` pay for the encoder's convolutional front end? Eager against compiled, same process.

Usage:
    python benchmarks/compile_speed.py [--config recipes/an4/conf/an4.yaml] [--device cpu] [--bf16]

Times the encoder's forward, backward and fused AdamW step on random log-mel batches of AN4-like shapes
(60 s batches: 18-30 utterances of 190-330 frames), with the front end (two stride-2 convolutions, GELU,
linear) eager and then compiled by inductor with dynamic shapes. The RNN layers stay eager: TorchDynamo
does not trace ``nn.LSTM``. Prints the one-off compile time and the median step of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from asr.config import load_config
from asr.model import Encoder
from asr.text import CharTokenizer

SHAPES = [(22, 260), (18, 330), (30, 190), (22, 270), (25, 240)]  # (utterances, frames)


def step_times(encoder: Encoder, device: torch.device, bf16: bool, passes: int) -> tuple[float, float]:
    """(seconds of the first pass over SHAPES, compilation included; median step of the later passes)."""
    opt = torch.optim.AdamW(encoder.parameters(), fused=True)
    first, steps = 0.0, []
    for i in range(passes):
        for batch, frames in SHAPES:
            feats = torch.randn(batch, frames, 80, device=device)
            lens = torch.full((batch,), frames, device=device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                log_probs, _ = encoder(feats, lens)
            log_probs.float().sum().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if i == 0:
                first += elapsed
            else:
                steps.append(elapsed)
    return first, statistics.median(steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="recipes/an4/conf/an4.yaml")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast, as the AN4 recipe trains")
    p.add_argument("--passes", type=int, default=4, help="passes over the shapes; the first is not timed")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    encoder = Encoder(cfg.model, cfg.features.n_mels, CharTokenizer.english().vocab_size).to(device).train()
    first, eager = step_times(encoder, device, args.bf16, args.passes)
    print(f"eager:                first pass {first:6.1f} s, median step {1000 * eager:7.1f} ms", flush=True)
    encoder.subsampling = torch.compile(encoder.subsampling, dynamic=True)
    try:
        first, compiled = step_times(encoder, device, args.bf16, args.passes)
    except Exception as e:  # an inductor failure is a result here: say which, in one line
        print(f"compiled front end:   failed, {type(e).__name__}: {str(e).splitlines()[0]}")
        return
    print(f"compiled front end:   first pass {first:6.1f} s, median step {1000 * compiled:7.1f} ms")
    print(f"compiled / eager step time: {compiled / eager:.2f}")


if __name__ == "__main__":
    main()
