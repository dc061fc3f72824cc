import dataclasses
import math

import pytest
import torch
from emissions import frames, spelled

from asr.decoding import DecodePool, DecoderConfig, DecoderError, Hypothesis
from asr.decoding.beam import BeamSearch
from asr.decoding.greedy import greedy_ids
from asr.decoding.lexicon import write_lexicon
from asr.lm import build_arpa
from asr.text import CharTokenizer

TOKENIZER = CharTokenizer.english()
V = TOKENIZER.vocab_size


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> str:
    """A bigram LM in which "the cut" is far likelier than "the cat"."""
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    path.write_text(build_arpa(["the cut"] * 6 + ["a cut", "the cat sat", "the dog sat"], 2))
    return str(path)


def _frames(spec: list[dict[str, float]]) -> torch.Tensor:
    return frames(TOKENIZER, spec)


def _spelled(text: str, p: float = 0.98) -> list[dict[str, float]]:
    return spelled(TOKENIZER, text, p)


def _decode(config: DecoderConfig, log_probs: torch.Tensor, lens: torch.Tensor) -> list[list[Hypothesis]]:
    """Decode a batch (B, T, V) through the pool, in this process."""
    with DecodePool(TOKENIZER) as pool:
        return pool.decode(config, [(lp.numpy(), n) for lp, n in zip(log_probs, lens.tolist())])


AMBIGUOUS = _spelled("the c") + [{"a": 0.6, "u": 0.4}] + _spelled("t")  # greedy: "the cat"


def test_beam_without_lm_equals_greedy_on_peaked_emissions():
    g = torch.Generator().manual_seed(0)
    paths = torch.randint(0, V, (4, 30), generator=g)  # random best paths, blanks and repeats included
    log_probs = torch.randn(4, 30, V, generator=g) - 6.0
    log_probs.scatter_(2, paths[..., None], 0.0)
    log_probs = log_probs.log_softmax(-1)
    lens = torch.tensor([30, 25, 12, 1])
    greedy = _decode(DecoderConfig(), log_probs, lens)
    beam = _decode(DecoderConfig(kind="beam", beam_size=8), log_probs, lens)
    assert [h[0].tokens for h in beam] == [h[0].tokens for h in greedy]
    assert [h[0].text for h in beam] == [TOKENIZER.decode(ids) for ids in greedy_ids(log_probs, lens)]
    assert [h[0].score for h in beam] == pytest.approx([h[0].score for h in greedy], abs=1e-4)  # best path
    assert any(len(h[0].tokens) > 5 for h in greedy)


@pytest.mark.parametrize("lexicon_free", [False, True], ids=["lexicon-from-lm", "lexicon-free"])
def test_lm_flips_an_acoustically_ambiguous_word(lm, lexicon_free):
    lp, lens = _frames(AMBIGUOUS)[None], torch.tensor([len(AMBIGUOUS)])
    greedy = _decode(DecoderConfig(), lp, lens)[0]
    no_lm = _decode(DecoderConfig(kind="beam"), lp, lens)[0]
    with_lm = _decode(DecoderConfig(kind="beam", lm=lm, lexicon_free=lexicon_free), lp, lens)[0]
    assert greedy[0].text == no_lm[0].text == "the cat"
    assert with_lm[0].text == "the cut"


def test_lexicon_and_lexicon_free_word_lm_score_alike(lm):
    lp, lens = _frames(AMBIGUOUS)[None], torch.tensor([len(AMBIGUOUS)])
    scores = [
        _decode(DecoderConfig(kind="beam", lm=lm, lexicon_free=free, word_score=0.5), lp, lens)[0][0].score
        for free in (False, True)
    ]
    assert scores[0] == pytest.approx(scores[1], abs=1e-4)


def test_lexicon_free_word_lm_keeps_words_apart_and_spells_unknown_ones(lm):
    """With weak separators, one unknown word "thecatsat" must not outscore three known ones (as the LM's
    <unk> alone did at a low LM weight); an unknown word read clearly still comes out, as itself."""
    weak = [{" ": 0.4, "_": 0.55}]
    frames = _spelled("the") + weak + _spelled("cat") + weak + _spelled("sat")
    for weight in (0.5, 2.0):
        config = DecoderConfig(kind="beam", lm=lm, lexicon_free=True, lm_weight=weight)
        assert _best(config, frames)[0] == "the cat sat"
    clear = _spelled("the zebra sat")
    assert _best(DecoderConfig(kind="beam", lm=lm, lexicon_free=True), clear)[0] == "the zebra sat"


def test_lexicon_constrains_the_words(tmp_path):
    write_lexicon(tmp_path / "lexicon.txt", ["cat", "cut", "dot"])
    frames = _spelled("dog cut")
    lp, lens = _frames(frames)[None], torch.tensor([len(frames)])
    assert _decode(DecoderConfig(), lp, lens)[0][0].text == "dog cut"
    config = DecoderConfig(kind="beam", lexicon=str(tmp_path / "lexicon.txt"), nbest=5)
    hyps = _decode(config, lp, lens)[0]
    assert hyps[0].text == "dot cut"
    assert all(set(h.text.split()) <= {"cat", "cut", "dot"} for h in hyps)


def test_nbest_is_sorted_and_distinct(lm):
    lp, lens = _frames(AMBIGUOUS)[None], torch.tensor([len(AMBIGUOUS)])
    for config in (DecoderConfig(kind="beam", nbest=5), DecoderConfig(kind="beam", lm=lm, nbest=5)):
        hyps = _decode(config, lp, lens)[0]
        assert len(hyps) == 5
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        assert len({h.text for h in hyps}) == 5
        assert all(TOKENIZER.decode(h.tokens) == h.text for h in hyps)  # tokens spell the text


def test_parallel_decode_equals_in_process(lm):
    g = torch.Generator().manual_seed(1)
    emissions = []
    for n in (20, 9, 14, 30, 5, 17):
        log_probs = (torch.randn(n + 3, V, generator=g) * 3).log_softmax(-1)  # 3 frames of padding
        emissions.append((log_probs.numpy(), n))
    config = DecoderConfig(kind="beam", lm=lm, lexicon_free=True, beam_size=10, nbest=3)
    with DecodePool(TOKENIZER) as pool:
        in_process = pool.decode(config, emissions)
    with DecodePool(TOKENIZER, processes=2) as pool:
        assert pool.decode(config, emissions) == in_process
    assert len(in_process) == 6 and all(1 <= len(h) <= 3 for h in in_process)


def test_bad_settings_fail_early(tmp_path):
    with pytest.raises(DecoderError, match="kind"):
        DecoderConfig(kind="viterbi")
    with pytest.raises(DecoderError, match="beam"):
        DecoderConfig(lm="lm.arpa")
    with pytest.raises(DecoderError, match="not both"):
        DecoderConfig(kind="beam", lexicon="lexicon.txt", lexicon_free=True)
    with pytest.raises(DecoderError, match="not found"):
        BeamSearch(TOKENIZER, DecoderConfig(kind="beam", lm=str(tmp_path / "missing.arpa")))
    (tmp_path / "unigram.arpa").write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\tfoo\n\n\\end\\\n")
    with pytest.raises(DecoderError, match="cannot load the LM: .*bigram"):
        BeamSearch(TOKENIZER, DecoderConfig(kind="beam", lm=str(tmp_path / "unigram.arpa")))
    (tmp_path / "lm.bin").write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\0\0")
    with pytest.raises(DecoderError, match="needs a lexicon"):
        BeamSearch(TOKENIZER, DecoderConfig(kind="beam", lm=str(tmp_path / "lm.bin")))


def _best(config: DecoderConfig, frames: list[dict[str, float]]) -> tuple[str, float]:
    hyp = BeamSearch(TOKENIZER, config)(_frames(frames))[0]
    return hyp.text, hyp.score


@pytest.mark.parametrize("lexicon_free", [False, True], ids=["lexicon-from-lm", "lexicon-free"])
def test_hotword_flips_the_lm_decision(lm, lexicon_free):
    config = DecoderConfig(kind="beam", lm=lm, lexicon_free=lexicon_free)
    assert _best(config, AMBIGUOUS)[0] == "the cut"
    boosted = dataclasses.replace(config, hotwords=(("cat", 5.0),))
    assert _best(boosted, AMBIGUOUS)[0] == "the cat"


def test_hotword_flips_the_acoustic_decision_without_lm():
    assert _best(DecoderConfig(kind="beam"), AMBIGUOUS)[0] == "the cat"
    assert _best(DecoderConfig(kind="beam", hotwords=(("cut", 2.0),)), AMBIGUOUS)[0] == "the cut"
    assert _best(DecoderConfig(kind="beam", hotwords=(("cut", 0.2),)), AMBIGUOUS)[0] == "the cat"  # too small


def test_hotword_scoring_in_python_equals_flashlight_kenlm(lm):
    """With a zero bonus the Python scorer that carries hotwords gives flashlight's own KenLM scores."""
    plain = DecoderConfig(kind="beam", lm=lm, word_score=0.5)
    assert _best(dataclasses.replace(plain, hotwords=(("cat", 0.0),)), AMBIGUOUS) == pytest.approx(
        _best(plain, AMBIGUOUS), abs=1e-4
    )


def test_hotword_outside_the_lexicon_is_added(tmp_path):
    write_lexicon(tmp_path / "lexicon.txt", ["cat", "cut", "dot"])
    config = DecoderConfig(kind="beam", lexicon=str(tmp_path / "lexicon.txt"))
    assert _best(config, _spelled("dog cut"))[0] == "dot cut"
    assert _best(dataclasses.replace(config, hotwords=(("dog", 1.0),)), _spelled("dog cut"))[0] == "dog cut"


def test_bad_hotwords_fail_early():
    with pytest.raises(DecoderError, match="beam"):
        DecoderConfig(hotwords=(("cut", 1.0),))
    with pytest.raises(DecoderError, match="one word"):
        DecoderConfig(kind="beam", hotwords=(("new york", 1.0),))
    with pytest.raises(DecoderError, match="hotword 'café': has characters the model cannot spell"):
        BeamSearch(TOKENIZER, DecoderConfig(kind="beam", hotwords=(("café", 1.0),)))


def test_pool_prepare_fails_before_any_decoding(tmp_path):
    with DecodePool(TOKENIZER) as pool, pytest.raises(DecoderError, match="missing.arpa: LM file not found"):
        pool.prepare(DecoderConfig(kind="beam", lm=str(tmp_path / "missing.arpa")))


def test_decoder_errors_are_usage_errors():
    from asr.errors import UsageError

    assert issubclass(DecoderError, UsageError) and DecoderError("x").exit_code == 2
    for bad in (dict(beam_threshold=0.0), dict(lm_weight=math.nan), dict(beam_size_token=0)):
        with pytest.raises(DecoderError):
            DecoderConfig(kind="beam", **bad)
