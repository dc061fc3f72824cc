"""Prepare AN4 (CMU Census database) manifests: train, dev (held-out speakers), test and train_all.

Usage:
    python recipes/an4/prepare.py --out-dir data/an4                          # download, verify, extract
    python recipes/an4/prepare.py --out-dir data/an4 --data-dir /path/to/an4  # use an existing copy

An existing copy must have CMU's layout (see asr/corpora/an4.py). Reruns skip the work when the manifests
are newer than the transcriptions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asr.corpora.an4 import prepare_an4
from asr.errors import run_main


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out-dir", type=Path, required=True, help="where the manifests (and download) go")
    parser.add_argument("--data-dir", type=Path, help="an existing AN4 tree (CMU layout); skips the download")
    args = parser.parse_args(argv)
    prepare_an4(args.out_dir, args.data_dir)


if __name__ == "__main__":
    sys.exit(run_main(main))
