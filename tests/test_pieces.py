"""The SentencePiece tokenizer: training, ids and the blank, words without a separator token, serialisation,
and its use through the training config and a model file."""

from __future__ import annotations

import json

import pytest
import torch
from emissions import frames, spelled

from asr.config import load_config
from asr.decoding import DecodePool, DecoderConfig
from asr.decoding.greedy import greedy_ids
from asr.decoding.lexicon import write_lexicon
from asr.errors import ConfigError
from asr.lm import build_arpa
from asr.text import (
    BLANK_ID,
    WORD_START,
    SentencePieceTokenizer,
    TokenizerError,
    tokenizer_from_dict,
)
from asr.timing import align_words
from asr.train import build_tokenizer

TEXTS = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "she read the old book",
    "we walked home at night",
    "he didn't see the bird",
    "the sun is very bright",
] * 4


@pytest.fixture(scope="module")
def pieces() -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(TEXTS, 60)


def test_training_is_deterministic_and_every_character_is_covered(pieces):
    again = SentencePieceTokenizer.train(TEXTS, 60)
    assert again.to_dict() == pieces.to_dict()
    assert pieces.symbols[BLANK_ID] == "<blank>" and pieces.symbols[1] == "<unk>"
    for text in TEXTS:
        ids = pieces.encode(text)
        assert BLANK_ID not in ids and 1 not in ids  # neither the blank nor <unk> is a target
        assert pieces.decode(ids) == text
    assert SentencePieceTokenizer.train(TEXTS, 300).vocab_size < 300  # a small corpus: fewer pieces


def test_text_is_normalised_and_unknown_characters_are_named(pieces):
    assert pieces.decode(pieces.encode("The CAT, sat!")) == "the cat sat"
    with pytest.raises(TokenizerError, match=r"'é' at 4, '9' at 6 in 'the é 9'"):
        pieces.encode("The é 9")
    assert pieces.unknown("zoë") == [(2, "ë")]
    assert pieces.decode(pieces.encode("quiz jazz")) == "quiz jazz"  # a-z are pieces, seen in training or not


def test_words_are_delimited_by_word_start_pieces(pieces):
    ids = pieces.encode("the cat sat on the mat")
    spans = pieces.word_spans(ids)
    words = ["".join(pieces.symbols[i] for i in ids[a:b]).lstrip(WORD_START) for a, b in spans]
    assert words == ["the", "cat", "sat", "on", "the", "mat"]
    assert pieces.separator_id is None and pieces.tidy(ids) == ids
    assert pieces.word_spans([]) == []


def test_spell_gives_a_words_pieces(pieces):
    assert pieces.decode(pieces.spell("didn't")) == "didn't"
    assert pieces.symbols[pieces.spell("bird")[0]].startswith(WORD_START)
    for bad in ("two words", "", "zoë"):
        with pytest.raises(TokenizerError):
            pieces.spell(bad)


def test_serialisation_round_trips_through_json(pieces):
    data = json.loads(json.dumps(pieces.to_dict()))
    again = tokenizer_from_dict(data)
    assert isinstance(again, SentencePieceTokenizer) and again.symbols == pieces.symbols
    with pytest.raises(TokenizerError, match="not valid base64"):
        tokenizer_from_dict({"kind": "sentencepiece", "model": "%%%"})
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        tokenizer_from_dict({"kind": "sentencepiece", "model": "AAAA"})


def test_the_config_chooses_the_tokenizer(tmp_path):
    manifest = tmp_path / "train.jsonl"
    manifest.write_text(
        "".join(json.dumps({"audio_filepath": "x.wav", "duration": 1.0, "text": t}) + "\n" for t in TEXTS)
    )
    cfg = load_config(
        None, [f"data.train_manifest={manifest}", "data.tokenizer=sentencepiece", "data.pieces=50"]
    )
    tok = build_tokenizer(cfg)
    assert isinstance(tok, SentencePieceTokenizer) and tok.vocab_size <= 51
    assert build_tokenizer(load_config(None, [f"data.train_manifest={manifest}"])).kind == "char"
    for override, key in (
        ("data.tokenizer=words", "data.tokenizer"),
        ("data.pieces=1", "data.pieces"),
        ("data.piece_type=wordpiece", "data.piece_type"),
    ):
        with pytest.raises(ConfigError, match=key):
            load_config(None, [override])


def _beam(tok: SentencePieceTokenizer, config: DecoderConfig, spec: list[dict[str, float]]) -> list[str]:
    with DecodePool(tok) as pool:
        (hyps,) = pool.decode(config, [(frames(tok, spec).numpy(), len(spec))])
    return [h.text for h in hyps]


def test_beam_search_with_pieces_equals_greedy_without_an_lm(pieces):
    spec = spelled(pieces, "the dog sat in the park")
    lp = frames(pieces, spec)
    (greedy,) = greedy_ids(lp[None], torch.tensor([len(spec)]))
    assert pieces.decode(greedy) == "the dog sat in the park"
    assert _beam(pieces, DecoderConfig(kind="beam", beam_size=8), spec)[0] == "the dog sat in the park"


@pytest.mark.parametrize("lexicon_free", [False, True], ids=["lexicon-from-lm", "lexicon-free"])
def test_a_word_lm_flips_an_ambiguous_word_made_of_pieces(pieces, tmp_path, lexicon_free):
    # "▁ c at" against "▁ c u t": acoustically "cat" (0.55 x 0.55) beats "cut" (0.45 x 0.45)
    assert [pieces.symbols[i] for i in pieces.encode("cat cut")] == ["▁", "c", "at", "▁", "c", "u", "t"]
    spec = spelled(pieces, "the c") + [{"at": 0.55, "u": 0.45}, {"_": 0.55, "t": 0.45}]
    lm = tmp_path / "lm.arpa"
    lm.write_text(build_arpa(["the cut"] * 6 + ["a cut", "the cat sat", "the dog sat"], 2))
    assert _beam(pieces, DecoderConfig(kind="beam"), spec)[0] == "the cat"
    config = DecoderConfig(kind="beam", lm=str(lm), lexicon_free=lexicon_free)
    assert _beam(pieces, config, spec)[0] == "the cut"


def test_a_character_lexicon_is_respelled_in_pieces_and_constrains_the_words(pieces, tmp_path):
    write_lexicon(tmp_path / "lexicon.txt", ["the", "cat", "cut", "dot"])
    spec = spelled(pieces, "the dog cut")
    config = DecoderConfig(kind="beam", lexicon=str(tmp_path / "lexicon.txt"), nbest=3)
    texts = _beam(pieces, config, spec)
    assert texts[0].split()[::2] == ["the", "cut"]
    assert all(set(t.split()) <= {"the", "cat", "cut", "dot"} for t in texts)


def test_a_lexicon_word_may_hold_its_last_piece_over_frames(pieces, tmp_path):
    # CTC may hold a word's last piece ("e" of "▁ t h e") over frames, then a blank or the utterance's end;
    # the lexicon search must follow that best path at its full score, as it does the word-internal pieces
    write_lexicon(tmp_path / "lexicon.txt", ["the", "cat", "sat"])
    spec = []
    for word in ("the", "cat", "sat"):
        ids = pieces.spell(word)
        spec += [{pieces.symbols[i]: 0.98} for i in ids] + [{pieces.symbols[ids[-1]]: 0.98}, {"_": 0.98}]
    spec.pop()  # the last word's last piece is held to the end
    lp = frames(pieces, spec)
    best = float(lp.max(-1).values.sum())
    with DecodePool(pieces) as pool:
        (hyps,) = pool.decode(
            DecoderConfig(kind="beam", lexicon=str(tmp_path / "lexicon.txt")), [(lp.numpy(), len(spec))]
        )
    assert hyps[0].text == "the cat sat"
    assert hyps[0].score == pytest.approx(best, abs=1e-3)


def test_a_hotword_made_of_pieces_flips_the_decision(pieces):
    spec = spelled(pieces, "the c") + [{"at": 0.55, "u": 0.45}, {"_": 0.55, "t": 0.45}]
    assert _beam(pieces, DecoderConfig(kind="beam"), spec)[0] == "the cat"
    assert _beam(pieces, DecoderConfig(kind="beam", hotwords=(("cut", 2.0),)), spec)[0] == "the cut"


def test_word_timings_with_pieces(pieces):
    spec = [{"_": 0.98}] * 3 + spelled(pieces, "the bird") + [{"_": 0.98}] * 2
    lp = frames(pieces, spec)
    words = align_words(lp, pieces.encode("the bird"), pieces, 0.04)
    assert [w.text for w in words] == ["the", "bird"]
    assert words[0].start == pytest.approx(3 * 0.04) and words[0].end <= words[1].start
    assert words[1].end == pytest.approx((len(spec) - 2) * 0.04)
    assert all(w.confidence > 0.9 for w in words)
