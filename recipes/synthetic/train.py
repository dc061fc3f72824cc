"""The offline demo: make an English speech corpus with eSpeak NG, train the small model, report test WER.

Usage:
    python recipes/synthetic/train.py                        # about 8 minutes on a 2-core CPU
    python recipes/synthetic/train.py --train 200 --dev 20 --test 20 trainer.max_epochs=2   # smoke run

Needs no network and no data, only the ``demo`` extra (pip install -e '.[demo]'): the corpus is synthesised
(several voices, rates, pitches, a little noise; test sentences unseen in training). Any ``key=value`` after
the options overrides the config. The test set is scored greedily and with beam search and an n-gram LM of
the training transcripts; results go to EXP_DIR/results.json and EXP_DIR/RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from asr.errors import run_main
from asr.recipe import (
    add_lm_arguments,
    add_recipe_arguments,
    command_line,
    lm_source,
    recipe_config,
    run_recipe,
)
from asr.synth import make_corpus

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out-dir", type=Path, default=Path("data/synthetic"), help="corpus folder")
    p.add_argument("--train", type=int, default=1500, help="training utterances")
    p.add_argument("--dev", type=int, default=100, help="validation utterances")
    p.add_argument("--test", type=int, default=100, help="test utterances (sentences unseen in training)")
    p.add_argument("--seed", type=int, default=0)
    add_lm_arguments(p)
    add_recipe_arguments(p, "exp/synthetic", HERE / "conf" / "demo.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    lm = lm_source(args)
    manifests = make_corpus(args.out_dir, args.train, args.dev, args.test, seed=args.seed)
    cfg = recipe_config(args.config, manifests["train"], manifests["dev"], args.exp_dir, args.overrides)
    run_recipe(cfg, {"test": manifests["test"]}, lm, command=command_line(__file__, argv))


if __name__ == "__main__":
    sys.exit(run_main(main))
