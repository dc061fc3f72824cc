"""Data preparation for each corpus a recipe trains on: download or locate it, write JSONL manifests.

One module per corpus (:mod:`asr.corpora.an4`, :mod:`asr.corpora.librispeech`; the offline demo's corpus is
synthesised by :mod:`asr.synth`). ``recipes/<corpus>/prepare.py`` and ``train.py`` are thin entry points on
them. Preparation is rerunnable: a stage whose output exists is skipped.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from asr.errors import DataError


class PrepareError(DataError):
    """A corpus tree that cannot be used; the message says what the folder must contain."""


def warn(message: str) -> None:
    """A warning on stderr that leaves progress bars intact."""
    tqdm.write(f"warning: {message}", file=sys.stderr)
