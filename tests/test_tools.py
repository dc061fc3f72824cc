import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from reliability import record

from asr.errors import EXIT_DATA, EXIT_OUTPUT
from asr.manifest import write_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_stats_finds_problems(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "b.wav").write_text("not audio")
    write_manifest(
        tmp_path / "m.jsonl",
        [
            {"audio_filepath": str(tmp_path / "a.wav"), "duration": 2.0, "text": "Café one"},
            {"audio_filepath": str(tmp_path / "b.wav"), "duration": 1.0, "text": "two"},
        ],
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools/manifest_stats.py"), str(tmp_path / "m.jsonl"), "--check-audio"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "2 utterances" in out.stdout
    assert "outside the English tokenizer: {'é': 1}" in out.stdout
    assert "line 1: " in out.stdout and "manifest says 2.00 s, file holds 1.00 s" in out.stdout
    assert f"line 2: {tmp_path / 'b.wav'}: not a readable audio file" in out.stdout


def _run_tool(name: str, *args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / name), *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def _alias(tmp_path: Path, how: str, target: Path) -> Path:
    """Another name for ``target``: itself, a symlink, a hard link or a relative path (from ``tmp_path``)."""
    if how == "symlink":
        (tmp_path / "link").symlink_to(target)
        return tmp_path / "link"
    if how == "hard link":
        os.link(target, tmp_path / "hard")
        return tmp_path / "hard"
    return Path(os.path.relpath(target, tmp_path)) if how == "relative path" else target


ALIASES = ["same path", "symlink", "hard link", "relative path"]


@pytest.mark.parametrize("how", ALIASES)
@pytest.mark.parametrize("option", ["--out", "--lexicon"])
def test_build_lm_refuses_to_overwrite_the_corpus(tmp_path, how, option):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\nthe dog ran\n")
    out = ["--out", tmp_path / "lm.arpa"] if option == "--lexicon" else []
    result = _run_tool(
        "build_lm.py", corpus, "--order", "2", *out, option, _alias(tmp_path, how, corpus), cwd=tmp_path
    )
    record("outputs onto inputs: tools/build_lm.py", f"refused, exit {result.returncode}")
    assert result.returncode == EXIT_OUTPUT, result.stderr
    assert "refusing to overwrite the input" in result.stderr and result.stderr.count("error:") == 1
    assert corpus.read_text() == "the cat sat\nthe dog ran\n"
    assert not (tmp_path / "lm.arpa").exists()


def test_build_lm_refuses_lexicon_onto_the_lm(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\n")
    result = _run_tool(
        "build_lm.py", corpus, "--order", "2", "--out", tmp_path / "x", "--lexicon", tmp_path / "x"
    )
    assert result.returncode == EXIT_OUTPUT and "refusing to overwrite" in result.stderr


@pytest.mark.parametrize("how", ALIASES)
def test_average_checkpoints_refuses_to_overwrite_an_input(trained_model, tmp_path, how):
    ckpt = tmp_path / "a.ckpt"
    shutil.copy(trained_model, ckpt)
    before = ckpt.read_bytes()
    result = _run_tool("average_checkpoints.py", ckpt, "--out", _alias(tmp_path, how, ckpt), cwd=tmp_path)
    record("outputs onto inputs: tools/average_checkpoints.py", f"refused, exit {result.returncode}")
    assert result.returncode == EXIT_OUTPUT, result.stderr
    assert "refusing to overwrite the input" in result.stderr
    assert ckpt.read_bytes() == before


def test_average_checkpoints_never_replaces_a_training_checkpoint(trained_model, tmp_path):
    other = tmp_path / "last.ckpt"  # a training checkpoint that is not among the inputs
    shutil.copy(trained_model, other)
    before = other.read_bytes()
    result = _run_tool("average_checkpoints.py", trained_model, "--out", other)
    assert result.returncode == EXIT_OUTPUT, result.stderr
    assert (
        result.stderr
        == f"error: {other}: is a training checkpoint; refusing to replace it with an inference-only model\n"
    )
    assert other.read_bytes() == before
    assert _run_tool("average_checkpoints.py", trained_model, "--out", tmp_path / "avg.pt").returncode == 0
    # an averaged (inference-only) model may be replaced
    assert _run_tool("average_checkpoints.py", trained_model, "--out", tmp_path / "avg.pt").returncode == 0


def test_manifest_stats_exit_codes(tmp_path):
    result = _run_tool("manifest_stats.py", tmp_path / "none.jsonl")
    assert result.returncode == EXIT_DATA
    assert result.stderr == f"error: {tmp_path / 'none.jsonl'}: manifest not found\n"


def test_average_checkpoints_refuses_an_input_it_did_not_choose(trained_model, tmp_path):
    exported = tmp_path / "model.pt"  # an inference-only input: --last 1 passes it over for the checkpoint
    assert _run_tool("average_checkpoints.py", trained_model, "--out", exported).returncode == 0
    before = exported.read_bytes()
    result = _run_tool("average_checkpoints.py", trained_model, exported, "--last", "1", "--out", exported)
    assert result.returncode == EXIT_OUTPUT, result.stderr
    assert "refusing to overwrite the input" in result.stderr
    assert exported.read_bytes() == before
