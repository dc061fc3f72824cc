"""CTC forced alignment in NumPy (asr.align): torchaudio's path on model-like emissions, always the best."""

import itertools

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from asr.align import forced_align, token_spans


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return (x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(np.float32)


def _case(rng: np.random.Generator, slack: int) -> tuple[np.ndarray, list[int]]:
    """Random log-probs (T, V) and a transcript, T between the fewest frames it needs and ``slack`` more."""
    vocab, length = int(rng.integers(2, 30)), int(rng.integers(1, 30))
    targets = rng.integers(1, vocab, length)
    repeats = int((targets[1:] == targets[:-1]).sum())
    frames = length + repeats + int(rng.integers(0, slack + 1))
    return _log_softmax(rng.normal(0, rng.choice([0.3, 1.0, 5.0]), (frames, vocab))), targets.tolist()


def _torchaudio(log_probs: np.ndarray, targets: list[int]) -> tuple[np.ndarray, np.ndarray]:
    path, scores = AF.forced_align(
        torch.from_numpy(log_probs)[None], torch.tensor([targets], dtype=torch.int32), blank=0
    )
    return path[0].numpy(), scores[0].numpy()


def test_equals_torchaudio_on_random_emissions():
    rng = np.random.default_rng(0)
    for k in range(1500):
        log_probs, targets = _case(rng, slack=(1, 8, 80)[k % 3])
        path, scores = forced_align(log_probs, targets)
        theirs, their_scores = _torchaudio(log_probs, targets)
        np.testing.assert_array_equal(path, theirs)
        np.testing.assert_array_equal(scores, their_scores)
        spans = token_spans(path, scores)
        merged = AF.merge_tokens(torch.from_numpy(theirs), torch.from_numpy(their_scores).exp())
        assert [(s.token, s.start, s.end) for s in spans] == [(s.token, s.start, s.end) for s in merged]
        assert [s.score for s in spans] == pytest.approx([s.score for s in merged], abs=1e-6)


def _alignments(frames: int, targets: list[int]) -> list[list[int]]:
    """Every CTC path of ``targets`` over ``frames`` frames (blank 0)."""
    out = []
    for path in itertools.product(range(max(targets) + 1), repeat=frames):
        tokens = [k for k, _ in itertools.groupby(path) if k != 0]
        if tokens == targets:
            out.append(list(path))
    return out


def test_finds_the_best_path_even_among_ties():
    """Exhaustive search on small cases with integer log-probabilities, where equal scores abound. (On such
    ties torchaudio 2.11's CPU kernel was seen to return a path scoring below the best.)"""
    rng = np.random.default_rng(1)
    for _ in range(300):
        vocab, length = int(rng.integers(2, 4)), int(rng.integers(1, 4))
        targets = rng.integers(1, vocab, length).tolist()
        frames = length + sum(a == b for a, b in zip(targets, targets[1:])) + int(rng.integers(0, 3))
        log_probs = rng.integers(-3, 1, (frames, vocab)).astype(np.float32)
        path, scores = forced_align(log_probs, targets)
        best = max(log_probs[np.arange(frames), p].sum() for p in _alignments(frames, targets))
        assert [k for k, _ in itertools.groupby(path.tolist()) if k != 0] == targets
        assert scores.sum() == best


def test_refusals():
    log_probs = _log_softmax(np.zeros((3, 4)))
    for targets in ([], [0, 1], [4], [-1]):
        with pytest.raises(ValueError):
            forced_align(log_probs, targets)
    with pytest.raises(ValueError, match="cannot align 2 tokens to 1 frames"):
        forced_align(log_probs[:1], [1, 1])
    assert forced_align(log_probs[:3], [2, 2])[0].tolist() == [2, 0, 2]
