"""Decoding many utterances, in this process or spread over worker processes (NumPy emissions, no torch)."""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from asr.decoding.beam import BeamSearch
from asr.decoding.config import DecoderConfig, DecoderError, Emission, Hypothesis
from asr.decoding.greedy import greedy_hypotheses
from asr.text import Tokenizer, tokenizer_from_dict


class BeamCache:
    """The beam searches of the ``size`` configs used last, each built once (its LM loaded, its lexicon's
    trie smeared) and reused for an equal config. Each holds its own LM: memory holds ``size`` of them (one
    more while a new one is built). A beam search decodes one utterance at a time, so whoever gets one holds
    ``lock`` until done with it."""

    def __init__(self, tokenizer: Tokenizer, size: int = 1) -> None:
        if size < 1:
            raise ValueError(f"a beam cache holds at least one beam search, got size={size}")
        self.tokenizer, self.size = tokenizer, size
        self.lock = threading.Lock()
        self._beams: OrderedDict[DecoderConfig, BeamSearch] = OrderedDict()

    def get(self, config: DecoderConfig) -> BeamSearch:
        """``config``'s beam search, built now unless kept; :class:`DecoderError` if it cannot be built."""
        beam = self._beams.pop(config, None)
        if beam is None:
            beam = BeamSearch(self.tokenizer, config)
        self._beams[config] = beam
        while len(self._beams) > self.size:
            self._beams.popitem(last=False)
        return beam


class _Decoder:
    """Decodes with any config, its beam searches from ``beams`` (by default the last config's only)."""

    def __init__(self, tokenizer: Tokenizer, beams: BeamCache | None = None) -> None:
        self.tokenizer = tokenizer
        self.beams = beams if beams is not None else BeamCache(tokenizer)

    def prepare(self, config: DecoderConfig) -> None:
        if config.kind == "beam":
            with self.beams.lock:
                self.beams.get(config)

    def decode(self, config: DecoderConfig, items: Sequence[Emission]) -> list[list[Hypothesis]]:
        if config.kind == "greedy":
            return [greedy_hypotheses(self.tokenizer, lp[None, :n], np.array([n]))[0] for lp, n in items]
        with self.beams.lock:
            beam = self.beams.get(config)
            return [beam(lp[:n]) for lp, n in items]


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

    ``beams`` holds the beam searches built in this process (by default the pool's own, the last config's
    only): a :class:`BeamCache` that outlives the pool keeps them for later pools. Workers build their own.

    Workers start by forkserver or spawn, which import the main module again: a script using processes > 1
    needs the ``if __name__ == "__main__":`` guard.
    """

    def __init__(self, tokenizer: Tokenizer, processes: int = 1, beams: BeamCache | None = None) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise DecoderError(f"processes must be at least 1, got {processes!r}")
        if beams is not None and beams.tokenizer is not tokenizer:
            raise ValueError("the beam cache was built for another tokenizer")
        self.tokenizer, self.processes = tokenizer, processes
        self._local = _Decoder(tokenizer, beams)
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
