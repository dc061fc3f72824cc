"""Prepare Mini LibriSpeech (OpenSLR resource 31): download, verify, extract, write manifests.

Usage:
    python recipes/mini_librispeech/prepare.py                                  # download both subsets
    python recipes/mini_librispeech/prepare.py --data-dir /data/mini_librispeech --dev-speakers 2
    python recipes/mini_librispeech/prepare.py --lm                             # and the pruned 3-gram LM

Archives are fetched (resumed after a cut connection), checked against OpenSLR's MD5 digests and extracted
safely into OUT_DIR. Without dev-clean-2 in ``--data-dir``, ``--dev-speakers K`` speakers of train-clean-5
are held out as the dev set (asr/corpora/mini_librispeech.py says which). Every stage is skipped when its
output exists: rerun the same command after an interruption.
"""

from __future__ import annotations

import argparse
import sys

from asr.corpora.librispeech import LM_MIRRORS
from asr.corpora.mini_librispeech import MIRRORS, add_data_arguments, prepare_lm, prepare_mini_librispeech
from asr.errors import run_main


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    p.add_argument("--lm", action="store_true", help="also fetch the LibriSpeech pruned 3-gram LM")
    args = p.parse_args(argv)
    prepare_mini_librispeech(
        args.out_dir, args.data_dir, args.dev_speakers, mirrors=args.mirrors or MIRRORS, jobs=args.jobs
    )
    if args.lm or args.lm_dir:
        prepare_lm(args.out_dir, args.lm_dir, mirrors=args.lm_mirrors or LM_MIRRORS)


if __name__ == "__main__":
    sys.exit(run_main(main))
