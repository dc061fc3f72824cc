"""AN4 (CMU Census database): train, dev (held-out speakers), test and train_all manifests.

An existing copy must have CMU's layout: ``etc/an4_{train,test}.{transcription,fileids}`` and the audio under
``wav/an4_clstk/<speaker>/`` and ``wav/an4test_clstk/<speaker>/``; without one, ``an4_sphere.tar.gz`` is
downloaded, checked and extracted. Reruns skip the work when the manifests are newer than the transcriptions.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from asr.audio import AudioError, audio_duration
from asr.corpora import PrepareError, warn
from asr.download import download, extract_tar
from asr.manifest import write_manifest

AN4_URLS = (
    "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz",
    "https://dldata-public.s3.us-east-2.amazonaws.com/an4_sphere.tar.gz",
)
# Published for the S3 mirror in NVIDIA-NeMo/Speech, tutorials/cloud/nebius/train.py (AN4_SHA256).
AN4_SHA256 = "a0525579493735d32b60fb6fa5975dd0eaacde087b0a4eeb7f13b7ef33077b12"
ARCHIVE_NAME = "an4_sphere.tar.gz"
DEV_SPEAKERS = 4  # whole training speakers held out as dev (about 5% of AN4's 74)
SPLIT_FILES = {split: (f"an4_{split}.transcription", f"an4_{split}.fileids") for split in ("train", "test")}
MANIFESTS = ("train", "dev", "test", "train_all")

_LINE = re.compile(r"^(?P<text>.*?)\s*\((?P<id>[^()\s]+)\)\s*$")  # "<s> YES </s> (an251-fash-b)"
_TAG = re.compile(r"</?s>")


def prepare_an4(
    out_dir: Path,
    data_dir: Path | None = None,
    *,
    urls: Sequence[str] = AN4_URLS,
    sha256: str | None = AN4_SHA256,
) -> dict[str, Path]:
    """Write ``{train,dev,test,train_all}.jsonl`` into ``out_dir`` and return their paths by split name.

    ``data_dir`` is an existing AN4 tree; without it ``an4_sphere.tar.gz`` is downloaded from ``urls`` into
    ``out_dir``, checked against ``sha256`` and extracted there. Utterances whose audio is missing or
    unreadable are reported on stderr and left out.
    """
    out_dir = Path(out_dir)
    manifests = {name: out_dir / f"{name}.jsonl" for name in MANIFESTS}
    root = Path(data_dir) if data_dir is not None else out_dir / "an4"
    sources = [root / "etc" / name for files in SPLIT_FILES.values() for name in files]
    if _up_to_date(list(manifests.values()), sources):
        print(f"AN4 manifests in {out_dir} are up to date")
        return manifests
    if data_dir is None:
        archive = download(list(urls), out_dir / ARCHIVE_NAME, sha256=sha256)
        extract_tar(archive, out_dir)
    _check_tree(root, sources)

    skipped = 0
    entries, speakers = {}, {}
    for split in SPLIT_FILES:
        entries[split], speakers[split], dropped = _split_entries(root, split)
        skipped += dropped
    dev_speakers = _pick_dev_speakers(speakers["train"])
    splits = {
        "train": [e for e, s in zip(entries["train"], speakers["train"]) if s not in dev_speakers],
        "dev": [e for e, s in zip(entries["train"], speakers["train"]) if s in dev_speakers],
        "test": entries["test"],
        "train_all": entries["train"],
    }
    for name, path in manifests.items():
        write_manifest(path, splits[name])
        hours = sum(e["duration"] for e in splits[name]) / 3600
        print(f"{name:>9}: {len(splits[name]):5d} utterances, {hours:5.2f} h -> {path}")
    print(f"dev speakers: {', '.join(sorted(dev_speakers))}")
    if skipped:
        print(f"skipped {skipped} utterance(s); see the warnings above", file=sys.stderr)
    return manifests


def _up_to_date(outputs: list[Path], sources: list[Path]) -> bool:
    if not all(p.is_file() for p in outputs + sources):
        return False
    return min(p.stat().st_mtime for p in outputs) >= max(p.stat().st_mtime for p in sources)


def _check_tree(root: Path, sources: list[Path]) -> None:
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise PrepareError(
            f"not an AN4 tree: missing {', '.join(missing)}. --data-dir must point to an AN4 folder in CMU's "
            "layout: etc/an4_train.transcription, etc/an4_test.transcription, etc/an4_train.fileids, "
            "etc/an4_test.fileids and the audio under wav/an4_clstk/ and wav/an4test_clstk/"
        )


def _split_entries(root: Path, split: str) -> tuple[list[dict], list[str], int]:
    """Manifest entries of one split, the speaker of each, and how many utterances were left out."""
    transcription, fileids = (root / "etc" / name for name in SPLIT_FILES[split])
    texts, skipped = _read_transcription(transcription)
    entries, speakers = [], []
    for line in fileids.read_text(encoding="utf-8").splitlines():
        file_id = line.strip()
        if not file_id:
            continue
        utt = Path(file_id).name
        text = texts.pop(utt, None)
        if text is None:
            warn(f"{utt}: no transcription in {transcription}; skipped")
            skipped += 1
            continue
        audio = root / "wav" / f"{file_id}.sph"
        try:
            duration = audio_duration(audio)
        except AudioError as e:
            warn(f"{e}; skipped")
            skipped += 1
            continue
        entries.append({"audio_filepath": str(audio.resolve()), "duration": duration, "text": text})
        speakers.append(Path(file_id).parent.name)
    for utt in texts:
        warn(f"{utt}: transcribed in {transcription} but not listed in {fileids}; skipped")
    return entries, speakers, skipped + len(texts)


def _read_transcription(path: Path) -> tuple[dict[str, str], int]:
    """Utterance id -> text (``<s>``/``</s>`` removed, spaces collapsed), and the number of unusable lines."""
    texts: dict[str, str] = {}
    bad = 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        text = " ".join(_TAG.sub(" ", match["text"]).split()) if match else ""
        if not match:
            problem = "no '(utterance-id)' at the end of the line"
        elif not text:
            problem = "no text"
        elif match["id"] in texts:
            problem = f"{match['id']} appears twice"
        else:
            texts[match["id"]] = text
            continue
        warn(f"{path}:{number}: {problem}; skipped")
        bad += 1
    return texts, bad


def _pick_dev_speakers(speakers: list[str]) -> set[str]:
    """A deterministic, evenly spread choice of DEV_SPEAKERS speakers (fewer for a tiny corpus)."""
    ordered = sorted(set(speakers))
    count = min(DEV_SPEAKERS, len(ordered) // 2)
    return {ordered[(2 * i + 1) * len(ordered) // (2 * count)] for i in range(count)}
