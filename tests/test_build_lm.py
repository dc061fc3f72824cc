import importlib.util
import math
import random
from pathlib import Path

import pytest
import torch
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from asr.decoding import DecoderConfig
from asr.decoding.beam import BeamSearch
from asr.decoding.lexicon import read_lexicon
from asr.text import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_lm = _tool("build_lm")


class Arpa:
    """A small ARPA reader: log10 probabilities and backoffs, and P(word | context) by backing off."""

    def __init__(self, text: str) -> None:
        self.logp: dict[tuple[str, ...], float] = {}
        self.backoff: dict[tuple[str, ...], float] = {}
        self.declared: dict[int, int] = {}
        order = 0
        for line in text.splitlines():
            if line.startswith("ngram "):
                n, count = line[6:].split("=")
                self.declared[int(n)] = int(count)
            elif line.endswith("-grams:"):
                order = int(line[1:].split("-")[0])
            elif line and order and not line.startswith("\\"):
                fields = line.split("\t")
                gram = tuple(fields[1].split())
                assert len(gram) == order, line
                self.logp[gram] = float(fields[0])
                if len(fields) == 3:
                    self.backoff[gram] = float(fields[2])
        self.order = max(self.declared)
        self.vocab = sorted(g[0] for g in self.logp if len(g) == 1 and g[0] != "<s>")

    def prob(self, word: str, context: tuple[str, ...] = ()) -> float:
        gram = (*context, word)
        if gram in self.logp:
            return 10 ** self.logp[gram]
        return 10 ** self.backoff.get(context, 0.0) * self.prob(word, context[1:])


TOY = ["a b", "a b c", "b c"]


def test_hand_computed_kneser_ney():
    """Counts of <s> a b </s> / <s> a b c </s> / <s> b c </s>; every order too sparse, so the discounts are
    lmplz's fallback 0.5, 1, 1.5 (for counts 1, 2, 3+)."""
    lm = Arpa(build_lm.build_arpa(TOY, order=3))
    assert lm.declared == {1: 6, 2: 6, 3: 5}
    # unigram continuation counts: a 1 (<s>), b 2 (a, <s>), c 1 (b), </s> 2 (b, c); total 6, discounts
    # 0.5+1+0.5+1 = 3, so gamma = 0.5, spread uniformly over 5 words (a b c </s> <unk>)
    assert lm.prob("a") == pytest.approx((1 - 0.5) / 6 + 0.5 / 5, abs=1e-6)
    assert lm.prob("b") == pytest.approx((2 - 1) / 6 + 0.5 / 5, abs=1e-6)
    assert lm.prob("<unk>") == pytest.approx(0.5 / 5, abs=1e-6)
    p_c = (1 - 0.5) / 6 + 0.1
    # bigrams after b: continuation counts c 2 (a, <s>), </s> 1 (a); gamma(b) = (1 + 0.5) / 3
    p_c_b = (2 - 1) / 3 + 0.5 * p_c
    assert lm.prob("c", ("b",)) == pytest.approx(p_c_b, abs=1e-6)
    assert lm.backoff[("b",)] == pytest.approx(math.log10(0.5), abs=1e-6)
    # <s> starts raw counts: <s> a 2, <s> b 1; gamma(<s>) = (1 + 0.5) / 3
    assert lm.prob("a", ("<s>",)) == pytest.approx((2 - 1) / 3 + 0.5 * ((1 - 0.5) / 6 + 0.1), abs=1e-6)
    # trigrams after "a b": raw counts </s> 1, c 1; gamma = (0.5 + 0.5) / 2
    assert lm.prob("c", ("a", "b")) == pytest.approx((1 - 0.5) / 2 + 0.5 * p_c_b, abs=1e-6)
    # "a b a" is unseen: backoff(a b) * backoff(b) * p(a)
    assert lm.prob("a", ("a", "b")) == pytest.approx(0.5 * 0.5 * ((1 - 0.5) / 6 + 0.1), abs=1e-6)


def test_discounts_from_counts_of_counts():
    # t1..t4 = 10, 4, 2, 1 -> Y = 10 / 18
    counts = [1] * 10 + [2] * 4 + [3] * 2 + [4] + [9, 12]
    y = 10 / 18
    assert build_lm.discounts(counts) == pytest.approx((1 - 2 * y * 4 / 10, 2 - 3 * y * 2 / 4, 3 - 4 * y / 2))
    assert build_lm.discounts([1, 1, 2, 3]) == build_lm.FALLBACK_DISCOUNTS  # no count of 4


def test_bad_input_fails_early():
    with pytest.raises(ValueError, match="at least 2"):
        build_lm.build_arpa(TOY, order=1)
    with pytest.raises(ValueError, match="no words"):
        build_lm.build_arpa(["", " ... "], order=2)


def _corpus(n: int = 200, seed: int = 0) -> list[str]:
    """Zipf-ish sentences: rich enough that every order gets estimated (not fallback) discounts."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(60)]
    weights = [1 / (i + 1) for i in range(len(words))]
    return [" ".join(rng.choices(words, weights, k=rng.randint(1, 6))) for _ in range(n)]


@pytest.mark.parametrize("corpus", [TOY, _corpus()], ids=["toy", "zipf"])
def test_every_context_sums_to_one(corpus, caplog):
    lm = Arpa(build_lm.build_arpa(corpus, order=3))
    assert ("too sparse" in caplog.text) == (corpus is TOY)
    assert all(lm.declared[n] == sum(len(g) == n for g in lm.logp) for n in lm.declared)
    contexts = [()] + [g for g in lm.logp if len(g) < lm.order]
    for context in contexts:
        assert sum(lm.prob(w, context) for w in lm.vocab) == pytest.approx(1.0, abs=1e-4), context
    assert all(g[:-1] in lm.logp for g in lm.logp if len(g) > 1)  # every n-gram's context is listed


def test_cli_writes_arpa_and_lexicon_that_flashlight_loads(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cut, was deep!\nthe cat sat\n\nDon't cut it\n", encoding="utf-8")
    arpa, lexicon = tmp_path / "lm.arpa", tmp_path / "lexicon.txt"
    assert build_lm.main([str(corpus), "--order", "2", "--out", str(arpa), "--lexicon", str(lexicon)]) == 0
    assert read_lexicon(lexicon)["don't"] == [["d", "o", "n", "'", "t", "|"]]
    assert set(read_lexicon(lexicon)) == {"the", "cut", "was", "deep", "cat", "sat", "don't", "it"}
    # KenLM inside flashlight reads the same probabilities as our reader
    lm = Arpa(arpa.read_text(encoding="utf-8"))
    words = Dictionary(["<unk>", "the", "cut", "cat"])
    kenlm = KenLM(str(arpa), words)
    state, logp = kenlm.score(kenlm.start(False), words.get_index("the"))
    assert logp == pytest.approx(math.log10(lm.prob("the", ("<s>",))), abs=1e-5)
    _, logp = kenlm.score(state, words.get_index("cat"))
    assert logp == pytest.approx(math.log10(lm.prob("cat", ("the",))), abs=1e-5)
    # and torchaudio's ctc_decoder takes it, with our lexicon
    config = DecoderConfig(kind="beam", lm=str(arpa), lexicon=str(lexicon))
    assert BeamSearch(CharTokenizer.english(), config)(torch.zeros(4, 29).log_softmax(-1))
