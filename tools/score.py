"""Score hypotheses against references: corpus WER and CER, 95% intervals, top confusions, alignments.

Usage:
    python tools/score.py REF HYP [--format auto|text|id|trn|manifest] [--json summary.json]
                          [--alignments FILE] [--no-normalize] [--resamples 1000] [--seed 0]

Formats (``auto`` decides for each file):
    text      one utterance a line, empty lines included; files pair line by line
    id        "utt-id text" lines (Kaldi); auto picks it when every first word is unique and has a digit
    trn       "text (utt-id)" lines (NIST sclite)
    manifest  JSON lines: our manifests ("text") and per-utterance reports ("reference" in REF,
              "hypothesis" in HYP); the id is "id" or else the stem of "audio_filepath"

Files with ids pair by id, and an id missing from either side is an error; otherwise they pair by line.
Text is normalised as for training (asr.text.normalize_text) unless --no-normalize. The interval comes
from resampling utterances (seeded). Exits 1 on unusable input, naming the file and the problem.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from asr.manifest import ManifestError, json_objects
from asr.metrics import ScoreReport, score_report

FORMATS = ("auto", "text", "id", "trn", "manifest")
TRN = re.compile(r"^(.*?)\s*\(([^()\s]+)\)\s*$")  # "text (utt-id)"
KEYS = {"REF": ("text", "reference"), "HYP": ("hypothesis", "text")}  # manifest text keys, in preference


class InputError(ValueError):
    """A reference or hypothesis file that cannot be scored; the message says where and why."""


@dataclass
class Utterances:
    """The texts of one file, in file order, with their ids (None for plain text) and the format read."""

    path: Path
    fmt: str
    ids: list[str] | None
    texts: list[str]


def _detect(lines: list[str]) -> str:
    filled = [line for line in lines if line.strip()]
    if filled and filled[0].lstrip().startswith("{"):
        return "manifest"
    if filled and all(TRN.match(line) for line in filled):
        return "trn"
    first = [line.split()[0] for line in filled]
    if first and len(set(first)) == len(first) and all(any(c.isdigit() for c in w) for w in first):
        return "id"
    return "text"


def _manifest(path: Path, lines: list[str], side: str) -> list[tuple[str, str]]:
    rows = []
    try:
        entries = list(json_objects(path, lines))
    except ManifestError as e:
        raise InputError(str(e)) from None
    for number, entry in entries:
        key = next((k for k in KEYS[side] if isinstance(entry.get(k), str)), None)
        if key is None:
            raise InputError(f"{path}:{number}: no {' or '.join(repr(k) for k in KEYS[side])} string")
        if "id" in entry:
            uid = str(entry["id"])
        elif isinstance(entry.get("audio_filepath"), str):
            uid = Path(entry["audio_filepath"]).stem
        else:
            raise InputError(f"{path}:{number}: no 'id' or 'audio_filepath' to identify the utterance")
        rows.append((uid, entry[key]))
    return rows


def read_utterances(path: Path, fmt: str, side: str) -> Utterances:
    """The utterances of a REF or HYP ``side`` file in format ``fmt`` ("auto" detects it)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not valid UTF-8 (byte {e.start})") from None
    fmt = _detect(lines) if fmt == "auto" else fmt
    if fmt == "text":
        return Utterances(path, fmt, None, lines)
    if fmt == "manifest":
        rows = _manifest(path, lines, side)
    else:
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if fmt == "id":
                uid, text = (line.split(maxsplit=1) + [""])[:2]
            elif match := TRN.match(line):
                text, uid = match.groups()
            else:
                raise InputError(f"{path}:{number}: not a trn line 'text (utt-id)': {line.strip()!r}")
            rows.append((uid, text))
    seen: set[str] = set()
    for uid, _ in rows:
        if uid in seen:
            raise InputError(f"{path}: utterance id {uid} occurs twice")
        seen.add(uid)
    return Utterances(path, fmt, [uid for uid, _ in rows], [text for _, text in rows])


def pair(ref: Utterances, hyp: Utterances) -> tuple[list[str], list[str], list[str]]:
    """(ids, references, hypotheses) in reference order; by id when both files have ids, else by line."""
    if ref.ids is None or hyp.ids is None:
        if len(ref.texts) != len(hyp.texts):
            raise InputError(
                f"{ref.path} has {len(ref.texts)} utterances but {hyp.path} has {len(hyp.texts)}"
            )
        ids = ref.ids or hyp.ids or [str(i) for i in range(1, len(ref.texts) + 1)]
        return ids, ref.texts, hyp.texts
    for a, b in ((ref, hyp), (hyp, ref)):
        present = set(b.ids)
        missing = [uid for uid in a.ids if uid not in present]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(f"utterance {missing[0]} of {a.path} is missing from {b.path}{more}")
    by_id = dict(zip(hyp.ids, hyp.texts))
    return ref.ids, ref.texts, [by_id[uid] for uid in ref.ids]


def print_report(report: ScoreReport, top: int = 10) -> None:
    t, s = report.total, report.summary(top)
    wlo, whi = report.wer_ci
    clo, chi = report.cer_ci
    print(
        f"WER {100 * t.wer:6.2f}%  95% CI [{100 * wlo:.2f}, {100 * whi:.2f}]  "
        f"({t.word_errors}/{t.words}: {t.substitutions} sub, {t.deletions} del, {t.insertions} ins)"
    )
    print(f"CER {100 * t.cer:6.2f}%  95% CI [{100 * clo:.2f}, {100 * chi:.2f}]  ({t.char_errors}/{t.chars})")
    confusions = s["confusions"]
    for kind, rows in confusions.items():
        print(f"top {top} {kind}:" + ("" if rows else " none"))
        for c in rows:
            what = f"{c['reference']} -> {c['hypothesis']}" if kind == "substitutions" else c["word"]
            print(f"  {c['count']:6d}  {what}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref", type=Path, help="reference file")
    p.add_argument("hyp", type=Path, help="hypothesis file")
    p.add_argument("--format", choices=FORMATS, default="auto", help="format of both files (default auto)")
    p.add_argument("--json", type=Path, help="write the summary (rates, counts, intervals, confusions) here")
    p.add_argument("--alignments", type=Path, help="write each utterance's word alignment here")
    p.add_argument("--no-normalize", action="store_true", help="compare the text as is (whitespace aside)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = p.parse_args(argv)
    if args.resamples < 1:
        p.error("--resamples must be at least 1")
    try:
        ref = read_utterances(args.ref, args.format, "REF")
        hyp = read_utterances(args.hyp, args.format, "HYP")
        ids, refs, hyps = pair(ref, hyp)
        if not ids:
            raise InputError(f"{args.ref}: no utterances")
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report = score_report(refs, hyps, not args.no_normalize, args.resamples, args.seed)
    how = "normalised" if report.normalized else "not normalised"
    print(f"REF {ref.path} ({ref.fmt}), HYP {hyp.path} ({hyp.fmt}): {len(ids)} utterances, {how}")
    print_report(report)
    if args.alignments:
        args.alignments.parent.mkdir(parents=True, exist_ok=True)
        args.alignments.write_text(report.alignments_text(ids), encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(report.summary(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
