"""LibriSpeech (OpenSLR resource 12) and its official LM (resource 11): download, verify, extract, and
write one manifest per subset.

Archives are fetched in parallel from the first mirror that delivers them, resumed after a cut connection,
checked against their published SHA-256 and MD5 digests and extracted safely into OUT_DIR/LibriSpeech.
Manifests (OUT_DIR/<subset>.jsonl) are written in parallel with durations read from the FLAC headers. The
official LM (4-gram.arpa.gz and librispeech-lexicon.txt) becomes OUT_DIR/lm/4-gram.arpa (lower-cased, like
our transcripts) and OUT_DIR/lm/lexicon.txt (its words spelled in characters). Every stage is skipped when
its output exists.
"""

from __future__ import annotations

import argparse
import gzip
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from asr.audio import AudioError, audio_duration
from asr.corpora import PrepareError, warn
from asr.decoding.lexicon import write_lexicon
from asr.download import download, extract_tar
from asr.manifest import write_manifest

SUBSETS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
TRAIN_SUBSETS = SUBSETS[:3]
MIRRORS = (
    "https://www.openslr.org/resources/12",
    "https://us.openslr.org/resources/12",
    "https://openslr.elda.org/resources/12",
    "https://openslr.magicdatatech.com/resources/12",
)
LM_MIRRORS = tuple(m.replace("/12", "/11") for m in MIRRORS)
# OpenSLR publishes MD5 only (https://www.openslr.org/resources/12/md5sum.txt); the SHA-256 digests are
# torchaudio's (pytorch/audio, torchaudio/datasets/librispeech.py, _CHECKSUMS). Both are checked.
CHECKSUMS: dict[str, dict[str, str]] = {
    "train-clean-100.tar.gz": {
        "sha256": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
        "md5": "2a93770f6d5c6c964bc36631d331a522",
    },
    "train-clean-360.tar.gz": {
        "sha256": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
        "md5": "c0e676e450a7ff2f54aeade5171606fa",
    },
    "train-other-500.tar.gz": {
        "sha256": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
        "md5": "d1a0fd59409feb2c614ce4d30c387708",
    },
    "dev-clean.tar.gz": {
        "sha256": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
        "md5": "42e2234ba48799c1f50f24a7926300a1",
    },
    "dev-other.tar.gz": {
        "sha256": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
        "md5": "c8d0bcc9cca99d4f8b62fcc847357931",
    },
    "test-clean.tar.gz": {
        "sha256": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
        "md5": "32fa31d27d2e1cad72775fee3f4849a9",
    },
    "test-other.tar.gz": {
        "sha256": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
        "md5": "fb5a50374b501bb3bac4815ee91d3135",
    },
}
# Resource 11 has no checksum file on OpenSLR; these MD5s are the ones recorded by sdrobert's
# pytorch-database-prep (librispeech.py, FILE2MD5), the only published values we know of; the pruned
# 3-gram's SHA-256 is the one rwth-i6's i6_experiments records for it.
LM_CHECKSUMS: dict[str, dict[str, str]] = {
    "4-gram.arpa.gz": {"md5": "6abdcd5b055bd482e4f9defe91d40408"},
    "3-gram.pruned.1e-7.arpa.gz": {
        "md5": "9a0f1325bcaf3a0f7b7be4be10823c2a",
        "sha256": "71dd880667cb6ea3942bb1982988c91fb1208839a21911eeec7e31c857c4bdfb",
    },
    "librispeech-lexicon.txt": {"md5": "28f72663f6bfed7cd346283c064c315b"},
}
LM_FILES = ("4-gram.arpa.gz", "librispeech-lexicon.txt")


def prepare_librispeech(
    out_dir: Path,
    subsets: Sequence[str] = SUBSETS,
    data_dir: Path | None = None,
    *,
    mirrors: Sequence[str] = MIRRORS,
    checksums: Mapping[str, Mapping[str, str]] = CHECKSUMS,
    jobs: int = 4,
) -> dict[str, Path]:
    """Write ``out_dir/<subset>.jsonl`` for each subset and return their paths by subset name.

    ``data_dir`` is an existing tree holding ``<subset>/`` or ``LibriSpeech/<subset>/`` folders; without it
    the archives are downloaded from ``mirrors`` into ``out_dir/archives`` (``jobs`` at a time), checked
    against ``checksums`` and extracted into ``out_dir``. The subsets are those ``checksums`` names
    (``<subset>.tar.gz``): another corpus in LibriSpeech's layout (Mini LibriSpeech, OpenSLR 31) passes its
    own mirrors and checksums. Utterances whose audio is missing or unreadable are reported on stderr and
    left out.
    """
    out_dir = Path(out_dir)
    known = [name.removesuffix(".tar.gz") for name in checksums]
    unknown = [s for s in subsets if s not in known]
    if unknown:
        raise PrepareError(f"unknown subset(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    manifests = {s: out_dir / f"{s}.jsonl" for s in subsets}
    todo = [s for s in subsets if not manifests[s].is_file()]
    if not todo:
        print(f"LibriSpeech manifests in {out_dir} are up to date")
        return manifests
    if data_dir is None:
        fetch_subsets(out_dir, todo, mirrors, checksums, jobs)
        data_dir = out_dir
    for subset in todo:
        entries = subset_entries(subset_folder(Path(data_dir), subset), jobs)
        write_manifest(manifests[subset], entries)
        hours = sum(e["duration"] for e in entries) / 3600
        print(f"{subset:>15}: {len(entries):6d} utterances, {hours:7.2f} h -> {manifests[subset]}")
    return manifests


def fetch_subsets(
    out_dir: Path, subsets: Sequence[str], mirrors: Sequence[str], checksums: Mapping, jobs: int
) -> None:
    """Download (resuming) and extract the subsets' archives, ``jobs`` at a time; done ones are skipped."""

    def fetch(subset: str) -> None:
        name = f"{subset}.tar.gz"
        if (out_dir / f".extracted-{name}").exists():
            return
        urls = [f"{m.rstrip('/')}/{name}" for m in mirrors]
        archive = download(urls, out_dir / "archives" / name, **checksums[name])
        extract_tar(archive, out_dir)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(fetch, s) for s in subsets]:
            future.result()


def subset_folder(root: Path, subset: str) -> Path:
    """``root/LibriSpeech/<subset>`` or ``root/<subset>``, whichever exists."""
    for folder in (root / "LibriSpeech" / subset, root / subset):
        if folder.is_dir():
            return folder
    raise PrepareError(
        f"no {subset} in {root}: expected {root / 'LibriSpeech' / subset} or {root / subset} "
        "(LibriSpeech's layout: <subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac and "
        "<speaker>-<chapter>.trans.txt)"
    )


def _transcripts(folder: Path) -> list[tuple[Path, str]]:
    """(audio path, text) for every line of every ``*.trans.txt`` under ``folder``, in sorted order."""
    items = []
    for trans in sorted(folder.glob("*/*/*.trans.txt")):
        for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
            utt, _, text = line.strip().partition(" ")
            if not utt or not text.strip():
                warn(f"{trans}:{number}: no transcript; skipped")
                continue
            items.append((trans.parent / f"{utt}.flac", text.strip().lower()))
    return items


def _durations(paths: Sequence[Path]) -> list[float | AudioError]:
    out: list[float | AudioError] = []
    for p in paths:
        try:
            out.append(round(audio_duration(p), 4))
        except AudioError as e:
            out.append(e)
    return out


def subset_entries(folder: Path, jobs: int = 4, chunk: int = 256) -> list[dict]:
    """Manifest entries for one subset folder; durations come from the audio headers, read in parallel."""
    items = _transcripts(folder)
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    entries = []
    with (
        ThreadPoolExecutor(max_workers=max(1, jobs)) as pool,
        tqdm(total=len(items), unit="utt", desc=folder.name, disable=None) as bar,
    ):
        futures = [pool.submit(_durations, [p for p, _ in c]) for c in chunks]
        for c, future in zip(chunks, futures):
            for (path, text), duration in zip(c, future.result()):
                if isinstance(duration, AudioError):
                    warn(f"{duration}; skipped")
                    continue
                entries.append({"audio_filepath": str(path.resolve()), "duration": duration, "text": text})
            bar.update(len(c))
    return entries


def combine(manifests: Iterable[Path], dest: Path) -> Path:
    """Concatenate manifests of the same folder into ``dest`` (skipped when it exists)."""
    if not dest.is_file():
        tmp = dest.with_name(f".{dest.name}.tmp")
        with open(tmp, "wb") as out:
            for m in manifests:
                out.write(Path(m).read_bytes())
        os.replace(tmp, dest)
    return dest


def lm_file(
    lm: Path,
    name: str,
    lm_dir: Path | None,
    mirrors: Sequence[str],
    checksums: Mapping[str, Mapping[str, str]],
) -> Path:
    """Resource 11's file ``name``: ``lm_dir/name`` when ``lm_dir`` is given, else downloaded into ``lm``
    from ``mirrors`` and checked against ``checksums``."""
    if lm_dir is not None:
        path = Path(lm_dir) / name
        if not path.is_file():
            raise PrepareError(f"{path}: not found (--lm-dir must hold {name})")
        return path
    return download([f"{m.rstrip('/')}/{name}" for m in mirrors], lm / name, **checksums.get(name, {}))


def lower_arpa(source: Path, arpa: Path) -> Path:
    """``arpa``: the gzipped ARPA ``source`` unzipped and lower-cased like our transcripts (skipped when
    ``arpa`` exists; written atomically)."""
    if not arpa.is_file():
        tmp = arpa.with_name(f".{arpa.name}.tmp")
        with gzip.open(source, "rt", encoding="utf-8") as src, open(tmp, "w") as dst:
            for line in tqdm(src, unit=" lines", desc=arpa.name, disable=None):
                dst.write(line.lower())
        os.replace(tmp, arpa)
    return arpa


def prepare_lm(
    out_dir: Path,
    lm_dir: Path | None = None,
    *,
    mirrors: Sequence[str] = LM_MIRRORS,
    checksums: Mapping[str, Mapping[str, str]] = LM_CHECKSUMS,
) -> tuple[Path, Path]:
    """The official 4-gram LM and a character lexicon of its words: (``lm/4-gram.arpa``, ``lm/lexicon.txt``).

    The files come from ``lm_dir`` when given, else from ``mirrors`` (checked against ``checksums``). The
    ARPA file is gunzipped and lower-cased to match our transcripts; each stage is skipped when done.
    """
    lm = Path(out_dir) / "lm"
    arpa, lexicon = lm / "4-gram.arpa", lm / "lexicon.txt"
    if arpa.is_file() and lexicon.is_file():
        return arpa, lexicon
    lm.mkdir(parents=True, exist_ok=True)
    sources = {name: lm_file(lm, name, lm_dir, mirrors, checksums) for name in LM_FILES}
    lower_arpa(sources["4-gram.arpa.gz"], arpa)
    words = {
        line.split(maxsplit=1)[0].lower()
        for line in sources["librispeech-lexicon.txt"].read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    tmp = lexicon.with_name(f".{lexicon.name}.tmp")
    write_lexicon(tmp, sorted(words))
    os.replace(tmp, lexicon)
    return arpa, lexicon


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """The data options of recipes/librispeech's prepare.py and train.py."""
    p.add_argument("--out-dir", type=Path, default=Path("data/librispeech"), help="manifests and downloads")
    p.add_argument("--data-dir", type=Path, help="an existing LibriSpeech tree; skips the download")
    p.add_argument("--jobs", type=int, default=4, help="parallel downloads and manifest readers")
    p.add_argument(
        "--mirror",
        action="append",
        dest="mirrors",
        help=f"base URL of resource 12, tried in the order given (default: {', '.join(MIRRORS)})",
    )
    p.add_argument("--lm-dir", type=Path, help="a folder holding 4-gram.arpa.gz and librispeech-lexicon.txt")
    p.add_argument("--lm-mirror", action="append", dest="lm_mirrors", help="base URL of resource 11")
