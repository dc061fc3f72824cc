"""Hand-made CTC log-probabilities for the decoder tests: frames giving chosen tokens chosen probabilities."""

from __future__ import annotations

import math

import torch

from asr.text import BLANK_ID, Tokenizer


def frames(tok: Tokenizer, spec: list[dict[str, float]]) -> torch.Tensor:
    """(T, V) log-probs: each frame gives the listed tokens ("_": the blank) these probabilities and shares
    what is left among the other tokens."""
    v = tok.vocab_size
    lp = torch.empty(len(spec), v)
    for t, probs in enumerate(spec):
        lp[t] = math.log(max(1 - sum(probs.values()), 1e-6) / (v - len(probs)))
        for token, p in probs.items():
            lp[t, BLANK_ID if token == "_" else tok.symbols.index(token)] = math.log(p)
    return lp


def spelled(tok: Tokenizer, text: str, p: float = 0.98) -> list[dict[str, float]]:
    """Peaked frames reading ``text`` in ``tok``'s tokens, with a blank between repeated tokens."""
    out, ids = [], tok.encode(text)
    for k, i in enumerate(ids):
        if k and ids[k - 1] == i:
            out.append({"_": p})
        out.append({tok.symbols[i]: p})
    return out
