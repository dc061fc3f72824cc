"""LibriSpeech end to end: download (or locate) the corpus and the official 4-gram LM, write manifests, train,
score dev-clean, dev-other, test-clean and test-other greedily and with beam search + the 4-gram LM.

Usage:
    python recipes/librispeech/train.py --preset 100h                       # train-clean-100, one GPU
    python recipes/librispeech/train.py --preset 960h trainer.devices=8     # 960 h, 8 GPUs (Lightning DDP)
    python recipes/librispeech/train.py --preset 960h_gru --data-dir /data/LibriSpeech --no-lm
    python recipes/librispeech/train.py --preset 100h model.hidden_size=640 trainer.max_epochs=60

``--preset`` names a file in recipes/librispeech/conf/ (100h, 960h, 960h_gru); any ``key=value`` after the
options overrides it (see asr/config.py). Rerunning the same command skips finished preparation stages and
resumes an interrupted run from EXP_DIR/checkpoints/last.ckpt, mid-epoch included. Results go to
EXP_DIR/RESULTS.md and EXP_DIR/results.json. For several nodes, run prepare.py once first (see README.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asr.corpora.librispeech import (
    LM_MIRRORS,
    MIRRORS,
    TRAIN_SUBSETS,
    add_data_arguments,
    combine,
    prepare_librispeech,
    prepare_lm,
)
from asr.errors import run_main
from asr.recipe import LMSource, add_recipe_arguments, command_line, recipe_config, run_recipe

HERE = Path(__file__).resolve().parent
PRESETS = sorted(p.stem for p in (HERE / "conf").glob("*.yaml"))
EVAL_SETS = ("dev-clean", "dev-other", "test-clean", "test-other")


def train_subsets(preset: str) -> tuple[str, ...]:
    """The training subsets a preset is meant for: its name starts with 100h or 960h."""
    return TRAIN_SUBSETS[:1] if preset.startswith("100h") else TRAIN_SUBSETS


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--preset",
        default="100h",
        choices=PRESETS,
        help="model and training preset (conf/); EXP_DIR defaults to exp/librispeech-PRESET",
    )
    add_data_arguments(p)
    p.add_argument("--no-lm", action="store_true", help="greedy decoding only; skips the 4-gram LM download")
    add_recipe_arguments(p, None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    subsets = train_subsets(args.preset)
    manifests = prepare_librispeech(
        args.out_dir, subsets + EVAL_SETS, args.data_dir, mirrors=args.mirrors or MIRRORS, jobs=args.jobs
    )
    name = "train-960" if len(subsets) > 1 else subsets[0]
    train_manifest = combine([manifests[s] for s in subsets], args.out_dir / f"{name}.jsonl")
    lm = LMSource()
    if not args.no_lm:
        arpa, lexicon = prepare_lm(args.out_dir, args.lm_dir, mirrors=args.lm_mirrors or LM_MIRRORS)
        lm = LMSource(arpa=str(arpa), lexicon=str(lexicon))
    cfg = recipe_config(
        HERE / "conf" / f"{args.preset}.yaml",
        train_manifest,
        manifests["dev-clean"],
        args.exp_dir or Path(f"exp/librispeech-{args.preset}"),
        args.overrides,
        [f"data.cmvn_stats={args.out_dir / f'cmvn-{name}.json'}"],
    )
    run_recipe(cfg, {s: manifests[s] for s in EVAL_SETS}, lm, command=command_line(__file__, argv))


if __name__ == "__main__":
    sys.exit(run_main(main))
