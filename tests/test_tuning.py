"""asr.tuning: the LM weight and word score grid search that tools/tune_lm.py and the recipes share."""

import dataclasses
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from asr.decoding import DecodePool, DecoderConfig
from asr.errors import DataError, run_main
from asr.inference import Emitted
from asr.lm import build_arpa
from asr.manifest import Utterance, read_manifest, write_manifest
from asr.metrics import ErrorCounts
from asr.text import CharTokenizer
from asr.tuning import LM_WEIGHTS, WORD_SCORES, GridPoint, choose, tune_lm

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("tune_lm_tool", ROOT / "tools" / "tune_lm.py")
tune_lm_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tune_lm_tool)


def _ambiguous(tokenizer: CharTokenizer) -> np.ndarray:
    """Log-probabilities spelling "the cat", with "u" a close second to "a": greedy says "cat"."""
    frames = np.full((7, tokenizer.vocab_size), -30.0, np.float32)
    for t, c in enumerate("the cat"):
        frames[t, tokenizer.symbols.index(c)] = 0.0
    frames[5, tokenizer.symbols.index("u")] = math.log(0.4)
    frames[5, tokenizer.symbols.index("a")] = math.log(0.6)
    return frames


def test_grid_search_finds_the_lm_weight_that_fixes_an_ambiguous_word(tmp_path):
    tokenizer = CharTokenizer.english()
    (tmp_path / "lm.arpa").write_text(build_arpa(["the cut"] * 5 + ["the cat sat"], 2))
    emitted = Emitted([Utterance("a.wav", 0.1, "the cut")], [(_ambiguous(tokenizer), 7)], [])
    base = DecoderConfig(kind="beam", lm=str(tmp_path / "lm.arpa"), beam_size=8)
    with DecodePool(tokenizer, 1) as pool:
        tuned = tune_lm(emitted, base, pool, [0.0, 2.0], [0.0, 1.0])
        with pytest.raises(DataError, match="no readable utterance"):
            tune_lm(Emitted([], [], ["a.wav: unreadable"]), base, pool)
    grid = tuned.grid
    assert [(p.lm_weight, p.word_score) for p in grid] == [(0.0, 0.0), (0.0, 1.0), (2.0, 0.0), (2.0, 1.0)]
    assert [p.counts.word_errors for p in grid] == [1, 1, 0, 0]
    assert tuned.best == grid[2]  # the first of the tied best
    assert (tuned.decoder.lm_weight, tuned.decoder.word_score) == (2.0, 0.0)
    assert tuned.decoder.lm == base.lm and tuned.decoder.beam_size == 8


def test_the_choice_is_the_middle_of_the_lowest_neighbourhood_not_a_lone_dip_at_the_edge():
    errors = [[0, 6, 6, 6], [6, 2, 2, 2], [6, 2, 2, 2], [6, 2, 2, 2]]  # LM weights down, word scores across
    grid = [
        GridPoint(w, s, ErrorCounts(substitutions=e, words=100, char_errors=e, chars=400))
        for w, row in enumerate(errors)
        for s, e in enumerate(row)
    ]
    best = choose(grid, columns=4)
    assert (best.lm_weight, best.word_score) == (2, 2)  # the first point whose neighbours all make 2 errors
    assert min(grid, key=lambda p: p.counts.word_errors) == grid[0]  # what the lowest single point would be
    flat = [
        GridPoint(0, s, ErrorCounts(substitutions=1, words=10, char_errors=c, chars=40))
        for s, c in [(0, 1), (1, 3), (2, 2), (3, 2)]
    ]
    assert choose(flat, columns=4) == flat[2]  # level neighbourhoods and WER: the lower CER (edges aside)
    level = [dataclasses.replace(p, counts=flat[3].counts) for p in flat]
    assert choose(level, columns=4) == level[1]  # then the first


def test_the_choice_is_never_on_the_grids_edge():
    """A model of the twenty-ninth session (``exp/intel_an4_lr3_s7``): its dev errors by LM weight (rows: 0,
    0.5, 1, 1.5, 2, 3) and word score (columns: -1, 0, 1, 2). With neighbourhoods clipped at the edges the
    corner (3, 2) had the lowest mean, 15, of four points, and made 65 test errors against 58 at (2, 1)."""
    errors = [
        [19, 19, 19, 20],
        [18, 18, 18, 19],
        [16, 17, 17, 18],
        [15, 15, 15, 17],
        [14, 14, 15, 15],
        [19, 16, 15, 15],
    ]
    weights, scores = (0, 0.5, 1, 1.5, 2, 3), (-1, 0, 1, 2)
    grid = [
        GridPoint(weights[r], scores[c], ErrorCounts(substitutions=e, words=253, char_errors=e, chars=1000))
        for r, row in enumerate(errors)
        for c, e in enumerate(row)
    ]
    best = choose(grid, columns=4)
    assert (best.lm_weight, best.word_score) == (2, 1)
    column = grid[:2]  # read as two rows of one point: no inside on either axis, so both are candidates
    assert choose(column, columns=1) == grid[0]  # level (19 errors each): the first


def test_one_grid_for_the_tool_and_the_recipes():
    """The tool's defaults are the module's grid; the recipes tune with the same function and defaults."""
    args = tune_lm_tool.parser().parse_args(["dev.jsonl", "--model", "m.pt", "--lm", "lm.arpa"])
    assert tuple(args.lm_weights) == LM_WEIGHTS and tuple(args.word_scores) == WORD_SCORES


def test_tune_lm_tool_runs_once_over_the_manifest(trained_model, corpus, tmp_path, capsys):
    texts = [u.text for u in read_manifest(corpus["train"])]
    (tmp_path / "lm.arpa").write_text(build_arpa(texts, 2), encoding="utf-8")
    argv = [str(corpus["dev"]), "--model", str(trained_model), "--lm", str(tmp_path / "lm.arpa")]
    argv += ["--lm-weights", "0,1", "--word-scores", "0", "--beam-size", "8"]
    assert run_main(lambda: tune_lm_tool.main(argv)) == 0
    out = capsys.readouterr().out
    assert "greedy" in out and out.count("lm_weight") == 2 and "best: --lm-weight" in out


def test_tune_lm_tool_reports_unreadable_audio_and_tunes_on_the_rest(trained_model, corpus, tmp_path, capsys):
    utts = read_manifest(corpus["dev"])
    dev = tmp_path / "dev.jsonl"
    entries = [{"audio_filepath": u.audio_filepath, "duration": u.duration, "text": u.text} for u in utts]
    write_manifest(
        dev, [*entries, {"audio_filepath": str(tmp_path / "gone.wav"), "duration": 1, "text": "x"}]
    )
    (tmp_path / "lm.arpa").write_text(build_arpa([u.text for u in utts], 2), encoding="utf-8")
    argv = [str(dev), "--model", str(trained_model), "--lm", str(tmp_path / "lm.arpa")]
    argv += ["--lm-weights", "1", "--word-scores", "0", "--beam-size", "4"]
    assert run_main(lambda: tune_lm_tool.main(argv)) == 1
    captured = capsys.readouterr()
    assert "gone.wav" in captured.err and "best: --lm-weight 1" in captured.out


def test_tune_lm_tool_bad_model_is_exit_4(tmp_path, capsys):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "lm.arpa").write_text(build_arpa(["a b"], 2), encoding="utf-8")
    write_manifest(tmp_path / "dev.jsonl", [{"audio_filepath": "a.wav", "duration": 1, "text": "a"}])
    argv = [
        str(tmp_path / "dev.jsonl"),
        "--model",
        str(tmp_path / "bad.pt"),
        "--lm",
        str(tmp_path / "lm.arpa"),
    ]
    assert run_main(lambda: tune_lm_tool.main(argv)) == 4
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.pt" in err and len(err.strip().splitlines()) == 1
