import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reliability import record

from asr.errors import EXIT_DATA, EXIT_OUTPUT, EXIT_USAGE, run_main
from asr.metrics import Confusions, bootstrap_ci, score_report, word_alignment

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("score_tool", ROOT / "tools/score.py")
score_tool = importlib.util.module_from_spec(_spec)
sys.modules["score_tool"] = score_tool  # dataclasses look their module up here
_spec.loader.exec_module(score_tool)

# id, reference, hypothesis; hand-counted word errors (S, D, I), reference words, char errors, chars
CASES = [
    ("u1", "the cat sat", "the bat sat down", (1, 0, 1), 3, 1 + 5, 11),
    ("u2", "", "x y", (0, 0, 2), 0, 3, 0),  # empty reference
    ("u3", "naïve café", "naive café", (1, 0, 0), 2, 1, 10),  # diacritics are kept, not folded
    ("u4", "a b c", "", (0, 3, 0), 3, 5, 5),  # empty hypothesis
    ("u5", "Hello, World!", "hello world", (0, 0, 0), 2, 0, 11),  # normalised away
]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _run(*args: object) -> int:
    return run_main(lambda: score_tool.main([str(a) for a in args]))


def _check_summary(summary: dict) -> None:
    s, d, i = (sum(c[3][k] for c in CASES) for k in range(3))
    words, char_errors, chars = (sum(c[k] for c in CASES) for k in (4, 5, 6))
    assert (summary["substitutions"], summary["deletions"], summary["insertions"]) == (s, d, i) == (2, 3, 3)
    assert (summary["words"], summary["char_errors"], summary["chars"]) == (words, char_errors, chars)
    assert summary["wer"] == pytest.approx(8 / 10)
    assert summary["cer"] == pytest.approx(15 / 37)
    assert summary["utterances"] == 5


def test_text_format_hand_counted(tmp_path, capsys):
    ref = _write(tmp_path / "ref.txt", [c[1] for c in CASES])
    hyp = _write(tmp_path / "hyp.txt", [c[2] for c in CASES])
    assert _run(ref, hyp, "--json", tmp_path / "s.json", "--alignments", tmp_path / "a.txt") == 0
    out = capsys.readouterr().out
    assert "(text), HYP" in out and "5 utterances, normalised" in out
    assert "WER  80.00%" in out and "(8/10: 2 sub, 3 del, 3 ins)" in out
    assert "cat -> bat" in out and "naïve -> naive" in out
    _check_summary(json.loads((tmp_path / "s.json").read_text(encoding="utf-8")))
    alignments = (tmp_path / "a.txt").read_text(encoding="utf-8")
    assert "=== 1 === S=1 D=0 I=1 N=3\nREF: the cat sat ****\nHYP: the bat sat down\n" in alignments
    assert "=== 4 === S=0 D=3 I=0 N=3\nREF: a b c\nHYP: * * *\n     D D D\n" in alignments


def test_no_normalize(tmp_path, capsys):
    ref = _write(tmp_path / "ref.txt", ["Hello, World!"])
    hyp = _write(tmp_path / "hyp.txt", ["hello world"])
    assert _run(ref, hyp, "--no-normalize") == 0
    assert "not normalised" in capsys.readouterr().out
    report = score_report(["Hello,  World!"], ["hello world"], normalize=False)
    assert report.total.substitutions == 2 and report.total.chars == len("Hello, World!")


@pytest.mark.parametrize("fmt", ["trn", "id"])
def test_id_formats_pair_by_id(tmp_path, fmt, capsys):
    def line(uid: str, text: str) -> str:
        return f"{text} ({uid})" if fmt == "trn" else f"{uid} {text}".strip()

    ref = _write(tmp_path / "ref", [line(c[0], c[1]) for c in CASES])
    hyp = _write(tmp_path / "hyp", [line(c[0], c[2]) for c in reversed(CASES)])
    assert _run(ref, hyp, "--json", tmp_path / "s.json", "--alignments", tmp_path / "a.txt") == 0
    assert f"({fmt}), HYP" in capsys.readouterr().out  # detected
    _check_summary(json.loads((tmp_path / "s.json").read_text(encoding="utf-8")))
    assert "=== u4 === S=0 D=3 I=0 N=3" in (tmp_path / "a.txt").read_text(encoding="utf-8")


def test_manifest_and_report_files(tmp_path, capsys):
    ref = _write(
        tmp_path / "ref.jsonl",
        [json.dumps({"audio_filepath": f"wav/{c[0]}.wav", "duration": 1.0, "text": c[1]}) for c in CASES],
    )
    rows = [{"id": c[0], "reference": "ignored", "hypothesis": c[2]} for c in CASES[::-1]]
    hyp = _write(tmp_path / "report.jsonl", [json.dumps(r, ensure_ascii=False) for r in rows])
    assert _run(ref, hyp, "--json", tmp_path / "s.json") == 0
    _check_summary(json.loads((tmp_path / "s.json").read_text(encoding="utf-8")))


def test_missing_id_is_one_line_naming_it(tmp_path):
    ref = _write(tmp_path / "ref.trn", ["a b (u1)", "c (u2)", "d (u3)"])
    hyp = _write(tmp_path / "hyp.trn", ["a b (u1)"])
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools/score.py"), str(ref), str(hyp)], capture_output=True, text=True
    )
    assert out.returncode == EXIT_DATA and out.stdout == ""
    assert out.stderr == f"error: utterance u2 of {ref} is missing from {hyp} (and 1 more)\n"


def test_other_input_errors(tmp_path, capsys):
    ref = _write(tmp_path / "ref.txt", ["a", "b"])
    assert _run(ref, _write(tmp_path / "hyp.txt", ["a"])) == EXIT_DATA
    assert capsys.readouterr().err == f"error: {ref} has 2 utterances but {tmp_path / 'hyp.txt'} has 1\n"
    dup = _write(tmp_path / "dup.trn", ["a (u1)", "b (u1)"])
    assert _run(dup, dup) == EXIT_DATA
    assert capsys.readouterr().err == f"error: {dup}: utterance id u1 occurs twice\n"
    extra = _write(tmp_path / "extra.trn", ["a (u1)", "b (u9)"])
    assert _run(_write(tmp_path / "one.trn", ["a (u1)"]), extra) == EXIT_DATA
    assert "utterance u9 of" in capsys.readouterr().err
    assert _run(tmp_path / "absent.txt", ref) == EXIT_DATA
    assert "absent.txt: file not found" in capsys.readouterr().err


DETECTION = [
    (['{"text": "a"}'], "manifest"),
    (["a b (x-1)", "(x-2)"], "trn"),
    (["spk1_001 hello", "spk1_002"], "id"),
    (["hello there", "2 cats"], "text"),
    (["1 cat", "1 dog"], "text"),  # repeated first words are not ids
    (["2nd floor please"], "text"),  # an ordinal is a word
    (["3rd time", "2nd floor please"], "text"),
    (["1990s music", "4th of july"], "text"),
    (["10 people came", "20 left"], "text"),  # numbers are words
    (["3:30 pm", "50% off"], "text"),
    (["utt1 hello", "utt2 world"], "id"),
    (["1089-134686-0000 he hoped", "1089-134686-0001 stuff it"], "id"),
    (["4k0c0301 yes", "4k0c0302 no"], "id"),
    (["utt1 hello", "1089-134686-0000 world"], "text"),  # ids of one file share one shape
    (["utt7"], "id"),
]


@pytest.mark.parametrize(("lines", "fmt"), DETECTION, ids=[" | ".join(c[0]) for c in DETECTION])
def test_format_detection(lines, fmt):
    assert score_tool._detect(lines) == fmt


def test_an_ordinal_first_word_is_text_not_an_id(tmp_path, capsys):
    ref = _write(tmp_path / "ref.txt", ["2nd floor please"])
    hyp = _write(tmp_path / "hyp.txt", ["second floor please"])
    assert _run(ref, hyp) == 0
    out = capsys.readouterr().out
    assert "(text), HYP" in out and "(1/3: 1 sub, 0 del, 0 ins)" in out


def test_ids_beside_plain_text_are_refused_as_ambiguous(tmp_path, capsys):
    ref = _write(tmp_path / "ref.txt", ["utt1 hello world", "utt2 good bye"])
    hyp = _write(tmp_path / "hyp.txt", ["hello world", "good bye"])
    assert _run(ref, hyp) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == (
        f"error: cannot tell the format: the first words of {ref} look like utterance ids, those of {hyp} "
        "do not; pass --format id or --format text\n"
    )
    assert _run(ref, hyp, "--format", "text") == 0  # the user decides


def test_references_without_words_give_no_rate(tmp_path, capsys):
    ref = _write(tmp_path / "ref.txt", ["", ""])
    hyp = _write(tmp_path / "hyp.txt", ["a b", "c d"])
    assert _run(ref, hyp, "--json", tmp_path / "s.json") == 0
    out = capsys.readouterr().out
    assert "WER n/a: the references have no words (4 inserted)" in out and "400" not in out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["wer"] is None and summary["wer_ci95"] == [None, None] and summary["insertions"] == 4


def _alias(tmp_path: Path, how: str, target: Path) -> Path:
    if how == "same path":
        return target
    if how == "symlink":
        (tmp_path / "link").symlink_to(target)
        return tmp_path / "link"
    if how == "hard link":
        os.link(target, tmp_path / "hard")
        return tmp_path / "hard"
    return Path(os.path.relpath(target))


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "relative path"])
@pytest.mark.parametrize("option", ["--json", "--alignments"])
@pytest.mark.parametrize("side", ["ref", "hyp"])
def test_output_onto_an_input_is_refused(tmp_path, capsys, monkeypatch, how, option, side):
    monkeypatch.chdir(tmp_path)
    ref = _write(tmp_path / "ref.txt", ["a b c"])
    hyp = _write(tmp_path / "hyp.txt", ["a b d"])
    target = ref if side == "ref" else hyp
    assert _run(ref, hyp, option, _alias(tmp_path, how, target)) == EXIT_OUTPUT
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "refusing to overwrite the input" in err and err.count("\n") == 1
    assert (ref.read_text(), hyp.read_text()) == ("a b c\n", "a b d\n")
    record("outputs onto inputs: tools/score.py", "refused, exit 6")


def test_unwritable_output_is_exit_6(tmp_path, capsys):
    ref = _write(tmp_path / "ref.txt", ["a b c"])
    _write(tmp_path / "file", [])
    assert _run(ref, ref, "--json", tmp_path / "file" / "s.json") == EXIT_OUTPUT
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'file' / 's.json'}: cannot write") and err.count("\n") == 1


def test_bootstrap_ci_is_seeded_and_contains_the_estimate():
    rng = np.random.default_rng(1)
    words = rng.integers(1, 30, size=300)
    errors = rng.binomial(words, 0.2)
    ci = bootstrap_ci(errors, words, seed=7)
    assert ci == bootstrap_ci(errors, words, seed=7)
    assert ci != bootstrap_ci(errors, words, seed=8)
    assert ci[0] < errors.sum() / words.sum() < ci[1]
    assert 0.01 < ci[1] - ci[0] < 0.05  # about 4 standard errors of a 20% rate over ~4500 words
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([], [])


def test_summary_fields_and_confusions():
    refs = ["the cat sat", "the cat", "a dog", "a dog"]
    hyps = ["a bat sat", "the bat", "dog", "a dog ran"]
    report = score_report(refs, hyps, n_resamples=200, seed=3)
    summary = report.summary(top=1)
    assert set(summary) == {
        "utterances", "normalized", "wer", "wer_ci95", "cer", "cer_ci95", "word_errors", "substitutions",
        "deletions", "insertions", "words", "char_errors", "chars", "bootstrap", "confusions",
    }  # fmt: skip
    assert summary["bootstrap"] == {"resamples": 200, "seed": 3}
    assert summary["wer_ci95"][0] <= summary["wer"] <= summary["wer_ci95"][1]
    assert summary["confusions"] == {
        "substitutions": [{"reference": "cat", "hypothesis": "bat", "count": 2}],
        "deletions": [{"word": "a", "count": 1}],
        "insertions": [{"word": "ran", "count": 1}],
    }
    assert json.loads(json.dumps(summary)) == summary
    conf = Confusions.from_alignment(word_alignment(refs, hyps))
    assert conf.substitutions == {("cat", "bat"): 2, ("the", "a"): 1}
