"""Smoke runs of every recipe on tiny settings, end to end through their real entry points, and the one
driver they share (asr.recipe) on an already trained model."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_an4_prepare import make_an4

import asr.recipe
from asr.errors import ConfigError, UsageError
from asr.inference import Transcriber
from asr.manifest import read_manifest
from asr.recipe import LMSource, recipe_config, run_recipe
from asr.train import resolve_precision

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def check_results(exp: Path, sets: dict[str, Path], decoders: list[str]) -> dict:
    """results.json in its one format, and the reports and RESULTS.md beside it."""
    results = json.loads((exp / "results.json").read_text())
    assert list(results["scores"]) == list(sets)
    for name, manifest in sets.items():
        assert list(results["scores"][name]) == decoders
        for decoder in decoders:
            row = results["scores"][name][decoder]
            assert set(row) == {"wer", "cer", "words", "skipped"} and row["words"] > 0 and row["cer"] >= 0
            report = exp / "reports" / decoder / f"{name}.jsonl"
            assert len(report.read_text().splitlines()) == len(read_manifest(manifest)) - row["skipped"]
    assert results["parameters"] > 0 and results["devices"] == 1 and results["train_wall_seconds"] >= 0
    assert all(not Path(c).is_absolute() and (exp / c).is_file() for c in results["checkpoints"])
    example = results["example"]
    assert example["set"] == next(iter(sets)) and example["hypothesis"] is not None
    table = (exp / "RESULTS.md").read_text()
    assert all(f"| {name} |" in table for name in sets) and "device-hours" in table
    assert results["command"] in table and (exp / "model.pt").is_file()
    return results


def test_synthetic_demo_from_another_folder(tmp_path, tiny_model):
    """The demo runs from any working directory, scores greedily and with the 3-gram LM by default."""
    out = run(
        "recipes/synthetic/train.py",
        *("--out-dir", str(tmp_path / "data"), "--exp-dir", str(tmp_path / "exp")),
        *("--train", "16", "--dev", "4", "--test", "4"),
        *tiny_model,
        "trainer.max_epochs=1",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = check_results(tmp_path / "exp", {"test": tmp_path / "data/test.jsonl"}, ["greedy", "beam_lm"])
    greedy = results["scores"]["test"]["greedy"]
    assert f"test greedy: WER {greedy['wer']:.2f}%  CER {greedy['cer']:.2f}%" in out.stdout
    lm = results["lm"]
    assert lm["source"] == "training transcripts" and lm["order"] == 3 and lm["tuning_utterances"] == 4
    assert (tmp_path / "exp" / "lm.arpa").is_file() and "recipes/synthetic/train.py" in results["command"]
    assert results["precision"] == resolve_precision("auto", "cpu")  # the demo config's "auto", as it ran
    assert (tmp_path / "exp" / "checkpoints" / "last.ckpt").is_file()


def test_an4_recipe_on_a_fake_tree_and_its_rerun(tmp_path, tiny_model):
    """The same command run again resumes in its EXP_DIR and replaces the outputs, curves.png too."""
    make_an4(tmp_path / "an4")
    command = [
        *("--data-dir", str(tmp_path / "an4"), "--out-dir", str(tmp_path / "data")),
        *("--exp-dir", str(tmp_path / "exp"), "--lm-order", "0"),
        *tiny_model,
        *("model.num_layers=2", "aux_ctc.layer=1"),  # the recipe's intermediate CTC, below the top layer
        "data.min_duration=0.0",
    ]
    out = run("recipes/an4/train.py", *command, "trainer.max_epochs=1")
    assert out.returncode == 0, out.stderr[-3000:]
    results = check_results(tmp_path / "exp", {"test": tmp_path / "data/test.jsonl"}, ["greedy"])
    assert results["scores"]["test"]["greedy"]["words"] == 3  # "NO", "ENTER SIX"
    assert results["lm"] is None
    curves = (tmp_path / "exp" / "curves.png").stat().st_mtime_ns
    out = run("recipes/an4/train.py", *command, "trainer.max_epochs=2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        "max_epochs=2"
        in check_results(tmp_path / "exp", {"test": tmp_path / "data/test.jsonl"}, ["greedy"])["command"]
    )
    assert (tmp_path / "exp" / "curves.png").stat().st_mtime_ns > curves


def test_an4_recipe_errors_are_one_line_with_their_exit_code(tmp_path):
    """A bad data folder is a data error (5), a bad setting a config error (3), a wrong combination of options
    a usage error (2)."""
    out = run(
        "recipes/an4/train.py", "--data-dir", str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "d")
    )
    assert out.returncode == 5
    assert out.stderr.startswith("error: not an AN4 tree") and len(out.stderr.splitlines()) == 1
    make_an4(tmp_path / "an4")
    data = ("--data-dir", str(tmp_path / "an4"), "--out-dir", str(tmp_path / "d"), "--exp-dir", str(tmp_path))
    for args, code in (
        (["model.rnn_type=transformer"], 3),
        (["--lm-order", "1"], 3),
        (["--lexicon", "w"], 2),
    ):
        out = run("recipes/an4/train.py", *data, *args)
        assert out.returncode == code, out.stderr[-2000:]
        assert out.stderr.startswith("error: ") and len(out.stderr.splitlines()) == 1


def test_lm_source_settings():
    with pytest.raises(ConfigError, match="LM order must be 0 .no LM. or at least 2, got 1"):
        LMSource(order=1)
    with pytest.raises(UsageError, match="not both"):
        LMSource(order=3, arpa="lm.arpa")
    assert not LMSource().enabled and LMSource(arpa="lm.arpa", lexicon="lex.txt").enabled
    assert LMSource(order=2).describe()["source"] == "training transcripts"


def test_driver_runs_each_set_through_the_model_once(
    trained_model, corpus, tmp_path, monkeypatch, tiny_model, capsys
):
    """The validation set, when it is also an evaluation set, tunes the LM from its own log-probabilities,
    after its greedy score is printed; every set is emitted once whatever the decoders, and results keep the
    caller's order of sets."""
    exp = tmp_path / "exp"

    def trained(cfg):
        best = exp / "checkpoints" / "best.ckpt"
        best.parent.mkdir(parents=True)
        shutil.copy(trained_model, best)
        return [best]

    emitted = []
    real_emit = Transcriber.emit
    monkeypatch.setattr(asr.recipe, "train", trained)
    monkeypatch.setattr(Transcriber, "emit", lambda self, m: emitted.append(m) or real_emit(self, m))
    real_tune = asr.recipe.tune_lm
    monkeypatch.setattr(asr.recipe, "tune_lm", lambda *a: print("tuning the LM") or real_tune(*a))
    cfg = recipe_config(None, corpus["train"], corpus["dev"], exp, tiny_model)
    sets = {"test": corpus["test"], "dev": corpus["dev"]}
    results = run_recipe(
        cfg, sets, LMSource(order=2), command="python x.py", details={"dev speakers": "a, b"}
    )
    assert emitted == [corpus["dev"], corpus["test"]]
    out = capsys.readouterr().out
    assert out.index("dev greedy: WER") < out.index("tuning the LM") < out.index("dev beam_lm: WER")
    check_results(exp, sets, ["greedy", "beam_lm"])
    assert results["checkpoints"] == ["checkpoints/best.ckpt"] and results["selected_by"] == "val/cer"
    assert results["lm"]["tuned_on"] == str(corpus["dev"]) and results["lm"]["tuning_utterances"] == 4
    assert (
        results["details"] == {"dev speakers": "a, b"}
        and "- dev speakers: a, b" in (exp / "RESULTS.md").read_text()
    )
    assert json.loads((exp / "results.json").read_text()) == results

    emitted.clear()
    shutil.rmtree(exp)
    results = run_recipe(cfg, {"test": corpus["test"]}, LMSource(order=2), tune_utts=2)
    assert len(emitted) == 2 and len(emitted[0]) == 2 and emitted[1] == corpus["test"]  # dev's first 2, test
    assert results["lm"]["tuning_utterances"] == 2
