"""Decoding many utterances, in this process or spread over worker processes (NumPy emissions, no torch)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence
from typing import Any

import numpy as np

from asr.decoding.beam import BeamSearch
from asr.decoding.config import DecoderConfig, DecoderError, Emission, Hypothesis
from asr.decoding.greedy import greedy_hypotheses
from asr.text import Tokenizer, tokenizer_from_dict


class _Decoder:
    """Decodes with one config at a time, the beam search of the last config built once."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.config: DecoderConfig | None = None
        self.beam: BeamSearch | None = None

    def prepare(self, config: DecoderConfig) -> None:
        if config.kind == "beam" and (config != self.config or self.beam is None):
            self.beam, self.config = BeamSearch(self.tokenizer, config), config

    def decode(self, config: DecoderConfig, items: Sequence[Emission]) -> list[list[Hypothesis]]:
        if config.kind == "greedy":
            return [greedy_hypotheses(self.tokenizer, lp[None, :n], np.array([n]))[0] for lp, n in items]
        self.prepare(config)
        assert self.beam is not None
        return [self.beam(lp[:n]) for lp, n in items]


_worker: _Decoder | None = None  # in each pool process


def _init_worker(tokenizer: dict[str, Any]) -> None:
    global _worker
    _worker = _Decoder(tokenizer_from_dict(tokenizer))


def _decode_chunk(task: tuple[DecoderConfig, list[Emission]]) -> list[list[Hypothesis]]:
    assert _worker is not None, "the pool initializer builds the worker's decoder"
    return _worker.decode(*task)


class DecodePool:
    """Decode many utterances in ``processes`` worker processes (in this one when ``processes == 1``).

    Each worker builds a beam search once per config, so a grid search over configs reuses one pool::

        with DecodePool(tokenizer, processes=4) as pool:
            hyps = pool.decode(config, [(log_probs, n_frames), ...])

    Workers start by forkserver or spawn, which import the main module again: a script using processes > 1
    needs the ``if __name__ == "__main__":`` guard.
    """

    def __init__(self, tokenizer: Tokenizer, processes: int = 1) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise DecoderError(f"processes must be at least 1, got {processes!r}")
        self.tokenizer, self.processes = tokenizer, processes
        self._local = _Decoder(tokenizer)
        self._pool = None
        if processes > 1:
            # forkserver (where there is one) forks workers from a process that has imported this module,
            # so each starts in milliseconds; spawn imports it anew in each.
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            if method == "forkserver":
                ctx.set_forkserver_preload([__name__])
            self._pool = ctx.Pool(processes, initializer=_init_worker, initargs=(tokenizer.to_dict(),))

    def prepare(self, config: DecoderConfig) -> None:
        """Build ``config``'s beam search now, so that an LM or lexicon that cannot be used is an error
        (:class:`DecoderError`) before any work; :meth:`decode` would build it on first use."""
        self._local.prepare(config)

    def decode(self, config: DecoderConfig, emissions: Sequence[Emission]) -> list[list[Hypothesis]]:
        """Hypotheses for each (log_probs (T, V) float32, valid frames) pair, in order.

        Greedy search always runs here: it is cheaper than sending the emissions to a worker.
        """
        if self._pool is None or config.kind == "greedy":
            return self._local.decode(config, emissions)
        size = max(1, -(-len(emissions) // (4 * self.processes)))  # ~4 chunks a worker evens out lengths
        chunks = [(config, list(emissions[i : i + size])) for i in range(0, len(emissions), size)]
        return [hyps for part in self._pool.imap(_decode_chunk, chunks) for hyps in part]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
