"""The whole training path learns: a small model memorises a handful of generated utterances."""

import json

from asr.checkpoint import load_model
from asr.inference import evaluate_manifest


def test_overfits_a_handful_of_utterances(memorised, tmp_path):
    best, few = memorised
    counts, skipped = evaluate_manifest(load_model(best), few, tmp_path / "report.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert skipped == 0 and len(rows) == 8
    assert counts.cer < 0.03, rows
