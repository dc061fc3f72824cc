"""Every entry point, run as a user runs it: each ``asr`` subcommand, tools/ script and recipe script is
given a missing input, an output it cannot write and a full standard output (``> /dev/full``); each must end
with its documented exit code (asr.errors) and one ``error:`` line, never a traceback. Each case is recorded
for RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TINY_MODEL
from reliability import record

from asr.cli import _parser
from asr.errors import EXIT_AUDIO, EXIT_CHECKPOINT, EXIT_DATA, EXIT_OUTPUT
from asr.lm import build_arpa
from asr.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
FULL = "No space left on device"  # what a full standard output is reported as


@dataclass(frozen=True)
class Paths:
    model: Path  # a training checkpoint
    audio: Path
    manifest: Path  # a test manifest
    train: Path
    dev: Path
    text: Path  # a small text corpus
    lm: Path  # an ARPA LM of it
    blocker: Path  # a regular file: nothing can be written under it
    missing: Path  # a path that does not exist
    tmp: Path


@pytest.fixture(scope="module")
def paths(trained_model, corpus, tmp_path_factory) -> Paths:
    tmp = tmp_path_factory.mktemp("entry_points")
    text = tmp / "corpus.txt"
    text.write_text("".join(u.text + "\n" for u in read_manifest(corpus["train"])), encoding="utf-8")
    lm = tmp / "lm.arpa"
    lm.write_text(build_arpa(text.read_text().splitlines(), 2), encoding="utf-8")
    blocker = tmp / "a-file"
    blocker.write_text("not a folder\n")
    audio = Path(read_manifest(corpus["test"])[0].audio_filepath)
    return Paths(trained_model, audio, corpus["test"], corpus["train"], corpus["dev"], text, lm, blocker,
                 tmp / "does-not-exist", tmp)  # fmt: skip


Args = Callable[[Paths], list[str]]


def _asr(*args: str | Callable[[Paths], str]) -> Args:
    return lambda p: ["-m", "asr.cli", *(a(p) if callable(a) else a for a in args)]


def _tool(name: str, *args: str | Callable[[Paths], str]) -> Args:
    return lambda p: [str(ROOT / "tools" / name), *(a(p) if callable(a) else a for a in args)]


def _recipe(script: str, *args: str | Callable[[Paths], str]) -> Args:
    return lambda p: [str(ROOT / "recipes" / script), *(a(p) if callable(a) else a for a in args)]


def _missing_corpus(script: str, says: str) -> dict:
    """A recipe script given a corpus folder that does not exist: a data error before any work."""
    args = ["--data-dir", lambda p: str(p.missing), "--out-dir", lambda p: str(p.tmp / "prep")]
    if script.endswith("train.py"):
        args += ["--exp-dir", lambda p: str(p.tmp / "exp")]
    return {"missing input": (_recipe(script, *args), False, EXIT_DATA, says)}


def _train(exp: Callable[[Paths], str], train: Callable[[Paths], str] = lambda p: str(p.train)) -> Args:
    return _asr(
        "train", *TINY_MODEL, "trainer.max_epochs=1", "trainer.threads=1",
        lambda p: f"data.train_manifest={train(p)}", lambda p: f"data.val_manifest={p.dev}",
        lambda p: f"exp_dir={exp(p)}",
    )  # fmt: skip


def _score(*more: str | Callable[[Paths], str]) -> Args:
    return _tool("score.py", lambda p: str(p.manifest), lambda p: str(p.manifest), *more)


# entry point -> kind of case -> (arguments, stdout to /dev/full, exit code, what the error line says)
CASES: dict[str, dict[str, tuple[Args, bool, int, str]]] = {
    "asr train": {
        "missing input": (_train(lambda p: str(p.tmp / "t1"), lambda p: str(p.missing)), False, EXIT_DATA,
                          "does-not-exist: manifest not found"),
        "unwritable output": (_train(lambda p: str(p.blocker / "exp")), False, EXIT_OUTPUT, "a-file/exp"),
        "full stdout": (_train(lambda p: str(p.tmp / "t2")), True, EXIT_OUTPUT, FULL),
    },
    "asr transcribe": {
        "missing input": (_asr("transcribe", lambda p: str(p.missing), "--model", lambda p: str(p.model)),
                          False, EXIT_AUDIO, "does-not-exist: file not found"),
        "unwritable output": (_asr("transcribe", lambda p: str(p.audio), "--model", lambda p: str(p.model),
                                   "--output-dir", lambda p: str(p.blocker / "out")), False, EXIT_OUTPUT,
                              "a-file/out"),
        "full stdout": (_asr("transcribe", lambda p: str(p.audio), "--model", lambda p: str(p.model)), True,
                        EXIT_OUTPUT, FULL),
    },
    "asr evaluate": {
        "missing input": (_asr("evaluate", lambda p: str(p.missing), "--model", lambda p: str(p.model)),
                          False, EXIT_DATA, "does-not-exist: manifest not found"),
        "unwritable output": (_asr("evaluate", lambda p: str(p.manifest), "--model", lambda p: str(p.model),
                                   "--report", lambda p: str(p.blocker / "r.jsonl")), False, EXIT_OUTPUT,
                              "a-file/r.jsonl"),
        "full stdout": (_asr("evaluate", lambda p: str(p.manifest), "--model", lambda p: str(p.model)), True,
                        EXIT_OUTPUT, FULL),
    },
    "asr export": {
        "missing input": (_asr("export", lambda p: str(p.missing), lambda p: str(p.tmp / "m1.pt")), False,
                          EXIT_CHECKPOINT, "does-not-exist"),
        "unwritable output": (_asr("export", lambda p: str(p.model), lambda p: str(p.blocker / "m.pt")),
                              False, EXIT_OUTPUT, "a-file/m.pt"),
        "full stdout": (_asr("export", lambda p: str(p.model), lambda p: str(p.tmp / "m2.pt")), True,
                        EXIT_OUTPUT, FULL),
    },
    "asr serve": {
        "missing input": (_asr("serve", "--model", lambda p: str(p.missing / "m.pt")), False, EXIT_CHECKPOINT,
                          "does-not-exist/m.pt: checkpoint not found"),
    },
    "asr models": {
        "missing input": (_asr("models", "add", "m", lambda p: str(p.missing)), False, EXIT_CHECKPOINT,
                          "does-not-exist: model file not found"),
        "full stdout": (_asr("models"), True, EXIT_OUTPUT, FULL),
    },
    "asr plot": {
        "missing input": (_asr("plot", "curves", lambda p: str(p.missing), "--out",
                               lambda p: str(p.tmp / "c.png")), False, EXIT_DATA,
                          "does-not-exist: no tensorboard folder"),
        "unwritable output": (_asr("plot", "curves", lambda p: str(p.model.parent.parent), "--out",
                                   lambda p: str(p.blocker / "c.png")), False, EXIT_OUTPUT, "a-file/c.png"),
        "full stdout": (_asr("plot", "curves", lambda p: str(p.model.parent.parent), "--out",
                             lambda p: str(p.tmp / "c2.png")), True, EXIT_OUTPUT, FULL),
    },
    "tools/score.py": {
        "missing input": (_tool("score.py", lambda p: str(p.missing), lambda p: str(p.manifest)), False,
                          EXIT_DATA, "does-not-exist: file not found"),
        "unwritable output": (_score("--json", lambda p: str(p.blocker / "s.json")), False, EXIT_OUTPUT,
                              "a-file/s.json"),
        "full stdout": (_score(), True, EXIT_OUTPUT, FULL),
    },
    "tools/build_lm.py": {
        "missing input": (_tool("build_lm.py", lambda p: str(p.missing), "--out", lambda p: str(p.tmp / "x")),
                          False, EXIT_DATA, "does-not-exist: cannot read the corpus"),
        "unwritable output": (_tool("build_lm.py", lambda p: str(p.text), "--order", "2", "--out",
                                    lambda p: str(p.blocker / "lm.arpa")), False, EXIT_OUTPUT,
                              "a-file/lm.arpa"),
        "full stdout": (_tool("build_lm.py", lambda p: str(p.text), "--order", "2", "--out",
                              lambda p: str(p.tmp / "lm2.arpa")), True, EXIT_OUTPUT, FULL),
    },
    "tools/average_checkpoints.py": {
        "missing input": (_tool("average_checkpoints.py", lambda p: str(p.missing), "--out",
                                lambda p: str(p.tmp / "a1.pt")), False, EXIT_CHECKPOINT, "does-not-exist"),
        "unwritable output": (_tool("average_checkpoints.py", lambda p: str(p.model), "--out",
                                    lambda p: str(p.blocker / "a.pt")), False, EXIT_OUTPUT, "a-file/a.pt"),
        "full stdout": (_tool("average_checkpoints.py", lambda p: str(p.model), "--out",
                              lambda p: str(p.tmp / "a2.pt")), True, EXIT_OUTPUT, FULL),
    },
    "tools/manifest_stats.py": {
        "missing input": (_tool("manifest_stats.py", lambda p: str(p.missing)), False, EXIT_DATA,
                          "does-not-exist: manifest not found"),
        "full stdout": (_tool("manifest_stats.py", lambda p: str(p.manifest)), True, EXIT_OUTPUT,
                        FULL),
    },
    "tools/tune_lm.py": {
        "missing input": (_tool("tune_lm.py", lambda p: str(p.missing), "--model", lambda p: str(p.model),
                                "--lm", lambda p: str(p.lm)), False, EXIT_DATA, "does-not-exist"),
        "full stdout": (_tool("tune_lm.py", lambda p: str(p.manifest), "--model", lambda p: str(p.model),
                              "--lm", lambda p: str(p.lm), "--lm-weights", "0.5", "--word-scores", "0",
                              "--beam-size", "4"), True, EXIT_OUTPUT, FULL),
    },
    **{f"recipes/{script}": _missing_corpus(script, says) for script, says in [
        ("an4/prepare.py", "not an AN4 tree"), ("an4/train.py", "not an AN4 tree"),
        ("librispeech/prepare.py", "no train-clean-100 in"),
        ("librispeech/train.py", "no train-clean-100 in"),
        ("mini_librispeech/prepare.py", "no train-clean-5 in"),
        ("mini_librispeech/train.py", "no train-clean-5 in"),
    ]},
    "recipes/synthetic/prepare.py": {
        "unwritable output": (_recipe("synthetic/prepare.py", "--out-dir", lambda p: str(p.blocker / "syn"),
                                      "--train", "2", "--dev", "1", "--test", "1"), False, EXIT_OUTPUT,
                              "a-file/syn"),
    },
    "recipes/synthetic/train.py": {
        "unwritable output": (_recipe("synthetic/train.py", "--out-dir", lambda p: str(p.blocker / "syn"),
                                      "--exp-dir", lambda p: str(p.tmp / "exp"), "--train", "2", "--dev", "1",
                                      "--test", "1"), False, EXIT_OUTPUT, "a-file/syn"),
    },
}  # fmt: skip


def test_every_entry_point_has_cases():
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    found = (
        {f"asr {name}" for name in sub.choices}
        | {f"tools/{p.name}" for p in (ROOT / "tools").glob("*.py")}
        | {f"recipes/{p.parent.name}/{p.name}" for p in (ROOT / "recipes").glob("*/*.py")}
    )
    assert found == set(CASES)


@pytest.mark.parametrize(
    ("entry", "kind"),
    [(e, k) for e, kinds in CASES.items() for k in kinds],
    ids=lambda v: v.replace(" ", "-"),
)
def test_entry_point_fails_with_one_line_and_its_code(paths, entry, kind):
    args, full, code, says = CASES[entry][kind]
    with open("/dev/full" if full else "/dev/null", "w") as stdout:
        out = subprocess.run(
            [sys.executable, *args(paths)], stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300,
            cwd=paths.tmp,
        )  # fmt: skip
    errors = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    record(f"entry points: {kind}", f"error line, exit {out.returncode}")
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert (out.returncode, len(errors)) == (code, 1), out.stderr[-3000:]
    assert says in errors[0]
