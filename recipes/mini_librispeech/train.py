"""Mini LibriSpeech end to end: download (or locate) the corpus and the LibriSpeech pruned 3-gram LM, write
manifests, train, score the dev set greedily and with beam search + the LM.

Usage:
    python recipes/mini_librispeech/train.py                  # downloads train-clean-5 and dev-clean-2
    python recipes/mini_librispeech/train.py --data-dir data/mini_librispeech --dev-speakers 2
    python recipes/mini_librispeech/train.py --no-lm trainer.max_time=00:00:30:00

A tree without dev-clean-2 (``--data-dir``) holds out ``--dev-speakers K`` speakers of train-clean-5 as the
dev set, by a fixed rule stated in the results. When the LibriSpeech LM cannot be fetched (no network), beam
search uses a ``--lm-order`` n-gram of the training transcripts instead, and results.json says so. Any
``key=value`` after the options overrides conf/mini.yaml (see asr/config.py). Rerunning the same command
resumes an interrupted run. Results go to EXP_DIR/results.json and EXP_DIR/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asr.corpora.librispeech import LM_MIRRORS
from asr.corpora.mini_librispeech import (
    MIRRORS,
    add_data_arguments,
    prepare_lm,
    prepare_mini_librispeech,
)
from asr.download import DownloadError
from asr.errors import first_line, run_main
from asr.recipe import LMSource, add_recipe_arguments, command_line, recipe_config, run_recipe

HERE = Path(__file__).resolve().parent
log = logging.getLogger("mini_librispeech")


def language_model(args: argparse.Namespace) -> LMSource:
    """The LibriSpeech pruned 3-gram, or when it cannot be downloaded an n-gram of the training text."""
    if args.no_lm:
        return LMSource()
    try:
        arpa = prepare_lm(args.out_dir, args.lm_dir, mirrors=args.lm_mirrors or LM_MIRRORS)
    except DownloadError as e:
        if not args.lm_order:
            raise
        note = f"the LibriSpeech LM could not be fetched ({first_line(e)})"
        log.warning("%s; beam search uses a %d-gram of the training transcripts", note, args.lm_order)
        return LMSource(order=args.lm_order, note=note)
    return LMSource(arpa=str(arpa))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(p)
    lm = p.add_mutually_exclusive_group()
    lm.add_argument("--no-lm", action="store_true", help="greedy decoding only")
    lm.add_argument(
        "--lm-order",
        type=int,
        default=3,
        help="the order of the fallback LM built from the training transcripts when the LibriSpeech LM "
        "cannot be fetched (default 3; 0: no fallback, a failed download is an error)",
    )
    add_recipe_arguments(p, "exp/mini_librispeech", HERE / "conf" / "mini.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data = prepare_mini_librispeech(
        args.out_dir, args.data_dir, args.dev_speakers, mirrors=args.mirrors or MIRRORS, jobs=args.jobs
    )
    lm = language_model(args)
    cfg = recipe_config(
        args.config,
        data.train,
        data.dev,
        args.exp_dir,
        args.overrides,
        [f"data.cmvn_stats={args.out_dir / f'cmvn-{data.train.stem}.json'}"],
    )
    run_recipe(cfg, {"dev": data.dev}, lm, command=command_line(__file__, argv), details=data.details)


if __name__ == "__main__":
    sys.exit(run_main(main))
