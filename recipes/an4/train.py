"""AN4 end to end: download (or locate) the corpus, write manifests, train, score the test set.

Usage:
    python recipes/an4/train.py                                   # download CMU's an4_sphere.tar.gz
    python recipes/an4/train.py --data-dir /path/to/an4           # an existing copy (CMU layout)
    python recipes/an4/train.py --data-dir /path/to/an4 trainer.max_epochs=5 trainer.precision=32-true

Any ``key=value`` after the options overrides the config (see asr/config.py). Rerunning the same command
resumes an interrupted run from EXP_DIR/checkpoints/last.ckpt. Results go to EXP_DIR/results.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from prepare import PrepareError, prepare_an4

from asr.config import ConfigError
from asr.download import DownloadError, ExtractError
from asr.recipe import add_recipe_arguments, recipe_config, run_recipe

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, help="existing AN4 tree; without it the corpus is downloaded")
    p.add_argument("--out-dir", type=Path, default=Path("data/an4"), help="manifests (and download) go here")
    add_recipe_arguments(p, "exp/an4", HERE / "conf" / "an4.yaml")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        manifests = prepare_an4(args.out_dir, args.data_dir)
        run_recipe(recipe_config(args.config, manifests, args.exp_dir, args.overrides), args.lm_order)
    except (PrepareError, DownloadError, ExtractError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
