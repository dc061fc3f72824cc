"""Offline synthetic English speech: generated sentences read aloud by eSpeak NG.

The eSpeak NG library and its voice data come from the ``espeakng-loader`` wheel (the ``demo`` extra,
imported on first use) and are driven through ctypes in synchronous mode, so no network, system package or
audio device is needed. :func:`synthesize`
reads one text; :func:`make_corpus` writes a small train/dev/test corpus (WAV files and JSONL manifests)
spoken by several English voices at varied rates and pitches, with a little noise, for smoke tests and demos.

Everything drawn at random (sentences, voices, rates, pitches, noise, gain) follows from the seed. eSpeak
itself keeps state between utterances (pitch flutter phase, echo buffer) that no API call resets, so the
waveforms are bit-for-bit reproducible only in a fresh process (as when run from ``prepare.py``); later in a
process the same utterance can come out a few samples longer or shorter.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE, to_model_rate
from asr.errors import UsageError
from asr.manifest import ManifestError, read_manifest, write_manifest

# eSpeak voices (language + accent) with a "+variant" voice quality from the bundled data's voices/!v.
VOICES = (
    "en-us",
    "en-us+f3",
    "en-us-nyc+m3",
    "en",
    "en+f2",
    "en-gb-x-rp+m7",
    "en-gb-scotland",
    "en-gb-scotland+f4",
    "en-gb-x-gbclan+m2",
    "en-gb-x-gbcwmd+f1",
    "en-029",
    "en-029+f5",
)
RATES = (130, 200)  # words per minute, inclusive range drawn per utterance (eSpeak's default is 175)
PITCHES = (30, 70)  # eSpeak pitch 0-100 relative to the voice's own, inclusive range drawn per utterance
SNR_DB = (20.0, 35.0)  # additive white or pink noise, signal-to-noise ratio drawn per utterance
PEAK = (0.1, 0.9)  # random gain: the utterance's peak amplitude after noise is drawn from this range
EDGE_SILENCE = 0.1  # seconds of silence kept before and after the speech
SPLITS = ("train", "dev", "test")

# speak_lib.h / espeak_ng.h constants
_ENOUTPUT_MODE_SYNCHRONOUS = 0x0001
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EE_OK = 0
# int callback(short *wav, int num_samples, espeak_EVENT *events)
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def _espeakng_loader() -> ModuleType:
    """The ``espeakng_loader`` module, which the ``demo`` extra installs."""
    try:
        import espeakng_loader
    except ImportError:
        raise UsageError(
            "speech synthesis needs espeakng-loader: pip install 'asr[demo]' (in a checkout: -e '.[demo]')"
        ) from None
    return espeakng_loader


class _Engine:
    """The process-wide eSpeak NG library, set up to hand synthesised samples to a Python callback."""

    def __init__(self) -> None:
        loader = _espeakng_loader()
        self.data_path = loader.get_data_path()
        lib = ctypes.CDLL(loader.get_library_path())
        lib.espeak_ng_InitializePath.argtypes = [ctypes.c_char_p]
        lib.espeak_ng_InitializePath.restype = None
        lib.espeak_ng_Initialize.argtypes = [ctypes.c_void_p]
        lib.espeak_ng_InitializeOutput.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p]
        lib.espeak_ng_GetStatusCodeMessage.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        lib.espeak_ng_GetStatusCodeMessage.restype = None
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,  # text
            ctypes.c_size_t,  # size (unused in synchronous mode)
            ctypes.c_uint,  # position
            ctypes.c_int,  # position_type
            ctypes.c_uint,  # end_position
            ctypes.c_uint,  # flags
            ctypes.c_void_p,  # unique_identifier
            ctypes.c_void_p,  # user_data
        ]
        # espeak_Initialize would exit() the process when the data is missing; these calls return a status.
        lib.espeak_ng_InitializePath(self.data_path.encode())
        self._check(lib, lib.espeak_ng_Initialize(None), "initialise")
        self._check(lib, lib.espeak_ng_InitializeOutput(_ENOUTPUT_MODE_SYNCHRONOUS, 0, None), "set up output")
        self.rate = lib.espeak_ng_GetSampleRate()
        self.lib = lib
        self.lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept referenced: the library holds only a pointer
        lib.espeak_SetSynthCallback(self._callback)

    def _check(self, lib: ctypes.CDLL, status: int, what: str) -> None:
        if status != 0:
            message = ctypes.create_string_buffer(512)
            lib.espeak_ng_GetStatusCodeMessage(status, message, len(message))
            raise RuntimeError(
                f"eSpeak NG could not {what} with data {self.data_path}: {message.value.decode()}"
            )

    def _collect(self, wav: ctypes._Pointer, num_samples: int, events: int | None) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
        return 0  # 0 = continue synthesis

    def speak(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        """int16 samples at :attr:`rate` Hz for ``text``."""
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                raise ValueError(f"eSpeak NG has no voice {voice!r} (try one of {', '.join(VOICES)})")
            self.lib.espeak_SetParameter(_ESPEAK_RATE, rate, 0)
            self.lib.espeak_SetParameter(_ESPEAK_PITCH, pitch, 0)
            # espeak_ng_Initialize seeds the generator from the clock; breath and noise sources draw from it.
            self.lib.espeak_ng_SetRandSeed(0)
            data = text.encode()
            self._chunks = []
            status = self.lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
            )
            if status != _EE_OK:
                raise RuntimeError(f"eSpeak NG failed (error {status}) on {text!r}")
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _get_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


def _check_voice(voice: str) -> None:
    """eSpeak silently ignores an unknown "+variant"; reject it here, naming the voice."""
    _, plus, variant = voice.partition("+")
    variants = Path(_espeakng_loader().get_data_path()) / "voices" / "!v"
    if plus and not (variant and (variants / variant).is_file()):
        raise ValueError(f"eSpeak NG has no voice {voice!r}: no variant {variant!r} in {variants}")


def synthesize(text: str, voice: str = "en-us", rate: int = 160, pitch: int = 50) -> np.ndarray:
    """Speak ``text``: a 16 kHz mono float32 waveform with about 0.1 s of silence at each end.

    ``voice`` is an eSpeak NG voice name, optionally with a "+variant" (e.g. "en-gb-x-rp+f3"); ``rate`` is
    in words per minute (80-450) and ``pitch`` 0-100. Raises ValueError for an unknown voice and for text
    that produces no sound.
    """
    _check_voice(voice)
    engine = _get_engine()
    wave = engine.speak(text, voice, rate, pitch).astype(np.float32) / 32768.0
    active = np.flatnonzero(np.abs(wave) > 1e-3)
    if active.size == 0:
        raise ValueError(f"eSpeak NG produced no speech for {text!r}")
    edge = np.zeros(round(EDGE_SILENCE * engine.rate), np.float32)
    wave = np.concatenate([edge, wave[active[0] : active[-1] + 1], edge])
    return to_model_rate(wave, engine.rate)


# --- sentences -------------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


_ADJECTIVES = _words(
    """red blue green yellow black white brown orange purple grey pink golden silver dark bright big small
    little large tiny huge tall short long old new young fresh clean dirty empty full heavy light warm cold
    hot cool soft hard quiet loud happy sad angry busy lazy clever funny strange quick slow early late
    wooden broken shiny round square"""
)
_NOUNS = _words(
    """cat dog bird horse cow sheep goat rabbit mouse duck fish frog bear lion tiger monkey snake chicken
    table chair bed lamp door window book pen pencil cup plate bowl spoon knife bottle bag hat coat shoe
    ball box key clock phone radio car bus train boat bike truck ship house garden kitchen river road
    bridge tree flower apple orange banana lemon cake bread sandwich egg carrot potato song letter picture
    ticket teacher doctor farmer driver baker student child girl boy woman man friend neighbour king queen"""
)
_IRREGULAR_PLURALS = {
    "sheep": "sheep",
    "mouse": "mice",
    "fish": "fish",
    "knife": "knives",
    "box": "boxes",
    "bus": "buses",
    "potato": "potatoes",
    "sandwich": "sandwiches",
    "child": "children",
    "woman": "women",
    "man": "men",
}
_PLACES = _words(
    """park school office market station library shop beach hospital museum kitchen garden village city
    church farm hotel airport"""
)
_NAMES = _words(
    """anna ben carla david emma frank grace henry isabel jack kate leo maria nick olivia peter rosa sam
    tom victor william zoe"""
)
_VERBS_PAST = _words(
    "sat slept jumped waited stood looked played danced walked rested hid ran landed stopped sang"
)
_PREPOSITIONS = _words("on under near behind beside above below inside outside between around")
_TRANSITIVE = _words(
    """saw found bought sold painted washed carried dropped lost cleaned opened closed moved kicked pushed
    pulled liked wanted needed took"""
)
_BASE_VERBS = _words(
    "see find buy sell paint wash carry drop lose clean open close move kick push pull like want need take"
)
_COMMANDS = _words("put place move carry bring leave hide drop throw push")
_DEVICES = _words("light lights radio heater fan television oven music alarm computer")
_ROOMS = _words("kitchen bedroom bathroom hall garage office attic basement cellar study")
_DAYS = _words("monday tuesday wednesday thursday friday saturday sunday")
_TIMES_OF_DAY = _words("morning afternoon evening")
_ONES = _words(
    """zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
    seventeen eighteen nineteen"""
)
_TENS = _words("_ _ twenty thirty forty fifty sixty seventy eighty ninety")  # indices 0 and 1 unused


def number_words(n: int) -> str:
    """0 <= n < 1000 spelled out without hyphens, e.g. 342 -> "three hundred forty two"."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_words takes 0-999, got {n}")
    hundreds, rest = divmod(n, 100)
    words = [_ONES[hundreds], "hundred"] if hundreds else []
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words += [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    elif rest or not hundreds:
        words.append(_ONES[rest])
    return " ".join(words)


def _plural(noun: str) -> str:
    return _IRREGULAR_PLURALS.get(noun, noun + "s")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _sentence(rng: np.random.Generator) -> str:
    """One sentence from a random template; lower case a-z, space and apostrophe only."""

    def pick(words: list[str]) -> str:
        return words[rng.integers(len(words))]

    def noun_phrase() -> str:
        noun = pick(_NOUNS)
        if rng.random() < 0.6:
            noun = pick(_ADJECTIVES) + " " + noun
        return "the " + noun if rng.random() < 0.5 else _a(noun)

    def count() -> str:
        low, high = ((2, 20), (20, 100), (100, 1000))[rng.integers(3)]
        return number_words(int(rng.integers(low, high)))

    def clock() -> str:
        minutes = pick(
            ["o'clock", "fifteen", "thirty", "forty five", number_words(int(rng.integers(1, 10)) * 5)]
        )
        return f"{number_words(int(rng.integers(1, 13)))} {minutes}"

    def when() -> str:
        return pick(["today", "yesterday", "last week", f"this {pick(_TIMES_OF_DAY)}", f"on {pick(_DAYS)}"])

    templates = (
        lambda: f"{noun_phrase()} {pick(_VERBS_PAST)} {pick(_PREPOSITIONS)} {noun_phrase()}",
        lambda: f"{pick(_COMMANDS)} {noun_phrase()} {pick(_PREPOSITIONS)} {noun_phrase()}",
        lambda: f"{pick(_NAMES)} {pick(_TRANSITIVE)} {count()} {pick(_ADJECTIVES)} {_plural(pick(_NOUNS))}",
        lambda: f"{pick(_NAMES)} has {count()} {_plural(pick(_NOUNS))}",
        lambda: f"please call {pick(_NAMES)} at {clock()} on {pick(_DAYS)}",
        lambda: f"turn {pick(['on', 'off'])} the {pick(_DEVICES)} in the {pick(_ROOMS)}",
        lambda: f"{pick(_NAMES)} can't {pick(_BASE_VERBS)} the {pick(_ADJECTIVES)} {pick(_NOUNS)}",
        lambda: f"don't {pick(_BASE_VERBS)} the {pick(_NOUNS)} in the {pick(_ROOMS)}",
        lambda: f"it's {_a(pick(_ADJECTIVES))} {pick(_NOUNS)} and it's very {pick(_ADJECTIVES)}",
        lambda: f"we'll meet {pick(_NAMES)} at the {pick(_PLACES)} on {pick(_DAYS)} {pick(_TIMES_OF_DAY)}",
        lambda: f"where is the {pick(_ADJECTIVES)} {pick(_NOUNS)} that {pick(_NAMES)} {pick(_TRANSITIVE)}",
        lambda: f"how many {_plural(pick(_NOUNS))} did {pick(_NAMES)} {pick(_BASE_VERBS)} {when()}",
        lambda: f"the {pick(_NOUNS)}'s {pick(_NOUNS)} is {pick(_ADJECTIVES)} and {pick(_ADJECTIVES)}",
        lambda: f"{pick(_NAMES)} went to the {pick(_PLACES)} with {count()} {_plural(pick(_NOUNS))}",
        lambda: f"the train leaves at {clock()} from platform {number_words(int(rng.integers(1, 20)))}",
        lambda: f"i'm going to the {pick(_PLACES)} with {pick(_NAMES)} this {pick(_TIMES_OF_DAY)}",
    )
    return templates[rng.integers(len(templates))]()


def _split_sentences(counts: dict[str, int], seed: int) -> dict[str, list[str]]:
    """Distinct sentences for each split, no sentence in two splits.

    Splits are drawn in reverse order of ``counts`` (test before dev before train), each from its own
    stream, so the test sentences depend only on the seed and the test size, whatever the other sizes.
    """
    seen: set[str] = set()
    result: dict[str, list[str]] = {}
    for index, split in reversed(list(enumerate(counts))):
        rng = np.random.default_rng([seed, index])
        sentences: list[str] = []
        for _ in range(50 * counts[split] + 1000):
            if len(sentences) == counts[split]:
                break
            sentence = _sentence(rng)
            if sentence not in seen:
                seen.add(sentence)
                sentences.append(sentence)
        else:
            raise ValueError(f"could not draw {counts[split]} distinct {split} sentences; ask for fewer")
        result[split] = sentences
    result = {split: result[split] for split in counts}
    for a, b in itertools.combinations(counts, 2):
        assert not set(result[a]) & set(result[b]), f"{a} and {b} share sentences"
    return result


# --- corpus ----------------------------------------------------------------------------------------------


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-RMS white or pink (1/f power) noise of length n."""
    if rng.random() < 0.5:
        noise = rng.standard_normal(n)
    else:
        n_fft = 1 << (n - 1).bit_length()  # a power of two: numpy's FFT is slow for lengths with large primes
        spectrum = np.fft.rfft(rng.standard_normal(n_fft))
        spectrum[1:] /= np.sqrt(np.arange(1, spectrum.size))
        spectrum[0] = 0.0
        noise = np.fft.irfft(spectrum, n_fft)[:n]
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def _render(path: Path, text: str, seed: tuple[int, ...], noise: bool) -> float:
    """Speak ``text`` with a voice, rate, pitch, noise and gain drawn from ``seed``; write it to ``path``.

    Returns the duration in seconds.
    """
    rng = np.random.default_rng(seed)
    voice = VOICES[rng.integers(len(VOICES))]
    rate = int(rng.integers(RATES[0], RATES[1] + 1))
    pitch = int(rng.integers(PITCHES[0], PITCHES[1] + 1))
    wave = synthesize(text, voice, rate, pitch)
    if noise:
        edge = round(EDGE_SILENCE * SAMPLE_RATE)
        speech_rms = np.sqrt(np.mean(wave[edge:-edge] ** 2))
        wave += _noise(rng, wave.size) * speech_rms * 10 ** (-rng.uniform(*SNR_DB) / 20)
    wave *= rng.uniform(*PEAK) / np.abs(wave).max()
    sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
    return wave.size / SAMPLE_RATE


def _complete(manifests: dict[str, Path], counts: dict[str, int]) -> bool:
    """Whether every manifest exists with the requested count and all its audio files exist."""
    for split, path in manifests.items():
        try:
            utts = read_manifest(path)
        except ManifestError:
            return False
        if len(utts) != counts[split] or not all(Path(u.audio_filepath).is_file() for u in utts):
            return False
    return True


def make_corpus(
    out_dir: Path, n_train: int, n_dev: int, n_test: int, seed: int = 0, noise: bool = True
) -> dict[str, Path]:
    """Write a synthetic corpus: ``out_dir/wav/*.wav`` (16 kHz 16-bit PCM) and one manifest per split.

    Returns {"train": path, "dev": path, "test": path} for ``out_dir/{split}.jsonl``. Idempotent: when all
    three manifests already hold the requested counts (and their audio exists) nothing is redone, whatever
    ``seed`` and ``noise`` were; delete the manifests to rebuild. Dev and test sentences never occur in train.
    """
    out_dir = Path(out_dir)
    counts = {"train": n_train, "dev": n_dev, "test": n_test}
    for split, n in counts.items():
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"the number of {split} utterances must be a non-negative integer, got {n!r}")
    manifests = {split: out_dir / f"{split}.jsonl" for split in SPLITS}
    if _complete(manifests, counts):
        return manifests

    wav_dir = out_dir / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        for stale in wav_dir.glob(f"{split}_*.wav"):
            stale.unlink()
    sentences = _split_sentences(counts, seed)
    for index, split in enumerate(SPLITS):
        entries = []
        for i, text in enumerate(sentences[split]):
            path = wav_dir / f"{split}_{i:06d}.wav"
            duration = _render(path, text, (seed, index, i), noise)
            entries.append({"audio_filepath": str(path), "duration": duration, "text": text})
        write_manifest(manifests[split], entries)
    return manifests
