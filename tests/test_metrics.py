import json
import math

import pytest

from asr.metrics import (
    ErrorCounts,
    bootstrap_ci,
    format_rate,
    rate_or_none,
    score,
    utterance_errors,
    write_report,
)


def test_hand_counted_errors():
    c = utterance_errors("the cat sat", "the bat sat down")
    assert (c.substitutions, c.deletions, c.insertions, c.words) == (1, 0, 1, 3)
    assert c.chars == len("the cat sat")
    assert c.char_errors == 1 + len(" down")


def test_normalisation_is_applied():
    assert utterance_errors("Hello, World!", "hello world").word_errors == 0


def test_empty_reference_and_hypothesis():
    c = utterance_errors("", "two words")
    assert (c.insertions, c.words) == (2, 0)
    c = utterance_errors("two words", "")
    assert (c.deletions, c.words) == (2, 2)


def test_corpus_wer_is_sum_of_errors_over_sum_of_words():
    total, per_utt = score(["a b c d", "e"], ["a b c d", "x"])
    # mean of per-utterance WERs would be 0.5; the corpus figure is 1/5
    assert total.wer == pytest.approx(1 / 5)
    assert [u.word_errors for u in per_utt] == [0, 1]
    assert (ErrorCounts(1, 0, 0, 5) + ErrorCounts(0, 1, 0, 5)).wer == pytest.approx(0.2)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="1 references but 2 hypotheses"):
        score(["a"], ["a", "b"])


def test_report(tmp_path):
    total, per_utt = score(["a b", "c"], ["a", "c"])
    write_report(tmp_path / "r.jsonl", ["u1", "u2"], ["a b", "c"], ["a", "c"], per_utt)
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert rows[0]["id"] == "u1" and rows[0]["deletions"] == 1 and rows[0]["wer"] == 0.5
    assert rows[1]["hypothesis"] == "c" and rows[1]["wer"] == 0.0


@pytest.mark.parametrize(
    ("refs", "hyps"),
    [([""], ["a b c d"]), (["", ""], ["a b", "c d"]), ([""], [""]), (["  "], ["x"])],
)
def test_no_reference_words_is_no_rate(refs, hyps, tmp_path):
    total, per_utt = score(refs, hyps)
    assert total.words == 0 and math.isnan(total.wer) and math.isnan(total.cer)
    assert format_rate(total.wer) == "n/a" and rate_or_none(total.wer) is None
    write_report(tmp_path / "r.jsonl", [str(i) for i in range(len(refs))], refs, hyps, per_utt)
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert all(r["wer"] is None for r in rows)  # valid JSON: no NaN
    assert bootstrap_ci([u.word_errors for u in per_utt], [u.words for u in per_utt]) != bootstrap_ci(
        [0], [1]
    )


def test_rates_with_reference_words_are_unchanged():
    total, _ = score(["a", ""], ["b", "c d"])
    assert total.wer == 3.0 and format_rate(total.wer) == "300.00%"  # insertions beside one word do count
