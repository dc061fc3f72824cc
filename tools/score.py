"""Score hypotheses against references: corpus WER and CER, 95% intervals, top confusions, alignments.

Usage:
    python tools/score.py REF HYP [--format auto|text|id|trn|manifest] [--json summary.json]
                          [--alignments FILE] [--no-normalize] [--resamples 1000] [--seed 0]

Formats (``auto`` decides for each file):
    text      one utterance a line, empty lines included; files pair line by line
    id        "utt-id text" lines (Kaldi); auto picks it when every first word looks like an id (has a digit,
              is no number or ordinal like "2nd" or "1990s"), all have one shape (letters, digits and
              punctuation in the same order, as generated ids do) and none repeats
    trn       "text (utt-id)" lines (NIST sclite)
    manifest  JSON lines: our manifests ("text") and per-utterance reports ("reference" in REF,
              "hypothesis" in HYP); the id is "id" or else the stem of "audio_filepath"

Files with ids pair by id, and an id missing from either side is an error; otherwise they pair by line.
With ``auto``, a file read as ``id`` beside one read as ``text`` is ambiguous ("2nd floor please" could be
either) and refused: pass --format. Text is normalised as for training (asr.text.normalize_text) unless
--no-normalize. The interval comes from resampling utterances (seeded). With no reference words WER is
undefined: printed "n/a", null in --json. Neither output may be REF or HYP (through links too); both are
written atomically. Exit codes are ``asr.errors``': 2 usage or an ambiguous format, 5 unusable input
(naming the file and the problem), 6 an output that cannot be written.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from asr.errors import DataError, UsageError, run_main
from asr.manifest import ManifestError, json_objects
from asr.metrics import ScoreReport, format_rate, score_report
from asr.outputs import refuse_overwrite, write_text_atomic

FORMATS = ("auto", "text", "id", "trn", "manifest")
TRN = re.compile(r"^(.*?)\s*\(([^()\s]+)\)\s*$")  # "text (utt-id)"
NUMBER = re.compile(r"[-+]?\d+([.,:/]\d+)*(st|nd|rd|th|s|'s|%)?", re.IGNORECASE)  # 42, 2nd, 1990s, 3:30, 50%
KEYS = {"REF": ("text", "reference"), "HYP": ("hypothesis", "text")}  # manifest text keys, in preference


class InputError(DataError):
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
    if (
        first
        and len(set(first)) == len(first)
        and len({_shape(w) for w in first}) == 1
        and all(map(_id_like, first))
    ):
        return "id"
    return "text"


def _id_like(word: str) -> bool:
    """Whether a first word can be an utterance id: it has a digit and is no number or ordinal."""
    return any(c.isdigit() for c in word) and not NUMBER.fullmatch(word)


def _shape(word: str) -> str:
    """Runs of letters -> "a", of digits -> "0", other characters kept: "spk1-utt02" -> "a0-a0"."""
    return re.sub(r"\d+", "0", re.sub(r"[^\W\d_]+", "a", word))


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
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
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


def check_formats(ref: Utterances, hyp: Utterances) -> None:
    """Refuse (:class:`UsageError`) a pair read as ``id`` and ``text``: one of them is misread."""
    kinds = {ref.fmt, hyp.fmt}
    if kinds == {"id", "text"}:
        ids, text = (ref, hyp) if ref.fmt == "id" else (hyp, ref)
        raise UsageError(
            f"cannot tell the format: the first words of {ids.path} look like utterance ids, those of "
            f"{text.path} do not; pass --format id or --format text"
        )


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
    if t.words:
        print(
            f"WER {100 * t.wer:6.2f}%  95% CI [{100 * wlo:.2f}, {100 * whi:.2f}]  "
            f"({t.word_errors}/{t.words}: {t.substitutions} sub, {t.deletions} del, {t.insertions} ins)"
        )
    else:
        print(f"WER {format_rate(t.wer)}: the references have no words ({t.insertions} inserted)")
    if t.chars:
        print(
            f"CER {100 * t.cer:6.2f}%  95% CI [{100 * clo:.2f}, {100 * chi:.2f}]  ({t.char_errors}/{t.chars})"
        )
    else:
        print(f"CER {format_rate(t.cer)}: the references have no characters ({t.char_errors} inserted)")
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
    outputs = [o for o in (args.json, args.alignments) if o is not None]
    for output in outputs:
        refuse_overwrite(output, [args.ref, args.hyp])
    if len(outputs) == 2:
        refuse_overwrite(args.alignments, [args.json])
    ref = read_utterances(args.ref, args.format, "REF")
    hyp = read_utterances(args.hyp, args.format, "HYP")
    check_formats(ref, hyp)
    ids, refs, hyps = pair(ref, hyp)
    if not ids:
        raise InputError(f"{args.ref}: no utterances")
    report = score_report(refs, hyps, not args.no_normalize, args.resamples, args.seed)
    how = "normalised" if report.normalized else "not normalised"
    print(f"REF {ref.path} ({ref.fmt}), HYP {hyp.path} ({hyp.fmt}): {len(ids)} utterances, {how}")
    print_report(report)
    if args.alignments:
        write_text_atomic(args.alignments, report.alignments_text(ids))
    if args.json:
        write_text_atomic(args.json, json.dumps(report.summary(), indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
