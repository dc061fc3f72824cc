"""Prepare LibriSpeech (OpenSLR resource 12): download, verify, extract, write one manifest per subset.

Usage:
    python recipes/librispeech/prepare.py --out-dir data/librispeech                      # all 7 subsets
    python recipes/librispeech/prepare.py --out-dir data/librispeech --subsets train-clean-100 dev-clean
    python recipes/librispeech/prepare.py --out-dir data/librispeech --data-dir /data/LibriSpeech  # a copy
    python recipes/librispeech/prepare.py --out-dir data/librispeech --mirror https://openslr.elda.org/resources/12
    python recipes/librispeech/prepare.py --out-dir data/librispeech --lm            # and the official 4-gram

Archives are fetched in parallel, resumed, checked against their published digests and extracted safely;
manifests go to OUT_DIR/<subset>.jsonl, the LM to OUT_DIR/lm/ (see asr/corpora/librispeech.py). Every stage
is skipped when its output exists: rerun the same command after an interruption.
"""

from __future__ import annotations

import argparse
import sys

from asr.corpora.librispeech import (
    LM_MIRRORS,
    MIRRORS,
    SUBSETS,
    add_data_arguments,
    prepare_librispeech,
    prepare_lm,
)
from asr.errors import run_main


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--subsets", nargs="+", default=list(SUBSETS), choices=SUBSETS, metavar="SUBSET")
    p.add_argument("--lm", action="store_true", help="also fetch and convert the official 4-gram LM")
    args = p.parse_args(argv)
    prepare_librispeech(
        args.out_dir, args.subsets, args.data_dir, mirrors=args.mirrors or MIRRORS, jobs=args.jobs
    )
    if args.lm or args.lm_dir:
        prepare_lm(args.out_dir, args.lm_dir, mirrors=args.lm_mirrors or LM_MIRRORS)


if __name__ == "__main__":
    sys.exit(run_main(main))
