"""The whole training path learns: a small model memorises a handful of generated utterances."""

import json

from asr.inference import Transcriber


def test_overfits_a_handful_of_utterances(memorised, tmp_path):
    best, few = memorised
    counts, skipped = Transcriber.load(best).evaluate(few, report=tmp_path / "report.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert skipped == 0 and len(rows) == 8
    assert counts.cer < 0.03, rows
