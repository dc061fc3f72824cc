"""Mini LibriSpeech (OpenSLR resource 31): LibriSpeech's own small subset, train-clean-5 (about 5 h) and
dev-clean-2, in LibriSpeech's layout; and the LibriSpeech LM that goes with it (resource 11's pruned 3-gram).

Download, checksums, resume, safe extraction and manifests are :mod:`asr.corpora.librispeech`'s with this
corpus's mirrors and digests. A tree without dev-clean-2 (``--data-dir``) gets a dev set of ``K`` training
speakers held out by a fixed rule (:func:`held_out_speakers`), which the results state.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asr.corpora import PrepareError, librispeech
from asr.corpora.librispeech import (
    LM_CHECKSUMS,
    LM_MIRRORS,
    lm_file,
    lower_arpa,
    prepare_librispeech,
    subset_folder,
)
from asr.manifest import read_manifest, write_manifest

TRAIN, DEV = "train-clean-5", "dev-clean-2"
MIRRORS = tuple(m.replace("/resources/12", "/resources/31") for m in librispeech.MIRRORS)
# OpenSLR's md5sum.txt for resource 31, as PaddlePaddle's DeepSpeech (data/mini_librispeech) records it.
CHECKSUMS: dict[str, dict[str, str]] = {
    f"{TRAIN}.tar.gz": {"md5": "5df7d4e78065366204ca6845bb08f490"},
    f"{DEV}.tar.gz": {"md5": "6d7ab67ac6a1d2c993d050e16d61080d"},
}
LM_NAME = "3-gram.pruned.1e-7.arpa.gz"  # 34 MB; Kaldi's mini_librispeech recipe decodes with it too


@dataclass
class Prepared:
    """The manifests a Mini LibriSpeech run trains and validates on, and how the dev set was chosen."""

    train: Path
    dev: Path
    details: dict[str, Any] = field(default_factory=dict)


def speaker_of(audio_filepath: str) -> str:
    """The speaker id of a LibriSpeech file name (``<speaker>-<chapter>-<utterance>.flac``)."""
    return Path(audio_filepath).name.split("-", 1)[0]


def held_out_speakers(speakers: Sequence[str], k: int) -> list[str]:
    """``k`` speakers spread evenly over the ids sorted as numbers: the i-th at position floor((i+0.5)n/k).

    The rule depends on the set of speakers alone, so every run on the same tree holds out the same ones.
    """
    ordered = sorted(set(speakers), key=lambda s: (len(s), s))
    if not 1 <= k < len(ordered):
        raise PrepareError(
            f"--dev-speakers {k}: choose 1 to {len(ordered) - 1} of the {len(ordered)} speakers"
        )
    return [ordered[math.floor((i + 0.5) * len(ordered) / k)] for i in range(k)]


def split_by_speaker(manifest: Path, out_dir: Path, k: int) -> Prepared:
    """Hold out ``k`` speakers of ``manifest`` as the dev set, written to
    ``out_dir/train-clean-5-dev<k>-{train,dev}.jsonl``."""
    utts = read_manifest(manifest)
    dev_speakers = held_out_speakers([speaker_of(u.audio_filepath) for u in utts], k)
    parts: dict[str, list[dict]] = {"train": [], "dev": []}
    for u in utts:
        part = "dev" if speaker_of(u.audio_filepath) in dev_speakers else "train"
        parts[part].append({"audio_filepath": u.audio_filepath, "duration": u.duration, "text": u.text})
    paths = {part: out_dir / f"{TRAIN}-dev{k}-{part}.jsonl" for part in parts}
    for part, entries in parts.items():
        write_manifest(paths[part], entries)
    hours = {part: round(sum(e["duration"] for e in entries) / 3600, 3) for part, entries in parts.items()}
    details = {
        "dev_set": f"{k} speakers of {TRAIN} held out (no {DEV} in the data)",
        "dev_speakers": dev_speakers,
        "dev_rule": "speaker ids sorted as numbers; the i-th held out is at position floor((i + 0.5) n / K)",
        "train_utterances": len(parts["train"]),
        "train_hours": hours["train"],
        "dev_utterances": len(parts["dev"]),
        "dev_hours": hours["dev"],
    }
    for part, count in (("train", len(parts["train"])), ("dev", len(parts["dev"]))):
        print(f"{part:>6}: {count:5d} utterances, {hours[part]:5.2f} h -> {paths[part]}")
    print(f"dev speakers held out of {TRAIN}: {', '.join(dev_speakers)}")
    return Prepared(paths["train"], paths["dev"], details)


def prepare_mini_librispeech(
    out_dir: Path,
    data_dir: Path | None = None,
    dev_speakers: int = 2,
    *,
    mirrors: Sequence[str] = MIRRORS,
    checksums: Mapping[str, Mapping[str, str]] = CHECKSUMS,
    jobs: int = 2,
) -> Prepared:
    """Manifests for training and validation.

    Without ``data_dir`` both subsets are downloaded into ``out_dir`` and dev-clean-2 is the dev set. With
    ``data_dir`` (a tree holding ``train-clean-5``, in ``LibriSpeech/`` or not) dev-clean-2 is used when it
    is there; otherwise ``dev_speakers`` speakers of train-clean-5 are held out (:func:`split_by_speaker`).
    """
    out_dir = Path(out_dir)
    has_dev = data_dir is None or _has_subset(Path(data_dir), DEV)
    subsets = (TRAIN, DEV) if has_dev else (TRAIN,)
    manifests = prepare_librispeech(
        out_dir, subsets, data_dir, mirrors=mirrors, checksums=checksums, jobs=jobs
    )
    if has_dev:
        return Prepared(manifests[TRAIN], manifests[DEV], {"dev_set": DEV})
    return split_by_speaker(manifests[TRAIN], out_dir, dev_speakers)


def _has_subset(root: Path, subset: str) -> bool:
    try:
        subset_folder(root, subset)
    except PrepareError:
        return False
    return True


def prepare_lm(
    out_dir: Path,
    lm_dir: Path | None = None,
    *,
    mirrors: Sequence[str] = LM_MIRRORS,
    checksums: Mapping[str, Mapping[str, str]] = LM_CHECKSUMS,
) -> Path:
    """``out_dir/lm/3-gram.pruned.1e-7.arpa``: the LibriSpeech pruned 3-gram, lower-cased, from ``lm_dir``
    or downloaded (:class:`~asr.download.DownloadError` when no mirror delivers it). Beam search takes its
    words from the LM's unigrams, spelled by the model's tokenizer."""
    lm = Path(out_dir) / "lm"
    arpa = lm / LM_NAME.removesuffix(".gz")
    if arpa.is_file():
        return arpa
    lm.mkdir(parents=True, exist_ok=True)
    return lower_arpa(lm_file(lm, LM_NAME, lm_dir, mirrors, checksums), arpa)


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data options of recipes/mini_librispeech's prepare.py and train.py."""
    p.add_argument(
        "--out-dir", type=Path, default=Path("data/mini_librispeech"), help="manifests and downloads"
    )
    p.add_argument("--data-dir", type=Path, help="an existing tree holding train-clean-5; skips the download")
    p.add_argument(
        "--dev-speakers",
        type=int,
        default=2,
        metavar="K",
        help=f"without {DEV} in --data-dir: hold out K speakers of {TRAIN} as the dev set (default 2)",
    )
    p.add_argument("--jobs", type=int, default=2, help="parallel downloads and manifest readers")
    p.add_argument(
        "--mirror",
        action="append",
        dest="mirrors",
        help=f"base URL of resource 31, tried in the order given (default: {', '.join(MIRRORS)})",
    )
    p.add_argument("--lm-dir", type=Path, help=f"a folder holding {LM_NAME} (skips its download)")
    p.add_argument("--lm-mirror", action="append", dest="lm_mirrors", help="base URL of resource 11")
