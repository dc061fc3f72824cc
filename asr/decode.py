"""CTC decoding: batched greedy search, and beam search with a lexicon and a word n-gram LM.

Beam search is flashlight-text's, through torchaudio's ``ctc_decoder``. Token ids are shared with it: our
blank (id 0) is its blank, our space (id 1) its word separator ``|``, every other id a character.
:class:`DecoderConfig` chooses how words are formed:

- lexicon: only words of a ``lexicon`` file, or with an ARPA ``lm`` alone the LM's unigrams, each spelled as
  its characters then ``|``;
- lexicon-free (no lexicon and no ``lm``, or ``lexicon_free=True``): any character string is a word; an
  ``lm`` scores the characters since the last separator as one word when a separator (or the end) comes.

Scores are the emissions' natural-log probabilities plus ``lm_weight`` times the LM's log10 probabilities
plus ``word_score`` per word. :func:`decode_batch` and :class:`DecodePool` spread a test set over processes.

Hotwords: flashlight has no hotword option, but torchaudio lets a Python object stand in for its LM. With
``hotwords`` set, :class:`_WordLM` scores every completed word itself (the n-gram LM if any, plus the word's
bonus), so a hotword gains its bonus each time a hypothesis completes it; with a lexicon, flashlight's
lookahead (the trie smeared with each word's score) favours it too. Hotwords outside the lexicon are added to
it. This Python scoring is slower than flashlight's own KenLM, so it is used only when needed.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flashlight.lib.text.decoder import LMState
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary
from torch import Tensor
from torchaudio.models.decoder import CTCDecoder as FlashlightDecoder
from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState, CTCHypothesis, ctc_decoder

from asr.text import BLANK, BLANK_ID, SPACE, CharTokenizer

log = logging.getLogger(__name__)

SEPARATOR = "|"  # flashlight's word boundary token, standing for our space
UNK = "<unk>"
KINDS = ("greedy", "beam")


class DecoderError(ValueError):
    """A decoder setting or file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class DecoderConfig:
    """How CTC log-probabilities become text. The beam fields are flashlight-text's options."""

    kind: str = "greedy"  # greedy | beam
    beam_size: int = 50  # hypotheses kept after each frame
    beam_size_token: int | None = None  # tokens tried per frame, the likeliest first; None: all
    beam_threshold: float = 25.0  # drop hypotheses scoring this much below the frame's best
    lm: str | None = None  # word n-gram LM: ARPA, or KenLM binary (which needs a lexicon)
    lexicon: str | None = None  # lines "word c h a r s |"; None with an lm: the lm's unigrams, spelled
    lexicon_free: bool = False  # with an lm: any character string is a word, scored <unk> if not the lm's
    lm_weight: float = 2.0  # times the LM's log10 probability
    word_score: float = 0.0  # added per word, with a lexicon, an lm or hotwords; positive favours more words
    nbest: int = 1  # hypotheses returned per utterance, distinct texts, best first
    hotwords: tuple[tuple[str, float], ...] = ()  # (word, bonus added to a hypothesis each time it has it)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise DecoderError(f"decoder kind must be greedy or beam, got {self.kind!r}")
        if self.kind == "greedy" and (
            self.lm or self.lexicon or self.lexicon_free or self.nbest != 1 or self.hotwords
        ):
            raise DecoderError(
                "lm, lexicon, lexicon_free, hotwords and nbest > 1 need the beam decoder (kind='beam')"
            )
        for word, bonus in self.hotwords:
            if not word or word.split() != [word] or not math.isfinite(bonus):
                raise DecoderError(f"hotword {word!r}: need one word and a finite bonus, got bonus {bonus}")
        if self.lexicon_free and self.lexicon:
            raise DecoderError("give a lexicon or ask for lexicon-free decoding, not both")
        if self.beam_size < 1 or not 1 <= self.nbest <= self.beam_size:
            raise DecoderError(
                f"need 1 <= nbest <= beam_size, got nbest={self.nbest} beam_size={self.beam_size}"
            )


@dataclass
class Hypothesis:
    """One transcript of an utterance."""

    text: str
    score: float  # log domain, higher is better; comparable within one utterance and decoder
    tokens: list[int]  # token ids of ``text``: characters and single spaces between words


def greedy_decode(log_probs: Tensor, lens: Tensor) -> list[list[int]]:
    """Best path per frame, repeats merged, blanks removed.

    log_probs: (B, T, V); lens: (B,) valid frames. Returns token ids per utterance.
    """
    best = log_probs.argmax(dim=-1)  # (B, T)
    new = best != best.roll(1, dims=1)  # a token differing from the previous frame's
    new[:, 0] = True
    valid = new & (best != BLANK_ID)
    valid &= best.new_ones(best.shape).cumsum(1) <= lens.to(best.device)[:, None]
    best, valid = best.cpu(), valid.cpu()
    return [row[mask].tolist() for row, mask in zip(best, valid)]


def spell(word: str) -> list[str]:
    """A word's lexicon spelling: its characters, then the word separator."""
    return [*word, SEPARATOR]


def write_lexicon(path: str | Path, words: Iterable[str]) -> int:
    """Write one "word<TAB>c h a r s |" line per word; returns the number written."""
    lines = [f"{w}\t{' '.join(spell(w))}\n" for w in words]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)


def read_lexicon(path: str | Path) -> dict[str, list[list[str]]]:
    """Word -> its spellings (token lists), from "word tok tok ..." lines."""
    lexicon: dict[str, list[list[str]]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DecoderError(f"{path}: cannot read the lexicon ({e.strerror})") from None
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise DecoderError(f"{path}:{line}: the lexicon is not UTF-8 text") from None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise DecoderError(f"{path}:{number}: expected a word and its spelling, got {line!r}")
        lexicon.setdefault(fields[0], []).append(fields[1:])
    return lexicon


def arpa_unigrams(path: str | Path) -> list[str]:
    """The words of an ARPA file's 1-gram section."""
    words: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = enumerate(f, 1)
            first = next((line.strip() for _, line in lines if line.strip()), "")
            if first != "\\data\\":
                raise DecoderError(f"{path}: not an ARPA file (a KenLM binary LM needs a lexicon file)")
            for _, line in lines:
                if line.strip() == "\\1-grams:":
                    break
            for number, line in lines:
                fields = line.split()
                if not fields or fields[0].startswith("\\"):
                    break
                if len(fields) < 2:
                    raise DecoderError(
                        f"{path}:{number}: expected a 1-gram 'log10-probability word [backoff]', "
                        f"got {line.strip()!r}"
                    )
                words.append(fields[1])
    except OSError as e:
        raise DecoderError(f"{path}: cannot read the LM ({e.strerror})") from None
    return words


class _WordLM(CTCDecoderLM):
    """Whole-word scores for flashlight: ``lm_weight`` times the n-gram LM's log10 probability (when there is
    an LM), plus the word's hotword bonus, plus ``word_score`` when lexicon-free.

    With a lexicon (``vocab``: the words in flashlight's word-id order) flashlight asks for each completed
    word by id and adds ``word_score`` itself. Lexicon-free, flashlight asks after every token, so the
    characters since the last separator are scored as one word at the next separator and at the end; a word
    LM given to flashlight directly would score characters as words. Give flashlight ``lm_weight=1``.
    """

    def __init__(self, config: DecoderConfig, symbols: Sequence[str], vocab: Sequence[str] | None) -> None:
        super().__init__()
        self.by_id = list(vocab) if vocab is not None else None
        self.kenlm: KenLM | None = None
        if config.lm is not None:
            words = self.by_id if self.by_id is not None else arpa_unigrams(config.lm)
            self.words = Dictionary(words if UNK in words else [*words, UNK])
            self.words.set_default_index(self.words.get_index(UNK))
            self.kenlm = KenLM(config.lm, self.words)
        self.lm_weight = config.lm_weight
        self.word_score = config.word_score if vocab is None else 0.0
        self.hotwords = dict(config.hotwords)
        self.symbols, self.separator = symbols, symbols.index(SEPARATOR)
        self.states: dict[LMState, tuple[LMState | None, str, float]] = {}  # -> (KenLM state, word, score)

    def _word(self, ken: LMState | None, word: str) -> tuple[LMState | None, float]:
        if not word:
            return ken, 0.0
        score = self.hotwords.get(word, 0.0) + self.word_score
        if self.kenlm is not None:
            ken, logp = self.kenlm.score(ken, self.words.get_index(word))
            score += self.lm_weight * logp
        return ken, score

    def start(self, start_with_nothing: bool) -> LMState:
        self.states.clear()  # flashlight decodes one utterance at a time
        state = CTCDecoderLMState()
        ken = self.kenlm.start(start_with_nothing) if self.kenlm is not None else None
        self.states[state] = (ken, "", 0.0)
        return state

    def score(self, state: LMState, token: int) -> tuple[LMState, float]:
        child = state.child(token)
        if child not in self.states:
            ken, word, _ = self.states[state]
            if self.by_id is not None or token == self.separator:  # a word is complete
                ken, score = self._word(ken, self.by_id[token] if self.by_id is not None else word)
                self.states[child] = (ken, "", score)
            else:
                self.states[child] = (ken, word + self.symbols[token], 0.0)
        return child, self.states[child][2]

    def finish(self, state: LMState) -> tuple[LMState, float]:
        ken, word, _ = self.states[state]
        ken, score = self._word(ken, word)
        if self.kenlm is not None:
            _, logp = self.kenlm.finish(ken)
            score += self.lm_weight * logp
        return state.child(-1), score


def _lexicon(config: DecoderConfig, symbols: Sequence[str]) -> dict[str, list[list[str]]] | None:
    """The lexicon to search with (None: lexicon-free), hotwords added, without spellings using unknown
    tokens."""
    known = set(symbols)
    for word, _ in config.hotwords:
        if not known.issuperset(spell(word)):
            raise DecoderError(f"hotword {word!r}: has characters the model cannot spell")
    if config.lexicon is not None:
        lexicon = read_lexicon(config.lexicon)
    elif config.lm is not None and not config.lexicon_free:
        lexicon = {w: [spell(w)] for w in arpa_unigrams(config.lm) if w not in ("<s>", "</s>", UNK)}
    else:
        return None
    kept = {w: [s for s in spellings if known.issuperset(s)] for w, spellings in lexicon.items()}
    kept = {w: spellings for w, spellings in kept.items() if spellings}
    if not kept:
        raise DecoderError("the lexicon has no word the tokenizer can spell")
    if len(kept) < len(lexicon):
        log.warning(
            "lexicon: %d of %d words need tokens outside the vocabulary, dropped",
            len(lexicon) - len(kept),
            len(lexicon),
        )
    for word, _ in config.hotwords:
        kept.setdefault(word, [spell(word)])
    return kept


def _flashlight(
    config: DecoderConfig, symbols: list[str], lexicon: dict[str, list[list[str]]] | None
) -> FlashlightDecoder:
    """torchaudio's flashlight decoder for ``config``; lexicon and word list go through temporary files."""
    words = None if lexicon is None else [*lexicon, *([] if UNK in lexicon else [UNK])]  # word-id order
    lm, lm_weight = config.lm, config.lm_weight
    if config.hotwords or (lexicon is None and config.lm is not None):
        lm, lm_weight = _WordLM(config, symbols, words), 1.0
    options = dict(
        tokens=symbols,
        lm=lm,
        nbest=config.beam_size,  # all final hypotheses: those of the same text are merged later
        beam_size=config.beam_size,
        beam_size_token=config.beam_size_token,
        beam_threshold=config.beam_threshold,
        lm_weight=lm_weight,
        word_score=config.word_score,
        blank_token=BLANK,
        sil_token=SEPARATOR,
        unk_word=UNK,
    )
    if lexicon is None or words is None:
        return ctc_decoder(lexicon=None, **options)
    with tempfile.TemporaryDirectory() as tmp:
        path, word_list = Path(tmp) / "lexicon.txt", Path(tmp) / "words.txt"
        path.write_text(
            "".join(f"{w} {' '.join(s)}\n" for w, ss in lexicon.items() for s in ss), encoding="utf-8"
        )
        word_list.write_text("".join(f"{w}\n" for w in words), encoding="utf-8")
        return ctc_decoder(lexicon=str(path), lm_dict=str(word_list), **options)


class CTCDecoder:
    """Greedy or beam search over CTC log-probabilities, per :class:`DecoderConfig`."""

    def __init__(self, tokenizer: CharTokenizer, config: DecoderConfig) -> None:
        self.tokenizer, self.config = tokenizer, config
        self._space = tokenizer.symbols.index(SPACE)
        self._beam: FlashlightDecoder | None = None
        self._lexicon = None
        if config.kind == "beam":
            if config.lm is not None and not Path(config.lm).is_file():
                raise DecoderError(f"{config.lm}: LM file not found")
            symbols = [SEPARATOR if s == SPACE else s for s in tokenizer.symbols]  # ids shared with ours
            self._lexicon = _lexicon(config, symbols)
            try:
                self._beam = _flashlight(config, symbols, self._lexicon)
            except RuntimeError as e:  # KenLM's: the last line of its message says what is wrong
                if config.lm is None:
                    raise
                raise DecoderError(f"{config.lm}: cannot load the LM: {str(e).splitlines()[-1]}") from None

    def decode(self, log_probs: Tensor, lens: Tensor) -> list[list[Hypothesis]]:
        """log_probs (B, T, V), lens (B,) -> per utterance, up to ``nbest`` hypotheses, best first."""
        if self._beam is None:
            frames = torch.arange(log_probs.shape[1], device=log_probs.device)
            valid = frames < lens.to(log_probs.device)[:, None]  # (B, T)
            scores = (log_probs.max(-1).values * valid).sum(1).tolist()  # (B,) best path log-probabilities
            return [
                [Hypothesis(self.tokenizer.decode(ids), score, self._words(ids))]
                for ids, score in zip(greedy_decode(log_probs, lens), scores)
            ]
        emissions = log_probs.detach().float().cpu()
        out = []
        for row, n in zip(emissions, lens.tolist()):
            row = row[:n]  # (n, V)
            if self._lexicon is not None:
                # Lexicon words end with the separator, which our model does not emit after the last word:
                # one more frame allowing only the separator or blank lets the last word end.
                end = torch.full((1, row.shape[1]), float("-inf"))
                end[0, [BLANK_ID, self._space]] = 0.0
                row = torch.cat([row, end])
            out.append(self._hypotheses(self._beam(row[None].contiguous())[0]))
        return out

    def _words(self, ids: list[int]) -> list[int]:
        """Ids without leading, trailing or repeated spaces (flashlight opens and closes with separators)."""
        out: list[int] = []
        for i in ids:
            if i != self._space or (out and out[-1] != self._space):
                out.append(i)
        return out[:-1] if out and out[-1] == self._space else out

    def _hypotheses(self, results: list[CTCHypothesis]) -> list[Hypothesis]:
        best: dict[str, Hypothesis] = {}
        for r in sorted(results, key=lambda r: -r.score):
            tokens = self._words(r.tokens.tolist())
            text = self.tokenizer.decode(tokens)
            if text not in best:
                best[text] = Hypothesis(text, float(r.score), tokens)
            if len(best) == self.config.nbest:
                break
        return list(best.values())


Emission = tuple[np.ndarray, int]  # (T, V) log-probabilities of one utterance, and its valid frames


class _DecoderCache:
    """The decoder of the last config asked for: a pool decodes with one config at a time."""

    def __init__(self, tokenizer: CharTokenizer) -> None:
        self.tokenizer = tokenizer
        self.config: DecoderConfig | None = None
        self.decoder: CTCDecoder | None = None

    def decode(self, config: DecoderConfig, items: Sequence[Emission]) -> list[list[Hypothesis]]:
        if config != self.config or self.decoder is None:
            self.decoder, self.config = CTCDecoder(self.tokenizer, config), config
        return [self.decoder.decode(torch.from_numpy(lp[None, :n]), torch.tensor([n]))[0] for lp, n in items]


_worker: _DecoderCache | None = None  # in each pool process


def _init_worker(tokenizer: dict) -> None:
    global _worker
    torch.set_num_threads(1)
    _worker = _DecoderCache(CharTokenizer.from_dict(tokenizer))


def _decode_chunk(task: tuple[DecoderConfig, list[Emission]]) -> list[list[Hypothesis]]:
    assert _worker is not None, "the pool initializer builds the worker's decoder cache"
    return _worker.decode(*task)


class DecodePool:
    """Decode many utterances in ``processes`` worker processes (in this one when ``processes == 1``).

    Each worker builds a decoder once per config, so a grid search over configs reuses one pool::

        with DecodePool(tokenizer, processes=4) as pool:
            hyps = pool.decode(config, [(log_probs, n_frames), ...])

    Workers start by forkserver or spawn, which import the main module again: a script using processes > 1
    needs the ``if __name__ == "__main__":`` guard.
    """

    def __init__(self, tokenizer: CharTokenizer, processes: int = 1) -> None:
        if processes < 1:
            raise DecoderError(f"processes must be at least 1, got {processes}")
        self.processes = processes
        self._local = _DecoderCache(tokenizer)
        self._pool = None
        if processes > 1:
            # forkserver (where there is one) forks workers from a process that has imported this module,
            # so each starts in milliseconds; spawn imports torch anew in each.
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            if method == "forkserver":
                ctx.set_forkserver_preload([__name__])
            self._pool = ctx.Pool(processes, initializer=_init_worker, initargs=(tokenizer.to_dict(),))

    def decode(self, config: DecoderConfig, emissions: Sequence[Emission]) -> list[list[Hypothesis]]:
        """Hypotheses for each (log_probs (T, V) float32, valid frames) pair, in order."""
        if self._pool is None:
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


def decode_batch(
    tokenizer: CharTokenizer, config: DecoderConfig, emissions: Sequence[Emission], processes: int = 1
) -> list[list[Hypothesis]]:
    """Decode many utterances, each a (log_probs (T, V) float32, valid frames) pair, over processes."""
    with DecodePool(tokenizer, processes) as pool:
        return pool.decode(config, emissions)
