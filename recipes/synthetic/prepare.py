"""Prepare a synthetic English corpus spoken by eSpeak NG: offline, in seconds.

Usage:
    python recipes/synthetic/prepare.py                                 # 1500/100/100 into data/synthetic
    python recipes/synthetic/prepare.py --out-dir /tmp/syn --train 200 --dev 20 --test 20 --seed 1

Writes ``<out-dir>/wav/*.wav`` and ``<out-dir>/{train,dev,test}.jsonl``. Reruns skip the work when the
manifests already hold the requested counts; delete them to rebuild with another seed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asr.errors import run_main
from asr.manifest import read_manifest
from asr.synth import make_corpus


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, build the corpus, print each manifest with its size."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out-dir", type=Path, default=Path("data/synthetic"), help="corpus folder")
    parser.add_argument("--train", type=int, default=1500, help="training utterances")
    parser.add_argument("--dev", type=int, default=100, help="validation utterances")
    parser.add_argument("--test", type=int, default=100, help="test utterances")
    parser.add_argument("--seed", type=int, default=0, help="draws sentences, voices, rates, pitches, noise")
    parser.add_argument("--no-noise", dest="noise", action="store_false", help="leave the speech clean")
    args = parser.parse_args(argv)

    manifests = make_corpus(args.out_dir, args.train, args.dev, args.test, seed=args.seed, noise=args.noise)
    total = 0.0
    for split, path in manifests.items():
        utts = read_manifest(path)
        hours = sum(u.duration for u in utts) / 3600
        total += hours
        print(f"{split:>5}: {len(utts):5d} utterances, {hours:5.2f} h -> {path}")
    print(f"total: {total:.2f} h")


if __name__ == "__main__":
    sys.exit(run_main(main))
