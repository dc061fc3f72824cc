"""The ``asr`` command, run as a user would: in a subprocess."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.errors import (
    EXIT_AUDIO,
    EXIT_CHECKPOINT,
    EXIT_CONFIG,
    EXIT_DATA,
    EXIT_OUTPUT,
    EXIT_USAGE,
    UsageError,
)
from asr.inference import Transcriber, output_paths
from asr.manifest import read_manifest


def asr(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "asr.cli", *map(str, args)], capture_output=True, text=True, timeout=timeout
    )


def test_help_explains_each_command():
    out = asr("--help")
    assert out.returncode == 0
    for command in ("train", "transcribe", "evaluate", "export"):
        assert command in out.stdout
    for command in ("train", "transcribe", "evaluate", "export"):
        sub = asr(command, "--help")
        assert sub.returncode == 0 and "usage: asr " + command in sub.stdout


def test_transcribe_single_multiple_and_json(trained_model, corpus):
    files = [u.audio_filepath for u in read_manifest(corpus["test"])[:2]]
    one = asr("transcribe", files[0], "--model", trained_model)
    assert one.returncode == 0, one.stderr
    assert len(one.stdout.splitlines()) == 1
    many = asr("transcribe", *files, "--model", trained_model, "--json")
    rows = [json.loads(line) for line in many.stdout.splitlines()]
    assert [r["audio_filepath"] for r in rows] == files
    assert rows[0]["text"] == one.stdout.strip()


def test_transcribe_bad_inputs(trained_model, corpus, tmp_path):
    good = read_manifest(corpus["test"])[0].audio_filepath
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n" * 20)
    sf.write(tmp_path / "tiny.wav", np.zeros(100, np.float32), 16000)  # shorter than one analysis window
    out = asr(
        "transcribe",
        good,
        tmp_path / "missing.wav",
        tmp_path / "empty.wav",
        tmp_path / "text.wav",
        tmp_path / "tiny.wav",
        "--model",
        trained_model,
    )
    assert out.returncode == EXIT_AUDIO
    errors = out.stderr.strip().splitlines()
    assert errors[-3:] == [
        f"error: {tmp_path / 'missing.wav'}: file not found",
        f"error: {tmp_path / 'empty.wav'}: empty file (0 bytes)",
        errors[-1],
    ]
    assert errors[-1].startswith(f"error: {tmp_path / 'text.wav'}: not a readable audio file")
    transcribed = [line.split("\t")[0] for line in out.stdout.splitlines()]
    assert transcribed == [good, str(tmp_path / "tiny.wav")]  # good files are still transcribed


def test_transcribe_bad_checkpoint(tmp_path, corpus):
    good = read_manifest(corpus["test"])[0].audio_filepath
    (tmp_path / "m.ckpt").write_bytes(b"junk")
    for model in (tmp_path / "m.ckpt", tmp_path / "none.ckpt"):
        out = asr("transcribe", good, "--model", model)
        assert out.returncode == EXIT_CHECKPOINT
        assert out.stderr.startswith(f"error: {model}: ") and len(out.stderr.strip().splitlines()) == 1


def test_evaluate_prints_wer_and_writes_report(trained_model, corpus, tmp_path):
    out = asr("evaluate", corpus["test"], "--model", trained_model, "--report", tmp_path / "r.jsonl")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("WER ") and "CER " in out.stdout
    rows = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(rows) == len(read_manifest(corpus["test"]))
    assert {"id", "reference", "hypothesis", "substitutions", "deletions", "insertions", "wer"} <= set(
        rows[0]
    )


def test_evaluate_bad_manifest(trained_model, tmp_path):
    (tmp_path / "m.jsonl").write_text('{"audio_filepath": "a.wav"}\n')
    out = asr("evaluate", tmp_path / "m.jsonl", "--model", trained_model)
    assert out.returncode == EXIT_DATA
    assert out.stderr.strip() == f"error: {tmp_path / 'm.jsonl'}:1: missing key(s) duration, text"


def test_export_then_transcribe(trained_model, corpus, tmp_path):
    good = read_manifest(corpus["test"])[0].audio_filepath
    assert asr("export", trained_model, tmp_path / "model.pt").returncode == 0
    a = asr("transcribe", good, "--model", trained_model)
    b = asr("transcribe", good, "--model", tmp_path / "model.pt")
    assert a.stdout == b.stdout


def test_unwritable_outputs_give_one_line_and_exit_code(trained_model, corpus, tiny_model, tmp_path):
    (tmp_path / "file").write_text("a regular file, not a folder\n")
    blocked = tmp_path / "file" / "sub"  # any write under it fails with NotADirectoryError, even as root
    runs = {
        "export": asr("export", trained_model, blocked / "model.pt"),
        "evaluate": asr(
            "evaluate", corpus["test"], "--model", trained_model, "--report", blocked / "r.jsonl"
        ),
        "train": asr(
            "train",
            *tiny_model,
            f"data.train_manifest={corpus['train']}",
            f"data.val_manifest={corpus['dev']}",
            f"exp_dir={blocked}",
            timeout=300,
        ),
    }
    for command, out in runs.items():
        assert out.returncode == EXIT_OUTPUT, (command, out.stderr[-2000:])
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {blocked}") and "Not a directory" in last, (command, last)
        assert "Traceback" not in out.stderr, command
    assert (tmp_path / "file").read_text() == "a regular file, not a folder\n"


def test_output_paths_keep_same_named_files_of_different_folders_apart(tmp_path):
    inputs = [tmp_path / "x" / "a.wav", tmp_path / "y" / "a.wav", tmp_path / "y" / "deep" / "b.flac"]
    assert output_paths(inputs, "out", ".txt") == [
        Path("out/x/a.txt"),
        Path("out/y/a.txt"),
        Path("out/y/deep/b.txt"),
    ]
    assert output_paths(inputs[1:2], "out", ".srt") == [Path("out/a.srt")]  # one folder: no subfolders
    assert output_paths([inputs[0], inputs[0]], "out", ".txt") == [Path("out/a.txt")] * 2  # same file twice
    with pytest.raises(
        UsageError, match=re.escape(f"{inputs[0]} and {inputs[0].with_suffix('.flac')} would both be")
    ):
        output_paths([inputs[0], inputs[0].with_suffix(".flac")], "out", ".txt")


def test_output_dir_never_overwrites_a_transcript(trained_model, corpus, tmp_path):
    files = [u.audio_filepath for u in read_manifest(corpus["test"])[:2]]
    for folder, source in zip("xy", files):
        (tmp_path / folder).mkdir()
        shutil.copy(source, tmp_path / folder / "a.wav")
    inputs = [tmp_path / "x" / "a.wav", tmp_path / "y" / "a.wav"]
    printed = asr("transcribe", *inputs, "--model", trained_model)
    assert printed.returncode == 0, printed.stderr
    out = asr("transcribe", *inputs, "--model", trained_model, "--output-dir", tmp_path / "out")
    assert out.returncode == 0, out.stderr
    written = [(tmp_path / "out" / f / "a.txt").read_text().strip() for f in "xy"]
    assert written == [line.split("\t")[1] for line in printed.stdout.splitlines()]

    shutil.copy(files[0], tmp_path / "x" / "a.flac")
    clash = asr(
        "transcribe",
        inputs[0],
        tmp_path / "x" / "a.flac",
        "--model",
        trained_model,
        "--output-dir",
        tmp_path / "clash",
    )
    assert clash.returncode == EXIT_USAGE and not (tmp_path / "clash").exists()
    assert clash.stderr.strip().splitlines() == [
        f"error: --output-dir: {inputs[0]} and {tmp_path / 'x' / 'a.flac'} would both be written to "
        f"{tmp_path / 'clash' / 'a.txt'}; rename one of them"
    ]
    (tmp_path / "file").write_text("")
    blocked = asr(
        "transcribe", inputs[0], "--model", trained_model, "--output-dir", tmp_path / "file" / "out"
    )
    assert blocked.returncode == EXIT_OUTPUT
    assert blocked.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'file' / 'out'}: ")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["model.rnn_type=transformer"], EXIT_CONFIG, "rnn_type"),
        (["model.nope=1"], EXIT_CONFIG, "nope"),
        (["data.train_manifest=/nonexistent.jsonl"], EXIT_DATA, "/nonexistent.jsonl: manifest not found"),
    ],
)
def test_train_bad_config(tmp_path, args, code, message):
    out = asr("train", f"exp_dir={tmp_path}", *args)
    assert out.returncode == code, out.stderr
    assert message in out.stderr


def test_train_writes_resolved_config_and_resumes(corpus, tiny_model, tmp_path):
    common = [
        *tiny_model,
        f"data.train_manifest={corpus['train']}",
        f"data.val_manifest={corpus['dev']}",
        f"exp_dir={tmp_path}",
    ]
    first = asr("train", *common, "trainer.max_epochs=1", timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "max_epochs: 1" in (tmp_path / "config.yaml").read_text()
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "logs" / "metrics.csv").is_file() and any((tmp_path / "tensorboard").iterdir())
    second = asr("train", *common, "trainer.max_epochs=2", timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming from" in second.stderr
    epochs = {line.split(",")[0] for line in (tmp_path / "logs" / "metrics.csv").read_text().splitlines()[1:]}
    assert "1" in epochs


def test_usage_error():
    out = asr("transcribe")
    assert out.returncode == EXIT_USAGE and out.stderr == "error: give audio files or --manifest\n"
    out = asr("transcribe", "--bogus-option")
    assert out.returncode == EXIT_USAGE and "usage:" in out.stderr


def test_transcribe_timestamps_and_subtitles(trained_model, corpus, tmp_path):
    files = [u.audio_filepath for u in read_manifest(corpus["test"])[:2]]
    js = asr("transcribe", files[0], "--model", trained_model, "--format", "json", "--timestamps")
    assert js.returncode == 0, js.stderr
    row = json.loads(js.stdout)
    assert row["text"] == " ".join(w["word"] for w in row["words"])
    assert all(0 <= w["start"] <= w["end"] and 0 <= w["confidence"] <= 1 for w in row["words"])
    srt = asr("transcribe", *files, "--model", trained_model, "--format", "srt", "--output-dir", tmp_path)
    assert srt.returncode == 0, srt.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{p.rsplit('/', 1)[1][:-4]}.srt" for p in files
    )
    assert asr("transcribe", files[0], "--model", trained_model, "--timestamps").returncode == EXIT_USAGE
    assert asr("transcribe", *files, "--model", trained_model, "--format", "vtt").returncode == EXIT_USAGE


def test_evaluate_with_beam_search_and_lm(trained_model, corpus, tmp_path):
    from asr.lm import build_arpa

    texts = [u.text for u in read_manifest(corpus["train"]) + read_manifest(corpus["test"])]
    (tmp_path / "lm.arpa").write_text(build_arpa(texts, 2))
    out = asr(
        "evaluate",
        corpus["test"],
        "--model",
        trained_model,
        "--decoder",
        "beam",
        "--lm",
        tmp_path / "lm.arpa",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("WER ")
    bad = asr("evaluate", corpus["test"], "--model", trained_model, "--lm", tmp_path / "lm.arpa")
    assert bad.returncode == EXIT_USAGE and "beam" in bad.stderr


@pytest.fixture(scope="module")
def long_wav(corpus, tmp_path_factory):
    """The test utterances end to end (longer than a 5 s window), and its duration."""
    from asr.audio import load_audio

    wave = np.concatenate([load_audio(u.audio_filepath) for u in read_manifest(corpus["test"])])
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, wave, 16000)
    assert len(wave) / 16000 > 8
    return path, len(wave) / 16000


def test_transcribe_long_file_in_windows(memorised, long_wav):
    model, (path, duration) = memorised[0], long_wav
    out = asr("transcribe", path, "--model", model, "--json", "--timestamps", "--window", 5, "--overlap", 1)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads(out.stdout)
    (expected,) = Transcriber.load(model).transcribe([path], timestamps=True, window_s=5, overlap_s=1)
    assert [(w["word"], w["start"], w["end"]) for w in row["words"]] == [
        (w.text, w.start, w.end) for w in expected.words
    ]
    assert row["words"] and row["text"] == " ".join(w["word"] for w in row["words"])
    assert all(a["start"] <= b["start"] for a, b in zip(row["words"], row["words"][1:]))
    assert row["words"][0]["start"] >= 0 and row["words"][-1]["end"] <= duration
    srt = asr("transcribe", path, "--model", model, "--format", "srt", "--window", 5, "--overlap", 1)
    assert srt.returncode == 0 and srt.stdout.startswith("1\n00:00:")
    for window, overlap in ((5, 5), (0.5, 0.49999), (0.00001, 0)):  # hops of 0 samples: would never end
        bad = asr("transcribe", path, "--model", model, "--window", window, "--overlap", overlap, timeout=60)
        assert bad.returncode == EXIT_USAGE, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "window" in bad.stderr


def test_transcribe_manifest_in_order_with_beam_search(trained_model, corpus, tmp_path):
    utts = read_manifest(corpus["test"])
    lines = [{"audio_filepath": u.audio_filepath} for u in utts] + [{"audio_filepath": "missing.wav"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = asr("transcribe", "--manifest", tmp_path / "m.jsonl", "--model", trained_model, "--decoder", "beam")
    assert out.returncode == EXIT_AUDIO
    assert [line.split("\t")[0] for line in out.stdout.splitlines()] == [u.audio_filepath for u in utts]
    assert out.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'missing.wav'}: file not found"
    assert "%|" not in out.stderr  # no progress bar when stderr is not a terminal
    (tmp_path / "bad.jsonl").write_text('{"audio_filepath": 3}\n')
    bad = asr("transcribe", "--manifest", tmp_path / "bad.jsonl", "--model", trained_model)
    assert bad.returncode == EXIT_DATA and f"{tmp_path / 'bad.jsonl'}:1: audio_filepath" in bad.stderr
    assert asr("transcribe", "--model", trained_model).returncode == EXIT_USAGE


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_bar_on_a_terminal_unless_quiet(trained_model, corpus, monkeypatch, capsys, quiet):
    from asr.cli import main

    files = [u.audio_filepath for u in read_manifest(corpus["test"])]
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["transcribe", *files, "--model", str(trained_model), *(["--quiet"] if quiet else [])]) == 0
    bar = f"{len(files)}/{len(files)}"
    assert (bar in terminal.getvalue()) is not quiet
    assert len(capsys.readouterr().out.splitlines()) == len(files)


def test_hotword_option():
    from asr.cli import _hotword
    from asr.text import HOTWORD_BONUS

    assert _hotword("Cut:2.5") == ("cut", 2.5) and _hotword("cut") == ("cut", HOTWORD_BONUS)
    out = asr("transcribe", "a.wav", "--model", "m.pt", "--hotword", "cut:lots")
    assert out.returncode == EXIT_USAGE and "WORD:BONUS" in out.stderr
    out = asr("evaluate", "m.jsonl", "--model", "m.pt", "--hotword", "cut")
    assert out.returncode == EXIT_USAGE and "beam" in out.stderr


def test_beam_size_token_option(trained_model, corpus):
    greedy = asr("evaluate", corpus["test"], "--model", trained_model)
    beam = ("--decoder", "beam", "--beam-size-token", 1)
    one = asr("evaluate", corpus["test"], "--model", trained_model, *beam)
    assert one.returncode == 0, one.stderr[-2000:]
    assert one.stdout.splitlines()[0] == greedy.stdout.splitlines()[0]  # one token a frame: greedy's path
    bad = asr("evaluate", "m.jsonl", "--model", "m.pt", "--decoder", "beam", "--beam-size-token", 0)
    assert bad.returncode == EXIT_USAGE and "beam_size_token must be at least 1, got 0" in bad.stderr


@pytest.mark.parametrize(
    ("device", "message"),
    [("bogus", "device 'bogus': not a torch device"), ("cuda:7", "device 'cuda:7': ")],
)
def test_bad_device_is_a_usage_error_in_one_line(trained_model, corpus, device, message):
    good = read_manifest(corpus["test"])[0].audio_filepath
    for command in (["transcribe", good], ["evaluate", corpus["test"]]):
        out = asr(*command, "--model", trained_model, "--device", device)
        assert out.returncode == EXIT_USAGE, out.stderr
        assert out.stderr.strip().splitlines() == [out.stderr.strip()] and message in out.stderr


def test_outputs_never_replace_inputs(trained_model, corpus, tmp_path):
    manifest = tmp_path / "m.jsonl"
    shutil.copy(corpus["test"], manifest)
    (tmp_path / "link.jsonl").symlink_to(manifest)
    before = manifest.read_bytes()
    for report in (manifest, tmp_path / "link.jsonl", tmp_path / "." / "m.jsonl", trained_model):
        out = asr("evaluate", manifest, "--model", trained_model, "--report", report)
        assert out.returncode == EXIT_OUTPUT, out.stderr
        assert (
            out.stderr.strip().splitlines() == [out.stderr.strip()] and "refusing to overwrite" in out.stderr
        )
    assert manifest.read_bytes() == before
    size = trained_model.stat().st_size
    out = asr("export", trained_model, trained_model)
    assert out.returncode == EXIT_OUTPUT and "refusing to overwrite the input" in out.stderr
    shutil.copy(trained_model, tmp_path / "last.ckpt")
    out = asr("export", trained_model, tmp_path / "last.ckpt")
    assert out.returncode == EXIT_OUTPUT and "is a training checkpoint" in out.stderr
    assert trained_model.stat().st_size == size == (tmp_path / "last.ckpt").stat().st_size


def test_evaluate_empty_manifest_is_a_data_error(trained_model, tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    out = asr("evaluate", tmp_path / "empty.jsonl", "--model", trained_model)
    assert out.returncode == EXIT_DATA and "WER" not in out.stdout
    assert out.stderr.strip() == f"error: {tmp_path / 'empty.jsonl'}: no utterances to evaluate"


def test_output_dir_writes_what_it_can_and_reports_the_rest(trained_model, corpus, tmp_path):
    files = [u.audio_filepath for u in read_manifest(corpus["test"])[:3]]
    for k, source in enumerate(files):
        shutil.copy(source, tmp_path / f"f{k}.wav")
    inputs = [tmp_path / f"f{k}.wav" for k in range(3)]
    (tmp_path / "out" / "f1.txt").mkdir(parents=True)  # this transcript cannot be written
    out = asr(
        "transcribe",
        *inputs,
        tmp_path / "missing.wav",
        "--model",
        trained_model,
        "--output-dir",
        tmp_path / "out",
    )
    assert out.returncode == EXIT_OUTPUT, out.stderr
    assert (tmp_path / "out" / "f0.txt").is_file() and (tmp_path / "out" / "f2.txt").is_file()
    errors = out.stderr.strip().splitlines()
    assert f"error: {tmp_path / 'missing.wav'}: file not found" in errors
    assert any(line.startswith(f"error: {tmp_path / 'out' / 'f1.txt'}: cannot write") for line in errors)
    assert errors[-1] == "error: 1 of 4 transcript(s) could not be written; the others were"
    assert "Traceback" not in out.stderr


def test_file_name_that_is_not_utf8_is_reported_like_any_file(trained_model, corpus, tmp_path):
    good = read_manifest(corpus["test"])[0].audio_filepath
    odd = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.wav")  # Latin-1 bytes: not UTF-8
    out = subprocess.run(
        [sys.executable, "-m", "asr.cli", "transcribe", odd, good, "--model", str(trained_model), "--json"],
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == EXIT_AUDIO, out.stderr
    stderr, stdout = out.stderr.decode(), out.stdout.decode()  # both valid UTF-8
    assert stderr.strip() == f"error: {tmp_path}/caf\\xe9.wav: file not found"
    assert [json.loads(line)["audio_filepath"] for line in stdout.splitlines()] == [good]
    shutil.copy(good, os.fsencode(odd))
    out = subprocess.run(
        [sys.executable, "-m", "asr.cli", "transcribe", odd, good, "--model", str(trained_model), "--json"],
        capture_output=True,
        timeout=120,
    )
    assert b"Traceback" not in out.stderr and out.returncode in (0, EXIT_AUDIO)
    rows = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert rows[-1]["audio_filepath"] == good  # the other file is transcribed whatever became of the odd one
    assert all(line.startswith("error: ") for line in out.stderr.decode().strip().splitlines())


def test_nbest_in_json(trained_model, corpus):
    good = read_manifest(corpus["test"])[0].audio_filepath
    out = asr("transcribe", good, "--model", trained_model, "--decoder", "beam", "--nbest", 3, "--json")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert len(row["nbest"]) == 3 and row["nbest"][0]["text"] == row["text"]
    assert [h["score"] for h in row["nbest"]] == sorted((h["score"] for h in row["nbest"]), reverse=True)
