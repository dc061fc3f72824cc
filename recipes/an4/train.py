"""AN4 end to end: download (or locate) the corpus, write manifests, train, score the test set.

Usage:
    python recipes/an4/train.py                                   # download CMU's an4_sphere.tar.gz
    python recipes/an4/train.py --data-dir /path/to/an4           # an existing copy (CMU layout)
    python recipes/an4/train.py --data-dir /path/to/an4 trainer.max_epochs=5 trainer.precision=32-true
    python recipes/an4/train.py --lm-order 0                      # greedy only, no LM

Any ``key=value`` after the options overrides the config (see asr/config.py). Rerunning the same command
resumes an interrupted run from EXP_DIR/checkpoints/last.ckpt. The test set is scored greedily and with beam
search and an n-gram LM of the training transcripts (weights tuned on dev); results go to
EXP_DIR/results.json and EXP_DIR/RESULTS.md, per-utterance reports to EXP_DIR/reports/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asr.corpora.an4 import prepare_an4
from asr.errors import run_main
from asr.recipe import (
    add_lm_arguments,
    add_recipe_arguments,
    command_line,
    lm_source,
    recipe_config,
    run_recipe,
)

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, help="existing AN4 tree; without it the corpus is downloaded")
    p.add_argument("--out-dir", type=Path, default=Path("data/an4"), help="manifests (and download) go here")
    add_lm_arguments(p)
    add_recipe_arguments(p, "exp/an4", HERE / "conf" / "an4.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    lm = lm_source(args)
    manifests = prepare_an4(args.out_dir, args.data_dir)
    cfg = recipe_config(args.config, manifests["train"], manifests["dev"], args.exp_dir, args.overrides)
    run_recipe(cfg, {"test": manifests["test"]}, lm, command=command_line(__file__, argv))


if __name__ == "__main__":
    sys.exit(run_main(main))
