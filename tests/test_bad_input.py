"""Bad input through the library and the ``asr`` command: audio files, manifests and text.

One table of audio cases drives both the library test (a waveform matching its reference, or an
``AudioError`` naming the file and problem) and the CLI test (a transcript, or one ``error:`` line and
exit code 1). Every tried case is recorded for RELIABILITY.md.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from reliability import record
from torch.utils.data import DataLoader

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.data import AsrDataset, collate, select_utterances
from asr.errors import EXIT_AUDIO, EXIT_DATA
from asr.manifest import ManifestError, Utterance, read_manifest
from asr.text import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


def tone(rate: int, seconds: float = 0.5, amplitude: float = 0.5) -> np.ndarray:
    """A 440 Hz sine sampled at ``rate``: the same signal at every rate, so resampled files compare."""
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * 440 * t)


@dataclass(frozen=True)
class Case:
    """``make(folder)`` writes the file and returns (its path, the expected 16 kHz waveform or None).

    ``problem`` is None for a valid file, else a fragment of the expected ``AudioError`` message.
    ``atol`` compares lossless decodings sample by sample; lossy ones (``atol=None``) by correlation.
    """

    name: str
    make: Callable[[Path], tuple[Path, np.ndarray | None]]
    problem: str | None = None
    atol: float | None = 1e-6
    edge: int = 0  # samples at each end compared within 0.02 only: a resampling filter's transient


def _written(name: str, data: np.ndarray, rate: int, reference: np.ndarray | None, **kw):
    def make(folder: Path) -> tuple[Path, np.ndarray | None]:
        sf.write(folder / name, data, rate, **kw)
        return folder / name, reference

    return make


def _raw(name: str, content: bytes | None):
    def make(folder: Path) -> tuple[Path, None]:
        if content is not None:
            (folder / name).write_bytes(content)
        return folder / name, None

    return make


def _patched(name: str, offset: int, value: bytes):
    """A valid 16-bit WAV with header bytes at ``offset`` replaced."""

    def make(folder: Path) -> tuple[Path, None]:
        sf.write(folder / name, tone(SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
        data = bytearray((folder / name).read_bytes())
        data[offset : offset + len(value)] = value
        (folder / name).write_bytes(bytes(data))
        return folder / name, None

    return make


def _cut(name: str, keep: Callable[[int], int]):
    def make(folder: Path) -> tuple[Path, None]:
        sf.write(folder / name, tone(SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: keep(len(data))])
        return folder / name, None

    return make


def _special(name: str, kind: str):
    def make(folder: Path) -> tuple[Path, None]:
        path = folder / name
        if kind == "dir":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)  # opening it would block forever: it must be refused unopened
        return path, None

    return make


REF = tone(SAMPLE_RATE)
BITS = [  # (container, subtype, extension, bits)
    ("WAV", "PCM_U8", "wav", 8),
    ("AIFF", "PCM_S8", "aiff", 8),
    ("FLAC", "PCM_S8", "flac", 8),
    ("WAV", "PCM_16", "wav", 16),
    ("FLAC", "PCM_16", "flac", 16),
    ("WAV", "PCM_24", "wav", 24),
    ("FLAC", "PCM_24", "flac", 24),
    ("WAV", "PCM_32", "wav", 32),
    ("WAV", "FLOAT", "wav", 24),
    ("WAV", "DOUBLE", "wav", 32),
    ("NIST", "PCM_16", "sph", 16),
    ("CAF", "ALAC_16", "caf", 16),
]
LOSSY = [("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "opus"), ("MP3", "MPEG_LAYER_III", "mp3")]
RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]


def _channels(n: int):
    gains = np.arange(1, n + 1) / n  # every channel differs, so a wrong mix-down shows
    data = np.stack([tone(SAMPLE_RATE) * g for g in gains], axis=1)
    return _written(f"ch{n}.wav", data, SAMPLE_RATE, REF * gains.mean(), subtype="PCM_16")


def _resampled(rate: int):
    """Half a second at ``rate``; the reference is the same sine at 16 kHz over the same whole samples."""
    return _written(
        f"r{rate}.wav", tone(rate), rate, tone(SAMPLE_RATE, int(rate / 2) / rate), subtype="FLOAT"
    )


def _float(name: str, data: np.ndarray, reference: np.ndarray | None = None):
    return _written(name, data, SAMPLE_RATE, reference, subtype="FLOAT")


def _coded(fmt: str, sub: str, ext: str):
    return _written(f"{sub}.{ext}", REF, SAMPLE_RATE, REF, format=fmt, subtype=sub)


NAN = np.array([0.1, np.nan, 0.2] * 100)
INF = np.array([0.1, np.inf, -np.inf] * 100)
CLIPPED = np.clip(4 * REF, -1, 1)
NOT_AUDIO = "not a readable audio file"
CASES = [
    *[
        Case(f"{f}-{s}".lower(), _coded(f, s, e), atol=max(1.5 / 2 ** (bits - 1), 1e-7))
        for f, s, e, bits in BITS
    ],
    *[Case(f"{f}-{s}".lower(), _coded(f, s, e), atol=None) for f, s, e in LOSSY],
    *[Case(f"{n}-channels", _channels(n), atol=1e-4) for n in range(1, 9)],
    *[Case(f"{r}-hz", _resampled(r), atol=1e-5, edge=200) for r in RATES],
    Case("one-sample", _float("one.wav", np.array([0.25]), np.array([0.25]))),
    Case("shorter-than-a-window", _float("short.wav", REF[:100], REF[:100])),
    Case("silence", _written("silence.wav", np.zeros(SAMPLE_RATE), SAMPLE_RATE, np.zeros(SAMPLE_RATE))),
    Case("clipped-int16", _written("clip.wav", CLIPPED, SAMPLE_RATE, CLIPPED), atol=1e-4),
    Case("float-over-full-scale", _float("over.wav", 8 * REF, 8 * REF), atol=1e-5),
    Case("int-range-float", _float("intf.wav", 32767 * REF, 32767 * REF), atol=1e-2),
    Case("missing", _raw("missing.wav", None), "file not found"),
    Case("empty", _raw("empty.wav", b""), "empty file (0 bytes)"),
    Case("directory", _special("folder.wav", "dir"), "is a directory"),
    Case("fifo", _special("fifo.wav", "fifo"), "not a regular file"),
    Case("name-too-long", _raw("x" * 300 + ".wav", None), "cannot access the file (File name too long)"),
    Case("zero-samples", _written("zero.wav", np.zeros(0), SAMPLE_RATE, None), "no audio samples"),
    Case("truncated-header", _cut("header.wav", lambda n: 20), NOT_AUDIO),
    Case("truncated-body", _cut("body.wav", lambda n: n // 2), "truncated: header declares"),
    Case("header-claims-2-GiB", _patched("huge.wav", 40, (0x7FFFFFF0).to_bytes(4, "little")), "truncated"),
    Case("sample-rate-1-hz", _patched("rate1.wav", 24, (1).to_bytes(4, "little")), "sample rate 1 Hz"),
    Case("text-as-wav", _raw("text.wav", b"hello, I am not audio\n" * 10), NOT_AUDIO),
    Case("png-as-flac", _raw("image.flac", b"\x89PNG\r\n\x1a\n" + bytes(200)), NOT_AUDIO),
    Case("jpeg-as-mp3", _raw("image.mp3", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(300)), NOT_AUDIO),
    Case("nan-samples", _float("nan.wav", NAN), "NaN or infinite"),
    Case("inf-samples", _float("inf.wav", INF), "NaN or infinite"),
    Case("absurd-float-samples", _float("1e30.wav", 1e30 * REF), "beyond any audio range"),
]


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray | None]]:
    folder = tmp_path_factory.mktemp("bad_audio")
    return {case.name: case.make(folder) for case in CASES}


def _check_waveform(case: Case, wave: np.ndarray, reference: np.ndarray) -> None:
    assert wave.dtype == np.float32 and wave.ndim == 1
    if case.atol is None:  # lossy codecs: encoder delay and padding, so compare shape and correlation
        assert abs(len(wave) - len(reference)) < 0.02 * len(reference)
        n = min(len(wave), len(reference))
        assert np.corrcoef(wave[:n], reference[:n])[0, 1] > 0.999
    else:
        assert len(wave) == len(reference)
        np.testing.assert_allclose(wave, reference, atol=max(case.atol, 0.02 if case.edge else 0), rtol=0)
        inner = slice(case.edge, len(wave) - case.edge)
        np.testing.assert_allclose(wave[inner], reference[inner], atol=case.atol, rtol=0)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_library_reads_or_refuses_each_file(audio_files, case):
    path, reference = audio_files[case.name]
    if case.problem is None:
        _check_waveform(case, load_audio(path), reference)
        record("audio files: load_audio", "waveform")
        return
    with pytest.raises(AudioError) as e:
        load_audio(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and case.problem in message and "\n" not in message, message
    record("audio files: load_audio", "AudioError")


def test_cli_transcribes_good_files_and_names_each_bad_one(audio_files, trained_model):
    paths = [audio_files[c.name][0] for c in CASES]
    out = subprocess.run(
        [sys.executable, "-m", "asr.cli", "transcribe", *map(str, paths), "--model", str(trained_model)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == EXIT_AUDIO, out.stderr[-2000:]
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    transcribed = [line.split("\t")[0] for line in out.stdout.splitlines()]
    good = [str(p) for c, p in zip(CASES, paths) if c.problem is None]
    assert transcribed == good  # every valid file, in order, whatever the bad ones around it
    bad = [(c, p) for c, p in zip(CASES, paths) if c.problem is not None]
    assert len(errors) == len(bad)
    for (case, path), line in zip(bad, errors):
        assert line.startswith(f"error: {path}: ") and case.problem in line, line
    for case in CASES:
        record("audio files: asr transcribe", "transcript" if case.problem is None else "error line, exit 1")


def _line(duration: bytes = b"1", text: bytes = b'"x"', audio: bytes = b'"a.wav"') -> bytes:
    return b'{"audio_filepath": ' + audio + b', "duration": ' + duration + b', "text": ' + text + b"}"


MANIFEST_CASES = [  # (name, second line of a manifest, expected error or None when it reads)
    ("malformed-json", b'{"audio_filepath": "a.wav", "duration": 1.0', "m.jsonl:2: malformed JSON"),
    ("missing-keys", b'{"audio_filepath": "a.wav"}', "m.jsonl:2: missing key(s) duration, text"),
    ("non-utf8", _line(text=b'"caf\xe9"'), "m.jsonl:2: not valid UTF-8"),
    ("not-an-object", b'["a.wav", 1.0, "x"]', "m.jsonl:2: expected a JSON object"),
    ("nested-too-deeply", b"[" * 100_000, "m.jsonl:2: malformed JSON (nested too deeply)"),
    ("huge-integer", _line(duration=b"9" * 5000), "m.jsonl:2: malformed JSON"),
    ("duration-1e400", _line(duration=b"1e400"), "duration must be"),
    ("duration-infinity", _line(duration=b"Infinity"), "duration must be"),
    ("duration-nan", _line(duration=b"NaN"), "duration must be"),
    ("duration-huge-int", _line(duration=b"1" + b"0" * 400), "duration must be"),
    ("duration-string", _line(duration=b'"1.0"'), "duration must be"),
    ("duration-true", _line(duration=b"true"), "duration must be"),
    ("nul-in-path", _line(audio=b'"a\\u0000.wav"'), "without NUL"),
    ("text-not-string", _line(text=b"null"), "text must be a string"),
    ("empty-text", _line(text=b'""'), None),
    ("crlf-line-end", _line() + b"\r", None),
    ("blank-line", b"   ", None),
]


@pytest.mark.parametrize(("name", "line", "problem"), MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_reads_or_names_the_line(tmp_path, name, line, problem):
    good = b'{"audio_filepath": "a.wav", "duration": 1.0, "text": "ok"}\n'
    (tmp_path / "m.jsonl").write_bytes(good + line + b"\n")
    if problem is None:
        utts = read_manifest(tmp_path / "m.jsonl")
        assert utts[0].text == "ok" and all(u.audio_filepath == str(tmp_path / "a.wav") for u in utts)
        record("manifest lines", "read")
        return
    with pytest.raises(ManifestError) as e:
        read_manifest(tmp_path / "m.jsonl")
    assert problem in str(e.value) and "\n" not in str(e.value) and len(str(e.value)) < 300
    record("manifest lines", "ManifestError")


def test_manifest_with_byte_order_mark(tmp_path):
    (tmp_path / "m.jsonl").write_text(
        '{"audio_filepath": "a.wav", "duration": 1, "text": "x"}\n', "utf-8-sig"
    )
    assert [u.text for u in read_manifest(tmp_path / "m.jsonl")] == ["x"]
    record("manifest lines", "read")


def test_evaluate_bad_manifest_exit_code(trained_model, tmp_path):
    (tmp_path / "m.jsonl").write_bytes(
        b'{"audio_filepath": "a.wav", "duration": 1, "text": "x"}\n{"a": \xff}\n'
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr.cli",
            "evaluate",
            str(tmp_path / "m.jsonl"),
            "--model",
            str(trained_model),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == EXIT_DATA
    assert out.stderr.strip() == f"error: {tmp_path / 'm.jsonl'}:2: not valid UTF-8 (byte 6)"
    record("manifest lines: asr evaluate", "error line, exit 5")


def _messy_entries(folder: Path, tok: CharTokenizer) -> list[tuple[Utterance, list[int]]]:
    sf.write(folder / "good.wav", tone(SAMPLE_RATE), SAMPLE_RATE)
    (folder / "bad.wav").write_text("not audio")
    utts = [
        Utterance(str(folder / "good.wav"), 0.5, "good", 1),
        Utterance(str(folder / "missing.wav"), 0.5, "missing", 2),
        Utterance(str(folder / "bad.wav"), 0.5, "bad", 3),
        Utterance(str(folder / "good.wav"), 0.5, "naïve café", 4),
        Utterance(str(folder / "good.wav"), 0.5, "", 5),
    ]
    return select_utterances(utts, tok, lambda d: int(d * 25), source="m.jsonl")


def test_training_data_drops_with_counts_and_skips_unreadable(tmp_path, caplog):
    tok = CharTokenizer.english()
    with caplog.at_level(logging.INFO, logger="asr"):
        entries = _messy_entries(tmp_path, tok)
        ds = AsrDataset(entries)
        items = [ds[i] for i in range(len(ds))]
    assert [u.line for u, _ in entries] == [1, 2, 3, 5]  # the empty text is a valid (all-blank) target
    assert "m.jsonl: dropped 1 utterance(s) with characters outside the vocabulary" in caplog.text
    assert "m.jsonl:4: skipped" in caplog.text and "m.jsonl: 4 of 5 utterances kept" in caplog.text
    assert f"skipped: {tmp_path / 'missing.wav'}: file not found" in caplog.text
    assert f"skipped: {tmp_path / 'bad.wav'}: not a readable audio file" in caplog.text
    batch = collate(items)
    assert batch.ids == ["good", "good"] and batch.texts == ["good", ""] and batch.skipped == 2
    assert len(collate([None, None])) == 0 and collate([None, None]).skipped == 2
    for outcome in ("kept", "kept", "kept", "dropped with count", "kept"):
        record("training utterances", outcome)


def test_dataloader_worker_names_unreadable_file(tmp_path):
    tok = CharTokenizer.english()
    entries = _messy_entries(tmp_path, tok)
    handler = logging.FileHandler(tmp_path / "worker.log")  # the worker is another process: log to a file
    logger = logging.getLogger("asr.data")
    logger.addHandler(handler)
    try:
        loader = DataLoader(AsrDataset(entries), batch_size=len(entries), collate_fn=collate, num_workers=1)
        (batch,) = list(loader)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert batch.ids == ["good", "good"] and isinstance(batch.waves, torch.Tensor)
    assert batch.skipped == 2  # the count of unreadable files reaches the main process
    log = (tmp_path / "worker.log").read_text()
    assert f"{tmp_path / 'missing.wav'}: file not found" in log
    assert f"{tmp_path / 'bad.wav'}: not a readable audio file" in log
    record("training utterances: DataLoader worker", "unreadable file named")


def test_unexpected_error_in_a_dataloader_worker_names_the_file(tmp_path, monkeypatch):
    def broken(path: str) -> np.ndarray:
        raise ZeroDivisionError("decoder fault")

    monkeypatch.setattr("asr.data.load_audio", broken)
    ds = AsrDataset(_messy_entries(tmp_path, CharTokenizer.english()))
    with pytest.raises(
        RuntimeError, match=f"^{re.escape(str(tmp_path / 'good.wav'))}: ZeroDivisionError: decoder fault$"
    ) as e:
        ds[0]
    assert isinstance(e.value.__cause__, ZeroDivisionError)  # the original error is kept, not swallowed
    if "fork" in torch.multiprocessing.get_all_start_methods():  # a forked worker sees the patch
        loader = DataLoader(
            ds, batch_size=len(ds), collate_fn=collate, num_workers=1, multiprocessing_context="fork"
        )
        with pytest.raises(RuntimeError, match=f"{re.escape(str(tmp_path / 'good.wav'))}: ZeroDivisionError"):
            next(iter(loader))


SHELL_CALLS = {("os", "system"), ("os", "popen"), ("os", "execl"), ("os", "execlp"), ("os", "spawnl")}


def _shell_uses(path: Path) -> list[str]:
    """``file:line`` of each os.system/os.popen-style call and each call passing ``shell=True``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        is_name = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
        if is_name and (func.value.id, func.attr) in SHELL_CALLS:
            found.append(f"{path}:{node.lineno}")
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{path}:{node.lineno}")
    return found


def test_no_shell_is_ever_given_a_path(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, subprocess\nsubprocess.run(cmd, shell=True)\nos.system(x)\n", encoding="utf-8"
    )
    assert _shell_uses(probe) == [f"{probe}:2", f"{probe}:3"]  # the checker finds what it looks for
    folders = ("asr", "tools", "recipes", "benchmarks")
    files = [p for d in folders for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 20
    assert [use for p in files for use in _shell_uses(p)] == []
    for _ in folders:  # one case a folder: the count does not change as files are added
        record("source folders: no shell, no os.system", "clean")


def test_manifest_file_as_json_in_every_line(tmp_path):
    """A manifest written by json.dumps of awkward text round-trips: quotes, newlines, non-ASCII."""
    texts = ['say "hi"', "two\nlines", "日本語", "tab\there", "\u2028separator"]
    (tmp_path / "m.jsonl").write_text(
        "".join(json.dumps({"audio_filepath": "a.wav", "duration": 1, "text": t}) + "\n" for t in texts),
        encoding="utf-8",
    )
    assert [u.text for u in read_manifest(tmp_path / "m.jsonl")] == texts
    for _ in texts:
        record("manifest lines", "read")
