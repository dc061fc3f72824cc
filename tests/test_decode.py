import numpy as np
import pytest
import torch

from asr.decoding import DecoderError
from asr.decoding.greedy import greedy_hypotheses, greedy_ids
from asr.decoding.lexicon import arpa_unigrams, read_lexicon
from asr.text import CharTokenizer


def _emissions(paths: list[list[int]], vocab: int = 5) -> torch.Tensor:
    """One-hot-ish log-probs following the given best paths, padded with blanks to equal length."""
    t = max(len(p) for p in paths)
    lp = torch.full((len(paths), t, vocab), -10.0)
    for b, path in enumerate(paths):
        for i in range(t):
            lp[b, i, path[i] if i < len(path) else 0] = 0.0
    return lp.log_softmax(-1)


def test_hand_computed_cases():
    paths = [
        [1, 1, 0, 1, 2, 2, 0],  # repeat merged, blank separates a real repeat -> 1 1 2
        [0, 0, 0],  # all blank -> empty
        [3, 0, 3, 3, 4],  # -> 3 3 4
        [2, 2, 2, 2],  # -> 2
    ]
    lens = torch.tensor([7, 3, 5, 4])
    assert greedy_ids(_emissions(paths), lens) == [[1, 1, 2], [], [3, 3, 4], [2]]


def test_frames_beyond_length_are_ignored():
    paths = [[1, 2, 3, 4], [1, 2, 3, 4]]
    assert greedy_ids(_emissions(paths), torch.tensor([4, 2])) == [[1, 2, 3, 4], [1, 2]]


def test_repeat_across_padding_boundary():
    # the first frame must always count as new, even if it equals the last (rolled) frame
    paths = [[2, 0, 2]]
    assert greedy_ids(_emissions(paths), torch.tensor([3])) == [[2, 2]]


def test_arpa_reader_names_the_line_of_a_one_field_unigram(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\tfoo\n-1.0\n\\end\\\n")
    with pytest.raises(DecoderError, match=r"lm\.arpa:6: expected a 1-gram .* got '-1\.0'"):
        arpa_unigrams(path)


def test_lexicon_reader_names_the_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_bytes(b"cat c a t |\ncaf\xe9 c a f \xe9 |\n")
    with pytest.raises(DecoderError, match=r"lexicon\.txt:2: the lexicon is not UTF-8 text"):
        read_lexicon(path)


def test_greedy_hypotheses_score_the_best_path_and_tidy_separators():
    tok = CharTokenizer.english()
    a, b, space = tok.symbols.index("a"), tok.symbols.index("b"), tok.separator_id
    paths = [[space, a, 0, space, space, b, space], [a, a, a]]
    lp = _emissions(paths, vocab=tok.vocab_size)
    lens = torch.tensor([7, 2])
    (first,), (second,) = greedy_hypotheses(tok, lp, lens)
    assert (first.text, first.tokens) == ("a b", [a, space, b])
    assert second.text == "a"
    assert first.score == pytest.approx(lp[0].max(-1).values.sum().item())
    assert second.score == pytest.approx(lp[1, :2].max(-1).values.sum().item())  # padded frames not counted


def test_numpy_and_torch_log_probs_decode_alike():
    """One greedy implementation for both backends: NumPy arrays (ONNX) and torch tensors give the same
    hypotheses, scores included."""
    tok = CharTokenizer.english()
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.normal(0, 3, (4, int(rng.integers(1, 60)), tok.vocab_size))
        lp = (x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(np.float32)
        lens = rng.integers(0, lp.shape[1] + 1, 4)
        ours = greedy_hypotheses(tok, lp, lens)
        assert ours == greedy_hypotheses(tok, torch.from_numpy(lp), torch.from_numpy(lens))
        assert greedy_ids(lp, lens) == greedy_ids(torch.from_numpy(lp), torch.from_numpy(lens))
        assert [h[0].tokens for h in ours] == [tok.tidy(ids) for ids in greedy_ids(lp, lens)]
