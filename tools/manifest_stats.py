"""Summarise and check JSONL manifests before training: size, durations, characters, unreadable files.

Usage:
    python tools/manifest_stats.py data/an4/train.jsonl [more.jsonl ...] [--check-audio]

Prints utterances, hours, duration percentiles, the characters of the normalised text with counts (those
outside the English tokenizer marked), and with --check-audio every file that cannot be read or whose
header duration disagrees with the manifest by more than 0.1 s. Exits 5 if a manifest cannot be read, else 1
if an audio file was found unreadable or of another duration (``asr.errors``' codes).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter

from asr.audio import AudioError, audio_duration
from asr.errors import EXIT_AUDIO, EXIT_DATA, run_main
from asr.manifest import ManifestError, read_manifest
from asr.text import CharTokenizer, normalize_text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifests", nargs="+")
    p.add_argument("--check-audio", action="store_true", help="open every audio file and compare durations")
    args = p.parse_args(argv)
    english = set(CharTokenizer.english().symbols)
    problems, unreadable_manifests = 0, 0
    for path in args.manifests:
        try:
            utts = read_manifest(path)
        except ManifestError as e:
            print(f"error: {e}", file=sys.stderr)
            unreadable_manifests += 1
            continue
        durations = sorted(u.duration for u in utts)
        chars = Counter(c for u in utts for c in normalize_text(u.text))
        print(f"{path}: {len(utts)} utterances, {sum(durations) / 3600:.3f} h")
        if durations:
            q = statistics.quantiles(durations, n=20) if len(durations) > 1 else durations * 19
            print(
                f"  duration s: min {durations[0]:.2f}  p5 {q[0]:.2f}  median {q[9]:.2f}  "
                f"p95 {q[18]:.2f}  max {durations[-1]:.2f}"
            )
        outside = {c: n for c, n in chars.items() if c not in english}
        print("  characters: " + " ".join(f"{c!r}:{n}" for c, n in sorted(chars.items())))
        if outside:
            print(f"  outside the English tokenizer: {outside}")
        if args.check_audio:
            for u in utts:
                try:
                    real = audio_duration(u.audio_filepath)
                except AudioError as e:
                    print(f"  line {u.line}: {e}")
                    problems += 1
                    continue
                if abs(real - u.duration) > 0.1:
                    print(
                        f"  line {u.line}: {u.audio_filepath}: "
                        f"manifest says {u.duration:.2f} s, file holds {real:.2f} s"
                    )
                    problems += 1
    return EXIT_DATA if unreadable_manifests else EXIT_AUDIO if problems else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
