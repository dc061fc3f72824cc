"""The one inference API: load a model once, then transcribe, or evaluate on a manifest.

:class:`Transcriber` is what the ``asr`` command, the recipes, LM tuning and a server call (``asr.load_model``
returns one)::

    model = asr.load_model("exp/an4/model.pt")
    model.transcribe(["a.wav", wave], DecoderConfig("beam", lm="lm.arpa", nbest=5), timestamps=True)

Inputs are audio paths or 16 kHz mono float32 waveforms. Each path's duration is read from its header first;
inputs up to ``window_s`` seconds are sorted by length and run through the model in batches of similar length
(:func:`asr.batching.pack_sorted`), while a reader thread loads the next chunk of files; longer ones are run
one at a time in overlapping windows (:mod:`asr.longform`), so memory stays bounded whatever the length.
Greedy search reduces each batch where it was computed (only the best path leaves the device); beam search
runs over a :class:`asr.decoding.DecodePool`; the beam searches of the last ``BEAMS_KEPT`` configs (LM
loaded, lexicon trie smeared) are kept for later calls. Words are timed by forced alignment
(:func:`asr.timing.align_words`).

Two backends give the log-probabilities: :class:`asr.recognizer.Recognizer` (torch, for ``.pt``/``.ckpt``
files) and :class:`asr.onnx_model.OnnxRecognizer` (onnxruntime, for ``.onnx`` files). This module imports no
torch: torch is imported when a torch model is loaded, so a Transcriber of an ONNX model never imports it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from asr.audio import SAMPLE_RATE, AudioError, audio_duration, load_audio, stream_audio
from asr.batching import MAX_BATCH_SECONDS, gather_emissions, unpad
from asr.decoding import BeamCache, DecodePool, DecoderConfig, Emission, Hypothesis
from asr.decoding.greedy import greedy_hypotheses
from asr.errors import AudioFailure, DataError, UsageError, first_line
from asr.longform import OVERLAP_S, WINDOW_S, WINDOWS_PER_BATCH, Window, owned_words, window_plan, windows
from asr.manifest import Utterance, read_manifest
from asr.metrics import ErrorCounts, score, write_report
from asr.onnx_model import OnnxRecognizer, is_onnx
from asr.outputs import refuse_overwrite
from asr.spec import ModelSpec
from asr.store import resolve
from asr.text import Tokenizer
from asr.timing import Word, align_words

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

READ_CHUNK = 64  # files read ahead together by the reader thread
BEAMS_KEPT = 2  # beam searches a Transcriber keeps for later calls, each with its own LM in memory
Input = str | Path | np.ndarray


@dataclass
class Transcript:
    """The result for one input."""

    path: str  # the input's path, printable (undecodable bytes as \\xNN), or "<waveform i>"
    text: str | None  # None when the input could not be read
    error: str | None = None  # one line, when it could not
    words: list[Word] | None = None  # timed words, with timestamps=True
    nbest: list[Hypothesis] | None = None  # the decoder's hypotheses, best first; None for windowed inputs


@dataclass
class Emitted:
    """A manifest's readable utterances run through the model once, to be decoded and scored many times."""

    utterances: list[Utterance]
    emissions: list[Emission]
    skipped: list[str] = field(default_factory=list)  # one line per unreadable file


def printable(path: str | Path) -> str:
    """A path as text that can always be printed: bytes that are not UTF-8 become ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


class Acoustic(Protocol):
    """What a :class:`Transcriber` runs: waveforms to CTC log-probabilities, as
    :class:`asr.recognizer.Recognizer` (torch tensors on its device) and
    :class:`asr.onnx_model.OnnxRecognizer` (NumPy arrays) give them."""

    tokenizer: Tokenizer
    min_samples: int  # shorter inputs are padded to it
    frame_seconds: float  # seconds per output frame

    @property
    def spec(self) -> ModelSpec: ...

    def eval(self) -> Acoustic: ...

    def batches(
        self, waves: Sequence[np.ndarray], max_batch_seconds: float
    ) -> Iterator[tuple[list[int], Any, Any]]: ...

    def run(self, waves: Sequence[np.ndarray]) -> tuple[Any, Any]: ...


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device named; :class:`UsageError` for a name torch does not know or a device not here."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UsageError(f"device {device!r}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"device {device!r}: CUDA is not available on this machine")
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"device {device!r}: this machine has {count} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"device {device!r}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"device {device!r}: only cpu, cuda and mps are supported")
    return dev


def _load(path: str) -> np.ndarray | str:
    """The waveform, or the one-line reason it cannot be read."""
    try:
        return load_audio(path)
    except (AudioError, UnicodeError, ValueError) as e:
        return _unreadable(path, e)


def _unreadable(path: str, e: Exception) -> str:
    if isinstance(e, AudioError):
        return f"{printable(path)}: {e.problem}"
    return f"{printable(path)}: cannot read the file ({first_line(e)})"


def _check_wave(wave: np.ndarray) -> str | None:
    """Why a waveform given in memory cannot be transcribed, or None."""
    if wave.ndim != 1:
        return f"expected a mono waveform (one dimension), got shape {wave.shape}"
    if not len(wave):
        return "no samples"
    if not np.isfinite(wave).all():
        return "contains NaN or infinite samples"
    return None


class Transcriber:
    """A loaded model: transcribe paths or waveforms, or evaluate on a manifest."""

    def __init__(self, recognizer: Acoustic, max_batch_seconds: float = MAX_BATCH_SECONDS) -> None:
        self.recognizer = recognizer.eval()
        self.spec: ModelSpec = recognizer.spec
        self.tokenizer: Tokenizer = recognizer.tokenizer
        self.max_batch_seconds = max_batch_seconds
        self.beams = BeamCache(self.tokenizer, BEAMS_KEPT)  # built here; worker processes build their own

    @classmethod
    def load(cls, model: str | Path | None = None, device: str | torch.device = "cpu") -> Transcriber:
        """Load a model onto ``device``: a model file (an ``.onnx`` export, run by onnxruntime on the CPU
        without torch; or an exported model or training checkpoint, run by torch), the name of a model in the
        store, or with None ``$ASR_MODEL`` or the store's default (:func:`asr.store.resolve`)."""
        path = resolve(model)
        if is_onnx(path):
            if str(device) != "cpu":
                raise UsageError(f"device {str(device)!r}: ONNX models run on the CPU (onnxruntime)")
            return cls(OnnxRecognizer(path))
        from asr.checkpoint import load_recognizer

        return cls(load_recognizer(path, resolve_device(device)))

    def prepare(self, decoder: DecoderConfig) -> None:
        """Build ``decoder``'s beam search now and keep it for later calls: :class:`asr.decoding.DecoderError`
        for an LM or lexicon that cannot be used, before any work (a server's at its start)."""
        with self._pool(1) as pool:
            pool.prepare(decoder)

    def _pool(self, processes: int) -> DecodePool:
        """A decode pool whose beam searches in this process come from, and stay in, :attr:`beams`."""
        return DecodePool(self.tokenizer, processes, self.beams)

    def emissions(self, waves: Sequence[np.ndarray]) -> list[Emission]:
        """Each waveform's (T', V) float32 log-probabilities on the CPU and T' (for beam search, scoring)."""
        return gather_emissions(self.recognizer.batches(waves, self.max_batch_seconds), len(waves))

    def _decode(
        self, log_probs: Any, lens: Any, decoder: DecoderConfig, pool: DecodePool, timestamps: bool
    ) -> list[tuple[list[Hypothesis], list[Word] | None]]:
        """Hypotheses (and timed words) of a batch of log_probs (B, T', V), lens (B,), of either backend."""
        if decoder.kind == "greedy":
            hyps = greedy_hypotheses(self.tokenizer, log_probs, lens)
            rows = unpad(log_probs, lens) if timestamps else []
        else:
            rows = unpad(log_probs, lens)
            hyps = pool.decode(decoder, rows)
        if not timestamps:
            return [(h, None) for h in hyps]
        frame_s = self.recognizer.frame_seconds
        return [
            (h, align_words(row, h[0].tokens if h else [], self.tokenizer, frame_s))
            for (row, _), h in zip(rows, hyps)
        ]

    def align(self, wave: np.ndarray, text: str) -> list[Word]:
        """Timed words of a known ``text`` in one waveform, by forced alignment. Raises
        :class:`asr.text.TokenizerError` for text the tokenizer cannot represent and ValueError for text too
        long for the audio."""
        ((log_probs, _),) = unpad(*self.recognizer.run([wave]))
        ids = self.tokenizer.encode(text)
        return align_words(log_probs, ids, self.tokenizer, self.recognizer.frame_seconds)

    def transcribe(
        self,
        inputs: Sequence[Input],
        decoder: DecoderConfig | None = None,
        *,
        timestamps: bool = False,
        window_s: float = WINDOW_S,
        overlap_s: float = OVERLAP_S,
        processes: int = 1,
        progress: Callable[[int], object] | None = None,
    ) -> list[Transcript]:
        """Transcripts of audio paths or waveforms, in order; an unreadable input gets its one-line error.

        ``decoder`` defaults to greedy; beam search runs over ``processes`` worker processes (with one, in
        this process, on the beam search kept from an earlier call with an equal config). With ``timestamps``
        each transcript carries its timed words. Inputs longer than ``window_s`` are read and decoded in
        windows overlapping by ``overlap_s`` (:mod:`asr.longform`). ``progress`` is called with the number of
        inputs finished, as they finish. Raises :class:`UsageError` for windows that make no sense and
        :class:`asr.decoding.DecoderError` for a decoder that cannot be built, before any audio is read.
        """
        out: list[Transcript | None] = [None] * len(inputs)
        for i, transcript in self.stream(
            inputs,
            decoder,
            timestamps=timestamps,
            window_s=window_s,
            overlap_s=overlap_s,
            processes=processes,
        ):
            out[i] = transcript
            if progress is not None:
                progress(1)
        return out  # type: ignore[return-value]  # every index is filled

    def stream(
        self,
        inputs: Sequence[Input],
        decoder: DecoderConfig | None = None,
        *,
        timestamps: bool = False,
        window_s: float = WINDOW_S,
        overlap_s: float = OVERLAP_S,
        processes: int = 1,
    ) -> Iterator[tuple[int, Transcript]]:
        """:meth:`transcribe`'s results as each is ready: (index into ``inputs``, transcript), the unreadable
        first, then the others by length."""
        window, hop = window_plan(window_s, overlap_s, self.recognizer.min_samples)
        decoder = decoder or DecoderConfig()
        with self._pool(processes) as pool:
            pool.prepare(decoder)
            names: list[str] = []
            lengths: dict[int, int] = {}  # samples (estimated from the header for paths)
            for i, item in enumerate(inputs):
                if isinstance(item, np.ndarray):
                    names.append(f"<waveform {i}>")
                    problem = _check_wave(item)
                    if problem is None:
                        lengths[i] = len(item)
                    else:
                        yield i, Transcript(names[i], None, f"{names[i]}: {problem}")
                    continue
                names.append(printable(item))
                try:
                    lengths[i] = int(round(audio_duration(item) * SAMPLE_RATE))
                except (AudioError, UnicodeError, ValueError) as e:
                    yield i, Transcript(names[i], None, _unreadable(item, e))
            short = sorted((i for i, n in lengths.items() if n <= window), key=lengths.__getitem__)
            chunks = [short[k : k + READ_CHUNK] for k in range(0, len(short), READ_CHUNK)]
            for chunk, loaded in _prefetched(inputs, chunks):
                good = [(i, w) for i, w in zip(chunk, loaded) if not isinstance(w, str)]
                for i, w in zip(chunk, loaded):
                    if isinstance(w, str):
                        yield i, Transcript(names[i], None, w)
                yield from self._short(good, names, decoder, pool, timestamps)
            for i in (i for i, n in lengths.items() if n > window):
                yield i, self._long(inputs[i], names[i], window, hop, decoder, pool)

    def _short(
        self,
        good: list[tuple[int, np.ndarray]],
        names: list[str],
        decoder: DecoderConfig,
        pool: DecodePool,
        timestamps: bool,
    ) -> Iterator[tuple[int, Transcript]]:
        for idx, log_probs, lens in self.recognizer.batches([w for _, w in good], self.max_batch_seconds):
            for k, (hyps, words) in zip(idx, self._decode(log_probs, lens, decoder, pool, timestamps)):
                i = good[k][0]
                yield i, Transcript(names[i], hyps[0].text if hyps else "", words=words, nbest=hyps)

    def _long(
        self, item: Input, name: str, window: int, hop: int, decoder: DecoderConfig, pool: DecodePool
    ) -> Transcript:
        """One input longer than a window, in overlapping windows; its words are always timed."""
        overlap = (window - hop) / SAMPLE_RATE
        words: list[Word] = []
        batch: list[Window] = []
        try:
            pieces = [item] if isinstance(item, np.ndarray) else stream_audio(item)
            for w in windows(pieces, window, hop):
                batch.append(w)
                if len(batch) == WINDOWS_PER_BATCH or w[2]:
                    log_probs, lens = self.recognizer.run([wave for _, wave, _ in batch])
                    timed = [ws or [] for _, ws in self._decode(log_probs, lens, decoder, pool, True)]
                    words += owned_words(batch, timed, overlap)
                    batch = []
        except (AudioError, UnicodeError) as e:  # reading the file
            return Transcript(name, None, _unreadable(name, e))
        except ValueError as e:  # a window whose output cannot be decoded or timed
            return Transcript(name, None, f"{name}: cannot transcribe ({first_line(e)})")
        return Transcript(name, " ".join(w.text for w in words), words=words)

    def emit(
        self, manifest: str | Path | Sequence[Utterance], progress: Callable[[int], object] | None = None
    ) -> Emitted:
        """Run the model once over a manifest (its path, or its utterances already read), each utterance
        whole; unreadable files are skipped with their one-line errors. :class:`DataError` for a manifest
        with no utterances."""
        utts = read_manifest(manifest) if isinstance(manifest, (str, Path)) else list(manifest)
        if not utts:
            raise DataError(f"{manifest if isinstance(manifest, (str, Path)) else 'manifest'}: no utterances")
        paths = [u.audio_filepath for u in utts]
        emitted = Emitted([], [])
        chunks = [list(range(k, min(k + READ_CHUNK, len(utts)))) for k in range(0, len(utts), READ_CHUNK)]
        for chunk, loaded in _prefetched(paths, chunks):
            good = [(i, w) for i, w in zip(chunk, loaded) if not isinstance(w, str)]
            emitted.skipped += [w for w in loaded if isinstance(w, str)]
            emitted.utterances += [utts[i] for i, _ in good]
            emitted.emissions += self.emissions([w for _, w in good])
            if progress is not None:
                progress(len(chunk))
        return emitted

    def score(
        self,
        emitted: Emitted,
        decoder: DecoderConfig | None = None,
        report: str | Path | None = None,
        processes: int = 1,
    ) -> ErrorCounts:
        """Decode emitted utterances and score them: corpus WER/CER counts. ``report`` gets one JSON line per
        utterance (reference, hypothesis, errors)."""
        with self._pool(processes) as pool:
            return self._score(emitted, decoder or DecoderConfig(), report, pool)

    def _score(
        self, emitted: Emitted, decoder: DecoderConfig, report: str | Path | None, pool: DecodePool
    ) -> ErrorCounts:
        if not emitted.utterances:
            raise DataError("no utterances to score")
        hyps = [h[0].text if h else "" for h in pool.decode(decoder, emitted.emissions)]
        refs = [u.text for u in emitted.utterances]
        total, per_utt = score(refs, hyps)
        if report is not None:
            write_report(report, [u.id for u in emitted.utterances], refs, hyps, per_utt)
        return total

    def evaluate(
        self,
        manifest: str | Path | Sequence[Utterance],
        decoder: DecoderConfig | None = None,
        report: str | Path | None = None,
        processes: int = 1,
        progress: Callable[[int], object] | None = None,
    ) -> tuple[ErrorCounts, int]:
        """Corpus WER/CER counts over a manifest and the number of unreadable files skipped (each logged).

        Refused before any work: a ``report`` that would replace the manifest (:class:`OutputError`), a
        decoder that cannot be built. :class:`DataError` for an empty manifest, :class:`AudioFailure` when
        no file can be read.
        """
        if report is not None and isinstance(manifest, (str, Path)):
            refuse_overwrite(report, [manifest])
        decoder = decoder or DecoderConfig()
        with self._pool(processes) as pool:
            pool.prepare(decoder)
            emitted = self.emit(manifest, progress)
            for line in emitted.skipped:
                log.warning("skipped: %s", line)
            if not emitted.utterances:
                raise AudioFailure(f"none of the {len(emitted.skipped)} audio files could be read")
            return self._score(emitted, decoder, report, pool), len(emitted.skipped)


def _prefetched(inputs: Sequence[Input], chunks: list[list[int]]) -> Iterator[tuple[list[int], list]]:
    """(chunk, its waveforms or one-line errors), the next chunk read in a thread while this one is used."""

    def read(chunk: list[int]) -> list[np.ndarray | str]:
        return [inputs[i] if isinstance(inputs[i], np.ndarray) else _load(str(inputs[i])) for i in chunk]

    with ThreadPoolExecutor(max_workers=1) as reader:
        future = reader.submit(read, chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            loaded = future.result()
            if k + 1 < len(chunks):
                future = reader.submit(read, chunks[k + 1])
            yield chunk, loaded


def output_paths(paths: Sequence[str | Path], output_dir: str | Path, suffix: str) -> list[Path]:
    """Where each input's transcript goes under ``output_dir``: its file name with ``suffix`` for its
    extension, in its folder relative to the inputs' common folder, so files of one folder stay side by
    side and same-named files of different folders do not overwrite each other.

    Raises :class:`UsageError`, naming both, for two different inputs that would still share an output: the
    same name but for the extension, in one folder.
    """
    absolute = [os.path.abspath(p) for p in paths]
    common = os.path.commonpath([os.path.dirname(a) for a in absolute]) if paths else ""
    outs = [
        Path(output_dir, os.path.relpath(os.path.dirname(a), common), Path(a).stem + suffix) for a in absolute
    ]
    first: dict[Path, int] = {}
    for i, out in enumerate(outs):
        j = first.setdefault(out, i)
        if absolute[j] != absolute[i]:
            raise UsageError(
                f"--output-dir: {printable(paths[j])} and {printable(paths[i])} would both be written to "
                f"{printable(out)}; rename one of them"
            )
    return outs
